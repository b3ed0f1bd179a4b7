"""An HPACK decoder that reports how every field was encoded (RFC 7541).

``hpack.Decoder`` returns the header list and hides each field's
representation. A frame debugger needs the representation: indexed or literal,
which table an index hit, Huffman or not, how many bytes each part took, what
went into the dynamic table and what fell out of it. :class:`AnnotatedDecoder`
produces exactly the header list ``hpack.Decoder(...).decode(block, raw=True)``
produces, plus one :class:`FieldAnnotation` per representation in wire order.

Only what ``hpack`` does not do is written here: ``hpack`` still provides the
Huffman decoder, the static table and the integer coding (the one-byte integer
case is inlined because it is almost every integer on the wire).

Names and values are decoded as UTF-8 with ``errors="surrogateescape"``, which
is lossless: ``s.encode("utf-8", "surrogateescape")`` gives the wire bytes back.
Every size follows RFC 7541 §4.1 and counts *bytes*, never characters.

The decoder is the proxy's hot path, hence the shape of :meth:`decode`: one
loop with the common cases inline, entries kept already decoded with their
sizes, and a bounded cache of Huffman-decoded strings.

A malformed block raises :class:`HpackDecodeError` and nothing else; the
dynamic table is then left as it was when the error was found and the caller
must treat the HPACK context as broken (RFC 9113 §4.3: a COMPRESSION_ERROR).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, TypeAlias, overload

from hpack.exceptions import HPACKError
from hpack.hpack import decode_integer
from hpack.table import HeaderTable

from proxy.observe.huffman import HuffmanDecodeError
from proxy.observe.huffman import decode as huffman_decode

__all__ = [
    "AnnotatedDecoder",
    "FieldAnnotation",
    "FieldAnnotations",
    "HeaderBlock",
    "HpackDecodeError",
    "Representation",
    "clear_huffman_cache",
]

DEFAULT_TABLE_SIZE = 4096
"""RFC 9113 §6.5.2: the initial SETTINGS_HEADER_TABLE_SIZE."""

ENTRY_OVERHEAD = 32
"""RFC 7541 §4.1: an entry's size is its name and value lengths plus 32."""

MAX_INTEGER = 2**32
"""RFC 7541 §5.1: integers beyond an implementation limit MUST be treated as a
decoding error. Nothing legitimate in HTTP/2 comes near 2**32."""

STATIC_TABLE_LENGTH = len(HeaderTable.STATIC_TABLE)
"""RFC 7541 §2.3.3: indexes 1..61 are static, 62.. dynamic."""

_HUFFMAN_CACHE_ENTRIES = 4096
_HUFFMAN_CACHE_MAX_WIRE = 512
"""The Huffman cache holds at most this many strings of at most this many wire
bytes each (about 2 MiB at worst): big enough for every repeated value on a busy
proxy, small enough to need no eviction policy beyond starting over."""


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


class HpackDecodeError(Exception):
    """A header block that is not valid HPACK (RFC 7541 §2.3.3, §4.2, §5, §6)."""

    def __init__(self, message: str, *, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset} of the header block)")
        self.offset = offset
        """Byte offset in the block of the element that is wrong."""
        self.reason = message
        """The message without the offset."""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderBlock:
    """A decoded header block with one annotation per representation."""

    headers: tuple[tuple[str, str], ...]
    """The decoded header list, in order."""
    fields: Sequence[FieldAnnotation]
    """Every representation, size updates included, in wire order (from
    :meth:`AnnotatedDecoder.decode`: a :class:`FieldAnnotations`)."""
    wire_length: int
    """Bytes of the block."""
    decoded_size: int
    """RFC 7541 §4.1 size of the list (name + value bytes + 32 per header): the
    header list size of RFC 9113 §6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE."""
    table_size_before: int
    """Dynamic table size in bytes before the block."""
    table_size: int
    """Dynamic table size in bytes after the block."""
    table_max: int
    """Maximum dynamic table size after the block (the last size update)."""
    table_entries: int
    """Number of dynamic table entries after the block."""
    inserted: int
    """Entries the block added to the dynamic table."""
    evicted: int
    """Entries the block evicted from the dynamic table."""


_Record: TypeAlias = tuple[Any, ...]
"""A FieldAnnotation's values in field order, as the decode loop collects them."""

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


