"""Live traffic into the UI: the feed of event batches and the ingest that drains it.

The proxy runs in its own process and the UI follows the capture it writes
(:mod:`ui.model.follow`); the follower puts the events it decodes on a
:class:`LiveFeed`, a bounded deque, and the UI drains it once per tick — one
coalesced wake-up, never one per frame (docs/ui.md, "How it scales"). Nothing is dropped: a
follower that finds the feed full waits, and the view falls behind the file
(the status bar says by how much).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.events import Batch, ConnectionEvent
from proxy.observe.events import FrameObserved
from ui.model.session import Session


class FrameSource(Protocol):
    """Where ingest puts frames: :class:`ui.model.table.LiveFrames` (in memory) or
    :class:`ui.model.backing.CaptureFrames` (a followed capture, by offset)."""

    forgotten: int

    def add(self, raw: bytes) -> int: ...
    def frame_bytes(self, ref: int) -> bytes | None: ...


class LiveFeed:
    """The batches waiting for the UI: at most ``maxsize`` (the follower waits while
    it is full, so nothing is lost); the UI takes them once per tick."""

    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self.batches: deque[Batch | FollowedBatch] = deque()
        self.received = 0

    def put(self, batch: Batch | FollowedBatch) -> None:
        """Add ``batch`` (deque.append is atomic: no lock needed); the caller keeps to
        ``maxsize`` (:meth:`ui.model.follow.Follower` waits for room)."""
        self.batches.append(batch)
        self.received += 1


@dataclass(frozen=True, slots=True)
class FollowedBatch:
    """A batch the follower of a capture made: its events, and for each the offset
    of the FRAME record it came from (-1 for other events): the table refers to
    frames by those offsets and reads them back from the file."""

    conn_id: int
    t: float
    events: tuple[Any, ...]
    refs: tuple[int, ...]


def ingest(session: Session, frames: FrameSource, feed: LiveFeed, *,
           limit: int = 50_000) -> int:
    """Move up to ``limit`` events from ``feed`` into ``session``; the number of
    frames added. (A paused view does not call it: its batches wait in the feed,
    and the follower stops reading the capture, until the view resumes.)"""
    added = 0
    events = 0
    popleft = feed.batches.popleft
    add = frames.add
    with session.lock:
        while feed.batches and events < limit:
            batch = popleft()
            conn = batch.conn_id
            events += len(batch.events)
            refs = getattr(batch, "refs", None)
            for k, ev in enumerate(batch.events):
                if type(ev) is FrameObserved:  # most events: checked first
                    session.observe(conn, ev, add(ev.frame.raw) if refs is None else refs[k])
                    added += 1
                elif isinstance(ev, ConnectionEvent):
                    session.connection_event(ev)
                else:
                    session.observe(conn, ev)
        if events:
            session.touch()
    return added


def rate(samples: deque[tuple[float, int]], count: int, window: float = 2.0) -> float:
    """Frames per second over the last ``window`` seconds, given (time, count) samples."""
    now = time.monotonic()
    samples.append((now, count))
    while samples and now - samples[0][0] > window:
        samples.popleft()
    t0, c0 = samples[0]
    return (count - c0) / (now - t0) if now > t0 else 0.0


def addresses_text(addresses: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{mode} {addr}" for mode, addr in addresses)
