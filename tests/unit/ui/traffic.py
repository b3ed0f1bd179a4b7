"""A deterministic capture of real HTTP/2 traffic for the UI tests.

A python-hyper ``h2`` client and server talk in-process; every byte passes
through a :class:`RecordingObserver` into a capture file, with a fixed clock
(1 ms per chunk) so the same capture comes out on every run (snapshots rely
on it). It has what the views must show: a gzip JSON response, a gRPC
exchange with trailers, a server push, a POST body, a SETTINGS change and a
PING, a response that stalls on flow control and resumes, a reset stream, an
RFC 9218 ``priority`` header and a frame that raises a finding.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import Direction

JSON_BODY = {"users": [{"id": 1, "name": "ada"}, {"id": 2, "name": "grace"}], "total": 2}
GZIP_JSON = gzip.compress(json.dumps(JSON_BODY).encode(), mtime=0)
GRPC_MESSAGES = (b"\x0a\x05hello", b"\x0a\x05world")
BIG = b"0123456789abcdef" * 6144
"""96 KiB: more than the default 64 KiB window, so the download stalls."""

META = {
    "client": {"ip": "127.0.0.1", "port": 51001},
    "server": {"host": "api.example.test", "ip": "127.0.0.1", "port": 443},
    "target": "api.example.test:443",
    "mode": "regular",
    "protocol": "h2",
    "sni": "api.example.test",
    "client_tls": {"alpn_offered": ["h2", "http/1.1"], "alpn": "h2", "version": "TLSv1.3",
                   "cipher": "TLS_AES_128_GCM_SHA256"},
    "server_tls": {"alpn_offered": ["h2", "http/1.1"], "alpn": "h2", "version": "TLSv1.3",
                   "cipher": "TLS_AES_128_GCM_SHA256"},
}


def grpc_frame(msg: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def _req(path: str, method: str = "GET", *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "https"), (":authority", "api.example.test"),
            (":path", path), ("user-agent", "h2scope-test/1"), *extra]


def record(path: Path, *, conns: int = 1) -> Path:
    """Write the test capture to ``path`` (``conns`` identical connections)."""
    writer = CaptureWriter(path, autoflush=False)
    clock = [1000.0]

    def tick() -> float:
        clock[0] += 0.001
        return clock[0]

    for conn_id in range(1, conns + 1):
        meta = {**META, "client": {"ip": "127.0.0.1", "port": 51000 + conn_id}}
        tap = RecordingObserver(writer, conn_id, meta, t=clock[0])
        _play(tap, writer, conn_id, tick)
        tap.close(tick(), closed_by="client")
    writer.close(fsync=False)
    _fix_wall_clock(path)
    return path


def _fix_wall_clock(path: Path) -> None:
    """Captures store wall-clock times too; make them fixed so the file is identical."""
    from proxy.capture.format import RECORD_HEADER, RECORD_HEADER_SIZE, RECORD_PREFIX
    from proxy.capture.reader import CaptureReader

    data = bytearray(path.read_bytes())
    with CaptureReader(path) as reader:
        offsets = [(r.offset, r.t) for r in reader.records()]
    from zlib import crc32

    for off, t in offsets:
        sync, rtype, flags, blen, conn, seq, _t, _wall, _crc = RECORD_HEADER.unpack_from(data, off)
        prefix = RECORD_PREFIX.pack(sync, rtype, flags, blen, conn, seq, _t, 1_700_000_000.0 + t)
        body = bytes(data[off + RECORD_HEADER_SIZE:off + RECORD_HEADER_SIZE + blen])
        data[off:off + RECORD_HEADER_SIZE] = prefix + struct.pack(">I", crc32(body, crc32(prefix)))
    path.write_bytes(bytes(data))


def _play(tap: RecordingObserver, writer: CaptureWriter, conn_id: int, tick: object) -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding="utf-8"))
    clock = tick  # type: ignore[assignment]
    auto_ack = [True]

    def feed(direction: Direction, data: bytes) -> None:
        if data:
            tap.feed(direction, data, clock())  # type: ignore[operator]

    def pump() -> None:
        for _ in range(100):
            c2s = client.data_to_send()
            feed(Direction.C2S, c2s)
            for ev in server.receive_data(c2s) if c2s else ():
                if isinstance(ev, h2.events.DataReceived):
                    server.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            s2c = server.data_to_send()
            feed(Direction.S2C, s2c)
            for ev in client.receive_data(s2c) if s2c else ():
                if isinstance(ev, h2.events.DataReceived) and auto_ack[0]:
                    client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if not c2s and not s2c:
                return

    client.initiate_connection()
    server.initiate_connection()
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    pump()

    # 1: JSON, gzip-encoded, with an RFC 9218 priority header; a pushed script.
    client.send_headers(1, _req("/api/users", "GET", ("accept-encoding", "gzip"),
                                ("priority", "u=1, i")), end_stream=True)
    pump()
    server.push_stream(1, 2, _req("/app.js"))
    server.send_headers(1, [(":status", "200"), ("content-type", "application/json"),
                            ("content-encoding", "gzip")])
    server.send_data(1, GZIP_JSON, end_stream=True)
    server.send_headers(2, [(":status", "200"), ("content-type", "text/javascript")])
    server.send_data(2, b"console.log('pushed');", end_stream=True)
    pump()

    # 3: gRPC: two length-prefixed messages each way, trailers.
    client.send_headers(3, _req("/greeter.Greeter/SayHello", "POST",
                                ("content-type", "application/grpc"), ("te", "trailers")))
    client.send_data(3, b"".join(grpc_frame(m) for m in GRPC_MESSAGES), end_stream=True)
    pump()
    server.send_headers(3, [(":status", "200"), ("content-type", "application/grpc")])
    server.send_data(3, b"".join(grpc_frame(m) for m in reversed(GRPC_MESSAGES)))
    server.send_headers(3, [("grpc-status", "0"), ("grpc-message", "OK")], end_stream=True)
    pump()

    # A SETTINGS change and a PING.
    client.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 8192})
    client.ping(b"h2scope!")
    pump()

    # 5: a download larger than the window: the server stalls until the client
    # acknowledges (WINDOW_UPDATE), then resumes.
    auto_ack[0] = False
    client.send_headers(5, _req("/big.bin"), end_stream=True)
    pump()
    server.send_headers(5, [(":status", "200"), ("content-type", "application/octet-stream")])
    sent = 0
    while sent < len(BIG):
        room = min(server.local_flow_control_window(5), len(BIG) - sent, 16384)
        if room <= 0:
            break
        server.send_data(5, BIG[sent:sent + room], end_stream=sent + room == len(BIG))
        sent += room
    pump()
    auto_ack[0] = True
    client.acknowledge_received_data(65535, 5)
    client.increment_flow_control_window(65535)
    pump()
    while sent < len(BIG):
        room = min(server.local_flow_control_window(5), len(BIG) - sent, 16384)
        server.send_data(5, BIG[sent:sent + room], end_stream=sent + room == len(BIG))
        sent += room
        pump()

    # 7: cancelled by the client.
    client.send_headers(7, _req("/slow"), end_stream=True)
    pump()
    client.reset_stream(7, h2.errors.ErrorCodes.CANCEL)
    pump()

    # A frame that raises a finding: WINDOW_UPDATE with a zero increment (RFC 9113 §6.9).
    tap.feed(Direction.C2S, struct.pack(">HBBBLL", 0, 4, 8, 0, 0, 0), clock())  # type: ignore[operator]

    client.close_connection()
    pump()


def failed_connection(path: Path) -> Path:
    """A capture of one connection (#7) the proxy failed: the client rejected h2scope's
    certificate, as the recorder keeps it in the CLOSE record."""
    with CaptureWriter(path, autoflush=False) as writer:
        writer.connection(7, {"client": {"ip": "127.0.0.1", "port": 50000}, "mode": "regular",
                              "target": "example.test:443"}, t=1.0)
        writer.close_connection(7, t=1.1, closed_by="proxy", details={
            "reason": "TLS handshake with the client failed",
            "errors": [{"stage": "client-tls", "message": "the client rejected h2scope's "
                        "certificate (TLSV1_ALERT_UNKNOWN_CA)",
                        "hint": "run `h2scope ca install-hints`"}]})
    return path


def record_requests(path: Path, meta: dict[str, object],
                    requests: list[list[tuple[str, str]]],
                    response: list[tuple[str, str]] | None = None) -> Path:
    """A one-connection capture with ``meta``: settings both ways, then each of
    ``requests`` on streams 1, 3, 5, … answered with ``response`` (``:status 200``)
    and a 5-byte body; closed by the client."""
    from proxy.observe.enums import CONNECTION_PREFACE
    from tests.unit.observe.conftest import FrameFactory

    f = FrameFactory()
    writer = CaptureWriter(path, autoflush=False)
    tap = RecordingObserver(writer, 1, meta, t=1.0, wall_clock=True)
    t = [1.0]

    def send(direction: Direction, data: bytes) -> None:
        t[0] += 0.01
        tap.feed(direction, data, t[0])

    send(Direction.C2S, CONNECTION_PREFACE + f.settings())
    send(Direction.S2C, f.settings() + f.settings(ack=True))
    send(Direction.C2S, f.settings(ack=True))
    for n, headers in enumerate(requests):
        sid = 2 * n + 1
        send(Direction.C2S, f.headers(Direction.C2S, sid, headers,
                                      flags=["END_HEADERS", "END_STREAM"]))
        send(Direction.S2C, f.headers(Direction.S2C, sid, response or [(":status", "200")]))
        send(Direction.S2C, f.data(sid, b"hello", flags=["END_STREAM"]))
    t[0] += 0.01
    tap.close(t[0], closed_by="client")
    writer.close(fsync=False)
    return path
