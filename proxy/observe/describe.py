"""Human descriptions of observer events: the one-line summaries every view shares.

The headless printer, ``h2scope decode``, the text export and the UI's timeline
all say the same thing about a frame, so the wording lives here once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import unquote

from proxy.observe.enums import setting_name
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
    PingAnswered,
    PrefaceObserved,
    SettingsAcknowledged,
    StreamStateChanged,
)
from proxy.observe.frames import (
    AltSvcFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    OriginFrame,
    PingFrame,
    PriorityFrame,
    PriorityUpdateFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from proxy.observe.hpack_annotated import FieldAnnotation, HeaderBlock, Representation

_REPR_SHORT = {
    Representation.INDEXED: "idx",
    Representation.LITERAL_INCREMENTAL: "lit+idx",
    Representation.LITERAL_WITHOUT_INDEXING: "lit",
    Representation.LITERAL_NEVER_INDEXED: "lit-never",
    Representation.SIZE_UPDATE: "size-update",
}


def clip(text: str, width: int = 60) -> str:
    """*text*, cut to *width* characters with an ellipsis when longer."""
    return text if len(text) <= width else text[: width - 1] + "…"


GRPC_STATUS = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
               "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
               "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
               "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
"""gRPC status codes by number (grpc/doc/statuscodes.md)."""
GRPC_RESET_STATUS = {0x0: "INTERNAL", 0x1: "INTERNAL", 0x2: "INTERNAL", 0x3: "INTERNAL",
                     0x4: "INTERNAL", 0x6: "INTERNAL", 0x7: "UNAVAILABLE", 0x8: "CANCELLED",
                     0x9: "INTERNAL", 0xa: "INTERNAL", 0xb: "RESOURCE_EXHAUSTED",
                     0xc: "PERMISSION_DENIED"}
"""The status a gRPC call ends with when its stream is reset before a grpc-status
came, by the RST_STREAM's error code (gRPC's PROTOCOL-HTTP2.md, "Errors"); gRPC
implementations reset with the same codes for those statuses (grpc-core sends
ENHANCE_YOUR_CALM for a message over its size limit, RESOURCE_EXHAUSTED)."""
GRPC_TIMEOUT_MS = {"H": 3_600_000.0, "M": 60_000.0, "S": 1000.0, "m": 1.0, "u": 0.001,
                   "n": 0.000_001}
"""grpc-timeout units (gRPC's PROTOCOL-HTTP2.md: Hour, Minute, Second, milli, micro,
nano) in milliseconds."""


def grpc_reset_status(error_code: int) -> str:
    """The status a gRPC call reset by ``error_code`` before any grpc-status ends
    with (:data:`GRPC_RESET_STATUS`; a code it does not list: INTERNAL)."""
    return GRPC_RESET_STATUS.get(error_code, "INTERNAL")


def at_deadline(elapsed_ms: float, timeout_ms: float) -> bool:
    """Whether a client's CANCEL that many milliseconds after its request reached
    h2scope came at its ``grpc-timeout``: the client's clock started before the
    request got here, so a little early counts (90 %)."""
    return elapsed_ms >= timeout_ms * 0.9


def grpc_message(text: str) -> str:
    """``text`` as a grpc-message value: percent-encoded UTF-8 outside printable
    ASCII, and ``%`` itself (gRPC's PROTOCOL-HTTP2.md)."""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}"
                   for b in text.encode("utf-8"))


def duration_ms(ms: float) -> str:
    """A grpc-timeout's length as every output says it: ``501 ms``, ``1.500 ms``,
    ``10,100 ms``, ``90.0 s``."""
    return f"{ms:,.3f} ms".replace(".000 ms", " ms") if ms < 60_000 else f"{ms / 1000:,.1f} s"


def grpc_timeout_ms(value: str) -> float | None:
    """A ``grpc-timeout`` value in milliseconds (``501m``: 501.0); None when it is
    not one (1–8 digits and a unit)."""
    if 2 <= len(value) <= 9 and value[:-1].isdigit() and value[-1] in GRPC_TIMEOUT_MS:
        return int(value[:-1]) * GRPC_TIMEOUT_MS[value[-1]]
    return None


