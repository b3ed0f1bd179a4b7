"""A DataTable whose keys move by rows, as the timeline's do.

Textual's DataTable gives ``Home``/``End`` to the columns (they scrolled the
requests table sideways and left its cursor on the first row, so Enter opened
that one); here they go to the first and last row, ``G`` to the last, ``j``/``k``
move, and the last column takes the width the others leave (a message cut at
the screen's edge with no way to read it otherwise).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable


class RowTable(DataTable[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end,G", "scroll_bottom", "Last row", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, *, fill_last: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fill_last = fill_last

    def on_resize(self) -> None:
        self.fit_last_column()

    def fit_last_column(self) -> None:
        """With ``fill_last``, give the last column the width the others leave (its
        cells are cut there, with '…')."""
        if not self.fill_last or not self.columns:
            return
        *others, last = self.columns.values()
        pad = 2 * self.cell_padding
        used = sum(c.get_render_width(self) for c in others)
        room = self.scrollable_content_region.width - used - pad
        width = max(10, room)
        if last.auto_width or last.width != width:
            last.auto_width = False
            last.width = width
            self._clear_caches()  # (the rows were rendered at the old width)
            self._require_update_dimensions = True
            self.refresh()
