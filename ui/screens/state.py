"""A connection's state over time: HPACK tables, flow control, settings, priority,
and the connection itself (TLS on both legs, the ClientHello as offered).

Textual has no plot widget; the plots here are character charts drawn with
the Unicode block elements (▁▂▃▄▅▆▇█), which every terminal font has.
"""

from __future__ import annotations

import itertools
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from proxy.net.clienthello import named_again
from proxy.observe.enums import Direction
from ui.model.connections import ConnInfo, FlowSeries, HpackTable, settings_view
from ui.model.hpack_replay import BlockBytes
from ui.model.session import Session, wall_clock
from ui.widgets.jumps import JumpScroll
from ui.widgets.style import safe

BLOCKS = " ▁▂▃▄▅▆▇█"


def chart(values: Sequence[float], width: int = 72, height: int = 6,
          lo: float | None = None, hi: float | None = None,
          marks: Sequence[int] = ()) -> list[str]:
    """A chart of ``values`` resampled to ``width`` columns, ``height`` lines tall.

    Each column is a bar up to the minimum of its bucket (a stall must not be
    hidden by an average) and a shaded band ``░`` from there up to its maximum, so
    a window that swings between 0 and full within one column shows as a band, not
    as nothing. The scale runs from ``lo`` (default: the least value) to ``hi``
    (default: the greatest). ``marks`` are value indexes to flag with ``↑``
    underneath.
    """
    if not values:
        return ["(no data)"]
    n = len(values)
    width = max(1, min(width, n))
    lows, highs = [], []
    for x in range(width):
        a, b = x * n // width, max(x * n // width + 1, (x + 1) * n // width)
        part = values[a:b]
        lows.append(min(part))
        highs.append(max(part))
    lo = min(lows) if lo is None else lo
    hi = max(highs) if hi is None else hi
    span = (hi - lo) or 1
    scale = height * 8 / span
    # (a value above the bottom draws at least ▁: a window refilled by a few KB
    # under a scale of megabytes is not an empty column, which reads as a stall)
    low_levels = [max(1, int((v - lo) * scale)) if v > lo else 0 for v in lows]
    high_levels = [max(1, int((v - lo) * scale)) if v > lo else 0 for v in highs]
    lines = []
    for row in range(height - 1, -1, -1):
        base = row * 8
        cells = []
        for low, high in zip(low_levels, high_levels, strict=True):
            if low - base >= 8:
                cells.append(BLOCKS[8])
            elif high > base and high - low >= 8:  # (in the band, above the bar's top)
                cells.append(BLOCKS[max(0, low - base)] if low > base else "░")
            else:
                cells.append(BLOCKS[max(0, min(8, low - base))])
        lines.append("".join(cells))
    if marks:
        under = [" "] * width
        for m in marks:
            under[min(width - 1, m * width // n)] = "↑"
        lines.append("".join(under))
    return lines


def first_in_columns(kinds: Sequence[int], value: int, width: int) -> list[int]:
    """For :func:`chart`'s ``marks``: in each of the ``width`` columns the
    values of ``kinds`` are resampled to, the index of the first ``value``.
    One slice and one C-level search per column, however long ``kinds`` is."""
    n = len(kinds)
    width = max(1, min(width, n))
    marks = []
    for x in range(width):
        a, b = x * n // width, max(x * n // width + 1, (x + 1) * n // width)
        part = kinds[a:b]
        if value in part:
            marks.append(a + part.index(value))
    return marks


ChartCache = dict[tuple[int, int], tuple[tuple[int, ...], list[str], int]]
"""(connection, chart: 0 and 1 flow control by direction, 2 and 3 HPACK tables, 4
and 5 a stream's window by direction) → ((points charted, columns[, stream]), the
chart's lines, WINDOW_UPDATEs counted or 0)."""

COLUMNS = 78
"""The columns a state tab's text has when not told (an 80-column screen, less
the scrollbar)."""
CHART_INDENT = 3
"""``  │`` before each chart line."""


def _kept(cache: ChartCache | None, key: tuple[int, int], stamp: tuple[int, ...],
          make: Callable[[], tuple[list[str], int]]) -> tuple[tuple[int, ...], list[str], int]:
    """The chart of ``key`` from ``cache`` while its series still has the points
    and the columns of ``stamp``; else made anew (and kept)."""
    kept = cache.get(key) if cache is not None else None
    if kept is None or kept[0] != stamp:
        kept = (stamp, *make())
        if cache is not None:
            cache[key] = kept
    return kept


def _table_chart(tbl: HpackTable, columns: int) -> tuple[list[str], int]:
    """The table size after each block, on a scale up to the largest size or
    maximum the table ever had (not the last maximum: a table lowered from 4,096 to
    256 drew 625 B and 3,770 B alike at full height), with ``↑`` under each block
    that changed the maximum, and the scale after the bars."""
    maxes, sizes = tbl.maxes, tbl.sizes
    if not sizes:
        return ["(no data)"], 0
    hi = max(max(sizes), max(maxes), 1)
    changes = array("B", [maxes[0] != 4096])  # (RFC 7541: 4,096 until an update)
    changes.extend(maxes[i] != maxes[i - 1] for i in range(1, len(maxes)))
    top = f"{hi:,}"
    width = max(1, columns - CHART_INDENT - 2 - len(top))
    lines = chart(sizes, width=width, lo=0, hi=hi, height=4,
                  marks=first_in_columns(changes, 1, width))
    lines[0] += f"  {top}"
    lines[3] += "  0"
    return lines, changes.count(1)


def max_history(maxes: Sequence[int], shown: int = 6) -> str:
    """``4,096 → 0 → 256``: the table's maximum as it changed (the first few and
    the last)."""
    steps = [4096]
    for m in maxes:
        if m != steps[-1]:
            steps.append(m)
    if len(steps) > shown:
        steps = [*steps[:shown - 1], -1, steps[-1]]
    return " → ".join("…" if m < 0 else f"{m:,}" for m in steps)


def _flow_chart(series: FlowSeries, columns: int) -> tuple[list[str], int]:
    """The connection window's chart in ``columns``."""
    return _window_chart(series.conn, series.kind, 8, columns)


def _window_chart(values: Sequence[int], kinds: Sequence[int], update: int,
                  columns: int) -> tuple[list[str], int]:
    """A window's chart in ``columns``: its bars, ``↑`` under the first ``update``
    kind in a column, and after the bars the scale (the top row's value, and 0 at
    the bottom)."""
    top = f"{max(values):,}" if values else ""
    width = max(1, columns - CHART_INDENT - 2 - len(top))
    marks = first_in_columns(kinds, update, width)
    lines = chart(values, width=width, lo=min(0, min(values, default=0)), height=5,
                  marks=marks)
    if values:
        lines[0] += f"  {top}"
        lines[4] += f"  {min(0, min(values)):,}"
    return lines, kinds.count(update)


def _stream_chart(series: FlowSeries, sid: int, columns: int) -> tuple[list[str], int]:
    """Stream ``sid``'s send window after each of its DATA and WINDOW_UPDATE frames."""
    values, kinds = series.stream_points(sid)
    if not values:
        return [], 0
    if max(values) <= 0:  # (nothing to draw bars of)
        low = min(values)
        return [f" at {low:,} after its only DATA or WINDOW_UPDATE" if len(values) == 1 else
                f" at or below 0 after each of its {len(values)} DATA and WINDOW_UPDATE frames, "
                f"lowest {low:,}"
                ], kinds.count(1)
    return _window_chart(values, kinds, 1, columns)


def focus_stream(conn: ConnInfo, d: int, selected: int | None) -> tuple[int, str] | None:
    """The stream whose window the flow tab charts for data sent direction ``d``, and
    why it: the selected frame's stream, else the latest stalled stream, else the
    stream that sent the most data this way; None when no stream sent data this way."""
    series = conn.flow[d]
    if selected and selected in series.stream_id:
        return selected, "selected"
    for _t, sd, sid, _end, _ in reversed(conn.stalls):
        if sd == d and sid:
            return int(sid), "the latest stall"
    best = max(conn.streams.values(), key=lambda st: st.data_bytes[d], default=None)
    if best is None or not best.data_bytes[d]:
        return None
    return best.stream_id, "the most data"


def hpack_text(conn: ConnInfo, block_bytes: BlockBytes, cache: ChartCache | None = None,
               columns: int = COLUMNS, row: int | None = None) -> Text:
    """The HPACK tab, its charts fitted to ``columns``. ``row``: the header block
    frame selected in the timeline; in its direction, when blocks came after it,
    the table as that frame left it comes first (the entries the next blocks
    index), then the table as the connection ended."""
    out = Text()
    for d in Direction:
        tbl = conn.hpack[d]
        if row is not None:
            k = bisect_right(tbl.block_rows, row)
            if k and tbl.block_rows[k - 1] == row and k < len(tbl.block_rows) and (
                    tbl.broken_row is None or row < tbl.broken_row):
                _table_as_of(out, d, tbl, k, block_bytes)
        tbl.rebuild(block_bytes)
        broken = tbl.broken(tbl.broken_row, block_bytes) if tbl.broken_row is not None else None
        count, size, inserts, evictions = len(tbl.entries), tbl.size, tbl.inserts, tbl.evictions
        if broken is not None and broken.error.partial_block is not None:
            b = broken.error.partial_block  # (the table as the error left it, as below)
            count, size = b.table_entries, b.table_size
            inserts, evictions = inserts + b.inserted, evictions + b.evicted
        out.append(f"{d.arrow} {d.sender}'s header blocks (the {d.peer.sender}'s decoder "
                   f"table): {count} entries, {size}/{tbl.max_size} bytes, "
                   f"{inserts} inserted, {evictions} evicted\n", "bold")
        if tbl.wire_bytes and conn.meta.get("rebuilt"):
            out.append(f"  compression: not known — rebuilt from a net log without bytes, "
                       f"these {len(tbl.block_rows):,} blocks are h2scope's own encoding "
                       f"({tbl.wire_bytes:,} bytes for {tbl.field_bytes:,} bytes of names and "
                       "values), not the wire's\n", "dim")
        elif tbl.wire_bytes:
            out.append(f"  compression: {tbl.wire_bytes:,} bytes on the wire for "
                       f"{tbl.field_bytes:,} bytes of names and values "
                       f"({tbl.field_bytes / tbl.wire_bytes:.1f}:1) in {len(tbl.block_rows):,} "
                       "blocks\n")
        entries = list(tbl.entries)
        if tbl.broken_row is not None:
            out.append(f"  ✕ HPACK broke: the block ending at frame {tbl.broken_row + 1} (g "
                       f"{tbl.broken_row + 1}, its HPACK tab) did not decode, and later blocks "
                       "are not decoded", "red")
            if broken is not None:
                e = broken.error
                entries = list(broken.entries)
                part = e.partial_block
                done = f"; its first {len(part.fields)} representations (+{part.inserted} " \
                    f"inserted, -{part.evicted} evicted) did" \
                    if part is not None and len(part.fields) else ""
                out.append(f" (at byte {e.offset}: {e.reason}, {e.rfc}){done}. The table "
                           "below is as the error left it", "red")
            out.append(".\n", "red")
        elif not tbl.in_sync:
            out.append("  (the UI missed events or no longer holds the bytes of a block: this "
                       "table may differ from the peer's)\n", "yellow")
        _entries(out, entries)
        _, lines, changed = _kept(cache, (conn.conn_id, 2 + int(d)), (len(tbl.sizes), columns),
                                  partial(_table_chart, tbl, columns))
        history = (f"; maximum {max_history(tbl.maxes)}, ↑ where a block changed it"
                   if changed else f", maximum {tbl.max_size:,}")
        out.append(f"  table size over time ({len(tbl.sizes)} blocks{history}):\n", "dim")
        for line in lines:
            out.append("  │" + line + "\n", "cyan")
        out.append("\n")
    return out


ENTRY_CHARS = 4096
"""Characters of an entry's value shown: a default-sized table (4,096 bytes) holds
no longer one, so only a table a SETTINGS enlarged gets a cut, and it is marked."""


def _entries(out: Text, entries: Sequence[tuple[str, str]]) -> None:
    """The dynamic table's entries by their index (the first 200), values whole (the
    view wraps them) up to :data:`ENTRY_CHARS`, past which the cut says how much."""
    for i, (n, v) in enumerate(entries[:200]):
        out.append(f"  {62 + i:>4}  ", "dim")
        out.append(f"{n}: {v[:ENTRY_CHARS]}", "")
        if len(v) > ENTRY_CHARS:
            out.append(f"… ({len(v) - ENTRY_CHARS:,} more characters)", "dim")
        out.append(f"  ({len(n) + len(v) + 32} B)\n", "dim")
    if len(entries) > 200:
        out.append(f"  … {len(entries) - 200} more\n", "dim")


def _table_as_of(out: Text, d: Direction, tbl: HpackTable, k: int,
                 block_bytes: BlockBytes) -> None:
    """One direction's table after its first ``k`` blocks (those up to the selected
    frame), decoded again from the nearest checkpoint."""
    rows = tbl.block_rows
    out.append(f"{d.arrow} {d.sender}'s table as the selected frame left it (after {k:,} of "
               f"{len(rows):,} blocks)", "bold")
    decoder = tbl.replay.table_after(k, rows, block_bytes)
    if decoder is None:
        out.append("\n  (the blocks before it cannot be decoded again: their bytes are not "
                   "held any more)\n\n", "yellow")
        return
    entries = list(decoder.entries)
    out.append(f": {len(entries)} entries, {decoder.table_size}/{decoder.table_max} bytes\n",
               "bold")
    nxt = rows[k] + 1
    out.append(f"  (the next block this way is frame {nxt:,}: g {nxt} goes to it; the table "
               "as the connection ended follows)\n", "dim")
    _entries(out, entries)
    out.append("\n")


def flow_text(conn: ConnInfo, t0: float, cache: ChartCache | None = None,
              columns: int = COLUMNS, now: float | None = None,
              selected: int | None = None) -> Text:
    """The flow-control tab, its charts fitted to ``columns``; a stall's time is
    the timeline's (seconds since ``t0``, :attr:`Session.t0`). ``now``: live, the
    wall clock, to which a stall not resumed on an open connection is measured
    (else to the connection's last frame: the capture's end). ``cache`` keeps each
    chart while its series has not grown (a million-frame connection's chart is a
    pass over every point). ``selected``: the stream of the timeline's selected
    frame, whose send window is charted under the connection's."""
    out = Text()
    for d in Direction:
        series = conn.flow[d]
        out.append(f"{d.arrow} data sent by the {d.sender}: connection window now "
                   f"{conn.window[d]:,}\n", "bold")
        _stream_windows(out, conn.send_windows(d))
        _, lines, n_updates = _kept(cache, (conn.conn_id, int(d)),
                                    (len(series.conn), columns),
                                    partial(_flow_chart, series, columns))
        if not series.t:
            out.append("  no DATA or WINDOW_UPDATE this way: the connection window never "
                       "moved\n\n", "dim")
            continue
        n = len(series.t)
        out.append(f"  connection send window over {n:,} DATA/WINDOW_UPDATE frame"
                   f"{'' if n == 1 else 's'} "
                   f"(↑ marks the {n_updates} WINDOW_UPDATE{'s' if n_updates != 1 else ''} on "
                   "stream 0):\n", "dim")
        for line in lines:
            out.append("  │" + line + "\n", "green" if d == 0 else "blue")
        focus = focus_stream(conn, d, selected)
        if focus is not None:
            sid, why = focus
            _, lines, n_updates = _kept(cache, (conn.conn_id, 4 + int(d)),
                                        (len(series.conn), columns, sid),
                                        partial(_stream_chart, series, sid, columns))
            st = conn.streams.get(sid)
            label = f" ({st.label})" if st is not None and st.request_headers else ""
            late = series.late_updates(sid)
            after = (f" ({late} more after it closed, not charted)" if late else "")
            out.append(f"  stream {sid}{label} send window, ↑ its {n_updates} WINDOW_UPDATE"
                       f"{'s' if n_updates != 1 else ''}{after} — {why}:\n", "dim")
            for line in lines:
                out.append("  │" + line + "\n", "green" if d == 0 else "blue")
        out.append("  (a column: solid up to its lowest window, ░ on to its highest — a window "
                   "that empties and refills within one column is all ░. The stream charted: "
                   "the selected frame's in the timeline, else the latest stalled, else the "
                   "one with the most data)\n\n", "dim")
    stalls = conn.stalls
    resumed = [end - t for t, _sd, _sid, end, _ in stalls if end is not None]
    longest = f", longest resumed {max(resumed) * 1000:.1f} ms" if resumed else ""
    # A stall that never resumed is what a hang is: listed first, however many
    # resumed stalls came after it (an upload's dozens pushed a 5 s hang out).
    hung = [i for i, stall in enumerate(stalls)
            if stall[3] is None and not _harmless(conn, stall)]
    hung_set = set(hung)
    rest = [i for i in range(len(stalls)) if i not in hung_set][-STALLS_SHOWN:]
    latest = f"; the latest {len(rest)} of the others" if len(rest) + len(hung) < len(stalls) \
        else ""
    # (each window counts apart: one DATA that spends both is two stalls, as a
    # browser's log has a stream's and a session's stall)
    of_conn = sum(1 for s in stalls if s[2] == 0)
    split = f" ({of_conn} of the connection window, {len(stalls) - of_conn} of stream " \
        "windows)" if of_conn and of_conn < len(stalls) else ""
    unresolved = f", {len(hung)} not resumed" if hung else ""
    out.append(f"stalls (a window at 0 or below while data waits): {len(stalls)}{split}"
               f"{unresolved}{longest}{latest}\n", "bold")
    if not stalls:
        out.append("  none\n")
    if hung and (rest or len(hung) > STALLS_SHOWN):
        out.append("  not resumed" + (f" (the latest {STALLS_SHOWN})" if len(hung) > STALLS_SHOWN
                                      else "") + ":\n", "dim")
    for i in hung[-STALLS_SHOWN:]:
        out.append(_stall_line(conn, stalls[i], t0, now), "bold red")
    if hung and rest:
        out.append("  resumed or harmless:\n", "dim")
    for i in rest:
        calm = _harmless(conn, stalls[i])
        out.append(_stall_line(conn, stalls[i], t0, now), "bold" if calm else "bold red")
    out.append("\nstreams (latest 50): data bytes →/←, stalls\n", "bold")
    streams = conn.streams
    for sid in list(itertools.islice(reversed(streams), 50))[::-1]:
        st = streams[sid]
        waited = sum(end - t for t, end in st.stalls if end is not None)
        stalled = f", {waited * 1000:.1f} ms stalled" if waited else ""
        if st.stalls and st.stalls[-1][1] is None and (st.reset is not None
                                                      or st.state != "closed"):
            stalled += ", the last not resumed"
        out.append(f"  stream {st.stream_id:>5}  {st.data_bytes[0]:>10}/{st.data_bytes[1]:<10}"
                   f"  {len(st.stalls)} stall(s){stalled}\n",
                   "bold red" if stalled.endswith("not resumed") else "")
    return out


Stall = tuple[float, int, int, "float | None", bool]
"""A connection's stall: start, direction, stream (0: the connection window), end
(None: not resumed), whether the connection window was still spent at the end."""


def _harmless(conn: ConnInfo, stall: Stall) -> bool:
    """Whether a stall kept nothing waiting: its stream ended (not reset) with the
    window spent exactly, or the connection's with no stream left open."""
    sid = stall[2]
    st = conn.streams.get(sid) if sid else None
    return (st is not None and st.state == "closed" and st.reset is None) or (
        sid == 0 and stall[3] is None and not conn.open_streams)


def _stall_line(conn: ConnInfo, stall: Stall, t0: float, now: float | None) -> str:
    """One stall's line of the flow-control tab."""
    t, sd, sid, end, conn_blocked = stall
    where = "connection" if sid == 0 else f"stream {sid}"
    st = conn.streams.get(sid) if sid else None
    if end is not None:
        dur = f"{(end - t) * 1000:.1f} ms" + (
            " (the connection window was still 0: still blocked)" if conn_blocked else "")
    elif st is not None and st.reset is not None:
        dur = f"never resumed: reset {st.reset} after {(st.last_t - t) * 1000:.1f} ms"
    elif st is not None and st.state == "closed":
        # its sender ended it with the window spent exactly: nothing was waiting
        dur = "window spent by the last DATA; the stream ended"
    elif sid == 0 and not conn.open_streams:
        # (the connection's: every stream has ended since, so none waited on it)
        dur = "window spent; no stream is open to wait on it"
    else:
        if conn.closed_t is not None and conn.closed_t >= t:
            end_t = conn.closed_t
        elif now is not None and not conn.closed:  # (live: no frame says it goes on)
            end_t = now
        else:
            end_t = conn.last_t
        waited = f"{(end_t - t) * 1000:.1f} ms" if end_t >= t else ""
        dur = (f"never resumed: the connection closed after {waited}" if conn.closed
               else f"still stalled, {waited} so far")
    label = f" ({st.label})" if st is not None and st.request_headers else ""
    return f"  {t - t0:10.6f} s  {Direction(sd).arrow} {where}{label}: {dur}\n"


def _stream_windows(out: Text, windows: list[tuple[int, int]]) -> None:
    """The open streams' send windows, smallest first (the first
    :data:`WINDOWS_SHOWN`; 0 or below in red: the sender must wait)."""
    if not windows:
        out.append("  no open stream can send this way\n", "dim")
        return
    out.append("  open streams' send windows, smallest first: ", "dim")
    for i, (window, sid) in enumerate(windows[:WINDOWS_SHOWN]):
        out.append(", " if i else "")
        out.append(f"stream {sid} {window:,}", "bold red" if window <= 0 else "")
    more = len(windows) - WINDOWS_SHOWN
    out.append(f", … {more:,} more\n" if more > 0 else "\n")


WINDOWS_SHOWN = 6
"""Open streams whose send window the flow-control view lists, per direction."""

STALLS_SHOWN = 100
"""The stalls the flow-control view lists (the latest; it says when there are more)."""


def settings_text(conn: ConnInfo) -> Text:
    out = Text()
    for d in Direction:
        out.append(f"{d.arrow} SETTINGS sent by the {d.sender} "
                   f"({len(conn.settings_pending[d])} awaiting ACK)\n", "bold")
        out.append(f"  {'setting':<26}{'in force (acked)':>18}{'pending':>14}\n", "dim")
        for name, acked, pending in settings_view(conn, d):
            out.append(f"  {name:<26}{acked:>18}")
            out.append(f"{pending:>14}\n", "yellow" if pending else "")
        out.append("\n")
    if conn.pings:
        rtts = ", ".join(f"{r * 1000:.3f}" for r in conn.pings[-10:])
        out.append(f"PING round trips (ms): {rtts}\n")
    return out


def priority_text(conn: ConnInfo) -> Text:
    out = Text()
    out.append("RFC 9218 extensible priorities (urgency 0 highest … 7, incremental)\n", "bold")
    streams = list(conn.streams.values())
    if not any(st.urgency is not None or st.incremental is not None for st in streams):
        out.append("  (no priority header or PRIORITY_UPDATE frame seen)\n", "dim")
    else:
        # A client that signals priorities signals the default by saying nothing: its
        # silent streams are u=3, not incremental (RFC 9218 §4), and listed as such.
        for st in streams:
            said = st.urgency is not None or st.incremental is not None
            if not said and not st.request_headers and not st.response_headers:
                continue  # (no request: an RFC 7540 placeholder, Firefox's idle groups)
            u = st.urgency if st.urgency is not None else 3  # RFC 9218 §4.1 default
            out.append(f"  stream {st.stream_id:>5}  u={u} i={'1' if st.incremental else '0'}"
                       f"  {st.label}")
            out.append("\n" if said else "  (default: no priority signal)\n",
                       "" if said else "dim")
    out.append("\nRFC 7540 §5.3 dependency tree (deprecated by RFC 9113 §5.3.2, still sent)\n",
               "bold")
    tree = conn.priority
    if not len(tree):
        out.append("  (no HEADERS priority or PRIORITY frame seen)\n", "dim")
        return out
    out.append("  (the tree as the connection's last priority signals left it, closed "
               "streams kept in place: a stream sent last with an exclusive dependency on "
               "0 adopts all the others; each signal is on its frame's line)\n", "dim")

    shown = 0
    limit = 500

    def walk(sid: int, prefix: str) -> None:
        nonlocal shown
        kids = tree.children(sid)
        for i, child in enumerate(kids):
            if shown >= limit:
                return
            shown += 1
            last = i == len(kids) - 1
            node = tree.node(child)
            weight = node.weight if node is not None else 16
            st = conn.streams.get(child)
            label = f"  {st.label}" if st is not None and st.request_headers else \
                "  (no request: a placeholder, PRIORITY frames only)" \
                if st is None or not st.response_headers else ""
            out.append(f"  {prefix}{'└─' if last else '├─'} stream {child} weight {weight}")
            out.append(f"{label}\n", "dim")
            walk(child, prefix + ("   " if last else "│  "))
    out.append("  0 (root)\n")
    walk(0, "")
    if len(tree) > shown:
        out.append(f"  … {len(tree) - shown} more streams not shown\n", "dim")
    if tree.forgotten:
        out.append(f"  ({tree.forgotten} older streams forgotten to bound memory)\n", "dim")
    return out


def _wrapped(out: Text, label: str, items: Sequence[object], width: int = 96) -> None:
    """``label  a, b, c`` with the items wrapped under each other (GREASE dimmed)."""
    pad = " " * 30
    out.append(f"    {label:<26}")
    if not items:
        out.append("-\n")
        return
    used = 30
    for i, item in enumerate(items):
        text = str(item) + (", " if i < len(items) - 1 else "")
        if used + len(text) > width and used > 30:
            out.append("\n" + pad)
            used = 30
        out.append(text, "dim" if text.startswith("GREASE") else "")
        used += len(text)
    out.append("\n")


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, (list, tuple)) else []


IMPORTED_MODES = ("pcap", "netlog")
"""Connections h2scope did not relay (``h2scope import``): one TLS leg."""


def _leg(out: Text, title: str, info: dict[str, object] | None) -> None:
    out.append(f"\n{title}\n", "bold")
    if not info:
        out.append("  no TLS on this leg (or the handshake did not complete)\n", "dim")
        return
    if info.get("version"):
        out.append(f"  TLS       {info.get('version')}  {info.get('cipher') or '?'}\n")
    else:
        out.append("  TLS       the handshake did not complete (see the error above)\n",
                   "bold red")
    hello = info.get("client_hello")
    said = hello if isinstance(hello, dict) else {}  # a failed handshake: what it offered
    out.append(f"  SNI       {info.get('sni') or said.get('sni') or '-'}\n")
    offered = ", ".join(str(a) for a in _list(info.get("alpn_offered") or said.get("alpn")))
    chosen = (info.get("alpn") or "none chosen") if info.get("version") else "—"
    out.append(f"  ALPN      offered {offered or '-'} → {chosen}\n")
    cert = info.get("certificate")
    if isinstance(cert, dict):
        out.append(f"  certificate  {cert.get('subject')}\n")
        out.append(f"               issued by {cert.get('issuer')}, valid until "
                   f"{cert.get('not_after')}\n")
        sans = _list(cert.get("sans"))
        if sans:
            out.append(f"               for {', '.join(str(n) for n in sans)}\n")
    mine = info.get("client_certificate")
    if isinstance(mine, dict):
        out.append(f"  client certificate  {mine.get('subject')}  (sent if the server "
                   "asks)\n")
        out.append(f"               issued by {mine.get('issuer')}, valid until "
                   f"{mine.get('not_after')}, from {mine.get('file')}\n")
    if isinstance(hello, dict):
        grease = "  (sends GREASE values, RFC 8701)" if hello.get("grease") else ""
        out.append(f"  ClientHello  {hello.get('length')} bytes, legacy_version "
                   f"{hello.get('legacy_version')}{grease}\n")
        for label, key in (("versions", "versions"), ("cipher suites", "cipher_suites"),
                           ("extensions", "extensions"), ("groups", "supported_groups"),
                           ("key shares", "key_share_groups"),
                           ("signature algorithms", "signature_algorithms")):
            items = named_again(key, _list(hello.get(key)))
            _wrapped(out, f"{label} ({len(items)})", items)


def _times(out: Text, conn: ConnInfo, now: float | None) -> None:
    """When the connection opened and closed, on the wall clock, and how long it
    lasted (live and still open: so far)."""
    opened = conn.meta.get("opened")
    if not isinstance(opened, (int, float)):
        opened = conn.first_t
    if opened is None:
        return
    out.append(f"  opened    {wall_clock(opened)}\n")
    if conn.closed_t is not None:
        out.append(f"  closed    {wall_clock(conn.closed_t)}, after "
                   f"{conn.closed_t - opened:,.3f} s\n")
    elif now is not None:
        out.append(f"  open for  {now - opened:,.3f} s so far\n")
    elif conn.last_t:
        out.append(f"  last seen {wall_clock(conn.last_t)}, "
                   f"{conn.last_t - opened:,.3f} s after it opened\n")


def connection_text(conn: ConnInfo, session: Session | None = None,
                    now: float | None = None) -> Text:
    """The connection tab: who, where, how (TLS on both legs, the client's
    ClientHello as offered), and how it ended — or, with the ``session`` of a
    capture read to its end, that it did not in the capture."""
    meta = conn.meta
    out = Text()
    out.append(f"connection #{conn.conn_id}  {conn.client} → {conn.target}\n", "bold")
    via = f" via {meta['via']}" if meta.get("via") else ""
    out.append(f"  mode      {meta.get('mode', '-')}{via}, {conn.protocol}\n")
    out.append(f"  frames    {conn.frames[0]:,} → / {conn.frames[1]:,} ←, bytes "
               f"{conn.bytes[0]:,} → / {conn.bytes[1]:,} ←, streams {len(conn.streams):,}\n")
    _times(out, conn, now)
    why = conn.closed if conn.closed and conn.closed != conn.state else ""
    if conn.closed is None and session is not None and session.loaded:
        out.append("  state     open at the end of the capture (no close recorded"
                   + ("" if session.clean_end else "; the capture has no END record: the "
                      "recording was killed or the file cut short")
                   + ")\n", "" if session.clean_end else "yellow")
    else:
        out.append(f"  state     {conn.state}" + (f": {why}" if why else "") + "\n")
    for error in conn.errors:
        out.append(f"  error     {error}\n", "bold red")
    if meta.get("mode") in IMPORTED_MODES:
        # Not relayed by h2scope: one TLS connection, client to server, seen from outside.
        _leg(out, "TLS between the client and the server (imported, not relayed by h2scope)",
             meta.get("client_tls"))
    else:
        _leg(out, "client leg (the client and h2scope)", meta.get("client_tls"))
        _leg(out, "server leg (h2scope and the server)", meta.get("server_tls"))
    if conn.http1:
        out.append(f"\nHTTP/1.x messages ({len(conn.http1)})\n", "bold")
        t0 = conn.http1[0][0]
        for t, direction, head in conn.http1[:HTTP1_SHOWN]:
            arrow = "→" if direction == 0 else "←"
            lines = head.split("\r\n")
            out.append(f"  {t - t0:9.3f} {arrow} {lines[0]}\n", "bold")
            for line in lines[1:]:
                out.append(f"              {line}\n")
        if len(conn.http1) > HTTP1_SHOWN:
            out.append(f"  … {len(conn.http1) - HTTP1_SHOWN} more "
                       f"(h2scope export --format text lists them all)\n", "dim")
    return out


HTTP1_SHOWN = 200
"""HTTP/1.x messages the connection tab lists."""


TITLES = {"hpack": "HPACK tables", "flow": "Flow control", "settings": "Settings",
          "priority": "Priority", "connection": "Connection"}
STATE_TABS = tuple(TITLES)
_TEXTS: dict[str, Callable[[ConnInfo, Session, ChartCache, int, float | None, int | None,
                            int | None], Text]] = {
    "hpack": lambda c, s, cache, columns, _now, _stream, row: hpack_text(
        c, s.block_bytes, cache, columns, row),
    "flow": lambda c, s, cache, columns, now, stream, _row: flow_text(
        c, s.t0 or 0.0, cache, columns, now, stream),
    "settings": lambda c, s, *_: settings_text(c),
    "priority": lambda c, s, *_: priority_text(c),
    "connection": lambda c, s, _cache, _columns, now, *_: connection_text(c, s, now),
}
"""Each tab's text from (connection, session, chart cache, columns, live: the wall
clock now, else None, the selected frame's stream and row or None)."""
CHARTED = ("hpack", "flow")
"""The tabs whose charts fit the screen's width (drawn again when it changes)."""


class StateScreen(ModalScreen[None]):
    """One connection's state, a tab per view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "dismiss", "Back"),
        Binding("h", "tab('hpack')", "HPACK"),
        Binding("w", "tab('flow')", "Flow control"),
        Binding("e", "tab('settings')", "Settings"),
        Binding("p", "tab('priority')", "Priority"),
        Binding("i", "tab('connection')", "Connection"),
        # The tabs have the focus: these move the page whatever has it.
        Binding("pagedown,space", "scroll('page_down')", "Page down", show=False),
        Binding("pageup", "scroll('page_up')", "Page up", show=False),
        Binding("down,j", "scroll('down')", "Down", show=False),
        Binding("up,k", "scroll('up')", "Up", show=False),
        Binding("home,g", "scroll('home')", "Top", show=False),
        Binding("end,G", "scroll('end')", "Bottom", show=False),
    ]

    def __init__(self, session: Session, conn: ConnInfo, tab: str = "hpack",
                 live: bool = False, stream: int | None = None,
                 row: int | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.row = row
        """The timeline row selected, if one of ``conn``'s (the HPACK tab's table is
        as that frame left it)."""
        """The stream of the frame selected in the timeline (the flow tab charts its
        window), if it is one of ``conn``'s."""
        self.session = session
        self.live = live
        """The session follows a running proxy (its state is as of now, not a
        capture's end)."""
        self.conn = conn
        self.tab = tab
        self._charts: ChartCache = {}
        self._drawn_columns = 0
        """The columns the tabs drawn so far were fitted to."""

    def _title(self) -> Text:
        c = self.conn
        return safe(Text(f"connection #{c.conn_id} {c.client} → {c.target} ({c.protocol}, "
                         f"{c.state})", "bold"))

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="state-title", markup=False)
        # Only the tab shown is drawn now; the others when first shown (each is
        # work over every frame of a connection that may have a million).
        self._drawn: set[str] = set()
        with TabbedContent(initial=self.tab, id="state-tabs"):
            for tab, title in TITLES.items():
                with TabPane(title, id=tab), JumpScroll():
                    yield Static(self._make(tab) if tab == self.tab else "", id=f"state-{tab}",
                                 markup=False)
        yield Footer()

    def show(self, conn: ConnInfo, tab: str, stream: int | None = None,
             row: int | None = None) -> None:
        """Show ``conn`` from ``tab`` on: the screen is kept between showings, and
        every tab is drawn afresh (when first shown), since the state moves on."""
        self.conn = conn
        self.stream = stream
        self.row = row
        self.tab = tab
        self.query_one("#state-title", Static).update(self._title())
        self._drawn = set()
        for name in TITLES:
            if name != tab:
                self.query_one(f"#state-{name}", Static).update("")
        self.query_one(f"#state-{tab}", Static).update(self._make(tab))
        self.query_one(TabbedContent).active = tab

    def _make(self, tab: str) -> Text:
        self._drawn.add(tab)
        self._drawn_columns = self._columns()
        with self.session.lock:  # (a peer's text: its control characters as symbols)
            return safe(_TEXTS[tab](self.conn, self.session, self._charts, self._drawn_columns,
                                    time.time() if self.live else None, self.stream,
                                    self.row))

    LIVE_REDRAW = 1.0
    """Seconds between redraws of the tab shown while live (a stall's "so far", the
    windows, the state in the title move on without a key)."""

    def on_mount(self) -> None:
        if self.live:
            self.set_interval(self.LIVE_REDRAW, self._redraw_live)

    def _redraw_live(self) -> None:
        if self.app.screen is not self:
            return
        tab = self.query_one(TabbedContent).active
        if tab in TITLES:
            self.query_one("#state-title", Static).update(self._title())
            self._drawn = {tab}  # (the others are drawn afresh when shown)
            self.query_one(f"#state-{tab}", Static).update(self._make(tab))

    def _columns(self) -> int:
        """The columns a tab's text has: the screen's less the tab's scrollbar (2)."""
        return max(20, (self.size.width or self.app.size.width) - 2)

    def on_resize(self, event: events.Resize) -> None:
        """Fit the charts drawn so far to the new width."""
        if self._columns() == self._drawn_columns:
            return
        for tab in CHARTED:
            if tab in self._drawn:
                self.query_one(f"#state-{tab}", Static).update(self._make(tab))

    def _draw(self, tab: str) -> None:
        if tab not in self._drawn:
            self.query_one(f"#state-{tab}", Static).update(self._make(tab))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id in TITLES:
            self._draw(event.pane.id)

    def action_scroll(self, how: str) -> None:
        pane = self.query_one(TabbedContent).active_pane
        if pane is None:
            return
        view = pane.query_one(VerticalScroll)
        {"page_down": lambda: view.scroll_page_down(animate=False),
         "page_up": lambda: view.scroll_page_up(animate=False),
         "down": view.scroll_down, "up": view.scroll_up,
         "home": lambda: view.scroll_home(animate=False),
         "end": lambda: view.scroll_end(animate=False)}[how]()

    def action_tab(self, tab: str) -> None:
        self._draw(tab)
        self.query_one(TabbedContent).active = tab

    def text(self, tab: str) -> str:
        self._draw(tab)
        content = self.query_one(f"#state-{tab}", Static).content
        return content.plain if isinstance(content, Text) else str(content)
