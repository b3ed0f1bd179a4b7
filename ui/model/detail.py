"""The frame detail tabs as text: decoded fields, HPACK, hex, findings.

Pure functions of the session and a row, so tests can check the content
without a screen. Wording reuses :mod:`proxy.observe.describe`.
"""

from __future__ import annotations

from dataclasses import fields

from rich.text import Text

from proxy.observe.describe import (
    SHOWN_LIST_SIZE,
    field_annotation,
    flags_text,
    frame_summary,
    list_size,
    omitted_line,
    shown_field,
    shown_fields,
    shown_headers,
    shown_name,
)
from proxy.observe.enums import error_name, setting_name
from proxy.observe.events import FrameObserved
from proxy.observe.frames import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    SettingsFrame,
)
from proxy.observe.hpack_annotated import HeaderBlock, HpackDecodeError, Representation
from proxy.websocket import is_websocket
from ui.model.body import hexdump, looks_textual, websocket_by_row
from ui.model.session import Session, wall_clock
from ui.widgets import style

_SKIP = {"raw", "type", "flags", "stream_id", "length", "fragment"}
_HEX_LIMIT = 4096
"""Bytes of a frame the hex tab shows (a 16 KiB DATA frame would be 1,000 lines)."""
_DATA_SHOWN = 1024
"""Bytes of a DATA payload the decoded tab shows."""


def per_line(width: int, indent: int = 0) -> int:
    """Bytes a hex dump line shows in ``width`` columns: 16, or 8 when 16 and their
    characters (offset, hex, gap, characters: 75 columns) would wrap."""
    return 16 if width >= indent + 10 + 16 * 3 + 1 + 16 else 8


def decoded(session: Session, row: int, ev: FrameObserved | None, width: int = 80) -> Text:
    t = session.table
    conn = session.conns.get(t.conn[row])
    out = Text()
    if ev is None:
        out.append("The bytes of this frame are not available: its record could not be read "
                   "from the session's capture (the file was closed or removed).\n")
        return out
    f = ev.frame
    out.append(f"{f.type_name}", style.TYPE_STYLES.get(f.type, style.SUMMARY) + style.BOLD)
    out.append(f"  frame {row + 1} (connection #{t.conn[row]}'s frame {ev.seq}: its \"seq\" in "
               "jsonl and --json output)\n")
    out.append(f"direction   {ev.direction.arrow} {ev.direction.name} "
               f"(sent by the {ev.direction.sender})\n")
    out.append(f"time        {session.relative(ev.t):.6f} s  ({wall_clock(ev.t)})\n")
    if conn is not None:
        out.append(f"connection  #{conn.conn_id} {conn.client} → {conn.target}\n")
    out.append(f"stream      {f.stream_id}\n", style.stream_style(f.stream_id))
    out.append(f"type        0x{f.type:02x} {f.type_name}\n")
    out.append(f"flags       0x{f.flags:02x} {flags_text(f) or '[]'}\n")
    out.append(f"length      {f.length} (payload; +9 header = {f.length + 9} bytes)\n")
    if f.reserved:
        out.append("reserved    R bit set (RFC 9113 §4.1: MUST be unset)\n", style.WARNING)
    if f.malformed:
        out.append(f"malformed   {f.malformed}\n", style.FINDING)
    out.append(f"summary     {frame_summary(ev)}\n")
    for fld in fields(f):
        if fld.name in _SKIP or fld.name in ("reserved", "malformed"):
            continue
        value = getattr(f, fld.name)
        if isinstance(f, SettingsFrame) and fld.name == "settings":
            out.append("settings\n")
            for k, v in value:
                name = setting_name(k)
                code = "" if f"0x{k:x}" in name else f" (0x{k:x})"
                out.append(f"  {name}{code} = {v}\n")
            continue
        if fld.name == "pad_length":
            value = "not padded" if value is None else f"{value} bytes of padding"
        elif fld.name == "priority":
            value = ("none (no PRIORITY flag)" if value is None else
                     f"depends on {value.depends_on}{' (exclusive)' if value.exclusive else ''}, "
                     f"weight {value.weight}")
        elif isinstance(value, bytes):
            value = value[:64].hex() + ("…" if len(value) > 64 else "")
        elif fld.name == "error_code":
            value = f"{value} {error_name(value)}"
        out.append(f"{fld.name:<11} {value}\n")
    if isinstance(f, DataFrame):
        _data(out, f.data, per_line(width, 2))
        stream = session.stream_of_row(row)
        if stream is not None and is_websocket(stream.request_headers):
            msgs = websocket_by_row(session, stream).get(row, ())
            out.append("websocket   " + ("; ".join(m.summary(80) for m in msgs) if msgs else
                                         "no message completed in this frame") + "\n")
    if isinstance(f, GoAwayFrame) and f.debug_data:
        out.append(f"debug data  {f.debug_data!r}\n")
    kept = session.capped.get(row)
    if kept is not None:
        out.append(f"recorded    only the first {kept} of {ev.frame.length} payload bytes "
                   "(record.max_data_bytes): the rest shows as zeros\n", "yellow")
    if ev.windows is not None:
        out.append(f"windows     after this frame: connection {ev.windows[0]}"
                   + (f", stream {ev.windows[1]}" if ev.windows[1] is not None else "") + "\n")
    for i, line in enumerate(session.caused.get(row, ())):
        out.append(f"{'then' if i == 0 else '':<12}{line}\n",
                   style.FINDING if "blocked" in line else style.TIME)
    if ev.block is not None:
        out.append("\nheader block\n", style.Style(bold=True))
        if ev.block_stream_id is not None:
            out.append(f"  (request of promised stream {ev.block_stream_id})\n")
        headers, left_out = _bounded(ev.block)
        for n, v in _ordered(headers):
            out.append(f"  {shown_name(n)}", style.Style(bold=True))
            out.append(f": {_value(v, n)}\n")
        if left_out:
            out.append(f"  {left_out}\n", style.WARNING)
    elif isinstance(f, (HeadersFrame, PushPromiseFrame)) and not f.flags & 0x4:
        out.append("\nheader block continues in CONTINUATION frames\n", style.TIME)
    return out