def grpc_code_name(code: str) -> str | None:
    """The name of a grpc-status code (``9``: FAILED_PRECONDITION); None when the
    value is no status code 0-16 (clients fail such a call with INTERNAL)."""
    return GRPC_STATUS[int(code)] if code.isdigit() and int(code) < len(GRPC_STATUS) else None


def grpc_status_text(headers: dict[str, str]) -> str | None:
    """``grpc-status 14 UNAVAILABLE "no healthy upstream"`` from a block carrying
    one (trailers, or a trailers-only response); ``grpc-message`` is
    percent-decoded as the gRPC HTTP/2 protocol says."""
    code = headers.get("grpc-status")
    if code is None:
        return None
    name = grpc_code_name(code) or "?"
    text = f"grpc-status {code} {name}"
    message = unquote(headers.get("grpc-message") or "")
    if message and message.upper() != name:
        text += f" {clip(message, 60)!r}"
    return text


def block_summary(headers: tuple[tuple[str, str], ...]) -> str:
    """``GET example.com/path`` for a request, ``200 text/html`` for a response,
    the gRPC status for gRPC trailers."""
    return shown(_summary(headers))  # (a value's bytes not UTF-8 or controls as \xNN)


def _summary(headers: tuple[tuple[str, str], ...]) -> str:
    h = dict(reversed(headers))  # a repeated field: its first value, as servers read it
    grpc = grpc_status_text(h) if "grpc-status" in h else None
    if ":status" in h and (":method" not in h or next(
            n for n, _ in headers if n in (":status", ":method")) == ":status"):
        # (a malformed block with both: the first decides what it is)
        ctype = h.get("content-type")
        text = f":status {h[':status']}" + (f" {ctype}" if ctype else "")
        return f"{text}  {grpc}" if grpc else text
    if ":method" in h:
        return clip(f"{h[':method']} {h.get(':authority', '')}{h.get(':path', '')}", 80)
    return grpc or (f"{len(headers)} fields" if len(headers) != 1 else "1 field")


def frame_summary(ev: FrameObserved) -> str:
    """The decoded gist of a frame, without the common columns."""
    f = ev.frame
    if f.malformed is not None:
        return f"malformed: {f.malformed}"
    match f:
        case DataFrame():
            text = f"{f.data_length} bytes" if f.data_length != 1 else "1 byte"
            if f.pad_length is not None:
                text += f" +{f.pad_length} padding"
            if ev.windows is not None:
                text += f"  window conn={ev.windows[0]}"
                if ev.windows[1] is not None:  # (none for a stream not tracked)
                    text += f" stream={ev.windows[1]}"
            return text
        case HeadersFrame() | PushPromiseFrame():
            parts = header_frame_fields(f)
            if ev.block is not None:
                parts.append(block_summary(ev.block.headers))
            elif not f.end_headers:
                parts.append(f"fragment {len(f.fragment)} bytes, CONTINUATION follows")
            else:
                parts.append(_not_decoded(ev))
            return "  ".join(parts)
        case SettingsFrame():
            if f.ack:
                return "ACK"
            said = ", ".join(f"{setting_name(k)}={v}" for k, v in f.settings[:16]) or "(none)"
            return said + (f", … ({len(f.settings)} settings)" if len(f.settings) > 16 else "")
        case WindowUpdateFrame():
            text = f"+{f.increment}"
            if ev.windows is not None:
                text += f"  window conn={ev.windows[0]}"
                if ev.windows[1] is not None:
                    text += f" stream={ev.windows[1]}"
            return text
        case RstStreamFrame():
            return f.error_name
        case GoAwayFrame():
            text = f"last_stream_id={f.last_stream_id} {f.error_name}"
            if f.debug_data:
                cut = "…" if len(f.debug_data) > 60 else ""
                said = shown(f.debug_data[:60].decode("utf-8", "surrogateescape"))
                text += f" debug='{said}{cut}'"
            return text
        case PingFrame():
            return f"{'ACK ' if f.ack else ''}opaque={f.opaque.hex()}"
        case PriorityFrame():
            p = f.priority
            return f"dep={p.depends_on}{'(excl)' if p.exclusive else ''} weight={p.weight}"
        case PriorityUpdateFrame():  # (peer bytes: escaped, as header values are)
            return f"stream={f.prioritized_stream_id} {_peer_text(f.field_value)}"
        case AltSvcFrame():
            return f"origin={_peer_text(f.origin)!r} {_peer_text(f.field_value)}"
        case OriginFrame():
            return " ".join(_peer_text(o) for o in f.origins)
        case Frame() if f.type == 9:
            if ev.block is not None:
                return block_summary(ev.block.headers)
            if f.flags & 0x4:
                return f"fragment {f.length} bytes, {_not_decoded(ev)}"
            return f"fragment {f.length} bytes"
    return f"{f.length} bytes"


