"""Reading a capture file: a validating, streaming record generator.

:class:`CaptureReader` yields :class:`Record` objects as it reads, so a large
file starts showing before it is fully read. Every record's CRC is checked. A
record that does not validate is reported as a :class:`BadRecord` (with its
byte offset) and skipped: the reader looks for the next record that does
validate. A file that ends inside a record (a crash mid-write) reports that
last record as *torn*; every complete record before it is still read. Only a
file that is not a capture at all raises (:class:`CaptureFormatError`).

Gzip-compressed captures are recognised by their magic bytes, not the name.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from zlib import crc32

from proxy.capture.format import (
    FILE_HEADER,
    FORMAT_NAME,
    GZIP_MAGIC,
    HTTP1_HEAD_LENGTH,
    KNOWN_TYPES,
    MAGIC,
    MAX_BODY,
    MAX_HEADER_JSON,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    RECORD_PREFIX,
    SYNC,
    VERSION,
    RecordFlag,
    RecordType,
)
from proxy.capture.record_json import JSON_TYPES, json_problem
from proxy.observe.enums import Direction
from proxy.observe.records import positional, record

CHUNK = 1 << 20
_HDR = RECORD_HEADER_SIZE
_PREFIX = RECORD_PREFIX.size
_unpack_record = RECORD_HEADER.unpack_from
_S2C_FLAG = int(RecordFlag.S2C)
_TRUNCATED_FLAG = int(RecordFlag.TRUNCATED)
_UNCHECKED_FLAG = int(RecordFlag.UNCHECKED)
_S2C_DIR, _C2S_DIR = Direction.S2C, Direction.C2S
_END = int(RecordType.END)


class CaptureFormatError(Exception):
    """The file is not an h2scope capture, or a version this reader cannot read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureHeader:
    version: int
    h2scope: str
    started: float
    """Wall clock (Unix seconds) when recording started."""
    started_monotonic: float
    max_data_bytes: int | None
    config: dict[str, Any]
    size: int
    """Bytes the file header occupies: the first record starts here."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The whole header JSON, including keys newer writers add."""
    damaged: str | None = None
    """Why the header JSON could not be read (a salvaged reading: defaults stand in)."""


@record
class Record:
    offset: int
    """Byte offset of the record in the (uncompressed) file."""
    type: int
    """A :class:`RecordType` value."""
    flags: int
    conn_id: int
    seq: int
    t: float
    """The observer clock when the bytes were fed (seconds, monotonic)."""
    wall: float
    """Wall clock (Unix seconds)."""
    body: bytes

    @property
    def direction(self) -> Direction:
        return _S2C_DIR if self.flags & _S2C_FLAG else _C2S_DIR

    @property
    def truncated(self) -> bool:
        return bool(self.flags & _TRUNCATED_FLAG)

    def json(self) -> dict[str, Any]:
        """The body of a JSON record (CONNECTION, CLOSE, H2C_UPGRADE, LOST, END)."""
        value = json.loads(self.body)
        return value if isinstance(value, dict) else {"value": value}

    def http1(self) -> tuple[bytes, bytes]:
        """(head, body) of an HTTP1 record."""
        (n,) = HTTP1_HEAD_LENGTH.unpack_from(self.body, 0)
        start = HTTP1_HEAD_LENGTH.size
        return self.body[start:start + n], self.body[start + n:]

    def http1_head(self) -> tuple[str, list[tuple[str, str]]]:
        """An HTTP1 record's start line and header fields (as HTTP/1.x text is read:
        UTF-8, a byte that is not kept as a lone surrogate; a value without the
        spaces and tabs around it, RFC 9112 §5.1, as the relay reads it)."""
        head, _ = self.http1()
        lines = head.decode("utf-8", "surrogateescape").split("\r\n")
        return lines[0], [(name, value.strip(" \t")) for name, _, value in
                          (line.partition(":") for line in lines[1:] if ":" in line)]

    def frame_bytes(self) -> bytes:
        """A FRAME record's frame, zero-padded to the length its header states.

        A DATA payload cut by ``max_data_bytes`` is padded so the observer
        accounts flow control and stream state exactly as it did live; only the
        DATA content differs (:attr:`truncated` says so).
        """
        body = self.body
        if not self.flags & _TRUNCATED_FLAG:
            return body
        want = 9 + ((body[0] << 16) | (body[1] << 8) | body[2])
        return body + bytes(want - len(body)) if len(body) < want else body