def _data(out: Text, data: bytes, per: int = 16) -> None:
    """A DATA payload's first :data:`_DATA_SHOWN` bytes: as text when it reads as
    text, else as the stream view's hex dump, ``per`` bytes a line."""
    shown = data[:_DATA_SHOWN]
    if not data:
        out.append("data        0 bytes\n")
        return
    if looks_textual(shown):
        out.append(f"data        {len(data):,} bytes, text:\n")
        lines = shown.decode("utf-8", "replace").splitlines()
    else:
        out.append(f"data        {len(data):,} bytes, not text:\n")
        lines = hexdump(shown, per=per)
    for line in lines:
        out.append(f"  {line}\n")
    if len(data) > len(shown):
        out.append(f"  … {len(data) - len(shown):,} more bytes (the stream view shows the "
                   "whole body)\n", style.TIME)


DETAIL_FIELDS = 100
"""Header fields the frame detail draws at most: the pane wraps every line, and an
HPACK 'bomb' (thousands of fields of kilobytes each) took seconds a selection."""
DETAIL_VALUE = 1024
"""Characters of one value the frame detail draws (the stream view and exports
have all of it)."""


def _bounded(block: HeaderBlock) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """The fields the detail draws — what every output shows of the list
    (describe.shown_headers), and no more than DETAIL_FIELDS of them — and the line
    that says what it left out, or None. (The timeline's own blocks carry no
    sizes: the list's is counted then.)"""
    total = block.decoded_size or list_size(block.headers)
    headers, omitted, size = shown_headers(block.headers, total)
    if len(headers) > DETAIL_FIELDS:
        rest = headers[DETAIL_FIELDS:]
        omitted += len(rest)
        size += list_size(rest)
        headers = headers[:DETAIL_FIELDS]
    if not omitted:
        return headers, None
    if total > SHOWN_LIST_SIZE and block.wire_length:  # (amplified: said as outputs do)
        return headers, omitted_line(omitted, size, block)
    if total > SHOWN_LIST_SIZE:
        return headers, (f"… {omitted:,} more fields ({size:,} bytes) not shown: a header "
                         f"list of {total:,} bytes (RFC 7541 §7.3)")
    return headers, (f"… {omitted:,} more fields ({size:,} bytes) not shown here: the "
                     "stream view has them")


