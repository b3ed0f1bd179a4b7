"""Writing a capture file incrementally, with bounded memory and periodic flushes.

:class:`CaptureWriter` appends records to an in-memory buffer and writes the
buffer to the file

* every ``flush_interval`` seconds from a small background thread (so a
  ``kill -9`` loses at most that much: the bytes are in the kernel after
  ``os.write``, and the kernel survives the process),
* as soon as half of ``buffer_limit`` is pending, from that same thread
  (woken up), so the appending thread — the proxy's event loop — does not
  wait for the disk,
* by the appending thread itself when the buffer reaches ``buffer_limit``
  without a background thread, or ``HARD_LIMIT_FACTOR`` × ``buffer_limit``
  with one (back-pressure: it waits for the disk), and
* on :meth:`flush` / :meth:`close`, or awaited with :meth:`drain` from asyncio.

Large bodies (a DATA frame) are neither copied nor checksummed when appended:
the record keeps a reference to the (immutable) bytes, and the thread that
writes computes its CRC (``zlib.crc32`` releases the GIL for buffers above a
few KiB) and hands it to ``os.writev`` next to the other records, so on a
machine with a spare core the disk side of recording runs beside the relay.
Small records are packed at once, which is cheaper than deferring them.
A writer made with ``check_bodies=False`` (the live UI's private scratch
capture) checksums a large body's record header only and flags it
``UNCHECKED``: CRC-32 runs at about 2 GB/s here, so at 400 MB/s it is a fifth
of a core that recording took from the relay (docs/capture-format.md).

Nothing is ever dropped: a caller that cannot wait checks :attr:`full` and
either awaits :meth:`drain` or records a :meth:`lost` count.

Every public method is thread-safe. The file is created mode 0600: captures
hold cookies, tokens and bodies.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zlib import crc32

from certs.files import create_private
from proxy import __version__
from proxy.capture.format import (
    CRC,
    FILE_HEADER,
    FORMAT_NAME,
    HTTP1_HEAD_LENGTH,
    MAGIC,
    MAX_BODY,
    RECORD_PREFIX,
    SYNC,
    VERSION,
    RecordFlag,
    RecordType,
)
from proxy.observe.enums import CONNECTION_PREFACE, Direction

_PACK_PREFIX = RECORD_PREFIX.pack
_PACK_CRC = CRC.pack
_FRAME, _RAW = int(RecordType.FRAME), int(RecordType.RAW)
_TRUNCATED = int(RecordFlag.TRUNCATED)
_UNCHECKED = int(RecordFlag.UNCHECKED)
_HEADER_SIZE = RECORD_PREFIX.size + CRC.size

DEFER_BODY = 4096
"""Bodies at least this long are checksummed and written by the flushing thread."""
HARD_LIMIT_FACTOR = 4
"""With a background thread, the appender writes itself only past this many
``buffer_limit`` s (the thread is behind): memory stays bounded either way."""
_IOV_MAX = 1024
"""Buffers per ``os.writev`` call (Linux's IOV_MAX)."""


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class CaptureWriter:
    """Append-only writer of one capture file.

    ``t`` arguments are the observer's clock (whatever the caller feeds
    :meth:`ConnectionObserver.feed`, normally ``time.monotonic()``); ``wall``
    defaults to ``time.time()`` at the call. ``max_data_bytes`` caps the DATA
    payload stored per frame (``None``: store everything).

    Raises :class:`OSError` if the file cannot be created; appends after
    :meth:`close` raise :class:`ValueError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, config: Mapping[str, Any] | None = None,
                 max_data_bytes: int | None = None, flush_interval: float = 0.5,
                 buffer_limit: int = 4 << 20, autoflush: bool = True,
                 check_bodies: bool = True) -> None:
        if max_data_bytes is not None and max_data_bytes < 0:
            raise ValueError("max_data_bytes must be None or >= 0")
        self.path = Path(path)
        self.max_data_bytes = max_data_bytes
        self.buffer_limit = buffer_limit
        self.flush_interval = flush_interval
        self.check_bodies = check_bodies
        """False: bodies of ``DEFER_BODY`` bytes or more are written ``UNCHECKED``."""
        self._lock = threading.Lock()  # guards the buffer and counters
        self._io_lock = threading.Lock()  # keeps file writes in buffer order
        self._parts: list[bytearray | tuple[bytes, bytes]] = []
        """Pending output in file order: runs of finished small records, and large
        records as (prefix, body) whose CRC is computed when written — or, when
        unchecked, as (whole 40-byte header, body)."""
        self._pending = 0
        self._kick_at = max(buffer_limit // 2, 1)
        self._seq = 0
        self._counts = [0] * 256
        self._truncated_frames = 0
        self._closed = False
        self._abandoned: OSError | None = None
        """What :meth:`abandon` let the file go for."""
        self._failed: OSError | None = None
        """What the background flush failed with: every later append raises it."""
        self.waited = 0.0
        """Seconds producers have spent waiting for the disk (back-pressure: the
        relay stopped reading meanwhile; nothing was dropped)."""
        self.started_wall = time.time()
        self.started_t = time.monotonic()
        header = {
            "format": FORMAT_NAME,
            "version": VERSION,
            "h2scope": __version__,
            "started": self.started_wall,
            "started_monotonic": self.started_t,
            "max_data_bytes": max_data_bytes,
            "config": dict(config or {}),
        }
        body = _json(header)
        self._fd = create_private(self.path, exclusive=True)
        try:
            self._write_all(FILE_HEADER.pack(MAGIC, VERSION, 0, len(body)) + body)
        except BaseException:
            os.close(self._fd)
            raise
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        if autoflush:
            self._flusher = threading.Thread(target=self._flush_loop, name="capture-flush",
                                             daemon=True)
            self._flusher.start()

    # ----------------------------------------------------------------- records

    def connection(self, conn_id: int, meta: Mapping[str, Any], *, t: float,
                   wall: float | None = None) -> None:
        """A connection opened; ``meta`` is JSON-able (see docs/capture-format.md)."""
        self._append(RecordType.CONNECTION, 0, conn_id, t, wall, _json(meta))

    def frame(self, conn_id: int, direction: Direction, raw: bytes, *, t: float,
              wall: float | None = None) -> None:
        """One whole frame (9-byte header + payload), e.g. ``FrameObserved.frame.raw``."""
        flags = int(direction)
        cap = self.max_data_bytes
        if cap is not None and raw[3] == 0 and len(raw) > 9 + cap:
            # RFC 9113 §6.1: keep the Pad Length byte so the reader still knows the
            # padding; the cap applies to what follows it.
            keep = 9 + cap + (1 if raw[4] & 0x8 else 0)
            if len(raw) > keep:
                raw = raw[:keep]
                flags |= _TRUNCATED
                self._truncated_frames += 1
        self._append(_FRAME, flags, conn_id, t, wall, raw)

    def frames(self, conn_id: int, direction: Direction, frames: Sequence[tuple[bytes, float]],
               *, wall: float | None = None) -> None:
        """Several whole frames of one direction, each with its ``t``, in order: the
        records :meth:`frame` would write, appended under one lock acquisition."""
        if wall is None:
            wall = time.time()
        flags = int(direction)
        cap = self.max_data_bytes
        with self._lock:
            if self._closed:
                raise ValueError("capture writer is closed")
            if self._failed is not None:
                raise self._failed_again()
            seq = self._seq
            parts = self._parts
            last = parts[-1] if parts else None
            added = 0
            for raw, t in frames:
                rflags = flags
                if cap is not None and raw[3] == 0 and len(raw) > 9 + cap:
                    keep = 9 + cap + (1 if raw[4] & 0x8 else 0)  # as in frame()
                    if len(raw) > keep:
                        raw = raw[:keep]
                        rflags |= _TRUNCATED
                        self._truncated_frames += 1
                n = len(raw)
                if n >= DEFER_BODY:
                    parts.append(self._deferred(_FRAME, rflags, n, conn_id, seq, t, wall, raw))
                    last = None
                else:
                    if last is None or type(last) is not bytearray:
                        last = bytearray()
                        parts.append(last)
                    prefix = _PACK_PREFIX(SYNC, _FRAME, rflags, n, conn_id, seq, t, wall)
                    last += prefix
                    last += _PACK_CRC(crc32(raw, crc32(prefix)))
                    last += raw
                seq += 1
                added += n + 40
            self._counts[_FRAME] += seq - self._seq
            self._seq = seq
            pending = self._pending = self._pending + added
        if pending >= self._kick_at:
            self._backlog(pending)

    def raw(self, conn_id: int, direction: Direction, data: bytes, *, t: float,
            wall: float | None = None) -> None:
        """Bytes of an h2 connection that are not frames (kept so the capture is whole)."""
        flags = int(direction)
        if direction is Direction.C2S and data == CONNECTION_PREFACE:
            flags |= RecordFlag.PREFACE
        for start in range(0, len(data), MAX_BODY - 64):
            self._append(_RAW, flags, conn_id, t, wall, data[start:start + MAX_BODY - 64])

    def h2c_upgrade(self, conn_id: int, *, http2_settings: bytes,
                    request_headers: Sequence[tuple[str, str]], t: float,
                    wall: float | None = None) -> None:
        """An ``Upgrade: h2c`` took effect (the arguments of ``observer.upgrade_h2c``)."""
        body = {"http2_settings": http2_settings.hex(),
                "request_headers": [list(h) for h in request_headers]}
        self._append(RecordType.H2C_UPGRADE, 0, conn_id, t, wall, _json(body))

    def http1(self, conn_id: int, direction: Direction, head: bytes, body: bytes = b"", *,
              t: float, wall: float | None = None, body_truncated: bool = False) -> None:
        """One HTTP/1.x message: ``head`` is the start line and header fields as sent
        (through the blank line), ``body`` the decoded message body."""
        flags = int(direction)
        cap = self.max_data_bytes
        if cap is not None and len(body) > cap:
            body = body[:cap]
            body_truncated = True
        if body_truncated:
            flags |= _TRUNCATED
        room = MAX_BODY - 64 - HTTP1_HEAD_LENGTH.size - len(head)
        if len(body) > room:
            body = body[:max(room, 0)]
            flags |= _TRUNCATED
        self._append(RecordType.HTTP1, flags, conn_id, t, wall,
                     HTTP1_HEAD_LENGTH.pack(len(head)) + head + body)

    def copy(self, rtype: int, flags: int, conn_id: int, *, t: float, wall: float,
             body: bytes) -> None:
        """A record as another capture holds it (an extract of that capture); the
        checksum covers its body."""
        self._append(rtype, flags & ~_UNCHECKED, conn_id, t, wall, body)

    def close_connection(self, conn_id: int, *, t: float, closed_by: str | None = None,
                         error: str | None = None, wall: float | None = None,
                         details: Mapping[str, Any] | None = None) -> None:
        """The connection ended; ``closed_by`` is ``"client"``, ``"server"``, ``"proxy"``.

        ``t`` is the time the observer was closed with (:meth:`ConnectionObserver.close`);
        ``details`` adds JSON-able fields (reason, byte counts, errors)."""
        self._append(RecordType.CLOSE, 0, conn_id, t, wall,
                     _json({"closed_by": closed_by, "error": error, **(details or {})}))

    def lost(self, conn_id: int, *, count: int, reason: str, t: float,
             wall: float | None = None, unit: str = "records") -> None:
        """Say that ``count`` ``unit`` (records; an import's missing bytes) are not in
        the capture, and why: readers show it with the connection."""
        self._append(RecordType.LOST, 0, conn_id, t, wall,
                     _json({"count": count, "unit": unit, "reason": reason}))

    # ------------------------------------------------------------ buffering

    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet written to the file."""
        return self._pending

    @property
    def full(self) -> bool:
        """The buffer reached ``buffer_limit``: an asyncio producer should :meth:`drain`."""
        return self._pending >= self.buffer_limit

    @property
    def records_written(self) -> int:
        return self._seq

    def counts(self) -> dict[str, int]:
        """Records appended so far, by record type name."""
        return {RecordType(i).name: n for i, n in enumerate(self._counts)
                if n and i in RecordType._value2member_map_}

    @property
    def truncated_frames(self) -> int:
        return self._truncated_frames

    def flush(self) -> None:
        """Write everything appended so far to the file (blocks on the disk)."""
        with self._io_lock:
            with self._lock:
                parts = self._parts
                if not parts:
                    return
                self._parts = []
                self._pending = 0
            self._write_parts(parts)

    async def drain(self) -> None:
        """Await room in the buffer: flush in a worker thread if it is full."""
        if self.full:
            start = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, self.flush)
            self.waited += time.monotonic() - start

    def abandon(self, exc: OSError) -> None:
        """After a write failed (a full disk): let the file go now — what is buffered
        cannot be written — so that deleting it frees its space at once (the open
        file kept the disk full until h2scope stopped). :meth:`close` then raises
        ``exc``: the recording is incomplete. What was written stays readable."""
        with self._io_lock:  # (after a flush under way: it fails or finishes first)
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._abandoned = exc
                self._parts = []
                self._pending = 0
            self._stop.set()
            self._wake.set()
            os.close(self._fd)

    def close(self, *, fsync: bool = True) -> None:
        """Write an END record, flush, and close the file. Idempotent."""
        with self._lock:
            if self._closed:
                if self._abandoned is not None:
                    raise OSError(self._abandoned.errno, self._abandoned.strerror or
                                  str(self._abandoned), str(self.path))
                return
        error: OSError | None = None
        try:
            self._append(RecordType.END, 0, 0, time.monotonic(), None,
                         _json({"records": self._seq, "counts": self.counts(),
                                "truncated_frames": self._truncated_frames}))
        except OSError as exc:  # a write failed earlier: close the file all the same
            error = exc
        self._stop.set()
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        with self._lock:
            self._closed = True
        try:
            self.flush()
            if fsync:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.EROFS):
                        raise  # (a pipe or a terminal cannot be synced: nothing to lose)
        except OSError as exc:
            error = error or exc
        finally:
            os.close(self._fd)
        if error is not None:
            raise error

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- internals

    def _append(self, rtype: int, flags: int, conn_id: int, t: float, wall: float | None,
                body: bytes) -> None:
        if wall is None:
            wall = time.time()
        n = len(body)
        with self._lock:
            if self._closed:
                raise ValueError("capture writer is closed")
            if self._failed is not None:
                raise self._failed_again()
            seq = self._seq
            self._seq = seq + 1
            parts = self._parts
            if n >= DEFER_BODY:
                parts.append(self._deferred(rtype, flags, n, conn_id, seq, t, wall, body))
            else:
                prefix = _PACK_PREFIX(SYNC, rtype, flags, n, conn_id, seq, t, wall)
                last = parts[-1] if parts else None
                if type(last) is not bytearray:
                    last = bytearray()
                    parts.append(last)
                last += prefix
                last += _PACK_CRC(crc32(body, crc32(prefix)))
                last += body
            self._counts[rtype] += 1
            pending = self._pending = self._pending + n + 40
        if pending >= self._kick_at:
            self._backlog(pending)

    def _deferred(self, rtype: int, flags: int, n: int, conn_id: int, seq: int, t: float,
                  wall: float, body: bytes) -> tuple[bytes, bytes]:
        """A large record's part: its body by reference, its CRC left to the thread
        that writes it — or, unchecked, the header's own CRC now."""
        if type(body) is not bytes:
            body = bytes(body)
        if self.check_bodies:
            return _PACK_PREFIX(SYNC, rtype, flags, n, conn_id, seq, t, wall), body
        prefix = _PACK_PREFIX(SYNC, rtype, flags | _UNCHECKED, n, conn_id, seq, t, wall)
        return prefix + _PACK_CRC(crc32(prefix)), body

    def _failed_again(self) -> OSError:
        exc = self._failed
        assert exc is not None
        return OSError(exc.errno, exc.strerror or str(exc), str(self.path))

    def _backlog(self, pending: int) -> None:
        if self._flusher is None:
            if pending >= self.buffer_limit:
                start = time.monotonic()
                self.flush()  # back-pressure: the producer waits for the disk
                self.waited += time.monotonic() - start
            return
        if not self._wake.is_set():
            self._wake.set()
        if pending >= self.buffer_limit * HARD_LIMIT_FACTOR:
            start = time.monotonic()
            self.flush()  # the background thread is behind: wait for the disk too
            self.waited += time.monotonic() - start

    def _write_parts(self, parts: list[bytearray | tuple[bytes, bytes]]) -> None:
        iov: list[bytes | bytearray] = []
        for part in parts:
            if type(part) is tuple:
                prefix, body = part
                if len(prefix) == _HEADER_SIZE:  # unchecked: the header is whole
                    iov.append(prefix)
                else:
                    iov.append(prefix + _PACK_CRC(crc32(body, crc32(prefix))))
                iov.append(body)
            else:
                iov.append(part)  # type: ignore[arg-type]
            if len(iov) >= _IOV_MAX - 1:
                self._writev(iov)
                iov = []
        if iov:
            self._writev(iov)

    def _writev(self, iov: list[bytes | bytearray]) -> None:
        total = sum(map(len, iov))
        n = os.writev(self._fd, iov)
        if n == total:
            return
        # A short write (a full disk, a signal): write the rest one buffer at a time.
        for buf in iov:
            if n >= len(buf):
                n -= len(buf)
                continue
            self._write_all(memoryview(buf)[n:])
            n = 0

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except OSError as exc:
                # The next append raises it where it can be handled (the recorder's
                # sink fails, and says so), instead of buffering on regardless.
                self._failed = exc
                return
