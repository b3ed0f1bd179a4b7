"""Observer throughput on a synthetic browser-like workload.

Run: ``python tests/bench/bench_observer.py [--requests N]``

Builds the workload once with Python's ``h2`` (real client and server
connections): request/response header blocks of ~15 fields with a warm
dynamic table and a different ``:path`` per request, DATA frames of 16 KB and
1 KB, WINDOW_UPDATEs. Then it times, on the same bytes in the same run:

* ``hpack.Decoder`` alone on the header blocks (the reference),
* ``AnnotatedDecoder`` alone on the same blocks,
* the whole ``ConnectionObserver`` (framing, annotation, connection model) on
  the header-only traffic, and on DATA-heavy traffic;
* and, on repeated requests as h2load (or a gRPC channel) sends them — the
  same headers every time, so every block after the first is indexed fields
  that leave the table as it is — ``hpack.Decoder`` on the two blocks of each
  exchange against the observer on everything.

Figures are ratios measured in one run; absolute numbers vary with the machine.
Each figure is the best of ``--repeat`` runs. On a shared machine, ``--clock cpu``
times with this process's CPU time (``time.process_time``) so that other
processes' load does not count against the observer; ``wall`` is the default.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from hyperframe import frame as hf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved
from proxy.observe.hpack_annotated import AnnotatedDecoder, clear_huffman_cache

REQUEST_FIELDS = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "www.example.com"),
    (":path", "/"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Safari/537.36",
    ),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"),
    ("accept-language", "en-US,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("sec-ch-ua", '"Chromium";v="156", "Not=A?Brand";v="24"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", '"Linux"'),
    ("sec-fetch-site", "same-origin"),
    ("sec-fetch-mode", "no-cors"),
    ("sec-fetch-dest", "image"),
    ("referer", "https://www.example.com/index.html"),
    ("cookie", "session=4f9a2c1b7e; prefs=dark; _ga=GA1.2.12345.67890"),
]
RESPONSE_FIELDS = [
    (":status", "200"),
    ("content-type", "image/png"),
    ("content-length", "1024"),
    ("cache-control", "public, max-age=31536000, immutable"),
    ("server", "nginx/1.25.3"),
    ("date", "Sun, 22 Nov 2026 10:00:00 GMT"),
    ("etag", '"5f2b-63a1"'),
    ("last-modified", "Tue, 01 Sep 2026 08:00:00 GMT"),
    ("accept-ranges", "bytes"),
    ("vary", "accept-encoding"),
    ("x-content-type-options", "nosniff"),
    ("strict-transport-security", "max-age=63072000"),
    ("age", "17"),
    ("x-cache", "HIT"),
]


def _pair() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, validate_inbound_headers=False)
    )
    client.initiate_connection()
    server.initiate_connection()
    return client, server


def build_traffic(requests: int, body: bytes, *, bulk: bool = False,
                  read_size: int = 65536) -> list[tuple[Direction, bytes]]:
    """Chunks of wire bytes, by direction, for ``requests`` exchanges.

    ``bulk``: the client opens its windows wide at the start, so the server
    sends each body in one go, and the relay reads ``read_size`` bytes at a
    time (cut anywhere, as TLS reads cut them): many whole DATA frames of one
    stream per chunk, as under W2/W3 of ``docs/benchmarks.md``.
    """
    client, server = _pair()
    chunks: list[tuple[Direction, bytes]] = []
    if bulk:
        client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        client.increment_flow_control_window(2**31 - 1 - 65535)

    def pump() -> None:
        for _ in range(4):
            out = client.data_to_send()
            if out:
                chunks.append((Direction.C2S, out))
                server.receive_data(out)
            back = server.data_to_send()
            if back:
                chunks.append((Direction.S2C, back))
                client.receive_data(back)
            if not out and not back:
                return

    pump()
    for i in range(requests):
        sid = client.get_next_available_stream_id()
        req = list(REQUEST_FIELDS)
        req[3] = (":path", f"/static/img/sprite-{i:06d}.png?v={i * 7919 % 100000}")
        client.send_headers(sid, req, end_stream=True)
        pump()
        # Every resource has its own validators: responses are not all alike.
        resp = list(RESPONSE_FIELDS)
        resp[2] = ("content-length", str(len(body)))
        resp[6] = ("etag", f'"{i * 2654435761 % 2**32:08x}-{i:05x}"')
        modified = f"Tue, {1 + i % 28:02d} Sep 2026 {i % 24:02d}:{i % 60:02d}:00 GMT"
        resp[7] = ("last-modified", modified)
        # A header-only exchange is two header blocks: no empty DATA frame to end it.
        server.send_headers(sid, resp, end_stream=not body)
        if body and bulk:
            for off in range(0, len(body), 16384):
                server.send_data(sid, body[off : off + 16384],
                                 end_stream=off + 16384 >= len(body))
            out = server.data_to_send()
            chunks.extend((Direction.S2C, out[i : i + read_size])
                          for i in range(0, len(out), read_size))
            client.receive_data(out)
        elif body:
            for off in range(0, len(body), 16384):
                piece = body[off : off + 16384]
                server.send_data(sid, piece)
                pump()
                client.increment_flow_control_window(len(piece))  # a WINDOW_UPDATE per DATA
                client.increment_flow_control_window(len(piece), stream_id=sid)
                pump()
            server.end_stream(sid)
        pump()
    return chunks


C2S, S2C = Direction.C2S, Direction.S2C


def build_repeated(n: int) -> tuple[list[tuple[Direction, bytes]], dict[int, list[bytes]]]:
    """What h2load sends and nghttpd answers (W1 of the proxy benchmark): the same
    request each time, a response whose ``date`` changes once per 5,000. After the
    first exchange the request blocks are all indexed fields, the responses so
    except once per new date. Returns the chunks and each direction's blocks."""
    req, resp = hpack.Encoder(), hpack.Encoder()
    chunks: list[tuple[Direction, bytes]] = [
        (C2S, CONNECTION_PREFACE + hf.SettingsFrame(0).serialize()),
        (S2C, hf.SettingsFrame(0).serialize()),
        (C2S, hf.SettingsFrame(0, flags=["ACK"]).serialize()),
        (S2C, hf.SettingsFrame(0, flags=["ACK"]).serialize())]
    blocks: dict[int, list[bytes]] = {0: [], 1: []}
    body = b"x" * 1024
    for i in range(n):
        sid = 1 + 2 * i
        request = req.encode([(":method", "GET"), (":path", "/1k"), (":scheme", "https"),
                              (":authority", "127.0.0.1:4433"),
                              ("user-agent", "h2load nghttp2/1.52.0")])
        response = resp.encode([(":status", "200"), ("server", "nghttpd nghttp2/1.52.0"),
                                ("date", f"Sun, 22 Nov 2026 04:{(i // 5000) % 60:02d}:00 GMT"),
                                ("content-length", "1024"),
                                ("last-modified", "Sun, 22 Nov 2026 03:00:00 GMT"),
                                ("etag", '"6753-400"')])
        blocks[0].append(request)
        blocks[1].append(response)
        h = hf.HeadersFrame(sid, flags=["END_HEADERS", "END_STREAM"], data=request)
        r = hf.HeadersFrame(sid, flags=["END_HEADERS"], data=response)
        d = hf.DataFrame(sid, data=body, flags=["END_STREAM"])
        chunks.append((C2S, h.serialize()))
        chunks.append((S2C, r.serialize() + d.serialize()))
        if i % 10 == 9:
            chunks.append((C2S, hf.WindowUpdateFrame(0, window_increment=10240).serialize()))
    return chunks, blocks


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter
_repeat = 3


