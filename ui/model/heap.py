"""Keeping Python's cycle collector off the session's data.

A session holds several objects the collector tracks per stream and frame
(stream records, header lists, connection state): a million-frame capture
leaves some 400,000 of them. Every full collection walks all of them — about
0.2 s here, and up to 0.6 s in the UI — during which no thread runs: a key
press waits, and a live proxy in the same process stops relaying. They are
kept until the session ends, so walking them again is wasted work.

:func:`freeze` collects the young generations (what just became cyclic
garbage) and moves everything that is left into the collector's permanent
generation (``gc.freeze``), which collections skip. Objects frozen still die
as usual when their last reference goes (reference counting); only a
reference cycle that was alive when frozen and dies later is not reclaimed
until the process exits — a modal screen open at that moment, say, at most
a few hundred kilobytes each time. Callers freeze after a capture is loaded
and then each time another :data:`EVERY` frames have come in
(:class:`Freezer`).

What is left after a freeze is the UI's own churn: every screen opened and
closed leaves its widgets, strips and caches as cyclic garbage — tens of
thousands of objects that only a full collection reclaims. Left to the
interpreter, that full collection comes every ten young-generation
collections, whenever they happen: in the middle of a key press (50–80 ms on
a 1,000,000-frame session, seen as the slow tail of key latency).
:class:`IdleCollector` takes full collections off the interpreter's schedule
and runs them when the user has not touched a key for a moment.
"""

from __future__ import annotations

import gc
import time

EVERY = 100_000
"""Frames taken in between two freezes."""


def freeze() -> None:
    gc.collect(1)
    gc.freeze()


class Freezer:
    """Calls :func:`freeze` each time a growing count has gone :data:`EVERY` past
    the last freeze."""

    def __init__(self) -> None:
        self.at = 0

    def note(self, count: int) -> None:
        if count - self.at >= EVERY:
            freeze()
            self.at = count


class IdleCollector:
    """Full collections when nobody is waiting for the screen.

    :meth:`start` turns the interpreter's automatic full collections off
    (threshold of the oldest generation out of reach; the young ones keep
    theirs); :meth:`tick`, called periodically, runs one once a full collection
    is due (:attr:`due` young collections since the last) and there has been no
    input for :attr:`quiet` seconds — or, however busy the user is, once
    :attr:`ceiling` are pending, so garbage cycles stay bounded.
    :meth:`stop` restores the thresholds.
    """

    def __init__(self, *, quiet: float = 0.3, due: int = 10, ceiling: int = 200) -> None:
        self.quiet = quiet
        self.due = due
        self.ceiling = ceiling
        self.last_input = 0.0
        self.collections = 0
        self._saved: tuple[int, ...] | None = None

    def start(self) -> None:
        if self._saved is None:
            self._saved = gc.get_threshold()
            young, middle, _ = self._saved
            gc.set_threshold(young, middle, 1 << 30)

    def stop(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def input_seen(self) -> None:
        self.last_input = time.monotonic()

    def tick(self) -> bool:
        """Collect if due and quiet (or past the ceiling); True if it did."""
        pending = gc.get_count()[2]  # collections of the middle generation since the last full
        if pending < self.due:
            return False
        if pending < self.ceiling and time.monotonic() - self.last_input < self.quiet:
            return False
        gc.collect()
        self.collections += 1
        return True
