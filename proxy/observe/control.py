"""Connection-level control frames: SETTINGS, PING and priority signals.

Part of :class:`~proxy.observe.connection.ConnectionObserver` (a base class
of it, kept in its own module so each stays small): these handlers change
connection-wide state — the settings each endpoint has advertised and had
acknowledged, outstanding PINGs, the priority tree — and raise findings about
it. Stream states, flow control and header blocks live in ``connection.py``.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING

from proxy.observe.enums import MAX_WINDOW, Direction, SettingCode, setting_name
from proxy.observe.events import (
    Event,
    FlowControlResumed,
    PingAnswered,
    SettingsAcknowledged,
)
from proxy.observe.findings import Finding, Severity
from proxy.observe.findings import finding as _f
from proxy.observe.floods import count as count_flood
from proxy.observe.priority import MAX_NODES, PriorityTree, parse_priority_field
from proxy.observe.sides import PendingSettings, Side
from proxy.observe.streams import StreamState, sender_finished

if TYPE_CHECKING:
    from proxy.observe.frames import PingFrame, PriorityFrame, PriorityUpdateFrame, SettingsFrame
    from proxy.observe.streams import Stream

C2S, S2C = Direction.C2S, Direction.S2C
_PEER = (S2C, C2S)
_IDLE, _CLOSED = StreamState.IDLE, StreamState.CLOSED
_INITIAL_WINDOW_SIZE = int(SettingCode.INITIAL_WINDOW_SIZE)
_ENABLE_CONNECT_PROTOCOL = int(SettingCode.ENABLE_CONNECT_PROTOCOL)
_SETTING_RANGES = {
    # setting: (lowest, highest, where the range is defined, what a receiver does)
    SettingCode.ENABLE_PUSH: (0, 1, "RFC 9113 §6.5.2",
                              ": a connection error of type PROTOCOL_ERROR"),
    SettingCode.INITIAL_WINDOW_SIZE: (0, MAX_WINDOW, "RFC 9113 §6.5.2",
                                      ": a connection error of type FLOW_CONTROL_ERROR"),
    SettingCode.MAX_FRAME_SIZE: (16_384, 16_777_215, "RFC 9113 §6.5.2",
                                 ": a connection error of type PROTOCOL_ERROR"),
    SettingCode.ENABLE_CONNECT_PROTOCOL: (0, 1, "RFC 8441 §3", " (it must be 0 or 1)"),
    SettingCode.NO_RFC7540_PRIORITIES: (0, 1, "RFC 9218 §2.1",
                                        ": a connection error of type PROTOCOL_ERROR"),
    # (gRPC's own setting, not registered with IANA: it defines 0 and 1, and no error)
    SettingCode.GRPC_ALLOW_TRUE_BINARY_METADATA: (0, 1, "gRPC (grpc-core)",
                                                  " (gRPC defines 0 and 1)"),
}
_NO_RFC7540_PRIORITIES = int(SettingCode.NO_RFC7540_PRIORITIES)
_TRUE_BINARY = int(SettingCode.GRPC_ALLOW_TRUE_BINARY_METADATA)


class ControlFrames:
    """SETTINGS, PING, PRIORITY and PRIORITY_UPDATE handling of the connection model."""

    # Provided by ConnectionObserver.
    sides: tuple[Side, Side]
    streams: dict[int, Stream]
    partial: bool
    priority: PriorityTree
    _events: list[Event]

    if TYPE_CHECKING:
        def _conn_finding(self, direction: Direction, t: float, finding: Finding) -> None: ...
        def _stall(self, stream: Stream, direction: Direction, t: float, seq: int,
                   window: int = 0) -> None: ...

    def _settings(self, side: Side, frame: SettingsFrame, seq: int, t: float,
                  findings: list[Finding]) -> None:
        if frame.ack:
            if frame.length:
                findings.append(_f("settings-ack-with-payload", Severity.ERROR, "RFC 9113 §6.5",
                                   "SETTINGS with ACK carries a payload", seq, 0))
            owner = self.sides[_PEER[side.direction]]
            if owner.unseen and not owner.desynced:
                owner.settings_unknown()  # (they bind the sender of this ACK from now)
            if not owner.pending:
                if self.partial or owner.desynced:  # (its SETTINGS may be in what was lost)
                    return
                # (no RFC rule makes it an error: a warning, for the peers that do)
                findings.append(_f("settings-ack-unexpected", Severity.WARNING,
                                   "RFC 9113 §6.5.3",
                                   "SETTINGS ACK with no SETTINGS waiting for one: no RFC rule "
                                   "forbids it, but nghttp2 treats it as a connection error "
                                   "of type PROTOCOL_ERROR", seq, 0))
                return
            acked = owner.ack_pending()
            side.read_up_to = max(side.read_up_to, acked.seq)
            ack_at = len(self._events)  # (stalls the change starts follow its event)
            delta, adjusted = self._apply_settings(owner, acked.settings, t, seq, findings)
            owner.refresh_frame_size()
            self._events.insert(ack_at, SettingsAcknowledged(
                t=t, direction=side.direction, settings=acked.settings, seq=seq,
                window_delta=delta, streams_adjusted=len(adjusted), windows=tuple(adjusted)))
            return
        count_flood(side, "settings-flood", t, seq, findings)
        unknown: list[tuple[int, int]] = []
        for ident, value in frame.settings:
            bounds = _SETTING_RANGES.get(ident)  # type: ignore[call-overload]
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                low, high, rfc, outcome = bounds
                findings.append(_f("setting-out-of-range", Severity.WARNING
                                   if ident == _TRUE_BINARY else Severity.ERROR, rfc,
                                   f"{setting_name(ident)} = {value} is outside "
                                   f"{low}..{high}{outcome}", seq, 0))
            elif ident == SettingCode.ENABLE_PUSH and value == 1 and side.direction is S2C:
                findings.append(_f("setting-out-of-range", Severity.ERROR, "RFC 9113 §6.5.2",
                                   "the server set SETTINGS_ENABLE_PUSH to 1: a connection "
                                   "error of type PROTOCOL_ERROR", seq, 0))
            elif ident not in SettingCode._value2member_map_:
                unknown.append((ident, value))
            elif ident == _TRUE_BINARY:
                side.true_binary = value == 1
            elif ident == _ENABLE_CONNECT_PROTOCOL:
                if value == 1:
                    side.connect_protocol = True
                elif value == 0 and side.connect_protocol:
                    findings.append(_f("setting-out-of-range", Severity.ERROR, "RFC 8441 §3",
                                       f"the {side.direction.sender} set "
                                       "SETTINGS_ENABLE_CONNECT_PROTOCOL to 0 after sending 1",
                                       seq, 0))
            elif ident == _NO_RFC7540_PRIORITIES:
                first = side.no_rfc7540_priorities
                said = "its first SETTINGS"
                if first < 0 and side.sent_settings and not self.partial:
                    # (left out of the first SETTINGS: the value is the initial one, 0;
                    # an excerpt's first SETTINGS seen need not be the first sent)
                    first, said = 0, "its initial value: the first SETTINGS left it out"
                if not side.sent_settings:
                    side.no_rfc7540_priorities = value
                elif first >= 0 and value != first:
                    findings.append(_f("setting-out-of-range", Severity.ERROR, "RFC 9218 §2.1",
                                       f"the {side.direction.sender} changed "
                                       f"SETTINGS_NO_RFC7540_PRIORITIES from {first} ({said}) "
                                       f"to {value}, which a sender must not do after its "
                                       "first SETTINGS (a receiver may treat it as a "
                                       "connection error of type PROTOCOL_ERROR)", seq, 0))
        if unknown:  # (one finding a frame: a hostile one may carry thousands)
            said = ", ".join(f"0x{ident:x} = {value}" for ident, value in unknown[:4])
            more = f" and {len(unknown) - 4} more" if len(unknown) > 4 else ""
            which, are = ("setting", "is") if len(unknown) == 1 else \
                (f"{len(unknown)} settings", "are")
            findings.append(_f("unknown-setting", Severity.INFO, "RFC 9113 §6.5.2",
                               f"{which} {said}{more} {are} unknown and ignored", seq, 0))
        side.add_pending(PendingSettings(frame.settings, seq, t))
        side.sent_settings = True

    def _apply_settings(self, owner: Side, settings: tuple[tuple[int, int], ...],
                        t: float, seq: int = -1, findings: list[Finding] | None = None,
                        ) -> tuple[int, list[tuple[int, int]]]:
        """Settings advertised by ``owner`` take effect for what its peer sends.
        Returns how much a new INITIAL_WINDOW_SIZE moved the stream windows, and
        the open streams it moved with their windows after."""
        peer = self.sides[_PEER[owner.direction]]
        adv = owner.advertised
        moved = 0
        adjusted: list[tuple[int, int]] = []
        for ident, value in settings:
            if ident == SettingCode.INITIAL_WINDOW_SIZE and value <= MAX_WINDOW:
                # RFC 9113 §6.9.2: the change applies to every stream's window.
                delta = value - adv[_INITIAL_WINDOW_SIZE]
                if delta:
                    moved += delta
                    adjusted = self._adjust_windows(peer.direction, delta, value, t, seq,
                                                    findings)
            elif ident == SettingCode.HEADER_TABLE_SIZE:
                # The owner's decoder limit governs the peer's encoder (RFC 7541 §4.2).
                peer.decoder.max_allowed_table_size = value
            adv[ident] = value
        return moved, adjusted

    def _adjust_windows(self, data_dir: Direction, delta: int, value: int, t: float,
                        seq: int, findings: list[Finding] | None) -> list[tuple[int, int]]:
        """Move every stream's window for data flowing ``data_dir`` by ``delta``: a
        stalled stream whose window opens has resumed; one whose sender has a body
        under way (a request not ended, a response whose HEADERS came) and whose
        window falls to 0 or below must now wait (a stall); a window pushed above
        2^31-1 is a connection error (§6.9.2).
        Returns the open streams moved, with their windows after."""
        over: list[int] = []
        adjusted: list[tuple[int, int]] = []
        conn_blocked = self.sides[data_dir].conn_window <= 0
        for stream in self.streams.values():
            window = stream.send_window[data_dir] = stream.send_window[data_dir] + delta
            if stream.state is _CLOSED or stream.state is _IDLE:
                continue
            adjusted.append((stream.stream_id, window))
            if window > MAX_WINDOW and not stream.exceeded:
                # (not one a WINDOW_UPDATE sent after these SETTINGS already took
                # over, said at that frame: flow.py)
                over.append(stream.stream_id)
                stream.exceeded = True
            since = stream.stalled_since[data_dir]
            if since is not None and window > 0:
                stream.stalled_since[data_dir] = None
                self._events.append(FlowControlResumed(t=t, direction=data_dir,
                                                       stream_id=stream.stream_id,
                                                       stalled_for=t - since, seq=seq,
                                                       connection_blocked=conn_blocked))
            elif since is None and window <= 0 < window - delta \
                    and not sender_finished(stream.state, data_dir) and (
                        data_dir is C2S or stream.response_headers is not None
                        or stream.data_bytes[data_dir]):  # (a body under way)
                self._stall(stream, data_dir, t, seq, window)
        if over and findings is not None:
            # (the fault of the SETTINGS' sender, not of the side whose ACK applied them)
            shown = ", ".join(map(str, over[:5])) + (", ..." if len(over) > 5 else "")
            self._conn_finding(_PEER[data_dir], t, _f(
                "window-overflow", Severity.ERROR, "RFC 9113 §6.9.2",
                f"the {_PEER[data_dir].sender}'s INITIAL_WINDOW_SIZE = {value} ({delta:+d}), "
                f"acknowledged, takes the window of stream{'s' if len(over) > 1 else ''} "
                f"{shown} above 2^31-1: a connection error of type FLOW_CONTROL_ERROR",
                seq, 0))
        return adjusted

    def _ping(self, side: Side, frame: PingFrame, seq: int, t: float,
              findings: list[Finding]) -> None:
        if not frame.ack:
            count_flood(side, "ping-flood", t, seq, findings)
            pings = side.pings
            if frame.opaque in pings:
                # (the same opaque data again: its ACK answers the older one first)
                repeated = side.pings_repeated.setdefault(frame.opaque, deque())
                repeated.append((t, seq))
                if len(repeated) > 64:  # bounded, as below
                    repeated.popleft()
                    side.pings_forgotten += 1
                return
            pings[frame.opaque] = (t, seq)
            if len(pings) > 64:  # bounded: a peer may never answer
                gone = next(iter(pings))
                pings.pop(gone)
                side.pings_forgotten += 1 + len(side.pings_repeated.pop(gone, ()))
            return
        pinger = self.sides[1 - side.direction]
        sent = pinger.pings.pop(frame.opaque, None)
        if sent is not None and pinger.pings_repeated:
            later = pinger.pings_repeated.get(frame.opaque)
            if later:
                # The ACK answers the oldest PING with this opaque data (it is read
                # first): proof of reading that one only, not of a later one — the
                # next ACK with it answers the next (RFC 9113 §6.7).
                pinger.pings[frame.opaque] = later.popleft()
                if not later:
                    del pinger.pings_repeated[frame.opaque]
        if sent is None:
            if self.partial or pinger.desynced or pinger.unseen:
                return
            if pinger.pings_forgotten:  # (the answer to one the bound let go)
                pinger.pings_forgotten -= 1
                return
            findings.append(_f("ping-ack-unmatched", Severity.WARNING, "RFC 9113 §6.7",
                               f"PING ACK with opaque data {frame.opaque.hex()} matches no PING",
                               seq, 0))
            return
        self._events.append(PingAnswered(t=t, direction=side.direction, opaque=frame.opaque,
                                         rtt=t - sent[0], seq=seq))
        side.read_up_to = max(side.read_up_to, sent[1])
        # A PING sent after SETTINGS and answered first proves the SETTINGS were
        # processed without an ACK (RFC 9113 §6.5.3: ACK "immediately"): frames
        # are processed in order.
        # (those reported are the oldest pending: skipped at C speed, not walked)
        for p in itertools.islice(pinger.pending, pinger.pending_reported, None):
            if p.seq >= sent[1]:
                break
            findings.append(_f("settings-not-acknowledged", Severity.ERROR,
                               "RFC 9113 §6.5.3",
                               f"the {side.direction.sender} answered a PING sent after "
                               f"SETTINGS frame #{p.seq} but has not acknowledged it",
                               seq, 0))
            pinger.pending_reported += 1

    # -------------------------------------------------------------- priority

    def _apply_priority(self, sid: int, depends_on: int, weight: int, exclusive: bool,
                        seq: int, findings: list[Finding]) -> None:
        if depends_on == sid:
            # (RFC 7540's rule: RFC 9113 §5.3.2 deprecated these signals, but nghttp2,
            # Go and ATS still reset such a stream)
            findings.append(_f("self-dependency", Severity.ERROR, "RFC 7540 §5.3.1",
                               f"stream {sid} depends on itself: a stream error of type "
                               "PROTOCOL_ERROR (RFC 9113 deprecated these priority signals, "
                               "so a peer may ignore them instead)", seq, sid))
            return
        tree = self.priority
        forgotten = tree.forgotten
        tree.set(sid, depends_on, weight, exclusive)
        if tree.forgotten and not forgotten:  # (once per connection)
            findings.append(_f("priority-tree-limit", Severity.WARNING,
                               "RFC 7540 §5.3.4, RFC 9113 §10.5",
                               f"more than {MAX_NODES:,} streams in the priority tree "
                               "(PRIORITY frames naming streams that are never opened): "
                               "h2scope forgets the oldest, as a server bounds this state; "
                               "a flood of them is a known denial-of-service pattern", seq,
                               sid))

    def _priority_frame(self, frame: PriorityFrame, seq: int, findings: list[Finding]) -> None:
        p = frame.priority
        self._apply_priority(frame.stream_id, p.depends_on, p.weight, p.exclusive, seq, findings)

    def _apply_rfc9218(self, stream: Stream, value: str, seq: int,
                       findings: list[Finding]) -> None:
        urgency, incremental, problem = parse_priority_field(value)
        if problem:
            findings.append(_f("priority-field-invalid", Severity.WARNING, "RFC 9218 §4",
                               f"priority {value!r}: {problem}; ignored, as RFC 9218 requires "
                               "(the parameter keeps its default or earlier value)", seq,
                               stream.stream_id))
        if urgency is not None:
            stream.urgency = urgency
        if incremental is not None:
            stream.incremental = incremental

    def _priority_update(self, side: Side, frame: PriorityUpdateFrame, seq: int,
                         findings: list[Finding]) -> None:
        if side.direction is S2C:
            findings.append(_f("priority-update-from-server", Severity.ERROR, "RFC 9218 §7.1",
                               "the server sent PRIORITY_UPDATE; only clients send it", seq, 0))
            return
        target = frame.prioritized_stream_id
        if target == 0:
            findings.append(_f("priority-update-stream-0", Severity.ERROR, "RFC 9218 §7.1",
                               "PRIORITY_UPDATE for stream 0: a connection error "
                               "(PROTOCOL_ERROR); it prioritizes a request stream", seq, 0))
            return
        stream = self.streams.get(target)
        if stream is None:
            return  # §7.1: may precede the stream; nothing to apply yet
        self._apply_rfc9218(stream, frame.field_value.decode("latin-1"), seq, findings)
