"""Running a compiled filter (proxy/filter.py) over the frame table.

A filter's result is an index array of rows (``array('I')``); the timeline
only needs ``len(view)`` and ``view[i]`` (docs/ui.md, "How it scales").

Most terms read a frame's header fields, direction, findings or header block,
all of which the table has without touching the frame's bytes. So rows are
matched through one reusable :class:`_Row` object whose attributes are set
from the columns — no frame is parsed and nothing is allocated per row. Only
a bare word needs the frame's one-line summary (:func:`frame_summary` needs
the typed frame); filters with words take the exact path: the real event
rebuilt per row.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable

from proxy.filter import Filter, term_keys
from proxy.observe.describe import block_summary
from proxy.observe.enums import type_name
from ui.model.session import Session
from ui.model.table import DIRECTIONS, NO_WINDOW, FrameTable

_EMPTY: tuple[()] = ()


def needs_frames(text: str) -> bool:
    """Whether ``text`` has a bare-word term (which searches frame summaries)."""
    return any(key is None for key, _ in term_keys(text))


def bare_words(text: str) -> list[str]:
    """The bare-word terms of ``text``, lowercased (what they search for)."""
    return [term.lower() for key, term in term_keys(text) if key is None]


_FALLBACK = frozenset("0123456789 bytes")
"""What ``frame_summary`` of a row object (no typed frame) can say: ``N bytes``."""
_SUMMARY_CHARS: dict[int, frozenset[str]] = {
    t: frozenset(chars) | _FALLBACK for t, chars in {
        0: "0123456789 bytes+padding window conn=stream=-none",
        8: "+0123456789 window conn=stream=-none",
        6: "ack opaque=0123456789abcdef",
        2: "dep=0123456789(excl) weight=",
        1: "fragment 0123456789 bytes, continuation follows",
        9: "fragment 0123456789 bytes",
    }.items()}
"""Every character (lowercased) the summary of a frame of that type can contain
when it has no header block and no finding (proxy.observe.describe.frame_summary):
a word with a character outside the set cannot occur in such a summary."""
_PRIORITY_FLAG = 0x20
_PADDED_FLAG = 0x8


def _word_types(words: list[str]) -> list[bool]:
    """Per frame type: whether no word can occur in the summary of a frame of that
    type without a block or finding — then the row object answers exactly."""
    ok = [False] * 256
    for t, chars in _SUMMARY_CHARS.items():
        ok[t] = all(any(ch not in chars for ch in w) for w in words)
    return ok


_WINDOWED = (0, 8)
"""DATA and WINDOW_UPDATE: the rows whose events a ``stall:`` term needs."""

_COLUMN_KEYS = frozenset({"type", "stream", "conn", "dir", "len", "flags", "host"})
"""Filter keys answered from the index columns (and connection metadata) alone."""


def needs_decoding(text: str) -> bool:
    """Whether ``text`` needs what only the observer knows (header blocks, findings,
    summaries): over a capture still being decoded it sees only decoded rows."""
    return any(key not in _COLUMN_KEYS for key, _ in term_keys(text))


class _RowFrame:
    __slots__ = ("flags", "length", "stream_id", "type")
    malformed = None
    """Rows with findings (a malformed frame has one) never use the row object."""

    def __init__(self) -> None:
        self.type = 0
        self.flags = 0
        self.stream_id = 0
        self.length = 0

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]


class _Block:
    """A header block as filters see it: the header list."""

    __slots__ = ("headers",)

    def __init__(self) -> None:
        self.headers: tuple[tuple[str, str], ...] = ()


_TYPE_NAMES = tuple(type_name(t) for t in range(256))


class _Row:
    """Quacks like a FrameObserved for every filter term; for bare words, only where
    :func:`_run_words` knows that no word is in the frame's summary."""

    __slots__ = ("block", "block_stream_id", "direction", "findings", "frame", "summary_lower",
                 "windows")

    def __init__(self) -> None:
        self.frame = _RowFrame()
        self.block_stream_id: int | None = None
        """The stream a PUSH_PROMISE's block promised, on the row that ended it."""
        self.windows: tuple[int, int | None] | None = None
        """None: a ``stall:`` term reads the windows of DATA and WINDOW_UPDATE rows
        from their rebuilt events (:func:`run_filter`)."""
        self.direction = DIRECTIONS[0]
        self.findings: tuple[object, ...] = ()
        self.block: object = None
        self.summary_lower = ""
        """What bare words search as the frame's summary (``proxy.filter``): the
        summary itself, lowercased, or "" where none of the filter's words can be
        in it (:func:`_run_words` knows which)."""


