"""The connection model: one HTTP/2 connection observed from the middle.

:class:`ConnectionObserver` is fed the bytes of either direction (with a time)
and returns events. Both directions share one model, because HTTP/2 state is
end-to-end: a SETTINGS frame sent by the client changes what the server may
send once the server acknowledges it; a WINDOW_UPDATE sent by one side widens
the window of the other side's DATA; each side's HPACK encoder is mirrored by
a decoder whose limit the *other* side's settings set.

The observer never raises on traffic (architecture principle 4). Anything
malformed becomes a :class:`~proxy.observe.findings.Finding`; if a direction's
bytes can no longer be split into frames it is marked desynced and the rest of
its bytes are only counted.

Header blocks (HEADERS, PUSH_PROMISE, CONTINUATION) are handled in
:mod:`proxy.observe.header_blocks`, SETTINGS, PING and priority signals in
:mod:`proxy.observe.control`, and DATA, WINDOW_UPDATE and RST_STREAM in
:mod:`proxy.observe.flow`: base classes of :class:`ConnectionObserver`, kept
apart so that each module stays small. ``docs/performance.md`` explains the
shape of the hot paths here.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping

from proxy.observe.closing import stalled_at_close, unfinished
from proxy.observe.control import ControlFrames
from proxy.observe.enums import (
    CONNECTION_PREFACE,
    IMPLAUSIBLE_FRAME,
    Direction,
    FrameType,
    SettingCode,
    error_name,
    not_a_preface,
    type_name,
)
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FrameObserved,
    PrefaceObserved,
    StreamStateChanged,
)
from proxy.observe.findings import Finding, Severity
from proxy.observe.findings import finding as _f
from proxy.observe.flow import RAPID_RESET_COUNT, StreamFrames
from proxy.observe.frames import (
    FRAME_HEADER,
    STREAM_MASK,
    AltSvcFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    OriginFrame,
    PingFrame,
    PriorityFrame,
    PriorityUpdateFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
    frame_padding,
    new_data_frame,
    parse_known_header,
    payload_reserved_bit,
)
from proxy.observe.header_blocks import HeaderBlocks, fields_before_cut
from proxy.observe.hpack_annotated import HeaderBlock
from proxy.observe.priority import PriorityTree
from proxy.observe.records import positional
from proxy.observe.sides import Side
from proxy.observe.streams import (
    Stream,
    StreamState,
)

C2S, S2C = Direction.C2S, Direction.S2C
CLOSED_HISTORY = 512
"""Closed streams kept for display and late-frame checks; older ones are
known closed by their id alone, so memory stays bounded on long connections."""
_IDLE, _OPEN = StreamState.IDLE, StreamState.OPEN
_HALF_CLOSED_CLIENT = StreamState.HALF_CLOSED_CLIENT
_HALF_CLOSED_SERVER = StreamState.HALF_CLOSED_SERVER
_CLOSED = StreamState.CLOSED
# OPEN and both half-closed states count towards SETTINGS_MAX_CONCURRENT_STREAMS
# (RFC 9113 §5.1.2); :meth:`ConnectionObserver._set_state` tests them by identity.
_PEER = (S2C, C2S)
"""The opposite direction, by index (``Direction.peer`` is a property call)."""
_INITIAL_WINDOW_SIZE = int(SettingCode.INITIAL_WINDOW_SIZE)
_MAX_CONCURRENT_STREAMS = int(SettingCode.MAX_CONCURRENT_STREAMS)
_frame_observed = positional(FrameObserved)
_stream_state_changed = positional(StreamStateChanged)
_DATA, _HEADERS, _PRIORITY, _RST = 0, 1, 2, 3
_SETTINGS, _PUSH, _PING, _GOAWAY, _WU, _CONT = 4, 5, 6, 7, 8, 9
_STREAM_ZERO_ONLY = frozenset({_SETTINGS, _PING, _GOAWAY, int(FrameType.PRIORITY_UPDATE)})
_IGNORABLE = frozenset({int(FrameType.ALTSVC), int(FrameType.ORIGIN)})
"""Extension frames a receiver ignores when they are wrong (RFC 7838 §4, RFC 8336 §2.1)."""
_NEEDS_STREAM = frozenset({_DATA, _HEADERS, _PRIORITY, _RST, _PUSH, _CONT})
_NO_STREAM_ZERO_MODEL = frozenset({_DATA, _PRIORITY, _RST})
_KNOWN_TYPES = frozenset(int(t) for t in FrameType)
_PADDABLE = frozenset({_DATA, _HEADERS, _PUSH})
"""The types whose 0x8 flag is PADDED (RFC 9113 §6.1, §6.2, §6.6)."""


_RESERVED_IN_PAYLOAD = frozenset({_PUSH, _GOAWAY, _WU})


def _check_payload_reserved_bit(frame: Frame, seq: int, sid: int,
                                findings: list[Finding]) -> None:
    """The reserved bit before a 31-bit field in the payload: set, a receiver must
    ignore it (RFC 9113 §6.6, §6.8, §6.9) — and a debugger says it was there."""
    field = payload_reserved_bit(frame)
    if field is not None:
        section, _, name = field.partition(" ")
        findings.append(_f("reserved-bit-set", Severity.WARNING, f"RFC 9113 {section}",
                           f"the reserved bit before the {name} is set (ignored: the value "
                           "is read without it)", seq, sid))


def _check_padding(frame: Frame, seq: int, sid: int, findings: list[Finding]) -> None:
    """RFC 9113 §6.1: padding octets MUST be zero when sent (a receiver may treat
    other values as a PROTOCOL_ERROR)."""
    padding = frame_padding(frame)
    if padding and padding.count(0) != len(padding):
        first = next(i for i, b in enumerate(padding) if b)
        findings.append(_f("padding-not-zero", Severity.WARNING, "RFC 9113 §6.1",
                           f"{len(padding) - padding.count(0)} of the {len(padding)} padding "
                           f"bytes of this {type_name(frame.type)} are not zero (first at "
                           f"padding byte {first}: 0x{padding[first]:02x})", seq, sid))


def _text_instead_of_frames(head: bytes, sender: str) -> str | None:
    """The desync reason when the ``sender``'s first bytes are text (an HTTP/1.x
    server answering h2c prior knowledge with a 400 page, a banner): what they say
    and what it means; None for bytes that are not text."""
    if len(head) < 9 or any((b < 0x20 and b not in (9, 10, 13)) or b > 0x7E for b in head):
        return None
    shown = head.split(b"\n", 1)[0].strip().decode("ascii")[:48]
    http1 = head.startswith(b"HTTP/1.") or head.lstrip().lower().startswith(
        (b"<!doctype", b"<html"))
    return (f"the {sender} sent text where HTTP/2 frames were due ({shown!r}…)"
            + (": it speaks HTTP/1.x, not HTTP/2 with prior knowledge (h2c); point h2scope "
               "at a server that speaks HTTP/2, or let the client use HTTP/1.1" if http1 else
               ": not HTTP/2"))


SETTINGS_ACK_GRACE = 1.0
"""Seconds a peer is given to acknowledge SETTINGS before a connection's end makes it
'never acknowledged' (unless it provably read them: it answered a later frame).
RFC 9113 §6.5.3 asks for the ACK "immediately" but sets no time; a client that
gives up a millisecond after its preface (curl on a header too large for it) left
the server no time to."""


class ConnectionObserver(HeaderBlocks, ControlFrames, StreamFrames):
    """Sans-IO model of one HTTP/2 connection, fed by both directions.

    ``preface`` says what the client→server bytes start with: ``"required"``
    (a real connection), ``"optional"`` (decoding a paste that may or may not
    include it) or ``"none"`` (starts with frames, e.g. after the caller
    consumed the preface itself). ``partial`` marks an excerpt (a paste from
    a log): rules about how a connection starts and ends are not applied.
    ``unseen`` names a direction whose bytes will never be fed (``h2scope
    decode`` reads one side): no rule that needs its frames is applied — the
    ACKs and PING answers it awaits, the streams it opened, the DATA it sent.
    The settings and windows it grants bind the seen side only from the seen
    side's first SETTINGS ACK on (RFC 9113 §6.5.3); until then the RFC defaults
    bind it and are judged (frame size, flow-control windows, the HPACK table).
    """

    def __init__(self, *, preface: str = "required", max_table_size: int | None = None,
                 partial: bool = False, unseen: Direction | None = None) -> None:
        self.partial = partial
        self.sides = (Side(C2S), Side(S2C))
        self.sides[C2S].peer = self.sides[S2C]
        self.sides[S2C].peer = self.sides[C2S]
        self.sides[C2S].preface = "done" if preface == "none" else preface
        self.sides[S2C].preface = "done"
        if max_table_size is not None:
            for side in self.sides:
                side.decoder.max_allowed_table_size = max_table_size
        if unseen is not None:
            # Its ACKs, PINGs and streams are unknown from the start; its settings and
            # windows bind the seen side only once that side acknowledged its SETTINGS
            # (``Side.settings_unknown``): before, the RFC defaults do.
            self.sides[unseen].unseen = True
        self.streams: dict[int, Stream] = {}
        self.closed: OrderedDict[int, Stream] = OrderedDict()
        self.priority = PriorityTree()
        self.seq = 0
        self.findings_count = 0
        self.payload_cut = False
        """The bytes being fed are a DATA frame the capture cut (see :meth:`feed`)."""
        self.upgraded_h2c = False
        """An HTTP/1.1 ``Upgrade: h2c`` made this connection HTTP/2 (:meth:`upgrade_h2c`)."""
        self._events: list[Event] = []
        self._cancels: deque[float] = deque(maxlen=RAPID_RESET_COUNT)
        """When the client's last streams were reset by it before a response."""
        self._rapid_reset_reported = False

    # ---------------------------------------------------------------- input

    def feed(self, direction: Direction, data: bytes | bytearray | memoryview,
             t: float, cut: bool = False) -> list[Event]:
        """Observe ``data`` sent in ``direction`` at time ``t``; return the new events.

        Bytes may be split anywhere; incomplete frames wait for more data. ``cut``:
        ``data`` is a recorded DATA frame whose payload the capture kept only the
        start of (``max_data_bytes``; the rest is zeros): its content is not read
        (a WebSocket's frames, :mod:`proxy.observe.websockets`).
        """
        # (Not keyword-only: a keyword-only default costs every call a dict lookup.)
        if cut:  # (rare: not an attribute store per call)
            self.payload_cut = True
            try:
                return self.feed(direction, data, t)
            finally:
                self.payload_cut = False
        side = self.sides[direction]
        events = self._events = []
        if side.desynced:
            side.skipped_bytes += len(data)
            side.offset += len(data)
            return events
        # Frames are cut straight from ``data``; only an incomplete frame at the
        # end waits in the buffer. A call carrying exactly one frame (a capture
        # record, a relay read of one frame) copies nothing: the frame's raw
        # bytes are ``data`` itself.
        buf = side.buffer
        if buf:
            data = b"".join((buf, data))  # one copy (``buf += data; bytes(buf)`` is two)
            buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        pos = 0
        if side.preface != "done":
            pos = self._preface(side, data, t)
            if pos < 0:
                return events
        n = len(data)
        receiver = self.sides[1 - direction]
        unpack = FRAME_HEADER.unpack_from
        sender = side.direction
        streams = self.streams
        # The half-closed state in which the sender may still send DATA (§5.1).
        open_half = _HALF_CLOSED_CLIENT if sender is S2C else _HALF_CLOSED_SERVER
        while n - pos >= 9:
            hi, lo, ftype, flags, sid_word = unpack(data, pos)
            length = hi << 8 | lo
            if length > 16_384 and length > receiver.accepts_frame_size and (
                    ftype not in _KNOWN_TYPES or side.frames == 0) and (
                    length > IMPLAUSIBLE_FRAME or (ftype not in _KNOWN_TYPES
                                                   and side.frames == 0)):
                # An unknown type or a first frame that claims megabytes more than
                # the receiver accepts (or a first frame of an unknown type that
                # claims more) is not HTTP/2 framing: stop decoding.
                text = _text_instead_of_frames(data[pos:pos + 64], sender.sender) \
                    if not side.frames else None
                self._desync(side, n - pos, t, text if text is not None else
                             f"a {type_name(ftype)} frame header claims "
                             f"{length} bytes, more than the receiver's SETTINGS_MAX_FRAME_SIZE "
                             f"{receiver.accepts_frame_size}: these bytes are not HTTP/2 frames")
                return events
            end = pos + 9 + length
            if end > n:
                if length > receiver.accepts_frame_size and not receiver.desynced \
                        and side.oversize_end != side.offset + 9 + length:
                    # Said at the header: a receiver fails the connection there
                    # (FRAME_SIZE_ERROR) and the payload may never come.
                    side.oversize_end = side.offset + 9 + length
                    self._conn_finding(sender, t, _f(
                        "frame-too-large", Severity.ERROR, "RFC 9113 §4.2",
                        f"a {type_name(ftype)} frame header (stream "
                        f"{sid_word & STREAM_MASK}) claims {length} bytes, more than the "
                        f"receiver's SETTINGS_MAX_FRAME_SIZE {receiver.accepts_frame_size}",
                        self.seq, sid_word & STREAM_MASK))
                break
            raw = data if end == n and pos == 0 else data[pos:end]
            side.offset += end - pos
            pos = end
            if (ftype == 0 and not flags & 0x8 and 0 < sid_word <= STREAM_MASK
                    and 0 < length <= 16_384 and side.block is None and side.frames):
                # The bulk of a transfer: an unpadded DATA frame that none of
                # _frame's generic checks can apply to (see its fast path),
                # without the parser's dispatch and _frame's prelude.
                frame = new_data_frame(0, flags, sid_word, length, raw, False, None, None, length)
                seq = self.seq
                self.seq = seq + 1
                side.frames += 1
                stream = streams.get(sid_word)
                if stream is not None and not flags & 1:
                    # _data's outcome when nothing can happen but the windows
                    # shrinking (both stay open, the state allows the sender's
                    # DATA and does not change): no findings, no other events.
                    state = stream.state
                    if state is _OPEN or state is open_half:
                        conn_window = side.conn_window - length
                        send_window = stream.send_window
                        window = send_window[sender] - length
                        received = stream.data_bytes
                        total = received[sender] + length
                        declared = stream.content_length[sender]
                        # (A WebSocket's DATA is read by _data. Tested last: a stream
                        # that is not one pays one attribute test per DATA frame, here
                        # or in _data, never both.)
                        if conn_window > 0 and window > 0 and (
                                declared == -1 or total <= declared) and stream.websocket is None:
                            side.conn_window = conn_window
                            send_window[sender] = window
                            received[sender] = total
                            events.append(_frame_observed(t, sender, seq, frame, None, None, (),
                                                          (conn_window, window)))
                            continue
                findings: list[Finding] = []
                windows = self._data(side, frame, seq, t, findings)
                if findings:
                    self.findings_count += len(findings)
                    events.append(_frame_observed(t, sender, seq, frame, None, None,
                                                  tuple(findings), windows))
                else:
                    events.append(_frame_observed(t, sender, seq, frame, None, None, (),
                                                 windows))
                continue
            self._frame(side, parse_known_header(raw, ftype, flags, sid_word, length), t)
        if pos < n:
            buf += data[pos:] if pos else data
        return events

    def close(self, t: float, closed_by: str | None = None,
              ends: Mapping[Direction, int] | None = None) -> list[Event]:
        """The connection ended: report what was left unfinished. ``closed_by``
        (``client``, ``server``, ``proxy``), when known, tells an endpoint that
        stopped mid-frame from one whose frame was cut by the other's leaving.
        ``ends``, when the relay saw a side end its bytes (EOF) before the other:
        per direction that ended, how many of the other direction's bytes had been
        read then (streams the other side reset after that were left by the one
        that went, see :func:`unfinished`)."""
        events = self._events = []
        client = self.sides[C2S]
        if self.upgraded_h2c and client.preface != "done" and not client.desynced \
                and not self.partial:
            self._conn_finding(C2S, t, _f(
                "preface-missing", Severity.WARNING, "RFC 7540 §3.2, RFC 9113 §3.4",
                "the client sent no connection preface after the 101 Switching Protocols "
                "of its Upgrade: h2c: a client must send one (the PRI line and its "
                "SETTINGS) at once, and the connection ended without it; what the server "
                "sent on stream 1 went unread", stream_id=1))
        for side in self.sides:
            # A peer that closed with an error GOAWAY (it may be rejecting these very
            # SETTINGS) owes no ACK.
            # Nor one whose bytes stopped being frames (desynced): its ACK may be in
            # there, unread.
            # Nor one that sent no frame at all: it never became an HTTP/2 endpoint
            # (a browser's spare, preconnected tunnel that was never used).
            peer = self.sides[1 - side.direction]
            rejected = self.partial or peer.goaway_error != 0 or peer.desynced \
                or peer.unseen or not peer.frames
            owed = [] if rejected else [
                p for p in side.pending
                if not (t - p.t < SETTINGS_ACK_GRACE and peer.read_up_to <= p.seq)]
            # (those the connection ended moments after had no time to be acknowledged)
            if owed:
                first = owed[0].seq
                if len(owed) == 1:
                    said = f"the SETTINGS sent by the {side.direction.sender} (frame #{first})"
                else:  # one finding, not one per frame: a flood may leave thousands
                    said = (f"{len(owed):,} SETTINGS frames sent by the "
                            f"{side.direction.sender} (the first frame #{first})")
                self._conn_finding(peer.direction, t, _f(  # (the side that owes the ACK)
                    "settings-not-acknowledged", Severity.WARNING, "RFC 9113 §6.5.3",
                    f"the {side.direction.peer.sender} never acknowledged {said}", first))
            if side.block is not None:
                self._conn_finding(side.direction, t, _f(
                    "header-block-truncated", Severity.ERROR, "RFC 9113 §6.10",
                    f"the connection ended inside a header block on stream "
                    f"{side.block.stream_id} (no END_HEADERS){fields_before_cut(side)}",
                    side.block.first_seq,
                    side.block.stream_id))
            if not self.partial and not side.desynced and not side.unseen:
                # (desynced or unseen: its frames are unknown)
                ended_at = ends.get(side.direction) if ends else None
                streams: Iterable[Stream] = self.streams.values()
                if ended_at is not None:  # (and those reset since, closed meanwhile)
                    streams = [*streams, *(c for c in self.closed.values()
                                           if c.reset_offset > ended_at)]
                for finding in unfinished(streams, side.direction, closed_by, self.seq,
                                          self.sides[S2C].goaway_last_stream_id, ended_at,
                                          silent=side.direction is S2C and not side.offset
                                          and not side.buffer, goaway_error=side.goaway_error):
                    self._conn_finding(side.direction, t, finding)
                owing = self.sides[1 - side.direction]
                # (a peer that sent no frame at all never became an HTTP/2 endpoint: it
                # owed no window — a client that left after the 101 of an h2c upgrade
                # without its preface, said below)
                stall = stalled_at_close(self.streams.values(), side.direction,
                                         side.conn_stalled_since, side.conn_stall_seq,
                                         t) if owing.frames else None
                if stall is not None:  # (the peer's: it owed the window)
                    self._conn_finding(side.direction.peer, t, stall)
            if side.buffer and not side.desynced:
                sender = side.direction.sender
                cut = closed_by is not None and closed_by != sender
                why = " (where the excerpt stops)" if self.partial else \
                    f" (the {closed_by} ended it while the {sender} was sending)" if cut else ""
                what = f"{len(side.buffer)} bytes of an incomplete frame"
                sid: int | None = None
                if len(side.buffer) >= 9:  # (its header came whole: say what it was)
                    hi, lo, ftype, _, sid_word = FRAME_HEADER.unpack_from(side.buffer)
                    sid = sid_word & STREAM_MASK
                    what = (f"a {type_name(ftype)} frame (stream {sid}) announcing "
                            f"{hi << 8 | lo} bytes, of which {len(side.buffer) - 9} came,")
                self._conn_finding(side.direction, t, _f(
                    "frame-truncated", Severity.INFO if cut or self.partial else Severity.WARNING,
                    "RFC 9113 §4.1",
                    f"{what} from the {sender} at the end of the connection{why}",
                    stream_id=sid))
        return events

    def upgrade_h2c(self, *, http2_settings: bytes, request_headers: tuple[tuple[str, str], ...],
                    t: float) -> list[Event]:
        """An HTTP/1.1 ``Upgrade: h2c`` succeeded (RFC 7540 §3.2).

        ``http2_settings`` is the decoded HTTP2-Settings payload; the 101
        acknowledges it implicitly (RFC 7540 §3.2.1). Stream 1 carries the
        HTTP/1.1 request and is half-closed by the client.
        """
        events = self._events = []
        self.upgraded_h2c = True
        client = self.sides[C2S]
        if len(http2_settings) % 6:
            # RFC 7540 §3.2.1: the payload is a SETTINGS frame's; §6.5: a length that
            # is not a multiple of 6 is a FRAME_SIZE_ERROR.
            self._conn_finding(C2S, t, _f(
                "h2c-settings-invalid", Severity.ERROR, "RFC 7540 §3.2.1, RFC 9113 §6.5",
                f"the HTTP2-Settings header decodes to {len(http2_settings)} bytes, not a "
                f"multiple of 6 (a SETTINGS payload): the last {len(http2_settings) % 6} "
                "are not a setting", self.seq, 0))
        settings = tuple(
            (int.from_bytes(http2_settings[i:i + 2], "big"),
             int.from_bytes(http2_settings[i + 2:i + 6], "big"))
            for i in range(0, len(http2_settings) - len(http2_settings) % 6, 6))
        self._apply_settings(client, settings, t)
        client.refresh_frame_size()
        stream = Stream(1, request_headers=request_headers)
        self._init_windows(stream)
        # Opened and half-closed by the client's request at once: the state change is
        # an event (summaries count the stream) and the stream counts as active.
        self._set_state(stream, _HALF_CLOSED_CLIENT, C2S, self.seq, t)
        client.highest_stream_id = 1
        self.priority.ensure(1)
        return events

    # ------------------------------------------------------------- framing

    def _preface(self, side: Side, data: bytes, t: float) -> int:
        """Where frames start in ``data`` (the first bytes of the client's
        direction), or -1 when there is nothing more to decode for now."""
        have = data[:24]
        if CONNECTION_PREFACE.startswith(have):
            if len(have) < 24:
                side.buffer += data
                return -1
            side.preface = "done"
            side.offset += 24
            self._events.append(PrefaceObserved(t=t, direction=side.direction))
            return 24
        if side.preface == "optional":
            side.preface = "done"
            return 0
        self._desync(side, len(data), t, not_a_preface(have), rfc="RFC 9113 §3.4")
        return -1

    def _desync(self, side: Side, remaining: int, t: float, why: str,
                rfc: str = "RFC 9113 §4.1") -> None:
        """Framing is lost; ``remaining`` bytes of this call were not decoded."""
        side.desynced = True
        lost_at = side.offset
        side.skipped_bytes += remaining
        side.offset += remaining
        side.buffer.clear()
        finding = _f("desynced", Severity.ERROR, rfc, why)
        self.findings_count += 1
        self._events.append(Desynced(t=t, direction=side.direction, offset=lost_at,
                                     finding=finding))

    # --------------------------------------------------------------- frames

    def _frame(self, side: Side, frame: Frame, t: float) -> None:
        seq = self.seq
        self.seq = seq + 1
        direction = side.direction
        findings: list[Finding] = []
        ftype = frame.type
        sid = frame.stream_id
        first = side.frames == 0
        side.frames += 1
        block: HeaderBlock | None = None
        block_sid: int | None = None
        windows: tuple[int, int | None] | None = None

        if (not first and frame.length <= 16_384 and frame.malformed is None
                and side.block is None and not frame.reserved):
            # The frames that make up most of the traffic, when none of the
            # generic checks below can apply (the frame size is within the
            # protocol minimum every receiver accepts).
            handled = True
            if ftype == _DATA and sid:
                assert isinstance(frame, DataFrame)
                if frame.flags & 0x8:
                    _check_padding(frame, seq, sid, findings)
                windows = self._data(side, frame, seq, t, findings)
            elif ftype == _HEADERS and sid:
                assert isinstance(frame, HeadersFrame)
                if frame.flags & 0x8:
                    _check_padding(frame, seq, sid, findings)
                done = self._headers(side, frame, seq, t, findings)
                if done is not None:
                    block, block_sid = done
            elif ftype == _WU:
                assert isinstance(frame, WindowUpdateFrame)
                if frame.raw[9] & 0x80:
                    _check_payload_reserved_bit(frame, seq, sid, findings)
                windows = self._window_update(side, frame, seq, t, findings)
            else:
                handled = False
            if handled:
                self._events.append(_frame_observed(t, direction, seq, frame, block, block_sid,
                                                    tuple(findings), windows))
                if findings:
                    self.findings_count += len(findings)
                return

        if frame.malformed is not None:
            rfc = _rfc_for(ftype)
            said = frame.malformed  # (the parser's text cites its section: once is enough)
            findings.append(_f("frame-malformed", Severity.ERROR, rfc,
                               said.removesuffix(f" ({rfc})"), seq, sid))
        if frame.reserved:
            findings.append(_f("reserved-bit-set", Severity.WARNING, "RFC 9113 §4.1",
                               "the reserved bit of the stream identifier is set", seq, sid))
        if first and not self.partial and not (ftype == _SETTINGS and not frame.flags & 1):
            findings.append(_f("first-frame-not-settings", Severity.ERROR, "RFC 9113 §3.4",
                               f"the {direction.sender}'s first frame is "
                               f"{'a SETTINGS ACK' if ftype == _SETTINGS else type_name(ftype)}"
                               ", not its own SETTINGS", seq, sid))
        receiver = self.sides[1 - direction]
        if first and receiver.unseen and self.partial and not receiver.desynced \
                and not (ftype == _SETTINGS and not frame.flags & 1):
            # An excerpt that does not open with the sender's SETTINGS (its first frame,
            # RFC 9113 §3.4) may start after it acknowledged the peer's: unknown settings.
            receiver.settings_unknown()
        max_size = receiver.accepts_frame_size
        if frame.length > max_size and side.oversize_end != side.offset \
                and not receiver.desynced:  # (its SETTINGS may have raised the limit)
            findings.append(_f("frame-too-large", Severity.ERROR, "RFC 9113 §4.2",
                               f"{type_name(ftype)} of {frame.length} bytes exceeds the "
                               f"receiver's SETTINGS_MAX_FRAME_SIZE {max_size}", seq, sid))
        if ftype in _STREAM_ZERO_ONLY and sid != 0:
            findings.append(_f("stream-id-not-zero", Severity.ERROR, _rfc_for(ftype),
                               f"{type_name(ftype)} must be sent on stream 0, not {sid}", seq, sid))
        elif ftype in _NEEDS_STREAM and sid == 0:
            findings.append(_f("stream-id-zero", Severity.ERROR, _rfc_for(ftype),
                               f"{type_name(ftype)} must not be sent on stream 0", seq, 0))
        elif ftype in _IGNORABLE and frame.malformed is None:
            _check_ignored_extension(frame, direction, seq, findings)

        if frame.flags & 0x8 and ftype in _PADDABLE and frame.malformed is None:
            _check_padding(frame, seq, sid, findings)
        if ftype in _RESERVED_IN_PAYLOAD and frame.malformed is None:
            _check_payload_reserved_bit(frame, seq, sid, findings)

        if side.block is not None and ftype != _CONT:
            findings.append(_f("continuation-missing", Severity.ERROR, "RFC 9113 §6.10",
                               f"{type_name(ftype)} arrived while the header block on stream "
                               f"{side.block.stream_id} still expected CONTINUATION; the "
                               f"block is not decoded, and with it go the changes it made to "
                               f"the {side.direction.sender}'s HPACK table, so its later "
                               f"blocks cannot be decoded (RFC 9113 §4.3)"
                               f"{fields_before_cut(side)}", seq, sid))
            side.block_cut = (side.block.stream_id, side.block.first_seq, seq, type_name(ftype))
            side.block = None  # the peer would have failed the connection; start afresh
            side.hpack_broken = True  # (decoding on would show fields the encoder never sent)

        if sid == 0 and ftype in _NO_STREAM_ZERO_MODEL:
            # A connection error (§5.4.1), not stream 0's DATA or reset: no stream,
            # window or state of the model is touched (header blocks on stream 0 still
            # decode: the peer's HPACK decoder would have read them).
            pass
        elif frame.malformed is None:
            if ftype == _DATA:
                assert isinstance(frame, DataFrame)
                windows = self._data(side, frame, seq, t, findings)
            elif ftype in (_HEADERS, _PUSH, _CONT):
                done = self._header_fragment(side, frame, seq, t, findings)
                if done is not None:
                    block, block_sid = done
            elif ftype == _WU:
                assert isinstance(frame, WindowUpdateFrame)
                windows = self._window_update(side, frame, seq, t, findings)
            elif ftype == _SETTINGS:
                assert isinstance(frame, SettingsFrame)
                self._settings(side, frame, seq, t, findings)
            elif ftype == _RST:
                assert isinstance(frame, RstStreamFrame)
                self._rst(side, frame, seq, t, findings)
            elif ftype == _PRIORITY:
                assert isinstance(frame, PriorityFrame)
                self._priority_frame(frame, seq, findings)
            elif ftype == _PING:
                assert isinstance(frame, PingFrame)
                self._ping(side, frame, seq, t, findings)
            elif ftype == _GOAWAY:
                assert isinstance(frame, GoAwayFrame)
                before = side.goaway_last_stream_id
                if before is not None and frame.last_stream_id > before:
                    findings.append(_f("goaway-last-stream-id-increased", Severity.ERROR,
                                       "RFC 9113 §6.8",
                                       f"a GOAWAY raises the last stream id from {before} to "
                                       f"{frame.last_stream_id}; it may only stay or decrease",
                                       seq, 0))
                # (an illegal raise does not count: the limit stays the lowest sent)
                side.goaway_last_stream_id = frame.last_stream_id if before is None \
                    else min(before, frame.last_stream_id)
                if side.goaway_seq < 0:
                    side.goaway_seq = seq
                side.goaway_error = frame.error_code
            elif ftype == int(FrameType.PRIORITY_UPDATE):
                assert isinstance(frame, PriorityUpdateFrame)
                self._priority_update(side, frame, seq, findings)
            elif ftype not in FrameType._value2member_map_ and not (
                    side.block_cut is not None and side.block_cut[2] == seq):
                # (one that cut a header block is continuation-missing, an error: not
                # ignored)
                findings.append(_f("unknown-frame-type", Severity.INFO, "RFC 9113 §5.5",
                                   f"frame type 0x{ftype:02x} is not one h2scope knows; "
                                   "receivers ignore it", seq, sid))
        elif ftype in (_CONT, _HEADERS, _PUSH):
            side.block = None

        self._events.append(_frame_observed(t, direction, seq, frame, block, block_sid,
                                            tuple(findings), windows))
        if findings:
            self.findings_count += len(findings)

    # ------------------------------------------------------------- streams

    def stream(self, sid: int) -> Stream | None:
        """The model of stream ``sid`` if it is open or recently closed."""
        return self.streams.get(sid) or self.closed.get(sid)

    def _lookup(self, sid: int, sender: Direction | None = None, *,
                not_opening: bool = False, data: bool = False) -> Stream:
        stream = self.streams.get(sid)
        if stream is not None:
            return stream
        stream = self.closed.get(sid)
        if stream is not None:
            return stream
        opener = self.sides[C2S if sid % 2 else S2C]
        lost = opener.lost_above
        if sender is not None and (self.partial or opener.desynced or opener.unseen) \
                and (sender is not opener.direction or (self.partial and not_opening)) \
                and (sid > opener.highest_stream_id or (lost is not None and sid > lost)) \
                and not (sender is C2S and not sid % 2 and (data or not not_opening)):
            # An excerpt, or an opener whose bytes stopped being frames or are not in the
            # input: the frames that opened this stream were not seen (in an excerpt,
            # nor were they for the opener's own DATA, WINDOW_UPDATE or RST_STREAM:
            # ``not_opening``). Not for a client's HEADERS or DATA on a server's stream:
            # a client never sends those there, whatever the server sent (RFC 9113 §5.1:
            # reserved (remote) and half-closed (local) allow it only WINDOW_UPDATE,
            # PRIORITY and RST_STREAM), so the stream is idle to it.
            stream = Stream(sid, state=_OPEN, opened_by=opener.direction,
                            content_length=[-1, -1])  # its response may be outside too
            self._init_windows(stream)
            self.streams[sid] = stream
            opener.highest_stream_id = max(sid, opener.highest_stream_id)
            opener.active_streams += 1
            return stream
        if sid <= opener.highest_stream_id:
            # Closed long ago and forgotten: ids are never reused (§5.1.1).
            return Stream(sid, state=_CLOSED, presumed_closed=True)
        return Stream(sid)

    def _set_state(self, stream: Stream, new: StreamState, direction: Direction, seq: int,
                   t: float) -> None:
        old = stream.state
        if old is new:
            return
        stream.state = new
        sid = stream.stream_id
        # ``_value_``, not ``.value``: the enum property costs a Python call.
        self._events.append(_stream_state_changed(t, direction, sid, old._value_, new._value_,
                                                  seq))
        if old is _IDLE:
            self.streams[sid] = stream
        # Identity tests: hashing an Enum member is a Python-level call.
        was = old is _OPEN or old is _HALF_CLOSED_CLIENT or old is _HALF_CLOSED_SERVER
        now = new is _OPEN or new is _HALF_CLOSED_CLIENT or new is _HALF_CLOSED_SERVER
        if was is not now:
            self.sides[stream.opened_by].active_streams += 1 if now else -1
        if new is _CLOSED:
            stream.websocket = None  # (its readers' buffers go with it)
            self.streams.pop(sid, None)
            self.priority.remove(sid)
            closed = self.closed
            closed[sid] = stream
            if len(closed) > CLOSED_HISTORY:
                closed.popitem(last=False)

    def _init_windows(self, stream: Stream) -> None:
        # Data flowing C2S is limited by the server's INITIAL_WINDOW_SIZE, and vice versa.
        sides = self.sides
        stream.send_window = [sides[S2C].advertised[_INITIAL_WINDOW_SIZE],
                              sides[C2S].advertised[_INITIAL_WINDOW_SIZE]]

    def _check_concurrency(self, side: Side, sid: int, seq: int, findings: list[Finding],
                           pushed: bool = False) -> None:
        """RFC 9113 §5.1.2: stream ``sid`` of ``side``'s becoming active must stay within
        the peer's SETTINGS_MAX_CONCURRENT_STREAMS (a pushed response counts when it
        leaves 'reserved', §8.4)."""
        limit = self.sides[1 - side.direction].advertised[_MAX_CONCURRENT_STREAMS]
        active = side.active_streams
        if active >= limit:
            what = "pushed stream" if pushed else "stream"
            findings.append(_f("max-concurrent-streams-exceeded", Severity.ERROR,
                               "RFC 9113 §5.1.2, §8.4" if pushed else "RFC 9113 §5.1.2",
                               f"{what} {sid} would be concurrent {what} {active + 1} but the "
                               f"{side.direction.peer.sender} allows {limit}", seq, sid))

    def _open_stream(self, side: Side, stream: Stream, seq: int, findings: list[Finding]) -> None:
        """Checks for a stream a HEADERS frame is about to open (RFC 9113 §5.1.1, §5.1.2)."""
        sid = stream.stream_id
        direction = side.direction
        said = len(findings)
        if direction is S2C:
            findings.append(_f("server-opened-stream", Severity.ERROR, "RFC 9113 §5.1, §5.1.1",
                               f"the server sent HEADERS on idle stream {sid}; a server's "
                               "HEADERS may only start a stream it reserved earlier with "
                               "PUSH_PROMISE", seq, sid))
        elif sid % 2 == 0:
            findings.append(_f("stream-id-parity", Severity.ERROR, "RFC 9113 §5.1.1",
                               f"the client opened even-numbered stream {sid}", seq, sid))
        if sid <= side.highest_stream_id:
            findings.append(_f("stream-id-order", Severity.ERROR, "RFC 9113 §5.1.1",
                               f"stream {sid} opened after stream {side.highest_stream_id}; "
                               "new stream ids must increase", seq, sid))
        elif direction is C2S:  # (a server's HEADERS opened nothing: see _headers)
            side.highest_stream_id = sid
        peer = self.sides[1 - direction]
        if len(findings) > said:  # (opened against the rules above: one finding for the
            stream.refused = True  # cause, no limit or answer is owed for it)
        else:
            self._check_concurrency(side, sid, seq, findings)
        goaway = peer.goaway_last_stream_id
        if goaway is not None and side.read_up_to > peer.goaway_seq:
            # It answered a frame sent after the GOAWAY, so it had read the GOAWAY
            # (frames are read in order): whatever the id, no new stream (§6.8).
            findings.append(_f("stream-after-goaway", Severity.WARNING, "RFC 9113 §6.8",
                               f"stream {sid} opened after the {direction.sender} had read the "
                               f"{direction.peer.sender}'s GOAWAY (frame #{peer.goaway_seq}; "
                               f"it answered frame #{side.read_up_to}, sent after it): the "
                               "receiver of a GOAWAY must not open new streams"
                               + ("; it will not be processed" if sid > goaway else ""),
                               seq, sid))
        elif goaway is not None and sid > goaway:
            # (nothing shows the opener had read the GOAWAY: the stream crossed it in
            # flight, as a busy client's do when a server ends a connection after N
            # requests — no fault, but the stream will not be processed)
            findings.append(_f("stream-after-goaway", Severity.INFO, "RFC 9113 §6.8",
                               f"stream {sid} opened after the {direction.peer.sender}'s GOAWAY "
                               f"with last stream id {goaway}, which the {direction.sender} "
                               "may not have read yet (in flight): it will not be processed, "
                               "and may be retried on a new connection (§8.7)",
                               seq, sid))
        stream.opened_by = direction
        self._init_windows(stream)
        self.priority.ensure(sid)

    def _conn_finding(self, direction: Direction, t: float, finding: Finding) -> None:
        self.findings_count += 1
        self._events.append(ConnectionFindingRaised(t=t, direction=direction, finding=finding))


