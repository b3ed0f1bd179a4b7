"""HTTP/2 frames rebuilt from a Chrome net log's session events (no raw bytes).

Chrome's default net-export modes log what its HTTP/2 session did, frame by
frame, but not the bytes: ``HTTP2_SESSION_SEND_HEADERS`` (the header list,
END_STREAM, the RFC 7540 priority), ``…_RECV_HEADERS``, ``…_SEND_DATA`` /
``…_RECV_DATA`` (stream, size, END_STREAM), ``…_SEND_SETTINGS``,
``…_RECV_SETTING`` one by one, the ACKs, ``…_SEND_WINDOW_UPDATE`` /
``…_RECV_WINDOW_UPDATE``, ``…_PING``, ``…_SEND_RST_STREAM`` /
``…_RECV_RST_STREAM``, ``…_RECV_GOAWAY``, ``…_RECV_PUSH_PROMISE``,
``HTTP2_STREAM_SEND_PRIORITY`` and the GREASE frames Chrome sends
(``…_SEND_GREASED_FRAME``). :class:`SessionFrames` turns each into the frame
it stands for, so the observer sees the connection's structure: streams,
their order and interleaving, sizes, flow-control windows and stalls,
settings, resets, findings on what the frames say.

What the log does not have is not invented, and the capture says so
(``meta["rebuilt"]``): header blocks are encoded afresh without a dynamic
table (:func:`encode_block`: static-table indexes and literals, so the HPACK
representations, block sizes and tables are h2scope's, not the wire's), DATA
payloads are zeros of the logged size (recorded with
``max_data_bytes`` 0, i.e. marked as not stored), padding is not known, and
values Chrome elides (cookies in the default mode) stay elided.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from hpack.table import HeaderTable

from proxy.observe.enums import CONNECTION_PREFACE, Direction

_INT = re.compile(r"-?\d+")
_SETTING = re.compile(r"\[id:(\d+)[^\]]*value:(\d+)\]")
MAX_FRAME = 16384
"""Header blocks longer than this go on in CONTINUATION frames."""


def _int(value: object, default: int = 0) -> int:
    """An integer from Chrome's params (ints, or strings like ``"8 (CANCEL)"``)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    m = _INT.match(str(value or "").strip())
    return int(m.group()) if m else default


def _u32(value: object) -> int:
    """A 32-bit field from a logged value (whatever the log holds, a field fits)."""
    return _int(value) & 0xFFFFFFFF


def _u31(value: object) -> int:
    return _int(value) & 0x7FFFFFFF


def _length(value: object) -> int:
    """A payload length: 0 up to the largest a frame can carry (2^24 - 1)."""
    return min(max(0, _int(value)), (1 << 24) - 1)


def _bool(value: object) -> bool:
    return value is True or str(value).lower() == "true"


def _headers(value: object) -> list[tuple[str, str]]:
    """``["name: value", …]`` (pseudo-headers start with their colon)."""
    out = []
    for item in value if isinstance(value, list) else ():
        text = str(item)
        cut = text.find(": ", 1)
        out.append((text, "") if cut < 0 else (text[:cut], text[cut + 2:]))
    return out


_STATIC_PAIRS: dict[tuple[str, str], int] = {}
_STATIC_NAMES: dict[str, int] = {}
for _i, (_n, _v) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_PAIRS.setdefault((_n.decode(), _v.decode()), _i)
    _STATIC_NAMES.setdefault(_n.decode(), _i)


def _integer(value: int, prefix: int, first: int) -> bytes:
    """RFC 7541 §5.1: ``value`` with a ``prefix``-bit prefix; ``first`` holds the
    bits above the prefix in the first byte."""
    top = (1 << prefix) - 1
    if value < top:
        return bytes((first | value,))
    out = bytearray((first | top,))
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    return _integer(len(data), 7, 0) + data


def encode_block(fields: list[tuple[str, str]]) -> bytes:
    """A header block that needs no dynamic table: a static-table index where the
    static table has the field, else a literal without indexing (RFC 7541 §6.2.2),
    no Huffman. The decoder's table stays empty, as nothing of the wire's table
    is known."""
    out = bytearray()
    for name, value in fields:
        index = _STATIC_PAIRS.get((name, value))
        if index is not None:
            out += _integer(index, 7, 0x80)
            continue
        index = _STATIC_NAMES.get(name, 0)
        out += _integer(index, 4, 0x00)
        if not index:
            out += _string(name)
        out += _string(value)
    return bytes(out)


def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes((ftype, flags))
            + (stream & 0x7FFFFFFF).to_bytes(4, "big") + payload)


