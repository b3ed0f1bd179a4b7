"""Every finding of the session at a glance: what went wrong, how often, where first.

One line per (severity, code, RFC section, sender), most severe first, then
most frequent, with whose bytes it is about (the client's or the server's: the
same rule broken by both peers is two lines, as ``check`` counts it), the first
frame that raised it (connection, stream, frame number) and its message;
connection-level findings (a desync, SETTINGS never acknowledged) are counted
with their connection. Enter on a line
filters the timeline to ``finding:CODE`` (a connection-level one: scopes it to
the connection, and says the finding); ``g`` jumps to its first frame.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from proxy.observe.findings import Severity
from proxy.summary import FindingGroup, FindingTally
from ui.model.session import Session
from ui.model.table import DIRECTIONS
from ui.widgets.rowtable import RowTable
from ui.widgets.style import safe_str

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


def finding_groups(session: Session) -> list[FindingGroup]:
    """The session's findings grouped by (severity, code, RFC), most severe and most
    frequent first (as the headless summary and ``check`` count them)."""
    tally = FindingTally()
    table = session.table
    with session.lock:
        for row in table.finding_rows:
            for f in table.findings.get(row, ()):
                sid = table.stream[row]
                tally.add(f, f"#{table.conn[row]}" + (f" stream {sid}" if sid else "")
                          + f", frame {row + 1}", row,  # (as g and the detail count)
                          sender=DIRECTIONS[table.direction[row]].sender)
        for conn in session.conns.values():
            for f, d in zip(conn.conn_findings, conn.conn_finding_dirs, strict=True):
                tally.add(f, f"#{conn.conn_id} (connection)", sender=d.sender)
    return tally.groups()


class FindingsScreen(ModalScreen[tuple[str, str | int] | None]):
    """Dismissed with ("filter", "code[ dir:DIR]"), ("goto", row), ("conn", "#N code: message")
    or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "dismiss", "Back"),
        Binding("g", "goto_first", "First frame"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.groups = finding_groups(session)

    def compose(self) -> ComposeResult:
        total = sum(g.count for g in self.groups)
        with Vertical(id="findings-box"):
            kinds = len(self.groups)
            yield Static(Text(f"Findings: {total} in {kinds} kind{'' if kinds == 1 else 's'}  "
                              "(Enter: filter the timeline to one, g: its first frame, "
                              "Esc: back)", style="bold"), id="findings-title")
            table = RowTable(id="findings-table", cursor_type="row", zebra_stripes=True,
                             fill_last=True)
            yield table
            # The table cuts long messages at its width: the highlighted one, whole.
            yield Static("", id="findings-detail", markup=False)
            if not self.groups:
                yield Static("No findings: nothing in this session broke a rule h2scope "
                             "checks (docs/findings.md lists them).", id="findings-none")

    def on_mount(self) -> None:
        table = self.query_one("#findings-table", RowTable)
        for col in ("severity", "code", "RFC", "by", "count", "first", "message"):
            table.add_column(col, key=col)
        for i, g in enumerate(self.groups):
            table.add_row(Text(g.severity.name.lower(), style=_STYLE[g.severity]), g.code,
                          g.rfc, g.sender or "", Text(f"{g.count:,}", justify="right"), g.where,
                          Text(safe_str(g.message), overflow="ellipsis", no_wrap=True),
                          key=str(i))
        table.fit_last_column()
        table.focus()

    def _current(self) -> FindingGroup | None:
        table = self.query_one("#findings-table", DataTable)
        if not self.groups or table.cursor_row >= len(self.groups):
            return None
        return self.groups[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        group = self._current()
        detail = self.query_one("#findings-detail", Static)
        by = f" by the {group.sender}" if group is not None and group.sender else ""
        detail.update("" if group is None else safe_str(
            f"{group.code} ({group.rfc}){by}, first at {group.where}: {group.message}"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        group = self._current()
        if group is None:
            return
        if group.first_row is None and group.where.startswith("#"):
            # A connection-level finding marks no frame (finding:CODE would show none):
            # the timeline is scoped to the connection it was raised on instead.
            self.dismiss(("conn", f"{group.where.split()[0]} {group.code}: {group.message}"))
        else:
            # (the line's sender too: the same rule broken by the other peer is a line
            # of its own)
            side = {"client": " dir:c2s", "server": " dir:s2c"}.get(group.sender or "", "")
            self.dismiss(("filter", group.code + side))

    def action_goto_first(self) -> None:
        group = self._current()
        if group is not None and group.first_row is not None:
            self.dismiss(("goto", group.first_row))
        elif group is not None:
            # A connection-level finding may point back to a frame (where a stall
            # began): found by its connection and number, once asked for.
            row = self._frame_of(group)
            if row is not None:
                self.dismiss(("goto", row))
            else:
                self.notify("a connection-level finding: it has no frame of its own")

    def _frame_of(self, group: FindingGroup) -> int | None:
        if group.seq is None or not group.where.startswith("#"):
            return None
        try:
            conn = int(group.where[1:].split()[0])
        except ValueError:
            return None
        table = self.session.table
        with self.session.lock:
            for row, (c, seq) in enumerate(zip(table.conn, table.seq, strict=False)):
                if c == conn and seq == group.seq:
                    return row
        return None
