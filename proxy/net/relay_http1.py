"""The HTTP/1.1 relay: messages pass through byte for byte, each one logged.

One request at a time: read the request head, forward it, then forward the
request body (framed as its head says) while reading the response(s) — so
``Expect: 100-continue`` works, interim responses pass, and the final
response's body is forwarded as its framing says. Keep-alive continues with
the next request; ``Connection: close`` or a body delimited by close ends it.

After a ``101 Switching Protocols`` the relay stops parsing: ``h2c`` switches
to HTTP/2 frame mode (the observer learns the HTTP2-Settings and the request,
RFC 7540 §3.2), anything else (WebSocket, ...) is piped as opaque bytes.

As an explicit proxy (``forward_proxy``) requests arrive in absolute form
(``GET http://host/path HTTP/1.1``): the target picks the upstream connection
and the request line is sent in origin form (RFC 9112 §3.2.1); that line and
``Proxy-Authorization`` (removed) are the only bytes changed. Through an
upstream proxy (``upstream:`` mode) the absolute form stays, the client's
``Proxy-Authorization`` is removed and ``upstream.auth``'s added; what is
recorded is the head as the client sent it, credentials cut to their scheme.
``http://h2scope/`` is answered with the CA page, CONNECT is handed to the
tunnel code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

from certs import page
from proxy.events import (
    Closer,
    H2cUpgraded,
    Http1MessageObserved,
    ProxyEvent,
    RelayStarted,
    TargetChosen,
)
from proxy.net import http1, upstream_proxy
from proxy.net.client_certs import explain_alert
from proxy.net.context import CONNECT_TIMEOUT, REQUEST_TIMEOUT, Conn, hostport
from proxy.net.http1 import Framing, Head, Http1Error, RequestHead, ResponseHead
from proxy.net.relay import relay
from proxy.net.streams import HeadTooLarge, Stream, StreamClosed, connect_failure, open_tcp
from proxy.net.upstream_proxy import authorization, open_proxy, refusal
from proxy.observe.enums import Direction

ALERT_GRACE = 0.5
"""Seconds a failed write to the server waits to read the TLS alert that says why."""

log = logging.getLogger("h2scope.http1")

IDLE_TIMEOUT = 300.0
"""Seconds a keep-alive connection may sit idle between requests."""
PAGE_HOST = "h2scope"

ConnectHandler = Callable[[RequestHead], Awaitable[None]]


class _HeadTooLarge(Http1Error):
    """A message head past the limit (a request's gets 431, RFC 6585 §5)."""


class _Done(Exception):
    """Ends the relay; ``args`` = (closer, reason, error)."""

    def __init__(self, closer: Closer, reason: str, error: str | None = None) -> None:
        super().__init__(closer, reason, error)
        self.closer, self.reason, self.error = closer, reason, error


class _Handed(Exception):
    """The connection was handed to another relay (upgrade, CONNECT): it reports the close."""


def _unparsed_hint(data: bytes) -> str | None:
    """What bytes a server sent instead of an HTTP/1.1 response look like."""
    if len(data) >= 9 and data[3] == 0x04 and data[4] & ~0x01 == 0 and data[5:9] == bytes(4):
        # An HTTP/2 SETTINGS frame on stream 0: a server that speaks h2c by prior
        # knowledge only, and ignored the Upgrade: h2c request (RFC 9113 §3.3).
        return ("these are an HTTP/2 SETTINGS frame: the server speaks HTTP/2 without "
                "TLS by prior knowledge and ignores Upgrade: h2c; have the client use "
                "prior knowledge (curl --http2-prior-knowledge)")
    return None


async def _line(src: Stream, limit: int, what: str) -> bytes:
    """One line of chunked framing, which must end with CRLF (a bare LF would leave
    the relay waiting for a CRLF that never comes)."""
    try:
        line = await src.read_until(b"\n", limit=limit)
    except HeadTooLarge:
        raise http1.Http1Error(f"a {what} longer than {limit} bytes") from None
    if not line.endswith(b"\r\n"):
        if what == "chunk size line":  # (the size is the clue: a body sent unchunked)
            http1.parse_chunk_size(line)
        raise http1.Http1Error(f"a {what} that ends with a bare LF, not CRLF (RFC 9112 §7.1)")
    return line


LINGER_SECONDS = 1.0
LINGER_BYTES = 4 << 20
"""How long, and how much, a rejected client's bytes in flight are read and dropped
before the connection is closed (:meth:`Http1Relay._linger`)."""


class Http1Relay:
    """Relays one client connection's HTTP/1.x messages; see the module docstring."""

    def __init__(self, conn: Conn, client: Stream, server: Stream | None, *,
                 forward_proxy: bool = False, on_connect: ConnectHandler | None = None,
                 scheme: str = "http") -> None:
        self.conn = conn
        self.client = client
        self.server = server
        self._chunked_sent = [0, 0]
        """Per direction: bytes of the chunked body being forwarded, so far."""
        self._trailers: list[list[tuple[str, str]]] = [[], []]
        """Per direction: the trailer fields of the chunked body just forwarded."""
        self.server_target: str | None = conn.target if server is not None else None
        self.forward_proxy = forward_proxy
        self._fresh_server = False
        """Explicit proxy: the server connection was opened for the request at hand."""
        self.on_connect = on_connect
        self.scheme = scheme
        self.requests = 0
        self._response_begun = False
        """The current exchange's response (or an interim one) went to the client."""
        self._request_pending = False
        """The current request's body is still being forwarded: its message event,
        published at its end, must come before the interim responses' (a 100 Continue
        answers it)."""
        self._interim: list[Http1MessageObserved] = []
        self._relay_said = not forward_proxy
        """A RelayStarted was published (forward proxying: at the first connection made)."""
        self._unseen = False
        """The current exchange goes to a host ignore_hosts (or allow_hosts) passes through:
        relayed, but neither its bytes nor its messages are published (not printed, not
        recorded), as a passed-through tunnel's are not."""
        self._earlier_servers = 0
        """Bytes from the servers this connection was relayed to before the current one
        (a proxy connection kept alive across hosts)."""
        conn.byte_counts = lambda: (self.client.bytes_in, self._earlier_servers + (
            self.server.bytes_in if self.server else 0))

    # ------------------------------------------------------------------ driving

    async def run(self) -> None:
        """Relay until the connection ends; publishes ConnectionClosed (unless handed over)."""
        try:
            while True:
                await self._exchange()
        except _Handed:
            return
        except _Done as done:
            closer, reason, error = done.closer, done.reason, done.error
        except ssl.SSLError as exc:
            closer, reason, error = await self._tls_refused(exc)
        except (ConnectionError, OSError) as exc:
            closer, reason = Closer.PROXY, "connection failed"
            error = str(exc) or type(exc).__name__
        await self._close_all(graceful=error is None)
        await self.conn.closed(closer, reason, error)

    async def _server_alert(self) -> ssl.SSLError | None:
        """A server that refuses the connection (a TLS 1.3 server wanting a client
        certificate) sends its alert and resets the connection as the request's
        bytes arrive: the write fails first, and the alert is still to be read."""
        if self.server is None:
            return None
        try:
            async with asyncio.timeout(ALERT_GRACE):
                await self.server.read_some()
        except ssl.SSLError as exc:
            return exc
        except (ConnectionError, OSError, TimeoutError, StreamClosed):
            pass
        return None

    async def _tls_refused(self, exc: ssl.SSLError) -> tuple[Closer, str, str]:
        """A TLS alert ended the relay: a server that wants a client certificate
        (TLS 1.3 asks after the handshake, so its refusal comes as the response is
        read) is said with the --client-certs hint, as on the HTTP/2 relay, and a
        client still waiting for its response gets a 502 that says it."""
        explained = explain_alert(exc.reason or str(exc), self.conn.target or "the server",
                                  getattr(self.server, "client_cert", None))
        if explained is None:
            return Closer.PROXY, "connection failed", str(exc) or type(exc).__name__
        await self.conn.error("server-tls", *explained)
        if not self._response_begun:
            self.client.write(http1.simple_response(
                502, "Bad Gateway", f"h2scope: {explained[0]}\n",
                extra=(("Connection", "close"),)))
            with contextlib.suppress(ConnectionError, OSError):
                await self.client.drain()
        return Closer.SERVER, "the server refused the TLS connection", explained[0]

    async def _close_all(self, *, graceful: bool) -> None:
        streams = [s for s in (self.client, self.server) if s is not None]
        for s in streams:
            if not graceful:
                s.abort()
            else:
                s.write_eof()
        await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)

    async def _read_head(self, stream: Stream, who: Closer) -> bytes | None:
        try:
            return await stream.read_until(b"\r\n\r\n")
        except StreamClosed:
            if stream.buffer.strip():
                if who is Closer.SERVER:
                    await self._pass_on_unparsed(stream)
                raise _Done(who, f"{who.name.lower()} closed in the middle of a message head"
                            ) from None
            return None
        except HeadTooLarge as exc:
            raise _HeadTooLarge(str(exc)) from None

    async def _pass_on_unparsed(self, server: Stream) -> None:
        """The server closed after bytes that are no HTTP/1.1 response head (an HTTP/0.9
        reply, an HTTP/2 server's SETTINGS, a banner): the client gets them as they
        were — the relay never drops what a server said — and the UI is told what
        they were."""
        data = await server.read_some()
        await self.conn.error("http1", f"the server closed after {len(data)} bytes that are "
                              f"not an HTTP/1.1 response head: {bytes(data[:60])!r}"
                              f"{'…' if len(data) > 60 else ''}; passed on to the client "
                              "as they were", _unparsed_hint(data))
        with contextlib.suppress(ConnectionError, OSError):
            self.client.write(data)
            await self.client.drain()
        await self._publish(Direction.S2C, data, ())

    async def _wait_request(self) -> bytes | None:
        """The next request head; None when the client closes between requests."""
        if self.forward_proxy or self.server is None or self.client.buffer:
            if not self.client.buffer:
                async with asyncio.timeout(IDLE_TIMEOUT):  # (a kept-alive connection, idle)
                    await self.client.peek(bool)
            return await self._head_in_time()
        # Fixed upstream: watch the server too, it may close the idle connection.
        server = self.server
        client_wait = asyncio.create_task(self.client.peek(bool))
        server_wait = asyncio.create_task(server.peek(bool))
        try:
            done, _ = await asyncio.wait({client_wait, server_wait}, timeout=IDLE_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (client_wait, server_wait):
                task.cancel()
            await asyncio.gather(client_wait, server_wait, return_exceptions=True)
        if not done:
            raise _Done(Closer.PROXY, f"idle for {IDLE_TIMEOUT:.0f} s")
        if server_wait in done:
            if server.buffer:
                # Unsolicited bytes (a 408, say): pass them on, then close.
                data = await server.read_some()
                self.client.write(data)
                await self.client.drain()
            raise _Done(Closer.SERVER, "server closed the idle connection")
        return await self._head_in_time()

    async def _head_in_time(self) -> bytes | None:
        """A request head that has begun must end within REQUEST_TIMEOUT (a client that
        sends half a head and stops held the connection for the idle timeout): else a
        408, as RFC 9110 §15.5.9 has it."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await self._read_head(self.client, Closer.CLIENT)
        except TimeoutError:
            await self._reject_request(f"the request head did not end within "
                                       f"{REQUEST_TIMEOUT:.0f} s", status=408,
                                       reason="Request Timeout")

    # ---------------------------------------------------------------- exchange

    async def _exchange(self) -> None:
        try:
            raw = await self._wait_request()
        except TimeoutError:
            raise _Done(Closer.PROXY, f"idle for {IDLE_TIMEOUT:.0f} s") from None
        except _HeadTooLarge as exc:  # RFC 6585 §5: the status for it
            await self._reject_request(f"the request head is too large ({exc})", status=431,
                                       reason="Request Header Fields Too Large")
        except Http1Error as exc:
            await self._reject_request(str(exc))
        if raw is None:
            raise _Done(Closer.CLIENT, "client closed the connection")
        started = time.time()
        try:
            request = http1.parse_request_head(raw)
            req_framing, req_length = http1.request_framing(request)
        except Http1Error as exc:
            await self._reject_request(str(exc))
        self.requests += 1
        self._response_begun = False
        forwarded = recorded = raw
        if self.forward_proxy:
            forwarded = recorded = await self._route(request)
            if not forwarded:
                return
            if self.conn.via_proxy:  # (upstream.auth's header is for the wire only)
                recorded = _cut_credentials(raw)
        assert self.server is not None
        server = self.server
        server.write(forwarded)
        await self._publish(Direction.C2S, recorded, ())
        try:
            await server.drain()
        except (ConnectionError, OSError) as exc:
            alert = await self._server_alert()
            if alert is not None:  # (why it went: a TLS alert, read before the reset)
                raise alert from None
            raise _Done(Closer.SERVER, "server went away", str(exc)) from None

        self._request_pending = req_framing is not Framing.NONE
        if req_framing is Framing.NONE:
            await self._publish(Direction.C2S, b"", (self._message(
                Direction.C2S, request, len(raw), 0, started, time.time()),))
        body_task = asyncio.create_task(
            self._forward_body(self.client, server, req_framing, req_length, Direction.C2S,
                               request, started))
        try:
            response, resp_framing = await self._response_or_body_error(request, started,
                                                                        body_task)
            upgraded = response.status == 101 or (
                request.method == "CONNECT" and 200 <= response.status < 300)
            if not upgraded:
                await self._forward_body(server, self.client, resp_framing[0], resp_framing[1],
                                         Direction.S2C, response, started)
            if not body_task.done():
                if not upgraded:
                    # The response is complete while the request body is not (an early
                    # 4xx, a refused Expect): the connection can't be reused.
                    body_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, _Done):
                        await body_task
                    raise _Done(Closer.PROXY, "response completed before the request body")
            else:
                body_task.result()
        finally:
            if not body_task.done():
                body_task.cancel()
                with contextlib.suppress(BaseException):
                    await body_task
        if upgraded:
            await self._upgrade(request, response)
        if resp_framing[0] is Framing.UNTIL_CLOSE:
            raise _Done(Closer.SERVER, "server closed the connection (end of response body)")
        if not http1.keeps_alive(request):
            raise _Done(Closer.CLIENT, "client asked to close (Connection: close)")
        if not http1.keeps_alive(response):
            raise _Done(Closer.SERVER, "server asked to close (Connection: close)")

    async def _response_or_body_error(self, request: RequestHead, started: float,
                                      body_task: asyncio.Task[int],
                                      ) -> tuple[ResponseHead, tuple[Framing, int]]:
        """The response head (:meth:`_responses`); but when the request body fails
        first (invalid chunked framing, the client gone), that ends the exchange
        at once: the server, still waiting for the body, would never answer. An
        invalid body gets the client a 400 when no response has begun."""
        responses = asyncio.create_task(self._responses(request, started))
        try:
            await asyncio.wait((responses, body_task), return_when=asyncio.FIRST_COMPLETED)
            failed = body_task.done() and not body_task.cancelled() and \
                body_task.exception() is not None
            if failed and not responses.done():
                responses.cancel()
                with contextlib.suppress(BaseException):
                    await responses
                exc = body_task.exception()
                if isinstance(exc, _Done) and exc.closer is Closer.PROXY and \
                        not self._response_begun:
                    self.client.write(http1.simple_response(
                        400, "Bad Request",
                        f"h2scope: invalid HTTP/1.1 request body: {exc.error}\n",
                        extra=(("Connection", "close"),)))
                    with contextlib.suppress(ConnectionError, OSError):
                        await self.client.drain()
                assert exc is not None
                raise exc
            return await responses
        finally:
            if not responses.done():
                responses.cancel()
                with contextlib.suppress(BaseException):
                    await responses

    async def _responses(self, request: RequestHead, started: float
                         ) -> tuple[ResponseHead, tuple[Framing, int]]:
        """Forward interim responses; return the final (or 101) head, already forwarded."""
        assert self.server is not None
        while True:
            try:
                if self.conn.via_proxy and self._fresh_server and not self._request_pending:
                    # (a proxy that took the connection and never answers: bounded, as
                    # CONNECT's answer is; a request with a body may wait for its upload)
                    async with asyncio.timeout(upstream_proxy.REPLY_TIMEOUT):
                        raw = await self._read_head(self.server, Closer.SERVER)
                else:
                    raw = await self._read_head(self.server, Closer.SERVER)
            except Http1Error as exc:
                await self._bad_gateway(f"the server sent an oversized response head: {exc}")
            except TimeoutError:
                await self._proxy_failed(
                    f"the upstream proxy {self.conn.mode.address} did not answer "
                    f"{_request_line(request)} within {upstream_proxy.REPLY_TIMEOUT:g} s",
                    504, "Gateway Timeout")
            if raw is None:
                if self.forward_proxy and self._fresh_server and not self._response_begun:
                    # (a new connection's first request, unanswered: no keep-alive race
                    # a client would retry; most often a TLS port given an http:// URL)
                    why = (f"{self.server_target} closed the connection without answering "
                           "(if it is a TLS port, use https:// in the URL)")
                    await self.conn.error("http1", why)
                    self.client.write(http1.simple_response(
                        502, "Bad Gateway", f"h2scope: {why}\n",
                        extra=(("Connection", "close"),)))
                    with contextlib.suppress(ConnectionError, OSError):
                        await self.client.drain()
                raise _Done(Closer.SERVER, "server closed the connection before responding")
            self._fresh_server = False
            try:
                response = http1.parse_response_head(raw)
                framing = http1.response_framing(response, request.method)
            except Http1Error as exc:
                await self._bad_gateway(f"the server sent an invalid response: {exc}")
            if response.status == 407 and self.forward_proxy and self.conn.via_proxy:
                # The upstream proxy wants credentials the client cannot give: h2scope
                # never passes a client's Proxy-Authorization on (as for CONNECT).
                await self._proxy_failed(refusal(
                    self.conn.mode.address, _request_line(request), response,
                    self.conn.state.options.upstream_auth), 502, "Bad Gateway")
            self._response_begun = True
            self.client.write(raw)
            await self.client.drain()
            t = time.time()
            if 100 <= response.status < 200 and response.status != 101:
                interim = self._message(Direction.S2C, response, len(raw), 0, t, t)
                if self._request_pending:  # (said after the request it answers)
                    await self._publish(Direction.S2C, raw, ())
                    self._interim.append(interim)
                else:
                    await self._publish(Direction.S2C, raw, (interim,))
                continue
            if response.status == 101 or framing[0] is Framing.NONE:
                message = self._message(Direction.S2C, response, len(raw), 0, t, t)
                if self._request_pending and response.status != 101:
                    await self._publish(Direction.S2C, raw, ())  # (said after the request)
                    self._interim.append(message)
                else:
                    await self._publish(Direction.S2C, raw, (message,))
                return response, (Framing.NONE, 0) if response.status == 101 else framing
            await self._publish(Direction.S2C, raw, ())
            return response, framing

    async def _forward_body(self, src: Stream, dst: Stream, framing: Framing, length: int,
                            direction: Direction, head: Head, started: float) -> int:
        """Forward one body as framed; publishes the message event at its end."""
        who = Closer.CLIENT if direction is Direction.C2S else Closer.SERVER
        size = 0
        self._trailers[direction] = []
        if framing is Framing.NONE:
            return 0
        try:
            if framing is Framing.LENGTH:
                left = length
                while left:
                    data = await src.read_at_most(min(left, 65536))
                    if not data:
                        raise StreamClosed(f"closed {length - left} bytes into a "
                                           f"{length}-byte body")
                    left -= len(data)
                    size += await self._send(dst, data, direction)
            elif framing is Framing.CHUNKED:
                size = await self._forward_chunked(src, dst, direction)
            elif framing is Framing.UNTIL_CLOSE:
                while data := await src.read_some():
                    size += await self._send(dst, data, direction)
        except StreamClosed as exc:
            if framing is Framing.CHUNKED:
                size = self._chunked_sent[direction]  # (what got through before the cut)
            await self._publish(direction, b"", (self._message(
                direction, head, len(head.raw), size, started, time.time(), complete=False),))
            await self._request_said(direction)
            raise _Done(who, f"{who.name.lower()} closed in the middle of a message body",
                        str(exc)) from None
        except asyncio.CancelledError:
            # A request body given up on (the response came first: a 413, a refused
            # Expect): its message is said as far as it went, not left out of the log.
            if framing is Framing.CHUNKED:
                size = self._chunked_sent[direction]
            with contextlib.suppress(Exception):
                await self._publish(direction, b"", (self._message(
                    direction, head, len(head.raw), size, started, time.time(),
                    complete=False),))
                await self._request_said(direction)
            raise
        except Http1Error as exc:
            # The message as far as it went (its head was passed on: the peer has it),
            # then the error that cut it.
            await self._publish(direction, b"", (self._message(
                direction, head, len(head.raw), self._chunked_sent[direction], started,
                time.time(), complete=False),))
            await self._request_said(direction)
            await self.conn.error("http1", f"{who.name.lower()} sent invalid chunked framing: "
                                  f"{exc}")
            raise _Done(Closer.PROXY, "invalid HTTP/1.1 body framing", str(exc)) from None
        message = self._message(direction, head, len(head.raw), size, started, time.time(),
                                trailers=tuple(self._trailers[direction]))
        if direction is Direction.S2C and self._request_pending:
            # A response complete before its request's body (a 413, a refused Expect):
            # said after the request, as the interim ones are, so the log reads in order.
            self._interim.append(message)
        else:
            await self._publish(direction, b"", (message,))
        await self._request_said(direction)
        return size

    async def _request_said(self, direction: Direction) -> None:
        """The request's message event is out: the interim responses held for it follow."""
        if direction is Direction.C2S:
            self._request_pending = False
            interim, self._interim = self._interim, []
            if interim:
                await self._publish(Direction.S2C, b"", tuple(interim))

    async def _forward_chunked(self, src: Stream, dst: Stream, direction: Direction) -> int:
        """A chunked body (RFC 9112 §7.1), checked as it goes: a framing error is
        found before its bytes are passed on, so the peer never gets a body the
        sender framed wrong (a request smuggling vector)."""
        size = self._chunked_sent[direction] = 0
        while True:
            line = await _line(src, 4096, "chunk size line")
            chunk = http1.parse_chunk_size(line)
            size = self._chunked_sent[direction] = size + await self._send(dst, line, direction)
            if chunk == 0:
                # RFC 9112 §7.1.2: trailer fields, then the final CRLF.
                while True:
                    trailer = await _line(src, 16384, "trailer field")
                    if b"\x00" in trailer:  # (as in a header, RFC 9110 §5.5)
                        raise http1.Http1Error("NUL in a trailer field")
                    size += await self._send(dst, trailer, direction)
                    if trailer == b"\r\n":
                        return size
                    name, colon, value = trailer[:-2].decode("latin-1").partition(":")
                    if colon:  # (a malformed line is passed on as sent, not listed)
                        self._trailers[direction].append((name, value.strip(" \t")))
            left = chunk
            while left:
                data = await src.read_at_most(min(left, 65536))
                if not data:
                    raise StreamClosed("closed inside a chunk")
                left -= len(data)
                size = self._chunked_sent[direction] = size + await self._send(dst, data,
                                                                           direction)
            end = await src.read_exactly(2)
            if end != b"\r\n":
                raise http1.Http1Error(f"chunk data not followed by CRLF (got {end!r})")
            size = self._chunked_sent[direction] = size + await self._send(dst, end, direction)

    async def _send(self, dst: Stream, data: bytes, direction: Direction) -> int:
        # Published between the write and the drain, with no await in between (the
        # sinks' back-pressure comes first): the other direction cannot publish an
        # answer to these bytes before them (see relay._pump).
        if not self._unseen:
            await self.conn.room()
        dst.write(data)
        if not self._unseen:
            self.conn.put_chunk(direction, data, time.time(), (), "http/1.1")
        try:
            await dst.drain()
        except (ConnectionError, OSError) as exc:
            who = Closer.SERVER if direction is Direction.C2S else Closer.CLIENT
            raise _Done(who, f"{who.name.lower()} went away", str(exc)) from None
        return len(data)

    async def _publish(self, direction: Direction, data: bytes,
                       events: tuple[ProxyEvent, ...]) -> None:
        if self._unseen:
            return
        await self.conn.publish_chunk(direction, data, time.time(), events, "http/1.1")

    def _message(self, direction: Direction, head: Head, head_size: int, body: int,
                 started: float, ended: float, *, complete: bool = True,
                 trailers: tuple[tuple[str, str], ...] = ()) -> Http1MessageObserved:
        headers = head.headers
        if direction is Direction.C2S:
            headers = without_proxy_credentials(headers)
        return Http1MessageObserved(conn_id=self.conn.id, t=ended, direction=direction,
                                    start_line=head.start_line, headers=headers,
                                    head_size=head_size, body_size=body, started=started,
                                    duration=max(0.0, ended - started), complete=complete,
                                    trailers=trailers)

    # ----------------------------------------------------------------- errors

    async def _reject_request(self, why: str, *, status: int = 400,
                              reason: str = "Bad Request") -> NoReturn:
        await self.conn.error("http1", f"invalid HTTP/1.1 request from the client: {why}")
        self.client.write(http1.simple_response(status, reason,
                                                f"h2scope: invalid HTTP/1.1 request: {why}\n",
                                                extra=(("Connection", "close"),)))
        with contextlib.suppress(ConnectionError, OSError):
            await self.client.drain()
        await self._linger()
        raise _Done(Closer.PROXY, "invalid request", why)

    async def _linger(self) -> None:
        """Before closing on a client still sending (a 431 answers a head still
        arriving): end our side and read what is in flight, briefly, so the kernel
        does not reset the connection with bytes unread — a reset can discard the
        answer before the client reads it (RFC 9112 §9.6, "tear-down")."""
        with contextlib.suppress(Exception):
            self.client.write_eof()
            loop = asyncio.get_running_loop()
            deadline, budget = loop.time() + LINGER_SECONDS, LINGER_BYTES
            while budget > 0 and (left := deadline - loop.time()) > 0:
                async with asyncio.timeout(left):
                    data = await self.client.read_some()
                if not data:
                    break
                budget -= len(data)

    async def _bad_gateway(self, why: str) -> NoReturn:
        await self.conn.error("http1", why)
        self.client.write(http1.simple_response(502, "Bad Gateway", f"h2scope: {why}\n",
                                                extra=(("Connection", "close"),)))
        with contextlib.suppress(ConnectionError, OSError):
            await self.client.drain()
        raise _Done(Closer.PROXY, "invalid response from the server", why)

    async def _proxy_failed(self, why: str, status: int, reason: str) -> NoReturn:
        """The upstream proxy refused the request (a 407) or did not answer: said as the
        CONNECT path says it, and the client gets *status* with that line."""
        await self.conn.error("connect", why)
        self.client.write(http1.simple_response(status, reason, f"h2scope: {why}\n",
                                                extra=(("Connection", "close"),)))
        with contextlib.suppress(ConnectionError, OSError):
            await self.client.drain()
        raise _Done(Closer.PROXY, "the upstream proxy failed the request", why)

    # ---------------------------------------------------------------- upgrades

    async def _upgrade(self, request: RequestHead, response: ResponseHead) -> None:
        assert self.server is not None
        protocol = (response.get("upgrade") or "tcp").strip().lower() or "tcp"
        if request.method == "CONNECT":
            protocol = "tcp"
        observer = None
        if response.status == 101 and protocol == "h2c" and not self._unseen:
            observer = self.conn.state.new_observer()
            decoded, headers = http1.h2c_upgrade(request, self.scheme)
            if decoded is None:
                await self.conn.error("http1", "the HTTP2-Settings header is not base64url")
            settings = decoded or b""
            t = time.time()
            upgraded = H2cUpgraded(conn_id=self.conn.id, t=t, http2_settings=settings,
                                   request_headers=headers)
            events = observer.upgrade_h2c(http2_settings=settings, request_headers=headers, t=t)
            await self.conn.publish_chunk(Direction.S2C, b"", t, [upgraded, *events], "h2c")
        await self.conn.emit(RelayStarted(conn_id=self.conn.id, t=time.time(), protocol=protocol,
                                          target=self.server_target or "?",
                                          server_ip=self.conn.server_ip()))
        await relay(self.conn, self.client, self.server, protocol=protocol, observer=observer,
                    publish=not self._unseen)
        raise _Handed()

    # ------------------------------------------------------- explicit proxying

    async def _route(self, request: RequestHead) -> bytes:
        """Pick the upstream for an explicit-proxy request; returns the head to send,
        or b"" if h2scope answered the request itself."""
        state = self.conn.state
        if request.method == "CONNECT":
            if self.on_connect is None:
                await self._reject_request("CONNECT is not supported here")
            if not state.check_basic(request.get("proxy-authorization")):
                await self._auth_required(request.get("proxy-authorization"))
            assert self.on_connect is not None
            await self.on_connect(request)
            raise _Handed()
        target = request.target
        if target.startswith("/") or target == "*":
            host = (request.get("host") or "").split(":")[0].lower()
            if host == PAGE_HOST:
                await self._page(request, target)
                return b""
            await self._reject_request(
                "h2scope is a proxy: send requests in absolute form (http://host/path) "
                "or tunnel with CONNECT")
        try:
            scheme, host, port, path = http1.absolute_target(target)
        except Http1Error as exc:
            await self._reject_request(str(exc))
        if host.lower() == PAGE_HOST:
            await self._page(request, path)
            return b""
        if not state.check_basic(request.get("proxy-authorization")):
            await self._auth_required(request.get("proxy-authorization"))
        if scheme != "http":
            await self._reply(501, "Not Implemented", f"h2scope: {target} — use CONNECT for "
                              "https:// through a proxy\n", request)
            return b""
        where = hostport(host, port)
        self._unseen = unseen = state.ignored(host, port)
        if self.server is None or self.server_target != where or self.server.at_eof:
            if self.server is not None:
                self.server.write_eof()
                await self.server.aclose()
                self._earlier_servers += self.server.bytes_in
                self.server = None
            self.conn.target = where
            await self.conn.emit(TargetChosen(conn_id=self.conn.id, t=time.time(), target=where,
                                              via="HTTP", intercept=not unseen))
            try:
                own = self.conn.state.listening
                if self.conn.via_proxy:  # the upstream proxy takes the absolute form
                    self.server = await open_proxy(self.conn.mode, timeout=CONNECT_TIMEOUT,
                                                   own=own)
                else:
                    self.server = await open_tcp(host, port, timeout=CONNECT_TIMEOUT, own=own)
                self.conn.streams.append(self.server)
                if not self._relay_said:  # (what the recording's metadata keeps: the first)
                    self._relay_said = True
                    await self.conn.emit(RelayStarted(
                        conn_id=self.conn.id, t=time.time(), protocol="http/1.1", target=where,
                        server_ip=self.conn.server_ip()))
            except (OSError, TimeoutError) as exc:
                reason = connect_failure(exc)
                await self.conn.error("connect", f"cannot connect to {where}: {reason}",
                                      self.conn.connect_hint(exc, host))
                await self._reply(502, "Bad Gateway",
                                  f"h2scope: cannot connect to {where}: {reason}\n", request)
                return b""
            self.server_target = where
            self._fresh_server = True
        if self.conn.via_proxy:
            return _proxy_form(request, auth=state.options.upstream_auth)
        if request.method == "OPTIONS" and _no_path(target):
            # RFC 9112 §3.2.4: OPTIONS http://host:port (no path) asks about the server
            # as a whole; the last proxy sends it as OPTIONS *
            path = "*"
        return _origin_form(request, path)

    async def _reply(self, status: int, reason: str, body: str, request: RequestHead) -> None:
        framing, _ = http1.request_framing(request)
        close = framing is not Framing.NONE or not http1.keeps_alive(request)
        extra = (("Connection", "close"),) if close else ()
        self.client.write(http1.simple_response(status, reason, body, extra=extra))
        await self.client.drain()
        if close:
            raise _Done(Closer.PROXY, f"answered {status} {reason}")

    async def _auth_required(self, given: str | None) -> NoReturn:
        if given:  # (no credentials is the usual first try of a browser: 407 asks)
            await self.conn.auth_failed("proxy authentication failed: wrong credentials "
                                        "(Proxy-Authorization)")
        else:
            await self.conn.error("auth", "proxy authentication required (Basic)")
        self.client.write(http1.simple_response(
            407, "Proxy Authentication Required", "h2scope: proxy authentication required\n",
            extra=(("Proxy-Authenticate", 'Basic realm="h2scope"'), ("Connection", "close"))))
        with contextlib.suppress(ConnectionError, OSError):
            await self.client.drain()
        raise _Done(Closer.PROXY, "proxy authentication required")

    async def _page(self, request: RequestHead, path: str) -> None:
        listen = self.conn.mode.listen_port
        resp = page.respond(path, ca=self.conn.state.certs.ca,
                            proxy_url=f"http://127.0.0.1:{listen}" if listen else None)
        extra: list[tuple[str, str]] = []
        name = page.download_filename(path)
        if name:
            extra.append(("Content-Disposition", f'attachment; filename="{name}"'))
        self.client.write(http1.simple_response(resp.status, "OK" if resp.status == 200
                                                else "Not Found", resp.body,
                                                extra=tuple(extra), content_type=resp.content_type))
        await self.client.drain()


UNRECORDED_CREDENTIALS = "(credentials not recorded: they are for a proxy, never passed on)"


def without_proxy_credentials(
        headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """*headers* with a ``Proxy-Authorization`` value cut to its scheme: the
    credentials are h2scope's own (``--proxyauth``) or another proxy's, never sent
    on, and a capture or log must not hand them to whoever reads it."""
    if not any(name.lower() == "proxy-authorization" for name, _ in headers):
        return headers
    return tuple((name, f"{value.strip().partition(' ')[0]} {UNRECORDED_CREDENTIALS}")
                 if name.lower() == "proxy-authorization" else (name, value)
                 for name, value in headers)


def _proxy_form(request: RequestHead, *, auth: str | None) -> bytes:
    """The request as the upstream proxy takes it: absolute form, with h2scope's own
    credentials for it (``upstream.auth``) and never the client's, whether they were
    for h2scope or meant for the upstream proxy (a tunnel's CONNECT carries only
    h2scope's too)."""
    lines = [ln for ln in request.raw.split(b"\r\n")
             if not ln.lower().startswith(b"proxy-authorization:")]
    if auth:
        lines.insert(1, authorization(auth).rstrip(b"\r\n"))
    return b"\r\n".join(lines)


def _cut_credentials(raw: bytes) -> bytes:
    """A request head as recorded: each ``Proxy-Authorization`` value cut to its
    scheme, as :func:`without_proxy_credentials` does for the message event."""
    lines = raw.split(b"\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(b"proxy-authorization:"):
            name, _, value = line.partition(b":")
            scheme = value.strip().partition(b" ")[0]
            lines[i] = name + b": " + scheme + b" " + UNRECORDED_CREDENTIALS.encode("ascii")
    return b"\r\n".join(lines)


def _request_line(request: RequestHead) -> str:
    """``GET http://host/path`` for an error line (the query left out: it may hold a
    token)."""
    return f"{request.method} {request.target.partition('?')[0]}"


def _no_path(target: str) -> bool:
    """Whether an absolute-form target has an empty path (``http://host:port``, maybe
    with a query): for OPTIONS, the asterisk-form's absolute equivalent."""
    rest = target.split("://", 1)[-1]
    i = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    return rest[i:i + 1] != "/"


def _origin_form(request: RequestHead, path: str) -> bytes:
    """The request as an origin server takes it: origin form, and without
    ``Proxy-Authorization``, which is for a proxy (RFC 9110 §11.7.2) — h2scope's, or
    one the client was set up for — and never an origin's business, whether h2scope
    checked it (``--proxyauth``) or not."""
    lines = request.raw.split(b"\r\n")
    lines[0] = http1.wire(f"{request.method} {path} {request.version}")
    lines = [ln for ln in lines if not ln.lower().startswith(b"proxy-authorization:")]
    return b"\r\n".join(lines)
