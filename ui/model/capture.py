"""Opening a capture for ``h2scope view``: stream its records into a Session.

architecture principle 6: the capture holds raw frames, so viewing it re-runs
the observer — one per connection, records in file order, recorded times.
The loader runs in a worker thread: first the columnar index
(:class:`proxy.capture.index.CaptureIndex`, no decoding) so every row is on
screen in seconds, then the observer replay attaches what it decodes. Frame
bytes are not copied: the file is memory-mapped and a row keeps only its
record's offset (a gzip capture is decompressed to a temporary file first).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.capture.format import RecordType
from proxy.capture.index import CaptureIndex
from proxy.capture.reader import Record
from proxy.capture.replay import (
    lost_everywhere,
    lost_part,
    observer_for,
    recorded_ends,
    upgrade_request,
)
from proxy.events import ConnectionEvent
from proxy.observe.connection import ConnectionObserver
from proxy.observe.events import FrameObserved
from proxy.websocket import UpgradedWebSockets
from ui.model import heap
from ui.model.hpack_replay import EVERY
from ui.model.session import (
    RecordedCap,
    RecordedClose,
    RecordedConnection,
    RecordedHttp1,
    RecordedLost,
    RecordedUpgrade,
    Session,
    http1_head,
    recorded_errors,
)

_FRAME, _RAW = int(RecordType.FRAME), int(RecordType.RAW)
_LOST = int(RecordType.LOST)
_CONNECTION, _CLOSE = int(RecordType.CONNECTION), int(RecordType.CLOSE)
_H2C = int(RecordType.H2C_UPGRADE)
_HTTP1 = int(RecordType.HTTP1)
BATCH = 4096
"""Records applied to the session per lock hold: big enough to be cheap, small
enough that the UI thread never waits long for the lock."""
LOCK_GAP = 0.001
"""Seconds the loader leaves the lock free after each batch."""


class CaptureFile:
    """A capture opened for viewing: its columnar index and frame bytes by offset.

    :meth:`open` builds the index (run it in a worker: it reads the whole file);
    until then no frame bytes are available.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.index: CaptureIndex | None = None
        self.size = os.path.getsize(path)

    def open(self) -> CaptureIndex:
        if self.index is None:
            self.index = CaptureIndex.build(self.path, verify=True)
        return self.index

    def frame_bytes(self, ref: int) -> bytes | None:
        index = self.index
        if index is None:
            return None
        return index.record_at(ref).frame_bytes()

    def close(self) -> None:
        if self.index is not None:
            self.index.close()


def load(session: Session, capture: CaptureFile, *, stop: threading.Event | None = None,
         on_progress: Callable[[], None] | None = None) -> None:
    """Read ``capture`` into ``session`` (run in a worker thread), in two passes.

    1. The columnar index (one ``struct`` unpack per record, no decoding): every
       row appears at once with its type, flags, stream, direction and length.
    2. The observer replay, one connection observer each, records in file
       order: header blocks, findings, windows, streams and connection state
       are attached to the rows as it goes (:attr:`Session.decoded`).

    ``on_progress`` is called after each batch (the UI coalesces); setting
    ``stop`` ends the load early (the app is quitting).
    """
    index = capture.open()
    session.title = session.title or capture.path.name
    with session.lock:
        for conn_id, entry in index.connections.items():
            session.connection(conn_id, dict(entry.meta))
        session.table.adopt(index.time, index.conn, index.stream, index.type, index.flags,
                            index.direction, index.length, index.offset)
        session.problems.extend(str(p) for p in index.problems)
        session.indexed = True
        session.touch()
    if on_progress is not None:
        on_progress()
    observers = Readers()
    offsets = index.offset
    others = index.others
    n_frames = len(offsets)
    record_at = index.record_at
    lock = session.lock
    row = 0
    j = 0
    damage = sorted(p.offset for p in index.problems)
    """Where the index skipped damaged bytes: the observers learn of each there."""
    next_damage = damage.pop(0) if damage else INFINITE
    freezer = heap.Freezer()
    while row < n_frames or j < len(others):
        if stop is not None and stop.is_set():
            return
        with lock:
            end = min(n_frames, row + BATCH)
            while row < end or (row >= n_frames and j < len(others)):
                if j < len(others) and (row >= n_frames or others[j][0] < offsets[row]):
                    while others[j][0] > next_damage:
                        lost_everywhere(observers)
                        next_damage = damage.pop(0) if damage else INFINITE
                    _apply(session, observers, record_at(others[j][0]), None)
                    j += 1
                    continue
                while offsets[row] > next_damage:
                    lost_everywhere(observers)
                    next_damage = damage.pop(0) if damage else INFINITE
                _apply(session, observers, record_at(offsets[row]), row)
                row += 1
            session.decoded = row
            session.progress = row / max(1, n_frames)
            session.touch()
        if on_progress is not None:
            on_progress()
        freezer.note(row)
        # Let the UI thread have the lock between batches: a lock is not fair, and
        # retaking it at once could keep the screen from refreshing for the whole load.
        time.sleep(LOCK_GAP)
    with lock:
        last = session.table.time[-1] if n_frames else 0.0
        for conn, obs in observers.items():
            if obs is not None:
                for ev in obs.close(last):
                    session.observe(conn, ev)
        session.decoded = n_frames
        session.progress = 1.0
        session.clean_end = index.clean_end
        for c in session.conns.values():
            c.open_at_end = c.closed is None
        session.loaded = True
        session.touch()
    heap.freeze()
    if on_progress is not None:
        on_progress()