class SessionFrames:
    """One HTTP/2 session's events in, frames out through ``emit(direction, bytes, t)``."""

    def __init__(self, emit: Callable[[Direction, bytes, float], None]) -> None:
        self.emit = emit
        self.server_settings: list[tuple[int, int]] | None = None
        """RECV_SETTINGS seen, its RECV_SETTING values still coming."""
        self.held: list[tuple[Direction, bytes, float]] = []
        """Frames logged while the server's SETTINGS were still being listed (Chrome
        logs its ACK before the values): sent after that SETTINGS."""
        self.started = False
        self.unknown: dict[str, int] = {}

    def start(self, t: float) -> None:
        if not self.started:
            self.started = True
            self.emit(Direction.C2S, CONNECTION_PREFACE, t)

    def _send(self, direction: Direction, data: bytes, t: float) -> None:
        if self.server_settings is not None:
            self.held.append((direction, data, t))
        else:
            self.emit(direction, data, t)

    def _flush_settings(self, t: float) -> None:
        if self.server_settings is None:
            return
        payload = b"".join(struct.pack(">HI", k, v) for k, v in self.server_settings)
        self.server_settings = None
        self.emit(Direction.S2C, frame(0x4, 0, 0, payload), t)
        held, self.held = self.held, []
        for d, data, te in held:
            self.emit(d, data, te)

    def event(self, name: str, params: dict[str, Any], t: float) -> None:
        """One of the session's events (others are ignored)."""
        if name == "HTTP2_SESSION_RECV_SETTING" and self.server_settings is not None:
            self.server_settings.append((_int(params.get("id")) & 0xFFFF,
                                         _int(params.get("value")) & 0xFFFFFFFF))
            return
        if name not in _WITHIN_SETTINGS:
            self._flush_settings(t)
        self.start(t)
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, params, t)

    def finish(self, t: float) -> None:
        self._flush_settings(t)

    # ---------------------------------------------------------------- frames

    def _headers_frames(self, direction: Direction, stream: int, fields: list[tuple[str, str]],
                        flags: int, prefix: bytes, t: float, ftype: int = 0x1) -> None:
        block = encode_block(fields)
        room = MAX_FRAME - len(prefix)
        first, rest = block[:room], block[room:]
        self._send(direction, frame(ftype, flags | (0 if rest else 0x4), stream,
                                    prefix + first), t)
        while rest:
            part, rest = rest[:MAX_FRAME], rest[MAX_FRAME:]
            self._send(direction, frame(0x9, 0 if rest else 0x4, stream, part), t)

    def send_headers(self, p: dict[str, Any], t: float) -> None:
        flags = 0x1 if _bool(p.get("fin")) else 0
        prefix = b""
        if _bool(p.get("has_priority")):
            flags |= 0x20
            dep = _u31(p.get("parent_stream_id")) | (0x80000000 if _bool(p.get("exclusive"))
                                                     else 0)
            prefix = dep.to_bytes(4, "big") + bytes((max(1, min(256, _int(p.get("weight"),
                                                                          16))) - 1,))
        self._headers_frames(Direction.C2S, _int(p.get("stream_id")),
                             _headers(p.get("headers")), flags, prefix, t)

    def recv_headers(self, p: dict[str, Any], t: float) -> None:
        self._headers_frames(Direction.S2C, _int(p.get("stream_id")), _headers(p.get("headers")),
                             0x1 if _bool(p.get("fin")) else 0, b"", t)

    def push_promise(self, p: dict[str, Any], t: float) -> None:
        promised = _u31(p.get("promised_stream_id")).to_bytes(4, "big")
        self._headers_frames(Direction.S2C, _int(p.get("id")), _headers(p.get("headers")), 0,
                             promised, t, ftype=0x5)

    def _data(self, direction: Direction, p: dict[str, Any], t: float) -> None:
        size = _length(p.get("size"))
        self._send(direction, frame(0x0, 0x1 if _bool(p.get("fin")) else 0,
                                    _int(p.get("stream_id")), bytes(size)), t)

    def send_data(self, p: dict[str, Any], t: float) -> None:
        self._data(Direction.C2S, p, t)

    def recv_data(self, p: dict[str, Any], t: float) -> None:
        self._data(Direction.S2C, p, t)

    def send_settings(self, p: dict[str, Any], t: float) -> None:
        listed = p.get("settings")
        pairs = [(int(a) & 0xFFFF, int(b) & 0xFFFFFFFF) for a, b in _SETTING.findall(" ".join(
            str(s) for s in (listed if isinstance(listed, list) else ())))]
        self._send(Direction.C2S, frame(0x4, 0, 0, b"".join(struct.pack(">HI", k, v)
                                                            for k, v in pairs)), t)

    def recv_settings(self, p: dict[str, Any], t: float) -> None:
        self.server_settings = []

    def _window_update(self, direction: Direction, p: dict[str, Any], t: float) -> None:
        delta = _u31(p.get("delta"))
        self._send(direction, frame(0x8, 0, _int(p.get("stream_id")), delta.to_bytes(4, "big")),
                   t)

    def ping(self, p: dict[str, Any], t: float) -> None:
        direction = Direction.C2S if str(p.get("type")) == "sent" else Direction.S2C
        opaque = (_int(p.get("unique_id")) & (2**64 - 1)).to_bytes(8, "big")
        self._send(direction, frame(0x6, 0x1 if _bool(p.get("is_ack")) else 0, 0, opaque), t)

    def _rst(self, direction: Direction, p: dict[str, Any], t: float) -> None:
        self._send(direction, frame(0x3, 0, _int(p.get("stream_id")),
                                    _u32(p.get("error_code")).to_bytes(4, "big")), t)

    def recv_goaway(self, p: dict[str, Any], t: float) -> None:
        debug = str(p.get("debug_data") or "").encode("utf-8", "replace")[:MAX_FRAME - 8]
        payload = (_u31(p.get("last_accepted_stream_id")).to_bytes(4, "big")
                   + _u32(p.get("error_code")).to_bytes(4, "big") + debug)
        self._send(Direction.S2C, frame(0x7, 0, 0, payload), t)

    def priority(self, p: dict[str, Any], t: float) -> None:
        dep = _u31(p.get("parent_stream_id")) | (0x80000000 if _bool(p.get("exclusive")) else 0)
        weight = max(1, min(256, _int(p.get("weight"), 16))) - 1
        self._send(Direction.C2S, frame(0x2, 0, _int(p.get("stream_id")),
                                        dep.to_bytes(4, "big") + bytes((weight,))), t)

    def greased(self, p: dict[str, Any], t: float) -> None:
        size = _length(p.get("length"))
        self._send(Direction.C2S, frame(_int(p.get("type")) & 0xFF, _int(p.get("flags")) & 0xFF,
                                        _int(p.get("stream_id")), bytes(size)), t)


