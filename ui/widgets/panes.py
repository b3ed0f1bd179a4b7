"""The connections pane, the frame detail tabs and the status bar.

Connections are few (hundreds, not millions), so a DataTable is fine here;
the frame timeline is the one place that must not have a widget per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, TabbedContent, TabPane
from textual.widgets.data_table import RowKey

from proxy.observe.events import FrameObserved
from ui.model import detail
from ui.model.connections import ConnInfo
from ui.model.session import Session
from ui.widgets.style import safe_str
from ui.widgets.textview import TextView

ALL = "all"


def _bytes(x: int) -> str:
    """A byte count short: ``9,999``, ``44K`` (KiB), ``12M`` (MiB)."""
    if x >= 10_000_000:
        return f"{x / 1_048_576:.0f}M"
    if x >= 10_000:
        return f"{x / 1024:.0f}K"
    return f"{x:,}"


def _count(x: int) -> str:
    """A count (of frames) short, in thousands, not KiB: ``9,999``, ``45k``, ``12M``."""
    if x >= 10_000_000:
        return f"{x / 1_000_000:.0f}M"
    if x >= 10_000:
        return f"{x / 1000:.0f}k"
    return f"{x:,}"


def conn_cells(c: ConnInfo) -> tuple[str | Text, ...]:
    total = len(c.streams)
    findings = Text(f"{c.findings:,}", style="bold red") if c.findings else Text("0")
    state: str | Text = Text(c.state, style="bold red") if c.errors else c.state
    note = c.note
    return (f"#{c.conn_id}", c.client, safe_str(c.target), safe_str(mode_kind(c.meta)),
            c.protocol, state, findings, f"{_count(c.frames[0])}/{_count(c.frames[1])}",
            f"{_bytes(c.bytes[0])}/{_bytes(c.bytes[1])}", f"{c.open_streams:,}/{total:,}",
            safe_str(c.tls("client")), safe_str(c.tls("server")),
            safe_str(note if len(note) <= NOTE_WIDTH else note[:NOTE_WIDTH - 1] + "…"))


def mode_kind(meta: dict[str, object]) -> str:
    """The mode's kind — ``regular``, ``socks5``, ``reverse``, ``upstream`` (or
    ``pcap``, ``netlog`` when imported) — without its target and listening port:
    ``reverse:https://localhost:65010@65021`` took 38 columns and pushed the state,
    the counts and the note off the screen (the connection tab ``i`` says it whole)."""
    spec = str(meta.get("mode") or "-")
    return spec.split(":", 1)[0].split("@", 1)[0] or spec


NOTE_WIDTH = 90
"""Characters of a connection's note in its row (highlighting the row shows it whole)."""
COLUMNS = ("conn", "client", "target", "mode", "proto", "state", "findings", "frames →/←",
           "bytes →/←", "streams open/all", "TLS client", "TLS server", "note")
"""What tells connections apart and what went wrong first: a narrow terminal cuts the
TLS legs (the same on most rows) before the state and the counts."""


