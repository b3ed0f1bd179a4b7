"""Real HTTP/2 traffic for capture tests: python-hyper ``h2`` client and server
talking in-process, every byte passing through a :class:`RecordingObserver`.

:func:`record_session` plays one connection with the things a capture must
keep: requests and responses, request and response bodies (text and binary),
trailers, a server push, a SETTINGS change, PING, RST_STREAM, WINDOW_UPDATE
and GOAWAY. It returns the live events (what the proxy's observer saw) so
tests can compare them with what a reader reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import Event

BINARY_BODY = bytes(range(256)) * 8
"""A response body that is not text (HAR must base64 it)."""
LARGE_BODY = b"0123456789abcdef" * 2048
"""32 KiB: several DATA frames and WINDOW_UPDATEs."""

META = {
    "client": {"ip": "127.0.0.1", "port": 51000},
    "server": {"host": "example.test", "ip": "127.0.0.1", "port": 8443},
    "mode": "regular",
    "protocol": "h2",
    "sni": "example.test",
    "client_tls": {"alpn_offered": ["h2", "http/1.1"], "alpn": "h2", "version": "TLSv1.3",
                   "cipher": "TLS_AES_128_GCM_SHA256"},
    "server_tls": {"alpn_offered": ["h2", "http/1.1"], "alpn": "h2", "version": "TLSv1.3",
                   "cipher": "TLS_AES_128_GCM_SHA256",
                   "certificate": {"subject": "CN=example.test", "issuer": "CN=test CA"}},
}



def exchange(tap: RecordingObserver, client: h2.connection.H2Connection,
             server: h2.connection.H2Connection, t: float) -> None:
    """Pass an in-process client's and server's pending bytes to each other until
    neither has more, each chunk seen by the recording ``tap`` at ``t``."""
    for _ in range(10):
        c2s, s2c = client.data_to_send(), server.data_to_send()
        if not c2s and not s2c:
            return
        if c2s:
            tap.feed(Direction.C2S, c2s, t)
            server.receive_data(c2s)
        if s2c:
            tap.feed(Direction.S2C, s2c, t)
            client.receive_data(s2c)

@dataclass
class Session:
    live: list[tuple[int, Event]] = field(default_factory=list)
    """(conn_id, event) in the order the live observer produced them."""
    chunks: list[tuple[Direction, bytes]] = field(default_factory=list)


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def tick(self) -> float:
        self.now += 0.001
        return self.now


def _request(path: str, method: str = "GET") -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "https"), (":authority", "example.test"),
            (":path", path), ("user-agent", "h2scope-test/1"), ("accept", "*/*")]


def record_session(writer: CaptureWriter, conn_id: int = 1, *, t0: float = 1000.0,
                   session: Session | None = None, close: bool = True) -> Session:
    """Play one full connection through a tap into ``writer``."""
    session = session or Session()
    clock = _Clock(t0)
    tap = RecordingObserver(writer, conn_id, {**META, "client": {"ip": "127.0.0.1",
                                                                 "port": 51000 + conn_id}},
                            t=clock.now)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding="utf-8"))
    pending: dict[int, bytes] = {}

    def feed(direction: Direction, data: bytes) -> None:
        if not data:
            return
        session.chunks.append((direction, data))
        for ev in tap.feed(direction, data, clock.tick()):
            session.live.append((conn_id, ev))

    def pump() -> None:
        for _ in range(50):
            c2s = client.data_to_send()
            feed(Direction.C2S, c2s)
            for ev in server.receive_data(c2s) if c2s else ():
                if isinstance(ev, h2.events.DataReceived):
                    server.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    pending[ev.stream_id] = pending.get(ev.stream_id, b"") + ev.data
            s2c = server.data_to_send()
            feed(Direction.S2C, s2c)
            for ev in client.receive_data(s2c) if s2c else ():
                if isinstance(ev, h2.events.DataReceived):
                    client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if not c2s and not s2c:
                return

    client.initiate_connection()
    server.initiate_connection()
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    pump()

    # 1: GET with a pushed stylesheet, an HTML body and trailers.
    client.send_headers(1, _request("/index.html"), end_stream=True)
    pump()
    server.push_stream(1, 2, _request("/style.css"))
    server.send_headers(1, [(":status", "200"), ("content-type", "text/html"),
                            ("set-cookie", "id=42; Secure")])
    server.send_data(1, b"<html><body>hello</body></html>")
    server.send_headers(1, [("grpc-status", "0"), ("x-trailer", "done")], end_stream=True)
    server.send_headers(2, [(":status", "200"), ("content-type", "text/css")])
    server.send_data(2, b"body { color: red }", end_stream=True)
    pump()

    # 3: POST with a request body and request trailers; binary response.
    client.send_headers(3, [*_request("/upload", "POST"), ("content-type", "text/plain")])
    client.send_data(3, b"hello world", pad_length=5)
    client.send_headers(3, [("x-checksum", "abc")], end_stream=True)
    pump()
    server.send_headers(3, [(":status", "201"), ("content-type", "application/octet-stream")])
    server.send_data(3, BINARY_BODY, end_stream=True)
    pump()

    # The client changes a setting and pings.
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    client.ping(b"h2scope!")
    pump()

    # 5: a large response: several DATA frames and WINDOW_UPDATEs.
    client.send_headers(5, _request("/large.bin"), end_stream=True)
    pump()
    server.send_headers(5, [(":status", "200"), ("content-type", "application/octet-stream")])
    server.send_data(5, LARGE_BODY[:16384])
    server.send_data(5, LARGE_BODY[16384:], end_stream=True)
    pump()

    # 7: the client cancels a request.
    client.send_headers(7, _request("/slow"), end_stream=True)
    pump()
    server.send_headers(7, [(":status", "200")])
    pump()
    client.prioritize(7, weight=32, depends_on=0, exclusive=False)
    pump()
    client.reset_stream(7, h2.errors.ErrorCodes.CANCEL)
    pump()

    client.close_connection()
    pump()
    if close:
        for ev in tap.close(clock.tick(), closed_by="client"):
            session.live.append((conn_id, ev))
    return session

def hung_download(path: Path, *, ended: bool = False) -> Path:
    """A capture of one h2c download that hung: the server spent both 65,535-byte
    windows on stream 1, the client never opened them and closed 3 s later (so the
    close raises flow-control-stalled and stream-unfinished, on no frame). ``ended``:
    no hang — the server's next frame is an empty DATA that ends the stream."""
    import hpack
    from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame

    c2s, s2c = Direction.C2S, Direction.S2C
    request = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    request.data = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                           (":authority", "a.test"), (":path", "/big")])
    response = HeadersFrame(1, flags=["END_HEADERS"])
    response.data = hpack.Encoder().encode([(":status", "200")])
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2c"}, t=0.0)
        writer.raw(1, c2s, CONNECTION_PREFACE, t=0.0)
        writer.frame(1, c2s, bytes(SettingsFrame(0).serialize()), t=0.0)
        writer.frame(1, s2c, bytes(SettingsFrame(0).serialize()), t=0.0)
        writer.frame(1, c2s, bytes(SettingsFrame(0, flags=["ACK"]).serialize()), t=0.01)
        writer.frame(1, s2c, bytes(SettingsFrame(0, flags=["ACK"]).serialize()), t=0.01)
        writer.frame(1, c2s, bytes(request.serialize()), t=0.02)
        writer.frame(1, s2c, bytes(response.serialize()), t=0.03)
        for size in (16384, 16384, 16384, 16383):  # the 65,535-byte windows, spent
            writer.frame(1, s2c, bytes(DataFrame(1, data=b"x" * size).serialize()), t=0.04)
        if ended:
            writer.frame(1, s2c, bytes(DataFrame(1, data=b"", flags=["END_STREAM"])
                                       .serialize()), t=0.05)
        writer.close_connection(1, t=3.0, closed_by="client")
    return path


def raw_frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    """One frame's bytes, as written by hand (no library checks what it says)."""
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
        sid.to_bytes(4, "big") + payload


def h2c_capture(path: Path, frames: list[tuple[Direction, bytes, float]], *,
                host: str = "a") -> Path:
    """A capture of one h2c connection to ``host``: its client preface and an empty
    SETTINGS at 0.0, then ``frames`` (direction, bytes, seconds), wall clock from
    1000.0."""
    with CaptureWriter(path) as w:
        w.connection(1, {"protocol": "h2c", "mode": f"reverse:http://{host}:80",
                         "server": {"host": host, "port": 80}}, t=0.0, wall=1000.0)
        w.raw(1, Direction.C2S, CONNECTION_PREFACE, t=0.0, wall=1000.0)
        w.frame(1, Direction.C2S, raw_frame(4, 0, 0, b""), t=0.0, wall=1000.0)
        for direction, data, t in frames:
            w.frame(1, direction, data, t=t, wall=1000.0 + t)
    return path
