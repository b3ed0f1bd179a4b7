"""Protobuf without a schema, on the encoding guide's own examples
(https://protobuf.dev/programming-guides/encoding/) and on what is not protobuf."""

from __future__ import annotations

import gzip
import struct

from proxy.protobuf import decode_raw
from ui.model.body import grpc_messages, render_body


def field(number: int, wire: int, payload: bytes) -> bytes:
    key = number << 3 | wire
    out = bytearray()
    while True:
        out.append((key & 0x7F) | (0x80 if key > 0x7F else 0))
        key >>= 7
        if not key:
            return bytes(out) + payload


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field (lengths below 128 here)."""
    return field(number, 2, bytes([len(payload)]) + payload)


def test_the_encoding_guides_examples() -> None:
    assert decode_raw(bytes.fromhex("089601")) == ["1: 150"]
    assert decode_raw(bytes.fromhex("120774657374696e67")) == ['2: "testing"']
    assert decode_raw(bytes.fromhex("1a03089601")) == ["3 {", "  1: 150", "}"]
    assert decode_raw(b"") == []


def test_every_wire_type_and_the_ambiguous_ones() -> None:
    message = (field(4, 1, struct.pack("<d", 1.5)) + field(5, 5, struct.pack("<f", 1.5))
               + field(6, 0, bytes.fromhex("ffffffffffffffffff01"))  # int64 -1
               + ld(7, b"\xff\x00")  # neither text nor a message
               + ld(8, b"") + ld(9, b'say "hi"\n')
               + ld(10, ld(1, field(2, 0, b"\x01"))))  # nested twice
    assert decode_raw(message) == [
        "4: 0x3ff8000000000000  (fixed64; double 1.5)",
        "5: 0x3fc00000  (fixed32; float 1.5)",
        "6: 18446744073709551615  (int64 -1)",
        "7: bytes [ff 00]",
        '8: ""',
        '9: "say \\"hi\\"\\n"',
        "10 {", "  1 {", "    2: 1", "  }", "}",
    ]


def test_what_is_not_a_message_is_none() -> None:
    assert decode_raw(b"\x08") is None  # a varint cut short
    assert decode_raw(b"\x0f\x00") is None  # wire type 7
    assert decode_raw(b"\x00\x01") is None  # field number 0
    assert decode_raw(b"\x0a\x05hel") is None  # a length past the end
    assert decode_raw(b"\x0b\x0c") is None  # groups are not decoded


def test_grpc_messages_compressed_with_gzip_are_inflated_then_decoded() -> None:
    plain, packed = ld(1, b"hello"), gzip.compress(field(2, 0, b"\x2a"))
    body = b"\x00" + len(plain).to_bytes(4, "big") + plain \
        + b"\x01" + len(packed).to_bytes(4, "big") + packed
    assert [c for c, _ in grpc_messages(body)] == [False, True]
    shown = render_body(body, "application/grpc+proto", None, "gzip")
    assert shown[4] == f"message 2: {len(packed)} bytes (compressed, gzip decoded)"
    assert shown[-1] == "  2: 42"
    unknown = render_body(body, "application/grpc", None, "snappy")
    assert unknown[4].endswith("(compressed, compressed with snappy: shown as received)")
    assert unknown[5].startswith("  00000000  ")  # as received: hex
    json_grpc = render_body(body, "application/grpc+json", None)  # not protobuf: hex
    assert json_grpc[2].startswith("  00000000  ")


def test_protobuf_bodies_and_bytes_that_are_not() -> None:
    assert render_body(field(1, 0, b"\x07"), "application/x-protobuf", None) == [
        "; protobuf, no schema: field number: value (protoc --decode_raw)", "1: 7"]
    lines = render_body(b"\xff\xff", "application/x-protobuf", None)
    assert lines[0] == "; not a well-formed protobuf message: hex"
