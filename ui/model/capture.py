"""Opening a capture for ``h2scope view``: stream its records into a Session.

DESIGN.md principle 6: the capture holds raw frames, so viewing it re-runs
the observer — one per connection, records in file order, recorded times.
The loader runs in a worker thread and hands the UI rows as it goes (rows are
visible long before a large file is read to its end). Frame bytes are not
copied: the file is memory-mapped and a row keeps only its record's offset.

A gzip capture is first decompressed into an anonymous temporary file, as
:class:`proxy.capture.index.CaptureIndex` does, so offsets can be mapped.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO, cast

from proxy.capture.format import GZIP_MAGIC, RECORD_HEADER, RECORD_HEADER_SIZE, RecordType
from proxy.capture.reader import CaptureReader, Record, open_binary
from proxy.capture.replay import observer_for
from proxy.observe.connection import ConnectionObserver
from proxy.observe.events import FrameObserved
from ui.model.session import Session

_FRAME, _RAW = int(RecordType.FRAME), int(RecordType.RAW)
_CONNECTION, _CLOSE = int(RecordType.CONNECTION), int(RecordType.CLOSE)
_H2C = int(RecordType.H2C_UPGRADE)
BATCH = 4096
"""Records applied to the session per lock hold: big enough to be cheap, small
enough that the UI thread never waits long for the lock."""


class CaptureFile:
    """A capture file mapped into memory: frame bytes by record offset."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with open(path, "rb") as probe:
            gz = probe.read(2) == GZIP_MAGIC
        backing: IO[bytes]
        if gz:
            backing = tempfile.TemporaryFile()  # noqa: SIM115 - owned by this object
            with open_binary(path) as src:
                shutil.copyfileobj(src, backing, 1 << 20)
            backing.flush()
        else:
            backing = open(path, "rb")  # noqa: SIM115 - owned by this object
        self._backing = backing
        size = os.fstat(backing.fileno()).st_size
        self.size = size
        self._mm = mmap.mmap(backing.fileno(), 0, access=mmap.ACCESS_READ) if size else None

    def record(self, offset: int) -> Record | None:
        mm = self._mm
        if mm is None or offset + RECORD_HEADER_SIZE > len(mm):
            return None
        _, rtype, rflags, blen, conn, seq, t, wall, _ = RECORD_HEADER.unpack_from(mm, offset)
        start = offset + RECORD_HEADER_SIZE
        return Record(offset=offset, type=rtype, flags=rflags, conn_id=conn, seq=seq, t=t,
                      wall=wall, body=mm[start:start + blen])

    def frame_bytes(self, ref: int) -> bytes | None:
        rec = self.record(ref)
        return None if rec is None else rec.frame_bytes()

    def data_bytes(self, ref: int) -> tuple[bytes, bool] | None:
        """A DATA record's stored frame bytes and whether its payload was capped."""
        rec = self.record(ref)
        return None if rec is None else (rec.body, rec.truncated)

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
        self._backing.close()


def load(session: Session, capture: CaptureFile, *, stop: threading.Event | None = None,
         on_progress: Callable[[], None] | None = None) -> None:
    """Replay every record of ``capture`` into ``session`` (run in a worker thread).

    ``on_progress`` is called after each batch of records (the UI coalesces);
    setting ``stop`` ends the load early (the app is quitting).
    """
    observers: dict[int, ConnectionObserver | None] = {}
    mm_file = open(capture._backing.fileno(), "rb", closefd=False)  # noqa: SIM115
    reader = CaptureReader(cast(BinaryIO, mm_file))
    total = max(capture.size, 1)
    session.title = session.title or capture.path.name
    lock = session.lock
    n = 0
    try:
        records = reader.records()
        while True:
            if stop is not None and stop.is_set():
                return
            with lock:
                for rec in records:
                    _apply(session, observers, rec)
                    n += 1
                    if n % BATCH == 0:
                        session.progress = rec.offset / total
                        break
                else:
                    for conn, obs in observers.items():
                        if obs is not None:
                            for ev in obs.close(session.table.time[-1] if session.table.count
                                                else 0.0):
                                session.observe(conn, ev)
                    session.progress = 1.0
                    session.loaded = True
                    session.problems.extend(str(p) for p in reader.problems)
                    session.touch()
                    break
                session.touch()
            if on_progress is not None:
                on_progress()
        if on_progress is not None:
            on_progress()
    finally:
        mm_file.close()


def _apply(session: Session, observers: dict[int, ConnectionObserver | None],
           rec: Record) -> None:
    rtype = rec.type
    conn = rec.conn_id
    if rtype in (_FRAME, _RAW):
        obs = observers.get(conn)
        if obs is None:
            if conn in observers:  # a connection without an observer (HTTP/1.1, tcp)
                return
            obs = observers[conn] = ConnectionObserver()
            session.conn(conn)
        data = rec.frame_bytes() if rtype == _FRAME else rec.body
        observe = session.observe
        for ev in obs.feed(rec.direction, data, rec.t):
            observe(conn, ev, rec.offset if type(ev) is FrameObserved else 0)
    elif rtype == _CONNECTION:
        meta = rec.json()
        observers[conn] = observer_for(meta)
        session.connection(conn, meta)
    elif rtype == _H2C:
        info = rec.json()
        obs = observers.get(conn)
        if obs is None:
            obs = observers[conn] = ConnectionObserver()
        headers = tuple((str(n), str(v)) for n, v in info.get("request_headers", ()))
        for ev in obs.upgrade_h2c(http2_settings=bytes.fromhex(info.get("http2_settings", "")),
                                  request_headers=headers, t=rec.t):
            session.observe(conn, ev)
    elif rtype == _CLOSE:
        obs = observers.pop(conn, None)
        observers[conn] = None
        if obs is not None:
            for ev in obs.close(rec.t):
                session.observe(conn, ev)
        info = rec.json()
        reason = info.get("reason") or info.get("error") or ""
        by = info.get("closed_by")
        session.closed(conn, f"by {by}: {reason}" if by else str(reason))
