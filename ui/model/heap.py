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
"""

from __future__ import annotations

import gc

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
