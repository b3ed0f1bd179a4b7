"""Protocol Buffers without a schema: what ``protoc --decode_raw`` shows.

gRPC messages and ``application/x-protobuf`` bodies are protobuf: a sequence
of fields, each a key (field number << 3 | wire type, a varint) and a value
(https://protobuf.dev/programming-guides/encoding/). Without the ``.proto``
file the names and exact types are unknown, but the structure is not: field
numbers, varints, fixed 32/64-bit values, and length-delimited values that are
strings, nested messages or bytes.

:func:`decode_raw` returns the lines, or None when the bytes are not a
well-formed message (then the caller shows a hex dump). A length-delimited
value is shown as a string when it is printable UTF-8, else as a nested
message when it parses as one completely, else as bytes.
"""

from __future__ import annotations

import codecs
import struct

MAX_DEPTH = 12
MAX_LINES = 2000
MAX_BYTES_SHOWN = 48
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5


class _Malformed(ValueError):
    pass


class _Cut(_Malformed):
    """The data ends inside a field: malformed for a whole message, the cut for
    the start of one."""


CUT_PREVIEW = 40
"""Characters shown of a field that a message's first bytes cut (16 bytes in hex):
few, for its length to fit on a one-line summary."""


class CutBytes(bytes):
    """The first bytes of a length-delimited field that the start of a message (a
    large message's first 64 KiB) ends inside; ``size``: the length it announced."""

    size: int

    def __new__(cls, data: bytes, size: int) -> CutBytes:
        obj = super().__new__(cls, data)
        obj.size = size
        return obj


def cut_note(value: CutBytes) -> str:
    return f"({value.size:,} bytes, cut: the first {len(value):,} seen)"


