"""The RFC 9113 §5.1 stream state machine, seen from the middle.

An endpoint's states are relative ("half-closed (local)"); an observer sees
both endpoints, so states here are named by *who* has finished sending:

=====================  ==========================================================
``IDLE``               not yet used
``RESERVED``           promised by a PUSH_PROMISE (server: reserved (local),
                       client: reserved (remote))
``OPEN``               both sides may send
``HALF_CLOSED_CLIENT`` the client sent END_STREAM (client: half-closed (local),
                       server: half-closed (remote)); the server may still send
``HALF_CLOSED_SERVER`` the server sent END_STREAM; the client may still send
``CLOSED``             both ended, or RST_STREAM
=====================  ==========================================================

Everything that moves a stream between states is in :func:`transition`; it
returns the new state and, when the frame was not allowed in the old state, the
rule it broke. Frames that do not change state (PRIORITY, WINDOW_UPDATE on an
open stream, ...) are checked by :func:`check_frame_allowed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from proxy.observe.enums import Direction, FrameType

if TYPE_CHECKING:
    from proxy.observe.websockets import WebSocketStream


class StreamState(Enum):
    IDLE = "idle"
    RESERVED = "reserved"
    OPEN = "open"
    HALF_CLOSED_CLIENT = "half-closed (client)"
    HALF_CLOSED_SERVER = "half-closed (server)"
    CLOSED = "closed"


S = StreamState
# Module constants: looking a member up on an Enum class costs ~90 ns in 3.11.
_IDLE, _RESERVED, _OPEN, _CLOSED = S.IDLE, S.RESERVED, S.OPEN, S.CLOSED
_HALF_CLOSED_CLIENT, _HALF_CLOSED_SERVER = S.HALF_CLOSED_CLIENT, S.HALF_CLOSED_SERVER
C2S, S2C = Direction.C2S, Direction.S2C
HEADERS, DATA, RST = int(FrameType.HEADERS), int(FrameType.DATA), int(FrameType.RST_STREAM)
PUSH_PROMISE = int(FrameType.PUSH_PROMISE)


def _ended(state: StreamState, sender: Direction) -> StreamState:
    """The state after ``sender`` sends END_STREAM."""
    if state is _OPEN:
        return _HALF_CLOSED_CLIENT if sender is C2S else _HALF_CLOSED_SERVER
    return _CLOSED


def sender_finished(state: StreamState, sender: Direction) -> bool:
    """True when ``sender`` may no longer send DATA/HEADERS on the stream."""
    if state is _CLOSED:
        return True
    if sender is C2S:
        return state is _HALF_CLOSED_CLIENT or state is _RESERVED
    return state is _HALF_CLOSED_SERVER


def transition(state: StreamState, ftype: int, end_stream: bool,
               sender: Direction) -> tuple[StreamState, str | None]:
    """(new state, violation) for a HEADERS, DATA or RST_STREAM frame.

    The violation is a sentence naming the broken rule, or None. (Identity
    tests rather than ``match``: this runs for most frames, and matching
    enum members builds and compares tuples.)
    """
    if ftype == 3:  # RST_STREAM
        if state is _IDLE:
            # RFC 9113 §5.1 idle: only HEADERS and PRIORITY may be received.
            return _CLOSED, "RST_STREAM on an idle stream"
        return _CLOSED, None
    if state is _OPEN or state is _HALF_CLOSED_CLIENT or state is _HALF_CLOSED_SERVER:
        if sender_finished(state, sender):
            return state, f"the {sender.sender} sent {_NAME[ftype]} after it ended the stream"
        return (_ended(state, sender) if end_stream else state), None
    if state is _IDLE:
        if ftype == 1:  # HEADERS opens a stream
            if end_stream:
                return (_HALF_CLOSED_CLIENT if sender is C2S else _HALF_CLOSED_SERVER), None
            return _OPEN, None
        if ftype == 0:
            return _IDLE, "DATA on an idle stream"
    elif state is _RESERVED:
        if ftype == 1:
            if sender is C2S:
                return state, "the client sent HEADERS on a stream reserved by the server's push"
            # RFC 9113 §5.1 reserved (local): sending HEADERS moves to half-closed (remote).
            return (_CLOSED if end_stream else _HALF_CLOSED_CLIENT), None
        if ftype == 0:
            return state, "DATA on a reserved stream before its HEADERS"
    elif state is _CLOSED:
        return state, f"{_NAME[ftype]} on a closed stream"
    return state, None  # pragma: no cover - every (state, type) is handled above


_NAME = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM"}
_NOT_ON_IDLE = (int(FrameType.WINDOW_UPDATE), int(FrameType.CONTINUATION))


def check_frame_allowed(state: StreamState, ftype: int) -> str | None:
    """Rules for frames that never change a stream's state."""
    if state is _IDLE and ftype in _NOT_ON_IDLE:
        # RFC 9113 §5.1 idle: receiving anything but HEADERS or PRIORITY is a PROTOCOL_ERROR.
        return f"{FrameType(ftype).name} on an idle stream"
    return None


