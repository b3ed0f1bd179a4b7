"""Frame records and the payload parser (RFC 9113 §4 and §6, plus extensions).

:func:`parse_frame` turns one complete frame's bytes into a typed, immutable
record. It never raises on traffic: a payload that does not fit its type's
layout (a PRIORITY frame of 4 bytes, padding longer than the payload) yields
the generic :class:`Frame` with ``malformed`` set, and the caller reports it.
Flow-control relevant sizes (``length``, padding) are always available.

Each record keeps the frame's raw bytes (header included) so captures, hex
views and verbatim replay never need to re-encode anything.
"""

from __future__ import annotations

import struct

from proxy.observe.enums import FrameType, error_name, flag_names, setting_name, type_name
from proxy.observe.records import positional, record

FRAME_HEADER = struct.Struct(">HBBBL")
"""Length (24 bits as 16+8), type, flags, R bit + stream id (31 bits)."""
_U32 = struct.Struct(">L")
_U16U32 = struct.Struct(">HL")
_PRIO = struct.Struct(">LB")
_GOAWAY = struct.Struct(">LL")
STREAM_MASK = 0x7FFF_FFFF


@record
class Frame:
    """Any frame. Typed subclasses add the fields their payload carries."""

    type: int
    """Frame type; an int so unknown and GREASE types survive (:class:`FrameType`)."""
    flags: int
    stream_id: int
    length: int
    """Payload length from the frame header (padding included)."""
    raw: bytes
    """The whole frame as it crossed the wire: 9-byte header + payload."""
    reserved: bool = False
    """The reserved R bit of the stream identifier was set (RFC 9113 §4.1: MUST be unset)."""
    malformed: str | None = None
    """Why the payload could not be decoded for this type, if it could not."""

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    @property
    def flag_names(self) -> tuple[str, ...]:
        return flag_names(self.type, self.flags)

    @property
    def payload(self) -> bytes:
        return self.raw[9:]


@record
class Priority:
    """RFC 7540 §5.3 priority fields carried by HEADERS and PRIORITY."""

    exclusive: bool
    depends_on: int
    weight: int
    """Actual weight 1..256 (the wire carries weight - 1)."""


def frame_padding(frame: Frame) -> bytes:
    """The padding octets of a PADDED DATA, HEADERS or PUSH_PROMISE frame (b"" for
    none, or when the frame's bytes were cut short, e.g. by record.max_data_bytes)."""
    pad = getattr(frame, "pad_length", None)
    raw = frame.raw
    if not pad or len(raw) != 9 + frame.length:
        return b""
    return raw[len(raw) - pad:]


def payload_reserved_bit(frame: Frame) -> str | None:
    """The field whose reserved high bit is set in a WINDOW_UPDATE (§6.9), GOAWAY
    (§6.8) or PUSH_PROMISE (§6.6) payload, ``"section field"``; None if clear."""
    raw = frame.raw
    ftype = frame.type
    if ftype == 8 and len(raw) > 9 and raw[9] & 0x80:
        return "§6.9 window size increment"
    if ftype == 7 and len(raw) > 9 and raw[9] & 0x80:
        return "§6.8 last-stream-id"
    if ftype == 5:
        at = 10 if frame.flags & 0x8 else 9
        if len(raw) > at and raw[at] & 0x80:
            return "§6.6 promised stream id"
    return None


@record
class DataFrame(Frame):
    pad_length: int | None
    """Bytes of padding when PADDED is set; flow control counts them (§6.9.1)."""
    data_length: int

    @property
    def data(self) -> bytes:
        start = 9 if self.pad_length is None else 10
        return self.raw[start : start + self.data_length]

    @property
    def end_stream(self) -> bool:
        return bool(self.flags & 0x1)


@record
class HeadersFrame(Frame):
    pad_length: int | None
    priority: Priority | None
    fragment: bytes
    """The header block fragment (padding and priority fields removed)."""

    @property
    def end_stream(self) -> bool:
        return bool(self.flags & 0x1)

    @property
    def end_headers(self) -> bool:
        return bool(self.flags & 0x4)


@record
class PriorityFrame(Frame):
    priority: Priority


@record
class RstStreamFrame(Frame):
    error_code: int

    @property
    def error_name(self) -> str:
        return error_name(self.error_code)


@record
class SettingsFrame(Frame):
    settings: tuple[tuple[int, int], ...]
    """(identifier, value) pairs in wire order; repeats are kept (§6.5: last wins)."""

    @property
    def ack(self) -> bool:
        return bool(self.flags & 0x1)

    def named(self) -> tuple[tuple[str, int], ...]:
        return tuple((setting_name(k), v) for k, v in self.settings)


@record
class PushPromiseFrame(Frame):
    pad_length: int | None
    promised_stream_id: int
    fragment: bytes

    @property
    def end_headers(self) -> bool:
        return bool(self.flags & 0x4)


@record
class PingFrame(Frame):
    opaque: bytes

    @property
    def ack(self) -> bool:
        return bool(self.flags & 0x1)


