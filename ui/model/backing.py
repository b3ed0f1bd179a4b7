"""The capture file behind a live session: every frame the UI shows, read by offset.

Issue 5: the live session is always backed by a capture file — the user's
``--record FILE``, or else a private temporary one (a fresh ``mkdtemp``
directory, mode 0700, holding one capture, mode 0600) that is removed when
h2scope exits. The proxy's process writes it (:mod:`proxy.child`, its recorder
an ordinary, non-lossy bus sink, so nothing is lost) and the UI follows it
(:mod:`ui.model.follow`). The UI keeps no frame bytes in memory: the follower
gives each row the offset of its FRAME record, and :class:`CaptureFrames`
reads the frame there when a view needs it — as ``h2scope view`` does with a
finished capture.

"Save what you just saw": :meth:`SessionCapture.save` has the writer flush and
copies every complete record so far (plus an END record) to a file of the
user's, mode 0600.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zlib import crc32

from certs.files import create_private
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
_UNCHECKED = int(RecordFlag.UNCHECKED)
_PREFIX = RECORD_PREFIX.size
SCAN_CHUNK = 1 << 20
"""Bytes read per ``pread`` while scanning record headers (a big body is skipped,
not read)."""
TEMP_NAME = "session.h2scope"


def left_behind(tmp: Path | None = None) -> list[tuple[Path, int, float]]:
    """Private session captures an earlier live UI left in ``tmp`` (``$TMPDIR``)
    when it was killed (``kill -9``: nothing could remove them): (path, bytes,
    modification time) of each ``h2scope-*/session.h2scope`` this user owns that
    no running proxy is writing (its lock is free). They hold decrypted traffic."""
    import tempfile

    from certs.files import held_by_another_writer

    found = []
    for path in sorted(Path(tmp or tempfile.gettempdir()).glob(f"h2scope-*/{TEMP_NAME}")):
        try:
            st = path.stat()
        except OSError:
            continue
        if st.st_uid != os.getuid() or held_by_another_writer(path):
            continue
        found.append((path, st.st_size, st.st_mtime))
    return found


class FrameOffsets:
    """A growing capture's records: how many, of which types, where the complete
    ones end (for saving), and the frame of a FRAME record at an offset.

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
        counts = self.counts
        unpack = RECORD_HEADER.unpack_from
        while pos + _HDR <= size:
            chunk = os.pread(fd, min(SCAN_CHUNK, size - pos), pos)
            n = len(chunk)
            i = 0
            while i + _HDR <= n:
                sync, rtype, _flags, blen, _conn, seq, _t, _wall, _crc = unpack(chunk, i)
                if sync != SYNC or blen > MAX_BODY:
                    self.broken = f"no record at byte offset {pos + i}"
                    self.end = pos + i
                    return found
                end = i + _HDR + blen
                if pos + end > size:
                    break  # the writer has not written all of it yet
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

    def frame_at(self, offset: int, conn_id: int | None = None) -> bytes | None:
        """The frame of the FRAME record at ``offset`` (a capped DATA payload
        zero-padded to its stated length, as :meth:`Record.frame_bytes` does);
        None unless a FRAME record (of ``conn_id``, if given) starts there."""
        head = os.pread(self.fd, _HDR, offset)
        if len(head) < _HDR:
            return None
        sync, rtype, flags, blen, conn, _seq, _t, _wall, _crc = RECORD_HEADER.unpack(head)
        if sync != SYNC or rtype != _FRAME or conn_id not in (None, conn) or blen < 9:
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
    """The capture a live session's proxy writes, and the UI reads old frames back from.

    ``path`` is the user's ``--record`` file or a private temporary capture in
    ``temp_dir`` (removed by :meth:`close`). The file is written by another
    process (:mod:`proxy.child`); ``flush`` asks the writer to write out what
    it holds, and returns when it has.

    Raises :class:`OSError` if the file cannot be opened, :class:`ValueError`
    if it is not a capture.
    """

    def __init__(self, path: Path, *, temp_dir: Path | None = None,
                 flush: Callable[[], None] | None = None) -> None:
        self.path = Path(path)
        self.temp_dir = temp_dir
        self.offsets = FrameOffsets(path)
        self._flush_writer = flush
        self._lock = threading.Lock()
        self.closed = False
        self.saved: list[Path] = []
        self.saved_records = 0
        """Records in the file when it was last saved."""

    @property
    def temporary(self) -> bool:
        return self.temp_dir is not None

    # ------------------------------------------------------------- reading

    def frame_at(self, offset: int) -> bytes | None:
        """The frame of the FRAME record at ``offset`` (the follower has read it, so
        it is in the file); None once the capture is closed."""
        with self._lock:
            if self.closed:
                return None
            return self.offsets.frame_at(offset)

    def frame_records(self) -> int:
        """FRAME records in the file so far, by a scan of the record headers
        appended since the last one (0 once the capture is closed)."""
        with self._lock:
            if self.closed:
                return 0
            self.offsets.scan()
            return self.offsets.counts.get(_FRAME, 0)

    def _flush(self) -> None:
        if self._flush_writer is not None:
            self._flush_writer()

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
            fd = os.dup(offsets.fd)  # (a close meanwhile leaves this one open)
        # The copy runs without the lock: the records up to ``end`` never change,
        # and the UI thread takes the lock for every row it draws and every status
        # line (a day's session took seconds to copy, a frozen screen).
        try:
            with open(create_private(dest), "wb") as out:
                _copy_checked(fd, out, end)
                out.write(_end_record(last_seq + 1, records, counts))
        finally:
            os.close(fd)
        self.saved.append(dest)
        self.saved_records = records
        return records

    @property
    def unsaved(self) -> bool:
        """Whether records were written since the last save (or nothing was saved)."""
        if not self.saved:
            return True
        with self._lock:
            if not self.closed:
                self.offsets.scan()
            return self.offsets.records != self.saved_records

    # ------------------------------------------------------------- closing

    def close(self) -> None:
        """Stop reading (after the writer closed the file); a temporary capture is
        removed with its directory. Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.offsets.close()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


class CaptureFrames:
    """The frame bytes of a followed capture (live, or ``view --follow``), by the
    offset of each frame's record: the table's refs, as in ``h2scope view``. No
    frame is kept in memory; the follower gives every row its record's offset."""

    forgotten = 0
    """(As :class:`ui.model.table.LiveFrames`: nothing is ever freed here.)"""

    def __init__(self, capture: SessionCapture) -> None:
        self.capture = capture

    def frame_bytes(self, ref: int) -> bytes | None:
        return self.capture.frame_at(ref)

    def add(self, raw: bytes) -> int:
        raise TypeError("a followed capture's frames are referred to by their record's "
                        "offset (FollowedBatch.refs), not added")


