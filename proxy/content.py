"""Message bodies as sent with a ``content-encoding``, decoded (RFC 9110 §8.4).

Shared by the UI's stream view and the HAR export: gzip and deflate (zlib, or
raw deflate as some servers send it), ``br`` and ``zstd`` (their packages are
dependencies; without them, said so). Every decoder is bounded: a small body
that claims gigabytes is refused, not decoded. A body that does not decode is
returned as received, with a note saying why: nothing is lost.
"""

from __future__ import annotations

import zlib
from typing import Any

MAX_DECODED = 256 * 1024 * 1024
"""Bytes a body may decode to: a small gzip can claim gigabytes (a zip bomb)."""


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(raw, limit)
    if d.unconsumed_tail:
        raise ValueError(f"it decodes to more than {limit:,} bytes")
    if not d.eof:
        raise ValueError("the compressed data ends early (the body was cut)")
    return out


def _unbrotli(brotli: Any, raw: bytes, limit: int) -> bytes:
    # (brotli 1.2 bounds the output: a few bytes can claim gigabytes, as with gzip)
    d = brotli.Decompressor()
    out = d.process(raw, output_buffer_limit=limit + 1)
    if len(out) > limit:
        raise ValueError(f"it decodes to more than {limit:,} bytes")
    if not d.is_finished():
        raise ValueError("the compressed data ends early (the body was cut)")
    return bytes(out)


def _unzstd(zstandard: Any, raw: bytes, limit: int) -> bytes:
    with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        out = reader.read(limit + 1)
    if len(out) > limit:
        raise ValueError(f"it decodes to more than {limit:,} bytes")
    try:
        size = zstandard.frame_content_size(raw)
    except zstandard.ZstdError:
        size = -1
    if 0 <= len(out) < size:  # (the frame said how much; a cut body has less)
        raise ValueError("the compressed data ends early (the body was cut)")
    return bytes(out)


def decode_content(raw: bytes, encoding: str | None, *,
                   limit: int = MAX_DECODED) -> tuple[bytes, str]:
    """(decoded bytes, note) for a ``content-encoding``; the note says what happened
    ("" when nothing was to decode)."""
    enc = (encoding or "").strip().lower()
    if not enc or enc == "identity":
        return raw, ""
    try:
        if enc in ("gzip", "x-gzip"):
            return _inflate(raw, 16 + zlib.MAX_WBITS, limit), "gzip decoded"
        if enc == "deflate":
            try:
                return _inflate(raw, zlib.MAX_WBITS, limit), "deflate decoded"
            except zlib.error:  # raw deflate without the zlib wrapper, as some servers send
                return _inflate(raw, -zlib.MAX_WBITS, limit), "deflate (raw) decoded"
        if enc == "br":
            try:
                import brotli
            except ImportError:
                return raw, "br: install the 'brotli' package to decode"
            return _unbrotli(brotli, raw, limit), "br decoded"
        if enc == "zstd":
            try:
                import zstandard
            except ImportError:
                return raw, "zstd: install the 'zstandard' package to decode"
            return _unzstd(zstandard, raw, limit), "zstd decoded"
    except Exception as exc:  # a cut or corrupt body is shown raw, with why
        return raw, f"{enc}: cannot decode ({exc})"
    return raw, f"unknown content-encoding {enc!r}: shown as received"
