"""HPACK Huffman decoding a byte at a time, derived from ``hpack``'s own table.

``hpack.huffman_table.decode_huffman`` walks a 4-bit state machine: two table
lookups and two branches per input byte. This module composes two of hpack's
nibble steps into one byte step (state × byte → next state, emitted symbols)
the first time it is needed, so decoding takes one lookup and no branch per
byte: an invalid code leads to a sink state that is checked once at the end. The
code table itself is hpack's (RFC 7541 Appendix B), never restated here; a test
checks every result against ``decode_huffman``.

Measured on a 27-byte ``:path``: 8.0 µs with hpack's decoder, see
``tests/bench/bench_observer.py`` for the effect on whole blocks.
"""

from __future__ import annotations

from hpack.huffman_table import (
    HUFFMAN_COMPLETE,
    HUFFMAN_EMIT_SYMBOL,
    HUFFMAN_FAIL,
    HUFFMAN_TABLE,
)

_SINK = 256
"""A state past an invalid code: every byte leads back to it, emitting nothing."""

_steps: list[tuple[int, bytes]] = []
"""(state × 256 + byte) → (next state × 256, bytes emitted). Row 256 is the sink."""
_accepting: list[bool] = []
"""Per state: a string may end here (the bits since the last symbol are valid
EOS padding, RFC 7541 §5.2). hpack flags this per transition; it depends only
on the state reached, which :func:`_build` checks."""


class HuffmanDecodeError(ValueError):
    """The string is not valid HPACK Huffman code (RFC 7541 §5.2)."""


def _build() -> None:
    steps: list[tuple[int, bytes]] = [(_SINK << 8, b"")] * (257 * 256)
    accepting: dict[int, bool] = {}
    table = HUFFMAN_TABLE
    for state in range(256):
        for byte in range(256):
            emitted = bytearray()
            s = state
            failed = False
            flags = 0
            for nibble in (byte >> 4, byte & 0x0F):
                s, flags, sym = table[s * 16 + nibble]
                if flags & HUFFMAN_FAIL:
                    failed = True
                    break
                if flags & HUFFMAN_EMIT_SYMBOL:
                    emitted.append(sym)
            if failed:
                continue
            complete = bool(flags & HUFFMAN_COMPLETE)
            if accepting.setdefault(s, complete) != complete:  # pragma: no cover
                raise AssertionError("HPACK Huffman acceptance is not a property of the state")
            steps[state << 8 | byte] = (s << 8, bytes(emitted))
    _accepting[:] = [accepting.get(state, False) for state in range(257)]
    _steps[:] = steps


def decode(data: bytes) -> bytes:
    """Decode a Huffman string; raises :class:`HuffmanDecodeError` when invalid."""
    if not data:
        return b""
    if not _steps:
        _build()
    steps = _steps
    state = 0
    parts: list[bytes] = []
    append = parts.append
    for byte in data:
        state, out = steps[state | byte]
        append(out)
    state >>= 8
    if state == _SINK:
        raise HuffmanDecodeError("invalid Huffman code (an EOS symbol or an unused code)")
    if not _accepting[state]:
        raise HuffmanDecodeError("Huffman string ends with incomplete or non-EOS padding "
                                 "(RFC 7541 §5.2)")
    return b"".join(parts)