new_record = positional(Record)
"""``Record(...)`` with every field positional, in order (the reader's hot path)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BadRecord:
    offset: int
    """Byte offset where the unreadable bytes start."""
    reason: str
    torn: bool = False
    """The file ends inside this record (a crash while writing)."""
    skipped: int = 0
    """Bytes skipped before the next valid record (or the end of the file)."""

    def __str__(self) -> str:
        return f"byte offset {self.offset}: {self.reason}"


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a capture for reading, transparently gunzipping by magic bytes."""
    f: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if f.read(2) == GZIP_MAGIC:
        f.seek(0)
        return Gunzip(f)  # type: ignore[return-value]
    f.seek(0)
    return f


def damaged_header(header: CaptureHeader) -> BadRecord:
    return BadRecord(offset=0, reason=f"the capture's header is damaged ({header.damaged}): "
                     "its records are read without it (when it was recorded, and with which "
                     "settings, are not known)")


def gzip_problem(f: object) -> str | None:
    """Why a :class:`Gunzip` stream ended early (None: it did not, or not gzip)."""
    return f.problem if isinstance(f, Gunzip) else None


def gzip_bad_record(f: object, problem: str) -> BadRecord:
    end = f.produced if isinstance(f, Gunzip) else 0
    if "checksum" in problem:  # (all of it decompressed: nothing after it to lose)
        return BadRecord(offset=end, reason=problem)
    return BadRecord(offset=end, torn=True, reason=f"{problem}: the records before byte "
                     f"{end} of the decompressed capture are kept, the rest is lost")


