"""Live traffic into the UI: the feed of event batches and the ingest that drains it.

The proxy runs in its own process and the UI follows the capture it writes
(:mod:`ui.model.follow`); the follower puts the events it decodes on a
:class:`LiveFeed`, a bounded deque, and the UI drains it once per tick — one
coalesced wake-up, never one per frame (DESIGN.md §3). The feed can also be a
lossy bus sink (``handle``/``handle_many``: batches it has no room for are
counted, and the status bar shows the number).
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
    """Bus sink: keeps at most ``maxsize`` batches for the UI to collect."""

    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self.batches: deque[Batch | FollowedBatch] = deque()
        self.dropped = 0
        self.received = 0

    def handle(self, batch: Batch) -> None:
        if len(self.batches) >= self.maxsize:
            self.dropped += 1
            return
        self.received += 1
        self.batches.append(batch)  # deque.append is atomic: no lock needed

    def handle_many(self, batches: Sequence[Batch]) -> None:
        """What the bus queued meanwhile, in one call: one wake-up of the sink's task
        on the proxy's loop per group, not one per relayed read."""
        room = self.maxsize - len(self.batches)
        keep = len(batches) if room >= len(batches) else max(0, room)
        self.batches.extend(batches[:keep] if keep < len(batches) else batches)  # atomic
        self.received += keep
        self.dropped += len(batches) - keep


@dataclass(frozen=True, slots=True)
class FollowedBatch:
    """A batch the follower of a capture made: its events, and for each the offset
    of the FRAME record it came from (-1 for other events): the table refers to
    frames by those offsets and reads them back from the file."""

    conn_id: int
    t: float
    events: tuple[Any, ...]
    refs: tuple[int, ...]


def ingest(session: Session, frames: FrameSource, feed: LiveFeed, *, paused: bool = False,
           limit: int = 50_000) -> tuple[int, int]:
    """Move up to ``limit`` events from ``feed`` into ``session``: (frames added, skipped).

    While ``paused``, batches are taken off the feed and counted as skipped; only
    their connection events are kept (the connections pane stays complete).
    """
    added = skipped = 0
    events = 0
    popleft = feed.batches.popleft
    add = frames.add
    with session.lock:
        while feed.batches and events < limit:
            batch = popleft()
            conn = batch.conn_id
            if paused:  # connections stay listed; their frames are not kept
                skipped += 1
                for ev in batch.events:
                    if isinstance(ev, ConnectionEvent):
                        session.connection_event(ev)
                    elif type(ev) is FrameObserved:
                        session.conn(conn).lost += 1
                continue
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
        session.dropped = feed.dropped
        if added or events:
            session.touch()
    return added, skipped


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
