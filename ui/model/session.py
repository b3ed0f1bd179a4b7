"""Everything the UI shows, fed with observer and connection events.

:class:`Session` is the one model behind every view. A loader (capture) or the
live ingest calls :meth:`Session.observe` with each ``(conn_id, event, ref)``
in order — ``ref`` says where a frame's bytes are — and :meth:`Session.connection`
with connection metadata. Views read it from the UI thread; only one thread
ever writes. :attr:`version` moves after every batch so views know to refresh.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from proxy.capture.format import HTTP1_HEAD_LENGTH
from proxy.events import (
    ConnectionClosed,
    ConnectionEvent,
    ConnectionOpened,
    Leg,
    ProxyErrorRaised,
    RelayStarted,
    TargetChosen,
    TlsEstablished,
)
from proxy.filter import Filter, term_keys
from proxy.filter_context import FindingStandIn
from proxy.observe.describe import event_line
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
    PingAnswered,
    PrefaceObserved,
    SettingsAcknowledged,
    StreamStateChanged,
)
from proxy.observe.frames import (
    DataFrame,
    HeadersFrame,
    PriorityFrame,
    PriorityUpdateFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)
from proxy.observe.hpack_annotated import HeaderBlock, HpackDecodeError
from proxy.observe.priority import parse_priority_field
from proxy.textlog import AFTER_ITS_FRAME_TYPES
from ui.model.connections import ConnInfo, StreamInfo
from ui.model.table import FrameBytes, FrameTable


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedConnection(ConnectionEvent):
    """A capture's CONNECTION record, as the live UI reads it from the proxy's
    capture (``ui/model/follow.py``): the connection's metadata."""

    meta: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedCap(ConnectionEvent):
    """The frame before it on this connection was recorded with its DATA payload
    capped (``record.max_data_bytes``): ``kept`` payload bytes are real, the rest
    of what the frame reads as are zeros."""

    kept: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedHttp1(ConnectionEvent):
    """A capture's HTTP1 record: one HTTP/1.x message's head (a connection that
    does not speak HTTP/2 has no frames; its messages are what there is)."""

    direction: int
    head: str
    """The start line and header fields, as sent."""
    started: float | None = None
    """When the message began (the record's own time; ``t`` is when it ended)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedClose(ConnectionEvent):
    """A capture's CLOSE record (who closed and why, the proxy's errors)."""

    reason: str
    errors: tuple[str, ...] = ()
    relayed: tuple[int, int] = (0, 0)
    """Bytes the proxy relayed each way (the record's ``bytes_c2s``/``bytes_s2c``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedUpgrade(ConnectionEvent):
    """A capture's H2C_UPGRADE record: the connection speaks h2c from here, and its
    stream 1 is the HTTP/1.1 request that asked for it (RFC 7540 §3.2)."""

    request_headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedLost(ConnectionEvent):
    """A capture's LOST record: part of the connection is not in it (an import's
    lost packets, a TLS record it could not decrypt); later frames are missing."""

    reason: str


def error_text(stage: object, message: object, hint: object = None) -> str:
    """One of the proxy's errors for a connection, as the UI shows it."""
    text = f"{stage}: {message}"
    return f"{text} ({hint})" if hint else text


def http1_head(body: bytes) -> str:
    """The head of an HTTP1 record's body (start line and fields), as text."""
    (n,) = HTTP1_HEAD_LENGTH.unpack_from(body, 0)
    start = HTTP1_HEAD_LENGTH.size
    return body[start:start + n].decode("utf-8", "surrogateescape").rstrip("\r\n")


def recorded_errors(close_info: dict[str, Any]) -> tuple[str, ...]:
    """The errors a CLOSE record's details hold (the recorder's ``errors`` list)."""
    return tuple(error_text(e.get("stage"), e.get("message"), e.get("hint"))
                 for e in close_info.get("errors", ()) if isinstance(e, dict))


_DATA, _HEADERS, _PRIORITY, _PUSH_PROMISE, _WU, _CONTINUATION = 0, 1, 2, 5, 8, 9
_BLOCK_TYPES = (_HEADERS, _PUSH_PROMISE, _CONTINUATION)
_NOT_OPEN = frozenset({"idle", "reserved", "closed"})
"""Stream states (StreamState values) that do not count as open streams."""


class Session:
    """The UI's model: the frame table, connections, streams and their state."""

    def __init__(self, source: FrameBytes, *, title: str = "") -> None:
        self.table = FrameTable(source)
        self.conns: dict[int, ConnInfo] = {}
        self.failed: set[int] = set()
        """Connections the proxy reported an error on (the status bar counts them)."""
        self.stream_order: list[StreamInfo] = []
        """Every stream with frames, by its first row (the lanes of "all")."""
        self.title = title
        self.version = 0
        self.t0: float | None = None
        """Time of the first frame: the timeline shows times relative to it."""
        self.loaded = False
        """A capture was read to its end (always False while live)."""
        self.clean_end = True
        """Once loaded: the capture ends with its END record (without one, the
        recording was killed or the file cut short)."""
        self.progress = 0.0
        """Fraction of a capture decoded so far."""
        self.decoded = 0
        """Rows whose frames the observer has decoded (all of them when live)."""
        self.indexed = False
        """A capture's frame index is built: every row exists, decoding may go on."""
        self.problems: list[str] = []
        self.caused: dict[int, tuple[str, ...]] = {}
        """Rows → what their frame caused, as the text log says it after the frame
        (settings in force, a flow-control stall or reopening, a PING's round trip)."""
        self._caused_pending: dict[int, list[str]] = {}
        """Per connection: those lines, reported before the frame that caused them."""
        self.capped: dict[int, int] = {}
        """Rows whose DATA payload the capture kept only in part (record.max_data_bytes):
        row → payload bytes kept. The frame reads as zeros past them."""
        self.lock = threading.RLock()
        """Held by the writer while it appends a batch and by views that walk
        dictionaries (streams, connections) so neither sees a resize midway."""

    # ------------------------------------------------------------- writing

    def conn(self, conn_id: int) -> ConnInfo:
        c = self.conns.get(conn_id)
        if c is None:
            c = self.conns[conn_id] = ConnInfo(conn_id)
        return c

    def connection(self, conn_id: int, meta: dict[str, Any]) -> None:
        """A connection's metadata (capture CONNECTION record or folded events)."""
        c = self.conn(conn_id)
        c.meta.update(meta)

    def closed(self, conn_id: int, reason: str, t: float | None = None) -> None:
        c = self.conn(conn_id)
        c.closed = reason or "closed"
        c.closed_t = t
        c.open_streams = 0

    def connection_event(self, ev: ConnectionEvent) -> None:
        """Fold a live connection event into the connection's metadata."""
        c = self.conn(ev.conn_id)
        meta = c.meta
        match ev:
            case ConnectionOpened():
                if self.t0 is None:
                    self.t0 = ev.t
                meta["opened"] = ev.t
                meta["client"] = {"ip": ev.client[0], "port": ev.client[1]}
                meta["mode"] = ev.mode
                if ev.target:
                    meta["target"] = ev.target
            case TargetChosen():
                meta["target"] = ev.target
                meta["via"] = ev.via
            case TlsEstablished():
                key = "client_tls" if ev.leg is Leg.CLIENT else "server_tls"
                meta[key] = {"version": ev.version, "cipher": ev.cipher, "alpn": ev.alpn,
                             "alpn_offered": list(ev.alpn_offered), "sni": ev.sni}
                if ev.leg is Leg.CLIENT and ev.sni:
                    meta["sni"] = ev.sni
            case RelayStarted():
                meta["protocol"] = ev.protocol
                meta["target"] = ev.target
            case ProxyErrorRaised():
                c.errors.append(error_text(ev.stage, ev.message, ev.hint))
                self.failed.add(ev.conn_id)
            case ConnectionClosed():
                self.closed(ev.conn_id, f"by {ev.closed_by.name.lower()}: {ev.reason}", ev.t)
            case RecordedConnection():
                meta.update(ev.meta)
                opened = ev.meta.get("opened")
                if self.t0 is None and isinstance(opened, (int, float)) \
                        and 0 <= ev.t - opened < 3600:
                    # Time 0 is when the first connection opened, as the text log and
                    # its export count it: a row's time matches their line's.
                    self.t0 = opened
            case RecordedCap():
                if c.last_row is not None:
                    self.capped[c.last_row] = ev.kept
            case RecordedHttp1():
                c.http1.append((ev.t, ev.direction, ev.head))
                c.http1_started.append(ev.started if ev.started is not None and
                                       0 <= ev.t - ev.started < 86_400 else ev.t)
            case RecordedUpgrade():
                meta["protocol"] = "h2c"
                self._message(c.stream(1), 0, ev.request_headers, ev.t)
            case RecordedClose():
                c.errors.extend(ev.errors)
                if ev.errors:
                    self.failed.add(ev.conn_id)
                if c.bytes == [0, 0]:  # (no frames counted them: HTTP/1.x, a tunnel)
                    c.bytes = list(ev.relayed)
                self.closed(ev.conn_id, ev.reason, ev.t)
            case RecordedLost():
                c.errors.append(f"capture incomplete: {ev.reason}")

    def observe(self, conn_id: int, ev: Event, ref: int = 0, row: int | None = None) -> None:
        """One observer event of connection ``conn_id``; ``ref`` locates a frame's bytes.

        ``row`` is given when the frame's row already exists (a capture's index
        was adopted): the decoded details are attached to it.
        """
        c = self.conns.get(conn_id) or self.conn(conn_id)
        if type(ev) is FrameObserved:
            self._frame(c, conn_id, ev, ref, row)
            return
        if type(ev) in AFTER_ITS_FRAME_TYPES:
            line = event_line(ev)
            if line:
                self._caused_pending.setdefault(conn_id, []).append(line)
        d = ev.direction
        match ev:
            case StreamStateChanged():
                s = c.stream(ev.stream_id)
                was_open = s.state not in _NOT_OPEN
                s.state = ev.new
                now_open = ev.new not in _NOT_OPEN
                if now_open and not was_open:
                    c.open_streams += 1
                elif was_open and not now_open:
                    c.open_streams = max(0, c.open_streams - 1)
            case SettingsAcknowledged():
                # RFC 9113 §6.5.3: the settings bind their sender once acknowledged.
                sender = d.peer
                c.settings_acked[sender].update(ev.settings)
                c.settings_sent[sender].update(k for k, _ in ev.settings)
                if c.settings_pending[sender]:
                    c.settings_pending[sender].pop(0)
                for sid, window in ev.windows:  # (the ACK's sender's data: its direction)
                    _set_window(c.stream(sid), int(d), window)
            case PingAnswered():
                c.pings.append(ev.rtt)
            case FlowControlStalled():
                c.stalls.append((ev.t, int(d), ev.stream_id, None, False))
                if ev.stream_id:
                    st = c.stream(ev.stream_id)
                    st.stalls = (*st.stalls, (ev.t, None))
            case FlowControlResumed():
                for i in range(len(c.stalls) - 1, -1, -1):
                    t, sd, sid, end, _ = c.stalls[i]
                    if sid == ev.stream_id and sd == int(d) and end is None:
                        c.stalls[i] = (t, sd, sid, ev.t, ev.connection_blocked)
                        break
                if ev.stream_id:
                    sst = c.stream(ev.stream_id)
                    if sst.stalls and sst.stalls[-1][1] is None:
                        sst.stalls = (*sst.stalls[:-1], (sst.stalls[-1][0], ev.t))
            case PrefaceObserved():
                c.bytes[0] += len(CONNECTION_PREFACE)  # (counted as the proxy counts bytes)
            case Desynced() | ConnectionFindingRaised():
                c.conn_findings.append(ev.finding)
                c.conn_finding_dirs.append(ev.direction)
                c.findings += 1

    def _frame(self, c: ConnInfo, conn_id: int, ev: FrameObserved, ref: int,
               row: int | None) -> None:
        table = self.table
        if row is None:
            row = table.append(conn_id, ev, ref)
            self.decoded = row + 1
        else:
            table.attach(row, ev)
        if self._caused_pending:
            caused = self._caused_pending.pop(conn_id, None)
            if caused:
                self.caused[row] = tuple(caused)
        f = ev.frame
        d = int(ev.direction)
        t = ev.t
        if self.t0 is None:
            self.t0 = t
        if c.first_t is None:
            c.first_t = t
        c.last_t = t
        c.last_row = row
        c.frames[d] += 1
        c.bytes[d] += 9 + f.length
        if ev.findings:
            c.findings += len(ev.findings)
        sid = f.stream_id
        ftype = f.type
        s: StreamInfo | None = None
        if sid:
            s = c.streams.get(sid) or c.stream(sid)
            if not s.rows:  # (a state change may have created it a moment before)
                s.first_t = t
            if not s.laned and ftype != _PRIORITY:
                # Ordered by first row as they come: the lanes never sort. A stream
                # only ever named by PRIORITY frames (an RFC 7540 client's anchor
                # streams, never opened) gets no lane.
                s.laned = True
                self.stream_order.append(s)
                c.stream_order.append(s)
            s.rows.append(row)
            s.last_t = t
            if ev.findings:
                s.findings += len(ev.findings)
            if d == 1 and ftype in (_DATA, _HEADERS):
                if s.first_response_t is None and (
                        ftype == _DATA or (ev.block is None and f.flags & 0x4)):
                    # (DATA before any response HEADERS, or a HEADERS whose block did
                    # not decode: the response began, whatever it says; a decoded
                    # block sets it below, unless it is a 1xx)
                    s.first_response_t = t
                if f.flags & 0x1:  # END_STREAM
                    s.response_end_t = t
            elif d == 0 and ftype in (_DATA, _HEADERS) and f.flags & 0x1 and \
                    s.request_end_t is None:
                s.request_end_t = t
        if ftype == _DATA:
            if s is not None and type(f) is DataFrame:
                if d:
                    s.data_s2c += f.data_length
                else:
                    s.data_c2s += f.data_length
            self._windows(c, ev, d, sid, t, ftype)
            return
        if ftype == _WU:
            self._windows(c, ev, 1 - d, sid, t, ftype)
            return
        block = ev.block
        if block is None and ev.findings and ftype in _BLOCK_TYPES and f.flags & 0x4 \
                and any(x.code == "hpack-error" for x in ev.findings):
            c.hpack[d].broken_row = row  # (the block that broke this direction's HPACK)
        if block is not None:
            c.hpack[d].note(block, t, row)
            target = ev.block_stream_id
            if target is not None:
                pushed = c.stream(target)
                pushed.pushed_by = sid
                pushed.request_headers = block.headers
                if not pushed.first_t:
                    pushed.first_t = t
            elif s is not None:
                self._message(s, d, block.headers, t)
                if d == 0 and c.first_authority is None:
                    c.first_authority = next(
                        (v for n, v in block.headers if n == ":authority"), None)
        if isinstance(f, HeadersFrame) and f.priority is not None:
            p = f.priority
            c.priority.set(sid, p.depends_on, p.weight, p.exclusive)
            if s is not None:
                s.dependency = (*s.dependency,
                                (t, "HEADERS", p.depends_on, p.weight, p.exclusive))
        elif isinstance(f, SettingsFrame) and not f.ack:
            c.settings_pending[d].append(f.settings)
        elif isinstance(f, RstStreamFrame) and s is not None:
            said = f"by {ev.direction.sender}: {f.error_name}"
            # The first reset ended the stream; the other side's, crossing it, is said after.
            if s.reset is None:
                s.reset_t = s.last_t  # (this frame's time: the stream's latest)
                s.reset_code = f.error_code
            s.reset = said if s.reset is None else f"{s.reset} (then {said})"
        elif isinstance(f, PriorityFrame):
            p = f.priority
            c.priority.set(sid, p.depends_on, p.weight, p.exclusive)
            if s is not None:
                s.dependency = (*s.dependency,
                                (t, "PRIORITY", p.depends_on, p.weight, p.exclusive))
        elif isinstance(f, PriorityUpdateFrame):
            u, inc, _ = parse_priority_field(f.field_value.decode("latin-1"))
            target_s = c.stream(f.prioritized_stream_id)
            if u is not None:
                target_s.urgency = u
            if inc is not None:
                target_s.incremental = inc
        elif isinstance(f, PushPromiseFrame) and s is not None:
            c.stream(f.promised_stream_id).pushed_by = sid

    @staticmethod
    def _message(s: StreamInfo, d: int, headers: tuple[tuple[str, str], ...], t: float,
                 ) -> None:
        if d == 0:
            if s.request_headers is None:
                s.request_headers = headers
                for n, v in headers:
                    if n == "priority":
                        u, inc, _ = parse_priority_field(v)
                        s.urgency = u if u is not None else s.urgency
                        s.incremental = inc if inc is not None else s.incremental
            else:
                s.request_trailers = headers
            return
        if headers and headers[0][0] == ":status":  # where RFC 9113 §8.3 puts it
            status: str | None = headers[0][1]
        else:
            status = next((v for n, v in headers if n == ":status"), None)
        if status is not None and status[:1] == "1":
            s.informational = (*s.informational, headers)
            if s.interim_t is None:
                s.interim_t = t
        elif s.response_headers is None:
            s.response_headers = headers
            if s.first_response_t is None:
                s.first_response_t = t
        else:
            s.response_trailers = headers

    @staticmethod
    def _windows(c: ConnInfo, ev: FrameObserved, data_dir: int, sid: int, t: float,
                 ftype: int) -> None:
        w = ev.windows
        if w is None:
            return
        series = c.flow[data_dir]
        series.t.append(t)
        series.conn.append(w[0])
        series.stream.append(-1 if w[1] is None else w[1])
        series.stream_id.append(sid)
        series.kind.append(ftype if ftype != 8 or sid == 0 else 1)
        c.window[data_dir] = w[0]
        if w[1] is not None and sid:
            _set_window(c.stream(sid), data_dir, w[1])

    def conn_findings_matching(self, flt: Filter, conn_id: int | None = None) -> int:
        """How many connection-level findings (on no frame: what a close left
        unfinished, a desync) ``flt`` selects, of connection ``conn_id`` or of all:
        a filter the timeline shows no frame for may still select those."""
        if not any(key == "finding" for key, _ in term_keys(flt.text)):
            return 0  # (only a finding: term asks for them, as in the text log)
        n = 0
        with self.lock:
            for c in self.conns.values():
                if conn_id is not None and c.conn_id != conn_id:
                    continue
                for f, d in zip(c.conn_findings, c.conn_finding_dirs, strict=True):
                    s = c.streams.get(f.stream_id or 0)
                    sh = s.stream_headers if s is not None else None
                    n += flt.predicate(FindingStandIn(f, d), c, sh)  # type: ignore[arg-type]
        return n

    def touch(self) -> None:
        self.version += 1

    # ------------------------------------------------------------- reading

    def stream_of_row(self, row: int) -> StreamInfo | None:
        t = self.table
        c = self.conns.get(t.conn[row])
        sid = t.stream[row]
        if c is None or not sid:
            return None
        return c.streams.get(sid)

    def block_bytes(self, row: int) -> bytes | None:
        """The bytes of the header block completed at ``row``: the HEADERS or
        PUSH_PROMISE fragment and the CONTINUATION fragments after it (RFC 9113
        §6.10: they follow it on the same stream and direction, nothing in between
        on the connection, so the stream's rows find them)."""
        t = self.table
        c = self.conns.get(t.conn[row])
        s = c.streams.get(t.stream[row]) if c is not None else None
        if s is None:
            return None
        rows = s.rows
        d = t.direction[row]
        parts: list[bytes] = []
        i = bisect_left(rows, row)
        if i >= len(rows) or rows[i] != row:
            return None
        while i >= 0:
            r = rows[i]
            i -= 1
            if t.direction[r] != d:
                continue
            ftype = t.type[r]
            if ftype == _CONTINUATION:
                data = t.source.frame_bytes(t.ref[r])
                if data is None:
                    return None
                parts.append(data[9:])
                continue
            if ftype not in (_HEADERS, _PUSH_PROMISE):
                return None
            frame = t.frame(r)
            if not isinstance(frame, (HeadersFrame, PushPromiseFrame)):
                return None
            parts.append(frame.fragment)
            parts.reverse()
            return b"".join(parts)
        return None

    def broken_block(self, row: int) -> HpackDecodeError | None:
        """When row ``row`` ends the header block that broke its direction's HPACK
        context: the error, with what decoded before it (``partial_block``), decoded
        again from the table the earlier blocks left; None otherwise, or when the
        decoder that replays blocks (which accepts any table size) reads it whole."""
        c = self.conns.get(self.table.conn[row])
        if c is None:
            return None
        with self.lock:
            broken = c.hpack[self.table.direction[row]].broken(row, self.block_bytes)
        return None if broken is None else broken.error

    def header_block(self, row: int) -> HeaderBlock | None:
        """Row ``row``'s header block with every HPACK annotation, decoded again
        (:mod:`ui.model.hpack_replay`); None if it has none or it cannot be rebuilt."""
        t = self.table
        if row not in t.block_headers:
            return None
        c = self.conns.get(t.conn[row])
        if c is None:
            return None
        with self.lock:
            return c.hpack[t.direction[row]].block(row, self.block_bytes)

    def relative(self, t: float) -> float:
        return t - (self.t0 if self.t0 is not None else t)


def wall_clock(t: float) -> str:
    """``t`` (seconds since the epoch, as the capture's records keep them) as local
    time with its UTC offset: ``2026-12-07 23:56:40.123456+01:00``."""
    return datetime.fromtimestamp(t).astimezone().isoformat(sep=" ", timespec="microseconds")


def _set_window(st: StreamInfo, data_dir: int, window: int) -> None:
    st.windows = (window, st.windows[1]) if data_dir == 0 else (st.windows[0], window)


def direction_of(value: int) -> Direction:
    return Direction.S2C if value else Direction.C2S
