"""Bodies decoded per content-encoding (proxy/content.py): every encoding a browser
asks for, each bounded against a body that claims gigabytes, and a cut or broken
body returned as received with why."""

from __future__ import annotations

import gzip
import sys
import zlib

import brotli
import pytest
import zstandard

from proxy.content import decode_content

BODY = b'{"id": 42, "name": "user3"}' * 200


@pytest.mark.parametrize(("encoding", "encoded"), [
    ("gzip", gzip.compress(BODY)),
    ("deflate", zlib.compress(BODY)),
    ("br", brotli.compress(BODY)),
    ("zstd", zstandard.ZstdCompressor().compress(BODY)),
    ("BR", brotli.compress(BODY)),  # (content-coding names are case-insensitive)
])
def test_every_encoding_a_browser_asks_for_is_decoded(encoding: str, encoded: bytes) -> None:
    assert decode_content(encoded, encoding) == (BODY, f"{encoding.lower()} decoded")


@pytest.mark.parametrize(("encoding", "compress"), [
    ("gzip", gzip.compress),
    ("br", brotli.compress),
    ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
])
def test_a_body_that_decodes_past_the_limit_is_refused_not_decoded(
        encoding: str, compress: object) -> None:
    bomb = compress(bytes(8 * 1024 * 1024))  # type: ignore[operator]
    assert len(bomb) < 64 * 1024
    raw, note = decode_content(bomb, encoding, limit=1024 * 1024)
    assert raw == bomb
    assert note == f"{encoding}: cannot decode (it decodes to more than 1,048,576 bytes)"


@pytest.mark.parametrize(("encoding", "encoded"), [
    ("gzip", gzip.compress(BODY)),
    ("br", brotli.compress(BODY)),
    ("zstd", zstandard.ZstdCompressor().compress(BODY)),
])
def test_a_cut_body_is_shown_as_received_with_why(encoding: str, encoded: bytes) -> None:
    raw, note = decode_content(encoded[:-6], encoding)
    assert raw == encoded[:-6]
    assert note == f"{encoding}: cannot decode (the compressed data ends early (the body was cut))"


def test_without_the_package_the_note_says_which_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)  # (import brotli fails)
    encoded = brotli.compress(BODY)
    assert decode_content(encoded, "br") == (encoded, "br: install the 'brotli' package to decode")
