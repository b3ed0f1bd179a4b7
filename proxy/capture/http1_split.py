"""HTTP/1.x messages found in a connection's two byte streams, for the importers.

The proxy logs each HTTP/1.x message it relays (its head; the bytes go to RAW
records). An import has only the bytes: :class:`Http1Splitter` finds the
message heads in them and follows each body's framing (RFC 9112 §6.3:
Content-Length, chunked, until the close), so the capture gets the same
HTTP1 records the proxy would have written. A request's method decides its
response's framing (HEAD, CONNECT); 1xx responses come before the final
one; after a ``101 Switching Protocols`` or a CONNECT's 2xx the bytes are a
tunnel and are not read as HTTP any more. Bytes that do not parse stop that
direction, and say why.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.capture.writer import CaptureWriter
from proxy.net.http1 import (
    Framing,
    Http1Error,
    RequestHead,
    ResponseHead,
    parse_chunk_size,
    parse_request_head,
    parse_response_head,
    request_framing,
    response_framing,
)
from proxy.observe.enums import Direction

MAX_HEAD = 64 << 10


@dataclass(frozen=True, slots=True)
class Message:
    direction: Direction
    head: bytes
    """The head as sent, through the empty line."""
    started: float
    """When its first byte came."""
    ended: float
    body_size: int
    """Body bytes on the wire (chunked framing included)."""
    complete: bool
    body: bytes = b""
    """The body without its chunked framing (kept only with ``keep_bodies``)."""
    trailers: tuple[tuple[str, str], ...] = ()
    """A chunked body's trailer fields (RFC 9112 §7.1.2), names as sent."""


class _Side:
    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.buf = bytearray()
        self.head: bytes | None = None
        self.started = 0.0
        self.framing = Framing.NONE
        self.remaining = 0
        self.body_size = 0
        self.chunk_state = "size"  # size, data, data-crlf, trailers
        self.stopped: str | None = None
        self.body = bytearray()
        self.trailers: list[tuple[str, str]] = []


