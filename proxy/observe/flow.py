"""A stream's body, windows and resets: DATA, WINDOW_UPDATE and RST_STREAM.

Part of :class:`~proxy.observe.connection.ConnectionObserver` (a base class of
it, as :mod:`proxy.observe.control` and :mod:`proxy.observe.header_blocks`
are, so each module stays small). DATA spends both flow-control windows
(padding included, RFC 9113 §6.9.1), counts the body against content-length
and may end the stream; WINDOW_UPDATE widens the window of the data flowing
towards its sender; RST_STREAM closes a stream, and a client cancelling its
own streams before any response is watched for the Rapid Reset pattern.
Stalls (a window at 0 while data waits) and their end are events. The
unpadded DATA fast path that needs none of this is in ``connection.feed``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from proxy.observe.enums import MAX_WINDOW, Direction, SettingCode
from proxy.observe.events import Event, FlowControlResumed, FlowControlStalled
from proxy.observe.findings import Finding, Severity
from proxy.observe.findings import finding as _f
from proxy.observe.floods import count as count_flood
from proxy.observe.header_rules import grpc_status_missing, header_value, status_of
from proxy.observe.streams import (
    NO_RESPONSE_YET,
    Stream,
    StreamState,
    check_frame_allowed,
    transition,
)
from proxy.observe.websockets import check_data

if TYPE_CHECKING:
    from proxy.observe.frames import DataFrame, RstStreamFrame, WindowUpdateFrame
    from proxy.observe.sides import Side

C2S, S2C = Direction.C2S, Direction.S2C
_PEER = (S2C, C2S)
_IDLE, _OPEN = StreamState.IDLE, StreamState.OPEN
_HALF_CLOSED_CLIENT = StreamState.HALF_CLOSED_CLIENT
_HALF_CLOSED_SERVER = StreamState.HALF_CLOSED_SERVER
_CLOSED = StreamState.CLOSED
_DATA, _RST, _WU = 0, 3, 8
_FLOW_CONTROL_ERROR = 0x3
RAPID_RESET_COUNT = 100
RAPID_RESET_WINDOW = 1.0
"""Streams a client resets before any response, and the seconds they fit in,
that make a ``rapid-reset`` warning (once per connection)."""


class StreamFrames:
    """DATA, WINDOW_UPDATE and RST_STREAM handling of the connection model."""

    # Provided by ConnectionObserver.
    sides: tuple[Side, Side]
    streams: dict[int, Stream]
    _events: list[Event]
    _cancels: deque[float]
    _rapid_reset_reported: bool
    partial: bool
    payload_cut: bool

    if TYPE_CHECKING:
        def _lookup(self, sid: int, sender: Direction | None = None, *,
                    not_opening: bool = False, data: bool = False) -> Stream: ...

        def _set_state(self, stream: Stream, new: StreamState, direction: Direction, seq: int,
                       t: float) -> None: ...

    def _data(self, side: Side, frame: DataFrame, seq: int, t: float,
              findings: list[Finding]) -> tuple[int, int | None]:
        sid = frame.stream_id
        direction = side.direction
        length = frame.length  # RFC 9113 §6.9.1: padding counts against the windows
        side.conn_window -= length
        conn_window = side.conn_window
        if conn_window < 0 and not self.partial and not self.sides[_PEER[direction]].desynced \
                and (length or not frame.flags & 1):
            # (a receiver whose frames are unknown may have granted more; an empty DATA
            # that ends the stream may be sent with no window left, RFC 9113 §6.9.1)
            findings.append(_f("flow-control-exceeded", Severity.ERROR, "RFC 9113 §6.9.1",
                               f"DATA of {length} bytes exceeds the connection window by "
                               f"{-conn_window}", seq, sid))
        stream = self.streams.get(sid)
        if stream is None:
            stream = self._lookup(sid, direction, not_opening=True, data=True)
        state: StreamState = stream.state
        end = frame.flags & 1
        if not end and (state is _OPEN or state is (
                _HALF_CLOSED_CLIENT if direction is S2C else _HALF_CLOSED_SERVER)):
            # The common cases without the table: DATA on an open stream, or a
            # response body after a request that ended with its HEADERS (§5.1).
            new: StreamState = state
            problem: str | None = None
        else:
            new, problem = transition(state, _DATA, bool(end), direction)
        if problem:
            said = self._state_finding(stream, direction, problem, seq)
            if said is not None:
                findings.append(said)
        if not end and not frame.data_length:
            count_flood(side, "empty-frames-flood", t, seq, findings)
        received = stream.data_bytes[direction] = stream.data_bytes[direction] + frame.data_length
        if stream.websocket is not None:  # (RFC 8441 §5: WebSocket frames, both ways)
            check_data(stream.websocket, direction, frame.data, t, seq, sid, self.payload_cut,
                       findings)
        declared = stream.content_length[direction]
        if declared >= 0:
            if end or received > declared:
                self._body_ended(stream, direction, seq, findings, bool(end))
        elif declared != -1 and not problem:
            self._unexpected_data(stream, direction, frame.data_length, seq, findings)
        window = stream.send_window[direction] - length
        stream.send_window[direction] = window
        if window < 0 and state is not _CLOSED and state is not _IDLE and not self.partial \
                and window + self.sides[_PEER[direction]].pending_window_increase() < 0 \
                and (length or not end) and not self.sides[_PEER[direction]].desynced:
            # (within a larger INITIAL_WINDOW_SIZE the receiver sent and the sender
            # may have processed, its ACK not yet seen: RFC 9113 §6.9.2 allows it; an
            # empty DATA that ends the stream may be sent with no window, §6.9.1)
            findings.append(self._window_exceeded(stream, direction, length, window, seq))
        if end and stream.grpc_pending and direction is S2C:
            stream.grpc_pending = False
            response = stream.response_headers or ()
            findings.append(grpc_status_missing(
                sid, "with DATA and no trailers", seq, http_status=status_of(response),
                early=header_value(response, "grpc-status") is not None,
                content_type=header_value(response, "content-type")))
        if new is not state:
            self._set_state(stream, new, direction, seq, t)
        elif not end and length:
            # A window spent exactly: the sender must wait. (Below 0 it did not wait:
            # flow-control-exceeded, not a stall.)
            if conn_window == 0 and side.conn_stalled_since is None:
                side.conn_stalled_since = t
                side.conn_stall_seq = seq
                self._events.append(FlowControlStalled(t=t, direction=direction, stream_id=0,
                                                       seq=seq))
            if window == 0 and stream.stalled_since[direction] is None and \
                    state is not _IDLE and state is not _CLOSED:  # (no window to wait on)
                self._stall(stream, direction, t, seq)
        # A stream the observer does not track (closed long ago, or skipped: §5.1.1)
        # has no window to show; its DATA is flagged (frame-on-closed-stream).
        return conn_window, None if stream.presumed_closed or state is _IDLE else window

    @staticmethod
    def _window_exceeded(stream: Stream, direction: Direction, length: int, window: int,
                         seq: int) -> Finding:
        """DATA that took ``stream``'s window for ``direction`` to ``window`` < 0: past
        the window (§6.9.1), or sent while a SETTINGS change held it below 0 (§6.9.2:
        the sender waits for WINDOW_UPDATEs to make it positive)."""
        sid = stream.stream_id
        before = window + length
        if before < 0 and not stream.exceeded:  # (only SETTINGS take it below 0 else)
            stream.below_by_settings = True
        stream.exceeded = True
        if before < 0 and stream.below_by_settings:
            return _f("flow-control-exceeded", Severity.ERROR, "RFC 9113 §6.9.2",
                      f"DATA of {length} bytes sent while stream {sid}'s window was {before}, "
                      "below 0 after a SETTINGS change lowered INITIAL_WINDOW_SIZE: the "
                      f"{direction.sender} must wait for WINDOW_UPDATEs to make it positive",
                      seq, sid)
        return _f("flow-control-exceeded", Severity.ERROR, "RFC 9113 §6.9.1",
                  f"DATA of {length} bytes exceeds stream {sid}'s window by {-window}",
                  seq, sid)

    def _may_have_sent_data(self, data_side: Side) -> bool:
        """Whether an :attr:`~Side.unseen` side may have sent DATA (spent window the
        seen side's WINDOW_UPDATE gives back): the client any time (its streams are
        unseen), the server once the client opened a stream (a push needs one too)."""
        return data_side.direction is C2S or self.sides[C2S].highest_stream_id > 0

    def _stall(self, stream: Stream, direction: Direction, t: float, seq: int,
               window: int = 0) -> None:
        """``stream``'s sender in ``direction`` must wait for its window from now:
        DATA spent it, a SETTINGS change took it to 0 or below (control), or HEADERS
        announced a body with none (header blocks)."""
        stream.stalled_since[direction] = t
        stream.stall_seq = (seq, stream.stall_seq[1]) if direction is C2S else \
            (stream.stall_seq[0], seq)
        self._events.append(FlowControlStalled(t=t, direction=direction,
                                               stream_id=stream.stream_id, seq=seq,
                                               window=window))

    def _unexpected_data(self, stream: Stream, direction: Direction, size: int, seq: int,
                         findings: list[Finding]) -> None:
        """DATA where the response may have none: before its final HEADERS (RFC 9113
        §8.1), or in a response that has no content (RFC 9110 §6.4.1). Once each."""
        sid = stream.stream_id
        if stream.content_length[direction] == NO_RESPONSE_YET:
            stream.content_length[direction] = -1
            if self.sides[direction].hpack_broken:
                return  # its response HEADERS may be there, undecoded
            so_far = ("only an informational (1xx) response" if stream.informational
                      else "no HEADERS")
            findings.append(_f("data-before-headers", Severity.ERROR, "RFC 9113 §8.1",
                               f"DATA on stream {sid} before its response ({so_far} so far): "
                               "a response starts with a HEADERS frame carrying its status; "
                               "the receiver must treat it as malformed", seq, sid))
        elif size:
            stream.content_length[direction] = -1
            request = stream.request_headers or ()
            status = status_of(stream.response_headers or ())
            what = ("the response to a HEAD request" if header_value(request, ":method") == "HEAD"
                    else f"a {status} response")
            findings.append(_f("content-not-allowed", Severity.ERROR, "RFC 9110 §6.4.1",
                               f"DATA on stream {sid} carries {size} bytes of content in {what}, "
                               "which has none", seq, sid))

    def _body_ended(self, stream: Stream, direction: Direction, seq: int,
                    findings: list[Finding], ended: bool = True) -> None:
        """The ``direction``'s message on ``stream`` ended (END_STREAM), or its DATA went
        past the declared length: the two must agree (RFC 9113 §8.1.1)."""
        declared = stream.content_length[direction]
        if declared < 0 or stream.reset_by is not None:
            return
        stream.content_length[direction] = -1  # one finding per message at most
        received = stream.data_bytes[direction]
        if received == declared:
            return
        message = "request" if direction is C2S else "response"
        how = "in all" if ended else "so far"
        findings.append(_f("content-length-mismatch", Severity.ERROR, "RFC 9113 §8.1.1",
                           f"the {message} on stream {stream.stream_id} declares content-length "
                           f"{declared} but its DATA frames carried {received} bytes {how}; "
                           "the receiver must treat it as malformed", seq, stream.stream_id))

    def _state_finding(self, stream: Stream, direction: Direction, problem: str,
                       seq: int) -> Finding | None:
        sid = stream.stream_id
        if stream.reset_by is _PEER[direction]:
            read = self.sides[direction].read_up_to
            if read > stream.reset_seq >= 0:
                # It had answered a frame sent after the reset: it had read the reset too
                # (frames are read in order), so this one was sent after it.
                return _f("frame-after-reset", Severity.WARNING, "RFC 9113 §5.1",
                          f"{problem}: the {direction.peer.sender} reset it (frame "
                          f"#{stream.reset_seq}) and the {direction.sender} had read that — it "
                          f"answered frame #{read}, sent after it — yet still sends on it",
                          seq, sid)
            # RFC 9113 §5.1: frames sent before the RST_STREAM arrived are a race, not an
            # error; said once per stream (a cancelled download has a window's worth).
            if stream.in_flight_said:
                return None
            stream.in_flight_said = True
            return _f("frame-after-reset", Severity.INFO, "RFC 9113 §5.1",
                      f"{problem} (the {direction.peer.sender} had reset it; frames in flight "
                      "are expected, and the later ones on this stream are not listed)",
                      seq, sid)
        code = "frame-on-idle-stream" if "idle" in problem else "frame-on-closed-stream"
        return _f(code, Severity.ERROR, "RFC 9113 §5.1", f"stream {sid}: {problem}", seq, sid)

    # ---------------------------------------------------- flow control etc.

    def _window_update(self, side: Side, frame: WindowUpdateFrame, seq: int, t: float,
                       findings: list[Finding]) -> tuple[int, int | None] | None:
        sid, inc = frame.stream_id, frame.increment
        # A WINDOW_UPDATE widens the window of data flowing towards its sender.
        data_dir = _PEER[side.direction]
        data_side = self.sides[data_dir]
        if inc == 0:
            scope = "a connection error" if sid == 0 else "a stream error"
            findings.append(_f("window-update-zero", Severity.ERROR, "RFC 9113 §6.9",
                               f"WINDOW_UPDATE with an increment of 0: {scope} of type "
                               "PROTOCOL_ERROR", seq, sid))
        if sid == 0:
            before = data_side.conn_window
            data_side.conn_window = after = before + inc
            if after > MAX_WINDOW and not self.partial and not data_side.desynced \
                    and not (data_side.unseen and self._may_have_sent_data(data_side)):
                # (an excerpt: the start is unknown; a sender whose DATA is unknown may
                # have spent what this gives back)
                findings.append(_f("window-overflow", Severity.ERROR, "RFC 9113 §6.9.1",
                                   f"connection window would reach {after}, above 2^31-1: "
                                   "a connection error of type FLOW_CONTROL_ERROR", seq, 0))
            if data_side.conn_stalled_since is not None and after > 0:
                self._events.append(FlowControlResumed(
                    t=t, direction=data_dir, stream_id=0,
                    stalled_for=t - data_side.conn_stalled_since, seq=seq))
                data_side.conn_stalled_since = None
            return after, None
        stream = self.streams.get(sid) or self._lookup(sid, side.direction, not_opening=True)
        problem = check_frame_allowed(stream.state, _WU)
        if problem:
            said = self._state_finding(stream, side.direction, problem, seq)
            if said is not None:
                findings.append(said)
            return data_side.conn_window, None
        if stream.state is _CLOSED:
            if stream.reset_by is side.direction and not self.partial:
                # (its receiver ignores it, §6.9; but its sender had closed the stream
                # itself, and sends nothing but PRIORITY on a closed stream, §5.1)
                findings.append(_f("frame-on-closed-stream", Severity.INFO, "RFC 9113 §5.1",
                                   f"the {side.direction.sender} sent WINDOW_UPDATE on stream "
                                   f"{sid} after resetting it itself (frame "
                                   f"#{stream.reset_seq}); the {data_dir.sender} ignores it",
                                   seq, sid))
            return data_side.conn_window, None  # §5.1: allowed shortly after closing
        after = stream.send_window[data_dir] + inc
        stream.send_window[data_dir] = after
        # Its reader processes the INITIAL_WINDOW_SIZE its sender sent before it first
        # (RFC 9113 §6.5.3, §6.9.2), whether or not the ACK has crossed yet: the
        # window this frame opens, or overflows, is that one. (DATA the reader sent
        # before processing them is still held to the window before: control.py.)
        delta = side.pending_window_delta() if side.last_window is not None else 0
        seen = after + delta
        if seen > MAX_WINDOW and not self.partial and not data_side.desynced \
                and not data_side.unseen:  # (its DATA on the stream is unknown)
            stream.exceeded = True
            with_settings = (f" (with the INITIAL_WINDOW_SIZE = "
                             f"{side.advertised[SettingCode.INITIAL_WINDOW_SIZE] + delta} the "
                             f"{side.direction.sender} sent before it, which the "
                             f"{data_dir.sender} applies first)") if delta else ""
            findings.append(_f("window-overflow", Severity.ERROR, "RFC 9113 §6.9.1",
                               f"stream {sid}'s window would reach {seen}{with_settings}, "
                               "above 2^31-1: a stream error of type FLOW_CONTROL_ERROR",
                               seq, sid))
        since = stream.stalled_since[data_dir]
        if since is not None and 0 < seen <= MAX_WINDOW and inc:  # (past it: a stream
            # error; with no increment, the SETTINGS' ACK says what they reopened)
            stream.stalled_since[data_dir] = None
            self._events.append(FlowControlResumed(t=t, direction=data_dir, stream_id=sid,
                                                   stalled_for=t - since, seq=seq,
                                                   connection_blocked=data_side.conn_window
                                                   <= 0))
        # (the line shows the window as kept until the ACK applies the SETTINGS, as
        # the DATA lines between do: one model per log)
        return data_side.conn_window, after

    def _rst(self, side: Side, frame: RstStreamFrame, seq: int, t: float,
             findings: list[Finding]) -> None:
        stream = self.streams.get(frame.stream_id) or self._lookup(
            frame.stream_id, side.direction, not_opening=True)
        new, problem = transition(stream.state, _RST, False, side.direction)
        if stream.reset_by is side.direction and stream.state is _CLOSED and not self.partial:
            # (the other side's reset, answered by one of its own, is no repeat)
            findings.append(_f("frame-on-closed-stream", Severity.INFO, "RFC 9113 §5.4.2",
                               f"the {side.direction.sender} reset stream {stream.stream_id} "
                               f"again (it reset it in frame #{stream.reset_seq}): an endpoint "
                               "should not send more than one RST_STREAM for a stream",
                               seq, stream.stream_id))
        if problem:
            said = self._state_finding(stream, side.direction, problem, seq)
            if said is not None:
                findings.append(said)
            if stream.state is _IDLE:
                return  # (a connection error, §5.1: no stream came of it)
        elif (side.direction is C2S and stream.opened_by is C2S
              and stream.response_headers is None and stream.state is not _CLOSED):
            server = self.sides[S2C]
            if not server.unseen:
                if not server.desynced:  # (else its response may have come)
                    self._cancelled(stream.stream_id, seq, t, findings)
            elif seq == stream.request_seq + 1:
                # Only the client's bytes (decode): no response can be seen, but one
                # reset as the very next frame after its request had no time to wait
                # for one — the pattern is in the client's bytes alone.
                self._cancelled(stream.stream_id, seq, t, findings, unseen=True)
        peer = self.sides[_PEER[side.direction]]
        if frame.error_code == _FLOW_CONTROL_ERROR and not problem \
                and stream.state is not _CLOSED and not stream.exceeded \
                and peer.conn_window >= 0 and not peer.desynced \
                and not peer.unseen:  # (its DATA unknown)
            self._reset_unexplained(stream, side, seq, findings)
        if stream.state is not _CLOSED:
            stream.reset_by = side.direction
            stream.reset_code = frame.error_code
            stream.reset_seq = seq
            stream.reset_offset = side.offset
            stream.reset_from = stream.state
        self._set_state(stream, new, side.direction, seq, t)

    def _reset_unexplained(self, stream: Stream, side: Side, seq: int,
                           findings: list[Finding]) -> None:
        """A FLOW_CONTROL_ERROR reset for a stream whose sender, by the observer's
        count, never went past a window: the two peers' accounting differs (a
        bug, or a SETTINGS change one of them applied differently, §6.9.2) —
        unless the resetting side's own lower INITIAL_WINDOW_SIZE put the window
        below 0, acknowledged or still pending: RFC 9113 §6.9.3 lets it reset the
        streams that then exceed it."""
        by = side.direction
        sender = _PEER[by]
        window = stream.send_window[sender]
        if window + (side.pending_window_delta() if side.last_window is not None else 0) < 0:
            return
        findings.append(_f("flow-control-error-unexplained", Severity.WARNING, "RFC 9113 §6.9",
                           f"the {by.sender} reset stream {stream.stream_id} with "
                           f"FLOW_CONTROL_ERROR, but the {sender.sender} never sent more than a "
                           f"window allowed by the observer's count (its window for the "
                           f"{sender.sender}'s data is {window} now): the {by.sender}'s "
                           "flow-control accounting differs from what crossed the wire",
                           seq, stream.stream_id))

    def _cancelled(self, sid: int, seq: int, t: float, findings: list[Finding],
                   unseen: bool = False) -> None:
        """The client reset a stream of its own before any response: one is normal (a
        navigation away); :data:`RAPID_RESET_COUNT` within :data:`RAPID_RESET_WINDOW`
        seconds is the HTTP/2 Rapid Reset attack (CVE-2023-44487). ``unseen``: the
        server's bytes are not in the input, and each reset came right after its
        request."""
        cancels = self._cancels
        cancels.append(t)
        if (len(cancels) == RAPID_RESET_COUNT and not self._rapid_reset_reported
                and t - cancels[0] <= RAPID_RESET_WINDOW):
            self._rapid_reset_reported = True
            findings.append(_f("rapid-reset", Severity.WARNING, "RFC 9113 §10.5",
                               f"the client reset {RAPID_RESET_COUNT} of its streams "
                               + ("as the next frame after each request (the server's "
                                  "responses are not in the input)" if unseen else
                                  f"before any response within {t - cancels[0]:.3f} s")
                               + ": the pattern of the HTTP/2 Rapid Reset attack "
                               "(CVE-2023-44487)", seq, sid))
