"""What the UI knows about each connection and each stream, built from events only.

The proxy never lends the UI its observers (the UI is just another sink), so
everything the state views show — HPACK dynamic tables, settings pending and
in force, flow-control windows over time, the priority tree — is rebuilt here
from the observer's events: header blocks carry every insert and eviction,
SETTINGS frames and ``SettingsAcknowledged`` carry the settings, DATA and
WINDOW_UPDATE events carry the windows after them. The same code serves a live
proxy and a replayed capture.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from proxy.filter_context import meta_host, reset_grpc_status
from proxy.net.streams import hostport
from proxy.observe.describe import grpc_code_name
from proxy.observe.enums import DEFAULT_SETTINGS, Direction, FrameType
from proxy.observe.findings import Finding
from proxy.observe.hpack_annotated import HeaderBlock
from proxy.observe.priority import PriorityTree
from ui.model.hpack_replay import BlockBytes, BlockReplay, Broken

Headers = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class StreamInfo:
    """One stream of one connection: its messages and where its frames are."""

    conn_id: int
    stream_id: int
    request_headers: Headers | None = None
    response_headers: Headers | None = None
    informational: tuple[Headers, ...] = ()
    request_trailers: Headers | None = None
    response_trailers: Headers | None = None
    rows: array[int] = field(default_factory=lambda: array("I"))
    """Timeline rows of the stream's frames, in order."""
    first_t: float = 0.0
    last_t: float = 0.0
    first_response_t: float | None = None
    """When the final response's HEADERS came (not a 1xx: ``interim_t``; not a
    server's WINDOW_UPDATE for an upload): the wait for the response ends there."""
    interim_t: float | None = None
    """When the first 1xx (100 Continue, 103 Early Hints) came."""
    request_end_t: float | None = None
    """When the client's END_STREAM came: the request sent (an upload's body too)."""
    response_end_t: float | None = None
    """When the server's END_STREAM came: the response complete (frames after it, a
    client's WINDOW_UPDATE or reset, are no part of its duration)."""
    reset_t: float | None = None
    """When the first RST_STREAM on it came."""
    reset_code: int | None = None
    """That RST_STREAM's error code."""
    state: str = "idle"
    reset: str | None = None
    """``by client: CANCEL`` once reset."""
    pushed_by: int | None = None
    urgency: int | None = None
    """RFC 9218 §4.1 urgency (0-7) from the ``priority`` header or PRIORITY_UPDATE."""
    incremental: bool | None = None
    dependency: tuple[tuple[float, str, int, int, bool], ...] = ()
    """RFC 7540 priority signals for this stream, in order: (time, the frame type
    that carried it — HEADERS or PRIORITY —, stream it depends on, weight,
    exclusive)."""
    data_c2s: int = 0
    """DATA payload bytes the client sent on this stream (padding excluded)."""
    data_s2c: int = 0
    stalls: tuple[tuple[float, float | None], ...] = ()
    """(stalled at, resumed at) for this stream's windows. Rare, so a tuple
    replaced on change: a stream without stalls costs no list."""
    windows: tuple[int | None, int | None] = (None, None)
    """The stream's send window per data direction (index: Direction) as the
    observer last reported it (DATA, WINDOW_UPDATE, an INITIAL_WINDOW_SIZE change);
    None: never moved, the INITIAL_WINDOW_SIZE in force (see :meth:`ConnInfo.send_windows`)."""
    findings: int = 0
    laned: bool = False
    """In the stream lanes (a stream named only by PRIORITY frames is not)."""

    @property
    def data_bytes(self) -> tuple[int, int]:
        """DATA payload bytes per direction (index: Direction)."""
        return (self.data_c2s, self.data_s2c)

    @property
    def stream_headers(self) -> Headers:
        """Request, response and trailer fields: the context ``status:``/``method:``/
        ``grpc:`` filters use."""
        fields = (self.request_headers or ()) + (self.response_headers or ()) + \
            (self.response_trailers or ())
        if self.reset_code is not None:  # (a gRPC call reset before its status)
            status = reset_grpc_status(fields, self.reset_code)
            if status is not None:
                fields += (status,)
        return fields

    @property
    def grpc_status(self) -> str | None:
        """A gRPC call's outcome, its grpc-status by name (trailers, or a Trailers-Only
        response): ``OK``, ``UNAVAILABLE``; None when the stream carries none."""
        grpc = dict(self.response_trailers or ()).get("grpc-status") \
            or dict(self.response_headers or ()).get("grpc-status")
        if grpc is None:
            return None
        return grpc_code_name(grpc) or f"grpc-status {grpc}"

    @property
    def label(self) -> str:
        h = dict(self.request_headers or ())
        response = dict(self.response_headers or ())
        status = response.get(":status", "…")
        # A gRPC call's outcome is its grpc-status (trailers, or a Trailers-Only
        # response): "→ 200" on a failed call reads as success.
        grpc = self.grpc_status
        if grpc is not None and grpc != "OK":
            status += f" {grpc}"
        if ":method" in h:
            return f"{h[':method']} {h.get(':path', '')} → {status}"
        return f"stream {self.stream_id}"