class Http1Splitter:
    """Feed each direction's bytes in order; get the messages as they complete."""

    def __init__(self, *, keep_bodies: bool = False) -> None:
        self.keep_bodies = keep_bodies
        self.sides = (_Side(Direction.C2S), _Side(Direction.S2C))
        self.methods: deque[str] = deque()
        """Methods of the requests whose final responses have not come yet."""
        self.tunnel = False

    def feed(self, direction: Direction, data: bytes, t: float) -> list[Message]:
        side = self.sides[direction]
        if self.tunnel or side.stopped:
            return []
        side.buf += data
        out: list[Message] = []
        try:
            while side.buf and not self.tunnel:
                if side.head is None:
                    if not self._head(side, t):
                        break
                    if side.framing == Framing.NONE:
                        out.append(self._done(side, t))
                    continue
                if not self._body(side):
                    break
                out.append(self._done(side, t))
        except Http1Error as exc:
            side.stopped = str(exc)
            side.buf.clear()
        return out

    def close(self, t: float) -> list[Message]:
        """The connection ended: a body read until the close is complete; any other
        message begun is cut short."""
        out = []
        for side in self.sides:
            if side.head is not None:
                out.append(self._done(side, t, complete=side.framing == Framing.UNTIL_CLOSE))
        return out

    def _head(self, side: _Side, t: float) -> bool:
        if side.direction is Direction.C2S:
            while side.buf[:2] == b"\r\n":  # RFC 9112 §2.2: empty lines before a request
                del side.buf[:2]
        end = side.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(side.buf) > MAX_HEAD:
                raise Http1Error(f"no end of a message head in {MAX_HEAD} bytes")
            return False
        raw = bytes(side.buf[:end + 4])
        del side.buf[:end + 4]
        side.started = t
        side.head = raw
        side.body_size = 0
        side.chunk_state = "size"
        if side.direction is Direction.C2S:
            req: RequestHead = parse_request_head(raw)
            side.framing, side.remaining = request_framing(req)
            self.methods.append(req.method)
        else:
            resp: ResponseHead = parse_response_head(raw)
            method = self.methods[0] if self.methods else "GET"
            side.framing, side.remaining = response_framing(resp, method)
            if resp.status == 101 or (method == "CONNECT" and 200 <= resp.status < 300):
                self.tunnel = True
            if (resp.status >= 200 or resp.status == 101) and self.methods:
                self.methods.popleft()  # (a 1xx is followed by the final response)
        return True

    def _take(self, side: _Side) -> int:
        """Consume up to ``side.remaining`` body bytes (kept with ``keep_bodies``); the
        bytes still to come."""
        buf = side.buf
        take = min(side.remaining, len(buf))
        if self.keep_bodies:
            side.body += buf[:take]
        del buf[:take]
        side.remaining -= take
        side.body_size += take
        return side.remaining

    def _body(self, side: _Side) -> bool:
        """Consume body bytes; True once the body is complete."""
        buf = side.buf
        if side.framing == Framing.LENGTH:
            return self._take(side) == 0
        if side.framing == Framing.UNTIL_CLOSE:
            side.body_size += len(buf)
            if self.keep_bodies:
                side.body += buf
            buf.clear()
            return False
        while buf:  # chunked
            if side.chunk_state in ("size", "trailers"):
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise Http1Error("a chunk-size or trailer line without its end")
                    return False
                line = bytes(buf[:end])
                del buf[:end + 2]
                side.body_size += end + 2
                if side.chunk_state == "trailers":
                    if not line:
                        return True
                    name, colon, value = line.decode("latin-1").partition(":")
                    if colon and name.strip() == name and name:
                        side.trailers.append((name, value.strip(" \t")))
                    continue
                size = parse_chunk_size(line)
                if size == 0:
                    side.chunk_state = "trailers"
                else:
                    side.remaining = size
                    side.chunk_state = "data"
            elif side.chunk_state == "data":
                if self._take(side) == 0:
                    side.chunk_state = "data-crlf"
            else:  # the CRLF after a chunk's data
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    raise Http1Error("a chunk's data is not followed by CRLF")
                del buf[:2]
                side.body_size += 2
                side.chunk_state = "size"
        return False

    def _done(self, side: _Side, t: float, complete: bool = True) -> Message:
        assert side.head is not None
        msg = Message(side.direction, side.head, side.started, t, side.body_size, complete,
                      bytes(side.body), tuple(side.trailers))
        side.body.clear()
        side.trailers.clear()
        side.head = None
        side.framing = Framing.NONE
        return msg


class Http1Recording:
    """An HTTP/1.x connection written to a capture as the proxy writes one: its
    CONNECTION record, its bytes as RAW records, each message's head as an HTTP1
    record, and its CLOSE."""

    def __init__(self, writer: CaptureWriter, conn_id: int, meta: Mapping[str, Any],
                 t: float) -> None:
        self.writer = writer
        self.conn_id = conn_id
        self.splitter = Http1Splitter()
        self.messages = 0
        writer.connection(conn_id, meta, t=t, wall=t)

    def feed(self, direction: Direction, data: bytes, t: float) -> int:
        """Record ``data``; how many messages it completed."""
        self.writer.raw(self.conn_id, direction, data, t=t, wall=t)
        return self._write(self.splitter.feed(direction, data, t))

    def close(self, t: float, *, closed_by: str | None = None,
              error: str | None = None) -> int:
        n = self._write(self.splitter.close(t))
        self.writer.close_connection(self.conn_id, t=t, closed_by=closed_by, error=error,
                                     wall=t)
        return n

    def _write(self, messages: list[Message]) -> int:
        for m in messages:
            self.writer.http1(self.conn_id, m.direction, m.head, t=m.started, wall=m.ended,
                              body_truncated=not m.complete)
        self.messages += len(messages)
        return len(messages)
