"""WebSocket messages inside an HTTP/2 stream (RFC 8441 over RFC 6455).

A WebSocket bootstrapped with HTTP/2's extended CONNECT (``:method CONNECT``,
``:protocol websocket``) carries WebSocket frames in the DATA frames of its
stream, both ways. :class:`WsReader` is a sans-IO reader for one direction:
DATA payloads go in (with their time), whole messages come out — unmasked,
fragments joined, inflated when the permessage-deflate extension (RFC 7692)
was negotiated — each with what is wrong about it, if anything, by RFC 6455
section. Nothing here raises on bad input: a reader that loses the framing
says so once and counts the rest.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.observe.events import FrameObserved

OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
CLOSE_CODES = {1000: "normal closure", 1001: "going away", 1002: "protocol error",
               1003: "unsupported data", 1005: "no status", 1006: "abnormal closure",
               1007: "invalid payload data", 1008: "policy violation", 1009: "message too big",
               1010: "mandatory extension", 1011: "internal error", 1012: "service restart",
               1013: "try again later", 1014: "bad gateway", 1015: "TLS handshake"}
"""RFC 6455 §7.4.1 and the IANA registry."""
MAX_MESSAGE = 16 * 1024 * 1024
"""Bytes of one message kept for display; the rest is counted."""
_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2: appended before inflating a message
CONNECT_FIELD = (":method", "CONNECT")
"""A request's field that may make it an extended CONNECT: a cheap test
(``in headers``) before :func:`is_websocket`."""


@dataclass(frozen=True, slots=True)
class Violation:
    """A rule of RFC 6455 (or RFC 7692) a WebSocket frame or message breaks: what the
    HTTP/2 observer makes a finding of (``proxy/observe/websockets.py``)."""

    code: str
    """The finding code (``websocket-unmasked``; docs/findings.md)."""
    rfc: str
    text: str
    """What is wrong, without the section: ``a client frame must be masked``."""

    def __str__(self) -> str:
        return f"{self.text} ({self.rfc})"


@dataclass(frozen=True, slots=True)
class WsMessage:
    """One WebSocket message (or control frame) as its receiver sees it."""

    direction: int
    """0: client to server, 1: server to client."""
    t: float
    """Time of the DATA frame that completed it."""
    opcode: int
    payload: bytes
    """Unmasked, fragments joined, inflated if it was compressed."""
    wire_size: int
    """Payload bytes on the wire (compressed size, all fragments)."""
    frames: int
    compressed: bool = False
    problems: tuple[str, ...] = ()
    """What RFC 6455/7692 says is wrong with it (masking, reserved bits), and what
    h2scope could not keep of it (sizes)."""
    violations: tuple[Violation, ...] = ()
    """Those of :attr:`problems` that break a rule (each also among them, as text)."""

    def notes(self) -> tuple[str, ...]:
        """:attr:`problems` less the :attr:`violations`: what only h2scope has to say."""
        if not self.violations:
            return self.problems
        broken = {str(v) for v in self.violations}
        return tuple(p for p in self.problems if p not in broken)

    @property
    def kind(self) -> str:
        return OPCODES.get(self.opcode, f"opcode {self.opcode}")

    def close_status(self) -> tuple[int | None, str]:
        """(code, reason) of a close frame (RFC 6455 §5.5.1)."""
        if len(self.payload) < 2:
            return None, ""
        return int.from_bytes(self.payload[:2], "big"), \
            self.payload[2:].decode("utf-8", "replace")

    def summary(self, limit: int = 200) -> str:
        """``text 'hello'``, ``binary 12 bytes``, ``close 1000 normal closure 'bye'``."""
        if self.opcode == 1:
            text = self.payload.decode("utf-8", "replace")
            body = repr(text if len(text) <= limit else text[:limit] + "…")
        elif self.opcode == 8:
            code, reason = self.close_status()
            body = "(no status)" if code is None else f"{code} {CLOSE_CODES.get(code, '')}".strip()
            if reason:
                body += f" {reason!r}"
        else:
            body = f"{len(self.payload)} bytes"
            if not self.compressed and self.wire_size > len(self.payload):
                body = f"{self.wire_size:,} bytes ({len(self.payload):,} kept)"
            if self.payload and self.opcode in (2, 9, 10):
                body += " " + self.payload[:24].hex(" ") + (" …" if len(self.payload) > 24 else "")
        extra = []
        if self.compressed:
            extra.append(f"deflated {self.wire_size}→{len(self.payload)}")
        if self.frames > 1:
            extra.append(f"{self.frames} fragments")
        return f"{self.kind} {body}" + (f"  ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True, slots=True)
class Deflate:
    """The permessage-deflate parameters the server accepted (RFC 7692 §7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False

    @classmethod
    def from_header(cls, value: str | None) -> Deflate | None:
        """From the response's ``sec-websocket-extensions``; None if not accepted."""
        for ext in (value or "").split(","):
            params = [p.strip().lower() for p in ext.split(";")]
            if params and params[0] == "permessage-deflate":
                return cls("server_no_context_takeover" in params,
                           "client_no_context_takeover" in params)
        return None


def is_websocket(request: Sequence[tuple[str, str]] | None) -> bool:
    """Whether a request block is an RFC 8441 extended CONNECT for a WebSocket."""
    fields = dict(request or ())
    return fields.get(":method") == "CONNECT" and \
        fields.get(":protocol", "").lower() == "websocket"


class WsReader:
    """WebSocket frames of one direction of one stream, fed DATA payloads in order."""

    def __init__(self, direction: int, deflate: Deflate | None = None, *,
                 max_message: int = MAX_MESSAGE, report: bool = False) -> None:
        self.direction = direction
        self.found: list[Violation] | None = [] if report else None
        """With ``report``: the violations of the frames read so far, as each frame
        completes (a data frame's before its message does), for the caller to take
        and clear; None without."""
        self.max_message = max_message
        """Bytes of a frame (and of a message) kept; a larger frame is counted as it
        passes, so a reader never holds more than about this much."""
        self.deflate = deflate
        no_takeover = deflate is not None and (
            deflate.client_no_context_takeover if direction == 0
            else deflate.server_no_context_takeover)
        self._no_takeover = no_takeover
        self._inflater: zlib._Decompress | None = None
        self._buf = bytearray()
        self._skip = 0
        self._parts: list[bytes] = []
        self._first: tuple[int, bool] | None = None  # (opcode, compressed) of a fragmented one
        self._frames = 0
        self._wire = 0
        self._problems: list[str | Violation] = []
        self._cut = False  # (the message being read is not kept whole)
        self.lost: str | None = None
        """Why framing was lost (after which bytes are only counted)."""
        self.lost_by: Violation | None = None
        """The rule whose breaking lost it, if one did."""
        self.unread = 0
        """Bytes not turned into messages: after a loss, or a frame cut off at the end."""

    def feed(self, data: bytes, t: float) -> list[WsMessage]:
        if self.lost is not None:
            self.unread += len(data)
            return []
        if self._skip:  # the rest of a frame too large to keep
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        self._buf += data
        out: list[WsMessage] = []
        while True:
            msg = self._frame(t)
            if msg is None:
                break
            if isinstance(msg, WsMessage):
                out.append(msg)
        if self.lost is not None:
            self.unread += len(self._buf)
            self._buf.clear()
        return out

    def end(self) -> int:
        """Bytes left over when the stream ended (an incomplete frame)."""
        return self.unread + len(self._buf)

    def _frame(self, t: float) -> WsMessage | bool | None:
        """One frame off the buffer: a message, True (a fragment), None (need more)."""
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
        masked, length = b1 & 0x80, b1 & 0x7F
        pos = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = int.from_bytes(buf[2:10], "big"), 10
            if length >> 63:
                broken = Violation("websocket-frame-invalid", "RFC 6455 §5.2",
                                   "a 64-bit payload length with its top bit set")
                self.lost = str(broken)
                self.lost_by = broken
                if self.found is not None:
                    self.found.append(broken)
                return None
        if masked:
            pos += 4
        problems: list[str | Violation] = []
        found = self.found
        limit = self.max_message
        if length > limit:
            # Never buffered whole: the frame is counted as it passes, not kept.
            if len(buf) < pos:
                return None
            drop = min(len(buf) - pos, length)
            del buf[:pos + drop]
            self._skip = length - drop
            if b0 & 0x40 and self.deflate is not None and not self._no_takeover:
                self.lost = (f"a compressed frame of {length:,} bytes, too large to keep, and "
                             "the later messages depend on it (context takeover, RFC 7692)")
                return None
            problems.append(f"a frame of {length:,} bytes: at most {limit:,} are kept "
                            "per message, so its payload is counted, not shown")
            b0 &= ~0x40
            rsv &= ~0x40
            key, payload = b"", b""
            if opcode < 8:
                self._cut = True
        else:
            if len(buf) < pos + length:
                return None
            key = bytes(buf[pos - 4:pos]) if masked else b""
            payload = bytes(buf[pos:pos + length])
            del buf[:pos + length]
        if key:
            payload = _unmask(payload, key)
        if self.direction == 0 and not masked:
            problems.append(Violation("websocket-unmasked", "RFC 6455 §5.1",
                                      "a client frame must be masked"))
        elif self.direction == 1 and masked:
            problems.append(Violation("websocket-masked-by-server", "RFC 6455 §5.1",
                                      "a server frame must not be masked"))
        compressed = bool(rsv & 0x40) and self.deflate is not None
        if rsv & ~(0x40 if self.deflate is not None else 0) & 0x70:
            problems.append(Violation("websocket-reserved-bits", "RFC 6455 §5.2",
                                      f"reserved bits {rsv >> 4:03b} set with no extension "
                                      "that defines them"))
        if opcode >= 8:  # control frames: §5.5
            if not fin or length > 125:
                problems.append(Violation("websocket-control-frame", "RFC 6455 §5.5",
                                          "a control frame must be one frame of at most "
                                          "125 bytes"))
            if opcode == 8:
                problems.extend(_close_problems(payload))
            if opcode not in OPCODES:
                problems.append(Violation("websocket-frame-invalid", "RFC 6455 §5.2",
                                          f"opcode {opcode} is reserved"))
            if found is not None:
                found.extend(p for p in problems if type(p) is Violation)
            return _message(self.direction, t, opcode, payload, length, 1, False, problems)
        if opcode == 0:
            if self._first is None:
                problems.append(Violation("websocket-frame-invalid", "RFC 6455 §5.4",
                                          "a continuation frame with no message to continue"))
                self._first = (2, False)
        else:
            if self._first is not None:
                problems.append(Violation("websocket-frame-invalid", "RFC 6455 §5.4",
                                          "a new message began before the previous one's "
                                          "final fragment"))
                self._parts.clear()
                self._frames = self._wire = 0
                self._cut = False
            self._first = (opcode, compressed)
            if opcode not in OPCODES:
                problems.append(Violation("websocket-frame-invalid", "RFC 6455 §5.2",
                                          f"opcode {opcode} is reserved"))
        if found is not None:
            found.extend(p for p in problems if type(p) is Violation)
        self._problems.extend(problems)
        problems = self._problems
        self._frames += 1
        self._wire += length
        if sum(map(len, self._parts)) < self.max_message:
            self._parts.append(payload)
        elif payload:
            self._cut = True
        if not fin:
            return True
        first_opcode, first_compressed = self._first
        data = b"".join(self._parts)
        self._parts.clear()
        self._first = None
        if first_compressed:
            data = self._inflate(data)
        if first_opcode == 1 and not _utf8(data, whole=not self._cut):
            broken = Violation("websocket-invalid-utf8", "RFC 6455 §8.1",
                               "a text message that is not UTF-8")
            problems.append(broken)
            if found is not None:
                found.append(broken)
        msg = _message(self.direction, t, first_opcode, data, self._wire, self._frames,
                       first_compressed, problems)
        problems.clear()
        self._frames = self._wire = 0
        self._cut = False
        return msg

    def _inflate(self, data: bytes) -> bytes:
        if self._inflater is None or self._no_takeover:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        inflater = self._inflater
        try:
            out = inflater.decompress(data + _TAIL, self.max_message)
            if inflater.unconsumed_tail:
                # Inflated on and dropped, not kept: the later messages depend on it
                # (context takeover), and memory stays bounded.
                self._cut = True
                while inflater.unconsumed_tail:
                    inflater.decompress(inflater.unconsumed_tail, 1 << 16)
            return out
        except zlib.error as exc:
            broken = Violation("websocket-deflate-invalid", "RFC 7692 §7.2.2",
                               f"does not inflate ({exc})")
            self._problems.append(broken)
            if self.found is not None:
                self.found.append(broken)
            self._inflater = None
            self._cut = True  # (what is kept is not the message's text)
            return data


def _message(direction: int, t: float, opcode: int, payload: bytes, wire: int, frames: int,
             compressed: bool, problems: list[str | Violation]) -> WsMessage:
    return WsMessage(direction, t, opcode, payload, wire, frames, compressed,
                     tuple(map(str, problems)),
                     tuple(p for p in problems if type(p) is Violation))


def _utf8(data: bytes, *, whole: bool) -> bool:
    """Whether ``data`` is UTF-8; of a message not kept ``whole`` (a prefix), whether
    it is so far (a character it cuts in two is not held against it)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=whole)
    except UnicodeDecodeError:
        return False
    return True


def _close_problems(payload: bytes) -> list[str | Violation]:
    """What RFC 6455 says is wrong with a close frame's body (§5.5.1, §7.4)."""
    if len(payload) == 1:
        return [Violation("websocket-close-code", "RFC 6455 §5.5.1",
                          "a close frame's body is a 2-byte status code and a reason, "
                          "not 1 byte")]
    if len(payload) < 2:
        return []
    code = int.from_bytes(payload[:2], "big")
    out: list[str | Violation] = []
    if code < 1000 or code in (1004, 1005, 1006, 1015) or 1016 <= code < 3000 or code > 4999:
        out.append(Violation("websocket-close-code", "RFC 6455 §7.4",
                             f"close status {code} must not be sent in a close frame"))
    if not _utf8(payload[2:], whole=True):
        out.append(Violation("websocket-invalid-utf8", "RFC 6455 §5.5.1",
                             "a close reason that is not UTF-8"))
    return out


def _unmask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        n, "little")


