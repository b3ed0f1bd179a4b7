"""A cursor over a virtual list of rows, drawn with the Textual line API.

The shape of toolong's log view (docs/ui.md, "How it scales"): a :class:`ScrollView` whose
virtual height is the number of rows and whose :meth:`render_line` formats
only the rows on screen, with an LRU cache of rendered strips keyed by the row
and everything that changes its look. No widget per row, so a million rows
cost what twenty do.

Subclasses say how many rows there are (:meth:`row_count`) and how one looks
(:meth:`render_row`); this class does the cursor, scrolling, mouse and follow.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ui.widgets.style import NO_STYLE, SELECTED, safe, styled


class RowList(ScrollView, can_focus=True):
    """Rows with a cursor; posts :class:`RowList.Highlighted` when the cursor moves."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("ctrl+u", "half_page(-1)", "Half a page up", show=False),
        Binding("ctrl+d", "half_page(1)", "Half a page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("enter", "choose", "Open", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message):
        def __init__(self, widget: RowList, index: int) -> None:
            super().__init__()
            self.widget = widget
            self.index = index

        @property
        def control(self) -> RowList:
            return self.widget

    class Chosen(Message):
        def __init__(self, widget: RowList, index: int) -> None:
            super().__init__()
            self.widget = widget
            self.index = index

        @property
        def control(self) -> RowList:
            return self.widget

    def __init__(self, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._cache: LRUCache[tuple[object, ...], Strip] = LRUCache(1024)
        self._count = 0
        self.follow = False
        """Keep the cursor on the last row as rows are added."""
        self.content_width = 200
        self.empty_lines: list[str] = []
        """What the list says while it has no row (how to get some)."""
        self._empty_key: tuple[tuple[str, ...], int] | None = None
        self._empty_shown: list[str] = []

    # ------------------------------------------------------------ subclass API

    def row_count(self) -> int:
        raise NotImplementedError

    def render_row(self, index: int) -> Text:
        raise NotImplementedError

    def row_key(self, index: int) -> object:
        """What identifies a row's content (the cache key part); the index by default."""
        return index

    # ---------------------------------------------------------------- updates

    def refresh_rows(self, *, reset: bool = False) -> None:
        """Rows were added (or, with ``reset``, replaced): resize and repaint."""
        if reset:
            self._cache.clear()
        count = self.row_count()
        grew = count != self._count
        self._count = count
        self.virtual_size = Size(self.content_width, count)
        if self.follow and count:
            if self.cursor != count - 1:
                self.cursor = count - 1
            # force: when these rows are the first that overflow the view, the
            # vertical scrollbar (which allows scrolling) appears only at the next
            # layout, and an unforced scroll would do nothing.
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif self.cursor >= count:
            self.cursor = max(0, count - 1)
        if grew or reset:
            self.refresh()

    def invalidate(self) -> None:
        self._cache.clear()
        self.refresh()

    def on_resize(self) -> None:
        # A following list keeps its last row in view when its own height changes (a
        # pane above it grew, the terminal was resized): it said FOLLOW while the
        # newest row sat below the bottom edge until more rows came.
        if self.follow and self._count:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True,
                                    x_axis=False, force=True)

    # ----------------------------------------------------------------- render

    def _empty_wrapped(self, width: int) -> list[str]:
        """:attr:`empty_lines` wrapped to ``width`` (an 80-column terminal cut the
        example command before its port); a command (a line indented two spaces)
        wraps as the shell reads it, its lines ending in a backslash."""
        import textwrap

        key = (tuple(self.empty_lines), width)
        if self._empty_key != key:
            out: list[str] = []
            for line in self.empty_lines:
                if len(line) <= width or width < 20:
                    out.append(line)
                elif line.startswith("  "):
                    parts = textwrap.wrap(line.strip(), width - 6, break_long_words=True,
                                          break_on_hyphens=False)
                    out.extend(("  " if i == 0 else "    ") + part
                               + (" \\" if i < len(parts) - 1 else "")
                               for i, part in enumerate(parts))
                else:
                    out.extend(textwrap.wrap(line, width, break_on_hyphens=False))
            self._empty_key, self._empty_shown = key, out
        return self._empty_shown

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= self._count:
            shown = self._empty_wrapped(width) if not self._count else []
            if index < len(shown):
                text = Text(shown[index], "dim", no_wrap=True, overflow="ellipsis")
                return Strip(styled(text.render(self.app.console)), text.cell_len).crop(
                    scroll_x, scroll_x + width).extend_cell_length(width, self.rich_style)
            return Strip.blank(width, self.rich_style)
        selected = index == self.cursor
        key = (self.row_key(index), selected, scroll_x, width, self.has_focus)
        strip = self._cache.get(key)
        if strip is None:
            text = safe(self.render_row(index))
            text.no_wrap = True
            text.overflow = "ellipsis"
            if not scroll_x and text.cell_len > width > 1:  # (cut: say so, not a value
                text.truncate(width, overflow="ellipsis")  # that reads as another)
            segments = list(text.render(self.app.console))
            strip = Strip(segments, text.cell_len).crop(scroll_x, scroll_x + width)
            strip = strip.extend_cell_length(width, self.rich_style)
            if selected:
                strip = strip.apply_style(SELECTED if self.has_focus
                                          else Style(reverse=True, dim=True))
            strip = Strip([Segment(s.text, s.style or NO_STYLE) for s in strip], width)
            self._cache.set(key, strip)
        return strip

    # ----------------------------------------------------------------- cursor

    def watch_cursor(self, old: int, new: int) -> None:
        if not self._count:
            return
        self.refresh_line(old)
        self.refresh_line(new)
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height or 1
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        self.post_message(self.Highlighted(self, new))

    def move_to(self, index: int) -> None:
        if self._count:
            self.cursor = max(0, min(index, self._count - 1))

    def action_cursor(self, delta: int) -> None:
        self.follow = False
        self.move_to(self.cursor + delta)

    def action_page(self, delta: int) -> None:
        self.follow = False
        self.move_to(self.cursor + delta * max(1, self.scrollable_content_region.height - 1))

    def action_half_page(self, delta: int) -> None:
        self.follow = False
        self.move_to(self.cursor + delta * max(1, self.scrollable_content_region.height // 2))

    def action_first(self) -> None:
        self.follow = False
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(self._count - 1)

    def action_choose(self) -> None:
        if self._count:
            self.post_message(self.Chosen(self, self.cursor))

    def on_click(self, event: Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < self._count:
            self.follow = False
            self.cursor = index
            if event.chain == 2:
                self.post_message(self.Chosen(self, index))

    def on_focus(self) -> None:
        self.invalidate()

    def on_blur(self) -> None:
        self.invalidate()
