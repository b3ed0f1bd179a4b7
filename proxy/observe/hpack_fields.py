"""How each representation of an HPACK header block was encoded (RFC 7541 §6).

:class:`FieldAnnotation` is one representation as it was on the wire;
:class:`FieldAnnotations` is a block's sequence of them. The decoder
(:mod:`proxy.observe.hpack_annotated`) records only what depends on the
dynamic table while it decodes; everything else is derived here from the
block's bytes, on first read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import overload

from hpack.exceptions import HPACKError
from hpack.hpack import decode_integer
from hpack.table import HeaderTable

__all__ = ["FieldAnnotation", "FieldAnnotations", "Representation", "complete_prefix"]

STATIC_TABLE_LENGTH = len(HeaderTable.STATIC_TABLE)
"""RFC 7541 §2.3.3: indexes 1..61 are static, 62.. dynamic."""

_EMPTY: tuple[tuple[str, str], ...] = ()


class Representation(IntEnum):
    """How a field is represented on the wire (RFC 7541 §6)."""

    INDEXED = 0
    """§6.1: a whole field taken from the static or dynamic table."""
    LITERAL_INCREMENTAL = 1
    """§6.2.1: a literal field added to the dynamic table."""
    LITERAL_WITHOUT_INDEXING = 2
    """§6.2.2: a literal field left out of the dynamic table."""
    LITERAL_NEVER_INDEXED = 3
    """§6.2.3: a literal that intermediaries must never index either."""
    SIZE_UPDATE = 4
    """§6.3: a dynamic table size update; carries no field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldAnnotation:
    """One representation of a header block, as it was on the wire."""

    representation: Representation
    offset: int
    """Byte offset of the representation's first byte in the block."""
    wire_length: int
    """Bytes the whole representation takes."""
    name: str
    """Decoded name; ``""`` for a size update."""
    value: str
    """Decoded value; ``""`` for a size update."""
    index: int | None
    """The HPACK index used (a whole field, or just the name); ``None`` when the
    name is a literal or for a size update."""
    table: str | None
    """``"static"`` or ``"dynamic"``: the table ``index`` hit."""
    name_huffman: bool | None
    """Whether the literal name is Huffman coded; ``None`` if the name was indexed."""
    name_wire_length: int | None
    """Bytes of the literal name string on the wire, without its length prefix."""
    name_length: int | None
    """Bytes of the literal name once decoded."""
    value_huffman: bool | None
    """Whether the literal value is Huffman coded; ``None`` for an indexed field."""
    value_wire_length: int | None
    """Bytes of the value string on the wire, without its length prefix."""
    value_length: int | None
    """Bytes of the value once decoded."""
    new_table_size: int | None
    """The new maximum table size of a size update."""
    inserted: bool
    """Whether this representation added an entry to the dynamic table (§4.4: an
    entry larger than the whole table empties it and is not inserted)."""
    evicted: tuple[tuple[str, str], ...]
    """Entries evicted by this insert or size update, oldest first."""


def _annotation(
    representation: Representation,
    offset: int,
    wire_length: int,
    name: str,
    value: str,
    index: int | None,
    table: str | None,
    name_huffman: bool | None,
    name_wire_length: int | None,
    name_length: int | None,
    value_huffman: bool | None,
    value_wire_length: int | None,
    value_length: int | None,
    new_table_size: int | None,
    inserted: bool,
    evicted: tuple[tuple[str, str], ...],
) -> FieldAnnotation:
    # The dataclass __init__ of a frozen class makes one object.__setattr__
    # call per field; setting the slots directly is about three times cheaper.
    a: FieldAnnotation = _new_object(FieldAnnotation)
    _set_representation(a, representation)
    _set_offset(a, offset)
    _set_wire_length(a, wire_length)
    _set_name(a, name)
    _set_value(a, value)
    _set_index(a, index)
    _set_table(a, table)
    _set_name_huffman(a, name_huffman)
    _set_name_wire_length(a, name_wire_length)
    _set_name_length(a, name_length)
    _set_value_huffman(a, value_huffman)
    _set_value_wire_length(a, value_wire_length)
    _set_value_length(a, value_length)
    _set_new_table_size(a, new_table_size)
    _set_inserted(a, inserted)
    _set_evicted(a, evicted)
    return a


_new_object = object.__new__
(
    _set_representation,
    _set_offset,
    _set_wire_length,
    _set_name,
    _set_value,
    _set_index,
    _set_table,
    _set_name_huffman,
    _set_name_wire_length,
    _set_name_length,
    _set_value_huffman,
    _set_value_wire_length,
    _set_value_length,
    _set_new_table_size,
    _set_inserted,
    _set_evicted,
) = (getattr(FieldAnnotation, f.name).__set__ for f in fields(FieldAnnotation))

