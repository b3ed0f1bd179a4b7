"""What a headless run saw, in a few lines at its end, and whether it should fail.

:class:`RunSummary` is an event-bus sink beside the headless printer. It
counts connections by protocol, frames by direction, streams, resets by error
code, the observer's findings by (severity, code, RFC section) with where each
was first seen, and the proxy's own errors by stage; for a stall hunt, the
flow-control stalls (the longest, and those never resumed: the classic hang)
and the slowest streams, with their requests (tunnels — CONNECT streams, a
WebSocket over HTTP/2 among them — are counted apart: a tunnel's lifetime is not
latency), and WebSockets over HTTP/2 and HTTP/1.1. When the proxy stops,
``h2scope run --headless`` prints :meth:`RunSummary.lines` on stderr, and with
``--fail-on SEVERITY`` exits with status 3 if a finding of that severity or
worse was seen: a proxy in front of a server in CI fails the job on a
protocol violation.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from proxy.events import (
    Batch,
    ConnectionClosed,
    ConnectionOpened,
    H2cUpgraded,
    ProxyErrorRaised,
    RelayStarted,
)
from proxy.observe.describe import (
    at_deadline,
    block_summary,
    duration_ms,
    grpc_code_name,
    grpc_reset_status,
    grpc_timeout_ms,
)
from proxy.observe.enums import Direction, error_name
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
    StreamStateChanged,
)
from proxy.observe.findings import Finding, Severity
from proxy.observe.frames import GoAwayFrame, RstStreamFrame
from proxy.observe.hpack_annotated import HeaderBlock
from proxy.websocket import is_websocket
from proxy.words import count

log = logging.getLogger("h2scope.summary")

EXIT_FINDINGS = 3
"""``run --headless --fail-on``: a finding at or above the severity was seen."""
_C2S, _S2C = Direction.C2S, Direction.S2C
SLOWEST = 3
"""Streams the summary names as the slowest."""
NOT_RELAYED = "not relayed"
"""The protocol a connection counts under when it ended before relaying anything
(refused, a failed handshake, the CA page)."""
_MAX_OPEN = 100_000
"""Open streams whose start the summary remembers (bounded: a flood of streams
that never close must not grow a long run's memory)."""
_REFUSED = frozenset({"stream-id-order", "stream-id-parity", "server-opened-stream"})
"""Findings of a stream opened against RFC 9113 §5.1.1 or §8.4: not among the slowest."""
_POST = (":method", "POST")
_CONNECT = (":method", "CONNECT")


@dataclass(slots=True)
class FindingGroup:
    """The findings of one (severity, code, RFC section): how many, and the first."""

    severity: Severity
    code: str
    rfc: str
    count: int
    where: str
    """The first occurrence: ``#3 stream 5``."""
    message: str
    first_row: int | None = None
    """The UI's timeline row of the first occurrence (None: not a frame's)."""
    sender: str | None = None
    """Whose bytes the findings are about (``client``/``server``: the frame's sender,
    or the side a connection-level finding names); None when not told."""
    seq: int | None = None
    """The first occurrence's frame number in its connection (a connection-level
    finding's points back to a frame, when it has one: where a stall began)."""


class FindingTally:
    """Findings grouped by (severity, code, RFC section, sender): the headless summary,
    ``check`` and the UI's findings view count them the same way."""

    def __init__(self) -> None:
        self._groups: dict[tuple[Severity, str, str, str | None], FindingGroup] = {}

    def __bool__(self) -> bool:
        return bool(self._groups)

    def add(self, f: Finding, where: str, row: int | None = None,
            sender: str | None = None) -> None:
        key = (f.severity, f.code, f.rfc, sender)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = FindingGroup(f.severity, f.code, f.rfc, 1, where, f.message,
                                             row, sender, f.seq)
        else:
            group.count += 1

    def groups(self) -> list[FindingGroup]:
        """Most severe first, then most frequent, then in the order first seen."""
        return sorted(self._groups.values(), key=lambda g: (-g.severity, -g.count))

    def worst(self) -> Severity | None:
        return max((g.severity for g in self._groups.values()), default=None)


class Upgrade(NamedTuple):
    """Stream 1 of an h2c upgrade: the request that asked for it, which came as
    HTTP/1.1, not in a header block (RFC 7540 §3.2)."""

    headers: tuple[tuple[str, str], ...]


Request = HeaderBlock | Upgrade
"""What the summary keeps of a stream's request: its header list."""


class RunSummary:
    """Bus sink: counts for the end-of-run summary (never blocks the relay)."""

    def __init__(self) -> None:
        self.connections = 0
        self.protocols: Counter[str] = Counter()
        self._protocol_of: dict[int, str] = {}
        self.grpc: Counter[str] = Counter()
        """gRPC calls by the status they ended with (OK, UNAVAILABLE, ...)."""
        self._grpc_seen: dict[int, tuple[HeaderBlock, str | None]] = {}
        self._grpc_answered: set[tuple[int, int]] = set()
        """Open calls whose grpc-status came (bounded as the open streams are)."""
        self._grpc_unanswered: dict[tuple[int, int], tuple[float, float | None]] = {}
        """Calls closed without a grpc-status in this batch, for the reset after it:
        when each began and its grpc-timeout (ms)."""
        self._grpc_settled: dict[tuple[int, int], str | None] = {}
        """Calls counted lately: the status a server sent (None: a reset ended the
        call first, and a status after it is not counted again). A client's error
        reset after the status changes what the call ended as. Bounded."""
        self.frames = [0, 0]
        """HTTP/2 frames by direction (index: Direction)."""
        self.hpack_wire = [0, 0]
        """Header block bytes on the wire, by sender (client, server)."""
        self.hpack_fields = [0, 0]
        """The names and values those blocks carry (RFC 7541 size less 32 a field)."""
        self.streams = 0
        self.resets: Counter[str] = Counter()
        self.goaways: dict[tuple[str, str, bytes], list[int]] = {}
        """GOAWAYs by (sender, error code, debug data): [count, first connection,
        its last-stream-id] (a server's too_many_pings, a drain's NO_ERROR)."""
        self.findings = FindingTally()
        self.errors: Counter[str] = Counter()
        self.stalls = 0
        self.longest_stall: tuple[float, int, int, Direction] | None = None
        """(seconds, connection, stream, direction of the data) of the longest stall."""
        self._stalled: dict[tuple[int, int, Direction], float] = {}
        self._stall_began: dict[tuple[int, int, Direction], int] = {}
        """The frame that began each stall not resumed (kept for those that never are)."""
        self._closed_stalled: dict[tuple[int, int, Direction], float] = {}
        """Stalls of streams that closed in the batch at hand (its RST may follow)."""
        self.unresumed: list[tuple[int, int, Direction, float, float, str]] = []
        """Stalls that never resumed: (connection, stream, direction of the data, since,
        until, how they ended)."""
        self.slowest: list[tuple[float, int, int, Request | None]] = []
        """The slowest streams: (seconds open, connection, stream, request block),
        longest first."""
        self._open: dict[tuple[int, int], float] = {}
        """Open streams: when they opened."""
        self._open_in: dict[int, int] = {}
        """Per connection: how many of its streams are open (none: nothing can wait on
        its connection window)."""
        self._last_closed: dict[int, int] = {}
        """Per connection, in the batch at hand: the stream whose close ended its
        connection window's stall (an RST_STREAM of it may follow)."""
        self._requests: dict[tuple[int, int], Request] = {}
        """Open streams: the request's header block (the first the client sent)."""
        self._slowest_floor = -1.0
        self.tunnels = 0
        """CONNECT streams, plain and extended (RFC 9113 §8.5, RFC 8441): not among the
        slowest streams (a tunnel's lifetime is not latency), counted apart."""
        self.websockets = 0
        """Extended CONNECTs for a WebSocket answered 2xx (RFC 8441)."""
        self.longest_tunnel: tuple[float, int, int, Request | None] | None = None
        """(seconds open, connection, stream, request) of the longest tunnel that ended."""
        self._tunnels: dict[tuple[int, int], bool] = {}
        """Open tunnels: whether each asked for a WebSocket (until its response)."""
        self._slow_reset: dict[tuple[int, int], str] = {}
        """Of the slowest streams, those a reset ended, and how."""
        self.last_t = 0.0
        self.missed = 0
        """Batches an internal error kept from being counted (see :meth:`handle`)."""
        self._no_preface: set[int] = set()
        """Connections whose client sent no preface after an h2c upgrade's 101: no
        HTTP/2 endpoint there owed a window."""
        self._ended_by_reset: dict[tuple[int, int, Direction], tuple[Direction, str]] = {}
        """Stalls a RST_STREAM of their own stream ended: who reset it, with what code
        (NO_ERROR from the receiver of the stalled data is no hang)."""
        self._updates_while_stalled: dict[tuple[int, int, Direction], int] = {}
        """WINDOW_UPDATEs that came for a stalled window and left it at 0 or below."""

    def handle_many(self, batches: Sequence[Batch]) -> None:
        for batch in batches:
            self.handle(batch)

    def handle(self, batch: Batch) -> None:
        """Count one batch. An internal error (a bug) loses that batch's counts, not
        the rest of the run's: it is logged with its connection, counted in
        :attr:`missed`, and the summary says it is incomplete."""
        try:
            self._handle(batch)
        except Exception:
            if not self.missed:
                log.exception("the run summary could not count a batch of connection #%d; "
                              "the summary will say it is incomplete", batch.conn_id)
            self.missed += 1

    def _handle(self, batch: Batch) -> None:
        events: Sequence[Any] = batch.events  # dispatched on the exact type below
        conn = batch.conn_id
        self.last_t = batch.t
        if batch.protocol is not None and conn not in self._protocol_of:
            # (an HTTP/1.1 relay announces no RelayStarted: its chunks say what it is)
            self._protocol_of[conn] = batch.protocol
            self.protocols[batch.protocol] += 1
        if self._grpc_unanswered:
            self._grpc_flush()
        if self._closed_stalled:
            # Ended by the blocked side's own END_STREAM (no reset followed): its
            # window was spent exactly and nothing was waiting — not a stall.
            self.stalls -= len(self._closed_stalled)
            self._closed_stalled.clear()
            self._last_closed.clear()
        for ev in events:
            kind = type(ev)
            if kind is FrameObserved:
                self.frames[ev.direction] += 1
                if type(ev.frame) is RstStreamFrame:  # (a malformed one is not a reset)
                    code = error_name(ev.frame.error_code)
                    self.resets[code] += 1
                    self._grpc_reset(conn, ev.frame.stream_id, ev.frame.error_code,
                                     ev.direction, ev.t)
                    if any(e[1] == conn and e[2] == ev.frame.stream_id for e in self.slowest):
                        # (its close, just before: slow because it was given up on)
                        self._slow_reset.setdefault(
                            (conn, ev.frame.stream_id),
                            f"reset {code} by the {ev.direction.sender}")
                    if self._stalled or self._closed_stalled:
                        self._reset_while_stalled(conn, ev.frame.stream_id, ev.direction, code,
                                                  ev.t)
                elif type(ev.frame) is GoAwayFrame:
                    self._goaway(conn, ev.frame, ev.direction)
                elif self._stalled and ev.frame.type == 8:  # WINDOW_UPDATE
                    waiting = (conn, ev.frame.stream_id, _S2C if ev.direction is _C2S else _C2S)
                    if waiting in self._stalled:  # (one too small to reopen the window)
                        self._updates_while_stalled[waiting] = \
                            self._updates_while_stalled.get(waiting, 0) + 1
                elif ev.block is not None:
                    block = ev.block
                    d = int(ev.direction)
                    self.hpack_wire[d] += block.wire_length
                    self.hpack_fields[d] += block.decoded_size - 32 * len(block.headers)
                    if ev.direction is _C2S:
                        key = (conn, ev.frame.stream_id)
                        if key not in self._requests and len(self._requests) < _MAX_OPEN:
                            self._requests[key] = ev.block
                            if _CONNECT in block.headers:  # (C speed)
                                self.tunnels += 1
                                self._tunnels[key] = is_websocket(block.headers)
                    elif self._tunnels and (conn, ev.frame.stream_id) in self._tunnels:
                        websocket = self._tunnels.pop((conn, ev.frame.stream_id))
                        status = next((v for n, v in block.headers if n == ":status"), "")
                        if status[:1] == "1":  # (an informational response: wait on)
                            self._tunnels[(conn, ev.frame.stream_id)] = websocket
                        elif websocket and status[:1] == "2":
                            self.websockets += 1
                    elif (conn, ev.frame.stream_id) in self._grpc_settled:
                        pass  # (a status after the call's reset: its client had given up)
                    elif self._grpc_outcome(ev.block, (conn, ev.frame.stream_id)):
                        key = (conn, ev.frame.stream_id)
                        # (its END_STREAM closed the stream just before: the close came
                        # first in the batch)
                        if self._grpc_unanswered.pop(key, None) is None:
                            self._grpc_answered.add(key)
                for f in ev.findings:
                    self._finding(conn, f, ev.direction)
                    if f.code in _REFUSED:  # (its peer owes it nothing: no hung request)
                        self._open.pop((conn, ev.frame.stream_id), None)
            elif kind is StreamStateChanged:
                if ev.old == "idle":  # opened by HEADERS, or reserved by a PUSH_PROMISE
                    self.streams += 1
                    if len(self._open) < _MAX_OPEN:
                        self._open[(conn, ev.stream_id)] = ev.t
                    if ev.new != "closed":
                        self._open_in[conn] = self._open_in.get(conn, 0) + 1
                elif ev.new == "closed":
                    left = self._open_in[conn] = self._open_in.get(conn, 1) - 1
                    if not left:
                        del self._open_in[conn]
                    key = (conn, ev.stream_id)
                    start = self._open.pop(key, None)
                    request = self._requests.pop(key, None)
                    if request is not None and _POST in request.headers:  # (C speed;
                        self._grpc_closed(key, request, start)  # gRPC calls are POSTs)
                    if self._stalled:
                        self._stream_closed(conn, ev.stream_id)
                    if request is not None and _CONNECT in request.headers:
                        self._tunnels.pop(key, None)
                        if start is not None:
                            self._tunnel_ended(ev.t - start, conn, ev.stream_id, request)
                    elif start is not None and ev.t - start > self._slowest_floor:
                        self._slow(ev.t - start, conn, ev.stream_id, request)
            elif kind is FlowControlStalled:
                self.stalls += 1
                self._stalled[(conn, ev.stream_id, ev.direction)] = ev.t
                self._stall_began[(conn, ev.stream_id, ev.direction)] = ev.seq
            elif kind is FlowControlResumed:
                self._stalled.pop((conn, ev.stream_id, ev.direction), None)
                self._stall_began.pop((conn, ev.stream_id, ev.direction), None)
                self._updates_while_stalled.pop((conn, ev.stream_id, ev.direction), None)
                longest = self.longest_stall
                if longest is None or ev.stalled_for > longest[0]:
                    self.longest_stall = (ev.stalled_for, conn, ev.stream_id, ev.direction)
            elif kind is ConnectionClosed:
                if conn not in self._protocol_of:
                    self.protocols[NOT_RELAYED] += 1  # it ended before relaying anything
                self.connection_closed(conn, ev.t)
            elif kind is ConnectionOpened:
                self.connections += 1
            elif kind is H2cUpgraded:
                self.upgraded(conn, ev.request_headers)
            elif kind is RelayStarted:
                # A connection relayed as http/1.1, then h2c or a WebSocket after its
                # 101: counted once, under what it became.
                before = self._protocol_of.get(conn)
                if before is not None:
                    self.protocols[before] -= 1
                    if not self.protocols[before]:
                        del self.protocols[before]
                self._protocol_of[conn] = ev.protocol
                self.protocols[ev.protocol] += 1
            elif kind is ProxyErrorRaised:
                self.errors[ev.stage] += 1
            elif kind is ConnectionFindingRaised or kind is Desynced:
                self._finding(batch.conn_id, ev.finding, ev.direction)
                if ev.finding.code == "preface-missing" and len(self._no_preface) < _MAX_OPEN:
                    self._no_preface.add(batch.conn_id)

    def upgraded(self, conn: int, request: tuple[tuple[str, str], ...]) -> None:
        """Connection ``conn`` switched to h2c: its stream 1 is ``request``."""
        if len(self._requests) < _MAX_OPEN:
            self._requests[(conn, 1)] = Upgrade(request)

    def _stream_closed(self, conn: int, sid: int) -> None:
        for direction in (_C2S, _S2C):
            # Closed by the blocked side's END_STREAM, its window spent exactly: no
            # hang. Or by an RST_STREAM, whose frame event follows in this batch.
            since = self._stalled.pop((conn, sid, direction), None)
            if since is not None:
                self._closed_stalled[(conn, sid, direction)] = since
            if conn not in self._open_in:
                # Its last open stream closed: nothing waits on the connection window
                # any more (a download whose last DATA spent it exactly, then ended
                # with an empty one). The same as a stream's own: unless a reset
                # follows, not a stall.
                since = self._stalled.pop((conn, 0, direction), None)
                if since is not None:
                    self._closed_stalled[(conn, 0, direction)] = since
                    self._last_closed[conn] = sid

    def _tunnel_ended(self, took: float, conn: int, sid: int, request: Request | None) -> None:
        longest = self.longest_tunnel
        if longest is None or took > longest[0]:
            self.longest_tunnel = (took, conn, sid, request)

    def _slow(self, took: float, conn: int, sid: int, request: Request | None) -> None:
        slowest = self.slowest
        slowest.append((took, conn, sid, request))
        slowest.sort(key=lambda s: -s[0])
        del slowest[SLOWEST:]
        if len(slowest) == SLOWEST:
            self._slowest_floor = slowest[-1][0]

    def _reset_while_stalled(self, conn: int, sid: int, by: Direction, code: str,
                             t: float) -> None:
        for direction in (Direction.C2S, Direction.S2C):
            key = (conn, sid, direction)
            since = self._stalled.pop(key, None)
            if since is None:
                since = self._closed_stalled.pop(key, None)
            if since is not None:
                self.unresumed.append((conn, sid, direction, since, t,
                                       f"until the {by.sender} reset the stream ({code})"))
                self._ended_by_reset[(conn, sid, direction)] = (by, code)
            if self._last_closed.get(conn) == sid:  # (the connection window's wait too)
                since = self._closed_stalled.pop((conn, 0, direction), None)
                if since is not None:
                    self.unresumed.append((conn, 0, direction, since, t,
                                           f"until the {by.sender} reset stream {sid}, the "
                                           f"last that waited ({code})"))

    def _goaway(self, conn: int, frame: GoAwayFrame, by: Direction) -> None:
        key = (by.sender, error_name(frame.error_code), bytes(frame.debug_data[:200]))
        seen = self.goaways.get(key)
        if seen is not None:
            seen[0] += 1
        elif len(self.goaways) < 100:
            self.goaways[key] = [1, conn, frame.last_stream_id]

    def _goaway_lines(self) -> list[str]:
        return [f"  {who} {code}" + (f" {_debug(debug)}" if debug else "")
                + f" ×{n}, first #{conn} (last stream {last})"
                + (_TOO_MANY_PINGS if debug == b"too_many_pings" else "")
                for (who, code, debug), (n, conn, last) in sorted(
                    self.goaways.items(), key=lambda kv: -kv[1][0])]

    def _grpc_reset(self, conn: int, sid: int, error_code: int, by: Direction,
                    t: float) -> None:
        """A call reset before its grpc-status (a deadline's CANCEL) is a call too (its
        stream's close, in the same batch, came before this), ending with the status
        gRPC gives that reset; a client's error reset just after the server's status
        (grpc-core refusing a message over its limit) is what the client saw."""
        key = (conn, sid)
        code = error_name(error_code)
        unanswered = self._grpc_unanswered.pop(key, None)
        if unanswered is not None:
            began, timeout = unanswered
            if by is _C2S and error_code == 0x8 and timeout is not None and \
                    at_deadline((t - began) * 1000, timeout):
                label = f"DEADLINE_EXCEEDED (the client's {duration_ms(timeout)} deadline: reset " \
                    "CANCEL before any grpc-status)"
            else:
                label = f"{grpc_reset_status(error_code)} (reset {code} by the {by.sender} " \
                    "before any grpc-status)"
            self.grpc[label] += 1
            self._settle(key, None)
            return
        sent = self._grpc_settled.get(key)
        if sent is not None and by is _C2S and error_code not in (0x0, 0x8):
            self._grpc_settled[key] = None
            self.grpc[sent] -= 1
            if not self.grpc[sent]:
                del self.grpc[sent]
            self.grpc[f"{grpc_reset_status(error_code)} at the client ({sent} from the "
                      f"server, then reset {code} by the client)"] += 1

    def _settle(self, key: tuple[int, int], status: str | None) -> None:
        if len(self._grpc_settled) >= 1024:
            self._grpc_settled.clear()
        self._grpc_settled[key] = status

    def _grpc_flush(self) -> None:
        """Calls closed with no grpc-status, and no reset said why."""
        self.grpc["no status"] += len(self._grpc_unanswered)
        self._grpc_unanswered.clear()

    def _grpc_closed(self, key: tuple[int, int], request: Request,
                     began: float | None) -> None:
        """A stream closed: a gRPC call with no grpc-status waits for its reset (next
        in the batch) to say why; without one it counts as 'no status'."""
        if key in self._grpc_answered:
            self._grpc_answered.discard(key)
        elif key in self._grpc_settled:
            pass
        elif any(n == "content-type" and v.startswith("application/grpc")
                 for n, v in request.headers):
            timeout = next((grpc_timeout_ms(v) for n, v in request.headers
                            if n == "grpc-timeout"), None)
            self._grpc_unanswered[key] = (began if began is not None else 0.0, timeout)

    def _grpc_outcome(self, block: HeaderBlock, key: tuple[int, int]) -> bool:
        """Count a gRPC call's status (trailers, or a Trailers-Only response); whether
        there was one. A repeated block is the same object (the observer's memo):
        looked up once."""
        hit = self._grpc_seen.get(id(block))
        if hit is None or hit[0] is not block:
            code = next((v for n, v in block.headers if n == "grpc-status"), None)
            if len(self._grpc_seen) >= 1024:
                self._grpc_seen.clear()
            hit = self._grpc_seen[id(block)] = (block, code)
        if hit[1] is not None:
            code = hit[1]
            name = grpc_code_name(code) or f"{code!r} (invalid)"
            self.grpc[name] += 1
            self._settle(key, name)
            return True
        return False

    def connection_closed(self, conn: int, t: float, *, excerpt: bool = False) -> None:
        """Stalls of a connection that ended are over, unresumed; its open streams too —
        and, unfinished, they count among the slowest up to the close (a hung
        stream is the slowest of all) — unless the close is where an ``excerpt``
        ends (an import's source, a cut capture), not the connection."""
        self._open_in.pop(conn, None)
        for stalled in [k for k in self._stalled if k[0] == conn]:
            since = self._stalled.pop(stalled)
            self.unresumed.append((*stalled, since, t, "until the connection closed"))
        for opened in [k for k in self._open if k[0] == conn]:
            start = self._open.pop(opened)
            request = self._requests.get(opened)
            if request is not None and _CONNECT in request.headers:
                self._tunnels.pop(opened, None)
                if not excerpt:
                    self._tunnel_ended(t - start, conn, opened[1], request)
            elif not excerpt and t - start > self._slowest_floor:
                self._slow(t - start, conn, opened[1], self._requests.get(opened))
                self._slow_reset[opened] = "unfinished when the connection closed"
        for requested in [k for k in self._requests if k[0] == conn]:
            del self._requests[requested]
        self._protocol_of.pop(conn, None)

    def _finding(self, conn_id: int, f: Finding, direction: Direction) -> None:
        self.findings.add(f, f"#{conn_id}" + (f" stream {f.stream_id}" if f.stream_id else ""),
                          sender=direction.sender)

    def worst(self) -> Severity | None:
        """The most severe finding seen, or None."""
        return self.findings.worst()

    def lines(self) -> list[str]:
        """The summary, one fact per line, for stderr."""
        if self._grpc_unanswered:
            self._grpc_flush()
        protos = ", ".join(f"{n} {p}" for p, n in self.protocols.most_common())
        out = [f"{self.connections} connection{'s' * (self.connections != 1)}"
               + (f" ({protos})" if protos else "")
               + f", {sum(self.frames):,} HTTP/2 frames ({self.frames[0]:,} → / "
                 f"{self.frames[1]:,} ←), {self.streams:,} stream{'s' * (self.streams != 1)}"]
        if any(self.hpack_wire):
            out.append("HPACK: " + "; ".join(
                f"{who} {wire:,} B on the wire for {fields:,} B of names and values "
                f"({fields / wire:.1f}:1)"
                for who, wire, fields in zip(("client", "server"), self.hpack_wire,
                                             self.hpack_fields, strict=True) if wire))
        if self.missed:
            out.append(f"INCOMPLETE: an internal error kept {self.missed} batch"
                       f"{'es' * (self.missed != 1)} of events from being counted (the log "
                       "has the traceback; please report it)")
        if self.resets:
            out.append("resets: " + ", ".join(f"{code} ×{n}"
                                              for code, n in self.resets.most_common()))
        if self.goaways:
            out.append("goaways:")
            out.extend(self._goaway_lines())
        if not self.findings:
            out.append("findings: none")
        else:
            groups = self.findings.groups()
            by_severity = Counter[Severity]()
            for g in groups:
                by_severity[g.severity] += g.count
            out.append("findings: " + ", ".join(
                count(by_severity[s], s.name.lower(), "info" if s is Severity.INFO else None)
                for s in sorted(by_severity, reverse=True)))
            for g in groups:
                by = f" by the {g.sender}" if g.sender else ""
                out.append(f"  {g.severity.name.lower():<7} {g.code} ({g.rfc}) ×{g.count}{by}, "
                           f"first {g.where}: {g.message}")
        if self.grpc:
            out.append("grpc calls: " + ", ".join(f"{n:,} {name}"
                                                  for name, n in self.grpc.most_common()))
        out.extend(self._stall_lines())
        if self.slowest:
            out.append("slowest streams:")
            for took, conn, sid, request in self.slowest:
                reset = self._slow_reset.get((conn, sid))
                out.append(f"  {_seconds(took):>9}  #{conn} stream {sid}"
                           + (f"  {block_summary(request.headers)}" if request else "")
                           + (f"  ({reset})" if reset else ""))
        if self.tunnels:
            text = f"tunnels: {self.tunnels:,} (websocket {self.websockets:,})"
            if self.longest_tunnel is not None:
                took, conn, sid, request = self.longest_tunnel
                text += (f", longest {_seconds(took)} #{conn} stream {sid}"
                         + (f"  {block_summary(request.headers)}" if request else ""))
            out.append(text)
        upgraded = self.protocols.get("websocket", 0)
        if self.websockets or upgraded:
            out.append("websockets: " + ", ".join(
                f"{n:,} over {how}" for n, how in ((self.websockets, "HTTP/2 (RFC 8441)"),
                                                  (upgraded, "HTTP/1.1")) if n))
        if self.errors:
            out.append("proxy errors: " + ", ".join(f"{stage} ×{n}"
                                                    for stage, n in self.errors.most_common()))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The summary for JSON (``check --json``): the same facts as :meth:`lines`."""
        if self._grpc_unanswered:
            self._grpc_flush()
        stalled = self._never_resumed()
        longest = self._longest()
        return {
            "connections": self.connections,
            "protocols": dict(self.protocols),
            "frames": {"c2s": self.frames[0], "s2c": self.frames[1]},
            "hpack": {who: {"wire_bytes": w, "field_bytes": f}
                      for who, w, f in zip(("client", "server"), self.hpack_wire,
                                           self.hpack_fields, strict=True)},
            "streams": self.streams,
            "resets": dict(self.resets),
            "goaways": [{"by": who, "error": code,
                         "debug": debug.decode("utf-8", "backslashreplace") if debug else None,
                         "count": n,
                         "first_conn": conn, "last_stream_id": last}
                        for (who, code, debug), (n, conn, last) in self.goaways.items()],
            **({"incomplete_batches": self.missed} if self.missed else {}),
            "findings": [{"severity": g.severity.name.lower(), "code": g.code, "rfc": g.rfc,
                          "sender": g.sender, "count": g.count, "first": g.where,
                          "message": g.message}
                         for g in self.findings.groups()],
            "stalls": {
                "count": self._stall_count(),
                "longest": None if longest is None else {
                    "seconds": longest[0], "conn": longest[1], "stream": longest[2],
                    "blocked": longest[3].sender, "resumed": longest[4]},
                "never_resumed": [{"conn": c, "stream": s, "blocked": d.sender,
                                   "seconds": max(0.0, until - since), "until": how,
                                   "since_frame": self._stall_began.get((c, s, d))}
                                  for c, s, d, since, until, how in stalled],
            },
            "slowest_streams": [{"conn": c, "stream": s, "seconds": took,
                                 "request": block_summary(b.headers) if b else None,
                                 "reset": self._slow_reset.get((c, s))}
                                for took, c, s, b in self.slowest],
            "proxy_errors": dict(self.errors),
            "grpc_statuses": dict(self.grpc),
            "tunnels": {
                "count": self.tunnels, "websocket": self.websockets,
                "longest": None if self.longest_tunnel is None else {
                    "seconds": self.longest_tunnel[0], "conn": self.longest_tunnel[1],
                    "stream": self.longest_tunnel[2],
                    "request": block_summary(self.longest_tunnel[3].headers)
                    if self.longest_tunnel[3] else None}},
            "websockets": {"http2": self.websockets,
                           "http1": self.protocols.get("websocket", 0)},
        }

    def _stall_lines(self) -> list[str]:
        count = self._stall_count()
        if not count:
            return []
        text = f"flow control: {count:,} stall{'s' * (count != 1)}"
        longest = self._longest()
        if longest is not None:
            took, conn, sid, direction, resumed = longest
            text += (f", longest {_seconds(took)} ({_where(conn, sid, direction)}"
                     f"{'' if resumed else ', never resumed'})")
        out = [text]
        for conn, sid, direction, since, until, how in self._never_resumed():
            waited = f" for {_seconds(until - since)}" if until >= since else ""
            updates = self._updates_while_stalled.get((conn, sid, direction), 0)
            peer = direction.peer.sender
            why = f"the {peer} sent no WINDOW_UPDATE that reopened it" if not updates else \
                (f"the {peer}'s {updates:,} WINDOW_UPDATE{'s' * (updates != 1)} since left "
                 "the window at 0 or below")
            if conn in self._no_preface and direction is Direction.S2C:
                why = ("the client never became an HTTP/2 endpoint: it sent no connection "
                       "preface after the 101 of its Upgrade: h2c (preface-missing)")
            elif self._ended_by_reset.get((conn, sid, direction)) == (direction.peer, "NO_ERROR"):
                # (the receiver wants no more: the early response of RFC 9113 §8.1, no
                # WINDOW_UPDATE was owed)
                why = (f"no hang: the {peer} asked the {direction.sender} to stop sending "
                       "(RFC 9113 §8.1: a server that sent its complete response may end "
                       "the request's upload with RST_STREAM NO_ERROR)")
            began = self._stall_began.get((conn, sid, direction))
            began_at = f" from frame #{began}" if began is not None and began >= 0 else ""
            out.append(f"  never resumed: {_where(conn, sid, direction)}, stalled{waited}"
                       f"{began_at} {how}: {why}")
        return out


    def _stall_count(self) -> int:
        return self.stalls - len(self._closed_stalled)  # (see handle)

    def _never_resumed(self) -> list[tuple[int, int, Direction, float, float, str]]:
        return self.unresumed + [(*key, since, self.last_t, "at the end")
                                 for key, since in self._stalled.items()]

    def _longest(self) -> tuple[float, int, int, Direction, bool] | None:
        """The longest stall, resumed or not: (seconds, connection, stream, direction
        of the data, resumed). A hang that never resumed is usually the longest."""
        best = None if self.longest_stall is None else (*self.longest_stall, True)
        for conn, sid, direction, since, until, _how in self._never_resumed():
            if best is None or until - since > best[0]:
                best = (max(0.0, until - since), conn, sid, direction, False)
        return best


def _where(conn: int, sid: int, direction: Direction) -> str:
    window = f"stream {sid}" if sid else "the connection window"
    return f"#{conn} {window}, {direction.sender} blocked"


def _seconds(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 10 else f"{s:.1f} s"


_TOO_MANY_PINGS = (": gRPC's keepalive enforcement — the client pinged more often than the "
                   "server allows (its permitted keepalive interval)")


def _debug(data: bytes) -> str:
    """GOAWAY debug data as the frame line shows it (``'too_many_pings'``)."""
    return repr(data.decode("utf-8", "backslashreplace"))
