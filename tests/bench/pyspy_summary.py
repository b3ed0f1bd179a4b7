"""What a ``py-spy record -f raw`` profile says the proxy spends its time on.

    python tests/bench/pyspy_summary.py PROFILE.txt [--top 15]

A raw profile has one line per distinct stack: frames from the root to the
leaf separated by ``;``, each ``function (file:line)``, then the number of
samples. This prints three views:

* by component: each sample goes to the component of its innermost frame
  that belongs to one (HPACK, observer, printer, TLS and sockets, ...);
* self time: the innermost function of each sample;
* inclusive time of the proxy's main entry points (a sample counts once per
  function however deep the recursion).

Samples of idle thread-pool workers (waiting for work in
``concurrent/futures/thread.py``) are left out: py-spy counts a thread
blocked in C as active.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: (component, substring of the frame's file); the first match wins, innermost frame first.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("HPACK decoding (annotated, Huffman)", "proxy/observe/hpack_annotated.py"),
    ("HPACK decoding (annotated, Huffman)", "proxy/observe/huffman.py"),
    ("HPACK decoding (annotated, Huffman)", "hpack/"),
    ("headless printer: formatting lines", "proxy/observe/describe.py"),
    ("headless printer: formatting lines", "proxy/headless.py"),
    ("headless printer: formatting lines", "proxy/textlog.py"),
    ("observer: frames, streams, flow control, findings", "proxy/observe/"),
    ("UI: ingest into the session model", "ui/model/"),
    ("UI: drawing (widgets, screens)", "ui/"),
    ("UI: Textual and Rich", "textual/"),
    ("UI: Textual and Rich", "rich/"),
    ("recorder", "proxy/capture/"),
    ("event bus", "proxy/events.py"),
    ("TLS and socket I/O", "ssl.py"),
    ("TLS and socket I/O", "proxy/net/streams.py"),
    ("TLS and socket I/O", "asyncio/selector_events.py"),
    ("TLS and socket I/O", "asyncio/streams.py"),
    ("relay loop", "proxy/net/relay.py"),
    ("connection set-up (TLS handshakes, certificates)", "proxy/net/"),
    ("connection set-up (TLS handshakes, certificates)", "certs/"),
    ("asyncio scheduling (tasks, queues, selector)", "asyncio/"),
    ("asyncio scheduling (tasks, queues, selector)", "selectors.py"),
)

#: Functions whose inclusive share is worth knowing: (label, function name, file substring).
ENTRY_POINTS: tuple[tuple[str, str, str], ...] = (
    ("relay pumps (_pump, all of it)", "_pump", "proxy/net/relay.py"),
    ("  TLS read (Stream.read_some)", "Stream.read_some", "proxy/net/streams.py"),
    ("  TLS write + drain", "TlsStream.write", "proxy/net/streams.py"),
    ("  observer (ConnectionObserver.feed)", "ConnectionObserver.feed", "proxy/observe/"),
    ("  publish to the bus (Conn.publish_chunk)", "Conn.publish_chunk", "proxy/net/context.py"),
    ("sink tasks (Subscription._run)", "Subscription._run", "proxy/events.py"),
    ("  headless printer (HeadlessPrinter.handle)", "HeadlessPrinter.handle",
     "proxy/headless.py"),
    ("  recorder (CaptureRecorder.handle)", "CaptureRecorder.handle", "proxy/capture/"),
    ("event loop: waiting in select", "EpollSelector.select", "selectors.py"),
)


def parse(lines: Iterable[str]) -> list[tuple[list[tuple[str, str]], int]]:
    """(frames root → leaf as (function, file), samples) per line of a raw profile."""
    out = []
    for raw in lines:
        line = raw.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for text in stack.split(";"):
            m = _FRAME.match(text)
            frames.append((m["func"], m["file"]) if m else (text, ""))
        out.append((frames, int(count)))
    return out


def idle(frames: Sequence[tuple[str, str]]) -> bool:
    """A thread-pool worker waiting for work (py-spy cannot tell it is idle)."""
    func, file = frames[-1]
    return func == "_worker" and file.endswith("concurrent/futures/thread.py")


def component(frames: Sequence[tuple[str, str]]) -> str:
    for _func, file in reversed(frames):
        for name, pattern in COMPONENTS:
            if pattern in file:
                return name
    return "other (interpreter, start-up)"


def summarize(path: Path, *, top: int = 15) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        samples = [(frames, n) for frames, n in parse(f) if frames and not idle(frames)]
    total = sum(n for _, n in samples)
    if not total:
        return "no samples"
    by_component: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, n in samples:
        by_component[component(frames)] += n
        func, file = frames[-1]
        self_time[f"{func} ({file})"] += n
        seen = set()
        for label, name, pattern in ENTRY_POINTS:
            if label not in seen and any(f == name and pattern in fl for f, fl in frames):
                seen.add(label)
                inclusive[label] += n

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f} %"

    lines = [f"{total} samples", "", "by component (innermost frame that belongs to one):"]
    lines += [f"  {pct(n)}  {name}" for name, n in by_component.most_common()]
    lines += ["", "inclusive:"]
    lines += [f"  {pct(inclusive[label])}  {label}" for label, _, _ in ENTRY_POINTS]
    lines += ["", f"self time, top {top}:"]
    lines += [f"  {pct(n)}  {name}" for name, n in self_time.most_common(top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    print(summarize(args.profile, top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
