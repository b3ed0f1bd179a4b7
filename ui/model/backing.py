"""The capture file behind a live session: frames the UI freed, read back by offset.

Issue 5: the live session is always backed by a capture file — the user's
``--record FILE``, or else a private temporary one (a fresh ``mkdtemp``
directory, mode 0700, holding one capture, mode 0600) that is removed when
h2scope exits. The recorder writing it is an ordinary, non-lossy bus sink
(:class:`proxy.capture.recorder.CaptureRecorder`), so nothing is lost; the UI
keeps only a bounded amount of frame bytes in memory
(:class:`ui.model.table.LiveFrames`) and reads older ones from this file.

How a frame is found again without the writer reporting offsets: the
recorder writes one FRAME record per ``FrameObserved``, in the order the
observer emitted them, so the n-th FRAME record of connection *c* is the frame
whose observer sequence number (``FrameObserved.seq``, connection-wide, from
0) is n. :class:`FrameOffsets` reads the record headers the writer has put in
the file since the last look (40 bytes each, bodies skipped) and appends each
FRAME record's offset to its connection's array — 8 bytes a frame, and only
when the UI asks for a frame it no longer holds.

"Save what you just saw": :meth:`SessionCapture.save` flushes the writer and
copies every complete record so far (plus an END record) to a file of the
user's, mode 0600.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zlib import crc32

from proxy.capture.format import (
    CRC,
    FILE_HEADER,
    MAGIC,
    MAX_BODY,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    RECORD_PREFIX,
    SYNC,
    RecordFlag,
    RecordType,
)

_HDR = RECORD_HEADER_SIZE
_FRAME = int(RecordType.FRAME)
_TRUNCATED = int(RecordFlag.TRUNCATED)
SCAN_CHUNK = 1 << 20
"""Bytes read per ``pread`` while scanning record headers (a big body is skipped,
not read)."""
FLUSH_GAP = 0.05
"""Seconds between forced flushes when frames are asked for that are not in
the file yet (the recorder may be behind the UI under load)."""
SETTLE_TIMEOUT = 1.0
"""Seconds the UI waits at most for the recorder to take a frame it shows."""
TEMP_NAME = "session.h2scope"


class FrameOffsets:
    """Offsets of the FRAME records of a growing capture, by connection and order.

    :meth:`scan` reads the records appended since the last scan (only up to
    the last complete one: the writer may be in the middle of the next).
    Not thread-safe by itself: :class:`SessionCapture` holds a lock around it.

    Raises :class:`OSError` if the file cannot be opened, :class:`ValueError`
    if it is not a capture.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.pread(self.fd, FILE_HEADER.size, 0)
            if len(head) < FILE_HEADER.size or not head.startswith(MAGIC):
                raise ValueError(f"{path} is not an h2scope capture")
            _, _, _, n = FILE_HEADER.unpack(head)
        except BaseException:
            os.close(self.fd)
            raise
        self.end = FILE_HEADER.size + n
        """Where the first record not scanned yet starts (every byte before it is
        whole records)."""
        self.conns: dict[int, array[int]] = {}
        """Connection id → offsets of its FRAME records, in file (= observer) order."""
        self.records = 0
        self.last_seq = -1
        self.counts: dict[int, int] = {}
        self.broken: str | None = None
        """Why scanning stopped for good (a record that is not one), if it did."""

    def scan(self) -> int:
        """Index the records written since the last call; the number found."""
        if self.broken is not None:
            return 0
        fd = self.fd
        size = os.fstat(fd).st_size
        pos = self.end
        found = 0
        conns = self.conns
        counts = self.counts
        unpack = RECORD_HEADER.unpack_from
        while pos + _HDR <= size:
            chunk = os.pread(fd, min(SCAN_CHUNK, size - pos), pos)
            n = len(chunk)
            i = 0
            while i + _HDR <= n:
                sync, rtype, _flags, blen, conn, seq, _t, _wall, _crc = unpack(chunk, i)
                if sync != SYNC or blen > MAX_BODY:
                    self.broken = f"no record at byte offset {pos + i}"
                    self.end = pos + i
                    return found
                end = i + _HDR + blen
                if pos + end > size:
                    break  # the writer has not written all of it yet
                if rtype == _FRAME:
                    offsets = conns.get(conn)
                    if offsets is None:
                        offsets = conns[conn] = array("Q")
                    offsets.append(pos + i)
                counts[rtype] = counts.get(rtype, 0) + 1
                self.last_seq = seq
                found += 1
                i = end
            if i == 0:
                break  # a record larger than what is in the file so far
            pos += i
        self.end = pos
        self.records += found
        return found

    def offset_of(self, conn_id: int, seq: int) -> int | None:
        offsets = self.conns.get(conn_id)
        if offsets is None or not 0 <= seq < len(offsets):
            return None
        return offsets[seq]

    def frame_at(self, offset: int, conn_id: int) -> bytes | None:
        """The frame of the FRAME record at ``offset`` (a capped DATA payload
        zero-padded to its stated length, as :meth:`Record.frame_bytes` does)."""
        head = os.pread(self.fd, _HDR, offset)
        if len(head) < _HDR:
            return None
        sync, rtype, flags, blen, conn, _seq, _t, _wall, _crc = RECORD_HEADER.unpack(head)
        if sync != SYNC or rtype != _FRAME or conn != conn_id or blen < 9:
            return None
        body = os.pread(self.fd, blen, offset + _HDR)
        if len(body) < blen:
            return None
        if flags & _TRUNCATED:
            want = 9 + int.from_bytes(body[:3], "big")
            if len(body) < want:
                body += bytes(want - len(body))
        return body

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SessionCapture:
    """The capture a live session writes, and reads old frames back from.

    ``path`` is the user's ``--record`` file, or None for a private temporary
    capture (removed by :meth:`close`, or at interpreter exit at the latest).
    ``recorder`` is the bus sink to subscribe (a normal, blocking one).

    Raises :class:`OSError` if the file cannot be created.
    """

    def __init__(self, path: Path | None = None, *, config: dict[str, Any] | None = None,
                 max_data_bytes: int | None = None) -> None:
        from proxy.capture.recorder import CaptureRecorder
        from proxy.capture.writer import CaptureWriter

        self.temp_dir: Path | None = None
        if path is None:
            # mkdtemp makes the directory mode 0700; the writer makes the file 0600.
            self.temp_dir = Path(tempfile.mkdtemp(prefix="h2scope-"))
            path = self.temp_dir / TEMP_NAME
            atexit.register(self._remove_temp)
        self.path = path
        try:
            self.writer = CaptureWriter(path, config=config, max_data_bytes=max_data_bytes)
            self.offsets = FrameOffsets(path)
        except BaseException:
            self._remove_temp()
            raise
        self.recorder = CaptureRecorder(self.writer)
        self._lock = threading.Lock()
        self._flushed_at = 0.0
        self.closed = False
        self.saved: list[Path] = []
        self.saved_records = 0
        """Records in the file when it was last saved."""
        self.settle: Callable[[float], bool] | None = None
        """Waits (bounded, in seconds) until the recorder has taken every batch
        published so far; set by the live proxy. The UI may see a frame before the
        recorder does: a frame it asks for that is not in the file yet is waited
        for, not reported missing."""

    @property
    def temporary(self) -> bool:
        return self.temp_dir is not None

    # ------------------------------------------------------------- reading

    def frame_bytes(self, conn_id: int, seq: int) -> bytes | None:
        """Frame ``seq`` of connection ``conn_id`` from the file; None if it is not
        there (yet: the recorder is behind, and waiting for it and a forced flush
        did not bring it)."""
        found = self._read(conn_id, seq, flush=False)
        if found is not None or self.closed:
            return found
        if time.monotonic() - self._flushed_at < FLUSH_GAP:
            return None  # just waited and flushed in vain: do not stall the UI again
        if self.settle is not None:
            self.settle(SETTLE_TIMEOUT)  # outside the lock: the recorder needs the writer
        self._flushed_at = time.monotonic()
        return self._read(conn_id, seq, flush=True)

    def _read(self, conn_id: int, seq: int, *, flush: bool) -> bytes | None:
        with self._lock:
            if self.closed:
                return None
            off = self.offsets.offset_of(conn_id, seq)
            if off is None:
                self.offsets.scan()
                off = self.offsets.offset_of(conn_id, seq)
            if off is None:
                if not flush:
                    return None
                try:
                    self._flush()
                except (OSError, ValueError):
                    return None
                self.offsets.scan()
                off = self.offsets.offset_of(conn_id, seq)
                if off is None:
                    return None
            return self.offsets.frame_at(off, conn_id)

    # -------------------------------------------------------------- saving

    def save(self, dest: Path) -> int:
        """Copy the session so far to ``dest`` (mode 0600, an END record added);
        returns the number of records copied. Raises OSError, ValueError."""
        dest = Path(dest)
        if dest.exists() and dest.resolve() == Path(self.path).resolve():
            raise ValueError(f"{dest} is the session's own capture file")
        with self._lock:
            if self.closed:
                raise ValueError("the session's capture is closed")
            self._flush()
            offsets = self.offsets
            offsets.scan()
            end, records, last_seq = offsets.end, offsets.records, offsets.last_seq
            counts = {RecordType(k).name: v for k, v in offsets.counts.items()
                      if k in RecordType._value2member_map_}
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
                with open(offsets.fd, "rb", closefd=False) as src, \
                        open(fd, "wb", closefd=False) as out:
                    src.seek(0)
                    _copy(src, out, end)
                    out.write(_end_record(last_seq + 1, records, counts))
            finally:
                os.close(fd)
        self.saved.append(dest)
        self.saved_records = records
        return records

    @property
    def unsaved(self) -> bool:
        """Whether records were written since the last save (or nothing was saved)."""
        return not self.saved or self._records() != self.saved_records

    # The writer's side: in this process (here), or in the proxy's (FollowedCapture).

    def _flush(self) -> None:
        self.writer.flush()

    def _records(self) -> int:
        return self.writer.records_written

    def _close_writer(self) -> None:
        self.writer.close(fsync=not self.temporary)  # a temporary one is about to go

    # ------------------------------------------------------------- closing

    def close(self) -> None:
        """Close the file (after the proxy stopped and the recorder drained); a
        temporary capture is removed with its directory. Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.offsets.close()
        try:
            self._close_writer()
        finally:
            self._remove_temp()

    def _remove_temp(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            atexit.unregister(self._remove_temp)


def _copy(src: Any, out: Any, length: int) -> None:
    left = length
    while left > 0:
        block = src.read(min(left, 1 << 20))
        if not block:
            raise OSError(f"the capture ended {left} bytes early while copying")
        out.write(block)
        left -= len(block)


def _end_record(seq: int, records: int, counts: dict[str, int]) -> bytes:
    """An END record closing a saved copy (a reader then reports a clean end)."""
    body = json.dumps({"records": records, "counts": counts, "saved_from_live": True},
                      separators=(",", ":")).encode()
    prefix = RECORD_PREFIX.pack(SYNC, int(RecordType.END), 0, len(body), 0, seq,
                                time.monotonic(), time.time())
    return prefix + CRC.pack(crc32(body, crc32(prefix))) + body
