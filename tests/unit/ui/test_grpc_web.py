"""gRPC-Web bodies in the stream view (grpc/doc/PROTOCOL-WEB.md): messages decoded
as protobuf, the trailers frame (flag 0x80) as text, the base64 -text variant."""

from __future__ import annotations

import base64

from ui.model.body import render_body

MESSAGE = b"\x0a\x06hello!"  # field 1: "hello!" (a 13-byte frame: base64 pads it)
TRAILERS = b"grpc-status: 0\r\ngrpc-message: OK\r\n"


def frame(flag: int, body: bytes) -> bytes:
    return bytes([flag]) + len(body).to_bytes(4, "big") + body


def test_binary_grpc_web_shows_the_message_and_the_trailers() -> None:
    lines = render_body(frame(0, MESSAGE) + frame(0x80, TRAILERS),
                        "application/grpc-web+proto", None)
    assert lines[0] == "; gRPC-Web: 2 length-prefixed frame(s)"
    assert "message 1: 8 bytes" in lines
    assert '  1: "hello!"' in lines
    assert lines[-3:] == ["trailers (frame 2):", "  grpc-status: 0", "  grpc-message: OK"]


def test_text_grpc_web_is_base64_even_in_separately_padded_chunks() -> None:
    body = base64.b64encode(frame(0, MESSAGE)) + base64.b64encode(frame(0x80, TRAILERS))
    assert b"=" in body[:-2]  # the first chunk is padded on its own
    lines = render_body(body, "application/grpc-web-text", None)
    assert lines[:2] == ["; gRPC-Web text: base64 decoded",
                         "; gRPC-Web: 2 length-prefixed frame(s)"]
    assert '  1: "hello!"' in lines and "  grpc-status: 0" in lines