@dataclass(slots=True)
class HpackTable:
    """One direction's dynamic table, as its header blocks left it.

    Loading notes only each block's row, the table size after it and its
    counts (cheap); :meth:`rebuild` decodes the blocks again
    (:class:`~ui.model.hpack_replay.BlockReplay`, from its nearest checkpoint)
    when a view asks for the entries.
    """

    block_rows: array[int] = field(default_factory=lambda: array("I"))
    sizes_t: array[float] = field(default_factory=lambda: array("d"))
    sizes: array[int] = field(default_factory=lambda: array("I"))
    maxes: array[int] = field(default_factory=lambda: array("I"))
    """The table's maximum after each block (size updates, RFC 7541 §6.3)."""
    size: int = 0
    max_size: int = 4096
    entries: deque[tuple[str, str]] = field(default_factory=deque)
    """Newest first (index 62 is ``entries[0]``, RFC 7541 §2.3.3); see :meth:`rebuild`."""
    inserts: int = 0
    evictions: int = 0
    wire_bytes: int = 0
    """Header block bytes on the wire (every block's fragments), for the compression ratio."""
    field_bytes: int = 0
    """The same blocks' names and values, uncompressed (RFC 7541 size less 32 a field)."""
    entry_count: int = 0
    """Entries after the last block, as the observer counted them."""
    in_sync: bool = True
    """False if the blocks could not be decoded again to the table the observer
    reported (lost events, or frame bytes no longer kept)."""
    replay: BlockReplay = field(default_factory=BlockReplay)
    broken_row: int | None = None
    """The row ending the block that did not decode (``hpack-error``): later blocks
    of this direction are not decoded."""

    def note(self, block: HeaderBlock, t: float, row: int) -> None:
        self.block_rows.append(row)
        self.sizes_t.append(t)
        self.sizes.append(block.table_size)
        self.maxes.append(block.table_max)
        self.size = block.table_size
        self.max_size = block.table_max
        self.inserts += block.inserted
        self.evictions += block.evicted
        self.wire_bytes += block.wire_length
        self.field_bytes += block.decoded_size - 32 * len(block.headers)
        self.entry_count = block.table_entries

    def rebuild(self, block_bytes: BlockBytes) -> None:
        """Bring :attr:`entries` up to date with the blocks noted so far."""
        rows = self.block_rows
        decoder = self.replay.table_after(len(rows), rows, block_bytes)
        if decoder is None:
            self.in_sync = False
            return
        self.entries = deque(decoder.entries)
        self.in_sync = (len(self.entries) == self.entry_count
                        and decoder.table_size == self.size)

    def broken(self, row: int, block_bytes: BlockBytes) -> Broken | None:
        """The block at ``row`` decoded again if it is the one that broke (see
        :meth:`BlockReplay.broken`)."""
        if row != self.broken_row:
            return None
        return self.replay.broken(len(self.block_rows), self.block_rows, row, block_bytes)

    def block(self, row: int, block_bytes: BlockBytes) -> HeaderBlock | None:
        """The block at ``row`` decoded again, annotations and all."""
        rows = self.block_rows
        k = bisect_left(rows, row)
        if k >= len(rows) or rows[k] != row:
            return None
        return self.replay.block(k, rows, block_bytes)