class FieldAnnotations(Sequence[FieldAnnotation]):
    """The annotations of one block: an immutable sequence of FieldAnnotation.

    Decoding records only what depends on the dynamic table at that moment:
    the header list and, for each representation that inserted or evicted,
    what it inserted and evicted. Everything else an annotation holds (offsets,
    lengths, indexes, Huffman flags, new table sizes) is a function of the
    block's bytes alone, so the FieldAnnotation objects are built by a second
    pass over the bytes when the sequence is first read: building them is most
    of the cost of an annotated decode, and on the live path most blocks are
    never inspected. The annotations are the same either way (the HPACK tests
    read every one of them).
    """

    __slots__ = ("_annotations", "_changes", "_count", "_data", "_headers")

    def __init__(self, data: bytes, headers: tuple[tuple[str, str], ...],
                 changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]],
                 count: int) -> None:
        self._data = data
        self._headers = headers
        self._changes = changes
        """(offset, inserted, evicted) per representation that touched the table."""
        self._count = count
        self._annotations: tuple[FieldAnnotation, ...] | None = None

    def _all(self) -> tuple[FieldAnnotation, ...]:
        annotations = self._annotations
        if annotations is None:
            annotations = self._annotations = _annotate(self._data, self._headers,
                                                        self._changes)
        return annotations

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, item: int) -> FieldAnnotation: ...
    @overload
    def __getitem__(self, item: slice) -> tuple[FieldAnnotation, ...]: ...
    def __getitem__(self, item: int | slice) -> FieldAnnotation | tuple[FieldAnnotation, ...]:
        return self._all()[item]

    def __iter__(self) -> Iterator[FieldAnnotation]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FieldAnnotations):
            # The annotations are a function of these three (see the class doc).
            return (self._data == other._data and self._headers == other._headers
                    and self._changes == other._changes)
        if isinstance(other, tuple):
            return self._all() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"FieldAnnotations({self._all()!r})"


def _byte_length(text: str) -> int:
    # isascii() is O(1) in CPython; non-ASCII needs the real UTF-8 length.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def _string_layout(data: bytes, pos: int) -> tuple[bool, int, int]:
    """(huffman, string wire length, next pos) of a string already decoded once."""
    first = data[pos]
    length = first & 0x7F
    used = 1
    if length == 0x7F:
        length, used = decode_integer(memoryview(data)[pos:], 7)
    return bool(first & 0x80), length, pos + used + length


def _annotate(data: bytes, headers: tuple[tuple[str, str], ...],
              changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]],
              ) -> tuple[FieldAnnotation, ...]:
    """The annotations of a block that decoded to ``headers``, by a second pass.

    The block is known to be valid, so nothing here can fail. Text comes from
    the decoded header list (field ``k`` of the block is ``headers[k]``); what
    the dynamic table did comes from ``changes``.
    """
    touched = {offset: (inserted, evicted) for offset, inserted, evicted in changes}
    out: list[FieldAnnotation] = []
    end = len(data)
    pos = 0
    k = 0
    while pos < end:
        start = pos
        first = data[pos]
        if first & 0x80:
            index, used = (first & 0x7F, 1) if first & 0x7F != 0x7F else decode_integer(
                memoryview(data)[pos:], 7)
            pos += used
            name, value = headers[k]
            k += 1
            out.append(_annotation(Representation.INDEXED, start, pos - start, name, value, index,
                                   "static" if index <= STATIC_TABLE_LENGTH else "dynamic",
                                   None, None, None, None, None, None, None, False, _EMPTY))
            continue
        if first & 0xE0 == 0x20:
            new_size, used = (first & 0x1F, 1) if first & 0x1F != 0x1F else decode_integer(
                memoryview(data)[pos:], 5)
            pos += used
            out.append(_annotation(Representation.SIZE_UPDATE, start, pos - start, "", "", None,
                                   None, None, None, None, None, None, None, new_size, False,
                                   touched[start][1]))
            continue
        if first & 0x40:
            representation = Representation.LITERAL_INCREMENTAL
            prefix_bits = 6
        else:
            representation = (Representation.LITERAL_NEVER_INDEXED if first & 0x10
                              else Representation.LITERAL_WITHOUT_INDEXING)
            prefix_bits = 4
        mask = (1 << prefix_bits) - 1
        name, value = headers[k]
        k += 1
        name_index: int | None = first & mask
        table: str | None
        name_huffman: bool | None
        name_wire_length: int | None
        name_length: int | None
        if name_index:
            used = 1
            if name_index == mask:
                name_index, used = decode_integer(memoryview(data)[pos:], prefix_bits)
            pos += used
            table = "static" if name_index <= STATIC_TABLE_LENGTH else "dynamic"
            name_huffman = name_wire_length = name_length = None
        else:
            name_index = table = None
            name_huffman, name_wire_length, pos = _string_layout(data, pos + 1)
            name_length = _byte_length(name)
        value_huffman, value_wire_length, pos = _string_layout(data, pos)
        inserted, evicted = touched.get(start, (False, _EMPTY))
        out.append(_annotation(representation, start, pos - start, name, value, name_index, table,
                               name_huffman, name_wire_length, name_length, value_huffman,
                               value_wire_length, _byte_length(value), None, inserted, evicted))
    return tuple(out)


def complete_prefix(data: bytes, limit: int) -> tuple[int, int]:
    """(end, count) of the representations at the start of ``data`` that end at or
    before byte ``limit``: the part of a broken block that decoded before its error
    (each representation is checked, so nothing here raises)."""
    pos = 0
    count = 0
    end = len(data)
    view = memoryview(data)
    try:
        while pos < end:
            first = data[pos]
            if first & 0x80:
                nxt = pos + decode_integer(view[pos:], 7)[1]
            elif first & 0xE0 == 0x20:
                nxt = pos + decode_integer(view[pos:], 5)[1]
            else:
                bits = 6 if first & 0x40 else 4
                index, used = decode_integer(view[pos:], bits)
                nxt = pos + used
                if not index:
                    nxt = _string_layout(data, nxt)[2]
                nxt = _string_layout(data, nxt)[2]
            if nxt > limit or nxt > end:
                break
            pos = nxt
            count += 1
    except (HPACKError, IndexError):
        pass
    return pos, count