class Gunzip:
    """A gzip file's bytes, read as far as they decompress.

    ``gzip.open`` raises at a cut or damaged stream and loses what it had
    decompressed of the last read: a half-downloaded ``.gz`` capture would give
    nothing. This gives every byte before the damage, then ends, with
    :attr:`problem` saying why (the reader reports it as a torn end).
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.fileobj = raw
        """The compressed file (its position is the progress)."""
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._fed = False
        """Bytes of the current gzip member were fed (a file may hold several)."""
        self._buf = bytearray()
        self._done = False
        self.produced = 0
        """Decompressed bytes returned so far."""
        self.problem: str | None = None
        """Why the bytes ended before the gzip stream did, if they did."""

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._buf) < n) and not self._done:
            raw = self.fileobj.read(1 << 16)
            if not raw:
                self._done = True
                if self._fed:
                    self.problem = ("the gzip file ends before its compressed stream does "
                                    "(it was cut short)")
                break
            self._feed(raw)
        if n < 0 or n >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(self._buf[:n])
            del self._buf[:n]
        self.produced += len(out)
        return out

    def _feed(self, raw: bytes) -> None:
        while raw and not self._done:
            if not self._fed and not raw.strip(b"\0"):
                return  # zero padding after the last member (as gzip allows)
            self._fed = True
            before = self._d.copy()
            try:
                self._buf += self._d.decompress(raw)
            except zlib.error as exc:
                self._done = True
                self.problem = f"the gzip data is damaged ({exc})"
                self._d = before
                self._salvage(raw)
                if "check" in str(exc):  # (zlib: "incorrect data check", "… length check")
                    self.problem = (f"the gzip file's checksum does not match its data "
                                    f"({exc}): the data decompressed whole, but a byte of it "
                                    "may be wrong (the records' own checksums say which)")
                return
            if not self._d.eof:
                return
            raw = self._d.unused_data  # the next member, if any
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._fed = False

    def _salvage(self, raw: bytes) -> None:
        """Decompress ``raw`` a little at a time up to the damage: what comes before
        it is good (a checksum error only shows at the end of a member)."""
        for i in range(0, len(raw), 256):
            before = self._d.copy()
            try:
                self._buf += self._d.decompress(raw[i:i + 256])
            except zlib.error:  # (then byte by byte: a bad checksum in the trailer
                self._d = before  # leaves every byte of the data good)
                for j in range(i, min(i + 256, len(raw))):
                    try:
                        self._buf += self._d.decompress(raw[j:j + 1])
                    except zlib.error:
                        return
                return

    def tell(self) -> int:
        return self.produced

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            raise OSError("a gzip capture can only be read from its start")
        self.fileobj.seek(0)
        self.__init__(self.fileobj)  # type: ignore[misc]
        return 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.fileobj.close()

    def __enter__(self) -> Gunzip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_script(path: object) -> bool:
    if not isinstance(path, str):
        return False
    from proxy.replay.script_frames import is_script

    try:
        return is_script(path)
    except (OSError, ValueError):
        return False


def read_header(f: BinaryIO, *, salvage: bool = False) -> CaptureHeader:
    """Read and validate the file header; raises :class:`CaptureFormatError`.

    With ``salvage``, a header whose JSON is damaged (a flipped byte: its records
    may all be whole) is read as defaults, with :attr:`CaptureHeader.damaged`
    saying why, rather than refused: the records are what matters."""
    head = f.read(FILE_HEADER.size)
    if len(head) < FILE_HEADER.size or not head.startswith(MAGIC):
        from proxy.capture.netlog_import import looks_like_netlog
        from proxy.capture.pcap import is_packet_capture

        name = getattr(f, "name", None)
        name = shlex.quote(name) if isinstance(name, str) else "FILE"
        if not head:
            raise CaptureFormatError("not an h2scope capture: the file is empty")
        if head.startswith(MAGIC):
            raise CaptureFormatError(f"the capture was cut inside its header ({len(head)} of "
                                     f"its first {FILE_HEADER.size} bytes): nothing in it "
                                     "can be read")
        if head.lstrip().startswith((b"# h2scope frame", b"h2scope_script:", b"frames:")) \
                or (b"\0" not in head and _is_script(getattr(f, "name", None))):
            raise CaptureFormatError("this is a frame script (export --format script), not "
                                     f"a capture: `h2scope replay {name} --target URL` "
                                     "sends it")
        if is_packet_capture(head):
            raise CaptureFormatError("not an h2scope capture but a packet capture (pcap/"
                                     f"pcapng): `h2scope import {name}` turns its HTTP/2 "
                                     "into one (h2c, or TLS with --keylog-file KEYLOG)")
        if re.match(rb'\s*\{\s*"log"', head):
            raise CaptureFormatError("not an h2scope capture but a HAR file: it holds "
                                     "requests and responses, not HTTP/2 frames (a browser's "
                                     "DevTools or a HAR viewer opens it)")
        if looks_like_netlog(head):
            raise CaptureFormatError("not an h2scope capture but JSON (a Chrome net log?): "
                                     f"`h2scope import {name}` turns a net log's HTTP/2 "
                                     "into one")
        raise CaptureFormatError("not an h2scope capture (the file does not start with the "
                                 "H2SCOPE magic)")
    _, version, _, n = FILE_HEADER.unpack(head)
    if version > VERSION:
        raise CaptureFormatError(f"capture format version {version} is newer than this "
                                 f"h2scope reads ({VERSION}); upgrade h2scope")
    if n > MAX_HEADER_JSON:
        if salvage:  # (where the records begin is not known: they are looked for)
            return _salvaged(version, FILE_HEADER.size, f"it claims {n} bytes of JSON")
        raise CaptureFormatError(f"capture header claims {n} bytes; the file is corrupt")
    body = f.read(n)
    try:
        meta = json.loads(body)
    except ValueError as exc:
        if salvage and len(body) == n:
            return _salvaged(version, FILE_HEADER.size + n, f"its JSON does not parse: {exc}")
        raise CaptureFormatError(f"capture header is not valid JSON ({exc}); the file is "
                                 "corrupt or was cut inside its header") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        if salvage:
            return _salvaged(version, FILE_HEADER.size + n,
                             "it does not name the h2scope-capture format")
        raise CaptureFormatError("capture header does not name the h2scope-capture format")
    wrong = _header_problem(meta)
    if wrong is not None:
        if salvage:
            return _salvaged(version, FILE_HEADER.size + n, wrong)
        raise CaptureFormatError(f"capture header: {wrong}; the file is corrupt or was "
                                 "written by another tool")
    return CaptureHeader(version=version, h2scope=str(meta.get("h2scope", "?")),
                         started=float(meta.get("started", 0.0)),
                         started_monotonic=float(meta.get("started_monotonic", 0.0)),
                         max_data_bytes=meta.get("max_data_bytes"),
                         config=dict(meta.get("config") or {}),
                         size=FILE_HEADER.size + n, raw=meta)


def _header_problem(meta: dict[str, Any]) -> str | None:
    """Why the header JSON's documented keys cannot be read, or None."""
    for key in ("started", "started_monotonic"):
        v = meta.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"its {key!r} is not a number ({str(v)[:40]})"
    cap = meta.get("max_data_bytes")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        return f"its 'max_data_bytes' is not a byte count ({str(cap)[:40]})"
    if not isinstance(meta.get("config") or {}, dict):
        return "its 'config' is not an object"
    return None