@dataclass(slots=True)
class FlowSeries:
    """Windows after every DATA and WINDOW_UPDATE, for one direction of data."""

    t: array[float] = field(default_factory=lambda: array("d"))
    conn: array[int] = field(default_factory=lambda: array("q"))
    stream: array[int] = field(default_factory=lambda: array("q"))
    stream_id: array[int] = field(default_factory=lambda: array("I"))
    kind: array[int] = field(default_factory=lambda: array("B"))
    """0 DATA (both windows shrink), 8 WINDOW_UPDATE on stream 0 (the connection
    window grows), 1 WINDOW_UPDATE on a stream (its window grows)."""
    by_stream: dict[int, tuple[int, array[int], array[int]]] = field(default_factory=dict)
    """For the streams a view charted: (points looked at so far, that stream's
    windows, their kinds), extended as the series grows rather than read again
    from its first point (live, a view redraws every second)."""

    late: dict[int, int] = field(default_factory=dict)
    """Per stream charted: its WINDOW_UPDATEs after it closed (see :meth:`late_updates`)."""

    def stream_points(self, sid: int) -> tuple[array[int], array[int]]:
        """Stream ``sid``'s send window after each of its DATA and WINDOW_UPDATE
        frames, and the kind of each."""
        pos, values, kinds = self.by_stream.get(sid) or (0, array("q"), array("B"))
        ids, windows, kind = self.stream_id, self.stream, self.kind
        late = 0
        for i in range(pos, len(ids)):
            if ids[i] == sid:
                if windows[i] != -1:
                    values.append(windows[i])
                    kinds.append(kind[i])
                elif kind[i] == 1:
                    late += 1
        self.by_stream[sid] = (len(ids), values, kinds)
        if late:
            self.late[sid] = self.late.get(sid, 0) + late
        return values, kinds

    def late_updates(self, sid: int) -> int:
        """WINDOW_UPDATEs on stream ``sid`` that came after it closed, so with no
        window of its to chart (a browser's after a download), as far as
        :meth:`stream_points` has looked."""
        return self.late.get(sid, 0)


