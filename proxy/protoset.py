"""Protocol Buffers with a schema: field names, types and enum names from a protoset.

A *protoset* is a ``FileDescriptorSet``, what ``protoc --descriptor_set_out=api.pb
--include_imports api.proto`` writes (and what grpcurl's ``-protoset`` reads).
It is itself a protobuf message, read here with the schema-less reader of
:mod:`proxy.protobuf` — no protobuf library needed. :class:`Protoset` knows
each message's fields (name, number, type), each enum's values, and each gRPC
method's request and response types by its path (``/pkg.Service/Method``),
so a gRPC message on a stream is shown as ``protoc --decode`` shows it:

    name: "world"
    kind: KIND_GREETING
    tags: [1, 2, 3]
    inner {
      id: 42
    }

Fields the schema does not know (a newer sender) are shown by number, as
``--decode_raw`` would, marked ``(unknown field)``.
"""

from __future__ import annotations

import base64
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.protobuf import (
    MAX_BYTES_SHOWN,
    MAX_DEPTH,
    MAX_LINES,
    CutBytes,
    _fields,
    _lines,
    _Malformed,
    _quote,
    _varint,
    cut_note,
    cut_text,
)

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# FieldDescriptorProto.Type
_DOUBLE, _FLOAT, _INT64, _UINT64, _INT32, _FIXED64, _FIXED32, _BOOL, _STRING = range(1, 10)
_GROUP, _MESSAGE, _BYTES, _UINT32, _ENUM, _SFIXED32, _SFIXED64, _SINT32, _SINT64 = range(10, 19)
_PACKABLE_VARINT = {_INT64, _UINT64, _INT32, _BOOL, _UINT32, _ENUM, _SINT32, _SINT64}
_PACKABLE_I64 = {_DOUBLE, _FIXED64, _SFIXED64}
_PACKABLE_I32 = {_FLOAT, _FIXED32, _SFIXED32}