def _salvaged(version: int, size: int, why: str) -> CaptureHeader:
    return CaptureHeader(version=version, h2scope="?", started=0.0, started_monotonic=0.0,
                         max_data_bytes=None, config={}, size=size, damaged=why)


class _Window:
    """A sliding window over a stream of bytes, addressed by absolute offset."""

    def __init__(self, f: BinaryIO, base: int) -> None:
        self.f = f
        self.data = b""
        self.base = base
        self.eof = False

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def ensure(self, off: int, n: int) -> bool:
        """Make ``[off, off + n)`` available, dropping bytes before ``off``."""
        need = off + n
        while self.end < need and not self.eof:
            if off > self.base:
                self.data = self.data[off - self.base:]
                self.base = off
            chunk = self.f.read(max(CHUNK, need - self.end))
            if not chunk:
                self.eof = True
                break
            self.data += chunk
        return self.end >= need


def _valid_at(w: _Window, off: int) -> tuple[bool, str]:
    """Whether a whole, valid record starts at ``off`` (reason when not)."""
    if not w.ensure(off, _HDR):
        return False, "the file ends inside a record header"
    i = off - w.base
    sync, rtype, flags, length, _, _, _, _, crc = _unpack_record(w.data, i)
    if sync != SYNC:
        return False, f"no record marker (found {w.data[i:i + 2].hex()})"
    if length > MAX_BODY:
        return False, f"record claims a {length}-byte body, more than any record holds"
    if not w.ensure(off, _HDR + length):
        return False, f"the file ends inside a {length}-byte record"
    i = off - w.base
    view = memoryview(w.data)
    body = b"" if flags & _UNCHECKED_FLAG else view[i + _HDR:i + _HDR + length]
    if crc32(body, crc32(view[i:i + _PREFIX])) != crc:
        return False, "CRC mismatch: the record's bytes are damaged"
    if rtype not in KNOWN_TYPES:
        return False, f"unknown record type {rtype}"
    return True, ""


