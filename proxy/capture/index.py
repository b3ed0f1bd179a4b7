"""A compact, columnar index of a capture's frames, with payloads read on demand.

For a million-frame capture the UI cannot hold a million frame objects.
:class:`CaptureIndex` keeps one ``array`` per field instead — about 31 bytes
per frame — and reads a frame's bytes from the file (memory-mapped) only when
asked. A filter is just another index array over these columns.

A gzip capture is first decompressed into an anonymous temporary file so that
offsets can be memory-mapped the same way.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast
from zlib import crc32

from proxy.capture.format import (
    FRAME_RECORD_HEADER,
    GZIP_MAGIC,
    MAX_BODY,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    RECORD_PREFIX,
    RecordFlag,
    RecordType,
)
from proxy.capture.reader import (
    BadRecord,
    CaptureHeader,
    CaptureReader,
    Record,
    damaged_header,
    gzip_bad_record,
    gzip_problem,
    open_binary,
    read_header,
)
from proxy.observe.enums import Direction
from proxy.observe.frames import Frame, parse_frame

_HDR = RECORD_HEADER_SIZE
_PREFIX = RECORD_PREFIX.size
_FRAME = int(RecordType.FRAME)
_S2C = int(RecordFlag.S2C)
_TRUNC = int(RecordFlag.TRUNCATED)
_UNCHECKED = int(RecordFlag.UNCHECKED)


@dataclass(slots=True)
class ConnectionEntry:
    conn_id: int
    meta: dict[str, Any]
    opened: float
    """Wall clock of the CONNECTION record."""
    closed: float | None = None
    close_info: dict[str, Any] = field(default_factory=dict)
    frames: int = 0


class CaptureIndex:
    """Columns for every FRAME record, plus connection and other-record lists.

    Columns (all the same length, one entry per frame in file order):
    ``time`` (wall clock, ``d``), ``conn`` (``I``), ``stream`` (``I``), ``type``
    (``B``), ``flags`` (``B``, the frame's flags), ``direction`` (``B``: 0 →, 1 ←),
    ``length`` (``I``, the frame header's payload length) and ``offset``
    (``Q``, the record's byte offset). ``truncated`` holds the positions of
    frames whose DATA payload was capped (rare, so a set).
    """

    def __init__(self, header: CaptureHeader, mm: mmap.mmap, backing: IO[bytes]) -> None:
        self.header = header
        self._mm = mm
        self._backing = backing
        self.time = array("d")
        self.conn = array("I")
        self.stream = array("I")
        self.type = array("B")
        self.flags = array("B")
        self.direction = array("B")
        self.length = array("I")
        self.offset = array("Q")
        self.truncated: set[int] = set()
        self.connections: dict[int, ConnectionEntry] = {}
        self.others: list[tuple[int, int, int]] = []
        """(offset, record type, conn id) of every non-FRAME record."""
        self.problems: list[BadRecord] = []
        self.clean_end = False

    # ---------------------------------------------------------------- build

    @classmethod
    def build(cls, path: str | os.PathLike[str], *, verify: bool = True,
              progress: Callable[[int, int], None] | None = None) -> CaptureIndex:
        """Index ``path``. ``verify`` checks every record's CRC (see the docs for
        its cost); ``progress(done_bytes, total_bytes)`` is called now and then.

        Raises :class:`~proxy.capture.reader.CaptureFormatError` for a non-capture.
        """
        with open(path, "rb") as probe:
            gz = probe.read(2) == GZIP_MAGIC
        cut: BadRecord | None = None
        if gz:
            backing: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the index
            with open_binary(path) as src:
                shutil.copyfileobj(src, backing, 1 << 20)
                problem = gzip_problem(src)
                if problem is not None:  # (what decompressed is kept, and indexed)
                    cut = gzip_bad_record(src, problem)
            backing.flush()
        else:
            backing = open(path, "rb")  # noqa: SIM115 - owned by the index
        try:
            backing.seek(0)
            header = read_header(cast(BinaryIO, backing), salvage=True)
            size = os.fstat(backing.fileno()).st_size
            mm = mmap.mmap(backing.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except BaseException:
            backing.close()
            raise
        assert mm is not None  # a valid header means the file is not empty
        index = cls(header, mm, backing)
        index._scan(verify, progress)
        if cut is not None:
            index.problems.append(cut)
        if header.damaged is not None:
            index.problems.insert(0, damaged_header(header))
        return index

    def _scan(self, verify: bool, progress: Callable[[int, int], None] | None) -> None:
        mm = self._mm
        n = len(mm)
        pos = self.header.size
        unpack = FRAME_RECORD_HEADER.unpack_from
        t_a, c_a, s_a, ty_a, f_a, d_a, l_a, o_a = (
            self.time.append, self.conn.append, self.stream.append, self.type.append,
            self.flags.append, self.direction.append, self.length.append, self.offset.append)
        conns = self.connections
        view = memoryview(mm)
        next_report = 0
        fast_end = n - FRAME_RECORD_HEADER.size
        try:
            while pos < n:
                if pos <= fast_end:
                    (sync, rtype, rflags, blen, conn, _seq, _t, wall, crc,
                     fhi, flo, ftype, fflags, fsid) = unpack(mm, pos)
                else:
                    pos = self._slow_tail(pos)
                    continue
                end = pos + _HDR + blen
                if sync != b"\x8eR" or end > n or blen > MAX_BODY or (verify and crc32(
                        b"" if rflags & _UNCHECKED else view[pos + _HDR:end],
                        crc32(view[pos:pos + _PREFIX])) != crc):
                    pos = self._recover(pos)
                    continue
                if rtype == _FRAME and blen >= 9:
                    if rflags & _TRUNC:
                        self.truncated.add(len(self.offset))
                    t_a(wall)
                    c_a(conn)
                    s_a(fsid & 0x7FFF_FFFF)
                    ty_a(ftype)
                    f_a(fflags)
                    d_a(rflags & _S2C)
                    l_a((fhi << 8) | flo)
                    o_a(pos)
                else:
                    self._other(self._record_at(pos))
                pos = end
                if progress is not None and pos >= next_report:
                    progress(pos, n)
                    next_report = pos + (8 << 20)
        finally:
            view.release()
        for i in range(len(self.conn)):
            entry = conns.get(self.conn[i])
            if entry is not None:
                entry.frames += 1
        if progress is not None:
            progress(n, n)

    def _other(self, rec: Record) -> None:
        self.others.append((rec.offset, rec.type, rec.conn_id))
        if rec.type == RecordType.CONNECTION:
            self.connections[rec.conn_id] = ConnectionEntry(rec.conn_id, rec.json(), rec.wall)
        elif rec.type == RecordType.CLOSE:
            entry = self.connections.get(rec.conn_id)
            if entry is not None:
                entry.closed = rec.wall
                entry.close_info = rec.json()
        elif rec.type == RecordType.END:
            self.clean_end = True

    def _slow_tail(self, pos: int) -> int:
        """Records too short for the combined unpack near the end: use the reader."""
        return self._recover(pos, tail=True)

    def _recover(self, pos: int, tail: bool = False) -> int:
        """Hand a damaged (or final) stretch to the validating reader; return where the
        fast path resumes: after the first valid record past the damage."""
        reader = CaptureReader(cast(BinaryIO, self._backing), on_problem=self.problems.append)
        for rec in reader.records(start=pos):
            if rec.type == _FRAME and len(rec.body) >= 9:
                self._add_frame(rec)
            else:
                self._other(rec)
            if not tail:
                return rec.offset + _HDR + len(rec.body)
        return len(self._mm)

    def _add_frame(self, rec: Record) -> None:
        b = rec.body
        if rec.truncated:
            self.truncated.add(len(self.offset))
        self.time.append(rec.wall)
        self.conn.append(rec.conn_id)
        self.stream.append(int.from_bytes(b[5:9], "big") & 0x7FFF_FFFF)
        self.type.append(b[3])
        self.flags.append(b[4])
        self.direction.append(rec.flags & _S2C)
        self.length.append(int.from_bytes(b[0:3], "big"))
        self.offset.append(rec.offset)

    # --------------------------------------------------------------- access

    def __len__(self) -> int:
        return len(self.offset)

    def record_at(self, offset: int) -> Record:
        """The record at a byte offset (from :attr:`offset` or :attr:`others`)."""
        return self._record_at(offset)

    def _record_at(self, pos: int) -> Record:
        _, rtype, rflags, blen, conn, seq, t, wall, _ = RECORD_HEADER.unpack_from(self._mm, pos)
        return Record(offset=pos, type=rtype, flags=rflags, conn_id=conn, seq=seq, t=t,
                      wall=wall, body=self._mm[pos + _HDR:pos + _HDR + blen])

    def frame_record(self, i: int) -> Record:
        """The FRAME record of frame ``i`` (its body is the frame as stored)."""
        return self._record_at(self.offset[i])

    def frame(self, i: int) -> Frame:
        """Frame ``i`` parsed (a capped DATA payload is zero-padded; see ``truncated``)."""
        return parse_frame(self.frame_record(i).frame_bytes())

    def direction_of(self, i: int) -> Direction:
        return Direction(self.direction[i])

    def memory_bytes(self) -> int:
        """Bytes held by the columns (what the index costs per frame, times frames)."""
        cols = (self.time, self.conn, self.stream, self.type, self.flags, self.direction,
                self.length, self.offset)
        return sum(c.buffer_info()[1] * c.itemsize for c in cols)

    def close(self) -> None:
        self._mm.close()
        self._backing.close()

    def __enter__(self) -> CaptureIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
