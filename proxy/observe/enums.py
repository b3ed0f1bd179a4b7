"""Protocol numbers with their RFC names.

Unknown values are never an error: decoders keep them as plain ints and
:func:`type_name`, :func:`error_name` and :func:`setting_name` label them
(``UNKNOWN(0xbb)``), so GREASE and extensions stay visible.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Direction(IntEnum):
    """Which way bytes travel on a connection."""

    C2S = 0
    """Client to server (shown as →)."""
    S2C = 1
    """Server to client (shown as ←)."""

    @property
    def arrow(self) -> str:
        return "→" if self is Direction.C2S else "←"

    @property
    def peer(self) -> Direction:
        """The opposite direction."""
        return Direction.S2C if self is Direction.C2S else Direction.C2S

    @property
    def sender(self) -> str:
        return "client" if self is Direction.C2S else "server"


class FrameType(IntEnum):
    """Frame types: RFC 9113 §6 plus the registered extensions h2scope decodes."""

    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9
    ALTSVC = 0xA  # RFC 7838 §4
    ORIGIN = 0xC  # RFC 8336 §2
    PRIORITY_UPDATE = 0x10  # RFC 9218 §7.1


class Flag(IntFlag):
    """Frame flags (their meaning depends on the frame type)."""

    END_STREAM = 0x1  # DATA, HEADERS
    ACK = 0x1  # SETTINGS, PING
    END_HEADERS = 0x4  # HEADERS, PUSH_PROMISE, CONTINUATION
    PADDED = 0x8  # DATA, HEADERS, PUSH_PROMISE
    PRIORITY = 0x20  # HEADERS


#: Flags defined per frame type, by RFC name, in display order.
FLAGS_BY_TYPE: dict[int, tuple[tuple[int, str], ...]] = {
    FrameType.DATA: ((0x1, "END_STREAM"), (0x8, "PADDED")),
    FrameType.HEADERS: ((0x1, "END_STREAM"), (0x4, "END_HEADERS"), (0x8, "PADDED"),
                        (0x20, "PRIORITY")),
    FrameType.SETTINGS: ((0x1, "ACK"),),
    FrameType.PUSH_PROMISE: ((0x4, "END_HEADERS"), (0x8, "PADDED")),
    FrameType.PING: ((0x1, "ACK"),),
    FrameType.CONTINUATION: ((0x4, "END_HEADERS"),),
}


class ErrorCode(IntEnum):
    """RFC 9113 §7 error codes."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class SettingCode(IntEnum):
    """SETTINGS identifiers: RFC 9113 §6.5.2 and registered extensions."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8  # RFC 8441 §3
    NO_RFC7540_PRIORITIES = 0x9  # RFC 9218 §2.1
    GRPC_ALLOW_TRUE_BINARY_METADATA = 0xFE03
    """gRPC's own (not IANA-registered), sent by grpc-core: 1 lets the peer send
    ``-bin`` metadata values as raw bytes rather than base64."""


_TYPE_NAMES = {int(t): t.name for t in FrameType}
_ERROR_NAMES = {int(e): e.name for e in ErrorCode}
_SETTING_NAMES = {int(s): s.name for s in SettingCode}


def type_name(frame_type: int) -> str:
    """``HEADERS`` for 1, ``UNKNOWN(0xbb)`` for a type nobody registered."""
    name = _TYPE_NAMES.get(frame_type)
    return name if name is not None else f"UNKNOWN(0x{frame_type:02x})"


def error_name(code: int) -> str:
    """The RFC 9113 §7 name; a code with none is ``0x99 (unregistered)`` — no name
    that could pass for a real one."""
    name = _ERROR_NAMES.get(code)
    return name if name is not None else f"0x{code:x} (unregistered)"


def setting_name(ident: int) -> str:
    name = _SETTING_NAMES.get(ident)
    return name if name is not None else f"UNKNOWN_SETTING(0x{ident:x})"


def flag_names(frame_type: int, flags: int) -> tuple[str, ...]:
    """Names of the set flags defined for the type; undefined set bits as ``0x..``."""
    names = []
    known = 0
    for bit, name in FLAGS_BY_TYPE.get(frame_type, ()):
        known |= bit
        if flags & bit:
            names.append(name)
    rest = flags & ~known
    if rest:
        names.append(f"0x{rest:02x}")
    return tuple(names)


#: RFC 9113 §6.5.2 initial values.
DEFAULT_SETTINGS: dict[int, int] = {
    SettingCode.HEADER_TABLE_SIZE: 4096,
    SettingCode.ENABLE_PUSH: 1,
    SettingCode.MAX_CONCURRENT_STREAMS: 2**31 - 1,  # "initially unlimited"
    SettingCode.INITIAL_WINDOW_SIZE: 65_535,
    SettingCode.MAX_FRAME_SIZE: 16_384,
    SettingCode.MAX_HEADER_LIST_SIZE: 2**31 - 1,  # "initially unlimited"
}

CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def not_a_preface(have: bytes) -> str:
    """What is wrong with a client's first bytes ``have`` (up to 24) that are not the
    connection preface (RFC 9113 §3.4): where they differ, and how they read."""
    at = next((i for i, b in enumerate(have) if b != CONNECTION_PREFACE[i]), len(have))
    if at < 16:  # not even its request line: show what they are
        return ("the client's bytes do not start with the HTTP/2 connection preface (they "
                f"start with {have[:16]!r})")
    return (f"the client's connection preface is broken at byte {at}: {have!r} instead of "
            f"{CONNECTION_PREFACE!r}")
MAX_WINDOW = 2**31 - 1

IMPLAUSIBLE_FRAME = 1 << 20
"""A first frame, or one of an unknown type, whose header claims more than this
(and more than the receiver accepts) is taken for bytes that are not HTTP/2 —
text, a TLS record, noise: their first three bytes read as a length of
megabytes. Below it, an oversized frame with an intact header (a GREASE-like
unknown type, say) is a ``frame-too-large`` finding and the framing goes on
past it, as Wireshark's does; a frame of a known type past the first always is."""