def messages(data_frames: Sequence[tuple[int, float, bytes]],
             deflate: Deflate | None = None) -> tuple[list[WsMessage], list[str]]:
    """Both directions' messages in time order, from ``(direction, t, payload)`` of a
    stream's DATA frames in order; and notes on what could not be read."""
    readers = (WsReader(0, deflate), WsReader(1, deflate))
    out: list[WsMessage] = []
    for direction, t, payload in data_frames:
        out.extend(readers[direction].feed(payload, t))
    notes = []
    for reader, who in zip(readers, ("client", "server"), strict=True):
        if reader.lost is not None:
            notes.append(f"the {who}'s WebSocket framing was lost: {reader.lost}; "
                         f"{reader.end()} bytes not read")
        elif reader.end():
            notes.append(f"the {who}'s last {reader.end()} bytes are an incomplete "
                         "WebSocket frame")
    return out, notes


class WsTracker:
    """The text logs' view: WebSocket streams of every connection, read as their
    DATA goes by, so a DATA frame's line can be followed by the messages it
    completes. Fed every frame event in order (filtered or not, so that
    permessage-deflate's context stays whole); bounded by :attr:`MAX_STREAMS` and
    :attr:`MAX_MESSAGE`."""

    MAX_STREAMS = 256
    MAX_MESSAGE = 64 * 1024
    """A log shows a message's first 120 characters: a live proxy holds at most
    this much per direction of a WebSocket (frames beyond it are counted)."""

    def __init__(self) -> None:
        self.streams: dict[tuple[int, int], list[Any]] = {}
        """(connection, stream) → [client reader, server reader, ends seen]; a plain
        dict so that callers test ``if tracker.streams`` at C speed."""

    def feed(self, conn_id: int, ev: FrameObserved,
             truncated: bool = False) -> tuple[list[WsMessage], str | None]:
        """The messages this frame completes on a WebSocket stream, and why its
        direction stopped being read if it just did (``truncated``: its payload was
        cut by the capture, so the direction cannot be read on)."""
        f = ev.frame
        key = (conn_id, f.stream_id)
        block = ev.block
        if block is not None:
            headers = block.headers
            if ev.direction == 0 and CONNECT_FIELD in headers and is_websocket(headers):
                if len(self.streams) >= self.MAX_STREAMS:
                    self.streams.pop(next(iter(self.streams)))
                self.streams[key] = [None, None, 0]
            elif ev.direction == 1 and key in self.streams and self.streams[key][1] is None:
                fields = dict(headers)
                status = fields.get(":status", "")
                if status[:1] == "2":  # (only a 2xx opens the WebSocket, RFC 8441 §5)
                    deflate = Deflate.from_header(fields.get("sec-websocket-extensions"))
                    self.streams[key][:2] = [
                        WsReader(0, deflate, max_message=self.MAX_MESSAGE),
                        WsReader(1, deflate, max_message=self.MAX_MESSAGE)]
                elif status[:1] != "1":  # (refused: its DATA is an HTTP body)
                    del self.streams[key]
            return [], None
        state = self.streams.get(key)
        if state is None:
            return [], None
        if f.type == 3:  # RST_STREAM
            del self.streams[key]
            return [], None
        msgs: list[WsMessage] = []
        lost: str | None = None
        reader = state[ev.direction]
        data = getattr(f, "data", None)  # a DataFrame's payload, padding excluded
        if reader is not None:
            if truncated and reader.lost is None:
                reader.lost = "a payload the capture cut (max_data_bytes)"
            if data is not None and not f.malformed:
                msgs = reader.feed(data, ev.t)
            bit = 4 << ev.direction
            if reader.lost is not None and not state[2] & bit:
                state[2] |= bit
                lost = reader.lost if reader.lost_by is None else \
                    f"the rest is not read ({reader.lost_by.code}: the finding says why)"
        if f.type in (0, 1) and f.flags & 0x1:
            state[2] |= 1 << ev.direction
            if state[2] & 3 == 3:
                del self.streams[key]
        return msgs, lost

    def lines(self, conn_id: int, ev: FrameObserved, indent: str,
              truncated: bool = False) -> list[str]:
        """:meth:`feed`'s result as the lines to print under the frame's. What a
        message breaks of RFC 6455 is not among them: the observer's findings on
        the DATA frames (printed with the frame's) say it."""
        msgs, lost = self.feed(conn_id, ev, truncated)
        if not msgs and lost is None:
            return []
        arrow = "→" if ev.direction == 0 else "←"
        return said(msgs, lost, f"{indent}websocket {arrow} ", f"{indent}  ! ",
                    violations=False)