def _materialize(r: _Record) -> FieldAnnotation:
    # The dataclass __init__ of a frozen class makes one object.__setattr__
    # call per field; setting the slots directly is about three times cheaper.
    # The record holds the values in field order (a test pins the equivalence).
    a: FieldAnnotation = _new_object(FieldAnnotation)
    _set_representation(a, r[0])
    _set_offset(a, r[1])
    _set_wire_length(a, r[2])
    _set_name(a, r[3])
    _set_value(a, r[4])
    _set_index(a, r[5])
    _set_table(a, r[6])
    _set_name_huffman(a, r[7])
    _set_name_wire_length(a, r[8])
    _set_name_length(a, r[9])
    _set_value_huffman(a, r[10])
    _set_value_wire_length(a, r[11])
    _set_value_length(a, r[12])
    _set_new_table_size(a, r[13])
    _set_inserted(a, r[14])
    _set_evicted(a, r[15])
    return a


class FieldAnnotations(Sequence[FieldAnnotation]):
    """The annotations of one block: an immutable sequence of FieldAnnotation.

    The decoder records every annotation's values when it decodes the block
    (nothing is computed later) but builds the FieldAnnotation objects only
    when the sequence is first read: building them is most of the cost of an
    annotated decode, and on the live path most blocks are never inspected.
    """

    __slots__ = ("_annotations", "_records")

    def __init__(self, records: tuple[_Record, ...]) -> None:
        self._records = records
        self._annotations: tuple[FieldAnnotation, ...] | None = None

    def _all(self) -> tuple[FieldAnnotation, ...]:
        annotations = self._annotations
        if annotations is None:
            annotations = self._annotations = tuple(map(_materialize, self._records))
        return annotations

    def __len__(self) -> int:
        return len(self._records)

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
            return self._records == other._records
        if isinstance(other, tuple):
            return self._all() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"FieldAnnotations({self._all()!r})"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _byte_length(text: str) -> int:
    # isascii() is O(1) in CPython; non-ASCII needs the real UTF-8 length.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


_STATIC: tuple[tuple[str, str], ...] = (
    ("", ""),
    *((_text(name), _text(value)) for name, value in HeaderTable.STATIC_TABLE),
)
"""Index i is static entry i (RFC 7541 Appendix A); index 0 is a placeholder."""
_STATIC_SIZES: tuple[int, ...] = (
    0,
    *(len(name) + len(value) + ENTRY_OVERHEAD for name, value in HeaderTable.STATIC_TABLE),
)
_STATIC_NAME_LENGTHS: tuple[int, ...] = (0, *(len(name) for name, _ in HeaderTable.STATIC_TABLE))

_huffman_cache: dict[bytes, tuple[str, int]] = {}
"""Huffman wire bytes -> (decoded text, decoded byte length). Shared by all
decoders: the mapping is a pure function, so sharing is safe and hits more."""


def clear_huffman_cache() -> None:
    """Forget every cached Huffman string (benchmarks start cold with it)."""
    _huffman_cache.clear()


def _read_integer(view: memoryview, pos: int, prefix_bits: int, what: str) -> tuple[int, int]:
    """Decode a multi-byte integer (RFC 7541 §5.1) at ``pos``: (value, bytes used).

    Raises HpackDecodeError if it is truncated, over-long or above MAX_INTEGER.
    """
    try:
        value, consumed = decode_integer(view[pos:], prefix_bits)
    except HPACKError:
        raise HpackDecodeError(f"truncated or over-long integer ({what})", offset=pos) from None
    if value > MAX_INTEGER:
        raise HpackDecodeError(f"integer {value} too large ({what})", offset=pos)
    return value, consumed


def _huffman(raw: bytes, offset: int, what: str) -> tuple[str, int]:
    """Decode a Huffman string (RFC 7541 §5.2): (text, decoded byte length)."""
    cached = _huffman_cache.get(raw)
    if cached is not None:
        return cached
    try:
        plain = huffman_decode(raw)
    except HuffmanDecodeError as err:
        # §5.2: padding longer than 7 bits, padding not of EOS bits, or an
        # encoded EOS symbol are all decoding errors.
        raise HpackDecodeError(f"invalid Huffman {what}: {err}", offset=offset) from None
    result = (_text(plain), len(plain))
    if len(raw) <= _HUFFMAN_CACHE_MAX_WIRE:
        if len(_huffman_cache) >= _HUFFMAN_CACHE_ENTRIES:
            _huffman_cache.clear()
        _huffman_cache[raw] = result
    return result


def _read_string(
    data: bytes, view: memoryview, pos: int, what: str
) -> tuple[str, int, bool, int, int]:
    """Decode a string literal (RFC 7541 §5.2) at ``pos``.

    Returns (text, decoded byte length, huffman, string wire length, next pos).
    """
    end = len(data)
    if pos >= end:
        raise HpackDecodeError(f"block ends before the {what} string", offset=pos)
    first = data[pos]
    length = first & 0x7F
    if length == 0x7F:
        length, used = _read_integer(view, pos, 7, f"{what} length")
    else:
        used = 1
    start = pos + used
    stop = start + length
    if stop > end:
        raise HpackDecodeError(
            f"truncated {what} string: {length} bytes announced, {end - start} left",
            offset=pos,
        )
    raw = data[start:stop]
    if first & 0x80:
        text, decoded_length = _huffman(raw, start, what)
        return text, decoded_length, True, length, stop
    return _text(raw), length, False, length, stop