@record
class GoAwayFrame(Frame):
    last_stream_id: int
    error_code: int
    debug_data: bytes

    @property
    def error_name(self) -> str:
        return error_name(self.error_code)


@record
class WindowUpdateFrame(Frame):
    increment: int


@record
class ContinuationFrame(Frame):
    fragment: bytes

    @property
    def end_headers(self) -> bool:
        return bool(self.flags & 0x4)


@record
class AltSvcFrame(Frame):
    """RFC 7838 §4."""

    origin: bytes
    field_value: bytes


@record
class OriginFrame(Frame):
    """RFC 8336 §2."""

    origins: tuple[bytes, ...]


@record
class PriorityUpdateFrame(Frame):
    """RFC 9218 §7.1."""

    prioritized_stream_id: int
    field_value: bytes


@record
class UnknownFrame(Frame):
    """A type nobody registered (or GREASE, RFC 9113 §5.5): kept raw, ignored by peers."""


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int, int, int]:
    """(length, type, flags, raw stream id word) of the frame header at ``pos``."""
    hi, lo, ftype, flags, sid = FRAME_HEADER.unpack_from(buf, pos)
    return (hi << 8) | lo, ftype, flags, sid


def _strip_padding(raw: bytes, length: int, flags: int) -> tuple[int | None, int, int, str | None]:
    """(pad_length, start, end, problem) of the content between pad length and padding."""
    if not flags & 0x8:
        return None, 9, 9 + length, None
    if length < 1:
        return None, 9, 9, "PADDED flag set but the payload has no Pad Length byte"
    pad = raw[9]
    if pad >= length:
        # RFC 9113 §6.1/§6.2: padding that is not shorter than the payload is a PROTOCOL_ERROR.
        return pad, 10, 10, f"Pad Length {pad} is not less than the payload length {length}"
    return pad, 10, 9 + length - pad, None


def _priority(raw: bytes, pos: int) -> Priority:
    dep, weight = _PRIO.unpack_from(raw, pos)
    return Priority(exclusive=bool(dep & 0x8000_0000), depends_on=dep & STREAM_MASK,
                    weight=weight + 1)


def parse_frame(raw: bytes) -> Frame:
    """Decode one complete frame (header + payload). Never raises on content."""
    hi, lo, ftype, flags, sid_word = FRAME_HEADER.unpack_from(raw, 0)
    return parse_known_header(raw, ftype, flags, sid_word, (hi << 8) | lo)


def parse_known_header(raw: bytes, ftype: int, flags: int, sid_word: int, length: int) -> Frame:
    """:func:`parse_frame` for a caller that has already unpacked the frame header."""
    sid = sid_word & STREAM_MASK
    reserved = sid_word > STREAM_MASK
    if ftype == 0:  # the hot path first
        if not flags & 0x8:
            return new_data_frame(0, flags, sid, length, raw, reserved, None, None, length)
        pad, start, end, problem = _strip_padding(raw, length, flags)
        return new_data_frame(0, flags, sid, length, raw, reserved, problem, pad, end - start)
    parser = _PARSERS.get(ftype)
    if parser is None:
        return UnknownFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                            reserved=reserved)
    return parser(raw, ftype, flags, sid, length, reserved)


def _generic(raw: bytes, ftype: int, flags: int, sid: int, length: int, reserved: bool,
             problem: str) -> Frame:
    return Frame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                 reserved=reserved, malformed=problem)


def _parse_headers(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                   reserved: bool) -> Frame:
    if not flags & 0x28:  # neither PADDED nor PRIORITY: the common case
        return _headers_frame(ftype, flags, sid, length, raw, reserved, None, None, None,
                              raw[9:])
    pad, start, end, problem = _strip_padding(raw, length, flags)
    if problem:
        return _generic(raw, ftype, flags, sid, length, reserved, problem)
    priority = None
    if flags & 0x20:
        if end - start < 5:
            return _generic(raw, ftype, flags, sid, length, reserved,
                            "PRIORITY flag set but fewer than 5 bytes for the priority fields")
        priority = _priority(raw, start)
        start += 5
    return _headers_frame(ftype, flags, sid, length, raw, reserved, None, pad, priority,
                          raw[start:end])


def _parse_priority(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                    reserved: bool) -> Frame:
    if length != 5:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        f"PRIORITY payload is {length} bytes; it must be 5 (RFC 9113 §6.3)")
    return PriorityFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                         reserved=reserved, priority=_priority(raw, 9))


def _parse_rst(raw: bytes, ftype: int, flags: int, sid: int, length: int,
               reserved: bool) -> Frame:
    if length != 4:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        f"RST_STREAM payload is {length} bytes; it must be 4 (RFC 9113 §6.4)")
    return RstStreamFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                          reserved=reserved, error_code=_U32.unpack_from(raw, 9)[0])


