"""The headless printer's cost per DATA frame line, and per repeated request.

Run: ``python tests/bench/bench_headless.py [--requests N] [--clock cpu]
[--workload bulk|repeated]``

Builds bulk-DATA traffic once (the workload of ``bench_observer.py``: 128 KB
responses in 16 KB DATA frames, a WINDOW_UPDATE pair after each), decodes it
with the observer, and wraps each fed chunk's events in a :class:`Batch` as the
relay does. Then it times :class:`HeadlessPrinter` writing all of them to an
in-memory text stream: the formatting the proxy's event loop pays under
``run --headless``. ``--workload repeated`` prints h2load's W1 exchange
instead (``bench_observer.build_repeated``: the same 1 KiB GET each time, its
header lines under every HEADERS). ``--dump FILE`` writes the text, to compare the output of
two versions byte for byte.
"""

from __future__ import annotations

import argparse
import gc
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_observer import build_repeated, build_traffic

from proxy.events import Batch
from proxy.headless import HeadlessPrinter
from proxy.observe.connection import ConnectionObserver
from proxy.observe.events import FrameObserved

_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def build_batches(requests: int, workload: str = "bulk") -> tuple[list[Batch], int, int]:
    """(batches, frame events, DATA frame events)."""
    if workload == "repeated":
        chunks = build_repeated(requests)[0]
    else:
        chunks = build_traffic(requests, b"x" * (16384 * 8))
    obs = ConnectionObserver()
    batches = []
    frames = data = 0
    for i, (direction, chunk) in enumerate(chunks):
        t = i * 0.0001
        events = tuple(obs.feed(direction, chunk, t))
        for ev in events:
            if isinstance(ev, FrameObserved):
                frames += 1
                data += ev.frame.type == 0
        batches.append(Batch(conn_id=1, t=t, events=events, direction=direction,
                             data=chunk, protocol="h2"))
    return batches, frames, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5, help="runs (the best counts)")
    ap.add_argument("--clock", choices=sorted(_CLOCKS), default="wall")
    ap.add_argument("--dump", type=Path, help="write the printed text to this file")
    ap.add_argument("--workload", choices=("bulk", "repeated"), default="bulk")
    args = ap.parse_args()
    clock = _CLOCKS[args.clock]
    batches, frames, data = build_batches(
        args.requests * (100 if args.workload == "repeated" else 1), args.workload)
    best = float("inf")
    text = ""
    for _ in range(max(1, args.repeat)):
        out = io.StringIO()
        printer = HeadlessPrinter(out)
        gc.collect()
        start = clock()
        # 16 batches per call, as the bus hands over what queued up meanwhile.
        for i in range(0, len(batches), 16):
            printer.handle_many(batches[i : i + 16])
        best = min(best, clock() - start)
        text = out.getvalue()
    if args.dump:
        args.dump.write_text(text, encoding="utf-8")
    print(f"workload: {len(batches)} batches, {frames:,} frame events ({data:,} DATA), "
          f"{text.count(chr(10)):,} lines ({args.clock} clock, best of {args.repeat})")
    print(f"{'HeadlessPrinter':<24}{frames / best:>14,.0f} frames/s"
          f"{best / frames * 1e6:>10.2f} µs/frame")


if __name__ == "__main__":
    main()
