"""A one-line progress meter on a terminal's stderr, for long commands.

``export``, ``replay``, ``import``, ``check`` and ``diff`` show how far they are when stderr is a
terminal and say nothing otherwise (a pipe, a CI log). The line is rewritten
in place at most five times a second, starting after half a second (short
runs show nothing), and erased when the command is done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

WIDTH = 60


def counted(records: Iterable[T], progress: Progress, label: str, position: Callable[[], int],
            size: int) -> Iterator[T]:
    """``records`` passed through, with ``label: N records, P%`` shown as they go
    (``position()``: bytes read so far of ``size``)."""
    n = 0
    for n, rec in enumerate(records, 1):
        if n % 4096 == 0:
            progress.fraction(label, position(), size, f"{n} records")
        yield rec


class Progress:
    """``show(text)`` rewrites the line; ``done()`` erases it. Silent unless ``enabled``."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.next = time.monotonic() + 0.5
        self.shown = False

    def show(self, text: str, *, now: bool = False) -> None:
        t = time.monotonic()
        if not self.enabled or (t < self.next and not now):
            return
        self.next = t + 0.2
        self.shown = True
        sys.stderr.write("\r" + text.ljust(WIDTH)[:WIDTH])
        sys.stderr.flush()

    def fraction(self, label: str, done: int, total: int, what: str) -> None:
        """``label: <what>, NN.N%`` for ``done`` of ``total`` bytes."""
        if self.enabled:
            self.show(f"{label}: {what}, {min(100.0, 100.0 * done / max(total, 1)):5.1f}%")

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * WIDTH + "\r")
            sys.stderr.flush()
            self.shown = False
