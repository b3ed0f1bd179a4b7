"""RFC 6455 violations inside an RFC 8441 WebSocket stream are findings on the DATA
frame that completes the bad WebSocket frame. The WebSocket frames come from
wsproto (an independent implementation), sent by the wrong role or edited to
break one rule."""

from __future__ import annotations

from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate

from proxy.observe.findings import Severity
from tests.unit.observe.conftest import C2S, S2C, Conversation

WS_CONNECT = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
              (":authority", "example.com"), (":path", "/chat"),
              ("sec-websocket-version", "13")]


def client() -> Connection:
    return Connection(ConnectionType.CLIENT)


def server(deflate: str | None = None) -> Connection:
    extensions = []
    if deflate is not None:
        ext = PerMessageDeflate()
        ext.finalize(deflate)
        extensions.append(ext)
    return Connection(ConnectionType.SERVER, extensions=extensions)


def websocket(status: str = "200", extensions: str | None = None) -> Conversation:
    """A conversation whose stream 1 is a WebSocket over HTTP/2, answered ``status``."""
    conv = Conversation(settings=False)
    conv.send(C2S, conv.f.settings())
    conv.send(S2C, conv.f.settings(enable_connect_protocol=1))
    conv.send(C2S, conv.f.settings(ack=True))
    conv.send(S2C, conv.f.settings(ack=True))
    conv.send(C2S, conv.f.headers(C2S, 1, WS_CONNECT))
    response = [(":status", status)]
    if extensions is not None:
        response.append(("sec-websocket-extensions", extensions))
    conv.send(S2C, conv.f.headers(S2C, 1, response))
    return conv


def test_well_formed_websocket_traffic_both_ways_raises_nothing() -> None:
    conv = websocket(extensions="permessage-deflate")
    c, s = client(), server()
    deflating = server("permessage-deflate")
    for direction, data in ((C2S, c.send(TextMessage(data="hello"))),
                            (S2C, s.send(TextMessage(data="é" * 40, message_finished=False))),
                            (S2C, s.send(TextMessage(data="ü", message_finished=True))),
                            (S2C, deflating.send(TextMessage(data="squeezed " * 20))),
                            (C2S, c.send(Ping(payload=b"?"))),
                            (C2S, c.send(CloseConnection(code=1000, reason="bye")))):
        conv.send(direction, conv.f.data(1, data))
    assert conv.findings() == []


def test_an_unmasked_client_frame_is_an_error_on_its_data_frame() -> None:
    conv = websocket()
    unmasked = server().send(TextMessage(data="hi"))  # the server's encoding: no mask
    new = conv.send(C2S, conv.f.data(1, unmasked))
    (found,) = conv.finding_objects(new)
    assert (found.code, found.severity, found.rfc, found.stream_id) == (
        "websocket-unmasked", Severity.ERROR, "RFC 6455 §5.1", 1)
    assert found.message == ("WebSocket on stream 1, from the client: a client frame must be "
                             "masked; the server must fail the WebSocket connection")
    assert found.seq == conv.frames(new)[0].seq


def test_a_masked_server_frame_is_an_error_and_direction_decides() -> None:
    conv = websocket()
    masked = client().send(BytesMessage(data=b"\x01\x02"))
    assert conv.findings(conv.send(C2S, conv.f.data(1, masked))) == []  # (the client's own)
    assert conv.findings(conv.send(S2C, conv.f.data(1, masked))) == [
        "websocket-masked-by-server"]


def test_the_finding_is_on_the_data_frame_that_completes_the_websocket_frame() -> None:
    conv = websocket()
    unmasked = server().send(BytesMessage(data=b"x" * 300))
    first = conv.send(C2S, conv.f.data(1, unmasked[:100]))
    second = conv.send(C2S, conv.f.data(1, unmasked[100:]))
    assert conv.findings(first) == []
    assert conv.findings(second) == ["websocket-unmasked"]


def test_reserved_bits_utf8_control_frames_close_codes_and_fragments_are_named() -> None:
    conv = websocket()
    s = server()
    rsv = bytearray(s.send(TextMessage(data="hi")))
    rsv[0] |= 0x20  # RSV2, and no extension defines it
    not_utf8 = bytes([0x81, 2]) + b"\xff\xfe"
    big_ping = bytes([0x89, 126]) + (200).to_bytes(2, "big") + b"p" * 200
    bad_close = s.send(CloseConnection(code=1000))[:2] + (1005).to_bytes(2, "big")
    bad_close = bytes([bad_close[0], 2]) + bad_close[2:]
    stray_continuation = bytes([0x80, 1]) + b"z"
    got = []
    for data in (bytes(rsv), not_utf8, big_ping, stray_continuation, bad_close):
        got.append(conv.findings(conv.send(S2C, conv.f.data(1, data))))
    assert got == [["websocket-reserved-bits"], ["websocket-invalid-utf8"],
                   ["websocket-control-frame"], ["websocket-frame-invalid"],
                   ["websocket-close-code"]]
    rfcs = [f.rfc for f in conv.finding_objects()]
    assert rfcs == ["RFC 6455 §5.2", "RFC 6455 §8.1", "RFC 6455 §5.5", "RFC 6455 §5.4",
                    "RFC 6455 §7.4"]


def test_text_split_inside_a_character_across_fragments_is_utf8() -> None:
    conv = websocket()
    text = "é".encode()
    first = bytes([0x01, 1]) + text[:1]  # text, not final
    last = bytes([0x80, 1]) + text[1:]  # continuation, final
    conv.send(S2C, conv.f.data(1, first))
    assert conv.findings(conv.send(S2C, conv.f.data(1, last))) == []


def test_a_plain_connect_tunnel_and_a_refused_websocket_are_not_read() -> None:
    refused = websocket(status="403")
    refused.send(S2C, refused.f.data(1, b"\x00\x00forbidden"))
    assert refused.findings() == []
    tunnel = Conversation()
    tunnel.send(C2S, tunnel.f.headers(C2S, 1, [(":method", "CONNECT"),
                                               (":authority", "example.com:443")]))
    tunnel.send(S2C, tunnel.f.headers(S2C, 1, [(":status", "200")]))
    tunnel.send(C2S, tunnel.f.data(1, b"\x16\x03\x01 not a websocket"))
    assert tunnel.findings() == []


def test_a_payload_the_capture_cut_stops_the_reading_without_findings() -> None:
    conv = websocket()
    whole = server().send(TextMessage(data="a" * 50))  # (unmasked: would be flagged)
    cut = conv.f.data(1, whole[:10] + bytes(len(whole) - 10))
    assert conv.obs.feed(C2S, cut, 1.0, cut=True)[0].findings == ()  # type: ignore[attr-defined]
    assert conv.findings(conv.send(C2S, conv.f.data(1, whole))) == []


def test_a_closed_websocket_stream_lets_go_of_its_readers() -> None:
    conv = websocket()
    stream = conv.obs.stream(1)
    assert stream is not None and stream.websocket is not None
    conv.send(C2S, conv.f.rst(1))
    assert stream.websocket is None
