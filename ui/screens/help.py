"""The ``?`` screen: every key, the filter language in brief, the glyphs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ui.keymap import help_rows
from ui.widgets.jumps import JumpScroll
from ui.widgets.lanes import LEGEND

FILTER_HELP = "\n".join((
    "type:DATA,HEADERS  stream:5  stream:1-9  conn:2  dir:c2s|s2c  host:*.example.com",
    "finding:any|error|warning|CODE  len>1000  flags:END_STREAM  header:content-type=json",
    "status:404  status:5xx  method:POST  path:/api*  grpc:failed|NOT_FOUND|14",
    "stall:any|start|end (the DATA that left its sender waiting, the WINDOW_UPDATE that "
    "reopened)",
    '"a word"   -term negates   a b or c',
    "An invalid filter says what is wrong (and where); the view stays as it was."))


MOVING_HELP = "\n".join((
    # (one line a topic: the pane wraps them to its width; broken by hand, they were
    # broken twice in an 80-column terminal)
    "↑/↓ or k/j a row, PgUp/PgDn (ctrl+b) a page, ctrl+u/ctrl+d half a page, Home/End (G) "
    "the first/last row (timeline, lanes); ↑/↓ or k/j in the connections pane too",
    "Enter: on a frame, its stream view; on a lane, scope to its stream",
    "Tab/shift+Tab: the next/previous pane (connections, timeline, detail, lanes)",
    "Escape: closes a view or a box; in the filter bar, back without applying; in the "
    "connections pane, back to the timeline; at the quit question, keeps running",
    ""))


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape,question_mark", "dismiss", "Close"),
    ]

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.overrides = overrides

    def on_mount(self) -> None:
        # The keys scroll the help (taller than a 50-row terminal), not what is behind.
        self.query_one("#help", VerticalScroll).focus()

    def compose(self) -> ComposeResult:
        table = Table(title="h2scope keys  (↑/↓, PgUp/PgDn scroll this; Esc closes it)",
                      expand=True, show_edge=False)
        table.add_column("keys", style="bold")
        table.add_column("does")
        table.add_column("id (ui.keymap)", style="dim")
        for keys, desc, bid in help_rows(self.overrides):
            table.add_row(keys, desc, bid)
        with JumpScroll(id="help"):
            yield Static(table, id="help-keys")
            yield Static(Text("Filter language (docs/filters.md)\n", style="bold")
                         + Text(FILTER_HELP), id="help-filter")
            yield Static(Text("Moving around\n", style="bold") + Text(MOVING_HELP),
                         id="help-moving")
            yield Static(Text("Stream lanes: ", style="bold") + Text(LEGEND), id="help-lanes")
            yield Static(Text("Timeline: → client to server, ← server to client, ! a frame "
                              "with findings. Esc closes this screen.", style="dim"))