def run_filter(session: Session, flt: Filter, *, rows: array[int] | None = None,
               start: int = 0, stop: int | None = None,
               cancel: threading.Event | None = None,
               on_chunk: Callable[[array[int], int], None] | None = None,
               chunk: int = 65_536) -> array[int] | None:
    """Rows in ``[start, stop)`` (or of ``rows``) that ``flt`` matches, ascending.

    ``on_chunk(matched_so_far, scanned_up_to)`` is called every ``chunk`` rows
    (the UI shows partial results early); returns None if ``cancel`` was set.
    """
    table = session.table
    end = len(table) if stop is None else stop
    candidates: range | array[int] = range(start, end) if rows is None else rows
    out = array("I")
    pred = flt.predicate
    conns = session.conns
    need_sh = flt.needs_stream_headers
    # (stall: reads a DATA's windows and a WINDOW_UPDATE's increment: those rows'
    # events are rebuilt, as bare words need some)
    keys = {key for key, _ in term_keys(flt.text)}
    windowed: tuple[int, ...] = _WINDOWED if "stall" in keys else ()
    if "stream" in keys:
        # (a PUSH_PROMISE belongs to the stream it promises too: its id is in the bytes)
        windowed += (5,)
    words = bare_words(flt.text)
    if words:
        return _run_words(session, table, flt, words, candidates, cancel, on_chunk, chunk,
                          windowed)
    event = table.event
    row = _Row()
    rf = row.frame
    t_type, t_flags, t_stream, t_len, t_dir, t_conn = (
        table.type, table.flags, table.stream, table.length, table.direction, table.conn)
    blocks_get = table.block_headers.get
    promised_get = table.block_stream.get
    block = _Block()
    findings_get = table.findings.get
    dirs = DIRECTIONS
    append = out.append
    for n, i in enumerate(candidates, 1):
        rf.type = t_type[i]
        rf.flags = t_flags[i]
        sid = rf.stream_id = t_stream[i]
        rf.length = t_len[i]
        row.direction = dirs[t_dir[i]]
        row.findings = findings_get(i, _EMPTY)
        headers = blocks_get(i)
        if headers is None:
            row.block = None
            row.block_stream_id = None
        else:
            block.headers = headers
            row.block = block
            row.block_stream_id = promised_get(i)
        c = conns.get(t_conn[i])
        sh = None
        if need_sh and c is not None and sid:
            s = c.streams.get(sid)
            sh = s.stream_headers if s is not None else None
        ev: object = row
        if rf.type in windowed:
            ev = event(i)
        if ev is not None and pred(ev, c, sh):  # type: ignore[arg-type]
            append(i)
        if n % chunk == 0:
            if cancel is not None and cancel.is_set():
                return None
            if on_chunk is not None:
                on_chunk(out, i + 1)
    return out