def said(msgs: list[WsMessage], lost: str | None, lead: str, problem_lead: str, *,
         violations: bool = True) -> list[str]:
    """Log lines for messages (each after ``lead``, its problems after
    ``problem_lead``: without ``violations``, only :meth:`WsMessage.notes`) and a
    framing loss."""
    out: list[str] = []
    for msg in msgs:
        out.append(f"{lead}{msg.summary(120)}")
        out.extend(f"{problem_lead}{p}" for p in (msg.problems if violations else msg.notes()))
    if lost is not None:
        out.append(f"{lead}framing lost: {lost}")
    return out


def message_dict(msg: WsMessage) -> dict[str, Any]:
    """A message for JSON output: text as text, anything else as hex."""
    d: dict[str, Any] = {"type": msg.kind, "opcode": msg.opcode}
    if msg.opcode == 1:
        d["text"] = msg.payload.decode("utf-8", "replace")
    elif msg.opcode == 8:
        code, reason = msg.close_status()
        d["code"], d["reason"] = code, reason
    else:
        d["data_hex"] = msg.payload.hex()
    d["wire_size"] = msg.wire_size
    if msg.compressed:
        d["compressed"] = True
    if msg.frames > 1:
        d["fragments"] = msg.frames
    if msg.problems:
        d["problems"] = list(msg.problems)
    return d


