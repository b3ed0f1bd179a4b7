"""What the UI needs from the terminal it runs in: a theme that suits its
colours, and the signals that end it (SIGTERM, SIGHUP)."""

from __future__ import annotations

import os
import signal
from typing import Any


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