def cut_text(value: CutBytes, as_text: bool | None = None) -> str:
    """A cut field as its first characters (``as_text``: a string field; None: if
    they are printable UTF-8) or first bytes, and how much of it there was."""
    head = bytes(value[:CUT_PREVIEW * 4])
    text: str | None = None
    if as_text is not False:
        # (the cut, or the preview's end, may fall inside a character)
        decoder = codecs.getincrementaldecoder("utf-8")("replace" if as_text else "strict")
        try:
            text = decoder.decode(head, final=False)
        except UnicodeDecodeError:
            text = None
        if text is not None and not as_text and not all(
                ch.isprintable() or ch in "\t\r\n" for ch in text):
            text = None
    if text is not None:
        shown = _quote(text[:CUT_PREVIEW])[:-1] + '…"'
    else:
        shown = f"bytes [{value[:16].hex(' ')} …]"
    return f"{shown}  {cut_note(value)}"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if shift > 63:
            raise _Malformed
        if pos >= len(data):
            raise _Cut
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes, partial: bool = False) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) for every field; raises _Malformed.
    ``partial``: ``data`` is the start of a longer message: the fields that end
    within it, and not the one it cuts."""
    out: list[tuple[int, int, object]] = []
    pos, n = 0, len(data)
    while pos < n:
        try:
            field, pos = _field(data, pos, n)
        except _Cut:
            if partial:
                cut = _cut_field(data, pos, n)
                if cut is not None:
                    out.append(cut)
                return out
            raise
        out.append(field)
    return out


def _cut_field(data: bytes, pos: int, n: int) -> tuple[int, int, object] | None:
    """The length-delimited field the data ends inside, with its first bytes (None:
    another kind of field, or the cut falls in its key or length)."""
    try:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire != _LEN or number == 0 or number > 536_870_911:
            return None
        size, pos = _varint(data, pos)
    except _Malformed:
        return None
    return number, _LEN, CutBytes(data[pos:n], size)


def _field(data: bytes, pos: int, n: int) -> tuple[tuple[int, int, object], int]:
    """The field at ``pos``, and where the next starts; raises _Malformed."""
    key, pos = _varint(data, pos)
    number, wire = key >> 3, key & 7
    if number == 0 or number > 536_870_911:
        raise _Malformed
    value: object
    if wire == _VARINT:
        value, pos = _varint(data, pos)
    elif wire == _I64:
        if pos + 8 > n:
            raise _Cut
        value, pos = data[pos:pos + 8], pos + 8
    elif wire == _I32:
        if pos + 4 > n:
            raise _Cut
        value, pos = data[pos:pos + 4], pos + 4
    elif wire == _LEN:
        size, pos = _varint(data, pos)
        if pos + size > n:
            raise _Cut
        value, pos = data[pos:pos + size], pos + size
    else:  # groups (deprecated) and the reserved wire types 6, 7
        raise _Malformed
    return (number, wire, value), pos


def _printable(value: bytes) -> str | None:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return text
    return None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
        .replace("\r", "\\r").replace("\t", "\\t") + '"'


def _scalar_varint(value: int) -> str:
    if value >= 1 << 63:
        return f"{value}  (int64 {value - (1 << 64)})"
    return str(value)


def _lines(fields: list[tuple[int, int, object]], depth: int, out: list[str]) -> None:
    pad = "  " * depth
    for number, wire, value in fields:
        if len(out) >= MAX_LINES:
            out.append(f"{pad}…")
            return
        if wire == _VARINT:
            assert isinstance(value, int)
            out.append(f"{pad}{number}: {_scalar_varint(value)}")
        elif wire == _I64:
            assert isinstance(value, bytes)
            (as_int,), (as_double,) = struct.unpack("<Q", value), struct.unpack("<d", value)
            out.append(f"{pad}{number}: 0x{as_int:016x}  (fixed64; double {as_double!r})")
        elif wire == _I32:
            assert isinstance(value, bytes)
            (as_int,), (as_float,) = struct.unpack("<I", value), struct.unpack("<f", value)
            out.append(f"{pad}{number}: 0x{as_int:08x}  (fixed32; float {as_float!r})")
        else:
            assert isinstance(value, bytes)
            _length_delimited(number, value, depth, out)


def _length_delimited(number: int, value: bytes, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    if isinstance(value, CutBytes):
        out.append(f"{pad}{number}: {cut_text(value)}")
        return
    text = _printable(value)
    if text is not None:
        out.append(f"{pad}{number}: {_quote(text)}")
        return
    if value and depth < MAX_DEPTH:
        try:
            nested = _fields(value)
        except _Malformed:
            nested = []
        if nested:
            out.append(f"{pad}{number} {{")
            _lines(nested, depth + 1, out)
            out.append(f"{pad}}}")
            return
    shown = value[:MAX_BYTES_SHOWN].hex(" ")
    more = f" … ({len(value)} bytes)" if len(value) > MAX_BYTES_SHOWN else ""
    out.append(f"{pad}{number}: bytes [{shown}]{more}" if value else f'{pad}{number}: ""')


def decode_raw(data: bytes, partial: bool = False) -> list[str] | None:
    """The message's fields as ``protoc --decode_raw`` would show them, or None if
    ``data`` is not a well-formed protobuf message (an empty message is ``[]``);
    ``partial``: the start of one, its whole fields."""
    try:
        fields = _fields(data, partial)
    except _Malformed:
        return None
    out: list[str] = []
    _lines(fields, 0, out)
    return out


_V = "violations"
RPC_DETAILS: dict[str, dict[int, tuple[str, str]]] = {
    "google.rpc.ErrorInfo": {1: ("reason", "s"), 2: ("domain", "s"), 3: ("metadata", "map")},
    "google.rpc.RetryInfo": {1: ("retry_delay", "duration")},
    "google.rpc.DebugInfo": {1: ("stack_entries", "s"), 2: ("detail", "s")},
    "google.rpc.QuotaFailure": {1: (_V, "google.rpc.QuotaFailure.Violation")},
    "google.rpc.QuotaFailure.Violation": {1: ("subject", "s"), 2: ("description", "s")},
    "google.rpc.PreconditionFailure": {1: (_V, "google.rpc.PreconditionFailure.Violation")},
    "google.rpc.PreconditionFailure.Violation": {1: ("type", "s"), 2: ("subject", "s"),
                                                 3: ("description", "s")},
    "google.rpc.BadRequest": {1: ("field_violations", "google.rpc.BadRequest.FieldViolation")},
    "google.rpc.BadRequest.FieldViolation": {1: ("field", "s"), 2: ("description", "s"),
                                             3: ("reason", "s"),
                                             4: ("localized_message",
                                                 "google.rpc.LocalizedMessage")},
    "google.rpc.RequestInfo": {1: ("request_id", "s"), 2: ("serving_data", "s")},
    "google.rpc.ResourceInfo": {1: ("resource_type", "s"), 2: ("resource_name", "s"),
                                3: ("owner", "s"), 4: ("description", "s")},
    "google.rpc.Help": {1: ("links", "google.rpc.Help.Link")},
    "google.rpc.Help.Link": {1: ("description", "s"), 2: ("url", "s")},
    "google.rpc.LocalizedMessage": {1: ("locale", "s"), 2: ("message", "s")},
}
"""The standard error details (google/rpc/error_details.proto) by field number:
(name, ``s`` string, ``map`` a string map, ``duration``, or a message type).
gRPC servers put them in google.rpc.Status; decoded without a protoset."""


def rpc_detail(type_url: str, data: bytes) -> str | None:
    """One standard error detail as protobuf text on one line (``google.rpc.BadRequest
    {field_violations {field: "name" description: "must not be empty"}}``); None for
    a type not among :data:`RPC_DETAILS`, or bytes that are not one."""
    name = type_url.rsplit("/", 1)[-1]
    if name not in RPC_DETAILS:
        return None
    try:
        return f"{name} {{{_detail(name, data)}}}"
    except (_Malformed, UnicodeDecodeError):
        return None


def _detail(name: str, data: bytes) -> str:
    spec = RPC_DETAILS[name]
    parts = []
    for number, wire, value in _fields(data):
        field = spec.get(number)
        if field is None or wire != _LEN or not isinstance(value, bytes):
            parts.append(f"{number}: …")  # (a field this table does not know)
            continue
        label, kind = field
        if kind == "s":
            parts.append(f"{label}: {_quote(value.decode('utf-8'))}")
        elif kind == "map":
            entry = {n: v for n, _, v in _fields(value) if isinstance(v, bytes)}
            key = entry.get(1, b"").decode("utf-8")
            parts.append(f"{label} {{key: {_quote(key)} value: "
                         f"{_quote(entry.get(2, b'').decode('utf-8'))}}}")
        elif kind == "duration":
            whole = {n: v for n, _, v in _fields(value) if isinstance(v, int)}
            parts.append(f"{label} {{{whole.get(1, 0) + whole.get(2, 0) / 1e9:g}s}}")
        else:
            parts.append(f"{label} {{{_detail(kind, value)}}}")
    return " ".join(parts)


def rpc_status(data: bytes) -> tuple[int | None, str | None, list[str]] | None:
    """A ``google.rpc.Status`` (what ``grpc-status-details-bin`` carries): its code,
    message and its details — each a standard error detail decoded
    (:func:`rpc_detail`), else its type URL; None when the bytes are not one."""
    try:
        fields = _fields(data)
    except _Malformed:
        return None
    code: int | None = None
    message: str | None = None
    types: list[str] = []
    for number, wire, value in fields:
        if number == 1 and wire == _VARINT and isinstance(value, int):
            code = value
        elif number == 2 and wire == _LEN and isinstance(value, bytes):
            message = value.decode("utf-8", "replace")
        elif number == 3 and wire == _LEN and isinstance(value, bytes):
            try:
                inner = _fields(value)  # google.protobuf.Any: 1 type_url, 2 value
            except _Malformed:
                continue
            url = next((v for n, w, v in inner if n == 1 and isinstance(v, bytes)), None)
            if url is not None:
                said = url.decode("utf-8", "replace")
                body = next((v for n, w, v in inner if n == 2 and isinstance(v, bytes)), b"")
                types.append(rpc_detail(said, body) or said)
    if code is None and message is None and not types:
        return None
    return code, message, types
