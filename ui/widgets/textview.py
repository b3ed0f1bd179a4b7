"""A read-only, scrollable view of styled text, drawn with the line API.

The frame detail tabs change on every cursor move. A ``Static`` inside a
scroll container makes Textual lay out the whole screen again each time its
content changes (≈ 40 ms here, most of a key press's budget). This view keeps
its outer size fixed and only its scrollable extent changes, which it sets
without a relayout, so showing another frame repaints just this widget.

With ``wrap``, a line wider than the view continues on the next lines (a
finding's message, a long header value) instead of running off to the right;
the hex dump, whose columns mean something, scrolls sideways instead. The
continuation lines are indented under the value they continue (a field's
value column, or two more than the line's own indentation), so that a long
``:path`` or ``summary`` does not run back to the left edge among the names.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ui.widgets.jumps import JumpKeys
from ui.widgets.style import safe, styled

MAX_WIDTH = 400
_VALUE_COLUMN = re.compile(r" {2,}")


def hang(plain: str) -> int:
    """Where a wrapped line's continuation starts: the value column of a
    ``name    value`` line (a run of two spaces or more within its first 16
    columns, after its indentation), else two more than its indentation."""
    indent = len(plain) - len(plain.lstrip(" "))
    m = _VALUE_COLUMN.search(plain, indent, 16)
    if m is not None and m.end() < len(plain):
        return m.end()
    return indent + 2


def wrap_hanging(line: Text, width: int, console: Console) -> list[Text]:
    """``line`` wrapped to ``width`` columns, continuation lines indented by
    :func:`hang` (none when that would leave less than half the width)."""
    pieces = list(line.wrap(console, width))
    indent = hang(line.plain)
    if len(pieces) < 2 or indent > width // 2:
        return pieces
    first = pieces[0]
    rest = line[len(first.plain):]
    lead = len(rest.plain) - len(rest.plain.lstrip(" "))
    out = [first]
    for piece in rest[lead:].wrap(console, width - indent):
        out.append(Text(" " * indent) + piece)
    return out


class TextView(ScrollView, JumpKeys, can_focus=True):
    def __init__(self, *, id: str | None = None, classes: str | None = None,
                 wrap: bool = False) -> None:
        super().__init__(id=id, classes=classes)
        self.wrap = wrap
        self._source: list[Text] = [Text("")]
        """The text's lines as given; :attr:`_lines` are what is drawn (wrapped)."""
        self._lines: list[Text] = [Text("")]
        self._text = Text("")
        self._wrapped_at = 0
        """The width :attr:`_lines` were wrapped for (0: not wrapped)."""
        self._cache: LRUCache[tuple[int, int, int], Strip] = LRUCache(256)

    @property
    def content(self) -> Text:
        """What the view shows (tests read ``content.plain``)."""
        return self._text

    def update(self, text: Text | str) -> None:
        if isinstance(text, str):
            text = Text(text)
        text = safe(text)  # (a peer's control characters never reach the terminal)
        self._text = text
        self._source = list(text.split("\n", allow_blank=True)) or [Text("")]
        if self._source and not self._source[-1].plain and len(self._source) > 1:
            self._source.pop()
        self._layout(self.scrollable_content_region.width)
        self.scroll_to(0, 0, animate=False, immediate=True)

    def _layout(self, width: int) -> None:
        """Lines for ``width`` columns, and the extent the view scrolls over."""
        lines = self._source
        self._wrapped_at = 0
        if self.wrap and width > 8 and any(line.cell_len > width for line in lines):
            wrapped: list[Text] = []
            console = self.app.console
            for line in lines:
                if line.cell_len <= width:
                    wrapped.append(line)
                else:
                    wrapped.extend(wrap_hanging(line, width, console))
            lines = wrapped
            self._wrapped_at = width
        self._lines = lines
        self._cache.clear()
        size = Size(min(MAX_WIDTH, max((line.cell_len for line in lines), default=0)),
                    len(lines))
        # Set the extent without the relayout the reactive would ask for: the
        # widget's own size does not change, only what it scrolls over.
        self.set_reactive(TextView.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.wrap:
            width = self.scrollable_content_region.width
            if width != self._wrapped_at and (self._wrapped_at or any(
                    line.cell_len > width for line in self._source)):
                self._layout(width)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        key = (index, scroll_x, width)
        strip = self._cache.get(key)
        if strip is None:
            line = self._lines[index]
            segments = styled(line.render(self.app.console))
            strip = Strip(segments, line.cell_len).crop(scroll_x, scroll_x + width)
            strip = strip.extend_cell_length(width, self.rich_style)
            self._cache.set(key, strip)
        return strip
