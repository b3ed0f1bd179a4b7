"""Is the live UI responsive while traffic flows? ``h2scope run`` with its UI at a
fixed frame rate.

A plain script (not collected by pytest)::

    python tests/bench/bench_live_ui.py [--rates 5000,20000,40000] [--seconds 8]

For each rate it starts the real live app (``ui.launch.live_app``: the proxy in
its child process recording the private backing capture, the UI following
that file, Textual's headless driver at 160x48) in reverse mode in front of
``nghttpd``, and drives ``h2load`` at a fixed request rate (``--rps``; 1 KiB
responses, 10 connections), so that about RATE frames per second go through.
Meanwhile it measures, on the UI's own event loop:

* **loop lag**: a probe that asks to wake up every 10 ms and records how late
  it woke — what a key press waits before its handler even starts;
* **key handling**: ``up``, ``down``, ``s``/``q`` (stream view), ``w``/``q``
  (flow control), each posted to the app as the terminal driver would; the
  time until the app has acted on it (cursor moved, screen shown or closed),
  polled every millisecond — the repaint follows at the next refresh;
* the frames per second that reached the UI's view (nothing is dropped: the
  view falls behind the proxy's capture instead). While keys come, the view
  decodes only in small slices (input first, ``ui/model/follow.py``), so
  ``reached`` is low with keys; ``--no-keys`` shows what the view keeps up with.

The issue's target: live ingest of 20,000 frames/s keeps the UI responsive
(keys ≤ 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_proxy as bp

from proxy.config import Config, ListenConfig, UpstreamConfig
from tests.helpers.tls_files import make_self_signed
from ui.launch import live_app
from ui.screens.state import StateScreen
from ui.screens.stream import StreamScreen

FRAMES_PER_REQUEST = 3.3
"""HEADERS each way and one DATA, plus the odd WINDOW_UPDATE (h2load, 1 KiB)."""
KEYS: tuple[tuple[str, str, Callable[[Any, Any], bool]], ...] = (
    ("up", "up", lambda app, before: app.timeline.cursor < before[0]),
    ("down", "down", lambda app, before: app.timeline.cursor > before[0]),
    ("s (stream view)", "s", lambda app, before: isinstance(app.screen, StreamScreen)),
    ("q (close stream)", "q", lambda app, before: app.screen is app.main),
    ("w (flow control)", "w", lambda app, before: isinstance(app.screen, StateScreen)),
    ("q (close flow)", "q", lambda app, before: app.screen is app.main),
)
"""(label, key, whether the app has handled it, given (cursor, screen) before)."""


async def press(app: Any, key: str, handled: Callable[[Any, Any], bool],
                timeout: float = 5.0) -> float:
    """Seconds from posting ``key`` to the app (as the terminal driver does) until
    ``handled`` says the app acted on it, polled every millisecond on the app's
    loop. (Pilot's press/pause wait for the app to be idle, which under live
    traffic it never is: they would time the wait, not the key.)"""
    before = (app.timeline.cursor, app.screen)
    t0 = time.perf_counter()
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    app._driver.send_message(event)  # what a terminal driver does with a key read
    while not handled(app, before):
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"key {key!r} not handled within {timeout} s (cursor "
                               f"{before[0]} -> {app.timeline.cursor}, screen {app.screen}, "
                               f"focused {app.focused}, message {app.message!r}, rows "
                               f"{app.timeline.row_count()}, follow {app.timeline.follow})")
        await asyncio.sleep(0.001)
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(len(s) * q / 100) - 1))] if s else math.nan


def fmt(values: list[float]) -> str:
    return " ".join(f"{pct(values, q) * 1000:7.1f}" for q in (50, 90, 99, 100))


async def probe_lag(stop: asyncio.Event, out: list[float], every: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(every)
        out.append(max(0.0, loop.time() - t - every))


async def measure(rate: int, seconds: float, upstream: int, ca: Path, work: Path, *,
                  with_keys: bool = True) -> dict[str, Any]:
    config = Config(listen=ListenConfig(port=0), confdir=work / "conf",
                    modes=(f"reverse:https://127.0.0.1:{upstream}",),
                    upstream=UpstreamConfig(ca_file=ca))
    app = live_app(config)
    port = int(app.listen.rsplit(":", 1)[1])
    result: dict[str, Any] = {"rate": rate}
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        clients = 10
        rps = max(1, round(rate / FRAMES_PER_REQUEST / clients))
        load = subprocess.Popen(
            ["h2load", "-c", str(clients), "-m", "10", "--rps", str(rps),
             "-D", f"{round(seconds * 1000) + 1000}ms", f"https://127.0.0.1:{port}/1k"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while app.timeline.cursor < 1000:  # traffic flowing, followed on screen
                if time.monotonic() > deadline or load.poll() is not None:
                    load.kill()
                    out = load.communicate()[0].decode(errors="replace")
                    raise RuntimeError(f"no traffic through the proxy; h2load said:\n{out}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            stop = asyncio.Event()
            lags: list[float] = []
            prober = asyncio.create_task(probe_lag(stop, lags))
            n0, t0 = len(app.session.table), time.monotonic()
            keys: dict[str, list[float]] = {label: [] for label, _, _ in KEYS}
            end = t0 + seconds
            while time.monotonic() < end:
                if not with_keys:
                    await asyncio.sleep(0.1)
                    continue
                for label, key, handled in KEYS:
                    if key == "s":  # the stream view needs a frame of a stream selected
                        tl, t = app.timeline, app.session.table
                        i = next(i for i in range(tl.row_count() - 1, -1, -1)
                                 if t.stream[tl.row_at(i) or 0])
                        tl.move_to(i)
                    took = await press(app, key, handled)
                    keys[label].append(took)
                    await asyncio.sleep(0.1)
            frames = len(app.session.table) - n0
            elapsed = time.monotonic() - t0
            stop.set()
            await prober
            result.update(lags=lags, keys=keys, fps=frames / elapsed)
        finally:
            load.kill()
            load.wait(10)
        await pilot.press("q")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="5000,20000,40000",
                    help="frames per second to drive, comma-separated")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--no-keys", action="store_true",
                    help="only the loop-lag probe (the throughput reached without key presses)")
    args = ap.parse_args()
    bp.need("h2load", "nghttp2-client")
    with tempfile.TemporaryDirectory(prefix="h2scope-bench-") as tmp:
        work = Path(tmp)
        cert = make_self_signed(work / "cert")
        docroot = work / "www"
        docroot.mkdir()
        (docroot / "1k").write_bytes(os.urandom(1024))
        with bp.nghttpd(docroot, cert.cert, cert.key) as upstream:
            results = [asyncio.run(measure(int(r), args.seconds, upstream, cert.cert, work,
                                           with_keys=not args.no_keys))
                       for r in args.rates.split(",")]
    print(f"\n{'driven':>8} {'reached':>9}   "
          f"{'loop lag (ms): p50     p90     p99     max':<44}")
    for r in results:
        print(f"{r['rate']:>8,} {r['fps']:>9,.0f}   {fmt(r['lags'])}")
    if args.no_keys:
        return 0
    print("\nkey → acted on (ms: p50 p90 p99 max)")
    for r in results:
        print(f"  at {r['rate']:,} frames/s driven:")
        for key, times in r["keys"].items():
            print(f"    {key:<18} {fmt(times)}   (n={len(times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
