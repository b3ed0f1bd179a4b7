"""diff's body detail: long values are cut around where the two sides differ."""

from __future__ import annotations

import hashlib

from proxy.replay.body_diff import LINE_CHARS, body_changes, make_body


def _grpc(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _field(text: bytes) -> bytes:
    n, size = len(text), b""
    while True:
        size += bytes([n & 0x7F | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return b"\x0a" + size + text


def test_two_long_strings_are_shown_around_their_first_difference() -> None:
    """Two 100 KB strings that differ near their end printed 400 KB on 6 lines."""
    a = _grpc(_field(b"x" * 100_000 + b"END-A"))
    b = _grpc(_field(b"x" * 100_000 + b"END-B"))
    headers = (("content-type", "application/grpc"),)
    changes = body_changes("request", make_body(a, len(a), hashlib.sha256(a).hexdigest(),
                                                headers),
                           make_body(b, len(b), hashlib.sha256(b).hexdigest(), headers),
                           request=True)
    assert changes is not None and len(changes) == 1, changes
    [line] = changes
    assert len(line) < 3 * LINE_CHARS, len(line)
    assert "END-A" in line and "END-B" in line  # (where they differ: shown)
    assert "(100,007 characters)" in line
    text_a = b'{"k": "' + b"y" * 5000 + b'1"}'
    text_b = b'{"k": "' + b"y" * 5000 + b'2"}'
    json_headers = (("content-type", "application/json"),)
    changes = body_changes("response",
                           make_body(text_a, len(text_a), hashlib.sha256(text_a).hexdigest(),
                                     json_headers),
                           make_body(text_b, len(text_b), hashlib.sha256(text_b).hexdigest(),
                                     json_headers))
    assert changes is not None and all(len(c) < 3 * LINE_CHARS for c in changes), changes