def _run_words(session: Session, table: FrameTable, flt: Filter, words: list[str],
               candidates: range | array[int], cancel: threading.Event | None,
               on_chunk: Callable[[array[int], int], None] | None,
               chunk: int, windowed: tuple[int, ...]) -> array[int] | None:
    """A filter with bare words: they search the frame's one-line summary
    (:func:`proxy.observe.describe.frame_summary`), which the columns give for most
    rows without parsing the frame (several microseconds a row):

    * a header frame's summary is its header list's (kept in the table);
    * an unpadded DATA frame's is its length and the windows (columns);
    * a WINDOW_UPDATE's, for words without digits, is its windows (columns) and an
      increment whose digits no such word can touch;
    * for the other types, a word with a character their summary never holds
      (:data:`_SUMMARY_CHARS`) cannot be in it.

    Those rows are matched through the row object as in :func:`run_filter`, its
    ``summary_lower`` set; the others (findings, SETTINGS, RST_STREAM, a
    PUSH_PROMISE or prioritised HEADERS, a WINDOW_UPDATE or padded DATA a word
    may be in) are rebuilt exactly.
    """
    out = array("I")
    pred = flt.predicate
    conns = session.conns
    need_sh = flt.needs_stream_headers
    type_ok = _word_types(words)
    no_digits = not any(ch.isdigit() for w in words for ch in w)
    frame_bytes, refs = table.source.frame_bytes, table.ref
    row = _Row()
    rf = row.frame
    t_type, t_flags, t_stream, t_len, t_dir, t_conn = (
        table.type, table.flags, table.stream, table.length, table.direction, table.conn)
    win_conn, win_stream = table.win_conn, table.win_stream
    blocks_get = table.block_headers.get
    promised_get = table.block_stream.get
    block = _Block()
    findings = table.findings
    dirs = DIRECTIONS
    append = out.append
    event = table.event
    for n, i in enumerate(candidates, 1):
        if n % chunk == 0:
            if cancel is not None and cancel.is_set():
                return None
            if on_chunk is not None:
                on_chunk(out, i)
        ftype = t_type[i]
        flags = t_flags[i]
        sid = t_stream[i]
        headers = blocks_get(i)
        ev: object = row
        if i in findings or ftype in windowed:
            ev = event(i)
        elif headers is not None:
            # (a padded or prioritised HEADERS' summary says so: rebuilt, as a PUSH_PROMISE)
            if ftype != 5 and not flags & (_PRIORITY_FLAG | _PADDED_FLAG):
                block.headers = headers
                row.block = block
                row.summary_lower = block_summary(headers).lower()
            else:
                ev = event(i)
        elif type_ok[ftype] and not (ftype == 1 and flags & (_PRIORITY_FLAG | _PADDED_FLAG)):
            row.block = None
            row.summary_lower = ""
        elif ftype == 0 and not flags & _PADDED_FLAG:
            row.block = None
            row.summary_lower = _data_summary(t_len[i], win_conn[i], win_stream[i])
        elif ftype == 8:
            row.block = None
            if no_digits:
                row.summary_lower = _window_update_stand_in(win_conn[i], win_stream[i])
            else:  # the increment's digits count: only they come from the bytes
                raw = frame_bytes(refs[i])
                if raw is None or len(raw) != 13:
                    ev = event(i)
                else:
                    row.summary_lower = _window_update_summary(
                        int.from_bytes(raw[9:13], "big") & 0x7FFF_FFFF, win_conn[i],
                        win_stream[i])
        else:
            ev = event(i)
        if ev is None:
            continue
        if ev is row:
            row.block_stream_id = promised_get(i) if headers is not None else None
            rf.type = ftype
            rf.flags = flags
            rf.stream_id = sid
            rf.length = t_len[i]
            row.direction = dirs[t_dir[i]]
            row.findings = _EMPTY
        c = conns.get(t_conn[i])
        sh = None
        if need_sh and c is not None and sid:
            s = c.streams.get(sid)
            sh = s.stream_headers if s is not None else None
        if pred(ev, c, sh):  # type: ignore[arg-type]
            append(i)
    return out


def _window_update_summary(increment: int, wc: int, ws: int) -> str:
    """:func:`frame_summary` of a WINDOW_UPDATE frame from its increment and the
    window columns."""
    if wc == NO_WINDOW:
        return f"+{increment}"
    if ws == NO_WINDOW:
        return f"+{increment}  window conn={wc}"
    return f"+{increment}  window conn={wc} stream={ws}"


def _window_update_stand_in(wc: int, ws: int) -> str:
    """A WINDOW_UPDATE's summary with its increment (in the frame's bytes, not the
    columns) written as ``0``: for words without digits, containment is the same
    as in the real summary (a word cannot reach into, nor across, the digits)."""
    return _window_update_summary(0, wc, ws)


def _data_summary(length: int, wc: int, ws: int) -> str:
    """:func:`frame_summary` of an unpadded DATA frame, lowercased, from the table's
    columns."""
    size = "1 byte" if length == 1 else f"{length} bytes"
    if wc == NO_WINDOW:
        return size
    return f"{size}  window conn={wc}" + ("" if ws == NO_WINDOW else f" stream={ws}")


def scope_rows(session: Session, conn_id: int | None, stream_id: int | None) -> array[int] | None:
    """The rows of one connection (and stream), or None for everything."""
    if conn_id is None:
        return None
    c = session.conns.get(conn_id)
    if c is None:
        return array("I")
    if stream_id is not None:
        s = c.streams.get(stream_id)
        return array("I", s.rows) if s is not None else array("I")
    t_conn = session.table.conn
    return array("I", (i for i in range(len(session.table)) if t_conn[i] == conn_id))
