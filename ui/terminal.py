"""What the UI needs from the terminal it runs in: a theme that suits its
colours, monochrome that reads (NO_COLOR), and the signals that end it
(SIGTERM, SIGHUP)."""

from __future__ import annotations

import os
import signal
from typing import Any

from rich.color import ColorType
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter


def pick_theme(name: str) -> str:
    """The Textual theme for ``ui.theme``: ``auto`` picks the ANSI theme (the
    terminal's own 16 colours) unless the terminal says it has more."""
    if name == "light":
        return "textual-light"
    if name == "dark":
        return "textual-dark"
    if name == "ansi":
        return "ansi-dark"
    rich = os.environ.get("COLORTERM", "") in ("truecolor", "24bit") or \
        "256" in os.environ.get("TERM", "")
    return "textual-dark" if rich else "ansi-dark"



class PlainContent(LineFilter):
    """Under ``NO_COLOR`` Textual draws every colour as the grey of its brightness,
    so a blue stream id or lane label came out 238 on a 234 background: nearly
    invisible. Run before that filter, this one draws the content's colours — the
    16 ANSI colour names the views use (:mod:`ui.widgets.style`), never the
    theme's — in the text colour that stands out on the background, so content
    reads as plain text told apart by bold, dim and reverse, as monochrome should."""

    def __init__(self) -> None:
        super().__init__()
        self._plain: dict[tuple[Style, Color], Style] = {}

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        out = []
        plain = self._plain
        for text, style, control in segments:
            if style is not None and style.color is not None \
                    and style.color.type is ColorType.STANDARD:
                key = (style, background)
                new = plain.get(key)
                if new is None:
                    if len(plain) > 4096:
                        plain.clear()
                    new = plain[key] = style + Style(
                        color=background.get_contrast_text(1.0).rich_color)
                style = new
            out.append(Segment(text, style, control))
        return out


def termination_signals() -> list[int]:
    return [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]


class TerminationGuard:
    """While a live UI starts and while it cleans up — when the app's own handlers
    (:meth:`H2ScopeApp._catch_termination`) are not installed — SIGTERM and
    SIGHUP are noted instead of killing the process, so the proxy always stops
    and a temporary capture is always removed. Main thread only."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def arm(self) -> None:
        for sig in termination_signals():
            try:
                previous = signal.signal(sig, self._note)
            except (ValueError, OSError):  # not the main thread
                continue
            self._previous.setdefault(sig, previous)

    def disarm(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
