"""The UI's frame index: one row per frame, in arrival order, as columns.

docs/ui.md, "How it scales": a million frames must scroll like ten, so the UI never holds a
million frame objects. :class:`FrameTable` keeps one ``array`` per field
(time, connection, stream, type, flags, direction, length, where the bytes
are) — about 40 bytes a frame — plus sparse dictionaries for what only some
frames have (a decoded header block, findings). The frame's bytes stay where
they are (the capture file, memory-mapped, or a bounded in-memory store for
live traffic) and are read for the rows on screen and the selected frame only.

Rows are only ever appended, by one thread (the loader or the live ingest);
the UI thread reads them. ``len()`` is read once per refresh, so a reader never
sees a half-appended row: every column is appended before :attr:`count` moves.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Protocol

from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from proxy.observe.findings import Finding
from proxy.observe.frames import Frame, parse_frame
from proxy.observe.hpack_annotated import HeaderBlock

Headers = tuple[tuple[str, str], ...]

NO_WINDOW = -(1 << 62)
"""Sentinel in the window columns: the frame changed no window."""

DIRECTIONS = (Direction.C2S, Direction.S2C)
_BLOCK_TYPES = frozenset({1, 5, 9})
"""HEADERS, PUSH_PROMISE, CONTINUATION."""


def headers_only(headers: Headers) -> HeaderBlock:
    """A HeaderBlock with only its header list (what the table keeps)."""
    return HeaderBlock(headers=headers, fields=(), wire_length=0, decoded_size=0,
                       table_size_before=0, table_size=0, table_max=0, table_entries=0,
                       inserted=0, evicted=0)


class FrameBytes(Protocol):
    """Where a row's frame bytes live: a capture (by offset) or live memory."""

    def frame_bytes(self, ref: int) -> bytes | None:
        """The whole frame (header + payload) for ``ref``; None if no longer kept."""
        ...


class FrameTable:
    """Columns of every frame seen, plus sparse per-frame details."""

    def __init__(self, source: FrameBytes) -> None:
        self.source = source
        self.time = array("d")
        self.conn = array("I")
        self.stream = array("I")
        self.type = array("B")
        self.flags = array("B")
        self.direction = array("B")
        self.length = array("I")
        self.ref = array("Q")
        """Where the frame's bytes are, for :attr:`source` (a file offset or a slot)."""
        self.seq = array("Q")
        """The observer's connection-wide frame sequence number."""
        self.win_conn = array("q")
        self.win_stream = array("q")
        self.block_headers: dict[int, Headers] = {}
        """Row → the header list of the block the frame completed (END_HEADERS).
        Only the list: the same tuple the stream holds as its request, response
        or trailers, so it costs a dictionary entry. The HPACK annotations are
        decoded again when a view asks (:meth:`Session.header_block`)."""
        self.block_stream: dict[int, int] = {}
        """Row → the promised stream of a PUSH_PROMISE's block."""
        self.findings: dict[int, tuple[Finding, ...]] = {}
        self.finding_rows = array("I")
        """Rows with findings, ascending (for "next finding")."""
        self.count = 0
        self._bind()

    def _bind(self) -> None:
        # The columns' append methods, bound once: :meth:`append` runs per frame.
        self._appends = (self.time.append, self.conn.append, self.stream.append,
                         self.type.append, self.flags.append, self.direction.append,
                         self.length.append, self.ref.append, self.seq.append,
                         self.win_conn.append, self.win_stream.append)

    def __len__(self) -> int:
        return self.count

    def adopt(self, time: array[float], conn: array[int], stream: array[int],
              type: array[int], flags: array[int], direction: array[int],
              length: array[int], ref: array[int]) -> None:
        """Take whole columns at once (a capture's index): every row is shown at
        once, and :meth:`attach` adds the decoded details row by row later."""
        n = len(ref)
        self.time, self.conn, self.stream, self.type = time, conn, stream, type
        self.flags, self.direction, self.length, self.ref = flags, direction, length, ref
        self.seq = array("Q", bytes(8 * n))
        self.win_conn = array("q", [NO_WINDOW]) * n
        self.win_stream = array("q", [NO_WINDOW]) * n
        self.count = n
        self._bind()

    def attach(self, row: int, ev: FrameObserved) -> None:
        """Add what the observer decoded to an adopted row."""
        self.seq[row] = ev.seq
        w = ev.windows
        if w is not None:
            self.win_conn[row] = w[0]
            if w[1] is not None:
                self.win_stream[row] = w[1]
        if ev.block is not None:
            self.block_headers[row] = ev.block.headers
        if ev.block_stream_id is not None:
            self.block_stream[row] = ev.block_stream_id
        if ev.findings:
            self.findings[row] = ev.findings
            self.finding_rows.append(row)

    def append(self, conn_id: int, ev: FrameObserved, ref: int) -> int:
        """Add ``ev``'s frame as the next row; returns the row number."""
        f = ev.frame
        row = self.count
        (time, conn, stream, ftype, flags, direction, length, refs, seq, win_conn,
         win_stream) = self._appends
        time(ev.t)
        conn(conn_id)
        stream(f.stream_id)
        ftype(f.type & 0xFF)
        flags(f.flags & 0xFF)
        direction(ev.direction._value_)
        length(f.length)
        refs(ref)
        seq(ev.seq)
        w = ev.windows
        if w is None:
            win_conn(NO_WINDOW)
            win_stream(NO_WINDOW)
        else:
            win_conn(w[0])
            win_stream(NO_WINDOW if w[1] is None else w[1])
        if ev.block is not None:
            self.block_headers[row] = ev.block.headers
        if ev.block_stream_id is not None:
            self.block_stream[row] = ev.block_stream_id
        if ev.findings:
            self.findings[row] = ev.findings
            self.finding_rows.append(row)
        self.count = row + 1
        return row

    def frame(self, row: int) -> Frame | None:
        """Row ``row``'s frame, parsed from its bytes; None if they are gone."""
        data = self.source.frame_bytes(self.ref[row])
        return None if data is None else parse_frame(data)

    def event(self, row: int) -> FrameObserved | None:
        """The observer's event for row ``row``, rebuilt from the columns and bytes.

        Its ``block`` carries the header list only (no field annotations, sizes
        zero): what summaries and filters read. :meth:`Session.header_block`
        decodes the whole block again.
        """
        frame = self.frame(row)
        if frame is None:
            return None
        headers = self.block_headers.get(row)
        wc, ws = self.win_conn[row], self.win_stream[row]
        return FrameObserved(t=self.time[row], direction=DIRECTIONS[self.direction[row]],
                             seq=self.seq[row], frame=frame,
                             block=None if headers is None else headers_only(headers),
                             block_stream_id=self.block_stream.get(row),
                             findings=self.findings.get(row, ()),
                             windows=None if wc == NO_WINDOW else
                             (wc, None if ws == NO_WINDOW else ws))

    def memory_bytes(self) -> int:
        """Bytes the columns hold (the per-frame cost of the index)."""
        cols = (self.time, self.conn, self.stream, self.type, self.flags, self.direction,
                self.length, self.ref, self.seq, self.win_conn, self.win_stream)
        return sum(c.buffer_info()[1] * c.itemsize for c in cols)


