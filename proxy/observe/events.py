"""What the observer reports: immutable records named as past-tense facts.

:class:`FrameObserved` is the workhorse: one per frame, in wire order per
direction, carrying the decoded frame, the header block it completed (if any)
and the findings it raised. The other events mark state changes a user wants to
see on a timeline: a stream changing state, settings taking effect, a PING
answered, a flow-control stall starting or ending, a direction losing framing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.observe.enums import Direction
from proxy.observe.findings import Finding
from proxy.observe.frames import Frame
from proxy.observe.records import record

if TYPE_CHECKING:
    from proxy.observe.hpack_annotated import HeaderBlock


@record
class Event:
    t: float
    """Timestamp passed in by the caller with the bytes (seconds, any epoch)."""
    direction: Direction
    """The direction whose bytes produced this event."""


@record
class PrefaceObserved(Event):
    """The client connection preface (RFC 9113 §3.4) went by."""


@record
class FrameObserved(Event):
    seq: int
    """Connection-wide frame sequence number, from 0, in observation order."""
    frame: Frame
    block: HeaderBlock | None = None
    """The decoded header block, on the frame that completed it (END_HEADERS)."""
    block_stream_id: int | None = None
    """For a PUSH_PROMISE block: the promised stream (its request headers)."""
    findings: tuple[Finding, ...] = ()
    windows: tuple[int, int | None] | None = None
    """For DATA and WINDOW_UPDATE: the flow-control windows the frame changed,
    after it — (connection, stream) for data flowing in the affected direction
    (a WINDOW_UPDATE affects the opposite direction's data)."""


@record
class StreamStateChanged(Event):
    stream_id: int
    old: str
    new: str
    """State names from :class:`proxy.observe.streams.StreamState`."""
    seq: int
    """The frame that caused the change."""


@record
class SettingsAcknowledged(Event):
    """A SETTINGS frame took effect: ``direction`` is the ACK's direction, so the
    settings were sent the other way and now bind this direction's sender."""

    settings: tuple[tuple[int, int], ...]
    seq: int
    window_delta: int = 0
    """How much a new INITIAL_WINDOW_SIZE moved every stream's window for this
    direction's sender (RFC 9113 §6.9.2); 0 when it did not change."""
    streams_adjusted: int = 0
    """How many open streams that moved."""
    windows: tuple[tuple[int, int], ...] = ()
    """(stream id, window) of each open stream that moved, after the change: a
    lowered INITIAL_WINDOW_SIZE can leave one negative (RFC 9113 §6.9.2)."""


@record
class PingAnswered(Event):
    """A PING ACK matched an earlier PING by its opaque data."""

    opaque: bytes
    rtt: float
    """Seconds between the PING and its ACK, as seen at the observer."""
    seq: int


@record
class FlowControlStalled(Event):
    """Data flowing in ``direction`` cannot continue: a send window reached 0 — spent
    by DATA, or lowered to 0 or below by a SETTINGS change (RFC 9113 §6.9.2) while
    the sender had a body under way — or was 0 when HEADERS announced a body (an
    INITIAL_WINDOW_SIZE of 0)."""

    stream_id: int
    """0 when the connection window is exhausted."""
    seq: int
    window: int = 0
    """The window then: below 0 when a SETTINGS change took it there."""


@record
class FlowControlResumed(Event):
    """A WINDOW_UPDATE (or a raised INITIAL_WINDOW_SIZE) reopened a stalled window."""

    stream_id: int
    stalled_for: float
    seq: int
    connection_blocked: bool = False
    """A stream's window reopened while the connection's is still 0 or less: its
    sender can still not send."""


@record
class Desynced(Event):
    """Framing was lost for this direction: later bytes are counted, not decoded."""

    offset: int
    """Byte offset in this direction's stream where framing was lost."""
    finding: Finding


@record
class ConnectionFindingRaised(Event):
    """A finding not tied to one frame (e.g. SETTINGS never acknowledged at close)."""

    finding: Finding