@dataclass(slots=True)
class ConnInfo:
    """One connection as the connections pane and the state views show it."""

    conn_id: int
    meta: dict[str, Any] = field(default_factory=dict)
    """Capture-format connection metadata (client, server, mode, TLS legs, protocol)."""
    closed: str | None = None
    """Why it closed, once it did."""
    closed_t: float | None = None
    """When it closed (the frames' clock), when known."""
    frames: list[int] = field(default_factory=lambda: [0, 0])
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    streams: dict[int, StreamInfo] = field(default_factory=dict)
    stream_order: list[StreamInfo] = field(default_factory=list)
    """Streams with frames, by their first row (the lanes of this connection)."""
    last_row: int = 0
    """The connection's latest row."""
    open_streams: int = 0
    findings: int = 0
    conn_findings: list[Finding] = field(default_factory=list)
    conn_finding_dirs: list[Direction] = field(default_factory=list)
    """The direction each of ``conn_findings`` was raised in (a ``dir:`` term reads it)."""
    errors: list[str] = field(default_factory=list)
    """What the proxy could not do for it (``stage: message (hint)``)."""
    http1: list[tuple[float, int, str]] = field(default_factory=list)
    """HTTP/1.x messages of a connection that is not HTTP/2: (time, direction, head)."""
    http1_started: list[float] = field(default_factory=list)
    """When each message of ``http1`` began (its time is when it ended)."""
    first_t: float | None = None
    last_t: float = 0.0
    settings_pending: tuple[list[tuple[tuple[int, int], ...]], ...] = field(
        default_factory=lambda: ([], []))
    """Per sender (Direction): SETTINGS sent and not yet acknowledged, oldest first."""
    settings_acked: tuple[dict[int, int], dict[int, int]] = field(
        default_factory=lambda: (dict(DEFAULT_SETTINGS), dict(DEFAULT_SETTINGS)))
    """Per sender: the settings in force (RFC 9113 §6.5.3: after the ACK)."""
    settings_sent: tuple[set[int], set[int]] = field(default_factory=lambda: (set(), set()))
    """Per sender: the settings it sent (the others are in force at their defaults)."""
    hpack: tuple[HpackTable, HpackTable] = field(
        default_factory=lambda: (HpackTable(), HpackTable()))
    """Per direction of the header blocks (the sender's encoder = receiver's decoder)."""
    flow: tuple[FlowSeries, FlowSeries] = field(default_factory=lambda: (FlowSeries(),
                                                                          FlowSeries()))
    """Per direction of the data the windows govern."""
    window: list[int] = field(default_factory=lambda: [65_535, 65_535])
    """The connection send window now, per data direction."""
    open_at_end: bool = False
    """A capture read to its end holds no close of it: what it did next is not there
    (a recording killed or cut short, or stopped while it was open)."""
    stalls: list[tuple[float, int, int, float | None, bool]] = field(default_factory=list)
    """(time, data direction, stream id (0 = connection), resumed at, the connection
    window still 0 or below when a stream's reopened)."""
    pings: list[float] = field(default_factory=list)
    """Round-trip times of answered PINGs, seconds."""
    priority: PriorityTree = field(default_factory=PriorityTree)
    """RFC 7540 §5.3 dependency tree, as HEADERS and PRIORITY frames built it."""
    first_authority: str | None = None
    """The ``:authority`` of the connection's first request (see :meth:`own_authority`)."""

    def own_authority(self, authority: str) -> bool:
        """Whether a request's ``:authority`` names this connection's own server, so a
        one-line summary can leave it out (the connection column names it): the
        target — its host alone for port 443 or 80 —, or, in reverse mode, where
        clients address h2scope's own listener (``localhost:8080``) and never the
        target, the authority the connection's first request named."""
        authority = authority.lower()  # (host names ignore case)
        target = self.target.lower()
        if authority == target:
            return True
        host, _, port = target.rpartition(":")
        if port in ("443", "80") and authority == host:
            return True
        return (str(self.meta.get("mode", "")).startswith("reverse")
                and self.first_authority is not None
                and authority == self.first_authority.lower())

    @property
    def host(self) -> str | None:
        return meta_host(self.meta)

    @property
    def client(self) -> str:
        c = self.meta.get("client") or {}
        return hostport(str(c.get("ip", "?")), c.get("port", "?")) if c else "?"

    @property
    def target(self) -> str:
        t = self.meta.get("target")
        if t:
            return str(t)
        server = self.meta.get("server") or {}
        if server.get("host"):
            port = server.get("port")
            return f"{server['host']}:{port}" if port else str(server["host"])
        return "?"

    @property
    def protocol(self) -> str:
        """What was relayed; ``-`` for a connection that ended before any relay (a
        failed handshake or upstream connection: no protocol was agreed)."""
        if self.meta.get("protocol"):
            return str(self.meta["protocol"])
        return "-" if self.closed is not None or self.errors else "h2"

    def tls(self, leg: str) -> str:
        """``TLSv1.3 h2`` for the ``client`` or ``server`` leg; ``-`` without TLS."""
        info = self.meta.get(f"{leg}_tls")
        if not info:
            return "-"
        return f"{info.get('version') or '?'} {info.get('alpn') or 'no-alpn'}"

    @property
    def state(self) -> str:
        if self.errors:
            return "failed" if self.closed is not None else "error"
        if self.closed is not None:
            return "closed"
        return "open at end" if self.open_at_end else "open"

    @property
    def note(self) -> str:
        """What went wrong (the proxy's errors, with what to do), else its HTTP/1.x
        messages and why it closed."""
        if self.errors:
            return "; ".join(self.errors)
        if self.http1:
            # (after a 101 to a WebSocket, its messages are listed here too: counted
            # as what they are, not as requests and responses)
            ws = sum(1 for _, _, head in self.http1 if head.startswith("websocket "))
            requests = sum(1 for _, d, head in self.http1
                           if d == 0 and not head.startswith("websocket "))
            responses = len(self.http1) - requests - ws
            last = self.http1[-1][2].split("\r\n", 1)[0]
            text = (f"HTTP/1.x: {requests} request{'s' if requests != 1 else ''}, "
                    f"{responses} response(s)"
                    + (f", {ws} WebSocket message{'s' if ws != 1 else ''}" if ws else "")
                    + f", last '{last}'")
            return f"{text}; {self.closed}" if self.closed else text
        return self.closed or ""

    def send_windows(self, d: Direction) -> list[tuple[int, int]]:
        """(window, stream id) of each open stream whose sender in ``d`` may still
        send data, smallest window first (0 or below: that sender must wait)."""
        # RFC 9113 §6.9.2: a stream's window starts at the receiver's INITIAL_WINDOW_SIZE.
        initial = self.settings_acked[d.peer].get(_INITIAL_WINDOW_SIZE, 65_535)
        sending = _SENDING[d]
        windows = []
        for st in self.streams.values():
            if st.state in sending:
                window = st.windows[d]
                windows.append((initial if window is None else window, st.stream_id))
        return sorted(windows)

    def stream(self, sid: int) -> StreamInfo:
        s = self.streams.get(sid)
        if s is None:
            s = self.streams[sid] = StreamInfo(self.conn_id, sid)
        return s


