"""Capture benchmark: write speed, index load speed and memory, observer replay speed.

A plain script (not collected by pytest)::

    python tests/bench/bench_capture.py [--frames 1000000] [--dir DIR] [--keep]

It generates a browser-like connection — request HEADERS and response
HEADERS from warm HPACK encoders (a real cookie, a real user agent, varying
paths and ETags), DATA of 1 KiB (most responses) and 16 KiB (a few large
ones), a connection WINDOW_UPDATE per response — and measures:

* write: ``CaptureWriter.frame`` per frame, including flushes and the final
  fsync (frame generation is done in batches outside the timed part);
* index: ``CaptureIndex.build`` (CRC-verified, and without verification),
  and the memory the index holds per frame (tracemalloc, payloads excluded
  since they stay in the file);
* stream: ``CaptureReader.records`` over every record;
* replay: ``replay`` — reading plus running the observer over every frame.
"""

from __future__ import annotations

import argparse
import gc
import os
import struct
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import hpack

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.capture.index import CaptureIndex
from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved

C2S, S2C = Direction.C2S, Direction.S2C
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/126.0.0.0 Safari/537.36")
COOKIE = "session=9f8e7d6c5b4a39281706f5e4d3c2b1a0; theme=dark; _ga=GA1.2.1234567890.1700000000"
SMALL = b"s" * 1024
LARGE = b"L" * 16384


def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, ftype, flags, sid) + payload


class Browser:
    """Generates frames of one long browser-like connection, in batches."""

    def __init__(self) -> None:
        self.req = hpack.Encoder()
        self.resp = hpack.Encoder()
        self.sid = 1
        self.n = 0

    def opening(self) -> list[tuple[Direction, bytes]]:
        return [(C2S, CONNECTION_PREFACE), (C2S, frame(4, 0, 0, b"")), (S2C, frame(4, 0, 0, b"")),
                (S2C, frame(4, 1, 0, b"")), (C2S, frame(4, 1, 0, b""))]

    def batch(self, frames: int) -> list[tuple[Direction, bytes]]:
        out: list[tuple[Direction, bytes]] = []
        while len(out) < frames:
            i = self.n
            self.n += 1
            sid = self.sid
            self.sid += 2
            large = i % 20 == 0  # 5 % of responses are 2 x 16 KiB, the rest 1 KiB
            kind = ("js", "css", "png", "woff2", "json")[i % 5]
            req = self.req.encode([
                (":method", "GET"), (":scheme", "https"), (":authority", "www.example.com"),
                (":path", f"/static/{kind}/asset-{i % 700}.{kind}?v={i % 13}"),
                ("user-agent", UA), ("accept", "*/*"), ("accept-encoding", "gzip, deflate, br"),
                ("accept-language", "en-US,en;q=0.9"), ("cookie", COOKIE),
                ("sec-fetch-dest", "script"), ("sec-fetch-mode", "no-cors"),
                ("referer", "https://www.example.com/")])
            out.append((C2S, frame(1, 0x5, sid, req)))
            body = 32768 if large else 1024
            resp = self.resp.encode([
                (":status", "200"), ("content-type", f"application/{kind}"),
                ("content-length", str(body)), ("cache-control", "public, max-age=31536000"),
                ("etag", f'"{i:08x}"'), ("date", "Mon, 01 Jul 2024 12:00:00 GMT"),
                ("server", "bench")])
            out.append((S2C, frame(1, 0x4, sid, resp)))
            if large:
                out.append((S2C, frame(0, 0, sid, LARGE)))
                out.append((S2C, frame(0, 1, sid, LARGE)))
            else:
                out.append((S2C, frame(0, 1, sid, SMALL)))
            out.append((C2S, frame(8, 0, 0, struct.pack(">L", body))))
        return out


def human(n: float) -> str:
    return f"{n:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the capture")
    ap.add_argument("--keep", action="store_true", help="keep the capture file")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="h2scope-bench-", dir=args.dir))
    path = workdir / "bench.h2scope"
    gen = Browser()
    print(f"capture benchmark: {human(args.frames)} frames -> {path}")

    # ------------------------------------------------------------- write
    writer = CaptureWriter(path, config={"bench": True})
    writer.connection(1, {"protocol": "h2", "client": {"ip": "127.0.0.1", "port": 50000}},
                      t=0.0)
    t = 0.0
    written = 0
    write_time = 0.0
    for direction, data in gen.opening():
        if data == CONNECTION_PREFACE:
            writer.raw(1, direction, data, t=t)
        else:
            writer.frame(1, direction, data, t=t)
            written += 1
    while written < args.frames:
        batch = gen.batch(min(50_000, args.frames - written))
        batch = batch[:args.frames - written]
        frame_ = writer.frame
        start = time.perf_counter()
        for direction, data in batch:
            t += 0.00001
            frame_(1, direction, data, t=t, wall=1.7e9 + t)
        write_time += time.perf_counter() - start
        written += len(batch)
    start = time.perf_counter()
    writer.close_connection(1, t=t, closed_by="client")
    writer.close()
    write_time += time.perf_counter() - start
    size = path.stat().st_size
    print(f"write:   {human(written / write_time)} frames/s, "
          f"{size / write_time / 1e6:,.0f} MB/s ({size / 1e6:,.0f} MB in {write_time:.2f} s, "
          f"{(size / written):.0f} B/frame on disk incl. payload)")

    # ------------------------------------------------------------- index
    gc.collect()
    start = time.perf_counter()
    with CaptureIndex.build(path) as index:
        index_time = time.perf_counter() - start
        n = len(index)
        assert n == written, (n, written)
        column_bytes = index.memory_bytes()
    start = time.perf_counter()
    with CaptureIndex.build(path, verify=False) as index:
        fast_time = time.perf_counter() - start
    print(f"index:   {human(n / index_time)} frames/s with CRC check ({index_time:.2f} s), "
          f"{human(n / fast_time)} frames/s without ({fast_time:.2f} s)")
    gc.collect()
    tracemalloc.start()
    with CaptureIndex.build(path, verify=False) as index:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # Touch one payload to show on-demand access works.
        assert index.frame(n // 2).length == index.length[n // 2]
    print(f"memory:  index holds {current / n:.1f} B/frame ({current / 1e6:.1f} MB; columns "
          f"{column_bytes / n:.1f} B/frame), peak while building {peak / n:.1f} B/frame")

    # ------------------------------------------------------------ stream
    start = time.perf_counter()
    with CaptureReader(path) as reader:
        records = sum(1 for _ in reader.records())
    stream_time = time.perf_counter() - start
    print(f"stream:  {human(records / stream_time)} records/s ({stream_time:.2f} s, "
          f"{size / stream_time / 1e6:,.0f} MB/s)")

    # ------------------------------------------------------------ replay
    start = time.perf_counter()
    decoded = 0
    findings = 0
    for item in replay(path):
        for ev in item.events:
            if type(ev) is FrameObserved:
                decoded += 1
                findings += len(ev.findings)
    replay_time = time.perf_counter() - start
    assert decoded == written, (decoded, written)
    print(f"replay:  {human(decoded / replay_time)} frames/s read + decoded by the observer "
          f"({replay_time:.2f} s, {findings} findings)")
    if args.keep:
        print(f"kept {path}")
    else:
        os.unlink(path)
        os.rmdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