class ConnectionsPane(DataTable[str | Text]):
    """Every connection, plus an "all" row; selecting one scopes the other views."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "cursor_up", "Up", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        # (DataTable's Home/End scroll sideways: here they go to "all" and the last
        # connection, as in the timeline)
        Binding("home", "first_row", "All connections", show=False),
        Binding("end,G", "last_row", "Last connection", show=False),
        Binding("escape", "app.focus_timeline", "Back to the timeline", show=False),
    ]

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=max(0, len(self._rows) - 1))

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.session = session
        self._version = -1
        self._rows: list[str] = []
        self._shown: dict[str, tuple[str | Text, ...]] = {}
        """Cells as last drawn, per row key."""
        self._totals: tuple[str, ...] = ()
        self.room = 7
        """The most lines the pane may take (the app sets it from the terminal's size)."""
        self._fitted_rows = 0

    def on_mount(self) -> None:
        for col in COLUMNS:
            self.add_column(col, key=col)
        self.add_row("all", "", "every connection, interleaved", *([""] * (len(COLUMNS) - 3)),
                     key=ALL)
        self._rows = [ALL]

    def sync(self) -> None:
        s = self.session
        if s.version == self._version:
            return
        self._version = s.version
        with s.lock:
            conns = list(s.conns.values())
        shown = self._shown
        out_of_order = False
        for c in conns:
            key = str(c.conn_id)
            cells = conn_cells(c)
            before = shown.get(key)
            if before is None:
                # Connections appear when they start relaying, so a later one can come
                # first (its handshake finished sooner): keep the rows in id order.
                out_of_order |= len(self._rows) > 1 and c.conn_id < int(self._rows[-1])
                self.add_row(*cells, key=key)
                self._rows.append(key)
            elif before != cells:  # only what changed: closed connections cost nothing
                for col, value, old in zip(COLUMNS, cells, before, strict=True):
                    if value != old:  # (a column widens with what it shows: open → closed)
                        self.update_cell(key, col, value, update_width=True)
            shown[key] = cells
        if out_of_order:
            self._sort_by_id()
        if len(self._rows) != self._fitted_rows:
            # (after the table has measured its new rows: resized in the same turn, it
            # could be drawn with its columns at their headers' widths)
            self._fitted_rows = len(self._rows)
            self.call_after_refresh(self.fit_height)
        totals = (
            f"{_count(sum(c.frames[0] for c in conns))}/{_count(sum(c.frames[1] for c in conns))}",
            f"{sum(c.findings for c in conns):,}", f"{len(conns):,}",
            f"{_bytes(sum(c.bytes[0] for c in conns))}/{_bytes(sum(c.bytes[1] for c in conns))}",
            f"{sum(c.open_streams for c in conns):,}/{sum(len(c.streams) for c in conns):,}")
        if totals != self._totals:
            self._totals = totals
            self.update_cell(ALL, "frames →/←", totals[0], update_width=True)
            self.update_cell(ALL, "findings", totals[1], update_width=True)
            self.update_cell(ALL, "bytes →/←", totals[3], update_width=True)
            self.update_cell(ALL, "streams open/all", totals[4], update_width=True)
            # (how many rows there are: a small terminal shows only a few of them)
            self.update_cell(ALL, "target", f"every connection ({totals[2]}), interleaved",
                             update_width=True)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Measure new rows (DataTable does it when idle), then drop what was drawn
        before: DataTable keeps lines rendered at the old column widths unless a
        row has an auto height, so a table drawn between adding a row and
        measuring it (a loaded machine) stayed at its headers' widths."""
        super()._update_dimensions(new_rows)
        self._clear_caches()
        self.refresh()

    def fit_height(self) -> None:
        """As tall as its rows (the header, "all", a row per connection, the rule
        under it), up to :attr:`room`: a few connections leave the timeline the
        lines, many get more than a fixed handful."""
        height = max(4, min(len(self._rows) + 2, self.room))
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = height

    def _sort_by_id(self) -> None:
        """Rows by connection id ("all" first); the cursor stays on its connection."""
        selected = self._rows[self.cursor_row] if self.cursor_row < len(self._rows) else ALL
        self.sort(key=lambda row: -1 if row[0] == "all" else int(str(row[0]).lstrip("#")))
        self._rows = [str(row.key.value) for row in self.ordered_rows]
        self.move_cursor(row=self._rows.index(selected), animate=False)

    def selected_conn(self) -> int | None:
        if not self._rows or self.cursor_row >= len(self._rows):
            return None
        key = self._rows[self.cursor_row]
        return None if key == ALL else int(key)

    def select_conn(self, conn_id: int | None) -> None:
        key = ALL if conn_id is None else str(conn_id)
        if key in self._rows:
            self.move_cursor(row=self._rows.index(key))


TABS = ("decoded", "hpack", "hex", "findings")


class DetailPane(Vertical):
    """Frame detail for the selected row, in tabs."""

    def __init__(self, session: Session, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session = session
        self.row: int | None = None
        self._rendered: set[str] = set()
        self._event: FrameObserved | None = None
        self._findings_label = "Findings"

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="decoded", id="detail-tabs"):
            for tab, title in zip(TABS, ("Decoded", "HPACK", "Hex", "Findings"), strict=True):
                with TabPane(title, id=tab):
                    yield TextView(id=f"{tab}-body", wrap=tab != "hex")

    @property
    def active(self) -> str:
        return self.query_one(TabbedContent).active

    @active.setter
    def active(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def show(self, row: int | None) -> None:
        """Show frame ``row``: the visible tab now, the others when they are opened."""
        self.row = row
        self._rendered.clear()
        self._event = None
        self._render_tab(self.active)

    def _render_tab(self, tab: str) -> None:
        if tab in self._rendered:
            return
        self._rendered.add(tab)
        body = self.query_one(f"#{tab}-body", TextView)
        row = self.row
        table = self.session.table
        if row is None or row >= len(table):
            body.update("No frame selected.")
            return
        if self._event is None:
            self._event = table.event(row)
        ev = self._event
        # (the pane's width: a tab not shown yet has none of its own)
        width = body.scrollable_content_region.width or self.content_region.width - 2
        width = width if width > 0 else 80
        if tab == "decoded":
            body.update(detail.decoded(self.session, row, ev, width))
        elif tab == "hpack":
            body.update(detail.hpack(self.session, row, ev))
        elif tab == "hex":
            body.update(detail.hex_view(ev.frame if ev is not None else None, width))
        else:
            body.update(detail.findings_view(self.session, row))
        n = len(table.findings.get(row, ()))
        label = f"Findings ({n})" if n else "Findings"
        if label != self._findings_label:  # a label change relayouts the tabs
            self._findings_label = label
            self.query_one(TabbedContent).get_tab("findings").label = label

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if self.row is not None and event.pane.id:
            self._render_tab(event.pane.id)

    def text(self, tab: str) -> str:
        """The plain text a tab shows (for tests and copy)."""
        self._render_tab(tab)
        return self.query_one(f"#{tab}-body", TextView).content.plain


class StatusBar(Widget):
    """Listen address, mode, recording, rates, totals, how far behind the capture.

    One line of fixed height (app.tcss): a change repaints this widget only.
    (``Static.update`` would lay the whole screen out again, every tick, since
    the frame rate in the bar changes every tick.)
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._parts: list[tuple[str, str]] = []
        self._message = ""
        self._text = Text()

    def set_parts(self, parts: list[tuple[str, str]], message: str = "") -> None:
        """The bar's parts, then ``message`` (the last thing said) after them."""
        if parts == self._parts and message == self._message:
            return  # the bar is refreshed every tick: repaint only on change
        self._parts = parts = [(safe_str(p), sty) for p, sty in parts]
        self._message = message = safe_str(message)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (part, sty) in enumerate(parts):
            if i:
                text.append(" │ ", "dim")
            text.append(part, sty)
        self._text = text
        self.plain = text.plain + (f" │ {message}" if message else "")
        self.refresh()

    def render(self) -> Text:
        """The parts, cut short with "…" where the line is too narrow for them and
        the message: what was just said (a save's file, a question) stays whole."""
        message = self._message
        if not message:
            return self._text
        width = self.size.width or 10_000
        room = width - len(message) - 3
        text = self._text.copy()
        if len(text) > room:
            if room < 8:  # no room left: the message alone, after an alarm if there is one
                out = Text(no_wrap=True, overflow="ellipsis")
                if self._parts and "red" in self._parts[0][1]:  # (STOPPED, NOT RECORDING)
                    out.append(self._parts[0][0], self._parts[0][1])
                    out.append(" │ ", "dim")
                out.append(message, "italic")
                return out
            text.truncate(max(1, room - 1), overflow="crop")
            text.append("…", "dim")
        text.append(" │ ", "dim")
        text.append(message, "italic")
        return text

    plain = ""
