"""An HPACK decoder that reports how every field was encoded (RFC 7541).

``hpack.Decoder`` returns the header list and hides each field's
representation. A frame debugger needs the representation: indexed or literal,
which table an index hit, Huffman or not, how many bytes each part took, what
went into the dynamic table and what fell out of it. :class:`AnnotatedDecoder`
produces exactly the header list ``hpack.Decoder(...).decode(block, raw=True)``
produces, plus one :class:`FieldAnnotation` per representation in wire order.

Only what ``hpack`` does not do is written here: ``hpack`` still provides the
Huffman code table (walked a byte at a time by :mod:`proxy.observe.huffman`),
the static table and the integer coding (the one- and two-byte integer cases
are inlined because they are almost every integer on the wire).

Names and values are decoded as UTF-8 with ``errors="surrogateescape"``, which
is lossless: ``s.encode("utf-8", "surrogateescape")`` gives the wire bytes back.
Every size follows RFC 7541 §4.1 and counts *bytes*, never characters.

The decoder is the proxy's hot path, hence the shape of :meth:`decode`: one
loop with the common cases inline, entries kept already decoded with their
sizes, a bounded cache of Huffman-decoded strings, and only what depends on
the dynamic table recorded per field; the annotations themselves are derived
from the block's bytes when first read (:mod:`proxy.observe.hpack_fields`).
See ``docs/performance.md``.

A malformed block raises :class:`HpackDecodeError` and nothing else; the
dynamic table is then left as it was when the error was found and the caller
must treat the HPACK context as broken (RFC 9113 §4.3: a COMPRESSION_ERROR).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from hpack.exceptions import HPACKError
from hpack.hpack import decode_integer
from hpack.table import HeaderTable

from proxy.observe.hpack_fields import (
    STATIC_TABLE_LENGTH,
    FieldAnnotation,
    FieldAnnotations,
    Representation,
    _byte_length,
    complete_prefix,
)
from proxy.observe.huffman import HuffmanDecodeError
from proxy.observe.huffman import decode as huffman_decode
from proxy.observe.records import positional

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

_HUFFMAN_CACHE_ENTRIES = 4096
_HUFFMAN_CACHE_MAX_WIRE = 512
"""The Huffman cache holds at most this many strings of at most this many wire
bytes each (about 2 MiB at worst): big enough for every repeated value on a busy
proxy, small enough to need no eviction policy beyond starting over."""


class HpackDecodeError(Exception):
    """A header block that is not valid HPACK (RFC 7541 §2.3.3, §4.2, §5, §6)."""

    def __init__(self, message: str, *, offset: int, section: str) -> None:
        super().__init__(f"{message} (RFC 7541 {section}; at byte {offset} of the header "
                         "block)")
        self.offset = offset
        """Byte offset in the block of the element that is wrong."""
        self.reason = message
        """The message without the offset."""
        self.section = section
        """The RFC 7541 section of the rule broken, e.g. ``§4.2`` (with RFC 9113's
        where HTTP/2 states the rule too: ``§4.2, RFC 9113 §4.3.1``)."""
        self.partial: tuple[tuple[str, str], ...] = ()
        """The fields decoded before the error (set by :meth:`AnnotatedDecoder.decode`)."""
        self.partial_block: HeaderBlock | None = None
        """The representations before the error, annotated, with the table as the
        error left it (set by :meth:`AnnotatedDecoder.decode`)."""

    @property
    def rfc(self) -> str:
        return f"RFC 7541 {self.section}"


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


_header_block = positional(HeaderBlock)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


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


def _read_integer(data: bytes, pos: int, prefix_bits: int, what: str) -> tuple[int, int]:
    """Decode a multi-byte integer (RFC 7541 §5.1) at ``pos``: (value, bytes used).

    Raises HpackDecodeError if it is truncated, over-long or above MAX_INTEGER.
    """
    try:
        value, consumed = decode_integer(memoryview(data)[pos:], prefix_bits)
    except HPACKError:
        # Five continuation bytes that each say "more follows" are already more than
        # any value up to MAX_INTEGER needs, whether or not the block goes on.
        five = data[pos + 1:pos + 6]
        if (len(five) < 5 or not all(b & 0x80 for b in five)) and \
                all(b & 0x80 for b in data[pos + 1:]):  # every byte says "more follows"
            raise HpackDecodeError(f"truncated integer ({what}): the block ends after "
                                   f"{len(data) - pos} of its bytes", offset=pos,
                                   section="§5.1") from None
        raise HpackDecodeError(f"over-long integer ({what}): more continuation bytes than "
                               f"any value up to {MAX_INTEGER} needs", offset=pos,
                               section="§5.1") from None
    if value > MAX_INTEGER:
        raise HpackDecodeError(f"integer {value} too large ({what}): above {MAX_INTEGER}",
                               offset=pos, section="§5.1")
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
        raise HpackDecodeError(f"invalid Huffman {what}: {err}", offset=offset,
                             section="§5.2") from None
    result = (_text(plain), len(plain))
    if len(raw) <= _HUFFMAN_CACHE_MAX_WIRE:
        if len(_huffman_cache) >= _HUFFMAN_CACHE_ENTRIES:
            _huffman_cache.clear()
        _huffman_cache[raw] = result
    return result


def _read_string(data: bytes, pos: int, what: str) -> tuple[str, int, bool, int, int]:
    """Decode a string literal (RFC 7541 §5.2) at ``pos``.

    Returns (text, decoded byte length, huffman, string wire length, next pos).
    """
    end = len(data)
    if pos >= end:
        raise HpackDecodeError(f"block ends before the {what} string", offset=pos,
                             section="§5.2")
    first = data[pos]
    length = first & 0x7F
    if length == 0x7F:
        length, used = _read_integer(data, pos, 7, f"{what} length")
    else:
        used = 1
    start = pos + used
    stop = start + length
    if stop > end:
        raise HpackDecodeError(
            f"truncated {what} string: {length} bytes announced, {end - start} left",
            offset=pos, section="§5.2",
        )
    raw = data[start:stop]
    if first & 0x80:
        text, decoded_length = _huffman(raw, start, what)
        return text, decoded_length, True, length, stop
    return _text(raw), length, False, length, stop


_EMPTY: tuple[tuple[str, str], ...] = ()
MEMO_BLOCKS = 64
"""Distinct table-neutral blocks remembered per decoder while its table is unchanged."""


class AnnotatedDecoder:
    """One direction's HPACK decoding context (RFC 7541 §2.2).

    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE the decoding side has
    sent and seen acknowledged; set :attr:`max_allowed_table_size` again each
    time a new value is acknowledged.
    """

    __slots__ = ("_entries", "_gone", "_gone_by", "_max_allowed", "_memo", "_sizes", "_smallest",
                 "_table_max", "_table_size", "late_update", "lenient")

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE, *, lenient: bool = False) -> None:
        self.lenient = lenient
        """Apply a dynamic table size update that comes after the first field (RFC 7541
        §4.2 makes it a decoding error) and go on, as a lenient receiver does (Java's
        HttpClient took one from a Go server): the observer says what the peer saw,
        and reports the error itself (:attr:`late_update`)."""
        self.late_update: int | None = None
        """Lenient: where the last block decoded had its first late size update."""
        self._max_allowed = _check_table_size(max_table_size)
        # RFC 7541 §4.2: the table starts at the protocol's initial size; the
        # encoder announces anything else with a size update.
        self._table_max = min(DEFAULT_TABLE_SIZE, self._max_allowed)
        self._table_size = 0
        # Newest entry first, so that index 62 is position 0 (§2.3.3).
        self._entries: deque[tuple[str, str]] = deque()
        self._sizes: deque[int] = deque()
        self._gone: deque[tuple[str, str]] = deque(maxlen=GONE_KEPT)
        """The entries evicted last, the latest first (from this block and the
        ones before): an index past the table that one of them held is named."""
        self._gone_by: deque[int] = deque(maxlen=GONE_KEPT)
        """For each of :attr:`_gone`: the size update that evicted it (its new
        maximum), or -1 for an entry inserted after it (§4.3 or §4.4)."""
        self._memo: dict[bytes, HeaderBlock] = {}
        """Blocks that left the table as it is, by their bytes, while it stays so."""
        self._smallest: int | None = None
        """The smallest limit set since the last block, when it was below the table's
        maximum: the next block must signal it (§4.2), even if the limit rose again."""

    @property
    def max_allowed_table_size(self) -> int:
        """The largest table size a size update may ask for (§4.2, §6.3)."""
        return self._max_allowed

    @max_allowed_table_size.setter
    def max_allowed_table_size(self, value: int) -> None:
        self._max_allowed = _check_table_size(value)
        self._memo.clear()  # a block that decoded before may now be an error (§4.2)
        if value < self._table_max and (self._smallest is None or value < self._smallest):
            self._smallest = value

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
        data = block if type(block) is bytes else bytes(block)
        self.late_update = None
        # A block that changes nothing in the table (only indexed fields and
        # literals without indexing: a client repeating a request, a gRPC
        # channel repeating its metadata) decodes to the same result for as
        # long as the table stays as it is — the same record, annotations and
        # all, is that result.
        known = self._memo.get(data)
        if known is not None:
            return known
        headers: list[tuple[str, str]] = []
        # Only what depends on the table is recorded: (offset, inserted, evicted).
        changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]] = []
        before = self._table_size
        try:
            return self._decode(data, headers, changes)
        except HpackDecodeError as exc:
            exc.partial = tuple(headers)  # what decoded before the break
            exc.partial_block = self._partial_block(data, exc, changes, before)
            raise

    def _partial_block(self, data: bytes, exc: HpackDecodeError,
                       changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]],
                       before: int) -> HeaderBlock:
        """The representations of a broken block before its error, annotated, and
        the table as they left it (the decoder's table stays so)."""
        good, count = complete_prefix(data, exc.offset)
        kept = [c for c in changes if c[0] < good]
        return _header_block(
            exc.partial, FieldAnnotations(data[:good], exc.partial, kept, count), len(data),
            sum(_byte_length(n) + _byte_length(v) + ENTRY_OVERHEAD for n, v in exc.partial),
            before, self._table_size, self._table_max, len(self._entries),
            sum(1 for c in kept if c[1]), sum(len(c[2]) for c in kept))

    def _index_error(self, index: int, offset: int,
                     changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]],
                     data: bytes) -> HpackDecodeError:
        """Index past the table (§2.3.3); when an entry this block evicted was at that
        index, which and by what: an encoder that did not evict as the decoder does
        (§4.4), or that forgot its own size update (§4.3), refers to it still."""
        entries = len(self._entries)
        message = (f"index {index} out of range: {STATIC_TABLE_LENGTH} static + {entries} "
                   "dynamic entries")
        gone = [(entry, at) for at, _, evicted in changes for entry in evicted][::-1]
        k = index - STATIC_TABLE_LENGTH - 1 - entries
        if 0 <= k < len(gone):
            (name, value), at = gone[k]
            if data[at] & 0xE0 == 0x20:  # (a size update)
                size = _read_integer(data, at, 5, "table size")[0]
                message += (f"; index {index} was {_short(name)}: {_short(value)} until "
                            f"the encoder's own size update to {size} at byte {at} of this "
                            f"block {_evicted_by_update(size)}")
            else:
                message += (f"; index {index} was {_short(name)}: {_short(value)} until "
                            f"the representation at byte {at} of this block evicted it "
                            "(RFC 7541 §4.4: the encoder must evict as the decoder does)")
        elif 0 <= k < len(self._gone):
            name, value = self._gone[k]
            size = self._gone_by[k]
            if size >= 0:
                message += (f"; index {index} was {_short(name)}: {_short(value)} until the "
                            f"encoder's own size update to {size} in an earlier header block "
                            f"{_evicted_by_update(size)}")
            else:
                message += (f"; index {index} was {_short(name)}: {_short(value)} until an "
                            "earlier header block evicted it (RFC 7541 §4.4: the encoder "
                            "must evict as the decoder does)")
        return HpackDecodeError(message, offset=offset, section="§2.3.3")

    def _decode(self, data: bytes, headers: list[tuple[str, str]],
                changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]]) -> HeaderBlock:
        memo = self._memo
        end = len(data)
        entries = self._entries
        sizes = self._sizes
        static = _STATIC
        static_sizes = _STATIC_SIZES
        cache = _huffman_cache
        append_header = headers.append
        decoded_size = 0
        inserted_count = 0
        evicted_count = 0
        table_size_before = self._table_size
        pos = 0

        # RFC 7541 §4.2: dynamic table size updates come first in a block.
        lowest = 1 << 32
        while pos < end and data[pos] & 0xE0 == 0x20:
            start = pos
            new_size = data[pos] & 0x1F
            if new_size == 0x1F:
                new_size, used = _read_integer(data, pos, 5, "table size")
                pos += used
            else:
                pos += 1
            if new_size > self._max_allowed:
                # §6.3: a value above the acknowledged SETTINGS_HEADER_TABLE_SIZE
                # MUST be treated as a decoding error.
                raise HpackDecodeError(
                    f"table size update to {new_size} exceeds the allowed maximum "
                    f"{self._max_allowed}",
                    offset=start, section="§6.3",
                )
            self._table_max = new_size
            if new_size < lowest:
                lowest = new_size
            evicted = self._evict(new_size, new_size)
            evicted_count += len(evicted)
            changes.append((start, False, evicted))
        updates = len(changes)
        if self._table_max > self._max_allowed:
            self._table_max_error(data, pos, changes)
        smallest = self._smallest
        if smallest is not None:
            if lowest > smallest:
                # §4.2: "the smallest maximum table size that occurs in that interval
                # MUST be signaled": an encoder that skips it keeps entries the
                # decoder evicted (nghttp2 rejects such a block too).
                raise HpackDecodeError(
                    f"SETTINGS_HEADER_TABLE_SIZE was lowered to {smallest} since the last "
                    "block, and " + ("no size update signals it" if not updates else
                                     f"its size updates go no lower than {lowest}") +
                    " (the smallest maximum of the interval must be signalled)",
                    offset=0, section="§4.2, RFC 9113 §4.3.1")
            self._smallest = None

        while pos < end:
            start = pos
            first = data[pos]

            if first & 0x80:
                # RFC 7541 §6.1: indexed header field, the most common representation.
                index = first & 0x7F
                if index != 0x7F:
                    pos += 1
                elif pos + 1 < end and data[pos + 1] < 0x80:
                    # §5.1: a two-byte index (127..254), common with a full table.
                    index += data[pos + 1]
                    pos += 2
                else:
                    index, used = _read_integer(data, pos, 7, "index")
                    pos += used
                if index > STATIC_TABLE_LENGTH:
                    position = index - STATIC_TABLE_LENGTH - 1
                    if position >= len(entries):
                        raise self._index_error(index, start, changes, data)
                    append_header(entries[position])
                    decoded_size += sizes[position]
                elif index:
                    append_header(static[index])
                    decoded_size += static_sizes[index]
                else:
                    # §6.1: the index value 0 is not used.
                    raise HpackDecodeError("index 0 in an indexed field", offset=start,
                                           section="§6.1")
                continue

            if first & 0x40:
                # §6.2.1: literal with incremental indexing, 6-bit name index.
                incremental = True
                index = first & 0x3F
                mask = 0x3F
            elif first & 0x20:
                # §4.2: a size update MUST come at the start of a block.
                if not self.lenient:
                    raise HpackDecodeError(
                        "dynamic table size update after the first header field",
                        offset=start, section="§4.2",
                    )
                pos = self._late_update(data, start, changes)
                updates += 1  # (one more representation that is not a field)
                evicted_count += len(changes[-1][2])
                continue
            else:
                # §6.2.2 / §6.2.3: literal without indexing / never indexed, 4-bit index.
                incremental = False
                index = first & 0x0F
                mask = 0x0F

            if index:
                if index == mask:
                    index, used = _read_integer(data, pos, 4 if mask == 0x0F else 6, "name index")
                    pos += used
                else:
                    pos += 1
                if index <= STATIC_TABLE_LENGTH:
                    name = static[index][0]
                    name_bytes = _STATIC_NAME_LENGTHS[index]
                else:
                    position = index - STATIC_TABLE_LENGTH - 1
                    if position >= len(entries):
                        raise self._index_error(index, start, changes, data)
                    name = entries[position][0]
                    name_bytes = _byte_length(name)
            else:
                name, name_bytes, _, _, pos = _read_string(data, pos + 1, "name")

            # §5.2: the value string, inline for the one-byte length prefix.
            if pos >= end:
                raise HpackDecodeError("block ends before the value string", offset=pos,
                                       section="§5.2")
            prefix = data[pos]
            length = prefix & 0x7F
            if length == 0x7F:
                value, value_bytes, _, _, pos = _read_string(data, pos, "value")
            else:
                stop = pos + 1 + length
                if stop > end:
                    raise HpackDecodeError(
                        f"truncated value string: {length} bytes announced, "
                        f"{end - pos - 1} left",
                        offset=pos, section="§5.2",
                    )
                raw = data[pos + 1 : stop]
                if prefix & 0x80:
                    cached = cache.get(raw)
                    value, value_bytes = (
                        cached if cached is not None else _huffman(raw, pos + 1, "value")
                    )
                else:
                    value = raw.decode("utf-8", "surrogateescape")
                    value_bytes = length
                pos = stop

            header = (name, value)
            size = name_bytes + value_bytes + ENTRY_OVERHEAD
            decoded_size += size
            append_header(header)

            if incremental:
                # §4.4: evict until the new entry fits; an entry larger than the
                # whole table empties it and is not added.
                table_max = self._table_max
                if size > table_max:
                    evicted = self._evict(0)
                    changes.append((start, False, evicted))
                else:
                    if self._table_size + size > table_max:
                        evicted = self._evict(table_max - size)
                    else:
                        evicted = _EMPTY
                    entries.appendleft(header)
                    sizes.appendleft(size)
                    self._table_size += size
                    inserted_count += 1
                    changes.append((start, True, evicted))
                evicted_count += len(evicted)

        header_list = tuple(headers)
        result = _header_block(
            header_list,
            FieldAnnotations(data, header_list, changes, len(header_list) + updates),
            end,
            decoded_size,
            table_size_before,
            self._table_size,
            self._table_max,
            len(entries),
            inserted_count,
            evicted_count,
        )
        if changes:
            memo.clear()  # the table changed: what was decoded before may not hold
        elif len(memo) < MEMO_BLOCKS:
            memo[data] = result
        return result

    def _late_update(self, data: bytes, start: int,
                     changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]]) -> int:
        """Lenient: a size update after the first field, applied (§4.2, §6.3); where
        the next representation starts."""
        new_size = data[start] & 0x1F
        pos = start + 1
        if new_size == 0x1F:
            new_size, used = _read_integer(data, start, 5, "table size")
            pos = start + used
        if new_size > self._max_allowed:
            raise HpackDecodeError(
                f"table size update to {new_size} exceeds the allowed maximum "
                f"{self._max_allowed}", offset=start, section="§6.3")
        self._table_max = new_size
        changes.append((start, False, self._evict(new_size, new_size)))
        if self.late_update is None:
            self.late_update = start
        return pos

    def _table_max_error(self, data: bytes, pos: int,
                         changes: list[tuple[int, bool, tuple[tuple[str, str], ...]]]) -> None:
        # RFC 7541 §4.2: after SETTINGS_HEADER_TABLE_SIZE shrinks below the
        # table's maximum, the next block MUST start with a size update that
        # brings it within the new limit. A bad index in a first indexed field
        # is reported before this (the order the checks have always run in).
        if pos < len(data) and data[pos] & 0x80:
            index = data[pos] & 0x7F
            if index == 0x7F:
                index, _ = _read_integer(data, pos, 7, "index")
            if index == 0:
                raise HpackDecodeError("index 0 in an indexed field", offset=pos,
                                       section="§6.1")
            if index - STATIC_TABLE_LENGTH - 1 >= len(self._entries):
                raise self._index_error(index, pos, changes, data)
        self._check_table_max(pos)

    def _evict(self, limit: int, update: int = -1) -> tuple[tuple[str, str], ...]:
        """Evict oldest entries until the table size is at most ``limit`` (§4.3, §4.4);
        ``update``: the new maximum of the size update that evicts them, if one does."""
        entries = self._entries
        sizes = self._sizes
        size = self._table_size
        evicted = []
        while size > limit:
            evicted.append(entries.pop())
            size -= sizes.pop()
        self._table_size = size
        if evicted:
            self._gone.extendleft(evicted)  # (the oldest goes first, so ends up last)
            self._gone_by.extendleft((update,) * len(evicted))
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
                offset=offset, section="§4.2, RFC 9113 §4.3.1",
            )




GONE_KEPT = 64
"""Evicted entries an AnnotatedDecoder remembers, to name the one an index past
the table refers to (an encoder that did not evict as the decoder did)."""


def _evicted_by_update(size: int) -> str:
    """How a size update to ``size`` lost an entry, with its rule."""
    return (f"{'emptied the table' if size == 0 else 'evicted it'} (RFC 7541 §4.3: a "
            "lower maximum evicts entries, from the encoder's table as from the decoder's)")


def _short(text: str) -> str:
    """``text`` for a message: escaped when not printable, cut at 40 characters."""
    if not text.isprintable():
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= 40 else text[:40] + "…"


def _check_table_size(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"table size must be a non-negative int, not {value!r}")
    return value
