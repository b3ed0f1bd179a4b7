"""The timeline: one row per frame, all connections and streams interleaved.

Columns: time since the first frame, connection, direction (→ client to
server, ← server to client), stream id in the stream's colour, frame type by
its RFC name, flags, payload length and the one-line summary shared with the
headless printer (:func:`proxy.observe.describe.frame_summary`). A ``!`` marks
frames with findings.

The rows shown are a *view*: ``None`` (every frame) or an index array a
filter produced. Only visible rows are formatted (see :class:`RowList`).
"""

from __future__ import annotations

from array import array

from rich.text import Text

from proxy.observe.describe import block_summary, frame_summary, header_frame_fields
from proxy.observe.enums import flag_names, type_name
from proxy.observe.events import FrameObserved
from proxy.observe.findings import Severity
from ui.model.connections import ConnInfo
from ui.model.session import Session
from ui.widgets import style
from ui.widgets.rowlist import RowList

_BLOCK_TYPES = (1, 5, 9)
_RST_STREAM = 3
"""HEADERS, PUSH_PROMISE, CONTINUATION: their summary needs the decoded block."""
_SHORT_FLAGS = {"END_STREAM": "ES", "END_HEADERS": "EH", "PADDED": "PAD", "PRIORITY": "PRI",
                "ACK": "ACK"}


def short_flags(ftype: int, flags: int) -> str:
    return ",".join(_SHORT_FLAGS.get(n, n) for n in flag_names(ftype, flags))


class Timeline(RowList):
    """Every frame (or a filtered view of them), newest at the bottom."""

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.view: array[int] | None = None
        """Rows shown, ascending; None shows every row of the table."""
        self.content_width = 160
        self._widths = Widths()

    def set_session(self, session: Session) -> None:
        self.session = session
        self.view = None
        self._widths = Widths()
        self.refresh_rows(reset=True)

    def row_count(self) -> int:
        return len(self.view) if self.view is not None else len(self.session.table)

    def row_at(self, index: int) -> int | None:
        """The table row shown at ``index`` (None past the end)."""
        if index < 0 or index >= self.row_count():
            return None
        return self.view[index] if self.view is not None else index

    @property
    def selected_row(self) -> int | None:
        return self.row_at(self.cursor)

    def index_of(self, row: int) -> int | None:
        """Where table row ``row`` is shown (or the nearest row after it)."""
        if self.view is None:
            return row if row < len(self.session.table) else None
        from bisect import bisect_left

        i = bisect_left(self.view, row)
        return i if i < len(self.view) else (len(self.view) - 1 if self.view else None)

    def set_view(self, view: array[int] | None) -> None:
        """Show ``view`` instead, keeping the selected frame selected if it is in it."""
        keep = self.selected_row
        self.view = view
        self._count = -1
        self.refresh_rows(reset=True)
        if keep is not None and not self.follow:
            i = self.index_of(keep)
            if i is not None:
                self.cursor = i
                self.scroll_to(y=max(0, i - self.scrollable_content_region.height // 2),
                               animate=False, immediate=True)

    def row_key(self, index: int) -> object:
        row = self.row_at(index)
        # (the widths are in the key: rows drawn narrower are drawn again when a
        # column widens, so the columns stay aligned)
        return (row, row is not None and row < self.session.decoded,
                self._widths.update(self.session))

    def render_row(self, index: int) -> Text:
        row = self.row_at(index)
        if row is None:
            return Text("")
        # (row_key, which the list asks first, brought the widths up to date)
        return render_frame_row(self.session, row, self._widths.widths)


class Widths:
    """The widths of the time, connection and stream columns: wide enough for every
    frame the session holds, so a 1,000th second, connection or a stream id of six
    digits does not shift its rows' columns off the others'. They only grow, and
    each frame is looked at once (its slice of the table's arrays, in C)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen = 0
        self.max_time = 0.0
        self.max_conn = 0
        self.max_stream = 0
        self.widths = (10, 3, 5)

    def update(self, session: Session) -> tuple[int, int, int]:
        t = session.table
        n = len(t)
        if n == self.seen:
            return self.widths
        if n < self.seen:
            self.reset()  # (a new table)
        a = self.seen
        self.seen = n
        self.max_time = max(self.max_time, max(t.time[a:n]))
        self.max_conn = max(self.max_conn, max(t.conn[a:n]))
        self.max_stream = max(self.max_stream, max(t.stream[a:n]))
        self.widths = (max(10, len(f"{session.relative(self.max_time):.6f}")),
                       max(3, len(str(self.max_conn))), max(5, len(str(self.max_stream))))
        return self.widths


def render_frame_row(session: Session, row: int,
                     widths: tuple[int, int, int] = (10, 3, 5)) -> Text:
    """One timeline row as styled text; ``widths`` are the time, connection and
    stream columns' (:class:`Widths`)."""
    t = session.table
    ftype = t.type[row]
    sid = t.stream[row]
    findings = t.findings.get(row)
    text = Text()
    if findings:
        worst = max(f.severity for f in findings)
        text.append("!", style.FINDING if worst >= Severity.ERROR else style.WARNING)
    else:
        text.append(" ")
    time_w, conn_w, sid_w = widths
    text.append(f"{session.relative(t.time[row]):{time_w}.6f} ", style.TIME)
    text.append(f"#{t.conn[row]:<{conn_w}} ", style.CONN)
    s2c = t.direction[row]
    text.append("← " if s2c else "→ ", style.ARROW_S2C if s2c else style.ARROW_C2S)
    text.append(f"{sid:>{sid_w}} ", style.stream_style(sid))
    text.append(f"{type_name(ftype):<13.13} ", style.TYPE_STYLES.get(ftype, style.SUMMARY))
    text.append(f"{short_flags(ftype, t.flags[row]):<9} ", style.TIME)
    text.append(f"{t.length[row]:>6} ")
    if row >= session.decoded and ftype in _BLOCK_TYPES:
        text.append("(decoding…)", style.TIME)
        return text
    ev = t.event(row)
    if ev is None:
        text.append("(bytes not available)" if session.indexed or session.loaded
                    or session.decoded else "(reading…)", style.TIME)
    elif ev.block is not None and ftype in _BLOCK_TYPES:
        text.append(_block_row_summary(ev, session.conns.get(t.conn[row])))
    else:
        text.append(frame_summary(ev))
        if ftype == _RST_STREAM:
            # (which request was reset, without looking up its HEADERS among dozens)
            c = session.conns.get(t.conn[row])
            st = c.streams.get(sid) if c is not None else None
            if st is not None and st.request_headers:
                text.append(f"  {st.label}", style.TIME)
    return text


def _block_row_summary(ev: FrameObserved, conn: ConnInfo | None) -> str:
    """A header frame's summary with what a narrow timeline must show first: the
    request's method and path (its ``:authority`` left out when it names the
    connection's own server, :meth:`ConnInfo.own_authority`), then the priority,
    promised stream and padding a browser's HEADERS carry before it."""
    assert ev.block is not None
    headers = ev.block.headers
    authority = next((v for n, v in headers if n == ":authority"), None)
    if authority is not None and conn is not None and conn.own_authority(authority):
        headers = tuple((n, v) for n, v in headers if n != ":authority")
    return "  ".join([block_summary(headers), *header_frame_fields(ev.frame)])