def header_frame_fields(f: Frame) -> list[str]:
    """What a HEADERS or PUSH_PROMISE frame says besides its header block: the
    promised stream, the RFC 7540 priority, the padding."""
    parts = []
    if isinstance(f, PushPromiseFrame):
        parts.append(f"promised={f.promised_stream_id}")
    if isinstance(f, HeadersFrame) and f.priority is not None:
        p = f.priority
        parts.append(f"dep={p.depends_on}{'(excl)' if p.exclusive else ''} weight={p.weight}")
    if isinstance(f, HeadersFrame | PushPromiseFrame) and f.pad_length is not None:
        parts.append(f"+{f.pad_length} padding")
    return parts


def _not_decoded(ev: FrameObserved) -> str:
    """Why a block that ended here has no header list (the findings say more)."""
    if any(x.code == "hpack-error" for x in ev.findings):
        return "header block NOT decoded (HPACK error)"
    return "header block not decoded"


def flags_text(frame: Frame) -> str:
    names = frame.flag_names
    return "[" + ",".join(names) + "]" if names else ""


def field_annotation(fa: FieldAnnotation, *, wire: bool = True) -> str:
    """``lit+idx name=static:1 value=H 12→16 (15 B)`` — how one field was encoded,
    and the bytes its representation took on the wire (``wire``; the UI says them
    in a column of its own)."""
    rep = _REPR_SHORT.get(fa.representation, str(fa.representation))
    bits = [rep]
    if fa.representation is Representation.SIZE_UPDATE:
        bits.append(f"{fa.new_table_size} ({fa.wire_length} B)" if wire
                    else str(fa.new_table_size))
        _evicted(bits, fa)  # (a lower maximum evicts, RFC 7541 §4.3)
        return " ".join(bits)
    if fa.representation is Representation.INDEXED:
        bits.append(f"{fa.table}:{fa.index}")
    else:
        if fa.index is not None:
            bits.append(f"name={fa.table}:{fa.index}")
        else:
            bits.append(f"name={'H' if fa.name_huffman else 'raw'} "
                        f"{fa.name_wire_length}→{fa.name_length}")
        bits.append(f"value={'H' if fa.value_huffman else 'raw'} "
                    f"{fa.value_wire_length}→{fa.value_length}")
    if wire:
        bits[-1] += f" ({fa.wire_length} B)"
    if fa.representation is Representation.LITERAL_INCREMENTAL and not fa.inserted:
        # §4.4: an entry larger than the whole table empties it and is not added.
        size = (fa.name_length if fa.name_length is not None else
                len(fa.name.encode("utf-8", "surrogateescape"))) + (fa.value_length or 0) + 32
        bits.append(f"NOT inserted ({size} B > the table's maximum, §4.4)")
    _evicted(bits, fa)
    return " ".join(bits)


_EVICTED_VALUE = 24
"""Characters of an evicted entry's value a text annotation shows."""


