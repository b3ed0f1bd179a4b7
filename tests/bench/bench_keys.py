"""Key-press latency of ``h2scope view`` on a 1,000,000-frame capture, in a real terminal.

A plain script (not collected by pytest)::

    python tests/bench/bench_keys.py [--frames 1000000] [--capture FILE] [--repeat 30]
                                     [--keys down,s] [--during-load] [--spawn]

``bench_ui.py`` measures keys through Textual's Pilot, whose own round trip
(~100 ms here) hides the ≤ 100 ms target of the issue. This one runs the real
``python -m proxy view CAPTURE`` in a detached tmux session (its own server,
``tmux -L <unique name>``, 160x48, ``TERM=xterm-256color``) and looks at the
screen the way a user does: through a terminal emulator (tmux).

* It writes the browser-like capture of ``bench_ui.write_capture`` (or reuses
  ``--capture``), starts the viewer and polls ``tmux capture-pane -p``: time to
  the first timeline rows, to the full frame count in the status bar (the
  capture indexed: ``decoding N%``) and to ``(loaded)`` (every frame decoded).
  ``--during-load`` also presses ``down`` every 0.3 s meanwhile and prints how
  long each took to change anything on screen.
* For each key (the timeline's cursor keys from ``ui/widgets/rowlist.py``;
  ``n``, ``s``, ``w``, ``l`` from ``ui/keymap.py``), it waits for a stable
  screen (unchanged for ``--settle-ms``), sends the key with ``tmux send-keys``
  and polls ``capture-pane -p -e`` (``-e``: with colours, since a cursor move
  only recolours two rows) every ``--poll-ms``. *first change* is the time
  from just before ``send-keys`` until a poll returns a screen that differs;
  *settled* is when the last change came (the screen then stays unchanged for
  ``--settle-ms``, and a modal screen's text is shown or gone): a cursor move
  repaints its rows first and the detail pane on the next refresh. Times are
  upper bounds, late by up to one poll: the cost of a poll is printed as the
  resolution.
* The polls and keys go through one tmux control-mode client (``tmux -C``):
  ~1 ms a poll, where a ``tmux`` process per ``capture-pane`` (``--spawn``)
  costs ~3.5 ms and, in a tight loop, takes CPU from the viewer on a small
  machine.
* *view CPU* and *waited for CPU* are the viewer's threads' time running and
  time runnable but not running (``/proc/PID/task/*/schedstat``) from the
  press to the settled screen: what the key cost the app, and how much the
  rest of the machine delayed it. The load average is printed before and after.
* An unbound key (``z``) changes nothing: its row gives the floor of the
  method instead, ``send-keys`` plus one ``capture-pane``.

Modal screens are closed with ``q`` (``escape`` would add Textual's 100 ms
ESCDELAY), and only once their own text is on screen, since ``q`` on the main
screen quits. The tmux server is killed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIZE = (160, 48)
TARGET_MS = 100.0
ROW = re.compile(r"\d\.\d{6} #\d+ ")
"""A timeline row: time since the first frame, then the connection."""
FRAMES = re.compile(r"│ ([\d,]+)(?: of [\d,]+)? frames │")
"""The status bar's frame count (ui/app.py ``_status``)."""
SGR = re.compile(r"\x1b\[[0-9;:]*m")
"""Colours and attributes in ``capture-pane -e`` output."""


# --------------------------------------------------------------------- tmux

