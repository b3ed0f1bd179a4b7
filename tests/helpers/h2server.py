"""A small HTTP/2 origin built on the ``h2`` library, for tests that need control.

Routes (any method):

* ``/big/N``   — 200 with N bytes of body, sent as flow control allows;
* ``/reset``   — 200 headers, 1000 bytes, then RST_STREAM(INTERNAL_ERROR);
* ``/abort``   — 200 headers, 1000 bytes, then the TCP connection is reset;
* ``/slow/N``  — N bytes in 16 KiB pieces, 20 ms apart (a long download);
* ``/short/N`` — 200 declaring ``content-length: N``, then only N // 2 bytes and
  END_STREAM (a truncated body);
* ``/no-content/N`` — status N (204, 304) with ``content-length: 4`` and a body
  of 4 bytes anyway (RFC 9110 §6.4.1 says it has none);
* ``/data-first`` — a DATA frame, then the response HEADERS (RFC 9113 §8.1: wrong);
* ``/calm``    — no response: GOAWAY ENHANCE_YOUR_CALM, last stream 0 (a server
  refusing a client it finds abusive);
* ``/then-calm`` — 200 ``hello /then-calm``, then GOAWAY ENHANCE_YOUR_CALM
  ``too_many_pings`` (a gRPC server's keepalive enforcement); with ``calm=False``
  the answer alone;
* ``…/NoTrailers`` — a gRPC response (one message) that ends with its DATA,
  without the trailers that carry grpc-status (what a trailer-dropping proxy does);
* anything else — 200 ``hello <path>`` (the request body is echoed after it).

With ``websocket=True`` it advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)
and answers an extended CONNECT for ``websocket`` with a WebSocket echo
(wsproto does the framing; permessage-deflate is accepted when offered):
text comes back as ``echo: <text>``, binary as is, pings are answered and a
close is returned. ``/ws.html`` is a page that opens ``wss://<host>/chat``,
sends a text and a binary message and shows the echo; its ``/after-ws`` image
is answered only once a text message has been echoed (or after 5 s), which
holds the page's load event until then (so ``chromium --dump-dom`` sees it).

Cleartext with ``upgrade=True`` it also accepts ``Upgrade: h2c`` (nghttpd
1.52 does not: it sends its SETTINGS first, so ``curl --http2`` to it fails
even without a proxy). Runs on its own event loop in a thread (:class:`ServerThread`), so sync tests
drive it with real clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from tests.helpers.loop_thread import LoopThread

WS_PAGE = """<!DOCTYPE html><html><head><title>ws</title></head><body><div id=out>waiting</div>
<script>
const ws = new WebSocket("wss://" + location.host + "/chat");
ws.onopen = () => { ws.send("hello h2scope"); ws.send(new Uint8Array([1, 2, 3])); };
ws.onmessage = (e) => {
  if (typeof e.data === "string") {
    document.getElementById("out").textContent = e.data;
    ws.close(1000, "done");
  }
};
ws.onerror = () => { document.getElementById("out").textContent = "websocket error"; };
</script><img src="/after-ws" alt=""></body></html>
"""


class H2Origin(asyncio.Protocol):
    def __init__(self, *, upgrade: bool = False, websocket: bool = False,
                 calm: bool = True) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.calm = calm
        self.websockets: dict[int, Any] = {}
        self.echoed = asyncio.Event()
        if websocket:
            self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
        self.transport: asyncio.Transport | None = None
        self.upgrade_body_left = 0
        """Bytes of an upgrade request's body still to come (and to skip)."""
        self.upgrade_buffer: bytearray | None = bytearray() if upgrade else None
        """With ``upgrade``: cleartext HTTP/1.1 ``Upgrade: h2c`` is accepted (RFC 7540 §3.2)."""
        self.bodies: dict[int, bytearray] = {}
        self.pending: dict[int, bytes] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.upgrade_buffer is None:
            self.conn.initiate_connection()
            self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.upgrade_body_left:  # (the rest of the upgrade request's body: HTTP/1.1's)
            skipped = min(self.upgrade_body_left, len(data))
            self.upgrade_body_left -= skipped
            data = data[skipped:]
            if not data:
                return
        if self.upgrade_buffer is not None:
            self.upgrade_buffer += data
            if self.upgrade_buffer.startswith(b"PRI * HTTP/2.0"[:len(self.upgrade_buffer)]):
                if len(self.upgrade_buffer) < 14:
                    return
                data, self.upgrade_buffer = bytes(self.upgrade_buffer), None
                self.conn.initiate_connection()
            else:
                end = self.upgrade_buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.upgrade_buffer[:end]).decode("latin-1").split("\r\n")
                data = bytes(self.upgrade_buffer[end + 4:])
                self.upgrade_buffer = None
                fields = {k.strip().lower(): v.strip() for k, _, v in
                          (line.partition(":") for line in head[1:])}
                path = head[0].split(" ")[1]
                assert self.transport is not None
                if "http2-settings" not in fields:  # plain HTTP/1.1: answered, closed
                    body = f"hello {path} over HTTP/1.1\n".encode()
                    self.transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
                    self.transport.close()
                    return
                # RFC 7540 §3.2: the request's body, if any, comes before the client's
                # preface, in HTTP/1.1; it is stream 1's request body.
                length = int(fields.get("content-length") or 0)
                body, data = data[:length], data[length:]
                self.upgrade_body_left = length - len(body)
                self.bodies[1] = bytearray(body)
                self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n"
                                     b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                self.conn.initiate_upgrade_connection(fields["http2-settings"])
                self.bodies_path = {1: path}
                self.respond(1)
                self.flush()
                if not data:
                    return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived) and (
                    (b":protocol", b"websocket") in ev.headers):
                self.accept_websocket(ev.stream_id, dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id in self.websockets:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                self.websocket_data(ev.stream_id, ev.data)
            elif isinstance(ev, h2.events.RequestReceived):
                self.bodies[ev.stream_id] = bytearray()
                self.headers = dict(ev.headers)
                path = dict(ev.headers)[b":path"].decode()
                self.bodies_path = getattr(self, "bodies_path", {})
                self.bodies_path[ev.stream_id] = path
            elif isinstance(ev, h2.events.DataReceived):
                self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id not in self.websockets:
                self.respond(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                self.send_pending()
        self.flush()

    def accept_websocket(self, sid: int, request: dict[bytes, bytes]) -> None:
        from wsproto.connection import Connection, ConnectionType
        from wsproto.extensions import PerMessageDeflate

        headers = [(":status", "200")]
        extensions = []
        offer = request.get(b"sec-websocket-extensions", b"").decode()
        if "permessage-deflate" in offer:
            deflate = PerMessageDeflate()
            accepted = deflate.accept(offer.split(",")[0])
            if accepted:  # True, or the parameters it accepts
                value = deflate.name if accepted is True else f"{deflate.name}; {accepted}"
                headers.append(("sec-websocket-extensions", value))
                extensions.append(deflate)
        self.websockets[sid] = Connection(ConnectionType.SERVER, extensions=extensions)
        self.conn.send_headers(sid, headers)
        self.flush()

    def websocket_data(self, sid: int, data: bytes) -> None:
        from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

        ws = self.websockets[sid]
        ws.receive_data(data)
        out = b""
        end = False
        for ev in ws.events():
            if isinstance(ev, TextMessage):
                out += ws.send(TextMessage(data=f"echo: {ev.data}"))
                self.echoed.set()
            elif isinstance(ev, BytesMessage):
                out += ws.send(BytesMessage(data=bytes(ev.data)))
            elif isinstance(ev, Ping):
                out += ws.send(ev.response())
            elif isinstance(ev, CloseConnection):
                out += ws.send(ev.response())
                end = True
        if out or end:
            self.conn.send_data(sid, out, end_stream=end)
            self.flush()

    async def after_websocket(self, sid: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.echoed.wait(), 5)
        self.conn.send_headers(sid, [(":status", "200"), ("content-length", "0")],
                               end_stream=True)
        self.flush()

    def respond(self, sid: int) -> None:
        path = self.bodies_path.get(sid, "/")
        headers = [(":status", "200"), ("content-type", "text/plain")]
        if path == "/ws.html":
            body = WS_PAGE.encode()
            self.conn.send_headers(sid, [(":status", "200"), ("content-type", "text/html"),
                                         ("content-length", str(len(body)))])
            self.pending[sid] = body
            self.send_pending()
            return
        if path == "/after-ws":
            task = asyncio.get_running_loop().create_task(self.after_websocket(sid))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        if path.startswith("/big/") or path.startswith("/slow/"):
            n = int(path.rsplit("/", 1)[1])
            self.conn.send_headers(sid, [*headers, ("content-length", str(n))])
            if path.startswith("/slow/"):
                task = asyncio.get_running_loop().create_task(self.slow(sid, n))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                return
            self.pending[sid] = b"x" * n
            self.send_pending()
        elif path.startswith("/short/"):
            n = int(path.rsplit("/", 1)[1])
            self.conn.send_headers(sid, [*headers, ("content-length", str(n))])
            self.pending[sid] = b"s" * (n // 2)
            self.send_pending()
        elif path.startswith("/no-content/"):
            status = path.rsplit("/", 1)[1]
            self.conn.send_headers(sid, [(":status", status), ("content-length", "4")])
            self.conn.send_data(sid, b"oops", end_stream=True)
            self.flush()
        elif path.endswith("/NoTrailers"):
            self.conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            self.conn.send_data(sid, b"\x00\x00\x00\x00\x07\x0a\x05world", end_stream=True)
            self.flush()
        elif path == "/calm":
            self.conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                                       additional_data=b"calm down", last_stream_id=0)
            self.flush()
        elif path == "/then-calm":
            self.conn.send_headers(sid, headers)
            self.conn.send_data(sid, b"hello /then-calm\n", end_stream=True)
            if self.calm:
                self.conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                                           additional_data=b"too_many_pings",
                                           last_stream_id=sid)
            self.flush()
        elif path == "/data-first":
            self.conn.send_data(sid, b"early ")
            self.conn.send_headers(sid, headers, end_stream=True)
            self.flush()
        elif path in ("/reset", "/abort"):
            self.conn.send_headers(sid, headers)
            self.conn.send_data(sid, b"y" * 1000)
            if path == "/reset":
                self.conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                self.flush()
            else:
                self.flush()
                asyncio.get_running_loop().call_later(0.05, self.abort)
        else:
            body = f"hello {path}\n".encode() + bytes(self.bodies.get(sid, b""))
            self.conn.send_headers(sid, [*headers, ("content-length", str(len(body)))])
            self.pending[sid] = body
            self.send_pending()

    def abort(self) -> None:
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close sends a TCP RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    async def slow(self, sid: int, n: int) -> None:
        sent = 0
        while sent < n and self.transport is not None and not self.transport.is_closing():
            piece = min(16384, n - sent, self.conn.local_flow_control_window(sid))
            if piece <= 0:
                await asyncio.sleep(0.02)
                continue
            try:
                self.conn.send_data(sid, b"s" * piece, end_stream=sent + piece == n)
            except h2.exceptions.ProtocolError:
                return
            sent += piece
            self.flush()
            await asyncio.sleep(0.02)

    def send_pending(self) -> None:
        for sid, data in list(self.pending.items()):
            try:
                window = self.conn.local_flow_control_window(sid)
            except h2.exceptions.ProtocolError:
                del self.pending[sid]
                continue
            size = min(window, len(data), self.conn.max_outbound_frame_size)
            while size > 0:
                self.conn.send_data(sid, data[:size])
                data = data[size:]
                window -= size
                size = min(window, len(data), self.conn.max_outbound_frame_size)
            if data:
                self.pending[sid] = data
            else:
                self.conn.end_stream(sid)
                del self.pending[sid]
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self.tasks:
            task.cancel()


class ServerThread:
    """The H2 origin listening on a free loopback port (TLS with ALPN h2, or h2c)."""

    def __init__(self, cert: Path | None = None, key: Path | None = None, *,
                 upgrade: bool = False, websocket: bool = False, calm: bool = True) -> None:
        self.upgrade = upgrade
        self.websocket = websocket
        self.calm = calm
        self.loop = LoopThread()
        ctx = None
        if cert is not None and key is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            ctx.set_alpn_protocols(["h2"])
        self.server = self.loop.run(self._start(ctx))
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _start(self, ctx: ssl.SSLContext | None) -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(
            lambda: H2Origin(upgrade=self.upgrade, websocket=self.websocket, calm=self.calm),
            "127.0.0.1", 0,
            ssl=ctx)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
        self.loop.run(stop())
        self.loop.close()
