"""UI scale benchmark: ``h2scope view`` of a 1,000,000-frame capture.

A plain script (not collected by pytest)::

    python tests/bench/bench_ui.py [--frames 1000000] [--keep FILE]

It writes a browser-like capture (one long connection: request and response
HEADERS from warm HPACK encoders, 1 KiB and 16 KiB DATA, a connection
WINDOW_UPDATE per response), opens it in the real app (Textual's headless
driver, 160x48) and measures, against the targets of issue 6:

* time to first rows on screen, and to the capture fully read (≤ 10 s);
* filter time over every frame, for column filters, a header filter, a
  stream-context filter and a bare word (≤ 2 s);
* key-press latency: press → screen updated, for cursor keys, page down and
  end on the full table (≤ 100 ms), next to the same round trip for an
  unbound key (what Pilot and the refresh cycle cost by themselves);
* live ingest: frames per second the UI thread takes in from the bus sink
  (20,000 frames/s must leave it mostly idle);
* memory: the frame table's columns per frame, the process's peak RSS (which
  counts the pages of the memory-mapped capture it touched) and its anonymous
  memory (the heap: columns, header lists, stream records, connection state).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import struct
import sys
import tempfile
import time
from pathlib import Path

import hpack

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.capture.writer import CaptureWriter
from proxy.filter import compile_filter
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from ui.app import H2ScopeApp
from ui.launch import view_app
from ui.model.filtering import run_filter

C2S, S2C = Direction.C2S, Direction.S2C
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36"
SMALL, LARGE = b"s" * 1024, b"L" * 16384


def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, ftype, flags, sid) + payload


def write_capture(path: Path, frames: int) -> int:
    """A long browser-like h2 connection of about ``frames`` frames; returns the count."""
    req, resp = hpack.Encoder(), hpack.Encoder()
    w = CaptureWriter(path, autoflush=False, buffer_limit=16 << 20)
    t = 1000.0
    w.connection(1, {"client": {"ip": "127.0.0.1", "port": 50000}, "mode": "regular",
                     "target": "www.example.com:443", "protocol": "h2",
                     "server": {"host": "www.example.com", "port": 443}}, t=t)
    w.raw(1, C2S, CONNECTION_PREFACE, t=t)
    w.frame(1, C2S, frame(4, 0, 0, struct.pack(">HL", 4, 1 << 30)), t=t)
    w.frame(1, S2C, frame(4, 0, 0, b""), t=t)
    w.frame(1, S2C, frame(4, 1, 0, b""), t=t)
    w.frame(1, C2S, frame(4, 1, 0, b""), t=t)
    n = 4
    sid = 1
    while n < frames:
        t += 0.0001
        status = "404" if sid % 97 == 0 else "200"
        hreq = req.encode([(":method", "GET"), (":scheme", "https"),
                           (":authority", "www.example.com"), (":path", f"/asset/{sid}.js"),
                           ("user-agent", UA), ("accept", "*/*")])
        w.frame(1, C2S, frame(1, 5, sid, hreq), t=t)
        hresp = resp.encode([(":status", status), ("content-type", "application/javascript"),
                             ("etag", f'"{sid:x}"'), ("cache-control", "max-age=60")])
        w.frame(1, S2C, frame(1, 4, sid, hresp), t=t)
        body = [LARGE, LARGE, SMALL] if (sid // 2) % 10 == 0 else [SMALL, SMALL]
        for i, chunk in enumerate(body):
            w.frame(1, S2C, frame(0, 1 if i == len(body) - 1 else 0, sid, chunk), t=t)
        size = sum(len(b) for b in body)
        w.frame(1, C2S, frame(8, 0, 0, struct.pack(">L", size)), t=t)
        n += 3 + len(body)
        sid += 2
    w.close(fsync=False)
    return n


def rss_anon() -> int:
    """RssAnon from /proc (kB): the process's own memory, not the mapped capture."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def _measure(app: H2ScopeApp, out: dict[str, float]) -> None:
    t0 = time.monotonic()
    async with app.run_test(size=(160, 48)) as pilot:
        while app.first_rows_at is None or not app.timeline.row_count():
            await pilot.pause(0.01)
        out["first rows (s)"] = time.monotonic() - t0
        while not app.session.loaded:
            await pilot.pause(0.05)
        app.tick()
        out["fully loaded (s)"] = time.monotonic() - t0
        await pilot.pause(0.2)
        lat: list[float] = []
        for key in ["down"] * 20 + ["pagedown"] * 10 + ["end", "home", "up"]:
            a = time.monotonic()
            await pilot.press(key)
            await pilot.pause()
            lat.append(time.monotonic() - a)
        lat.sort()
        out["key press median (ms)"] = lat[len(lat) // 2] * 1000
        out["key press max (ms)"] = lat[-1] * 1000
        # The same round trip for a key bound to nothing: what the test harness
        # (Pilot) and the screen refresh cost by themselves.
        base: list[float] = []
        for _ in range(15):
            a = time.monotonic()
            await pilot.press("z")
            await pilot.pause()
            base.append(time.monotonic() - a)
        base.sort()
        out["unbound key (harness baseline) median (ms)"] = base[len(base) // 2] * 1000
        a = time.monotonic()
        app.set_filter("type:HEADERS dir:s2c")
        while app._filtering:
            await pilot.pause(0.01)
        out["filter in the UI, to rows shown (s)"] = time.monotonic() - a
        out["frames shown by that filter"] = app.timeline.row_count()
        await pilot.press("q")


def live_ingest(path: Path, frames: int = 200_000) -> float:
    """Frames per second the live path (LiveFeed → ingest → Session) takes in."""
    from itertools import islice

    from proxy.capture.replay import replay
    from proxy.events import Batch
    from ui.model.live import LiveFeed, ingest
    from ui.model.session import Session
    from ui.model.table import LiveFrames

    feed = LiveFeed(maxsize=10**7)
    for item in islice(replay(path), frames):
        if item.events:
            feed.put(Batch(conn_id=1, t=0.0, events=item.events))
    store = LiveFrames()
    session = Session(store)
    a = time.monotonic()
    while feed.batches:
        ingest(session, store, feed, limit=2000)  # what one UI tick takes at most
    return len(session.table) / (time.monotonic() - a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="FILE", help="write the capture here and keep it")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.keep) if args.keep else Path(tmp.name) / "bench.h2c"
    a = time.monotonic()
    n = write_capture(path, args.frames)
    print(f"capture: {n:,} frames, {os.path.getsize(path) / 1e6:.0f} MB, written in "
          f"{time.monotonic() - a:.1f} s", file=sys.stderr)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results: dict[str, float] = {}
    app = view_app(path)
    asyncio.run(_measure(app, results))
    session = app.session
    table = session.table
    results["frames in the table"] = len(table)
    results["table columns (bytes/frame)"] = table.memory_bytes() / max(1, len(table))
    results["peak RSS growth (MB, file pages of the mapped capture included)"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    results["anonymous memory now (MB, the heap: without the mapped file)"] = rss_anon() / 1024
    for text in ("type:HEADERS dir:s2c", "stream:1001-2001", "len>10000 or finding:any",
                 "header:etag", "status:404", "max-age"):
        gc.collect()
        a = time.monotonic()
        rows = run_filter(session, compile_filter(text))
        results[f"filter {text!r} (s)"] = time.monotonic() - a
        results[f"  rows matching {text!r}"] = len(rows or ())
    if app.capture is not None:
        app.capture.close()
    results["live ingest (frames/s the UI thread absorbs)"] = live_ingest(path)
    width = max(len(k) for k in results)
    print(f"{'measure':<{width}}  value")
    for k, v in results.items():
        print(f"{k:<{width}}  {v:,.3f}" if isinstance(v, float) and not v.is_integer()
              else f"{k:<{width}}  {int(v):,}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