def _parse_settings(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                    reserved: bool) -> Frame:
    if length % 6:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        f"SETTINGS payload is {length} bytes, not a multiple of 6 (RFC 9113 §6.5)")
    unpack = _U16U32.unpack_from
    settings = tuple(unpack(raw, pos) for pos in range(9, 9 + length, 6))
    return SettingsFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                         reserved=reserved, settings=settings)


def _parse_push_promise(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                        reserved: bool) -> Frame:
    pad, start, end, problem = _strip_padding(raw, length, flags)
    if problem:
        return _generic(raw, ftype, flags, sid, length, reserved, problem)
    if end - start < 4:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        "PUSH_PROMISE payload too short for the Promised Stream ID")
    promised = _U32.unpack_from(raw, start)[0] & STREAM_MASK
    return PushPromiseFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                            reserved=reserved, pad_length=pad, promised_stream_id=promised,
                            fragment=raw[start + 4 : end])


def _parse_ping(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                reserved: bool) -> Frame:
    if length != 8:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        f"PING payload is {length} bytes; it must be 8 (RFC 9113 §6.7)")
    return PingFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                     reserved=reserved, opaque=raw[9:17])


def _parse_goaway(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                  reserved: bool) -> Frame:
    if length < 8:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        f"GOAWAY payload is {length} bytes; it needs at least 8 (RFC 9113 §6.8)")
    last, code = _GOAWAY.unpack_from(raw, 9)
    return GoAwayFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                       reserved=reserved, last_stream_id=last & STREAM_MASK, error_code=code,
                       debug_data=raw[17:])


def _parse_window_update(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                         reserved: bool) -> Frame:
    if length != 4:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        f"WINDOW_UPDATE payload is {length} bytes; it must be 4 (RFC 9113 §6.9)")
    return _window_update_frame(ftype, flags, sid, length, raw, reserved, None,
                                _U32.unpack_from(raw, 9)[0] & STREAM_MASK)


def _parse_continuation(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                        reserved: bool) -> Frame:
    return ContinuationFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                             reserved=reserved, fragment=raw[9:])


def _parse_altsvc(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                  reserved: bool) -> Frame:
    if length < 2:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        "ALTSVC payload too short for the Origin-Len field (RFC 7838 §4)")
    olen = int.from_bytes(raw[9:11], "big")
    if 11 + olen > 9 + length:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        f"ALTSVC Origin-Len {olen} runs past the payload (RFC 7838 §4)")
    return AltSvcFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                       reserved=reserved, origin=raw[11 : 11 + olen],
                       field_value=raw[11 + olen :])


def _parse_origin(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                  reserved: bool) -> Frame:
    origins = []
    pos, end = 9, 9 + length
    while pos < end:
        if pos + 2 > end:
            return _generic(raw, ftype, flags, sid, length, reserved,
                            "ORIGIN entry truncated in its length field (RFC 8336 §2)")
        olen = int.from_bytes(raw[pos : pos + 2], "big")
        if pos + 2 + olen > end:
            return _generic(raw, ftype, flags, sid, length, reserved,
                            f"ORIGIN entry of {olen} bytes runs past the payload (RFC 8336 §2)")
        origins.append(raw[pos + 2 : pos + 2 + olen])
        pos += 2 + olen
    return OriginFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                       reserved=reserved, origins=tuple(origins))


def _parse_priority_update(raw: bytes, ftype: int, flags: int, sid: int, length: int,
                           reserved: bool) -> Frame:
    if length < 4:
        return _generic(raw, ftype, flags, sid, length, reserved,
                        "PRIORITY_UPDATE payload too short for the Prioritized Stream ID "
                        "(RFC 9218 §7.1)")
    return PriorityUpdateFrame(type=ftype, flags=flags, stream_id=sid, length=length, raw=raw,
                               reserved=reserved,
                               prioritized_stream_id=_U32.unpack_from(raw, 9)[0] & STREAM_MASK,
                               field_value=raw[13:])


# Positional constructors for the frames that make up most of the traffic.
new_data_frame = positional(DataFrame)
"""``DataFrame(...)`` with every field positional, in field order (the observer's
framing loop builds unpadded DATA frames with it directly)."""
_headers_frame = positional(HeadersFrame)
_window_update_frame = positional(WindowUpdateFrame)

_PARSER_TABLE = {
    FrameType.HEADERS: _parse_headers,
    FrameType.PRIORITY: _parse_priority,
    FrameType.RST_STREAM: _parse_rst,
    FrameType.SETTINGS: _parse_settings,
    FrameType.PUSH_PROMISE: _parse_push_promise,
    FrameType.PING: _parse_ping,
    FrameType.GOAWAY: _parse_goaway,
    FrameType.WINDOW_UPDATE: _parse_window_update,
    FrameType.CONTINUATION: _parse_continuation,
    FrameType.ALTSVC: _parse_altsvc,
    FrameType.ORIGIN: _parse_origin,
    FrameType.PRIORITY_UPDATE: _parse_priority_update,
}
# Plain int keys: IntEnum hashing equals int hashing, but lookups by int are what run.
_PARSERS = {int(k): v for k, v in _PARSER_TABLE.items()}