def settings_view(conn: ConnInfo, sender: Direction) -> list[tuple[str, str, str]]:
    """(setting, in force, pending) rows for one sender's SETTINGS."""
    from proxy.observe.enums import setting_name

    acked = conn.settings_acked[sender]
    pending: dict[int, int] = {}
    for frame_settings in conn.settings_pending[sender]:
        pending.update(frame_settings)
    keys = sorted(set(acked) | set(pending))
    sent = conn.settings_sent[sender]
    def shown(k: int) -> str:
        if k not in sent and k in _UNLIMITED_BY_DEFAULT:
            return "unlimited (default)"  # (RFC 9113 §6.5.2: the initial value)
        if k == _ENABLE_PUSH and sender is Direction.S2C and k not in sent:
            return "n/a (clients never push)"  # (§6.5.2: a server must not send 1)
        return str(acked.get(k, "-")) + ("" if k in sent else " (default)")
    return [(setting_name(k), shown(k), str(pending[k]) if k in pending else "")
            for k in keys]


_INITIAL_WINDOW_SIZE = 0x4
_ENABLE_PUSH = 0x2
_SENDING = (frozenset({"open", "half-closed (server)"}),
            frozenset({"open", "half-closed (client)"}))
"""Per data direction: the stream states (StreamState values) in which its sender
may still send DATA (it has not ended its side, RFC 9113 §5.1)."""

_UNLIMITED_BY_DEFAULT = frozenset({0x3, 0x6})
"""SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE: no limit until
a peer sets one (RFC 9113 §6.5.2); the observer models that as 2^31-1."""


FRAME_TYPE_NAMES = {int(t): t.name for t in FrameType}
