"""HTTP/1.1 for ``h2scope serve``: the same recorded responses to an HTTP/1.x client.

A client that does not speak HTTP/2 — TLS with ALPN ``http/1.1`` or none
(requests, urllib3, ``curl --http1.1``), cleartext without the h2 preface —
sends HTTP/1.1 requests (RFC 9112): persistent connections, a body framed by
Content-Length or chunked, ``Expect: 100-continue`` (the 100 goes before the
body is read, as on HTTP/2). Each is matched as an HTTP/2 request is (method,
the Host's authority, the target's path; ``--match``), to responses recorded
on HTTP/2 streams and on HTTP/1.x connections alike, and answered with the
recorded status, fields and body: the HTTP/2 pseudo-headers and each hop's
own fields left out, the body framed by a Content-Length — chunked only to
carry recorded trailers to a client that sent ``TE: trailers`` (RFC 9110
§6.5.1), or when the recording has only part of the body. A response the
recording has only the start of (reset, cut) is sent as far as it goes, then
the connection is closed (HTTP/1.1 has no other way to say a response broke
off). A WebSocket upgrade gets a 501 saying serve plays WebSockets back over
HTTP/2 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http
import ssl
from collections.abc import Callable

from proxy.net.http1 import (
    Framing,
    Http1Error,
    RequestHead,
    absolute_target,
    keeps_alive,
    parse_chunk_size,
    parse_request_head,
    request_framing,
    text,
    wire,
)
from proxy.observe.describe import shown
from proxy.replay.responses import CONNECTION_FIELDS, Action, ResponseBook

MAX_HEAD = 1 << 16
"""Bytes a request head may take (a longer one gets 431)."""
READ_SIZE = 1 << 16


class _Closed(Exception):
    """The client closed (or broke) the connection."""


class _Input:
    """The client's bytes: what was read already, then the stream."""

    def __init__(self, reader: asyncio.StreamReader, first: bytes) -> None:
        self.reader = reader
        self.buf = bytearray(first)

    async def _more(self) -> None:
        try:
            data = await self.reader.read(READ_SIZE)
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            raise _Closed
        self.buf += data

    async def line(self, limit: int = MAX_HEAD) -> bytes:
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > limit:
                raise Http1Error("a line longer than 64 KiB")
            await self._more()
        out = bytes(self.buf[:end + 1])
        del self.buf[:end + 1]
        return out

    async def head(self) -> bytes | None:
        """The next request head (up to its empty line); None: the client closed
        between requests."""
        while self.buf[:2] == b"\r\n" or self.buf[:1] == b"\n":  # RFC 9112 §2.2
            del self.buf[:2 if self.buf[:1] == b"\r" else 1]
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > MAX_HEAD:
                raise Http1Error("a request head over 64 KiB")
            try:
                await self._more()
            except _Closed:
                if self.buf.strip():
                    raise
                return None
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
        out = bytes(self.buf[:end + 4])
        del self.buf[:end + 4]
        return out

    async def exactly(self, n: int, into: hashlib._Hash) -> None:
        """Read ``n`` body bytes into a digest (never kept whole: a body may be large)."""
        while n:
            if not self.buf:
                await self._more()
            take = bytes(self.buf[:n])
            del self.buf[:len(take)]
            into.update(take)
            n -= len(take)


async def _body(source: _Input, head: RequestHead) -> bytes:
    """Read the request's body; its SHA-256."""
    framing, length = request_framing(head)
    digest = hashlib.sha256()
    if framing is Framing.LENGTH:
        await source.exactly(length, digest)
    elif framing is Framing.CHUNKED:
        while size := parse_chunk_size((await source.line()).rstrip(b"\r\n")):
            await source.exactly(size, digest)
            if (await source.line()).strip():
                raise Http1Error("a chunk not followed by CRLF")
        while (await source.line()).strip():  # (the trailer section)
            pass
    return digest.digest()


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return http.HTTPStatus(status).phrase
    return ""


def _head(status: str, fields: list[tuple[str, str]]) -> bytes:
    code = int(status) if status.isdigit() else 500
    lines = [f"HTTP/1.1 {code} {_reason(code)}".rstrip()]
    lines += [f"{n}: {v}" for n, v in fields]
    return b"\r\n".join(wire(line) for line in lines) + b"\r\n\r\n"


def _fields(headers: tuple[tuple[str, str], ...], *, keep_length: bool) -> list[tuple[str, str]]:
    named = {t.strip().lower() for n, v in headers if n.lower() == "connection"
             for t in v.split(",")}
    return [(n, v) for n, v in headers if not n.startswith(":")
            and n.lower() not in CONNECTION_FIELDS and n.lower() not in named
            and (keep_length or n.lower() != "content-length")]


