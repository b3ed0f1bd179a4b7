"""Header blocks decoded again on demand, from their frames' bytes.

The UI keeps a header block's *header list* (the timeline's summary, the
filters and the stream view need it) but not its per-field HPACK annotations:
those cost about half a kilobyte a block, and a million-frame capture has
hundreds of thousands of blocks while the user inspects a handful. So the
HPACK tab and the HPACK tables view decode again what they show.

Decoding a block needs the dynamic table as it was before it (RFC 7541 §2.3.2:
it is the product of every earlier block in that direction). One
:class:`BlockReplay` per connection direction keeps *checkpoints* — the table
after every :data:`EVERY`-th block: its entries and maximum size — so a block
is at most ``EVERY - 1`` decodes away from one. A checkpoint is restored into
a fresh :class:`AnnotatedDecoder` by decoding one synthetic block that sets the
maximum size (§6.3) and inserts the entries oldest first (§6.2.1): only the
decoder's public interface is used, and the restored table is the original
one entry for entry. The capture loader adds checkpoints as it decodes (it has
the observer's decoder at hand); otherwise they are made while replaying.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import NamedTuple

from hpack.hpack import encode_integer

from proxy.observe.hpack_annotated import AnnotatedDecoder, HeaderBlock, HpackDecodeError

EVERY = 64
"""Blocks between checkpoints: a block re-decodes at most this many blocks."""
_first = itemgetter(0)
_ANY_SIZE = (1 << 32) - 1
"""A replayed decoder accepts any table size: the observer already judged them."""

Entries = tuple[tuple[str, str], ...]
BlockBytes = Callable[[int], bytes | None]
"""Row → the header block's bytes (HEADERS/PUSH_PROMISE + CONTINUATION
fragments), or None if a frame's bytes are no longer kept."""


def _string(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    return bytes(encode_integer(len(raw), 7)) + raw  # H bit 0: a plain literal (§5.2)


def restore_block(entries: Entries, table_max: int) -> bytes:
    """A header block that turns an empty decoder's table into ``entries``
    (newest first, as :attr:`AnnotatedDecoder.entries` gives them)."""
    size = bytearray(encode_integer(table_max, 5))
    size[0] |= 0x20  # §6.3 dynamic table size update
    out = [bytes(size)]
    for name, value in reversed(entries):  # oldest first: each insert becomes index 62
        out.append(b"\x40" + _string(name) + _string(value))  # §6.2.1, new name
    return b"".join(out)


class Broken(NamedTuple):
    """A header block that did not decode, decoded again (:meth:`BlockReplay.broken`)."""

    error: HpackDecodeError
    entries: Entries
    """The dynamic table as the error left it, newest first."""


class BlockReplay:
    """Re-decodes the header blocks of one direction of one connection.

    ``rows`` is that direction's block rows in order (:attr:`HpackTable.block_rows`,
    shared, growing); block ``k`` is the one at ``rows[k]``.
    """

    __slots__ = ("_cache", "_cps", "_decoder", "_pos")

    def __init__(self) -> None:
        self._cps: list[tuple[int, Entries, int]] = [(0, (), 4096)]
        """(block index, entries newest first, table maximum): the table *before*
        that block. Appended whole (atomic: the loader thread adds them while the
        UI thread reads)."""
        self._decoder: AnnotatedDecoder | None = None
        self._pos = 0
        """Blocks :attr:`_decoder` has decoded (its table is the one before block ``_pos``)."""
        self._cache: tuple[int, HeaderBlock] | None = None

    @property
    def checkpoints(self) -> int:
        return len(self._cps)

    def checkpoint(self, k: int, entries: Entries, table_max: int) -> None:
        """The table before block ``k`` is ``entries`` (from the live decoder)."""
        if k > self._cps[-1][0]:
            self._cps.append((k, entries, table_max))

    def _restore(self, i: int) -> AnnotatedDecoder:
        decoder = AnnotatedDecoder(_ANY_SIZE, lenient=True)  # (as the observer's)
        _, entries, table_max = self._cps[i]
        if entries or table_max != 4096:
            decoder.decode(restore_block(entries, table_max))
        return decoder

    def _seek(self, k: int, rows: Sequence[int], block_bytes: BlockBytes
              ) -> AnnotatedDecoder | None:
        """A decoder whose table is the one before block ``k``; None if a block
        on the way cannot be read or decoded."""
        decoder = self._decoder
        i = bisect_right(self._cps, k, key=_first) - 1
        start = self._cps[i][0]
        if decoder is None or self._pos > k or self._pos < start:
            decoder = self._restore(i)
            self._pos = start
        while self._pos < k:
            data = block_bytes(rows[self._pos])
            if data is None:
                self._decoder = None
                return None
            try:
                decoder.decode(data)
            except HpackDecodeError:
                self._decoder = None
                return None
            self._pos += 1
            if self._pos % EVERY == 0 and self._pos > self._cps[-1][0]:
                self.checkpoint(self._pos, decoder.entries, decoder.table_max)
        self._decoder = decoder
        return decoder

    def block(self, k: int, rows: Sequence[int], block_bytes: BlockBytes) -> HeaderBlock | None:
        """Block ``k`` decoded with its annotations; None if it cannot be rebuilt."""
        if self._cache is not None and self._cache[0] == k:
            return self._cache[1]
        decoder = self._seek(k, rows, block_bytes)
        if decoder is None:
            return None
        data = block_bytes(rows[k])
        if data is None:
            return None
        try:
            block = decoder.decode(data)
        except HpackDecodeError:
            self._decoder = None
            return None
        self._pos += 1
        self._cache = (k, block)
        return block

    def broken(self, k: int, rows: Sequence[int], row: int, block_bytes: BlockBytes
               ) -> Broken | None:
        """Decode the block at ``row``, which follows block ``k - 1`` and did not
        decode live: its error (``partial_block`` holds what decoded before it) and
        the table as it left it; None if it cannot be read, or decodes here (a
        table size the replaying decoder accepts)."""
        decoder = self._seek(k, rows, block_bytes)
        data = block_bytes(row)
        if decoder is None or data is None:
            return None
        self._decoder = None  # its table is the broken block's now
        try:
            decoder.decode(data)
        except HpackDecodeError as exc:
            return Broken(exc, decoder.entries)
        return None

    def table_after(self, n: int, rows: Sequence[int], block_bytes: BlockBytes
                    ) -> AnnotatedDecoder | None:
        """A decoder holding the table after the first ``n`` blocks."""
        return self._seek(n, rows, block_bytes)