class Tmux:
    """One private tmux server (``tmux -L name``) with one session.

    Commands run as a ``tmux`` process each, or, once :meth:`attach` ed, go down one
    control-mode client (``tmux -C``, output notifications off): no process to
    start per poll, so finer polls and less CPU taken from the viewer.
    """

    def __init__(self, name: str, session: str = "bench") -> None:
        self.name = name
        self.target = session
        self.control: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        """perf_counter() when the session was started."""
        self.socket: Path | None = None

    def run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-L", self.name, *args], capture_output=True,
                             text=True, check=False)
        if check and out.returncode:
            raise RuntimeError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, command: Sequence[str], cwd: Path, conf: Path) -> None:
        """Start the server and the session; ``conf`` gets the server's options (set
        before the pane starts, so the app never sees a resize)."""
        width, height = SIZE
        conf.write_text("set-option -g status off\n"  # all 48 rows for the app
                        "set-option -g remain-on-exit on\n"  # a crash leaves its traceback
                        "set-option -g default-terminal xterm-256color\n"
                        f"set-option -g default-size {width}x{height}\n")
        self.started = time.perf_counter()
        self.run("-f", str(conf), "new-session", "-d", "-s", self.target,
                 "-x", str(width), "-y", str(height), "-c", str(cwd), *command)
        self.socket = Path(self.pane("#{socket_path}"))

    def attach(self) -> None:
        """Send the next commands through a control-mode client."""
        self.control = subprocess.Popen(
            ["tmux", "-L", self.name, "-C", "attach-session", "-t", self.target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._block()  # the reply to attach-session: the client is attached
        self._write("refresh-client -f no-output")
        with contextlib.suppress(RuntimeError):  # without it, %output lines are skipped
            self._block()

    def _write(self, line: str) -> None:
        assert self.control is not None and self.control.stdin is not None
        self.control.stdin.write(line.encode() + b"\n")
        self.control.stdin.flush()

    def _block(self) -> str:
        """The next reply: the lines between ``%begin`` and ``%end`` (notifications
        outside them are skipped)."""
        assert self.control is not None and self.control.stdout is not None
        read = self.control.stdout.readline
        line = read()
        while not line.startswith(b"%begin"):
            if not line:
                raise RuntimeError("the tmux control client exited")
            line = read()
        lines = []
        line = read()
        while not line.startswith((b"%end", b"%error")):
            lines.append(line)
            line = read()
        text = b"".join(lines).decode()
        if line.startswith(b"%error"):
            raise RuntimeError(f"tmux: {text.strip()}")
        return text

    def command(self, *args: str) -> str:
        if self.control is None:
            return self.run(*args)
        self._write(shlex.join(args))
        return self._block()

    def screen(self, styled: bool = True) -> str:
        """The pane's text; ``styled``, with its colours and attributes as SGR escapes
        (a cursor move changes only those of two rows)."""
        return self.command("capture-pane", "-p", *(["-e"] if styled else []),
                            "-t", self.target)

    def send(self, key: str) -> None:
        self.command("send-keys", "-t", self.target, key)

    def pane(self, fmt: str) -> str:
        return self.command("display-message", "-p", "-t", self.target, fmt).strip()

    def pid(self) -> int:
        return int(self.pane("#{pane_pid}"))

    def dead(self) -> bool:
        return self.pane("#{pane_dead}") == "1"

    def kill(self) -> None:
        if self.control is not None:
            self.control.kill()
            self.control.wait()
        self.run("kill-server", check=False)
        if self.socket is not None:
            self.socket.unlink(missing_ok=True)  # tmux leaves it behind


def sched(pid: int) -> tuple[float, float]:
    """Seconds every live thread of ``pid`` ran, and waited runnable for a CPU
    (``/proc/PID/task/*/schedstat``; zeros without it)."""
    ran = waited = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0, 0.0
    for task in tasks:
        try:
            fields = (task / "schedstat").read_text().split()
            ran += int(fields[0])
            waited += int(fields[1])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended
    return ran / 1e9, waited / 1e9


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# ------------------------------------------------------------------ screens

def wait_for(tmux: Tmux, done: Callable[[str], bool], timeout: float,
             what: str) -> tuple[float, str]:
    """Poll the screen until ``done(screen)``; (perf_counter time seen, screen)."""
    end = time.perf_counter() + timeout
    while True:
        screen = tmux.screen(styled=False)
        now = time.perf_counter()
        if done(screen):
            return now, screen
        if now > end or tmux.dead():
            raise RuntimeError(f"timed out waiting for {what}; the screen:\n"
                               f"{tmux.screen(styled=False)}")
        time.sleep(0.05)  # spare the CPU the view is loading with


@dataclass(frozen=True)
class Polling:
    quiet: float
    """The screen is stable once unchanged this long (s)."""
    timeout: float
    """How long a key has to change the screen (s)."""
    gap: float
    """Sleep between two polls (s): a tight loop would keep the tmux server and this
    process busy, and on a small machine take CPU from the viewer."""


def wait_stable(tmux: Tmux, poll: Polling, timeout: float = 30.0) -> str:
    """Poll until the screen is unchanged for ``poll.quiet`` s; that screen."""
    screen = tmux.screen()
    changed = time.perf_counter()
    end = changed + timeout
    while True:
        now = time.perf_counter()
        if now - changed >= poll.quiet:
            return screen
        if now > end:
            raise RuntimeError("the screen never settled")
        time.sleep(poll.gap)
        current = tmux.screen()
        if current != screen:
            screen, changed = current, time.perf_counter()


def status_line(screen: str) -> str:
    """The status bar: the line with the frame count (or '' before it is drawn)."""
    return next((ln for ln in screen.splitlines() if FRAMES.search(ln)), "")


def frame_count(screen: str) -> int | None:
    m = FRAMES.search(status_line(screen))
    return int(m.group(1).replace(",", "")) if m else None


@dataclass
class Loading:
    first_rows: float
    indexed: float
    loaded: float
    frames: int


def wait_loaded(tmux: Tmux, t0: float, frames: int | None, timeout: float) -> Loading:
    """Times (from ``t0``) to the first rows, the full count and ``(loaded)``."""
    seen_rows, _ = wait_for(tmux, lambda s: ROW.search(s) is not None, timeout, "first rows")

    def indexed(screen: str) -> bool:
        count = frame_count(screen)
        if "indexing" in status_line(screen) or count is None:
            return False
        return frames is None or count >= frames

    seen_indexed, _ = wait_for(tmux, indexed, timeout, "the full frame count")
    seen_loaded, screen = wait_for(tmux, lambda s: "(loaded)" in status_line(s),
                                   timeout, "(loaded)")
    return Loading(seen_rows - t0, seen_indexed - t0, seen_loaded - t0,
                   frame_count(screen) or 0)


# -------------------------------------------------------------------- keys

@dataclass
class Step:
    label: str
    key: str
    """A tmux key name (``send-keys``)."""
    expect: str = ""
    """Text on screen once the key has done its work (a modal screen's own text)."""
    gone: str = ""
    """Text no longer on screen then (the modal screen closed)."""

    def shown(self, screen: str) -> bool:
        text = SGR.sub("", screen)
        return self.expect in text and not (self.gone and self.gone in text)


@dataclass
class Case:
    steps: list[Step]
    setup: list[str] = field(default_factory=list)
    """Keys pressed first, unmeasured."""
    repeat: int | None = None


@dataclass
class Press:
    first: float | None
    """Seconds to the first changed screen (None: no change within the timeout)."""
    settled: float | None
    """Seconds to the last change."""
    cpu: float
    """Seconds the viewer ran, from the press to the settled screen."""
    waited: float
    """Seconds its threads waited for a CPU meanwhile (runnable, not running)."""


def cases(repeat: int) -> list[Case]:
    stream = "request headers"  # ui/screens/stream.py stream_text
    state = "(h2, "  # ui/screens/state.py: "connection #1 client → target (h2, open)"
    return [
        Case([Step("down", "Down")]),
        Case([Step("up", "Up")]),
        Case([Step("page down", "NPage")]),
        Case([Step("page up", "PPage")]),
        Case([Step("end", "End"), Step("home", "Home")]),
        # No findings in this capture: the first press shows "no more findings" (at
        # the next 10 Hz tick), the next ones change nothing.
        Case([Step("n (next finding)", "n")], repeat=max(1, repeat // 3)),
        # Row 4 is the first request's HEADERS (stream 1): stream 0 has no stream view.
        Case([Step("s (open stream view)", "s", stream),
              Step("q (close stream view)", "q", gone=stream)],
             setup=["Home", "Down", "Down", "Down", "Down"]),
        Case([Step("w (open flow control)", "w", state),
              Step("q (close flow control)", "q", gone=state)]),
        Case([Step("l (show lanes)", "l"), Step("l (hide lanes)", "l")]),
    ]


def press(tmux: Tmux, pid: int, step: Step, poll: Polling) -> tuple[Press, str]:
    """Press a key on a stable screen; its latencies and the settled screen.

    Settled means unchanged for ``poll.quiet`` s and, for a step that opens or
    closes a screen, with its text shown (or gone): a screen built in several
    repaints may pause longer than that between them.
    """
    before = wait_stable(tmux, poll)
    ran0, waited0 = sched(pid)
    t0 = time.perf_counter()
    tmux.send(step.key)
    screen = before
    first = last = None
    changed = t0
    while True:
        current = tmux.screen()
        now = time.perf_counter()
        if current != screen:
            screen, changed, last = current, now, now - t0
            if first is None:
                first = last
        if first is None:
            if now - t0 > poll.timeout:
                break
        elif ((now - changed >= poll.quiet and step.shown(screen))
              or now - t0 > 10 * poll.timeout):
            break
        time.sleep(poll.gap)
    ran, waited = sched(pid)
    return Press(first, last, ran - ran0, waited - waited0), screen


def run_case(tmux: Tmux, pid: int, case: Case, repeat: int,
             poll: Polling) -> dict[str, list[Press]]:
    for key in case.setup:
        press(tmux, pid, Step(key, key), poll)
    out: dict[str, list[Press]] = {s.label: [] for s in case.steps}
    for _ in range(case.repeat or repeat):
        for step in case.steps:
            result, screen = press(tmux, pid, step, poll)
            out[step.label].append(result)
            if not step.shown(screen):
                # A modal screen left open (or not opened) would skew every later
                # key, and q on the main screen quits.
                raise RuntimeError(f"{step.label!r}: expected {step.expect!r} on screen"
                                   f" and {step.gone!r} not; the screen:\n{SGR.sub('', screen)}")
    return out


def baseline(tmux: Tmux, key: str, repeat: int, poll: Polling) -> tuple[list[float], int]:
    """An unbound key: ``send-keys`` + one ``capture-pane`` (s), and how often the screen
    changed anyway within 0.3 s."""
    floor: list[float] = []
    changed = 0
    for _ in range(repeat):
        before = wait_stable(tmux, poll)
        t0 = time.perf_counter()
        tmux.send(key)
        screen = tmux.screen()
        floor.append(time.perf_counter() - t0)
        end = t0 + 0.3
        while screen == before and time.perf_counter() < end:
            time.sleep(poll.gap)
            screen = tmux.screen()
        changed += screen != before
    return floor, changed


def poll_cost(capture: Callable[[], object], n: int = 100) -> list[float]:
    """Seconds per call of ``capture``."""
    out = []
    for _ in range(n):
        a = time.perf_counter()
        capture()
        out.append(time.perf_counter() - a)
    return out


def keys_during_load(tmux: Tmux, timeout: float) -> list[float]:
    """``down`` every 0.3 s while the capture loads: seconds to any change of the
    screen (the status bar's progress counts: it shows the UI is not frozen)."""
    wait_for(tmux, lambda s: frame_count(s) is not None, timeout, "the status bar")
    out: list[float] = []
    end = time.perf_counter() + timeout
    while True:
        before = tmux.screen()
        if "(loaded)" in status_line(SGR.sub("", before)) or time.perf_counter() > end:
            return out
        t0 = time.perf_counter()
        tmux.send("Down")
        while tmux.screen() == before and time.perf_counter() < end:
            time.sleep(0.002)
        out.append(time.perf_counter() - t0)
        print(f"  down at {t0 - tmux.started:5.1f} s: the screen changed after "
              f"{out[-1] * 1000:8.1f} ms", flush=True)
        time.sleep(0.3)


# ------------------------------------------------------------------ report

def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(len(s) * q / 100) - 1))] if s else math.nan


def ms(values: Sequence[float]) -> str:
    if not values:
        return f"{'-':>7} {'-':>7} {'-':>7}"
    return " ".join(f"{pct(values, q) * 1000:7.1f}" for q in (50, 90, 100))


def report(results: dict[str, list[Press]], floor: list[float], floor_changed: int,
           resolution: str) -> None:
    width = max([len(k) for k in results] + [len("z (unbound): floor")]) + 1
    three = f"{'median':>7} {'p90':>7} {'max':>7}"
    two = f"{'median':>7} {'max':>7}"
    print(f"\n{'key':<{width}} {'n':>3} {'no chg':>6}   {'first change (ms)':<23}"
          f"   {'settled (ms)':<23}   {'view CPU (ms)':<15}   {'waited for CPU':<15}")
    print(f"{'':<{width}} {'':>3} {'':>6}   {three}   {three}   {two}   {two}")
    worst: tuple[float, str] = (0.0, "")
    for label, presses in results.items():
        first = [p.first for p in presses if p.first is not None]
        settled = [p.settled for p in presses if p.settled is not None]
        cpu = ms([p.cpu for p in presses]).split()
        waited = ms([p.waited for p in presses]).split()
        print(f"{label:<{width}} {len(presses):>3} {len(presses) - len(first):>6}   "
              f"{ms(first)}   {ms(settled)}   {cpu[0]:>7} {cpu[2]:>7}   "
              f"{waited[0]:>7} {waited[2]:>7}")
        if first:
            worst = max(worst, (pct(first, 90), label))
    print(f"{'z (unbound): floor':<{width}} {len(floor):>3} {floor_changed:>6}   {ms(floor)}"
          "   (send-keys + one capture-pane)")
    print(f"\nresolution: {resolution}")
    firsts = [p.first for ps in results.values() for p in ps if p.first is not None]
    verdict = "met" if worst[0] * 1000 <= TARGET_MS else "NOT met"
    print(f"target ≤ {TARGET_MS:.0f} ms (first change, p90 per key): {verdict} — worst p90 "
          f"{worst[0] * 1000:.1f} ms ({worst[1]}), slowest single press "
          f"{max(firsts, default=0.0) * 1000:.1f} ms")


# -------------------------------------------------------------------- main

def make_capture(path: Path, frames: int) -> int:
    from tests.bench.bench_ui import write_capture

    a = time.monotonic()
    n = write_capture(path, frames)
    print(f"capture: {n:,} frames, {path.stat().st_size / 1e6:.0f} MB, written in "
          f"{time.monotonic() - a:.1f} s -> {path}", flush=True)
    return n


def start_view(tmux: Tmux, path: Path, expected: int | None, conf: Path,
               args: argparse.Namespace) -> int:
    """Start ``h2scope view`` in tmux and wait until it has loaded; its pid."""
    tmux.start(["env", "TERM=xterm-256color", sys.executable, "-m", "proxy", "view",
                str(path)], ROOT, conf)
    pid = tmux.pid()
    size = tmux.pane("#{pane_width}x#{pane_height}")
    print(f"tmux -L {tmux.name}: pane {size}, view pid {pid}", flush=True)
    if not args.spawn:
        tmux.attach()
    note = ""
    if args.during_load:
        lat = keys_during_load(tmux, args.load_timeout)
        print(f"keys during the load: {len(lat)}, to any change {ms(lat)} ms (median p90 max)")
        note = "  (keys pressed meanwhile: these are when the probe saw them)"
    load = wait_loaded(tmux, tmux.started, expected, args.load_timeout)
    print(f"first rows on screen {load.first_rows:6.2f} s{note}\n"
          f"full count on screen {load.indexed:6.2f} s  ({load.frames:,} frames)\n"
          f"(loaded) on screen   {load.loaded:6.2f} s", flush=True)
    return pid


def run_keys(tmux: Tmux, pid: int, args: argparse.Namespace) -> None:
    poll = Polling(args.settle_ms / 1000, args.timeout, args.poll_ms / 1000)
    wait_stable(tmux, Polling(1.0, 0.0, 0.01), timeout=60)
    if args.pause:
        input(f"view pid {pid}: press Enter to start the keys ")
    method = "a tmux process per call"
    if not args.spawn:
        spawned = poll_cost(lambda: tmux.run("capture-pane", "-p", "-e", "-t", tmux.target))
        print(f"capture-pane as a tmux process: {ms(spawned)} ms (median p90 max); "
              "polling through a control-mode client instead", flush=True)
        method = "control-mode client"
    cost = poll_cost(tmux.screen)
    results: dict[str, list[Press]] = {}
    for case in cases(args.repeat):
        if args.keys and not any(s.label.startswith(k) for s in case.steps
                                 for k in args.keys.split(",")):
            continue
        results.update(run_case(tmux, pid, case, args.repeat, poll))
    floor, floor_changed = baseline(tmux, "z", args.repeat, poll)
    report(results, floor, floor_changed,
           f"one poll = capture-pane -p -e ({method}) {ms(cost)} ms (median p90 max)"
           f" + {args.poll_ms:g} ms sleep")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--capture", metavar="FILE", type=Path,
                    help="reuse this capture (written with --keep, or any capture)")
    ap.add_argument("--keep", metavar="FILE", type=Path,
                    help="write the capture here and keep it (for --capture next time)")
    ap.add_argument("--repeat", type=int, default=30,
                    help="presses per key (n: a third, the next ones change nothing)")
    ap.add_argument("--keys", metavar="LABELS",
                    help="only the keys whose labels start so (comma-separated: down,s)")
    ap.add_argument("--settle-ms", type=float, default=50.0,
                    help="the screen is stable once unchanged this long")
    ap.add_argument("--poll-ms", type=float, default=2.0,
                    help="sleep between polls (0: a tight loop)")
    ap.add_argument("--timeout", type=float, default=2.0,
                    help="seconds a key has to change the screen")
    ap.add_argument("--load-timeout", type=float, default=600.0)
    ap.add_argument("--spawn", action="store_true",
                    help="poll with a tmux process per capture-pane (coarser, and it takes"
                    " CPU from the viewer) instead of a control-mode client")
    ap.add_argument("--during-load", action="store_true",
                    help="also press down every 0.3 s while the capture loads")
    ap.add_argument("--pause", action="store_true",
                    help="wait for Enter before the keys (to attach a profiler)")
    args = ap.parse_args()
    # A kill (timeout(1), a CI job cancelled) must run the finally below too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="h2scope-keys-") as tmp:
        expected: int | None = None
        if args.capture:
            path = args.capture.resolve()
        else:
            path = (args.keep or Path(tmp) / "bench.h2c").resolve()
            expected = make_capture(path, args.frames)
        tmux = Tmux(f"h2scope-bench-keys-{os.getpid()}-{time.monotonic_ns()}")
        try:
            print(f"load average {loadavg()}", flush=True)
            pid = start_view(tmux, path, expected, Path(tmp) / "tmux.conf", args)
            run_keys(tmux, pid, args)
            print(f"load average {loadavg()}")
        finally:
            tmux.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
