"""Scrolling keys that jump: Home, End, PgUp and PgDn move at once.

Textual animates them (about 0.7 s on a long body or table), which reads as lag
to a keyboard user paging through a stream; the timeline already jumps.
"""

from __future__ import annotations

from textual.actions import SkipAction
from textual.containers import VerticalScroll
from textual.widget import Widget


class JumpKeys(Widget):
    """A mixin for a scrolling widget, after its class among the bases (Textual takes
    the default CSS of the first base: a scroll container's overflow)."""

    def action_scroll_home(self) -> None:
        if not self._allow_scroll:
            raise SkipAction()
        self.scroll_home(animate=False, x_axis=self.scroll_y == 0)

    def action_scroll_end(self) -> None:
        if not self._allow_scroll:
            raise SkipAction()
        self.scroll_end(animate=False, x_axis=self.scroll_y == self.is_vertical_scroll_end)

    def action_page_down(self) -> None:
        if not self.allow_vertical_scroll:
            raise SkipAction()
        self.scroll_page_down(animate=False)

    def action_page_up(self) -> None:
        if not self.allow_vertical_scroll:
            raise SkipAction()
        self.scroll_page_up(animate=False)


class JumpScroll(VerticalScroll, JumpKeys, can_focus=True):
    """A VerticalScroll whose Home, End, PgUp and PgDn jump."""