_EMPTY: tuple[tuple[str, str], ...] = ()


class AnnotatedDecoder:
    """One direction's HPACK decoding context (RFC 7541 §2.2).

    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE the decoding side has
    sent and seen acknowledged; set :attr:`max_allowed_table_size` again each
    time a new value is acknowledged.
    """

    __slots__ = ("_entries", "_max_allowed", "_sizes", "_table_max", "_table_size")

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self._max_allowed = _check_table_size(max_table_size)
        # RFC 7541 §4.2: the table starts at the protocol's initial size; the
        # encoder announces anything else with a size update.
        self._table_max = min(DEFAULT_TABLE_SIZE, self._max_allowed)
        self._table_size = 0
        # Newest entry first, so that index 62 is position 0 (§2.3.3).
        self._entries: deque[tuple[str, str]] = deque()
        self._sizes: deque[int] = deque()

    @property
    def max_allowed_table_size(self) -> int:
        """The largest table size a size update may ask for (§4.2, §6.3)."""
        return self._max_allowed

    @max_allowed_table_size.setter
    def max_allowed_table_size(self, value: int) -> None:
        self._max_allowed = _check_table_size(value)

    @property
    def table_size(self) -> int:
        """Current dynamic table size in bytes (§4.1)."""
        return self._table_size

    @property
    def table_max(self) -> int:
        """Current maximum dynamic table size (the last size update, §4.2)."""
        return self._table_max

    @property
    def entries(self) -> tuple[tuple[str, str], ...]:
        """Dynamic table entries, newest (index 62) first."""
        return tuple(self._entries)

    def decode(self, block: bytes | bytearray | memoryview) -> HeaderBlock:
        """Decode one complete header block (HEADERS/PUSH_PROMISE + CONTINUATION).

        Raises HpackDecodeError on any malformed input, and nothing else.
        """
        data = bytes(block)
        view = memoryview(data)
        end = len(data)
        entries = self._entries
        sizes = self._sizes
        static = _STATIC
        static_sizes = _STATIC_SIZES
        headers: list[tuple[str, str]] = []
        table: str | None
        records: list[_Record] = []
        append_header = headers.append
        # One plain tuple per representation, in FieldAnnotation field order.
        append_field = records.append
        decoded_size = 0
        inserted_count = 0
        evicted_count = 0
        table_size_before = self._table_size
        at_start = True
        pos = 0

        while pos < end:
            start = pos
            first = data[pos]

            if first & 0x80:
                # RFC 7541 §6.1: indexed header field.
                index = first & 0x7F
                if index == 0x7F:
                    index, used = _read_integer(view, pos, 7, "index")
                    pos += used
                else:
                    pos += 1
                if index <= STATIC_TABLE_LENGTH:
                    if index == 0:
                        # §6.1: the index value 0 is not used.
                        raise HpackDecodeError("index 0 in an indexed field", offset=start)
                    header = static[index]
                    decoded_size += static_sizes[index]
                    table = "static"
                else:
                    position = index - STATIC_TABLE_LENGTH - 1
                    if position >= len(entries):
                        raise HpackDecodeError(_index_error(index, len(entries)), offset=start)
                    header = entries[position]
                    decoded_size += sizes[position]
                    table = "dynamic"
                if at_start:
                    at_start = False
                    self._check_table_max(start)
                append_header(header)
                append_field(
                    (
                        Representation.INDEXED,
                        start,
                        pos - start,
                        header[0],
                        header[1],
                        index,
                        table,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        False,
                        _EMPTY,
                    )
                )
                continue

            if first & 0x40:
                # §6.2.1: literal with incremental indexing, 6-bit name index.
                representation = Representation.LITERAL_INCREMENTAL
                index = first & 0x3F
                prefix_bits = 6
            elif first & 0x20:
                # §6.3: dynamic table size update, 5-bit prefix.
                if not at_start:
                    # §4.2: a size update MUST come at the start of a block.
                    raise HpackDecodeError(
                        "dynamic table size update after the first header field", offset=start
                    )
                new_size = first & 0x1F
                if new_size == 0x1F:
                    new_size, used = _read_integer(view, pos, 5, "table size")
                    pos += used
                else:
                    pos += 1
                if new_size > self._max_allowed:
                    # §6.3: a value above the acknowledged SETTINGS_HEADER_TABLE_SIZE
                    # MUST be treated as a decoding error.
                    raise HpackDecodeError(
                        f"table size update to {new_size} exceeds the allowed maximum "
                        f"{self._max_allowed}",
                        offset=start,
                    )
                self._table_max = new_size
                evicted = self._evict(new_size)
                evicted_count += len(evicted)
                append_field(
                    (
                        Representation.SIZE_UPDATE,
                        start,
                        pos - start,
                        "",
                        "",
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        new_size,
                        False,
                        evicted,
                    )
                )
                continue
            else:
                # §6.2.2 / §6.2.3: literal without indexing / never indexed, 4-bit index.
                representation = (
                    Representation.LITERAL_NEVER_INDEXED
                    if first & 0x10
                    else Representation.LITERAL_WITHOUT_INDEXING
                )
                index = first & 0x0F
                prefix_bits = 4

            if at_start:
                at_start = False
                self._check_table_max(start)

            name_huffman: bool | None
            name_wire_length: int | None
            name_length: int | None
            if index:
                if index == (1 << prefix_bits) - 1:
                    index, used = _read_integer(view, pos, prefix_bits, "name index")
                    pos += used
                else:
                    pos += 1
                if index <= STATIC_TABLE_LENGTH:
                    name = static[index][0]
                    name_bytes = _STATIC_NAME_LENGTHS[index]
                    table = "static"
                else:
                    position = index - STATIC_TABLE_LENGTH - 1
                    if position >= len(entries):
                        raise HpackDecodeError(_index_error(index, len(entries)), offset=start)
                    name = entries[position][0]
                    name_bytes = _byte_length(name)
                    table = "dynamic"
                name_huffman = name_wire_length = name_length = None
                name_index: int | None = index
            else:
                name, name_bytes, name_huffman, name_wire_length, pos = _read_string(
                    data, view, pos + 1, "name"
                )
                name_length = name_bytes
                name_index = table = None

            value, value_bytes, value_huffman, value_wire_length, pos = _read_string(
                data, view, pos, "value"
            )
            header = (name, value)
            size = name_bytes + value_bytes + ENTRY_OVERHEAD
            decoded_size += size
            append_header(header)

            inserted = False
            evicted = _EMPTY
            if representation is Representation.LITERAL_INCREMENTAL:
                # §4.4: evict until the new entry fits; an entry larger than the
                # whole table empties it and is not added.
                table_max = self._table_max
                if size > table_max:
                    evicted = self._evict(0)
                else:
                    if self._table_size + size > table_max:
                        evicted = self._evict(table_max - size)
                    entries.appendleft(header)
                    sizes.appendleft(size)
                    self._table_size += size
                    inserted = True
                    inserted_count += 1
                evicted_count += len(evicted)

            append_field(
                (
                    representation,
                    start,
                    pos - start,
                    name,
                    value,
                    name_index,
                    table,
                    name_huffman,
                    name_wire_length,
                    name_length,
                    value_huffman,
                    value_wire_length,
                    value_bytes,
                    None,
                    inserted,
                    evicted,
                )
            )

        if at_start:
            self._check_table_max(end)

        return HeaderBlock(
            headers=tuple(headers),
            fields=FieldAnnotations(tuple(records)),
            wire_length=end,
            decoded_size=decoded_size,
            table_size_before=table_size_before,
            table_size=self._table_size,
            table_max=self._table_max,
            table_entries=len(entries),
            inserted=inserted_count,
            evicted=evicted_count,
        )

    def _evict(self, limit: int) -> tuple[tuple[str, str], ...]:
        """Evict oldest entries until the table size is at most ``limit`` (§4.3, §4.4)."""
        entries = self._entries
        sizes = self._sizes
        size = self._table_size
        evicted = []
        while size > limit:
            evicted.append(entries.pop())
            size -= sizes.pop()
        self._table_size = size
        return tuple(evicted)

    def _check_table_max(self, offset: int) -> None:
        # RFC 7541 §4.2: after SETTINGS_HEADER_TABLE_SIZE shrinks below the
        # table's maximum, the next block MUST start with a size update that
        # brings it within the new limit.
        if self._table_max > self._max_allowed:
            raise HpackDecodeError(
                f"dynamic table maximum {self._table_max} exceeds the acknowledged "
                f"SETTINGS_HEADER_TABLE_SIZE {self._max_allowed} and no size update "
                "at the start of the block lowered it",
                offset=offset,
            )


def _index_error(index: int, dynamic_entries: int) -> str:
    return (
        f"index {index} out of range: {STATIC_TABLE_LENGTH} static + "
        f"{dynamic_entries} dynamic entries"
    )


def _check_table_size(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"table size must be a non-negative int, not {value!r}")
    return value
