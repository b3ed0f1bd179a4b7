"""The demo's origin: a small HTTP/2 server over TLS, built on ``h2``.

It serves a page with subresources, pushes the stylesheet when the client
allows pushes, streams a large download strictly within the client's
flow-control windows (so a client that is slow to send WINDOW_UPDATE makes it
stall), answers an API call with trailers, and dribbles a slow response the
client is expected to cancel. Certificates come from the h2scope CA, so the
proxy can verify this origin like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

log = logging.getLogger("h2scope.demo")

BIG_SIZE = 512 * 1024
PAGE = b"""<!doctype html>
<html><head><title>h2scope demo</title><link rel="stylesheet" href="/style.css">
<script src="/app.js" defer></script></head>
<body><h1>h2scope demo</h1>""" + b"".join(
    b'<img src="/img/%d.png" alt="">' % i for i in range(1, 7)) + b"</body></html>\n"
CSS = b"body { font-family: sans-serif; }\nimg { width: 16px; }\n" * 20
JS = b"document.title += ' (loaded)';\n" * 40
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a3f3a2a4"
                    "0000000049454e44ae426082")


def route(method: str, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) for a request; the demo's whole site."""
    base = path.split("?", 1)[0]
    if base == "/":
        return 200, "text/html; charset=utf-8", PAGE
    if base == "/style.css":
        return 200, "text/css", CSS
    if base == "/app.js":
        return 200, "text/javascript", JS
    if base.startswith("/img/") and base.endswith(".png"):
        return 200, "image/png", PNG
    if base == "/big":
        return 200, "application/octet-stream", bytes(range(256)) * (BIG_SIZE // 256)
    return 404, "text/plain", f"{method} {path}: not found\n".encode()


@dataclass
class _Pending:
    """Response bytes waiting for flow-control window."""

    data: bytes
    trailers: list[tuple[str, str]] | None = None
    sent: int = 0


@dataclass
class _Conn:
    h2conn: h2.connection.H2Connection
    writer: asyncio.StreamWriter
    pending: dict[int, _Pending] = field(default_factory=dict)
    bodies: dict[int, bytearray] = field(default_factory=dict)
    requests: dict[int, dict[str, str]] = field(default_factory=dict)
    slow: set[int] = field(default_factory=set)


class DemoServer:
    """``await start()`` listens on 127.0.0.1 (a free port); ``await stop()``."""

    def __init__(self, context: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        self.context = context
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self.context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8")), writer)
        conn.h2conn.initiate_connection()
        try:
            await self._flush(conn)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    events = conn.h2conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    log.info("demo server: protocol error from the client: %s", exc)
                    break
                for ev in events:
                    self._handle(conn, ev)
                self._send_pending(conn)
                await self._flush(conn)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            for sid in list(conn.slow):
                conn.slow.discard(sid)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _handle(self, conn: _Conn, ev: h2.events.Event) -> None:
        c = conn.h2conn
        if isinstance(ev, h2.events.RequestReceived):
            sid = ev.stream_id
            headers = {str(k): str(v) for k, v in (ev.headers or [])}
            conn.requests[sid] = headers
            if ev.stream_ended is not None:
                self._respond(conn, sid)
        elif isinstance(ev, h2.events.DataReceived):
            conn.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data or b"")
            c.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id or 0)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in conn.requests and ev.stream_id not in conn.pending:
                self._respond(conn, ev.stream_id or 0)
        elif isinstance(ev, h2.events.StreamReset):
            conn.pending.pop(ev.stream_id or 0, None)
            conn.slow.discard(ev.stream_id or 0)

    def _respond(self, conn: _Conn, sid: int) -> None:
        c = conn.h2conn
        req = conn.requests.pop(sid, {})
        method, path = req.get(":method", "GET"), req.get(":path", "/")
        if path.startswith("/api/"):
            body = json.dumps({"method": method, "path": path,
                               "received": len(conn.bodies.pop(sid, b""))}).encode()
            c.send_headers(sid, [(":status", "200"), ("content-type", "application/json")])
            conn.pending[sid] = _Pending(body, trailers=[("x-checksum", f"{sum(body) % 65536}"),
                                                         ("x-status", "ok")])
            return
        if path == "/slow":
            c.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            conn.slow.add(sid)
            task = asyncio.ensure_future(self._dribble(conn, sid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        status, ctype, body = route(method, path)
        if path == "/" and c.remote_settings.enable_push:
            pushed = c.get_next_available_stream_id()
            with contextlib.suppress(h2.exceptions.ProtocolError):
                c.push_stream(sid, pushed, [(":method", "GET"), (":scheme", "https"),
                                            (":authority", req.get(":authority", "localhost")),
                                            (":path", "/style.css")])
                c.send_headers(pushed, [(":status", "200"), ("content-type", "text/css"),
                                        ("content-length", str(len(CSS)))])
                conn.pending[pushed] = _Pending(CSS)
        c.send_headers(sid, [(":status", str(status)), ("content-type", ctype),
                             ("content-length", str(len(body))), ("server", "h2scope-demo")])
        conn.pending[sid] = _Pending(body)

    def _send_pending(self, conn: _Conn) -> None:
        c = conn.h2conn
        for sid, p in list(conn.pending.items()):
            while p.sent < len(p.data):
                try:
                    window = c.local_flow_control_window(sid)
                except h2.exceptions.StreamClosedError:
                    conn.pending.pop(sid, None)
                    break
                n = min(window, c.max_outbound_frame_size, len(p.data) - p.sent)
                if n <= 0:
                    break  # blocked: the client's WINDOW_UPDATE resumes us
                c.send_data(sid, p.data[p.sent:p.sent + n])
                p.sent += n
            else:
                conn.pending.pop(sid, None)
                with contextlib.suppress(h2.exceptions.StreamClosedError,
                                         h2.exceptions.ProtocolError):
                    if p.trailers:
                        c.send_headers(sid, p.trailers, end_stream=True)
                    else:
                        c.end_stream(sid)

    async def _dribble(self, conn: _Conn, sid: int) -> None:
        c = conn.h2conn
        for i in range(50):
            await asyncio.sleep(0.05)
            if sid not in conn.slow:
                return
            try:
                c.send_data(sid, b"tick %d\n" % i)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return
            await self._flush(conn)
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            c.end_stream(sid)
            await self._flush(conn)

    @staticmethod
    async def _flush(conn: _Conn) -> None:
        data = conn.h2conn.data_to_send()
        if data:
            conn.writer.write(data)
            await conn.writer.drain()
