"""Byte streams with a read buffer: plain TCP, and TLS driven through memory BIOs.

Why not asyncio's own TLS: the proxy must read the client's ClientHello
*before* deciding how to answer it (architecture principle 2). Bytes read into
:attr:`Stream.buffer` are not consumed until something takes them, so the
peeked ClientHello is simply still there when :class:`TlsStream` starts the
handshake on top (``ssl.MemoryBIO`` + ``SSLObject``). Any TLS alert OpenSSL
produces (ours or a failure) is written out before an error is raised, so
a client always learns why its handshake failed.

Every read returns what is available (at most :data:`CHUNK_SIZE` bytes), so a
relay forwards bytes as they come; writes go through ``drain()`` so a slow
reader on the other side slows the relay down (principle 5).

Each read is one relay step (a write to the other side, an observer feed, a
published batch), so a bulk transfer costs less per byte the more each read
takes: 256 KiB per step instead of 64 KiB measured W3 (10 MiB downloads)
−10 to −25 % proxy CPU per byte and +18 to +49 % throughput in two A/B runs
(docs/performance.md). A read never waits for more: it takes what has
arrived, so latency is unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

READ_SIZE = 64 * 1024
"""The buffer limit unit for asyncio streams (their ``limit`` is twice this)."""
CHUNK_SIZE = 256 * 1024
"""Most bytes one read returns (TCP: asyncio reads at most 256 KiB per ``recv``)."""
#: Most bytes an HTTP/1 head or a peek may grow to before it is refused.
MAX_HEAD = 64 * 1024


class StreamClosed(ConnectionError):
    """The peer closed before the bytes a parser needed arrived."""


class HeadTooLarge(ValueError):
    """More than the limit arrived without the separator."""


class Stream:
    """A byte stream with a pushback buffer. Subclasses implement ``_recv``."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        """Bytes received and not yet consumed."""
        self.at_eof = False
        self.bytes_in = 0
        self.bytes_out = 0

    async def _recv(self) -> bytes:
        raise NotImplementedError

    @property
    def peer_ended(self) -> bool:
        """Whether the peer has ended its bytes (EOF), as far as is known without
        reading: a client that left while h2scope was busy elsewhere."""
        return self.at_eof

    async def fill(self) -> bool:
        """Append one read to :attr:`buffer`; False at end of stream."""
        if self.at_eof:
            return False
        data = await self._recv()
        if not data:
            self.at_eof = True
            return False
        self.bytes_in += len(data)
        self.buffer += data
        return True

    async def read_some(self) -> bytes:
        """Buffered bytes if any, else the next read; b"" at end of stream."""
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        if self.at_eof:
            return b""
        data = await self._recv()
        if not data:
            self.at_eof = True
        self.bytes_in += len(data)
        return data

    async def peek(self, enough: Callable[[bytearray], bool], limit: int = MAX_HEAD) -> bool:
        """Read until ``enough(buffer)``, consuming nothing; False if the stream ended first."""
        while not enough(self.buffer):
            if len(self.buffer) > limit:
                raise HeadTooLarge(f"more than {limit} bytes without a complete message")
            if not await self.fill():
                return enough(self.buffer)
        return True

    async def read_until(self, sep: bytes, limit: int = MAX_HEAD) -> bytes:
        """Bytes up to and including *sep*. Raises StreamClosed or HeadTooLarge."""
        start = 0
        while True:
            i = self.buffer.find(sep, start)
            if i >= 0:
                if i + len(sep) > limit:  # (one fill may bring the separator past it)
                    raise HeadTooLarge(f"more than {limit} bytes before {sep!r}")
                out = bytes(self.buffer[:i + len(sep)])
                del self.buffer[:i + len(sep)]
                return out
            if len(self.buffer) > limit:
                raise HeadTooLarge(f"more than {limit} bytes without {sep!r}")
            start = max(0, len(self.buffer) - len(sep) + 1)
            if not await self.fill():
                raise StreamClosed(f"closed after {len(self.buffer)} bytes, before {sep!r}")

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self.fill():
                raise StreamClosed(f"closed after {len(self.buffer)} of {n} bytes")
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def read_at_most(self, n: int) -> bytes:
        """Up to *n* bytes (at least one); b"" at end of stream."""
        if not self.buffer and not await self.fill():
            return b""
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        raise NotImplementedError

    def write_eof(self) -> None:
        """Half-close: no more bytes will be written."""

    @property
    def writing_paused(self) -> bool:
        """Its peer is not reading what was written (the write buffer is full): a
        pump writing to it waits on it, not on its own peer."""
        return False

    def abort(self) -> None:
        """Close at once (TCP RST where possible)."""

    async def aclose(self) -> None:
        raise NotImplementedError


class TcpStream(Stream, asyncio.Protocol):
    """A TCP connection that is its own asyncio protocol.

    ``data_received`` queues the very ``bytes`` object the transport's ``recv()``
    returned and a read hands it on as it is: no ``StreamReader`` buffer that
    copies every chunk in and out again (about 6 % of the proxy's CPU under
    bulk transfers, docs/performance.md). Bounded both ways (principle 5):
    reading from the socket pauses while more than :data:`CHUNK_SIZE` bytes
    wait to be read, and :meth:`drain` waits while the transport says its
    write buffer is full (``pause_writing``).
    """

    def __init__(self, on_connected: Callable[[TcpStream], object] | None = None) -> None:
        super().__init__()
        self._on_connected = on_connected
        self.transport: asyncio.Transport | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._eof_received = False
        self._lost = False
        self._error: BaseException | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._on_connected is not None:
            self._on_connected(self)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._queued += len(data)
        self._wake_reader()
        if self._queued > CHUNK_SIZE and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    @property
    def peer_ended(self) -> bool:
        return self.at_eof or self._eof_received

    def eof_received(self) -> bool:
        self._eof_received = True
        self._wake_reader()
        return True  # keep the transport open: our side may still send (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._eof_received = True
        if exc is not None and self._error is None:
            self._error = exc
        self._wake_reader()
        for waiter in self._drain_waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        self._drain_waiters.clear()
        if not self._closed.done():
            self._closed.set_result(None)

    @property
    def writing_paused(self) -> bool:
        return self._writing_paused

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- Stream ---------------------------------------------------------------------------

    def get_extra_info(self, name: str) -> Any:
        return self.transport.get_extra_info(name) if self.transport else None

    @property
    def peername(self) -> tuple[str, int]:
        peer = self.get_extra_info("peername")
        return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("?", 0)

    async def _recv(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof_received:
                return b""
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        chunks = self._chunks
        data = chunks.popleft()
        if chunks and len(data) + len(chunks[0]) <= CHUNK_SIZE:
            parts = [data]
            size = len(data)
            while chunks and size + len(chunks[0]) <= CHUNK_SIZE:
                part = chunks.popleft()
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        self._queued -= len(data)
        if self._reading_paused and self._queued <= CHUNK_SIZE // 2 and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            self.bytes_out += len(data)
            transport.write(data)

    async def drain(self) -> None:
        # Like StreamWriter.drain: a failed connection raises, a full write buffer waits.
        if self._error is not None:
            raise self._error
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            if self.transport is not None and self.transport.is_closing():
                await asyncio.sleep(0)  # let connection_lost run (as StreamWriter does)
                if self._lost:
                    raise self._error or ConnectionResetError("Connection lost")
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def write_eof(self) -> None:
        transport = self.transport
        with contextlib.suppress(OSError, RuntimeError):
            if transport is not None and not transport.is_closing() and transport.can_write_eof():
                transport.write_eof()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def aclose(self) -> None:
        if self.transport is not None:
            self.transport.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._closed), 2)


class TlsStream(Stream):
    """TLS over another :class:`Stream`; bytes already in its buffer feed the handshake."""

    def __init__(self, inner: Stream, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=server_hostname)
        self.flight_sent = False
        """Our handshake messages went out (the server's: its certificate) before the
        handshake waited for the peer's: a peer that left before it could not have
        read them."""
        self._closed_notify = False
        self.client_cert: Path | None = None
        """The client certificate file this (client-side) leg presents, if any."""

    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            self.inner.write(pending)

    async def _feed(self) -> bool:
        data = await self.inner.read_some()
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    async def handshake(self) -> None:
        """Complete the handshake; raises ``ssl.SSLError`` (after sending any alert)
        or :class:`StreamClosed` if the peer left in the middle."""
        while True:
            try:
                self.ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                flight = self.outgoing.pending > 0
                self._flush()
                await self.inner.drain()
                self.flight_sent |= flight
                if not await self._feed():
                    raise StreamClosed("the peer closed the connection during the TLS "
                                       "handshake") from None
            except ssl.SSLError:
                self._flush()
                with contextlib.suppress(OSError):
                    await self.inner.drain()
                raise
        self._flush()
        await self.inner.drain()

    async def _recv(self) -> bytes:
        while True:
            try:
                return self._read_available(self.ssl.read(CHUNK_SIZE))
            except ssl.SSLWantReadError:
                self._flush()
                if not await self._feed():
                    with contextlib.suppress(ssl.SSLError):
                        return self.ssl.read(CHUNK_SIZE)
                    return b""
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLEOFError:
                return b""
            finally:
                # TLS 1.3 tickets and key updates answer from inside read().
                if self.outgoing.pending:
                    self._flush()

    def _read_available(self, first: bytes) -> bytes:
        """``first`` plus whatever else is already decryptable, up to CHUNK_SIZE.

        ``SSLObject.read`` returns at most one TLS record (16 KiB); taking every
        record already received makes one relay step (write, observe, publish)
        per read instead of per record."""
        if not first or len(first) >= CHUNK_SIZE or not (self.incoming.pending or
                                                         self.ssl.pending()):
            return first
        parts = [first]
        size = len(first)
        while size < CHUNK_SIZE and (self.incoming.pending or self.ssl.pending()):
            try:
                more = self.ssl.read(CHUNK_SIZE - size)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break  # the next _recv() call reports EOF or waits, as before
            if not more:
                break
            parts.append(more)
            size += len(more)
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        if not data or self._closed_notify:
            return
        self.bytes_out += len(data)
        view = memoryview(data)
        while view:
            n = self.ssl.write(view)
            view = view[n:]
        self._flush()

    async def drain(self) -> None:
        await self.inner.drain()

    def write_eof(self) -> None:
        # RFC 8446 §6.1: close_notify is TLS's half-close.
        if self._closed_notify:
            return
        self._closed_notify = True
        with contextlib.suppress(ssl.SSLError):
            self.ssl.unwrap()
        self._flush()
        self.inner.write_eof()

    def abort(self) -> None:
        self.inner.abort()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def tcp(self) -> Stream:
        return self.inner

    @property
    def writing_paused(self) -> bool:
        return self.inner.writing_paused


def connect_failure(exc: BaseException) -> str:
    """Why a connection could not be made, in words (not ``[Errno 111] Connect call
    failed ('127.0.0.1', 1)``): ``connection refused``, ``cannot resolve the name
    (Name or service not known)``, ``no answer within 10 s``."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the name ({exc.strerror or exc})"
    if isinstance(exc, OwnListener):
        return str(exc.strerror)
    if isinstance(exc, TimeoutError) and not getattr(exc, "errno", None):
        return "no answer in time"
    if isinstance(exc, OSError) and (exc.errno or exc.strerror):
        # (asyncio's "Connect call failed (addr)" hides the reason the errno has)
        text = os.strerror(exc.errno) if exc.errno else str(exc.strerror)
        return text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__


def hostport(host: str, port: int | str) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class OwnListener(ConnectionRefusedError):
    """The address connected to is one of h2scope's own listeners: relaying there
    would loop (each request opening another connection to itself until the
    descriptors run out)."""


async def open_tcp(host: str, port: int, *, timeout: float,
                   own: Sequence[tuple[str, int]] = ()) -> TcpStream:
    """Connect to *host*:*port*; raises OSError or TimeoutError — OwnListener when
    it reached one of ``own``, the addresses h2scope listens on."""
    loop = asyncio.get_running_loop()
    # (RFC 6761 §6.3: names under .localhost are loopback; browsers and curl map them
    # themselves, and a resolver need not know them)
    address = "localhost" if host.lower().rstrip(".").endswith(".localhost") else host
    async with asyncio.timeout(timeout):
        _, stream = await loop.create_connection(TcpStream, address, port)
    if own and _reaches(stream, own):
        stream.abort()
        raise OwnListener(errno.ECONNREFUSED, f"{hostport(host, port)} is h2scope's own "
                          "listener: relaying there would loop back into h2scope; point the "
                          "client or the mode at the real server")
    return stream


def _reaches(stream: TcpStream, own: Sequence[tuple[str, int]]) -> bool:
    peer, local = stream.get_extra_info("peername"), stream.get_extra_info("sockname")
    if not isinstance(peer, tuple) or not isinstance(local, tuple):
        return False
    ip, port = str(peer[0]), int(peer[1])
    return any(port == lport and (ip == lip or (lip in ("0.0.0.0", "::") and ip == local[0]))
               for lip, lport in own)
