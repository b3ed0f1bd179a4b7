"""Stream lanes: one line per stream, its frames as glyphs along arrival order.

The "interleaved streams" picture: multiplexing, head-of-line waits and
flow-control stalls show as the shape of the lanes. The x axis is the frame
sequence of the scope (all connections or one) — arrival order shows
interleaving even when frames arrive within the same millisecond; ``t``
switches it to wall time. Glyphs (legend in the title):

    H HEADERS   ▪ DATA   ▶ END_STREAM   ✕ RST_STREAM   P PUSH_PROMISE
    ↑ WINDOW_UPDATE   ┄ the stream's lifetime   ! a finding   ░ stalled

A lane starts with the request: its HEADERS is an ``H`` even when it ends
the client's side of the stream (a GET), so every lane reads from its
request; a later END_STREAM (the last DATA, trailers) is a ``▶``.

Like the timeline, lanes are drawn with the line API: one lane per visible
line, computed from the stream's row list when it comes on screen.
"""

from __future__ import annotations

from bisect import bisect_right

from rich.text import Text

from ui.model.connections import StreamInfo
from ui.model.session import Session
from ui.widgets import style
from ui.widgets.rowlist import RowList

LABEL = 30
GLYPHS = {0: "▪", 1: "H", 3: "✕", 5: "P", 8: "↑", 9: "h"}
RANK = {3: 6, 5: 5, 1: 4, 9: 3, 0: 2, 8: 1}
"""When frames share a cell, the most telling glyph wins."""
LEGEND = "H HEADERS  ▪ DATA  ▶ END_STREAM  ✕ RST  P PUSH  ↑ WINDOW_UPDATE  ░ stalled"


def lane_label(st: StreamInfo) -> str:
    """``#1    3 GET /path → 200`` in at most :data:`LABEL` characters. What is cut
    first is a query string's end (``/index.html?q=pp…``), then a path's start
    (``…bundle.min.js``, ``…Greeter/SayHello``: its end tells a file or a gRPC
    method from its neighbours); the connection, stream, method and status stay
    (a gRPC call's is its grpc-status: ``… → UNAVAILABLE``, without the POST and
    the 200 every call has)."""
    h = dict(st.request_headers or ())
    label = f"#{st.conn_id} {st.stream_id:>4} {st.label}"
    if len(label) <= LABEL or ":method" not in h:
        return label[:LABEL - 1] + "…" if len(label) > LABEL else label
    path = h.get(":path", "")
    head = f"#{st.conn_id} {st.stream_id:>4} {h[':method']} "
    tail = st.label[len(h[":method"]) + 1 + len(path):]  # (" → 200")
    grpc = st.grpc_status
    if grpc is not None:  # (a gRPC call: always a POST, always a 200; its outcome is this)
        head, tail = f"#{st.conn_id} {st.stream_id:>4} ", f" → {grpc}"
    room = LABEL - len(head) - len(tail)
    if room < 8:  # (a long status, "200 UNAVAILABLE": the path keeps 8, the status is cut)
        room = 8
        keep = max(1, LABEL - len(head) - room)
        tail = tail if len(tail) <= keep else tail[:keep - 1] + "…"
    return head + shortened(path, room) + tail


def shortened(path: str, room: int) -> str:
    """``path`` in at most ``room`` characters: a query string's end cut first
    (``/index.html?q=pp…``), then the path's start (``…bundle.min.js``: its end
    tells a file or a gRPC method from its neighbours)."""
    bare, query, _ = path.partition("?")
    if len(path) <= room:
        return path
    if query and len(bare) + 2 <= room:
        return path[:room - 1] + "…"
    if query and len(bare) + 1 <= room:
        return bare + "…"
    if query:
        return "…" + bare[-(room - 2):] + "…"
    return "…" + bare[-(room - 1):]


def lanes_title(lanes: Lanes) -> str:
    """The legend, and what the horizontal axis is (and the key that changes it)."""
    return f"{LEGEND}   │ x: {'time' if lanes.by_time else 'frame order'} (t: " \
        f"{'frame order' if lanes.by_time else 'time'})"


