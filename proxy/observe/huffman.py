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

_next: list[int] = []
"""(state × 256 + byte) → next state × 256. Row 256 is the sink."""
_out: list[bytes] = []
"""(state × 256 + byte) → the bytes that step emits."""
_accepting: list[bool] = []
"""Per state: a string may end here (the bits since the last symbol are valid
EOS padding, RFC 7541 §5.2). hpack flags this per transition; it depends only
on the state reached, which :func:`_build` checks."""


class HuffmanDecodeError(ValueError):
    """The string is not valid HPACK Huffman code (RFC 7541 §5.2)."""


def _build() -> None:
    # Two flat lists whose items are shared objects (257 ints, one bytes object
    # per distinct output): the tables stay about 1.5 MB, small enough to stay
    # in the CPU caches next to the rest of the observer. (A list of one
    # (next, output) tuple per step is ~6 MB and measurably slower in context.)
    shifted = [state << 8 for state in range(257)]
    outputs: dict[bytes, bytes] = {}
    nxt = [shifted[_SINK]] * (257 * 256)
    out = [b""] * (257 * 256)
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
            i = state << 8 | byte
            nxt[i] = shifted[s]
            out[i] = outputs.setdefault(bytes(emitted), bytes(emitted))
    _accepting[:] = [accepting.get(state, False) for state in range(257)]
    _out[:] = out
    _next[:] = nxt


def prepare() -> None:
    """Build the tables now (about 60 ms) rather than in the first header block that
    needs them: the proxy calls it before listening, so its first connection is
    not the slow one."""
    if not _next:
        _build()


def decode(data: bytes) -> bytes:
    """Decode a Huffman string; raises :class:`HuffmanDecodeError` when invalid."""
    if not data:
        return b""
    if not _next:
        _build()
    nxt = _next
    out = _out
    state = 0
    parts: list[bytes] = []
    append = parts.append
    for byte in data:
        i = state | byte
        append(out[i])
        state = nxt[i]
    state >>= 8
    if state == _SINK:
        raise HuffmanDecodeError("invalid Huffman code (an EOS symbol or an unused code)")
    if not _accepting[state]:
        raise HuffmanDecodeError(_padding_problem(data))
    return b"".join(parts)


def _padding_problem(data: bytes) -> str:
    """What is wrong with the end of a Huffman string that stops in a non-accepting
    state (RFC 7541 §5.2 treats the two cases apart)."""
    body = data.rstrip(b"\xff")
    if body != data:
        try:
            decode(body)  # (what precedes the whole 0xff bytes ends well)
        except HuffmanDecodeError:
            pass
        else:
            return (f"Huffman string ends with padding longer than 7 bits "
                    f"({(len(data) - len(body)) * 8} or more bits of 1s)")
    return "Huffman string ends with incomplete or non-EOS padding"