def _evicted(bits: list[str], fa: FieldAnnotation) -> None:
    if fa.evicted:
        # name=value: the name alone is ambiguous (:status 302 evicted, 307 still in)
        names = ", ".join(f"{shown(n)}={_clipped(shown(v))}" for n, v in fa.evicted[:3])
        more = f", … ({len(fa.evicted)})" if len(fa.evicted) > 3 else ""
        bits.append(f"evicted {names}{more}")


def _clipped(value: str) -> str:
    return value if len(value) <= _EVICTED_VALUE else value[:_EVICTED_VALUE] + "…"


_UNDECODED = re.compile("[\udc80-\udcff]")


def escape_undecoded(text: str, backslash: str = "\\") -> str:
    """``text`` with each byte that was not UTF-8 (decoded as a lone surrogate)
    written ``\\xNN`` and the rest as it is; ``backslash`` is ``"\\\\"`` inside a
    JSON text, where the backslash itself is escaped."""
    return _UNDECODED.sub(lambda m: f"{backslash}x{ord(m.group()) - 0xDC00:02x}", text)


def shown_field(name: str, value: str) -> str:
    """``name: value`` as a line shows it (:func:`shown_name`, :func:`shown`); a
    ``-bin`` value that is not plain text (sent raw: gRPC's true binary metadata)
    is bytes, so every byte outside printable ASCII is ``\\xNN`` — a pair of them
    that happens to be valid UTF-8 is not shown as a character. A space that starts
    or ends the value is ``\\x20``: it would not be seen at the end of a line, and
    RFC 9113 §8.2.1 forbids it (a tab is ``\\x09`` anyway)."""
    if name.endswith("-bin") and not value.isprintable():
        raw = value.encode("utf-8", "surrogateescape")
        text = "".join(
            chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)
    else:
        text = shown(value)
    if text[:1] == " " or text[-1:] == " ":
        text = _edge_spaces(text)
    return f"{shown_name(name)}: {text}"


_SPACE = "\\x20"


def _edge_spaces(text: str) -> str:
    body = text.strip(" ")
    if not body:
        return _SPACE * len(text)
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" "))
    return _SPACE * lead + body + _SPACE * trail