def upgrade_of(start_line: str, headers: Sequence[tuple[str, str]],
               ) -> tuple[bool, Deflate | None]:
    """For an HTTP/1.1 response: whether it is a ``101`` switching to a WebSocket
    (RFC 6455 §4.2.2), and the permessage-deflate it accepted."""
    parts = start_line.split(" ", 2)
    fields = {n.lower(): v for n, v in headers}
    if len(parts) < 2 or parts[1] != "101" or \
            fields.get("upgrade", "").strip().lower() != "websocket":
        return False, None
    return True, Deflate.from_header(fields.get("sec-websocket-extensions"))


class UpgradedWebSockets:
    """The logs' view of WebSockets over an HTTP/1.1 Upgrade (RFC 6455): per
    connection, after its ``101``, the relayed bytes of each direction are
    WebSocket frames. Bounded as :class:`WsTracker` is."""

    MAX_CONNECTIONS = WsTracker.MAX_STREAMS
    MAX_MESSAGE = WsTracker.MAX_MESSAGE

    def __init__(self) -> None:
        self.conns: dict[int, list[Any]] = {}
        """connection → [client reader, server reader, lost said (bits)]; a plain dict
        so that callers test ``if tracker.conns`` at C speed."""

    def upgraded(self, conn_id: int, start_line: str,
                 headers: Sequence[tuple[str, str]]) -> None:
        """An HTTP/1.1 response went by: a ``101`` to a WebSocket starts reading."""
        websocket, deflate = upgrade_of(start_line, headers)
        if not websocket:
            return
        if len(self.conns) >= self.MAX_CONNECTIONS:
            self.conns.pop(next(iter(self.conns)))
        self.conns[conn_id] = [WsReader(0, deflate, max_message=self.MAX_MESSAGE),
                               WsReader(1, deflate, max_message=self.MAX_MESSAGE), 0]

    def feed(self, conn_id: int, direction: int, data: bytes, t: float,
             ) -> tuple[list[WsMessage], str | None]:
        """The messages these relayed bytes complete, and why the direction stopped
        being read if it just did."""
        state = self.conns.get(conn_id)
        if state is None:
            return [], None
        reader: WsReader = state[direction]
        msgs = reader.feed(data, t)
        bit = 1 << direction
        if reader.lost is not None and not state[2] & bit:
            state[2] |= bit
            return msgs, reader.lost
        return msgs, None

    def closed(self, conn_id: int) -> None:
        self.conns.pop(conn_id, None)

    def lines(self, conn_id: int, direction: int, data: bytes, t: float,
              head: str) -> list[str]:
        """:meth:`feed`'s result as log lines, each after ``head`` (time, connection,
        arrow)."""
        msgs, lost = self.feed(conn_id, direction, data, t)
        return said(msgs, lost, f"{head} websocket ", f"{head}   ! ")


def websocket_object(conn_id: int, direction: int, wall: float,
                     msg: WsMessage) -> dict[str, Any]:
    """A WebSocket message of an HTTP/1.1-upgraded connection as a JSON Lines object
    (the live printer's and the export's): the message under ``websocket``, a list
    of one as a frame's messages are, so that an event has no ``type`` (which
    names a frame's: ``select(.type)`` keeps the frames)."""
    return {"conn": conn_id, "wall": wall, "event": "WebSocketMessage",
            "direction": "s2c" if direction else "c2s", "websocket": [message_dict(msg)]}