class Http1Connection:
    """One HTTP/1.x client connection to the mock server."""

    def __init__(self, book: ResponseBook, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, log: Callable[[str], None],
                 speed: float = 0.0, first: bytes = b"", scheme: str = "https") -> None:
        self.book = book
        self.input = _Input(reader, first)
        self.writer = writer
        self.log = log
        self.speed = speed
        self.scheme = scheme

    async def run(self) -> None:
        try:
            while await self._exchange():
                pass
        except _Closed:
            pass
        except Http1Error as exc:
            self.log(f"HTTP/1.1: a request h2scope cannot read ({exc}): answered 400, closed")
            await self._send(self._plain(400, f"h2scope serve: {exc}\n", close=True))
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            if not self.writer.is_closing():
                self.writer.write(data)
                await self.writer.drain()

    def _plain(self, status: int, body: str | bytes, *, close: bool) -> bytes:
        data = body.encode() if isinstance(body, str) else body
        fields = [("content-type", "text/plain; charset=utf-8"),
                  ("content-length", str(len(data)))]
        return _head(str(status), fields + [("connection", "close")] * close) + data

    async def _exchange(self) -> bool:
        """One request and its response; False: the connection ends."""
        raw = await self.input.head()
        if raw is None:
            return False
        head = parse_request_head(raw)
        method, path = head.method, head.target
        authority = head.get("host") or ""
        if path.startswith(("http://", "https://")):
            _, host, port, path = absolute_target(path)
            authority = f"{host}:{port}"
        alive = keeps_alive(head)
        if "upgrade" in head.tokens("connection") and "websocket" in head.tokens("upgrade"):
            recorded = any(r.method == "CONNECT" and r.protocol == "websocket"
                           and r.path == path for r in self.book.responses)
            held = f"the recording holds one for {path}: " if recorded else ""
            said = ("h2scope serve plays WebSockets back over HTTP/2 only (RFC 8441 "
                    f"extended CONNECT); {held}connect with HTTP/2 (ALPN h2) to open it\n")
            self.log(f"{method} {authority}{path} → 501 (a WebSocket upgrade over HTTP/1.1"
                     f"{'; the recorded one is over HTTP/2' if recorded else ''})")
            await self._send(self._plain(501, said, close=True))
            return False
        expects = head.get("expect")
        continued = False
        if expects is not None and expects.strip().lower() == "100-continue" \
                and head.version == "HTTP/1.1" and request_framing(head)[0] is not Framing.NONE:
            # RFC 9110 §10.1.1: the client may hold its body until this (see MockConnection).
            continued = True
            await self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
        digest = await _body(self.input, head)
        start = asyncio.get_running_loop().time()
        found = self.book.find(method, authority, path,
                               digest if "body" in self.book.fields else None)
        if found is None:
            from proxy.replay.mock_server import not_found_body, not_found_why

            page = not_found_body(self.book, method, authority, path)
            self.log(f"{method} {authority}{path} → 404 "
                     f"({not_found_why(self.book, method, authority, path)}; HTTP/1.1)")
            await self._send(self._plain(404, page, close=not alive))
            return alive
        where = f"stream {found.stream_id}" if found.http_version == "h2" else \
            f"{found.http_version} exchange {found.stream_id}"
        self.log(f"{method} {authority}{path} → {found.status} (recorded connection "
                 f"{found.conn_id}, {where}; served over HTTP/1.1)")
        return await self._play(found.actions, method, head, alive, continued, start)

    async def _play(self, actions: tuple[Action, ...], method: str, head: RequestHead,
                    alive: bool, continued: bool, start: float) -> bool:
        loop = asyncio.get_running_loop()
        final = next((i for i, a in enumerate(actions) if a.kind == "headers" and not
                      dict(a.headers).get(":status", "").startswith("1")), None)
        whole = any(a.end_stream for a in actions)
        old = head.version != "HTTP/1.1"
        status = dict(actions[final].headers).get(":status", "200") if final is not None \
            else ""
        no_body = method == "HEAD" or status in ("204", "304")
        body_len = sum(len(a.data) for a in actions if a.kind == "data")
        trailers = [a for a in actions[(final or 0) + 1:] if a.kind == "headers"]
        chunked = not no_body and not old and (
            (bool(trailers) and "trailers" in head.tokens("te")) or not whole)
        close = not alive or not whole
        for i, a in enumerate(actions):
            if self.speed > 0:
                wait = start + a.at / self.speed - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            if a.kind == "headers" and final is not None and i < final:
                code = dict(a.headers).get(":status", "")
                # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client; a 100 only to one that
                # asked for it (and not twice); a 101 is no answer to this request.
                if old or code == "101" or (code == "100" and (continued or not
                                                                  head.get("expect"))):
                    continue
                await self._send(_head(code, _fields(a.headers, keep_length=True)))
            elif i == final:
                fields = _fields(a.headers, keep_length=no_body and status != "204")
                if chunked:
                    fields.append(("transfer-encoding", "chunked"))
                    if trailers:
                        names = {n for t in trailers for n, _ in t.headers}
                        fields.append(("trailer", ", ".join(sorted(names))))
                elif whole and (not no_body or (method == "HEAD" and body_len and not any(
                        n == "content-length" for n, _ in fields))):
                    # (a HEAD: the length the GET's content has, RFC 9110 §8.6)
                    fields.append(("content-length", str(body_len)))
                if close:
                    fields.append(("connection", "close"))
                await self._send(_head(status, fields))
            elif a.kind == "data" and not no_body and final is not None and i > final:
                if chunked and a.data:
                    await self._send(f"{len(a.data):x}\r\n".encode() + a.data + b"\r\n")
                elif not chunked:
                    await self._send(a.data)
        if final is None:
            self.log("  the recorded response has no final status: the connection is closed")
            return False
        if chunked and whole:
            section = b"".join(wire(f"{n}: {v}\r\n") for t in trailers for n, v in t.headers
                               if "trailers" in head.tokens("te") and not n.startswith(":"))
            await self._send(b"0\r\n" + section + b"\r\n")
        if not whole:
            self.log("  the recording has only part of this response: the connection is "
                     "closed after it")
        return not close


def http1_request_line(first: bytes) -> str:
    """The request line of the client's first bytes, as the log shows it."""
    return shown(text(first.partition(b"\r\n")[0][:60]))
