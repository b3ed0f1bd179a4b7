"""Chrome net log import benchmark: events and frames per second, both kinds of log.

A plain script (not collected by pytest)::

    python tests/bench/bench_netlog.py [--requests 20000] [--dir DIR]

It writes two net logs of the same browser-like HTTP/2 session (an ``h2``
client and server in-process: GETs with a browser's headers, responses of
1 KiB, a WINDOW_UPDATE now and then), laid out as Chrome writes them — one
with raw bytes (``Everything``: every write and read of the socket as an
``SSL_SOCKET_BYTES_*`` event, plus the session's own events as Chrome logs
them alongside) and one without (``Default``: the session's events only) —
then times ``import_netlog`` on each, and ``replay`` of the capture it wrote
(reading plus the observer, the floor any import pays), in the same run: the
ratio import ÷ replay is what the net log reading adds.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.capture.netlog_import import import_netlog
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter

TYPES = ["SOCKET_ALIVE", "TCP_CONNECT", "SSL_CONNECT", "SSL_SOCKET_BYTES_SENT",
         "SSL_SOCKET_BYTES_RECEIVED", "HTTP2_SESSION", "HTTP2_SESSION_INITIALIZED",
         "HTTP2_SESSION_SEND_HEADERS", "HTTP2_SESSION_RECV_HEADERS", "HTTP2_SESSION_RECV_DATA",
         "HTTP2_SESSION_SEND_WINDOW_UPDATE", "HTTP2_SESSION_SEND_SETTINGS",
         "HTTP2_SESSION_RECV_SETTINGS", "HTTP2_SESSION_RECV_SETTINGS_ACK",
         "HTTP2_SESSION_SEND_SETTINGS_ACK", "HTTP2_STREAM_UPDATE_RECV_WINDOW"]
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/156.0.0.0 Safari/537.36")


def write_logs(requests: int, raw_path: Path, events_path: Path) -> None:
    """The same session twice: with its bytes and without."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    tick = [1000]
    raw_lines: list[str] = []
    ev_lines: list[str] = []

    def add(lines: list[str], name: str, source: int, stype: int, phase: int = 0,
            **params: Any) -> None:
        tick[0] += 1
        lines.append(json.dumps({"phase": phase, "source": {"id": source, "type": stype},
                                 "time": str(tick[0] // 10), "type": TYPES.index(name),
                                 "params": params}) + ",")

    def both(name: str, **params: Any) -> None:
        add(raw_lines, name, 8, 11, **params)
        add(ev_lines, name, 8, 11, **params)

    for lines in (raw_lines, ev_lines):
        add(lines, "SOCKET_ALIVE", 7, 10, 1)
        add(lines, "TCP_CONNECT", 7, 10, 2, local_address="127.0.0.1:50000",
            remote_address="127.0.0.1:443")
        add(lines, "SSL_CONNECT", 7, 10, 2, cipher_suite=4865, next_proto="h2",
            version="TLS 1.3")
        add(lines, "HTTP2_SESSION", 8, 11, 1, host="example.test:443")
        add(lines, "HTTP2_SESSION_INITIALIZED", 8, 11, source_dependency={"id": 7, "type": 10})

    def pump() -> None:
        for _ in range(4):
            c2s = client.data_to_send()
            if c2s:
                add(raw_lines, "SSL_SOCKET_BYTES_SENT", 7, 10, byte_count=len(c2s),
                    bytes=base64.b64encode(c2s).decode())
                for ev in server.receive_data(c2s):
                    if isinstance(ev, h2.events.DataReceived):
                        server.acknowledge_received_data(ev.flow_controlled_length,
                                                         ev.stream_id)
            s2c = server.data_to_send()
            if s2c:
                add(raw_lines, "SSL_SOCKET_BYTES_RECEIVED", 7, 10, byte_count=len(s2c),
                    bytes=base64.b64encode(s2c).decode())
                for ev in client.receive_data(s2c):
                    if isinstance(ev, h2.events.DataReceived):
                        client.acknowledge_received_data(ev.flow_controlled_length,
                                                         ev.stream_id)
            if not c2s and not s2c:
                return

    client.initiate_connection()
    server.initiate_connection()
    both("HTTP2_SESSION_SEND_SETTINGS", settings=["[id:4 (SETTINGS_INITIAL_WINDOW_SIZE) "
                                                  "value:65535]"])
    both("HTTP2_SESSION_RECV_SETTINGS")
    both("HTTP2_SESSION_SEND_SETTINGS_ACK")
    both("HTTP2_SESSION_RECV_SETTINGS_ACK")
    pump()
    body = b"x" * 1024
    for i in range(requests):
        sid = 1 + 2 * i
        request = [(":method", "GET"), (":authority", "example.test"), (":scheme", "https"),
                   (":path", f"/assets/{i % 97}/file{i}.js"), ("user-agent", UA),
                   ("accept", "*/*"), ("accept-encoding", "gzip, deflate, br, zstd")]
        client.send_headers(sid, request, end_stream=True)
        both("HTTP2_SESSION_SEND_HEADERS", stream_id=sid, fin=True, has_priority=False,
             headers=[f"{n}: {v}" for n, v in request])
        pump()
        response = [(":status", "200"), ("content-type", "text/javascript"),
                    ("etag", f'"{i:08x}"'), ("content-length", "1024")]
        server.send_headers(sid, response)
        server.send_data(sid, body, end_stream=True)
        both("HTTP2_SESSION_RECV_HEADERS", stream_id=sid, fin=False,
             headers=[f"{n}: {v}" for n, v in response])
        both("HTTP2_SESSION_RECV_DATA", stream_id=sid, size=1024, fin=True)
        both("HTTP2_STREAM_UPDATE_RECV_WINDOW", delta=-1024, window_size=64511)
        pump()
        if i % 32 == 31:
            both("HTTP2_SESSION_SEND_WINDOW_UPDATE", stream_id=0, delta=32768)
    constants = {"logEventTypes": {n: i for i, n in enumerate(TYPES)},
                 "logSourceType": {"SOCKET": 10, "HTTP2_SESSION": 11},
                 "timeTickOffset": "1790000000000", "clientInfo": {"name": "bench"}}
    for path, lines, mode in ((raw_path, raw_lines, "Everything"),
                              (events_path, ev_lines, "Default")):
        head = '{"constants":' + json.dumps({**constants, "logCaptureMode": mode}) + ",\n"
        path.write_text(head + '"events": [\n' + "\n".join(lines).rstrip(",") + "\n]}\n")


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--dir", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        d = Path(tmp)
        raw, events = d / "raw.json", d / "events.json"
        write_logs(args.requests, raw, events)
        for label, src in (("raw bytes", raw), ("events only", events)):
            out = d / f"{src.stem}.h2scope"

            def run(src: Path = src, out: Path = out) -> Any:
                with CaptureWriter(out) as writer, src.open() as f:
                    return import_netlog(f, writer)

            took, summary = timed(run)
            replay_took, _ = timed(lambda out=out: sum(len(i.events) for i in replay(out)))
            print(f"{label:12} {src.stat().st_size / 1e6:6.1f} MB  {summary.events:8,} events "
                  f"{summary.frames:8,} frames  import {took:6.2f} s = "
                  f"{summary.events / took:9,.0f} events/s, {summary.frames / took:8,.0f} "
                  f"frames/s; replay of the result {replay_took:5.2f} s; import ÷ replay "
                  f"{took / replay_took:4.2f}")


if __name__ == "__main__":
    main()
