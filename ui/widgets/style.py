"""Colours shared by the views.

Only the 16 ANSI colours (by name) are used for content, never RGB: the
terminal's own palette then decides the exact shade, so the same styles read
in dark and light themes and in 16-colour terminals. Emphasis uses bold and
reverse video, which every terminal has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text

STREAM_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan",
                  "bright_magenta", "bright_green", "bright_blue", "red")
"""A stream's colour is picked from these by its id: stable for the stream."""

TYPE_STYLES = {
    0: Style(),                                   # DATA
    1: Style(bold=True),                          # HEADERS
    2: Style(dim=True),                           # PRIORITY
    3: Style(color="red", bold=True),             # RST_STREAM
    4: Style(color="blue"),                       # SETTINGS
    5: Style(color="magenta", bold=True),         # PUSH_PROMISE
    6: Style(color="blue"),                       # PING
    7: Style(color="red", bold=True),             # GOAWAY
    8: Style(dim=True),                           # WINDOW_UPDATE
    9: Style(bold=True),                          # CONTINUATION
}

TIME = Style(dim=True)
CONN = Style(color="bright_black")
ARROW_C2S = Style(color="green", bold=True)
ARROW_S2C = Style(color="blue", bold=True)
FINDING = Style(color="red", bold=True)
WARNING = Style(color="yellow", bold=True)
SUMMARY = Style()
SELECTED = Style(reverse=True)
BOLD = Style(bold=True)
HEADER_BYTES = Style(color="yellow", bold=True)
PAD_BYTES = Style(color="bright_black")
PAYLOAD_BYTES = Style(color="cyan")
PRIORITY_BYTES = Style(color="magenta")


def stream_style(stream_id: int) -> Style:
    if stream_id == 0:
        return Style(dim=True)
    return Style(color=STREAM_COLOURS[(stream_id // 2 + stream_id % 2) % len(STREAM_COLOURS)],
                 bold=True)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udcff]")
"""What a terminal must never receive from a peer's text: C0 controls (but tab and
newline, which the views use), DEL, C1 controls (``\\x9b`` starts a sequence too),
and the lone surrogates that stand for bytes that are not UTF-8."""


def _picture(m: re.Match[str]) -> str:
    c = ord(m.group())
    return chr(0x2400 + c) if c < 0x20 else "␡" if c == 0x7F else "�"


def safe_str(text: str) -> str:
    """``text`` with each control character shown by its symbol (``\\x1b`` → ``␛``),
    one for one."""
    return _CONTROL.sub(_picture, text) if _CONTROL.search(text) else text


def safe(text: Text) -> Text:
    """:func:`safe_str` over a styled text: the styles keep their places (each
    character is replaced by one). A header value or request line from a peer goes
    through it before any view draws it, so none writes escape sequences to the
    user's terminal."""
    plain = text.plain
    if not _CONTROL.search(plain):
        return text
    out = Text(_CONTROL.sub(_picture, plain), style=text.style, justify=text.justify,
               overflow=text.overflow, no_wrap=text.no_wrap, end=text.end)
    out.spans = list(text.spans)
    return out


NO_STYLE = Style.null()
"""The style of a segment Rich rendered with none (an empty line's ``Segment('')``)."""


def styled(segments: Iterable[Segment]) -> list[Segment]:
    """``segments`` with a style each: Textual's monochrome filter (``NO_COLOR``)
    reads every segment's style, and one without crashed the UI at start-up."""
    return [s if s.style is not None else Segment(s.text, NO_STYLE, s.control)
            for s in segments]
