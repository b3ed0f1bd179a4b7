"""Header blocks in the connection model: HEADERS, PUSH_PROMISE, CONTINUATION.

Part of :class:`~proxy.observe.connection.ConnectionObserver` (a base class
of it, kept in its own module so each stays small): a HEADERS frame opens or
continues a stream, a PUSH_PROMISE reserves one, CONTINUATION frames complete
a block (RFC 9113 §6.10); a complete block is decoded by the sending side's
HPACK decoder, checked (RFC 9113 §8.2, §8.3) and applied to its stream.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from proxy.observe.describe import SHOWN_LIST_SIZE, shown
from proxy.observe.enums import Direction, SettingCode
from proxy.observe.findings import Finding, Severity
from proxy.observe.findings import finding as _f
from proxy.observe.frames import Frame, HeadersFrame, PushPromiseFrame
from proxy.observe.header_rules import (
    BlockRole,
    check_fields,
    grpc_call_type,
    grpc_status_invalid,
    grpc_status_missing,
    header_value,
    length_conflict,
    length_of,
    status_of,
)
from proxy.observe.hpack_annotated import HeaderBlock, HpackDecodeError
from proxy.observe.hpack_fields import Representation
from proxy.observe.priority import PriorityTree
from proxy.observe.sides import MAX_BLOCK_BYTES, HeaderBlockInProgress, Side
from proxy.observe.streams import NO_CONTENT, Stream, StreamState, sender_finished, transition
from proxy.observe.websockets import accepted

C2S, S2C = Direction.C2S, Direction.S2C
_IDLE, _RESERVED, _CLOSED = StreamState.IDLE, StreamState.RESERVED, StreamState.CLOSED
_HALF_CLOSED_CLIENT = StreamState.HALF_CLOSED_CLIENT
_HEADERS, _CONT = 1, 9
_MAX_HEADER_LIST_SIZE = int(SettingCode.MAX_HEADER_LIST_SIZE)
_AMPLIFIED = 16
"""A list past describe.SHOWN_LIST_SIZE that decodes to more than this many times
its wire bytes is an HPACK amplification (one entry referenced over and over)."""
_ENABLE_PUSH = int(SettingCode.ENABLE_PUSH)
# Module constants: looking a member up on an Enum class costs ~90 ns in 3.11.
_ROLE_REQUEST, _ROLE_PUSH_REQUEST = BlockRole.REQUEST, BlockRole.PUSH_REQUEST
_ROLE_RESPONSE, _ROLE_TRAILERS = BlockRole.RESPONSE, BlockRole.TRAILERS
_CHECKED_MAX = 64
CONTINUATION_FLOOD = 32
"""CONTINUATION frames in one header block that earn a warning: encoders fill
frames of at least 16 KiB, so 32 of them would be a header list of 512 KiB."""


_NOT_GRPC, _GRPC_NO_STATUS, _GRPC_STATUS, _GRPC_CALL_STATUS, _GRPC_REQUEST = 0, 1, 2, 3, 4
"""A block's gRPC status: none (not gRPC), a gRPC content-type without grpc-status,
grpc-status (trailers), grpc-status with a gRPC content-type (a response's), a gRPC
call's request."""
"""Of a response or trailers block: neither gRPC nor a status, a gRPC response
without grpc-status (it must follow in trailers), one that carries it."""


def _grpc_request(headers: tuple[tuple[str, str], ...]) -> bool:
    """A gRPC call's request (gRPC-Web excepted: its status travels in the body)."""
    return grpc_call_type(header_value(headers, "content-type"))


def _early_grpc_status(stream: Stream) -> bool:
    """The response HEADERS carried a grpc-status (which only counts in trailers or a
    Trailers-Only response)."""
    return stream.response_headers is not None and \
        header_value(stream.response_headers, "grpc-status") is not None


def size_updates(block: HeaderBlock, sid: int | None, seq: int,
                 findings: list[Finding]) -> None:
    """RFC 7541 §4.2: however often the maximum changed since the last block, an
    encoder signals at most two size updates (the smallest maximum of the
    interval, then the final one). More decode, but say so. ``sid`` None: a block
    on its own (``decode --hpack``)."""
    sizes = [f.new_table_size for f in block.fields
             if f.representation is Representation.SIZE_UPDATE]
    if len(sizes) > 2:
        findings.append(_f("hpack-size-updates", Severity.WARNING, "RFC 7541 §4.2",
                           f"{len(sizes)} dynamic table size updates open the header block"
                           f"{'' if sid is None else f' on stream {sid}'} "
                           f"({' → '.join(map(str, sizes))}); an encoder "
                           "signals at most two: the smallest maximum since its last "
                           f"block ({min(s for s in sizes if s is not None)}), then the "
                           f"final one ({sizes[-1]})", seq, sid or 0))


def decoded_before(exc: HpackDecodeError) -> str:
    """``; decoded before it: name: value, ...`` — the fields a broken block gave
    before its error (what came before the break is what a user debugs with)."""
    return _fields_said("decoded before it", exc.partial)


def _fields_said(what: str, fields: tuple[tuple[str, str], ...]) -> str:
    if not fields:
        return ""
    shown_fields = ", ".join(f"{shown(n)}: {shown(v)}" for n, v in fields[:8])
    more = f", … ({len(fields)} fields)" if len(fields) > 8 else ""
    return f"; {what}: {shown_fields[:300]}{more}"


def _hpack_rfc(exc: HpackDecodeError) -> str:
    """The sections of an HPACK error, with RFC 9113 §4.3 (a COMPRESSION_ERROR)."""
    rfc = exc.rfc
    return f"{rfc}, §4.3" if "RFC 9113" in rfc else f"{rfc}, RFC 9113 §4.3"


def fields_before_cut(side: Side) -> str:
    """``; fields that came: name: value, ...`` — what the fragments of a header block
    that never completed carry (a request half sent when its client died). Decoding
    them changes the side's HPACK table, so only for a block whose side's later
    blocks are not decoded anyway (the connection ended, or ``hpack_broken``)."""
    block = side.block
    if block is None or block.size < 0 or not block.fragments:
        return ""
    # (its start only: a CONTINUATION flood leaves megabytes of one-byte fields, and
    # decoding them all at the close held every other connection for seconds)
    head = bytearray()
    for fragment in block.fragments:
        head += fragment
        if len(head) >= CUT_BLOCK_SHOWN:
            break
    try:
        fields = side.decoder.decode(bytes(head[:CUT_BLOCK_SHOWN])).headers
    except HpackDecodeError as exc:
        fields = exc.partial
    except Exception:  # (a display aid: never the observer's failure)
        return ""
    said = _fields_said("fields that came", fields)
    if said and block.size > CUT_BLOCK_SHOWN:
        said += f" (in its first {CUT_BLOCK_SHOWN // 1024} KiB of {block.size:,} bytes)"
    return said


CUT_BLOCK_SHOWN = 64 * 1024
"""Bytes of a header block that never ended decoded to say what fields came."""


def _stray_continuation(side: Side, sid: int, pending: HeaderBlockInProgress | None) -> str:
    """Why a CONTINUATION on ``sid`` continues nothing (RFC 9113 §6.10: it must
    follow, at once and on the same stream, a frame without END_HEADERS)."""
    if pending is not None:
        return (f"CONTINUATION on stream {sid} while the header block on stream "
                f"{pending.stream_id} (frame #{pending.first_seq}) still expected its "
                f"CONTINUATION on stream {pending.stream_id}; that block is dropped")
    cut = side.block_cut
    if cut is not None and cut[0] == sid:
        return (f"CONTINUATION on stream {sid} after its header block (frame #{cut[1]}) was "
                f"cut off by {cut[3]} #{cut[2]}: a CONTINUATION must follow at once")
    return (f"CONTINUATION on stream {sid} without a preceding HEADERS or PUSH_PROMISE "
            "lacking END_HEADERS")


def _header_list_size(receiver: Side, size: int, limit: int, seq: int, sid: int,
                      findings: list[Finding]) -> None:
    """A header list of ``size`` bytes against the receiver's SETTINGS_MAX_HEADER_LIST_SIZE:
    the last value it *sent*, acknowledged (``limit``) or not. The limit is the
    receiver's own and advisory (RFC 9113 §6.5.2): it enforces it from when it sends
    it (a server answers 431 to a request sent before the client's ACK)."""
    sent = next((value for p in reversed(receiver.pending) for code, value
                 in reversed(p.settings) if code == _MAX_HEADER_LIST_SIZE), None)
    at = next((p.seq for p in reversed(receiver.pending)
               if any(code == _MAX_HEADER_LIST_SIZE for code, _ in p.settings)), -1)
    if sent is not None:
        limit = sent
    if size > limit:
        pending = f" (sent in the {receiver.direction.sender}'s SETTINGS frame #{at}, not yet " \
            "acknowledged: the limit is its own, in force from when it sent it)" \
            if sent is not None else ""
        findings.append(_f("header-list-too-large", Severity.WARNING, "RFC 9113 §6.5.2",
                           f"header list of {size} bytes exceeds the receiver's "
                           f"SETTINGS_MAX_HEADER_LIST_SIZE {limit}{pending}", seq, sid))


class HeaderBlocks:
    """HEADERS, PUSH_PROMISE and CONTINUATION handling of the connection model."""

    # Provided by ConnectionObserver.
    sides: tuple[Side, Side]
    streams: dict[int, Stream]
    closed: OrderedDict[int, Stream]
    priority: PriorityTree

    if TYPE_CHECKING:
        def stream(self, sid: int) -> Stream | None: ...
        def _lookup(self, sid: int, sender: Direction | None = None, *,
                    not_opening: bool = False, data: bool = False) -> Stream: ...
        def _set_state(self, stream: Stream, new: StreamState, direction: Direction, seq: int,
                       t: float) -> None: ...
        def _init_windows(self, stream: Stream) -> None: ...
        def _stall(self, stream: Stream, direction: Direction, t: float, seq: int,
                   window: int = 0) -> None: ...
        def _open_stream(self, side: Side, stream: Stream, seq: int,
                         findings: list[Finding]) -> None: ...
        def _check_concurrency(self, side: Side, sid: int, seq: int, findings: list[Finding],
                               pushed: bool = False) -> None: ...
        def _state_finding(self, stream: Stream, direction: Direction, problem: str,
                           seq: int) -> Finding | None: ...
        def _apply_priority(self, sid: int, depends_on: int, weight: int, exclusive: bool,
                            seq: int, findings: list[Finding]) -> None: ...
        def _apply_rfc9218(self, stream: Stream, value: str, seq: int,
                           findings: list[Finding]) -> None: ...
        def _body_ended(self, stream: Stream, direction: Direction, seq: int,
                        findings: list[Finding], ended: bool = True) -> None: ...

    def _header_fragment(self, side: Side, frame: Frame, seq: int, t: float,
                         findings: list[Finding]) -> tuple[HeaderBlock | None, int | None] | None:
        if frame.type == _HEADERS:
            assert isinstance(frame, HeadersFrame)
            return self._headers(side, frame, seq, t, findings)
        if frame.type == _CONT:
            sid = frame.stream_id
            pending = side.block
            if pending is None or pending.stream_id != sid:
                findings.append(_f("continuation-unexpected", Severity.ERROR, "RFC 9113 §6.10",
                                   _stray_continuation(side, sid, pending), seq, sid))
                side.block = None
                if frame.payload:  # (a fragment of a block that went missing: its HPACK
                    side.hpack_broken = True  # changes are unknown from here on)
                return None
            self._continuation(side, pending, frame.raw[9:], seq, findings)
        else:
            assert isinstance(frame, PushPromiseFrame)
            pending = self._push_promise(side, frame, seq, t, findings)
        if not frame.flags & 0x4:
            side.block = pending
            return None
        side.block = None
        role = pending.role
        assert isinstance(role, BlockRole)
        return self._decode_block(side, pending.stream_id, role, b"".join(pending.fragments),
                                  pending.promised_stream_id, seq, findings)

    def _continuation(self, side: Side, pending: HeaderBlockInProgress, fragment: bytes,
                      seq: int, findings: list[Finding]) -> None:
        """One more fragment of a header block, within bounds (RFC 9113 §10.5)."""
        sid = pending.stream_id
        if len(pending.fragments) == CONTINUATION_FLOOD:  # a HEADERS and this many more
            findings.append(_f("continuation-flood", Severity.WARNING, "RFC 9113 §10.5",
                               f"the header block on stream {sid} goes on past "
                               f"{CONTINUATION_FLOOD} CONTINUATION frames (the pattern of the "
                               "2024 CONTINUATION flood attacks)", seq, sid))
        if pending.size < 0:
            return
        pending.size += len(fragment)
        if pending.size > MAX_BLOCK_BYTES:
            side.hpack_broken = True
            pending.size = -1
            pending.fragments.clear()
            findings.append(_f("header-block-too-large", Severity.WARNING, "RFC 9113 §10.5.1",
                               f"the header block on stream {sid} passed {MAX_BLOCK_BYTES} "
                               "bytes without END_HEADERS: h2scope stops buffering it, so "
                               f"this and later blocks from the {side.direction.sender} are "
                               "not decoded", seq, sid))
            return
        pending.fragments.append(fragment)

    def _headers(self, side: Side, frame: HeadersFrame, seq: int, t: float,
                 findings: list[Finding]) -> tuple[HeaderBlock | None, int | None] | None:
        """A HEADERS frame: the stream it opens or continues, then its block if complete."""
        direction = side.direction
        sid = frame.stream_id
        if sid == 0:
            # Flagged stream-id-zero (a connection error): no stream to open or check,
            # but the block is decoded, as the peer's HPACK decoder would have read it.
            if not frame.flags & 0x4:
                side.block = HeaderBlockInProgress(0, _ROLE_REQUEST, [frame.fragment], None,
                                                   seq, len(frame.fragment))
                return None
            side.block = None
            return self._decode_block(side, 0, _ROLE_REQUEST, frame.fragment, None, seq,
                                      findings)
        stream = self.streams.get(sid) or self._lookup(sid, direction)
        if stream.presumed_closed and (sid % 2 == 1) == (direction is C2S):
            # An id below the highest in use, never seen: a new stream opened
            # out of order (§5.1.1), not trailers on an old one.
            stream = Stream(sid)
        role = self._headers_role(stream, direction, frame, seq, findings)
        priority = frame.priority
        if priority is not None:
            self._apply_priority(sid, priority.depends_on, priority.weight, priority.exclusive,
                                 seq, findings)
        opens = stream.state is _IDLE and sid
        if opens:
            self._open_stream(side, stream, seq, findings)
        elif stream.state is _RESERVED and direction is S2C:
            # The pushed response starts: reserved streams do not count, an open one does.
            self._check_concurrency(side, sid, seq, findings, pushed=True)
        if not (opens and direction is S2C):
            # (a server's HEADERS start no stream it did not reserve, §5.1: its block is decoded, as
            # the client's decoder reads it, but no stream comes of it, so the
            # client's own request on that id later is a request, not trailers)
            new, problem = transition(stream.state, _HEADERS, bool(frame.flags & 0x1),
                                      direction)
            if problem:
                said = self._state_finding(stream, direction, problem, seq)
                if said is not None:
                    findings.append(said)
            self._set_state(stream, new, direction, seq, t)
            if not frame.flags & 0x1 and not problem:
                window = stream.send_window[direction]
                if window <= 0 and stream.stalled_since[direction] is None \
                        and new is not _CLOSED:
                    # A body announced with no window to send it in (an
                    # INITIAL_WINDOW_SIZE of 0): the sender waits from here.
                    self._stall(stream, direction, t, seq, window)
        if not frame.flags & 0x4:
            side.block = HeaderBlockInProgress(sid, role, [frame.fragment], None, seq,
                                               len(frame.fragment))
            return None
        side.block = None
        return self._decode_block(side, sid, role, frame.fragment, None, seq, findings)

    @staticmethod
    def _no_content_length(headers: tuple[tuple[str, str], ...], status: int, seq: int,
                           sid: int, findings: list[Finding],
                           where: str = "a 1xx or 204 response") -> None:
        """RFC 9110 §8.6: no content-length in a 1xx or 204 response, nor in a 2xx
        response to CONNECT."""
        value = header_value(headers, "content-length")
        if value is not None:
            findings.append(_f("content-length-forbidden", Severity.WARNING, "RFC 9110 §8.6",
                               f"a {status} response carries content-length: {value}; a server "
                               f"must not send it in {where}", seq, sid))

    def _headers_role(self, stream: Stream, direction: Direction, frame: HeadersFrame, seq: int,
                      findings: list[Finding]) -> BlockRole:
        if direction is C2S:
            if stream.state is _IDLE:
                self.sides[C2S].reused_block = False
                return _ROLE_REQUEST
            reused = self.sides[C2S].reused_block = \
                (stream.state is _CLOSED and not stream.presumed_closed) \
                or stream.state is _HALF_CLOSED_CLIENT
            if reused:
                # The client ended this stream already: not trailers (they come before
                # END_STREAM) but a request reusing its id; the state finding says so.
                return _ROLE_REQUEST
            if not frame.end_stream:
                findings.append(_f("trailers-without-end-stream", Severity.ERROR,
                                   "RFC 9113 §8.1",
                                   "a second HEADERS from the client without END_STREAM",
                                   seq, stream.stream_id))
            return _ROLE_TRAILERS
        if stream.response_headers is None:
            return _ROLE_RESPONSE
        if not frame.end_stream:
            findings.append(_f("trailers-without-end-stream", Severity.ERROR, "RFC 9113 §8.1",
                               "a HEADERS after the final response without END_STREAM",
                               seq, stream.stream_id))
        return _ROLE_TRAILERS

    def _push_promise(self, side: Side, frame: PushPromiseFrame, seq: int, t: float,
                      findings: list[Finding]) -> HeaderBlockInProgress:
        sid, promised = frame.stream_id, frame.promised_stream_id
        if side.direction is C2S:
            findings.append(_f("push-from-client", Severity.ERROR, "RFC 9113 §8.4",
                               "the client sent PUSH_PROMISE; only servers push", seq, sid))
        elif not self.sides[C2S].advertised[_ENABLE_PUSH]:
            findings.append(_f("push-disabled", Severity.ERROR, "RFC 9113 §6.5.2",
                               "PUSH_PROMISE after the client set SETTINGS_ENABLE_PUSH to 0",
                               seq, sid))
        assoc = self.streams.get(sid)
        reset = self.closed.get(sid) if assoc is None else None
        if side.direction is S2C and reset is not None and reset.reset_by is C2S:
            # RFC 9113 §6.6: a client that reset the stream must handle the
            # PUSH_PROMISEs sent before its RST_STREAM arrived (in flight: info), and
            # §5.1 has the promised stream reserved all the same.
            said = self._state_finding(reset, S2C, "PUSH_PROMISE on a closed stream", seq)
            if said is not None:
                findings.append(said)
        elif side.direction is S2C and (assoc is None or sender_finished(assoc.state, S2C)):
            # (a client's is push-from-client: whether its stream is open for the
            # server says nothing more)
            findings.append(_f("push-on-closed-stream", Severity.ERROR, "RFC 9113 §6.6",
                               f"PUSH_PROMISE on stream {sid}, which is not open for the server",
                               seq, sid))
        pushed = self.streams.get(promised) or self._lookup(promised)
        if side.direction is C2S:
            pass  # (flagged above; the client's own stream ids are not the server's)
        elif promised % 2 or promised <= side.highest_stream_id:
            findings.append(_f("stream-id-order" if promised % 2 == 0 else "stream-id-parity",
                               Severity.ERROR, "RFC 9113 §5.1.1",
                               f"promised stream {promised} is odd or not above "
                               f"{side.highest_stream_id}", seq, promised))
        else:
            side.highest_stream_id = promised
        if pushed.state is _IDLE and side.direction is S2C:
            # (a client's promise reserves nothing: no server takes it, RFC 9113 §8.4)
            pushed.promised_by = sid
            pushed.opened_by = S2C
            self._init_windows(pushed)
            if promised != sid:  # (a stream promising itself is flagged above)
                self.priority.set(promised, sid, 16, False)  # RFC 7540 §5.3.5 default
            self._set_state(pushed, _RESERVED, side.direction, seq, t)
        return HeaderBlockInProgress(sid, _ROLE_PUSH_REQUEST, [frame.fragment], promised, seq,
                                     len(frame.fragment))

    def _decode_block(self, side: Side, block_sid: int, role: BlockRole, data: bytes,
                      promised: int | None, seq: int,
                      findings: list[Finding]) -> tuple[HeaderBlock | None, int | None]:
        """Decode a complete header block sent on ``block_sid`` and apply it."""
        if side.hpack_broken:
            return None, promised
        try:
            block = side.decoder.decode(data)
        except HpackDecodeError as exc:
            side.hpack_broken = True
            if side.lost_above is not None:  # (a lost block may have changed the table)
                findings.append(_f("hpack-error", Severity.INFO, _hpack_rfc(exc),
                                   f"header block on stream {block_sid} does not decode: "
                                   f"{exc.reason}; part of the connection was lost before "
                                   f"it (damaged or missing bytes), and with it the "
                                   f"{side.direction.sender}'s HPACK table, so this is not "
                                   "evidence of an encoder bug; later blocks from the "
                                   f"{side.direction.sender} cannot be decoded", seq, block_sid))
                return None, promised
            findings.append(_f("hpack-error", Severity.ERROR, _hpack_rfc(exc),
                               f"header block on stream {block_sid} does not decode: "
                               f"{exc.reason} (at byte {exc.offset} of the header block); "
                               f"later blocks from the {side.direction.sender} cannot be "
                               f"decoded (COMPRESSION_ERROR){decoded_before(exc)}",
                               seq, block_sid))
            return None, promised
        if data and data[0] & 0xE0 == 0x20:  # (rare: the block opens with a size update)
            size_updates(block, block_sid, seq, findings)
        late = side.decoder.late_update
        if late is not None:
            findings.append(_f(
                "hpack-error", Severity.ERROR, "RFC 7541 §4.2, RFC 9113 §4.3",
                f"header block on stream {block_sid}: a dynamic table size update after the "
                f"first header field (at byte {late} of the header block), which the "
                f"receiver must treat as a decoding error (COMPRESSION_ERROR); decoded as a "
                f"receiver that applies it does, and the {side.direction.sender}'s later "
                "blocks with it", seq, block_sid))
        if block_sid == 0:
            return block, promised  # (on stream 0: decoded, nothing to check it against)
        sid = promised if promised is not None else block_sid
        headers = block.headers
        checked = side.checked
        known = checked.get(id(block))
        if known is not None and known[0] is block and known[1] is role:
            # The same block, in the same role: clean.
            length, status, grpc = known[2], known[3], known[4]
        else:
            if role is _ROLE_RESPONSE or role is _ROLE_TRAILERS:
                fields = dict(headers)  # one C-speed pass for the lookups below
                said = fields.get("content-length")
                length = length_of(said)
                ctype = fields.get("content-type", "")
                # (gRPC-Web carries its status in the body, in a trailers frame)
                call = grpc_call_type(ctype)
                grpc = (_GRPC_CALL_STATUS if call else _GRPC_STATUS) if "grpc-status" in \
                    fields else _GRPC_NO_STATUS if call else _NOT_GRPC
            else:
                said = header_value(headers, "content-length")
                length = length_of(said)
                grpc = _GRPC_REQUEST if role is _ROLE_REQUEST and _grpc_request(headers) \
                    else _NOT_GRPC
                fields = None
            status = status_of(headers) if role is _ROLE_RESPONSE else None
            problems = check_fields(headers, role, seq=seq, stream_id=sid,
                                    connect_protocol=self.sides[S2C].connect_protocol,
                                    true_binary=self.sides[1 - side.direction].true_binary)
            if said is not None:  # (rare: most messages have none, or one number)
                conflict = length_conflict(headers) if length < 0 or fields is None or \
                    len(fields) != len(headers) else None  # (a name repeated)
                if conflict:
                    length = -1  # (no body check against numbers that disagree)
                    problems = [*problems, _f(
                        "content-length-conflict", Severity.ERROR, "RFC 9110 §8.6, RFC 9113 "
                        "§8.1.1", f"the content-length fields on stream {sid} disagree "
                        f"({conflict}): the message is malformed, and its body is not "
                        "checked against them", seq, sid)]
                elif length < 0:
                    problems = [*problems, _f(
                        "content-length-invalid", Severity.ERROR, "RFC 9110 §8.6, RFC 9113 "
                        "§8.1.1", f"content-length {said!r} on stream {sid} is not a number "
                        "(digits only): the message is malformed, and a peer resets the "
                        "stream (PROTOCOL_ERROR) instead of reading it", seq, sid)]
            if problems and role is _ROLE_REQUEST and side.reused_block:
                pass  # (its receiver resets it, STREAM_CLOSED, without reading the fields:
                # the state finding says what is wrong; not cached as clean either)
            elif problems:
                findings.extend(problems)
            else:
                if len(checked) >= _CHECKED_MAX:
                    checked.clear()
                checked[id(block)] = (block, role, length, status, grpc)
        receiver = self.sides[1 - side.direction]
        limit = receiver.advertised[_MAX_HEADER_LIST_SIZE]
        if block.decoded_size > limit or receiver.pending:
            _header_list_size(receiver, block.decoded_size, limit, seq, sid, findings)
        if block.decoded_size > SHOWN_LIST_SIZE and \
                block.decoded_size > _AMPLIFIED * block.wire_length:
            findings.append(_f("header-list-amplified", Severity.WARNING,
                               "RFC 7541 §7.3, RFC 9113 §10.5.1",
                               f"a header block of {block.wire_length:,} bytes decodes to "
                               f"{block.decoded_size:,} bytes of fields "
                               f"(×{block.decoded_size // max(1, block.wire_length):,}): "
                               "table entries indexed again and again, which a receiver must "
                               "bound; h2scope's outputs show the first "
                               f"{SHOWN_LIST_SIZE // 1024} KiB of it", seq, sid))
        stream = self.stream(sid)
        if stream is not None:
            direction = side.direction
            if (role is _ROLE_REQUEST or role is _ROLE_PUSH_REQUEST) and not (
                    stream.state is _HALF_CLOSED_CLIENT and stream.request_headers is not None):
                # (a request reusing the id of one still answered: the stream keeps
                # the request its response is for)
                stream.request_headers = headers
                stream.request_seq = seq
                if role is _ROLE_REQUEST:
                    stream.content_length[C2S] = length
                    if grpc == _GRPC_REQUEST:
                        stream.grpc_call = True
                prio = header_value(headers, "priority")
                if prio is not None:
                    self._apply_rfc9218(stream, prio, seq, findings)
            elif role is _ROLE_RESPONSE:
                if stream.request_seq > side.read_up_to and stream.opened_by is not direction:
                    side.read_up_to = stream.request_seq  # (it answers that request)
                if status is not None and (status < 200 or status == 204):
                    self._no_content_length(headers, status, seq, sid, findings)
                if status is not None and 100 <= status < 200:
                    stream.informational.append(headers)
                    if status == 101:
                        findings.append(_f("status-101", Severity.ERROR, "RFC 9113 §8.6",
                                           "101 (Switching Protocols) is not allowed in HTTP/2",
                                           seq, sid))
                    if promised is None and status != 101 and \
                            sender_finished(stream.state, direction):
                        findings.append(_f(
                            "informational-end-stream", Severity.ERROR, "RFC 9113 §8.1",
                            f"the HEADERS of a {status} (informational) response end stream "
                            f"{sid}: a final response must follow, so the stream is "
                            "malformed (§8.1.1)", seq, sid))
                    return block, promised
                stream.response_headers = headers
                # RFC 9110 §6.4.1: a response to HEAD, a 204 and a 304 have no content
                # (in a response to HEAD and in a 304, content-length is the size the
                # full response would have had, RFC 9110 §8.6).
                method = (header_value(stream.request_headers, ":method")
                          if stream.request_headers is not None else None)
                if method == "HEAD" or status == 304 or status == 204:
                    stream.content_length[S2C] = NO_CONTENT
                elif method == "CONNECT" and status is not None and 200 <= status < 300:
                    # A tunnel: its DATA is the tunnelled bytes, whose length no field says.
                    self._no_content_length(headers, status, seq, sid, findings,
                                            "a 2xx response to CONNECT (the tunnel that "
                                            "follows has no length)")
                    stream.content_length[S2C] = -1
                    stream.websocket = accepted(stream.request_headers, headers)
                else:
                    stream.content_length[S2C] = length
                ended = promised is None and sender_finished(stream.state, direction)
                if grpc == _NOT_GRPC and stream.grpc_call:
                    # A gRPC call answered by something else (a load balancer's 503
                    # text/plain): the client fails it just the same.
                    grpc = _GRPC_NO_STATUS
                if grpc == _GRPC_NO_STATUS:
                    stream.grpc_pending = True  # its grpc-status must come in trailers
                    if ended:
                        findings.append(grpc_status_missing(
                            sid, "with its HEADERS", seq, http_status=status,
                            content_type=header_value(headers, "content-type")))
                elif grpc == _GRPC_CALL_STATUS:
                    if not ended and promised is None:
                        # Not a Trailers-Only response: the status must come in trailers.
                        stream.grpc_pending = True
                    else:
                        bad = grpc_status_invalid(sid, header_value(headers, "grpc-status")
                                                  or "", seq)
                        if bad is not None:
                            findings.append(bad)
            else:
                stream.trailers[direction] = headers
                if stream.grpc_pending and direction is S2C:
                    stream.grpc_pending = False
                    if grpc != _GRPC_STATUS and grpc != _GRPC_CALL_STATUS:
                        response = stream.response_headers or ()
                        findings.append(grpc_status_missing(
                            sid, "with trailers", seq, http_status=status_of(response),
                            early=_early_grpc_status(stream),
                            content_type=header_value(response, "content-type")))
                    else:
                        bad = grpc_status_invalid(sid, header_value(headers, "grpc-status")
                                                  or "", seq)
                        if bad is not None:
                            findings.append(bad)
            if promised is None and sender_finished(stream.state, direction):
                self._body_ended(stream, direction, seq, findings)  # END_STREAM on this block
        return block, promised