_WITHIN_SETTINGS = frozenset({
    "HTTP2_SESSION_SEND_SETTINGS_ACK",
    "HTTP2_SESSION_UPDATE_STREAMS_SEND_WINDOW_SIZE",
})
"""Events Chrome logs among a received SETTINGS frame's values (its ACK before them;
the new INITIAL_WINDOW_SIZE applied to open streams as it is read): the values after
them are the same frame's."""

_HANDLERS: dict[str, Callable[[SessionFrames, dict[str, Any], float], None]] = {
    "HTTP2_SESSION_SEND_HEADERS": SessionFrames.send_headers,
    "HTTP2_SESSION_RECV_HEADERS": SessionFrames.recv_headers,
    "HTTP2_SESSION_RECV_PUSH_PROMISE": SessionFrames.push_promise,
    "HTTP2_SESSION_SEND_DATA": SessionFrames.send_data,
    "HTTP2_SESSION_RECV_DATA": SessionFrames.recv_data,
    "HTTP2_SESSION_SEND_SETTINGS": SessionFrames.send_settings,
    "HTTP2_SESSION_RECV_SETTINGS": SessionFrames.recv_settings,
    "HTTP2_SESSION_SEND_SETTINGS_ACK":
        lambda s, p, t: s._send(Direction.C2S, frame(0x4, 0x1, 0, b""), t),
    "HTTP2_SESSION_RECV_SETTINGS_ACK":
        lambda s, p, t: s._send(Direction.S2C, frame(0x4, 0x1, 0, b""), t),
    "HTTP2_SESSION_SEND_WINDOW_UPDATE":
        lambda s, p, t: s._window_update(Direction.C2S, p, t),
    "HTTP2_SESSION_RECV_WINDOW_UPDATE":
        lambda s, p, t: s._window_update(Direction.S2C, p, t),
    "HTTP2_SESSION_PING": SessionFrames.ping,
    "HTTP2_SESSION_SEND_RST_STREAM": lambda s, p, t: s._rst(Direction.C2S, p, t),
    "HTTP2_SESSION_RECV_RST_STREAM": lambda s, p, t: s._rst(Direction.S2C, p, t),
    "HTTP2_SESSION_RECV_GOAWAY": SessionFrames.recv_goaway,
    "HTTP2_STREAM_SEND_PRIORITY": SessionFrames.priority,
    "HTTP2_SESSION_SEND_GREASED_FRAME": SessionFrames.greased,
}