def _checkpoint(session: Session, conn: int, obs: ConnectionObserver, d: int) -> None:
    """Every EVERY blocks, note the decoder's table (the HPACK tab then decodes
    a block again from the nearest checkpoint, not from the connection's start)."""
    tbl = session.conns[conn].hpack[d]
    n = len(tbl.block_rows)
    if n % EVERY == 0:
        decoder = obs.sides[d].decoder
        if decoder.table_size == tbl.size:  # (a block that failed to decode would not be)
            tbl.replay.checkpoint(n, decoder.entries, decoder.table_max)


INFINITE = 1 << 62


class Readers(dict[int, ConnectionObserver | None]):
    """The per-connection observers :func:`record_events` keeps (None: a connection
    that is not HTTP/2), and the WebSockets of HTTP/1.1-upgraded ones."""

    def __init__(self) -> None:
        super().__init__()
        self.websockets = UpgradedWebSockets()


def record_events(observers: dict[int, ConnectionObserver | None], rec: Record,
                  events: list[Any]) -> None:
    """Append what one capture record says to ``events``: its observer's events, and
    a ``Recorded*`` connection event for what is not a frame (metadata, HTTP/1.x
    heads, how it closed, a capped payload). The one reading of a capture that
    ``h2scope view``'s loader and the live UI's follower share.

    The observer is fed the record's wall clock: the index's time column is
    wall clock, and every time the UI shows must be on the same clock.
    """
    rtype, conn = rec.type, rec.conn_id
    ws = observers.websockets if isinstance(observers, Readers) else None
    if rtype in (_FRAME, _RAW):
        obs = observers.get(conn)
        if obs is None:
            if conn in observers:  # HTTP/1.1 or a tunnel: nothing to decode
                if ws is not None and ws.conns and rtype == _RAW:
                    _websocket(ws, rec, events)  # (but a WebSocket's messages: said)
                return
            obs = observers[conn] = ConnectionObserver()
        data = rec.frame_bytes() if rtype == _FRAME else rec.body
        events.extend(obs.feed(rec.direction, data, rec.wall,
                               cut=rtype == _FRAME and rec.truncated))
        if rtype == _FRAME and rec.truncated:  # follows its frame: marks that row
            events.append(RecordedCap(conn_id=conn, t=rec.wall,
                                      kept=max(0, len(rec.body) - 9)))
    elif rtype == _CONNECTION:
        meta = rec.json()
        observers[conn] = observer_for(meta)
        events.append(RecordedConnection(conn_id=conn, t=rec.wall, meta=meta))
    elif rtype == _H2C:
        info = rec.json()
        obs = observers.get(conn)
        if obs is None:
            obs = observers[conn] = ConnectionObserver()
        headers = upgrade_request(info)
        events.extend(obs.upgrade_h2c(
            http2_settings=bytes.fromhex(info.get("http2_settings", "")),
            request_headers=headers, t=rec.wall))
        events.append(RecordedUpgrade(conn_id=conn, t=rec.wall, request_headers=headers))
    elif rtype == _HTTP1:
        head = http1_head(rec.body)
        events.append(RecordedHttp1(conn_id=conn, t=rec.wall, direction=rec.flags & 1,
                                    head=head, started=rec.t))
        if ws is not None and rec.flags & 1:
            ws.upgraded(conn, *rec.http1_head())
    elif rtype == _LOST and conn:
        lost_part(observers.get(conn))
        events.append(RecordedLost(conn_id=conn, t=rec.wall,
                                   reason=str(rec.json().get("reason"))))
    elif rtype == _LOST:  # (damaged bytes a copy of a damaged capture marks: all open)
        lost_everywhere(observers)
    elif rtype == _CLOSE:
        if ws is not None:
            ws.closed(conn)
        obs = observers.get(conn)
        observers[conn] = None
        info = rec.json()
        if info.get("cut"):  # the source ended, not the connection (see tap.close)
            lost_part(obs)
        if obs is not None:
            events.extend(obs.close(rec.wall, info.get("closed_by"), recorded_ends(info)))
        reason = str(info.get("reason") or info.get("error") or "")
        by = info.get("closed_by")
        events.append(RecordedClose(conn_id=conn, t=rec.wall, errors=recorded_errors(info),
                                    relayed=(_int(info.get("bytes_c2s")),
                                             _int(info.get("bytes_s2c"))),
                                    reason=f"by {by}: {reason}" if by else reason))


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _websocket(ws: UpgradedWebSockets, rec: Record, events: list[Any]) -> None:
    """The messages a WebSocket's relayed bytes complete, listed with the connection's
    HTTP/1.x messages (the connection view)."""
    msgs, lost = ws.feed(rec.conn_id, rec.flags & 1, rec.body, rec.wall)
    for msg in msgs:  # (what RFC 6455 says is wrong with it on the lines under it)
        said = "".join(f"\r\n! {p}" for p in msg.problems)
        events.append(RecordedHttp1(conn_id=rec.conn_id, t=rec.wall, direction=rec.flags & 1,
                                    head=f"websocket {msg.summary(120)}{said}"))
    if lost is not None:
        events.append(RecordedHttp1(conn_id=rec.conn_id, t=rec.wall, direction=rec.flags & 1,
                                    head=f"websocket framing lost: {lost}"))


def _apply(session: Session, observers: dict[int, ConnectionObserver | None],
           rec: Record, row: int | None) -> None:
    """Apply one record to ``session``; a FRAME record's events attach to ``row``
    (its index row)."""
    events: list[Any] = []
    record_events(observers, rec, events)
    conn = rec.conn_id
    observe = session.observe
    for ev in events:
        if type(ev) is FrameObserved:
            observe(conn, ev, rec.offset, row)
            if ev.block is not None:
                obs = observers.get(conn)
                if obs is not None:
                    _checkpoint(session, conn, obs, int(ev.direction))
        elif isinstance(ev, ConnectionEvent):
            session.connection_event(ev)
        else:
            observe(conn, ev)
