"""Per-endpoint state of a connection model: what one side has sent and declared.

A :class:`Side` belongs to the endpoint that *sends* one direction's bytes.
Settings are kept as the RFC describes them: values this endpoint advertised
are *pending* until the peer acknowledges them, then *acknowledged* — and only
then do they bind what the peer sends (RFC 9113 §6.5.3).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from proxy.observe.enums import DEFAULT_SETTINGS, Direction, SettingCode
from proxy.observe.hpack_annotated import AnnotatedDecoder


@dataclass(slots=True)
class PendingSettings:
    settings: tuple[tuple[int, int], ...]
    seq: int
    t: float


_TRACKED = (int(SettingCode.MAX_FRAME_SIZE), int(SettingCode.INITIAL_WINDOW_SIZE))
"""The settings whose largest pending value :class:`Side` keeps at hand."""
_VALID = ((16_384, 16_777_215), (0, 2**31 - 1))
"""Their allowed values (RFC 9113 §6.5.2)."""

MAX_BLOCK_BYTES = 16 << 20
"""A header block still open past this many bytes is not buffered any further."""


@dataclass(slots=True)
class HeaderBlockInProgress:
    """HEADERS/PUSH_PROMISE waiting for CONTINUATION (RFC 9113 §6.10)."""

    stream_id: int
    role: object
    fragments: list[bytes]
    promised_stream_id: int | None
    first_seq: int
    size: int = 0
    """Bytes of the fragments so far; -1 once past :data:`MAX_BLOCK_BYTES` (dropped)."""


@dataclass(slots=True)
class Side:
    direction: Direction
    """The direction this endpoint sends."""
    decoder: AnnotatedDecoder = field(default_factory=lambda: AnnotatedDecoder(lenient=True))
    """Decodes the header blocks this endpoint sends (its encoder's mirror)."""
    buffer: bytearray = field(default_factory=bytearray)
    offset: int = 0
    """Bytes of this direction consumed by the framer so far."""
    oversize_end: int = -1
    """Where the frame whose header was already flagged too large ends (its offset),
    so the whole frame, if it comes, is not flagged again."""
    preface: str = "required"
    """"required", "optional" (decode tool) or "done"."""
    desynced: bool = False
    unseen: bool = False
    """This side's bytes are never fed (``h2scope decode`` reads the other side): its
    ACKs, PINGs and the streams it opened are unknown from the start; what binds its
    peer (its settings, WINDOW_UPDATEs) is unknown from :meth:`settings_unknown` on."""
    skipped_bytes: int = 0
    frames: int = 0
    hpack_broken: bool = False
    checked: dict[int, tuple[object, object, int, int | None, int]] = field(
        default_factory=dict)
    """Decoded blocks found clean, by ``id``: (block, role, content-length, status).
    The decoder hands back the same record for a repeated block while its table
    is unchanged; holding the block keeps its ``id`` from being reused."""
    advertised: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    """Settings this endpoint advertised that the peer has acknowledged."""
    pending: deque[PendingSettings] = field(default_factory=deque)
    """SETTINGS sent and not acknowledged yet, oldest first: :meth:`add_pending`
    and :meth:`ack_pending` keep the largest MAX_FRAME_SIZE and INITIAL_WINDOW_SIZE
    among them at hand (a flood of SETTINGS made every frame of it walk them all:
    8,000 tiny SETTINGS held the event loop for 12 s)."""
    _pending_max: tuple[deque[tuple[int, int]], deque[tuple[int, int]]] = field(
        default_factory=lambda: (deque(), deque()))
    """Per setting (MAX_FRAME_SIZE, INITIAL_WINDOW_SIZE): (seq, value) of pending
    SETTINGS in order, each value larger than every one after it, so the first is
    the largest still pending (a sliding-window maximum: O(1) amortized)."""
    last_window: tuple[int, int] | None = None
    """(seq, value) of the INITIAL_WINDOW_SIZE in force once every pending SETTINGS
    is processed (the last valid one among them), or None if none sets it."""
    block: HeaderBlockInProgress | None = None
    block_cut: tuple[int, int, int, str] | None = None
    """The last header block another frame cut off before its CONTINUATION:
    (stream, its first frame, the frame that cut it, that frame's type name)."""
    highest_stream_id: int = 0
    reused_block: bool = False
    """The client's last HEADERS reused the id of a stream it had ended: its block is
    not checked as a request (the receiver resets it unread)."""
    lost_above: int | None = None
    """Set when part of the connection was lost (a damaged capture, lost packets):
    the highest id this side had opened then. A stream above it that the observer
    does not know may have been opened in the lost part."""
    """Highest stream id this endpoint opened (or promised)."""
    conn_window: int = 65_535
    """Connection-level flow-control window for data this endpoint sends."""
    conn_stalled_since: float | None = None
    conn_stall_seq: int = -1
    """The frame that spent the connection window when it stalled last."""
    pings: dict[bytes, tuple[float, int]] = field(default_factory=dict)
    """Outstanding PINGs this endpoint sent: opaque → (time, seq) of the oldest
    with that opaque data."""
    pings_repeated: dict[bytes, deque[tuple[float, int]]] = field(default_factory=dict)
    """Later outstanding PINGs whose opaque data an older one in :attr:`pings` has
    (RFC 9113 §6.7 allows any value: all-zero keepalives are common), oldest first.
    An ACK answers the oldest: it proves no more than that one was read."""
    pings_forgotten: int = 0
    """Outstanding PINGs let go to keep :attr:`pings` bounded (a flood): as many
    ACKs that match nothing are their answers, not strays."""
    pending_reported: int = 0
    """How many of the oldest :attr:`pending` SETTINGS a finding already said went
    unacknowledged (they are a prefix: reported in order)."""
    goaway_last_stream_id: int | None = None
    goaway_seq: int = -1
    """The frame number of this endpoint's first GOAWAY (-1: none sent)."""
    read_up_to: int = -1
    """The highest frame number of the peer's that this endpoint provably read: the
    request it answered, the PING or SETTINGS it acknowledged."""
    goaway_error: int = 0
    """The error code of the last GOAWAY this endpoint sent (0: none, or NO_ERROR)."""
    sent_settings: bool = False
    connect_protocol: bool = False
    """This endpoint sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3): its peer
    may use extended CONNECT from receipt on, no ACK needed."""
    no_rfc7540_priorities: int = -1
    """SETTINGS_NO_RFC7540_PRIORITIES as this endpoint's first SETTINGS set it (-1: not
    set there); RFC 9218 §2.1 forbids changing it later."""
    true_binary: bool = False
    """This endpoint sent gRPC's GRPC_ALLOW_TRUE_BINARY_METADATA = 1: its peer may
    send ``-bin`` values as raw bytes (NUL included)."""
    active_streams: int = 0
    """Streams this endpoint opened that are open or half-closed (§5.1.2 counts them)."""
    accepts_frame_size: int = 16_384
    """The largest frame this endpoint has said it accepts, pending SETTINGS included:
    a peer may use a larger size as soon as it processes SETTINGS, slightly before
    its ACK crosses the observer. Kept current by :meth:`refresh_frame_size`."""
    peer: Side | None = None
    """The other endpoint (set once by the connection model)."""
    bursts: dict[str, deque[float]] = field(default_factory=dict)
    """Times of this endpoint's recent frames of each flood kind (:mod:`floods`)."""
    floods_reported: set[str] = field(default_factory=set)

    def settings_unknown(self) -> None:
        """(An :attr:`unseen` side.) Its peer acknowledged its SETTINGS, so from here
        on they bind the peer, and they are not in the input: held as a side whose
        frames were lost (desynced). Until then the RFC defaults bound the peer
        (RFC 9113 §4.2, §6.9.2; RFC 7541 §4.2 with RFC 9113 §4.3.1): judged by them."""
        self.desynced = True
        assert self.peer is not None
        # (its SETTINGS_HEADER_TABLE_SIZE, which bounds the peer's encoder, is
        # unknown: any size update up to the 32-bit maximum may be allowed)
        self.peer.decoder.max_allowed_table_size = 2**32 - 1

    def setting(self, code: SettingCode) -> int:
        return self.advertised[code]

    def pending_window_increase(self) -> int:
        """How much more this endpoint lets its peer send on each stream once its
        pending SETTINGS take effect (the largest INITIAL_WINDOW_SIZE among them over
        the one in force; 0 if none is larger). The peer may use it as soon as it
        processes the SETTINGS, before its ACK crosses the observer."""
        now = self.advertised[SettingCode.INITIAL_WINDOW_SIZE]
        most = self._pending_max[1]
        return max(0, most[0][1] - now) if most else 0

    def pending_window_delta(self) -> int:
        """How far every stream window of the peer's data moves once the peer has
        processed this endpoint's pending SETTINGS (RFC 9113 §6.9.2): what a frame
        this endpoint sends now finds applied when the peer reads it (§6.5.3:
        frames are processed in order), the ACK not seen yet; 0 if none changes it."""
        last = self.last_window
        return last[1] - self.advertised[SettingCode.INITIAL_WINDOW_SIZE] if last else 0

    def add_pending(self, pending: PendingSettings) -> None:
        """SETTINGS this endpoint sent: pending until the peer's ACK. A value out of
        range (RFC 9113 §6.5.2) never takes effect: it is not counted as one."""
        self.pending.append(pending)
        for i, code in enumerate(_TRACKED):
            low, high = _VALID[i]
            value = next((v for k, v in reversed(pending.settings) if k == code), None)
            if value is not None and not low <= value <= high:
                value = None
            if value is not None:
                if i == 1:
                    self.last_window = (pending.seq, value)
                most = self._pending_max[i]
                while most and most[-1][1] <= value:
                    most.pop()
                most.append((pending.seq, value))
        self.refresh_frame_size()

    def ack_pending(self) -> PendingSettings:
        """The oldest pending SETTINGS, acknowledged (the caller applies them)."""
        acked = self.pending.popleft()
        if self.pending_reported:
            self.pending_reported -= 1
        for most in self._pending_max:
            if most and most[0][0] == acked.seq:
                most.popleft()
        if self.last_window is not None and self.last_window[0] == acked.seq:
            self.last_window = None  # (the last one that set it: none is pending now)
        return acked

    def refresh_frame_size(self) -> None:
        size = self.advertised[SettingCode.MAX_FRAME_SIZE]
        most = self._pending_max[0]
        self.accepts_frame_size = max(size, most[0][1]) if most else size