class CaptureReader:
    """Streaming reader of one capture file (plain or gzip).

    ``on_problem`` is called with each :class:`BadRecord` as it is found; all of
    them are also collected in :attr:`problems`.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *,
                 on_problem: Callable[[BadRecord], None] | None = None) -> None:
        if isinstance(source, (str, os.PathLike)):
            self._f = open_binary(source)
            self._owned = True
        else:
            self._f = source
            self._owned = False
            self._f.seek(0)
        try:
            self.header = read_header(self._f, salvage=True)
        except CaptureFormatError as exc:
            problem = gzip_problem(self._f)
            if self._owned:
                self._f.close()
            if problem is not None:  # (the header itself is in the damaged part)
                raise CaptureFormatError(f"{problem}, before the end of the capture's "
                                         "header: nothing in it can be read") from exc
            raise
        except BaseException:
            if self._owned:
                self._f.close()
            raise
        self.problems: list[BadRecord] = []
        self._on_problem = on_problem
        self.clean_end = False
        """An END record was read: the writer closed the file normally."""

    def close(self) -> None:
        if self._owned:
            self._f.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def position(self) -> int:
        """Compressed bytes consumed so far (for progress against the file size)."""
        f: Any = self._f
        raw = getattr(f, "fileobj", None)
        return int((raw or f).tell())

    def _report(self, problem: BadRecord) -> None:
        self.problems.append(problem)
        if self._on_problem is not None:
            self._on_problem(problem)

    def records(self, start: int | None = None) -> Iterator[Record]:
        """Yield every valid record in file order; report and skip the rest.

        ``start`` resumes at a byte offset (seekable, uncompressed files only).
        A gzip file that is cut or damaged gives the records before the damage,
        then a torn end naming it.
        """
        if self.header.damaged is not None and start is None:
            self._report(damaged_header(self.header))
        yield from self._records(start)
        problem = gzip_problem(self._f)
        if problem is not None:
            self._report(gzip_bad_record(self._f, problem))

    def _records(self, start: int | None) -> Iterator[Record]:
        off = self.header.size if start is None else start
        if start is not None:
            self._f.seek(start)
        w = _Window(self._f, off)
        while True:
            if off + _HDR > w.base + len(w.data) and not w.ensure(off, _HDR):
                if w.end > off:
                    self._report(BadRecord(offset=off, torn=True, skipped=w.end - off,
                                           reason=f"the file ends inside a record header "
                                           f"({w.end - off} of {_HDR} bytes): torn last "
                                           "record skipped"))
                return
            i = off - w.base
            sync, rtype, flags, length, conn, seq, t, wall, crc = _unpack_record(w.data, i)
            ok = sync == SYNC and length <= MAX_BODY
            if ok and off + _HDR + length > w.base + len(w.data) \
                    and not w.ensure(off, _HDR + length):
                resumed = self._resync(w, off + 1)
                if resumed is None:
                    self._report(BadRecord(offset=off, torn=True, skipped=w.end - off,
                                           reason=f"the file ends inside a record "
                                           f"({w.end - off} of {_HDR + length} bytes): torn "
                                           "last record skipped"))
                    return
                self._report(BadRecord(offset=off, skipped=resumed - off,
                                       reason=f"record claims {length} bytes, past the next "
                                       "valid record: its length field is damaged"))
                off = resumed
                continue
            if ok:
                i = off - w.base
                view = memoryview(w.data)
                body_end = i + _HDR + length
                body = b"" if flags & _UNCHECKED_FLAG else view[i + _HDR:body_end]
                ok = crc32(body, crc32(view[i:i + _PREFIX])) == crc
            if not ok:
                _, why = _valid_at(w, off)
                resumed = self._resync(w, off + 1)
                end = w.end if resumed is None else resumed
                self._report(BadRecord(offset=off, reason=why, skipped=end - off))
                if resumed is None:
                    return
                off = resumed
                continue
            i = off - w.base
            skip = None
            if rtype not in KNOWN_TYPES:
                skip = f"unknown record type {rtype} (written by a newer h2scope?) skipped"
            elif rtype in JSON_TYPES:  # (a few per connection)
                problem = json_problem(rtype, w.data[i + _HDR:i + _HDR + length])
                if problem is not None:
                    skip = f"{RecordType(rtype).name} record: {problem}; skipped"
            if skip is not None:
                self._report(BadRecord(offset=off, skipped=_HDR + length, reason=skip))
                off += _HDR + length
                continue
            yield new_record(off, rtype, flags, conn, seq, t, wall,
                             w.data[i + _HDR:i + _HDR + length])
            if rtype == _END:
                self.clean_end = True
            off += _HDR + length

    def _resync(self, w: _Window, start: int) -> int | None:
        """Offset of the next valid record at or after ``start``, or None."""
        off = start
        while True:
            if not w.ensure(off, 2):
                return None
            i = w.data.find(SYNC, off - w.base)
            if i < 0:
                off = w.end - 1  # the marker may straddle the next read
                if w.eof:
                    return None
                w.ensure(off, CHUNK)
                continue
            off = w.base + i
            if _valid_at(w, off)[0]:
                return off
            off += 1


def iter_records(path: str | os.PathLike[str],
                 on_problem: Callable[[BadRecord], None] | None = None) -> Iterator[Record]:
    """Convenience: every valid record of ``path``."""
    with CaptureReader(path, on_problem=on_problem) as reader:
        yield from reader.records()