class LiveFrames:
    """Frame bytes of events fed straight to the UI (tests, benchmarks, a bus sink),
    kept in memory up to ``budget`` bytes.

    When the budget is exceeded the oldest frames' bytes are freed (their rows
    stay, with everything decoded) and :attr:`forgotten` counts them; a view
    asking for one gets None. Frames of header blocks (HEADERS, PUSH_PROMISE,
    CONTINUATION) are kept outside the budget: they are small, and decoding any
    later block again (the HPACK tab) needs every earlier one (RFC 7541 §2.3.2).

    The live UI does not use this: it follows the proxy's capture, and its rows
    refer to their records in the file (:class:`ui.model.backing.CaptureFrames`).
    """

    def __init__(self, budget: int = 16 << 20) -> None:
        self.budget = budget
        self._frames: list[bytes | None] = []
        self._held = 0
        self._oldest = 0
        self.forgotten = 0

    def add(self, raw: bytes) -> int:
        """Keep frame ``raw``; returns its ref."""
        frames = self._frames
        ref = len(frames)
        frames.append(raw)
        if len(raw) > 3 and raw[3] in _BLOCK_TYPES:
            return ref
        self._held += len(raw)
        if self._held > self.budget:
            oldest = self._oldest
            while self._held > self.budget and oldest < ref:
                old = frames[oldest]
                if old is not None and not (len(old) > 3 and old[3] in _BLOCK_TYPES):
                    self._held -= len(old)
                    frames[oldest] = None
                    self.forgotten += 1
                oldest += 1
            self._oldest = oldest
        return ref

    def frame_bytes(self, ref: int) -> bytes | None:
        if not 0 <= ref < len(self._frames):
            return None
        return self._frames[ref]

    def in_memory(self, ref: int) -> bool:
        return 0 <= ref < len(self._frames) and self._frames[ref] is not None


class CallableSource:
    """A :class:`FrameBytes` from a function (the capture index's reader)."""

    def __init__(self, read: Callable[[int], bytes | None]) -> None:
        self._read = read

    def frame_bytes(self, ref: int) -> bytes | None:
        return self._read(ref)