class ProtosetError(ValueError):
    """The file is not a FileDescriptorSet."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    number: int
    type: int
    type_name: str = ""
    """For messages and enums: the full name, without the leading dot."""
    repeated: bool = False
    json_name: str = ""
    """Its name in the proto3 JSON mapping (protoc fills it in: lowerCamelCase)."""


@dataclass(slots=True)
class Message:
    name: str
    fields: dict[int, Field] = field(default_factory=dict)
    map_entry: bool = False
    """The entry type protoc makes for a ``map<K, V>`` field (key 1, value 2)."""


def _one(fields: list[tuple[int, int, object]], number: int) -> object | None:
    for n, _, v in fields:
        if n == number:
            return v
    return None


def _all(fields: list[tuple[int, int, object]], number: int) -> list[bytes]:
    return [v for n, _, v in fields if n == number and isinstance(v, bytes)]


def _text(value: object | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


class Protoset:
    """The messages, enums and gRPC methods of one or more FileDescriptorSets."""

    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.enums: dict[str, dict[int, str]] = {}
        self.methods: dict[str, tuple[str, str]] = {}
        """``/pkg.Service/Method`` → (request type, response type)."""
        self.files: set[str] = set()
        """The .proto files the set describes."""
        self.imports: dict[str, str] = {}
        """Each file an included one imports → the first that imports it."""

    def missing_imports(self) -> list[tuple[str, str]]:
        """(imported file, by which) for the imports the set does not hold (made
        without ``protoc --include_imports``): fields of their types cannot be
        decoded by name."""
        return sorted((f, by) for f, by in self.imports.items() if f not in self.files)

    @classmethod
    def load(cls, paths: list[Path]) -> Protoset:
        """Raises OSError, or ProtosetError naming the file."""
        out = cls()
        for path in paths:
            try:
                out.add(Path(path).read_bytes())
            except ProtosetError as exc:
                raise ProtosetError(f"{path}: {exc}") from None
        return out

    def add(self, data: bytes) -> None:
        try:
            files = _all(_fields(data), 1)
            if not files and data:
                raise _Malformed
            for f in files:
                self._file(_fields(f))
        except _Malformed:
            raise ProtosetError("not a FileDescriptorSet (make one with protoc "
                                "--descriptor_set_out=FILE --include_imports)") from None

    def _file(self, f: list[tuple[int, int, object]]) -> None:
        name = _text(_one(f, 1))
        self.files.add(name)
        for dep in _all(f, 3):
            self.imports.setdefault(_text(dep), name)
        package = _text(_one(f, 2))
        prefix = f"{package}." if package else ""
        for m in _all(f, 4):
            self._message(prefix, _fields(m))
        for e in _all(f, 5):
            self._enum(prefix, _fields(e))
        for s in _all(f, 6):
            service = _fields(s)
            sname = prefix + _text(_one(service, 1))
            for m in _all(service, 2):
                method = _fields(m)
                self.methods[f"/{sname}/{_text(_one(method, 1))}"] = (
                    _text(_one(method, 2)).lstrip("."), _text(_one(method, 3)).lstrip("."))

    def _message(self, prefix: str, m: list[tuple[int, int, object]]) -> None:
        full = prefix + _text(_one(m, 1))
        options = _one(m, 7)
        msg = self.messages[full] = Message(full, map_entry=isinstance(options, bytes) and (
            _one(_fields(options), 7) == 1))
        for raw in _all(m, 2):
            fd = _fields(raw)
            number, ftype, label = _one(fd, 3), _one(fd, 5), _one(fd, 4)
            if isinstance(number, int) and isinstance(ftype, int):
                name = _text(_one(fd, 1))
                msg.fields[number] = Field(name, number, ftype,
                                           _text(_one(fd, 6)).lstrip("."), label == 3,
                                           _text(_one(fd, 10)) or _camel(name))
        for nested in _all(m, 3):
            self._message(full + ".", _fields(nested))
        for e in _all(m, 4):
            self._enum(full + ".", _fields(e))

    def _enum(self, prefix: str, e: list[tuple[int, int, object]]) -> None:
        values: dict[int, str] = {}
        for raw in _all(e, 2):
            v = _fields(raw)
            number = _one(v, 2)
            if isinstance(number, int):
                values[_signed32(number)] = _text(_one(v, 1))
        self.enums[prefix + _text(_one(e, 1))] = values

    def method_type(self, path: str, request: bool) -> str | None:
        """The message type a gRPC call at ``path`` sends (``request``) or answers."""
        types = self.methods.get(path.split("?", 1)[0])
        return None if types is None else types[0 if request else 1]

    def decode(self, data: bytes, type_name: str, partial: bool = False) -> list[str] | None:
        """The message as ``protoc --decode`` shows it; None if ``type_name`` is
        unknown or the bytes are not a well-formed message (``partial``: the start
        of one, its whole fields)."""
        msg = self.messages.get(type_name)
        if msg is None:
            return None
        try:
            fields = _fields(data, partial)
        except _Malformed:
            return None
        out: list[str] = []
        self._lines(msg, fields, 0, out)
        return out

    def decode_json(self, data: bytes, type_name: str, partial: bool = False
                    ) -> dict[str, Any] | None:
        """The message in the proto3 JSON mapping (what grpcurl prints, what
        ``google.protobuf.json_format.MessageToDict`` gives): JSON names, 64-bit
        integers as strings, enums by name, bytes in base64, maps as objects; None
        as :meth:`decode`. Unknown fields are left out; a string or bytes field the
        start of a message (``partial``) ends in has its first bytes only."""
        msg = self.messages.get(type_name)
        if msg is None:
            return None
        try:
            return self._json(msg, _fields(data, partial), 0)
        except _Malformed:
            return None

    def _json(self, msg: Message, fields: list[tuple[int, int, object]], depth: int
              ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for number, wire, value in fields:
            fd = msg.fields.get(number)
            if fd is None or not _fits(fd, wire):
                continue
            if isinstance(value, CutBytes):
                # (the field the start of a message ends in: a string or bytes by its
                # first bytes, a message by the fields that end in them)
                if fd.type == _STRING:
                    out[fd.json_name] = value.decode("utf-8", "ignore")
                elif fd.type == _BYTES:
                    out[fd.json_name] = base64.b64encode(value).decode("ascii")
                elif fd.type == _MESSAGE and fd.type_name in self.messages \
                        and depth < MAX_DEPTH:
                    out[fd.json_name] = self._json(self.messages[fd.type_name],
                                                   _fields(value, True), depth + 1)
                continue
            if fd.type == _MESSAGE:
                nested = self.messages.get(fd.type_name)
                if nested is None or depth >= MAX_DEPTH or not isinstance(value, bytes):
                    continue
                item = self._json(nested, _fields(value), depth + 1)
                if nested.map_entry and 1 in nested.fields and 2 in nested.fields:
                    k, v = nested.fields[1], nested.fields[2]
                    key = item[k.json_name] if k.json_name in item else self._default(k)
                    out.setdefault(fd.json_name, {})[json_key(key)] = \
                        item[v.json_name] if v.json_name in item else self._default(v)
                elif fd.repeated:
                    out.setdefault(fd.json_name, []).append(item)
                else:
                    out[fd.json_name] = item
                continue
            if wire == _LEN and fd.type not in (_STRING, _BYTES):  # packed numbers
                assert isinstance(value, bytes)
                out.setdefault(fd.json_name, []).extend(self._packed_json(fd, value))
                continue
            item = self._json_value(fd, wire, value)
            if fd.repeated:
                out.setdefault(fd.json_name, []).append(item)
            else:
                out[fd.json_name] = item
        return out

    def _default(self, fd: Field) -> Any:
        """A map entry's key or value left out on the wire: its type's default."""
        t = fd.type
        if t == _MESSAGE:
            return {}
        if t == _ENUM:
            return self.enums.get(fd.type_name, {}).get(0, 0)
        if t in (_STRING, _BYTES):
            return ""
        if t == _BOOL:
            return False
        return "0" if t in (_INT64, _UINT64, _SINT64, _FIXED64, _SFIXED64) else 0

    def _packed_json(self, fd: Field, data: bytes) -> list[Any]:
        return [self._json_value(fd, wire, value) for wire, value in _packed_values(fd, data)]

    def _json_value(self, fd: Field, wire: int, value: object) -> Any:
        t = fd.type
        if isinstance(value, int):
            if t == _BOOL:
                return bool(value)
            if t == _ENUM:
                number = _signed32(value)
                return self.enums.get(fd.type_name, {}).get(number, number)
            if t in (_SINT32, _SINT64):
                value = (value >> 1) ^ -(value & 1)
            elif t in (_INT32, _INT64):
                value = value - (1 << 64) if value >= 1 << 63 else value
            return str(value) if t in (_INT64, _UINT64, _SINT64) else value
        assert isinstance(value, bytes)
        if wire == _LEN:
            return value.decode("utf-8", "replace") if t == _STRING \
                else base64.b64encode(value).decode("ascii")
        if wire == _I64:
            if t == _DOUBLE:
                return _json_float(struct.unpack("<d", value)[0])
            return str(struct.unpack("<q" if t == _SFIXED64 else "<Q", value)[0])
        if t == _FLOAT:
            x = struct.unpack("<f", value)[0]
            return _json_float(float(_float32(x)) if x == x and abs(x) != float("inf") else x)
        return struct.unpack("<i" if t == _SFIXED32 else "<I", value)[0]

    def _lines(self, msg: Message, fields: list[tuple[int, int, object]], depth: int,
               out: list[str]) -> None:
        pad = "  " * depth
        for number, wire, value in fields:
            if len(out) >= MAX_LINES:
                out.append(f"{pad}…")
                return
            fd = msg.fields.get(number)
            if fd is None or not _fits(fd, wire):
                # Unknown, or its wire type does not fit the schema's (another
                # message type, another version): raw, as protoc --decode shows it.
                before = len(out)
                _lines([(number, wire, value)], depth, out)
                out[before] += "  (unknown field)" if fd is None else \
                    f"  ({fd.name}: wire type {wire} does not fit its type)"
                continue
            if fd.type == _MESSAGE and wire == _LEN and isinstance(value, bytes):
                nested = self.messages.get(fd.type_name)
                cut = isinstance(value, CutBytes)
                try:
                    # (a message the cut falls inside: the fields that end before it)
                    inner = _fields(value, cut) \
                        if nested is not None and depth < MAX_DEPTH else None
                except _Malformed:
                    inner = None
                if nested is not None and inner is not None:
                    note = f"  {cut_note(value)}" if isinstance(value, CutBytes) else ""
                    out.append(f"{pad}{fd.name} {{{note}")
                    self._lines(nested, inner, depth + 1, out)
                    out.append(f"{pad}}}")
                    continue
            out.append(f"{pad}{fd.name}: {self._value(fd, wire, value)}")

    def _value(self, fd: Field, wire: int, value: object) -> str:
        t = fd.type
        if isinstance(value, CutBytes):
            return cut_text(value, t == _STRING)
        if wire == _LEN and isinstance(value, bytes):
            if t == _STRING:
                return _quote(value.decode("utf-8", "replace"))
            if t in _PACKABLE_VARINT | _PACKABLE_I64 | _PACKABLE_I32:
                try:
                    return "[" + ", ".join(self._packed(fd, value)) + "]"
                except _Malformed:
                    pass
            shown = value[:MAX_BYTES_SHOWN].hex(" ")
            more = f" … ({len(value)} bytes)" if len(value) > MAX_BYTES_SHOWN else ""
            return f"bytes [{shown}]{more}" if value else '""'
        if wire == _VARINT and isinstance(value, int):
            return self._varint_value(fd, value)
        if wire == _I64 and isinstance(value, bytes):
            if t == _DOUBLE:
                return repr(struct.unpack("<d", value)[0])
            return str(struct.unpack("<q" if t == _SFIXED64 else "<Q", value)[0])
        if wire == _I32 and isinstance(value, bytes):
            if t == _FLOAT:
                return _float32(struct.unpack("<f", value)[0])
            return str(struct.unpack("<i" if t == _SFIXED32 else "<I", value)[0])
        return f"{value!r}  (wire type {wire} for a field of type {t})"

    def _varint_value(self, fd: Field, value: int) -> str:
        t = fd.type
        if t == _BOOL:
            return "true" if value else "false"
        if t in (_SINT32, _SINT64):
            return str((value >> 1) ^ -(value & 1))
        if t == _ENUM:
            number = _signed32(value)
            return self.enums.get(fd.type_name, {}).get(number, str(number))
        if t in (_INT32, _INT64):
            return str(value - (1 << 64) if value >= 1 << 63 else value)
        return str(value)

    def _packed(self, fd: Field, data: bytes) -> list[str]:
        return [self._varint_value(fd, value) if isinstance(value, int) else
                self._value(fd, wire, value) for wire, value in _packed_values(fd, data)]

def protoset_option(paths: list[Path]) -> Protoset | None:
    """The ``--protoset`` files loaded (None without any); one that cannot be read, or
    is not a FileDescriptorSet, is a usage error (exit 2) that names it."""
    if not paths:
        return None
    from proxy.cli import UsageError

    try:
        loaded = Protoset.load(paths)
    except OSError as exc:
        hint = " (make one with: protoc --include_imports --descriptor_set_out=FILE " \
            "your.proto, or h2scope protoset URL -o FILE)" \
            if isinstance(exc, FileNotFoundError) else ""
        raise UsageError(f"--protoset: cannot read {exc.filename}: {exc.strerror or exc}"
                         f"{hint}") from None
    except ProtosetError as exc:
        raise UsageError(f"--protoset: {exc}") from None
    missing = loaded.missing_imports()
    if missing:  # (loaded all the same: what it has decodes)
        shown = ", ".join(f"{f} (imported by {by})" for f, by in missing[:3]) + (
            f", … ({len(missing)} in all)" if len(missing) > 3 else "")
        print(f"h2scope: --protoset: the set lacks {shown}: fields of those files' types "
              "show as raw wire values; protoc --include_imports puts them in",
              file=sys.stderr)
    return loaded


def _fits(fd: Field, wire: int) -> bool:
    """Whether a field of ``fd``'s type can arrive with this wire type (a packed
    repeated number arrives length-delimited)."""
    t = fd.type
    if wire == _LEN:
        return t in (_STRING, _BYTES, _MESSAGE) or (
            fd.repeated and t in _PACKABLE_VARINT | _PACKABLE_I64 | _PACKABLE_I32)
    if wire == _VARINT:
        return t in _PACKABLE_VARINT
    if wire == _I64:
        return t in _PACKABLE_I64
    if wire == _I32:
        return t in _PACKABLE_I32
    return False


def _float32(x: float) -> str:
    """The shortest text that reads back as the same 32-bit float (protoc prints
    0.1, not the double 0.10000000149011612)."""
    if x != x or x in (float("inf"), float("-inf")):
        return repr(x)
    for digits in range(6, 10):
        text = f"{x:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == x:
            return text
    return repr(x)


def _signed32(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_values(fd: Field, data: bytes) -> list[tuple[int, int | bytes]]:
    """A packed repeated field's values, each with the wire type it would have alone
    (a varint, or 8 or 4 bytes); raises _Malformed."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        if fd.type in _PACKABLE_VARINT:
            value, pos = _varint(data, pos)
            out.append((_VARINT, value))
        else:
            size = 8 if fd.type in _PACKABLE_I64 else 4
            if pos + size > len(data):
                raise _Malformed
            out.append((_I64 if size == 8 else _I32, data[pos:pos + size]))
            pos += size
    return out


def _camel(name: str) -> str:
    """protoc's JSON name for a field without one: ``user_id`` → ``userId``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_key(value: object) -> str:
    """A map key as the JSON mapping writes it: always a string."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _json_float(x: float) -> float | str:
    """JSON has no NaN or infinities: the mapping writes them as strings."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return x