def _time_once(fn: Callable[[], int]) -> float:
    gc.collect()
    clear_huffman_cache()  # see _time
    start = _clock()
    fn()
    return _clock() - start


def _time(fn: Callable[[], int]) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(_repeat):
        gc.collect()
        # The decoded-Huffman cache is process-wide: start every run cold so the
        # unique :path values of the previous run don't decode for free.
        clear_huffman_cache()
        start = _clock()
        count = fn()
        best = min(best, _clock() - start)
    return best, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (the best counts)")
    ap.add_argument("--clock", choices=sorted(_CLOCKS), default="wall")
    args = ap.parse_args()
    global _clock, _repeat
    _clock = _CLOCKS[args.clock]
    _repeat = max(1, args.repeat)

    header_chunks = build_traffic(args.requests, b"")
    # Blocks alternate request/response per direction; decode each direction separately.
    by_dir: dict[int, list[bytes]] = {0: [], 1: []}
    obs = ConnectionObserver()
    for direction, data in header_chunks:
        for ev in obs.feed(direction, data, 0.0):
            if isinstance(ev, FrameObserved) and ev.frame.type == 1:
                by_dir[direction].append(ev.frame.fragment)  # type: ignore[attr-defined]
    nblocks = len(by_dir[0]) + len(by_dir[1])

    def run_hpack() -> int:
        for d in (0, 1):
            dec = hpack.Decoder()
            dec.max_header_list_size = 2**31
            for b in by_dir[d]:
                dec.decode(b)
        return nblocks

    def run_annotated() -> int:
        for d in (0, 1):
            dec = AnnotatedDecoder()
            for b in by_dir[d]:
                dec.decode(b)
        return nblocks

    def run_observer_headers() -> int:
        o = ConnectionObserver()
        n = 0
        for direction, data in header_chunks:
            n += len(o.feed(direction, data, 0.0))
        return n

    data_rows = []
    for label, size, bulk in (("DATA 16 KB", 16384 * 8, False), ("DATA 1 KB", 1024, False),
                              ("bulk 64 KB reads", 1 << 18, True)):
        chunks = build_traffic(max(200, args.requests // 10), b"x" * size, bulk=bulk)
        o = ConnectionObserver()
        nframes = sum(
            1
            for direction, c in chunks
            for ev in o.feed(direction, c, 0.0)
            if isinstance(ev, FrameObserved)
        )
        ndata = 0
        o = ConnectionObserver()
        for direction, c in chunks:
            ndata += sum(
                1
                for ev in o.feed(direction, c, 0.0)
                if isinstance(ev, FrameObserved) and ev.frame.type == 0
            )

        def run_data(chunks: list[tuple[Direction, bytes]] = chunks, nframes: int = nframes) -> int:
            o = ConnectionObserver()
            for direction, c in chunks:
                o.feed(direction, c, 0.0)
            return nframes

        secs, _ = _time(run_data)
        data_rows.append((label, nframes, ndata, secs))

    # Rounds of one run each, so that load from other processes changing over
    # time affects all three alike; the best run of each counts.
    t_hpack = t_ann = t_obs = float("inf")
    for _ in range(_repeat):
        t_hpack = min(t_hpack, _time_once(run_hpack))
        t_ann = min(t_ann, _time_once(run_annotated))
        t_obs = min(t_obs, _time_once(run_observer_headers))
    print(
        f"workload: {args.requests} request/response exchanges, {nblocks} header blocks, "
        f"~{len(REQUEST_FIELDS)} fields per request block ({args.clock} clock, "
        f"best of {_repeat})"
    )
    print()
    print(f"{'decoder':<44}{'blocks/s':>12}{'vs hpack':>10}")
    print(f"{'hpack.Decoder':<44}{nblocks / t_hpack:>12,.0f}{1.0:>10.2f}")
    print(
        f"{'AnnotatedDecoder (annotation only)':<44}{nblocks / t_ann:>12,.0f}"
        f"{t_hpack / t_ann:>10.2f}"
    )
    print(
        f"{'ConnectionObserver (framing+HPACK+model)':<44}{nblocks / t_obs:>12,.0f}"
        f"{t_hpack / t_obs:>10.2f}"
    )
    n_rep = 10 * args.requests
    rep_chunks, rep_blocks = build_repeated(n_rep)

    def run_hpack_repeated() -> int:
        for d in (0, 1):
            dec = hpack.Decoder()
            for b in rep_blocks[d]:
                dec.decode(b)
        return n_rep

    def run_observer_repeated() -> int:
        o = ConnectionObserver()
        for direction, data in rep_chunks:
            o.feed(direction, data, 0.0)
        return n_rep

    t_hrep = t_orep = float("inf")
    for _ in range(_repeat):
        t_hrep = min(t_hrep, _time_once(run_hpack_repeated))
        t_orep = min(t_orep, _time_once(run_observer_repeated))
    print()
    print(f"repeated requests (h2load-like: 1 KiB GET, the same headers), {n_rep:,} exchanges")
    print(f"{'hpack.Decoder (the two blocks)':<44}{n_rep / t_hrep:>12,.0f} req/s")
    print(f"{'ConnectionObserver (both blocks, DATA, WU)':<44}{n_rep / t_orep:>12,.0f} req/s"
          f"{t_hrep / t_orep:>10.2f}")
    print()
    print(f"{'DATA workload':<16}{'frames':>10}{'DATA':>10}{'frames/s':>14}")
    for label, nframes, ndata, secs in data_rows:
        print(f"{label:<16}{nframes:>10,}{ndata:>10,}{nframes / secs:>14,.0f}")


if __name__ == "__main__":
    main()