class Lanes(RowList):
    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.conn_id: int | None = None
        self.lanes: list[StreamInfo] = []
        self.by_time = False
        self._span = (0, 1)
        self._tspan = (0.0, 1.0)
        self._version = -1

    def set_scope(self, conn_id: int | None) -> None:
        self.conn_id = conn_id
        self._version = -1
        self.rebuild()

    def rebuild(self) -> None:
        """Recompute the lanes if the session changed (called on each UI tick)."""
        s = self.session
        if s.version == self._version and self.lanes:
            return
        self._version = s.version
        # The session keeps streams ordered by first row as they arrive: taking
        # the (growing, append-only) list is O(1) a tick, however many streams.
        last = len(s.table) - 1
        if self.conn_id is None:
            lanes = s.stream_order
        elif self.conn_id in s.conns:
            c = s.conns[self.conn_id]
            lanes, last = c.stream_order, c.last_row
        else:
            lanes = []
        self.lanes = lanes
        if lanes:
            first = lanes[0].rows[0]
            self._span = (first, max(first, last))
            table = s.table
            t1 = table.time[self._span[1]]
            # In time, the axis runs to the last close (a hang lasts until then).
            conns = [s.conns[self.conn_id]] if self.conn_id in s.conns else \
                s.conns.values() if self.conn_id is None else []
            closes = [c.closed_t for c in conns if c.closed_t is not None]
            self._tspan = (table.time[self._span[0]], max([t1, *closes]))
        self.refresh_rows(reset=True)

    def row_count(self) -> int:
        return len(self.lanes)

    def row_key(self, index: int) -> object:
        st = self.lanes[index] if index < len(self.lanes) else None
        return (index, id(st), len(st.rows) if st else 0, self._version, self.by_time,
                self.size.width)

    def lane_at(self, index: int) -> StreamInfo | None:
        return self.lanes[index] if 0 <= index < len(self.lanes) else None

    def render_row(self, index: int) -> Text:
        st = self.lanes[index]
        width = max(10, self.scrollable_content_region.width - LABEL - 1)
        text = Text()
        text.append(f"{lane_label(st):<{LABEL}} ", style.stream_style(st.stream_id))
        text.append_text(self.lane(st, width))
        return text

    def _x(self, row: int, width: int) -> int:
        table = self.session.table
        if self.by_time:
            t0, t1 = self._tspan
            frac = (table.time[row] - t0) / (t1 - t0) if t1 > t0 else 0.0
        else:
            r0, r1 = self._span
            frac = (row - r0) / (r1 - r0) if r1 > r0 else 0.0
        return min(width - 1, max(0, int(frac * (width - 1))))

    def _x_at(self, t: float, width: int) -> int:
        """The column of time ``t`` on the time axis."""
        t0, t1 = self._tspan
        frac = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return min(width - 1, max(0, int(frac * (width - 1))))

    def lane(self, st: StreamInfo, width: int) -> Text:
        table = self.session.table
        cells = [" "] * width
        ranks = [0] * width
        styles: list[object] = [None] * width
        rows = st.rows
        opening = rows[0]
        first, last = self._x(rows[0], width), self._x(rows[-1], width)
        for x in range(first, last + 1):
            cells[x] = "┄"
        for start, end in st.stalls:
            t = table.time
            # From the last frame of the moment it began (the DATA that spent the
            # window, not a frame read with it), to its end; one that never resumed
            # lasts as far as its connection goes, unless the stream simply ended.
            a = max(rows[0], bisect_right(t, start, rows[0], rows[-1] + 1) - 1)
            if end is not None:
                x_end = self._x(min(bisect_right(t, end, rows[0], rows[-1] + 1), rows[-1]),
                                width)
            elif st.state == "closed" and st.reset is None:
                x_end = self._x(rows[-1], width)
            else:
                conn = self.session.conns.get(st.conn_id)
                if self.by_time and conn is not None and conn.closed_t is not None:
                    x_end = self._x_at(conn.closed_t, width)  # in time: to the close
                else:
                    x_end = self._x(max(rows[-1], conn.last_row if conn is not None
                                        else rows[-1]), width)
            for x in range(self._x(min(a, rows[-1]), width), x_end + 1):
                cells[x] = "░"
                styles[x] = style.FINDING
        for row in rows:
            x = self._x(row, width)
            ftype = table.type[row]
            glyph = GLYPHS.get(ftype, "·")
            rank = RANK.get(ftype, 0)
            if ftype in (0, 1) and table.flags[row] & 1 and not (ftype == 1 and row == opening):
                glyph, rank = "▶", 5  # (the HEADERS that opens a stream stays "H": a GET)
            if row in table.findings:
                # (a reset keeps its ✕, in the findings' colour: who reset is the news)
                glyph, rank = ("✕" if ftype == 3 else "!"), 7
            if rank >= ranks[x]:
                ranks[x] = rank
                cells[x] = glyph
                styles[x] = style.FINDING if glyph in "!✕" else style.stream_style(st.stream_id)
        text = Text()
        for ch, sty in zip(cells, styles, strict=True):
            text.append(ch, sty)  # type: ignore[arg-type]
        return text