def _copy_checked(fd: int, out: Any, end: int) -> None:
    """Copy the first ``end`` bytes of a capture (its header and whole records) to
    ``out``, giving every ``UNCHECKED`` record (the live UI's scratch capture
    leaves large bodies unchecksummed) the CRC of its body: a saved session is
    checked like any recording."""
    pos = FILE_HEADER.size + FILE_HEADER.unpack(os.pread(fd, FILE_HEADER.size, 0))[3]
    out.write(_pread_all(fd, pos, 0))
    want = SCAN_CHUNK
    while pos < end:
        chunk = _pread_all(fd, min(want, end - pos), pos)
        view = memoryview(chunk)
        n = len(chunk)
        i = run = 0
        while i + _HDR <= n:
            flags = chunk[i + 3]
            stop = i + _HDR + int.from_bytes(chunk[i + 4:i + 8], "big")
            if stop > n:
                break
            if flags & _UNCHECKED:
                out.write(view[run:i])
                prefix = bytearray(view[i:i + _PREFIX])
                prefix[3] = flags & ~_UNCHECKED
                out.write(prefix + CRC.pack(crc32(view[i + _HDR:stop], crc32(prefix))))
                out.write(view[i + _HDR:stop])
                run = stop
            i = stop
        if i == 0:  # one record longer than a chunk: read it whole
            want = _HDR + int.from_bytes(chunk[4:8], "big")
            continue
        out.write(view[run:i])
        pos += i
        want = SCAN_CHUNK


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) < length:
        raise OSError(f"the capture ended {length - len(data)} bytes early while copying")
    return data


def _end_record(seq: int, records: int, counts: dict[str, int]) -> bytes:
    """An END record closing a saved copy (a reader then reports a clean end)."""
    body = json.dumps({"records": records, "counts": counts, "saved_from_live": True},
                      separators=(",", ":")).encode()
    prefix = RECORD_PREFIX.pack(SYNC, int(RecordType.END), 0, len(body), 0, seq,
                                time.monotonic(), time.time())
    return prefix + CRC.pack(crc32(body, crc32(prefix))) + body
