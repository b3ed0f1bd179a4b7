"""WebSocket messages in an RFC 8441 stream, encoded by wsproto (an independent
implementation: masking, fragments, permessage-deflate) and read back by
proxy.websocket."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate

from proxy.websocket import Deflate, WsReader, is_websocket, messages


def peer(kind: ConnectionType, deflate: str | None = None) -> Connection:
    extensions = []
    if deflate is not None:
        ext = PerMessageDeflate()
        ext.finalize(deflate)  # as if the handshake had negotiated it
        extensions.append(ext)
    return Connection(kind, extensions=extensions)


def test_both_directions_in_time_order_with_masking_undone() -> None:
    client, server = peer(ConnectionType.CLIENT), peer(ConnectionType.SERVER)
    frames = [(0, 1.0, client.send(TextMessage(data="hello h2scope"))),
              (1, 1.5, server.send(TextMessage(data="echo: hello h2scope"))),
              (0, 2.0, client.send(BytesMessage(data=bytes(range(40))))),
              (0, 2.5, client.send(Ping(payload=b"are you there"))),
              (0, 3.0, client.send(CloseConnection(code=1000, reason="bye")))]
    got, notes = messages(frames)
    assert notes == []
    assert [(m.direction, m.t, m.kind) for m in got] == [
        (0, 1.0, "text"), (1, 1.5, "text"), (0, 2.0, "binary"), (0, 2.5, "ping"),
        (0, 3.0, "close")]
    assert got[0].payload == b"hello h2scope" and got[0].problems == ()
    assert got[1].summary() == "text 'echo: hello h2scope'"
    assert got[2].payload == bytes(range(40))
    assert got[3].payload == b"are you there"
    assert got[4].close_status() == (1000, "bye")
    assert got[4].summary() == "close 1000 normal closure 'bye'"


def test_fragments_are_joined_and_a_control_frame_may_come_between() -> None:
    server = peer(ConnectionType.SERVER)
    data = server.send(BytesMessage(data=b"abc", message_finished=False))
    data += server.send(Ping(payload=b"p"))
    data += server.send(BytesMessage(data=b"def", message_finished=True))
    got, _ = messages([(1, 0.0, data)])
    assert [(m.kind, m.payload, m.frames) for m in got] == [("ping", b"p", 1),
                                                           ("binary", b"abcdef", 2)]
    assert "2 fragments" in got[1].summary()


def test_permessage_deflate_with_and_without_context_takeover() -> None:
    for offer, deflate in (("permessage-deflate", Deflate()),
                           ("permessage-deflate; client_no_context_takeover",
                            Deflate(client_no_context_takeover=True))):
        client = peer(ConnectionType.CLIENT, offer)
        text = "the same words again and again " * 4
        frames = [(0, float(i), client.send(TextMessage(data=text))) for i in range(3)]
        got, notes = messages(frames, deflate)
        assert notes == []
        assert [m.payload.decode() for m in got] == [text] * 3
        assert all(m.compressed and m.wire_size < len(text) for m in got)
        # With context takeover the later messages refer back to the first one.
        later = got[1].wire_size < got[0].wire_size
        assert later is (not deflate.client_no_context_takeover)


def test_the_accepted_extension_is_read_from_the_response_header() -> None:
    assert Deflate.from_header(None) is None
    assert Deflate.from_header("x-other") is None
    assert Deflate.from_header("permessage-deflate") == Deflate()
    assert Deflate.from_header("permessage-deflate; server_no_context_takeover; "
                               "client_max_window_bits=15") == Deflate(True, False)
    assert is_websocket([(":method", "CONNECT"), (":protocol", "websocket"),
                         (":scheme", "https"), (":path", "/chat"), (":authority", "a")])
    assert not is_websocket([(":method", "CONNECT"), (":authority", "a:443")])


def test_any_split_of_the_data_frames_reads_the_same() -> None:
    client = peer(ConnectionType.CLIENT, "permessage-deflate")
    wire = b"".join(client.send(TextMessage(data=f"message {i} " * 30)) for i in range(5))
    whole, _ = messages([(0, 0.0, wire)], Deflate())
    rng = random.Random(7)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(wire)), 6))
        pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        split, notes = messages([(0, float(i), p) for i, p in enumerate(pieces)], Deflate())
        assert notes == []
        assert [m.payload for m in split] == [m.payload for m in whole]


def test_what_rfc_6455_forbids_is_named() -> None:
    server = peer(ConnectionType.SERVER)
    unmasked = server.send(TextMessage(data="hi"))  # as a client would send it: unmasked
    client = peer(ConnectionType.CLIENT)
    masked = client.send(TextMessage(data="hi"))
    got, _ = messages([(0, 0.0, unmasked), (1, 0.0, masked)])
    assert got[0].problems == ("a client frame must be masked (RFC 6455 §5.1)",)
    assert got[1].problems == ("a server frame must not be masked (RFC 6455 §5.1)",)
    rsv = bytes([0x80 | 0x40 | 0x1, 2]) + b"hi"  # RSV1 without permessage-deflate
    bad_utf8 = bytes([0x81, 2]) + b"\xff\xfe"
    big_ping = bytes([0x89, 126]) + (200).to_bytes(2, "big") + b"p" * 200
    got, _ = messages([(1, 0.0, rsv + bad_utf8 + big_ping)])
    assert "reserved bits 100 set" in got[0].problems[0]
    assert got[1].problems == ("a text message that is not UTF-8 (RFC 6455 §8.1)",)
    assert "control frame must be one frame of at most 125 bytes" in got[2].problems[0]


def test_lost_framing_and_a_cut_off_frame_are_reported_not_raised() -> None:
    _, notes = messages([(1, 0.0, bytes([0x82, 127]) + b"\xff" * 8 + b"rest")])
    assert notes == ["the server's WebSocket framing was lost: a 64-bit payload length with "
                     "its top bit set (RFC 6455 §5.2); 14 bytes not read"]
    _, notes = messages([(0, 0.0, bytes([0x81, 0x85]) + b"mask" + b"ab")])
    assert notes == ["the client's last 8 bytes are an incomplete WebSocket frame"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, deflate: bool) -> None:
    reader = WsReader(data[0] & 1 if data else 0, Deflate() if deflate else None)
    for msg in reader.feed(data, 0.0):
        msg.summary()
    assert reader.end() >= 0


def test_a_frame_larger_than_what_is_kept_is_counted_without_buffering_it() -> None:
    from proxy.websocket import MAX_MESSAGE

    server = peer(ConnectionType.SERVER)
    big = server.send(BytesMessage(data=b"z" * (MAX_MESSAGE + 1000)))
    after = server.send(TextMessage(data="still in step"))
    reader = WsReader(1)
    got = []
    wire = big + after
    for i in range(0, len(wire), 1 << 20):  # 1 MiB DATA payloads, as a relay would see
        got += reader.feed(wire[i:i + (1 << 20)], float(i))
        assert len(reader._buf) < 1 << 20  # never the whole frame
    assert [(m.kind, m.payload, m.wire_size) for m in got] == [
        ("binary", b"", MAX_MESSAGE + 1000), ("text", b"still in step", 13)]
    assert "its payload is counted, not shown" in got[0].problems[0]
    assert got[0].summary() == f"binary {MAX_MESSAGE + 1000:,} bytes (0 kept)"  # (not "0 bytes")
    assert reader.end() == 0


def test_a_close_frame_rfc_6455_forbids_is_named() -> None:
    def close(body: bytes) -> bytes:
        return bytes([0x88, len(body)]) + body

    got, _ = messages([(1, 0.0, close(b"\x03") + close(b"\x03\xed")
                        + close(b"\x03\xe8\xff") + close(b"\x03\xe8bye"))])
    assert [m.problems for m in got] == [
        ("a close frame's body is a 2-byte status code and a reason, not 1 byte "
         "(RFC 6455 §5.5.1)",),
        ("close status 1005 must not be sent in a close frame (RFC 6455 §7.4)",),
        ("a close reason that is not UTF-8 (RFC 6455 §5.5.1)",),
        ()]


def test_the_log_tracker_holds_little_per_stream() -> None:
    """The text logs follow WebSockets live: a 1 MiB message is counted, not held."""
    from proxy.observe.enums import Direction
    from proxy.observe.events import FrameObserved
    from proxy.observe.frames import parse_frame
    from proxy.websocket import WsTracker

    class Block:
        def __init__(self, headers: list[tuple[str, str]]) -> None:
            self.headers = tuple(headers)

    def event(direction: Direction, raw: bytes, block: Block | None = None) -> FrameObserved:
        return FrameObserved(t=0.0, direction=direction, seq=0, frame=parse_frame(raw),
                             block=block)  # type: ignore[arg-type]

    def frame(ftype: int, flags: int, payload: bytes) -> bytes:
        return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + (1).to_bytes(
            4, "big") + payload

    tracker = WsTracker()
    connect = Block([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                     (":path", "/"), (":authority", "a")])
    tracker.feed(1, event(Direction.C2S, frame(1, 4, b""), connect))
    tracker.feed(1, event(Direction.S2C, frame(1, 4, b""), Block([(":status", "200")])))
    server = peer(ConnectionType.SERVER)
    wire = server.send(BytesMessage(data=b"q" * (1 << 20))) + server.send(
        TextMessage(data="after"))
    lines = []
    for i in range(0, len(wire), 16384):
        lines += tracker.lines(1, event(Direction.S2C, frame(0, 0, wire[i:i + 16384])), "")
        reader = tracker.streams[(1, 1)][1]
        assert len(reader._buf) <= 16384 + 14
    assert lines[0] == "websocket ← binary 1,048,576 bytes (0 kept)"
    assert "at most 65,536 are kept" in lines[1]
    assert lines[2] == "websocket ← text 'after'"


def test_the_log_tracker_leaves_rule_breaking_to_the_findings_and_skips_refusals() -> None:
    """Under a DATA frame the text log names the messages; what they break of RFC
    6455 is the observer's findings on that frame, printed once, not again here.
    A WebSocket refused (not 2xx) has an HTTP body, not WebSocket frames."""
    from proxy.observe.enums import Direction
    from proxy.observe.events import FrameObserved
    from proxy.observe.frames import parse_frame
    from proxy.websocket import UpgradedWebSockets, WsTracker

    class Block:
        def __init__(self, headers: list[tuple[str, str]]) -> None:
            self.headers = tuple(headers)

    def event(direction: Direction, sid: int, raw: bytes,
              block: Block | None = None) -> FrameObserved:
        head = len(raw).to_bytes(3, "big") + bytes([1 if block else 0, 4 if block else 0])
        frame = parse_frame(head + sid.to_bytes(4, "big") + raw)
        return FrameObserved(t=0.0, direction=direction, seq=0, frame=frame,
                             block=block)  # type: ignore[arg-type]

    connect = Block([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                     (":path", "/"), (":authority", "a")])
    unmasked = peer(ConnectionType.SERVER).send(TextMessage(data="hi"))
    tracker = WsTracker()
    for sid, status in ((1, "200"), (3, "403")):
        tracker.feed(1, event(Direction.C2S, sid, b"", connect))
        tracker.feed(1, event(Direction.S2C, sid, b"", Block([(":status", status)])))
    assert tracker.lines(1, event(Direction.C2S, 1, unmasked), "") == ["websocket → text 'hi'"]
    assert tracker.lines(1, event(Direction.S2C, 3, b"\x81\x02hi"), "") == []
    # Over HTTP/1.1 there are no findings: the log names the problem itself.
    upgraded = UpgradedWebSockets()
    upgraded.upgraded(7, "HTTP/1.1 101 Switching Protocols", [("Upgrade", "websocket")])
    assert upgraded.lines(7, 0, unmasked, 0.0, "") == [
        " websocket text 'hi'", "   ! a client frame must be masked (RFC 6455 §5.1)"]