_TOKEN = re.compile(r":?[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A field name a line shows as it is: a token (RFC 9110 §5.6.2), after the colon
of a pseudo-header."""
_TOKENS: set[str] = set()
"""Names seen before that are tokens (bounded: names repeat)."""


def plain_name(name: str) -> bool:
    """Whether a field name is shown as it is (:func:`shown_name`)."""
    if name in _TOKENS:
        return True
    if _TOKEN.fullmatch(name) is None:
        return False
    if len(_TOKENS) < 4096:
        _TOKENS.add(name)
    return True


def shown_name(name: str) -> str:
    """A field name as a line shows it: as it is when it is a token (RFC 9110
    §5.6.2; a pseudo-header's colon aside), in double quotes otherwise (``"\\"``
    and ``\\\\`` escaped, controls as :func:`shown` writes them). An empty name
    would print as ``: 1``, and ``x:y`` with the value ``1`` as ``x:y: 1``, which
    reads as ``x`` with the value ``y: 1``. A token holds no quote, so no name
    is shown the way a quoted one is."""
    if plain_name(name):
        return name
    return '"' + shown(name.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def plain_fields(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether ``name: value`` shows every field as :func:`shown_field` does, for
    the fields whose text is printable: token names, no space at a value's ends."""
    known = _PLAIN_FIELDS
    for field in headers:
        if field in known:
            continue  # (most fields repeat, from the HPACK tables: one lookup)
        name, value = field
        if value[:1] == " " or value[-1:] == " " or not plain_name(name):
            return False
        if len(known) >= 8192:
            known.clear()
        known.add(field)
    return True


_PLAIN_FIELDS: set[tuple[str, str]] = set()
"""Fields seen before that :func:`plain_fields` passed (bounded: it starts over)."""


def field_lines(headers: Sequence[tuple[str, str]], indent: str,
                note: Callable[[str, str], str] | None = None) -> list[str]:
    """The lines of a header list, one field a line (:func:`shown_field`); ``note``
    adds a remark to a field whose text needed escaping (printable ones need none).
    One C-speed test of the whole list's text, then one of its names and ends."""
    plain = [f"{indent}{name}: {value}" for name, value in headers]
    if "".join(plain).isprintable() and plain_fields(headers):
        return plain
    if note is None:
        return [f"{indent}{shown_field(name, value)}" for name, value in headers]
    return [f"{indent}{shown_field(name, value)}{note(name, value)}" for name, value in headers]


def _peer_text(data: bytes) -> str:
    """Bytes a peer chose, as a line can show them: control characters and what
    is not UTF-8 as ``\\xNN`` (no escape sequence or line break reaches a terminal)."""
    return shown(data.decode("utf-8", "surrogateescape"))


def shown(value: str) -> str:
    """A header value as a line can show it: control characters, and the bytes that
    are not UTF-8 (decoded as lone surrogates), written ``\\xNN`` (a ``-bin``
    value sent raw, as gRPC's true binary metadata allows, or a broken one)."""
    if value.isprintable():
        return value
    return "".join(
        c if c.isprintable() else
        f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else
        f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" for c in value)


SHOWN_LIST_SIZE = 256 * 1024
"""The RFC 7541 §4.1 size of a header list that the text, JSON Lines and HAR
outputs show at most per block; the fields past it are counted, not written. A
few bytes of indexed fields can stand for megabytes (one large table entry
referenced again and again, RFC 7541 §7.3): 80 KB of such HEADERS printed
290 MB. Browsers refuse lists well below this (Chromium: 256 KiB)."""


def field_size(name: str, value: str) -> int:
    """A field's RFC 7541 §4.1 size: its name's and value's bytes, and 32."""
    n = len(name) if name.isascii() else len(name.encode("utf-8", "surrogateescape"))
    v = len(value) if value.isascii() else len(value.encode("utf-8", "surrogateescape"))
    return n + v + 32


def list_size(headers: Iterable[tuple[str, str]]) -> int:
    """A header list's RFC 7541 §4.1 size (SETTINGS_MAX_HEADER_LIST_SIZE's measure)."""
    return sum(field_size(n, v) for n, v in headers)


def shown_headers(headers: tuple[tuple[str, str], ...], decoded_size: int | None = None,
                  ) -> tuple[tuple[tuple[str, str], ...], int, int]:
    """(the fields to show, fields left out, their RFC 7541 size) for a header
    list of ``decoded_size`` (counted here when not given): all of it, unless past
    :data:`SHOWN_LIST_SIZE`."""
    if decoded_size is None:
        decoded_size = list_size(headers)
    if decoded_size <= SHOWN_LIST_SIZE:
        return headers, 0, 0
    used = 0
    for i, (name, value) in enumerate(headers):
        size = field_size(name, value)
        if used + size > SHOWN_LIST_SIZE:
            return headers[:i], len(headers) - i, decoded_size - used
        used += size
    return headers, 0, 0


def shown_fields(fields: Sequence[FieldAnnotation], shown: int) -> Sequence[FieldAnnotation]:
    """The annotations of the first ``shown`` header fields (the size updates
    among them kept)."""
    n = 0
    for i, fa in enumerate(fields):
        if fa.representation is not Representation.SIZE_UPDATE:
            n += 1
            if n > shown:
                return fields[:i]
    return fields


def omitted_line(count: int, size: int, block: HeaderBlock | None) -> str:
    """``… 11,990 more fields (47.0 MB) not shown: …`` after a list cut short (an
    HTTP/1.x message's, without a ``block``, has no wire encoding to compare)."""
    text = f"… {count:,} more field{'s' if count != 1 else ''} ({size:,} bytes) not shown"
    if block is None:
        return text
    return (f"{text}: the list decodes to {block.decoded_size:,} bytes from "
            f"{block.wire_length:,} on the wire (RFC 7541 §7.3)")


def block_lines(block: HeaderBlock, *, annotate: bool = False, indent: str = "    ") -> list[str]:
    """The header list, one field a line; with ``annotate``, its representation too
    (either way at most :data:`SHOWN_LIST_SIZE` of it)."""
    lines = []
    headers, omitted, omitted_size = shown_headers(block.headers, block.decoded_size)
    if annotate:
        fields = shown_fields(block.fields, len(headers)) if omitted else block.fields
        for fa in fields:
            if fa.representation is Representation.SIZE_UPDATE:
                lines.append(f"{indent}<{field_annotation(fa)}>")
            else:
                lines.append(f"{indent}{shown_field(fa.name, fa.value)}    ; "
                             f"{field_annotation(fa)}")
        lines.append(f"{indent}; block {block.wire_length} byte"
                     f"{'' if block.wire_length == 1 else 's'} on the wire, "
                     f"{block.decoded_size} decoded (RFC 7541 size); table "
                     f"{block.table_size_before}→{block.table_size}/{block.table_max} bytes, "
                     f"{block.table_entries} entr{'y' if block.table_entries == 1 else 'ies'}, "
                     f"+{block.inserted} -{block.evicted}")
    else:
        lines.extend(field_lines(headers, indent))
    if omitted:
        lines.insert(len(lines) - 1 if annotate else len(lines),
                     f"{indent}{omitted_line(omitted, omitted_size, block)}")
    return lines


def _windows_now(windows: tuple[tuple[int, int], ...]) -> str:
    """``stream 1 now -13616, stream 3 now 1000`` — the first few, then how many
    more; one figure when every stream's window is the same."""
    if len(windows) > 1 and len({w for _, w in windows}) == 1:
        return f"now {windows[0][1]} each"
    shown = ", ".join(f"stream {sid} now {w}" for sid, w in windows[:4])
    return shown + (f" and {len(windows) - 4} more" if len(windows) > 4 else "")


def event_line(ev: Event) -> str | None:
    """A line for non-frame events worth showing in a log; None for the rest."""
    match ev:
        case PrefaceObserved():
            return "connection preface"
        case SettingsAcknowledged():
            # (in force: a setting a frame repeats is its last value, RFC 9113 §6.5.3)
            named = ", ".join(f"{setting_name(k)}={v}" for k, v in dict(ev.settings).items())
            # (whose: the ACK's sender is bound by its peer's settings, RFC 9113 §6.5.3)
            bound = ev.direction.sender
            line = (f"settings in force for the {bound} (the {ev.direction.peer.sender}'s "
                    f"settings, now binding the {bound}): {named or '(defaults)'}")
            if ev.streams_adjusted:
                n = ev.streams_adjusted
                which = "1 open stream's window" if n == 1 else f"{n} open streams' windows"
                line += f"; {which} {ev.window_delta:+d} (RFC 9113 §6.9.2)"
                if ev.windows:
                    line += f": {_windows_now(ev.windows)}"
            return line
        case PingAnswered():
            return f"PING answered, rtt {ev.rtt * 1000:.3f} ms"
        case FlowControlStalled():
            where = "connection" if ev.stream_id == 0 else f"stream {ev.stream_id}"
            why = " after the SETTINGS change (RFC 9113 §6.9.2)" if ev.window < 0 else ""
            return (f"flow control: {ev.direction.sender} blocked, {where} window is "
                    f"{ev.window}{why}")
        case FlowControlResumed():
            where = "connection" if ev.stream_id == 0 else f"stream {ev.stream_id}"
            still = " (the connection window is still 0: still blocked)" \
                if ev.connection_blocked else ""
            return (f"flow control: {where} reopened after {ev.stalled_for * 1000:.1f} ms"
                    f"{still}")
        case Desynced():
            return f"DESYNCED at byte {ev.offset}: {ev.finding.message}"
        case ConnectionFindingRaised():
            return str(ev.finding)
        case StreamStateChanged():
            return None
    return None