def _check_ignored_extension(frame: Frame, direction: Direction, seq: int,
                             findings: list[Finding]) -> None:
    """ALTSVC and ORIGIN frames their receiver must ignore: not errors (no peer resets
    anything), but the advertisement did not happen."""
    sid = frame.stream_id
    if isinstance(frame, OriginFrame):
        if sid:
            findings.append(_f("extension-frame-ignored", Severity.INFO, "RFC 8336 §2.1",
                               f"ORIGIN on stream {sid} is invalid and ignored: it must be "
                               "sent on stream 0", seq, sid))
    elif isinstance(frame, AltSvcFrame):
        if direction is Direction.C2S:
            why = "from the client: a server ignores it (it is meant for clients)"
        elif sid == 0 and not frame.origin:
            why = "on stream 0 with an empty Origin: it names no origin, and is ignored"
        elif sid and frame.origin:
            why = f"on stream {sid} with an Origin ({frame.origin.decode('latin-1')!r}): " \
                "on a stream the origin is the stream's, and one given makes it invalid"
        else:
            return
        findings.append(_f("extension-frame-ignored", Severity.INFO, "RFC 7838 §4",
                           f"ALTSVC {why}", seq, sid))


_RFC_BY_TYPE = {
    0: "RFC 9113 §6.1", 1: "RFC 9113 §6.2", 2: "RFC 9113 §6.3", 3: "RFC 9113 §6.4",
    4: "RFC 9113 §6.5", 5: "RFC 9113 §6.6", 6: "RFC 9113 §6.7", 7: "RFC 9113 §6.8",
    8: "RFC 9113 §6.9", 9: "RFC 9113 §6.10", 0xA: "RFC 7838 §4", 0xC: "RFC 8336 §2",
    0x10: "RFC 9218 §7.1",
}


def _rfc_for(ftype: int) -> str:
    return _RFC_BY_TYPE.get(ftype, "RFC 9113 §4.1")


__all__ = ["ConnectionObserver", "error_name"]