NO_CONTENT = -2
"""``Stream.content_length`` of a response to HEAD, a 204 or a 304: no DATA payload."""
NO_RESPONSE_YET = -3
"""``Stream.content_length`` of the server's direction before its final response."""


@dataclass(slots=True)
class Stream:
    """What the model tracks per stream (mutable, internal to the observer)."""

    stream_id: int
    state: StreamState = S.IDLE
    opened_by: Direction = C2S
    promised_by: int | None = None
    """For a pushed stream: the stream whose PUSH_PROMISE reserved it."""
    reset_by: Direction | None = None
    reset_code: int | None = None
    reset_seq: int = -1
    """The frame number of the RST_STREAM that reset it."""
    reset_offset: int = -1
    """Where that RST_STREAM ended in its sender's bytes (what the relay had read of
    that direction): said against where the other side's bytes ended (its EOF)."""
    reset_from: StreamState | None = None
    """The stream's state when it was reset: who was still sending."""
    request_seq: int = -1
    """The frame number that completed its request's header block."""
    request_headers: tuple[tuple[str, str], ...] | None = None
    response_headers: tuple[tuple[str, str], ...] | None = None
    informational: list[tuple[tuple[str, str], ...]] = field(default_factory=list)
    trailers: dict[Direction, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    data_bytes: list[int] = field(default_factory=lambda: [0, 0])
    """DATA payload bytes (padding excluded) per direction index."""
    content_length: list[int] = field(default_factory=lambda: [-1, NO_RESPONSE_YET])
    """Per direction index: the ``content-length`` its message declared, which its
    DATA must add up to (RFC 9113 §8.1.1); -1 when there is none to check (none
    declared, or a finding already reported); :data:`NO_CONTENT` for a response
    that may carry no content at all (RFC 9110 §6.4.1); :data:`NO_RESPONSE_YET`
    for the response direction until its final HEADERS (RFC 9113 §8.1). Every
    value but -1 sends DATA off the observer's fast path to be checked."""
    send_window: list[int] = field(default_factory=lambda: [0, 0])
    """Flow-control window for data flowing in each direction (index = Direction)."""
    stalled_since: list[float | None] = field(default_factory=lambda: [None, None])
    stall_seq: tuple[int, int] = (-1, -1)
    """Per direction index: the frame that began its latest stall (-1: none)."""
    urgency: int = 3
    """RFC 9218 §4.1 urgency (0 highest .. 7), default 3."""
    incremental: bool = False
    grpc_pending: bool = False
    """A gRPC response whose grpc-status has not come yet (it must, in trailers)."""
    in_flight_said: bool = False
    """A frame-after-reset (a frame in flight when the reset was sent) was reported."""
    grpc_call: bool = False
    """The request was a gRPC call's (gRPC-Web excepted): whatever answers it, the
    client wants a grpc-status."""
    presumed_closed: bool = False
    """Not tracked (closed long ago, or skipped and so implicitly closed, §5.1.1)."""
    refused: bool = False
    """Opened against RFC 9113 §5.1.1 or §8.4 (an id out of order or of the wrong
    parity, a server's HEADERS on an idle stream): a connection error its peer must
    not process, so it counts towards no limit and owes no response."""
    exceeded: bool = False
    """A flow-control error was flagged on this stream (DATA over a window, a window
    pushed past 2^31-1): a FLOW_CONTROL_ERROR reset of it is explained."""
    below_by_settings: bool = False
    """The first DATA past its window found it already below 0, where only a SETTINGS
    change takes it (RFC 9113 §6.9.2): the later DATA on it are said the same way."""
    websocket: WebSocketStream | None = None
    """An RFC 8441 WebSocket (an extended CONNECT answered 2xx) while it is open: its
    DATA is read as WebSocket frames and checked (:mod:`proxy.observe.websockets`)."""
