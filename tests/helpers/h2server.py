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
* anything else — 200 ``hello <path>`` (the request body is echoed after it).

Cleartext with ``upgrade=True`` it also accepts ``Upgrade: h2c`` (nghttpd
1.52 does not: it sends its SETTINGS first, so ``curl --http2`` to it fails
even without a proxy). Runs on its own event loop in a thread (:class:`ServerThread`), so sync tests
drive it with real clients.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from tests.helpers.loop_thread import LoopThread


class H2Origin(asyncio.Protocol):
    def __init__(self, *, upgrade: bool = False) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.transport: asyncio.Transport | None = None
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
            if isinstance(ev, h2.events.RequestReceived):
                self.bodies[ev.stream_id] = bytearray()
                self.headers = dict(ev.headers)
                path = dict(ev.headers)[b":path"].decode()
                self.bodies_path = getattr(self, "bodies_path", {})
                self.bodies_path[ev.stream_id] = path
            elif isinstance(ev, h2.events.DataReceived):
                self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.respond(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                self.send_pending()
        self.flush()

    def respond(self, sid: int) -> None:
        path = self.bodies_path.get(sid, "/")
        headers = [(":status", "200"), ("content-type", "text/plain")]
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
                 upgrade: bool = False) -> None:
        self.upgrade = upgrade
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
            lambda: H2Origin(upgrade=self.upgrade), "127.0.0.1", 0, ssl=ctx)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
        self.loop.run(stop())
        self.loop.close()