def _value(text: str, name: str = "") -> str:
    """A field's value as one line: control characters and a raw ``-bin`` value's
    bytes written ``\\xNN`` (gRPC's true binary metadata held newlines that broke the
    pane's layout), cut to :data:`DETAIL_VALUE` characters."""
    text = shown_field(name, text)[len(shown_name(name)) + 2:]
    if len(text) <= DETAIL_VALUE:
        return text
    return f"{text[:DETAIL_VALUE]}… ({len(text):,} characters; the stream view has them all)"


def _ordered(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """As sent: pseudo-headers already come first on the wire (RFC 9113 §8.3)."""
    return headers


def hpack(session: Session, row: int, ev: FrameObserved | None) -> Text:
    out = Text()
    b = session.header_block(row) if ev is not None and ev.block is not None else None
    if ev is not None and ev.block is not None and b is None:
        out.append("The header block cannot be decoded again: the bytes of an earlier block "
                   "of this connection are not available.\n")
        return out
    if ev is None or b is None:
        ftype = session.table.type[row]
        broken = session.broken_block(row) if ev is not None and ftype in (1, 5, 9) \
            and ev.frame.flags & 0x4 else None
        if broken is not None and broken.partial_block is not None:
            _broken_block(out, broken, broken.partial_block)
        elif ev is not None and ftype in (1, 5, 9) and ev.frame.flags & 0x4:
            errors = [x.message for x in ev.findings if x.code == "hpack-error"]
            out.append("This header block was not decoded"
                       + (f": {errors[0]}\n" if errors else
                          " (an earlier block of this direction did not decode: HPACK "
                          "cannot resume after an error).\n"), style.WARNING)
        elif ftype in (1, 5, 9):
            out.append("This frame does not complete a header block: the block is decoded on "
                       "the frame carrying END_HEADERS.\n")
        else:
            out.append("No header block: HPACK applies to HEADERS, PUSH_PROMISE and "
                       "CONTINUATION frames.\n")
        return out
    conn = session.conns.get(session.table.conn[row])
    if conn is not None and conn.meta.get("rebuilt"):
        out.append("Rebuilt, not as sent: this connection was imported from a Chrome net log "
                   "without raw bytes, and its header blocks were encoded again by h2scope "
                   "(static-table indexes and literals, no dynamic table) from the header "
                   "lists Chrome logged. The names and values are Chrome's; the "
                   "representations and sizes below are not the wire's.\n\n",
                   style.WARNING)
    out.append(f"header block: {b.wire_length} bytes on the wire → {b.decoded_size} decoded "
               f"(RFC 7541 §4.1 size)\n", style.Style(bold=True))
    _fields(out, b)
    return out


def _broken_block(out: Text, exc: HpackDecodeError, b: HeaderBlock) -> None:
    """A block that did not decode: what did, then the error where it happened."""
    out.append(f"header block: {b.wire_length} bytes on the wire; it does NOT decode: "
               f"{len(b.fields)} representation{'' if len(b.fields) == 1 else 's'} before "
               "the error, then:\n", style.Style(bold=True))
    out.append(f"✕ at byte {exc.offset}: {exc.reason} ({exc.rfc})\n", style.FINDING)
    out.append("The decoder's table is lost from here (COMPRESSION_ERROR, RFC 9113 §4.3): "
               "later blocks of this direction are not decoded.\n\n", style.TIME)
    _fields(out, b, last=f"✕ byte {exc.offset}: {exc.reason}")


def _fields(out: Text, b: HeaderBlock, *, last: str | None = None) -> None:
    out.append(f"dynamic table: {b.table_size_before} → {b.table_size} / {b.table_max} bytes, "
               f"{b.table_entries} entries, +{b.inserted} inserted, -{b.evicted} evicted\n\n")
    headers, left_out = _bounded(b)
    for fa in shown_fields(b.fields, len(headers)) if left_out else b.fields:
        if fa.representation is Representation.SIZE_UPDATE:
            out.append(f"<dynamic table size update → {fa.new_table_size}>", style.WARNING)
            out.append(f"  @{fa.offset} {fa.wire_length}B\n", style.TIME)
        else:
            out.append(f"{fa.name}", style.Style(bold=True))
            out.append(f": {_value(fa.value, fa.name)}\n")
            out.append(f"    {field_annotation(fa, wire=False)}", style.TIME)
            out.append(f"  @{fa.offset} {fa.wire_length}B wire\n", style.TIME)
        if fa.inserted:
            out.append("    → inserted into the dynamic table\n", style.PAYLOAD_BYTES)
        for n, v in fa.evicted:
            out.append(f"    ✕ evicted {n}: {_value(v, n)[:60]}\n", style.WARNING)
    if left_out:
        out.append(f"{left_out}\n", style.WARNING)
    if last is not None:
        out.append(f"{last}\n", style.FINDING)
    out.append("\nlegend: idx = indexed (RFC 7541 §6.1); lit+idx = literal with incremental "
               "indexing (§6.2.1); lit = without indexing (§6.2.2); lit-never = never "
               "indexed (§6.2.3); H = Huffman coded (§5.2); wire→decoded bytes\n", style.TIME)


def hex_view(frame: Frame | None, width: int = 80) -> Text:
    """The frame's bytes, its regions coloured: 16 a line, or 8 when ``width`` (the
    pane's columns) has no room for 16 and their characters (the character column
    was cut to its first one in a 160-column terminal's detail pane)."""
    out = Text()
    if frame is None:
        out.append("(bytes not available: the capture holding them could not be read)\n")
        return out
    raw = frame.raw
    regions: list[tuple[int, int, style.Style, str]] = [(0, 9, style.HEADER_BYTES,
                                                         "frame header (9)")]
    pos = 9
    pad = getattr(frame, "pad_length", None)
    if pad is not None:
        regions.append((9, 10, style.PAD_BYTES, "pad length (1)"))
        pos = 10
    if isinstance(frame, HeadersFrame) and frame.priority is not None:
        regions.append((pos, pos + 5, style.PRIORITY_BYTES, "priority (5)"))
        pos += 5
    if isinstance(frame, PushPromiseFrame):
        regions.append((pos, pos + 4, style.PRIORITY_BYTES, "promised stream (4)"))
        pos += 4
    end = len(raw) - (pad or 0)
    regions.append((pos, end, style.PAYLOAD_BYTES, f"payload ({end - pos})"))
    if pad:
        regions.append((end, len(raw), style.PAD_BYTES, f"padding ({pad})"))
    for a, b, sty, label in regions:
        if b > a:
            out.append(f"■ {label}  ", sty)
    out.append("\n\n")

    shown = raw[:_HEX_LIMIT]
    per = per_line(width)
    for off in range(0, len(shown), per):
        chunk = shown[off:off + per]
        line = Text(f"{off:08x}  ", style.TIME)
        hex_start = len(line)
        line.append(" ".join(f"{b:02x}" for b in chunk).ljust(3 * per))
        text_start = len(line) + 1
        line.append(" " + "".join(chr(b) if 32 <= b < 127 else "." for b in chunk) + "\n")
        for a, b, sty, _ in regions:
            lo, hi = max(a, off), min(b, off + len(chunk))
            if lo < hi:
                line.stylize(sty, hex_start + 3 * (lo - off), hex_start + 3 * (hi - off) - 1)
                line.stylize(sty, text_start + lo - off, text_start + hi - off)
        out.append_text(line)
    if len(raw) > _HEX_LIMIT:
        out.append(f"… {len(raw) - _HEX_LIMIT} more bytes (the stream view and export have "
                   f"them all)\n", style.TIME)
    return out


def findings_view(session: Session, row: int) -> Text:
    out = Text()
    found = session.table.findings.get(row, ())
    if not found:
        out.append("No findings on this frame.\n")
    for f in found:
        sty = style.FINDING if f.severity >= 2 else style.WARNING if f.severity == 1 else \
            style.SUMMARY
        out.append(f"{f.severity.name}", sty)
        out.append(f"  {f.code}  ")
        out.append(f"{f.rfc}\n", style.Style(underline=True))
        out.append(f"  {f.message}\n\n")
    conn = session.conns.get(session.table.conn[row])
    if conn is not None and conn.conn_findings:
        out.append(f"connection #{conn.conn_id}: {len(conn.conn_findings)} finding(s) not tied "
                   f"to a frame\n", style.Style(bold=True))
        for f in conn.conn_findings[:50]:
            out.append(f"  {f}\n")
    return out


__all__ = ["decoded", "findings_view", "hex_view", "hexdump", "hpack"]
