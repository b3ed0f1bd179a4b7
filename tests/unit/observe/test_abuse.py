"""Patterns of the HTTP/2 denial-of-service attacks (RFC 9113 §10.5), and
GOAWAY's last stream id, which may only go down (§6.8)."""

from __future__ import annotations

import struct

from proxy.observe.connection import RAPID_RESET_COUNT
from proxy.observe.enums import Direction
from proxy.observe.header_blocks import CONTINUATION_FLOOD
from proxy.observe.sides import MAX_BLOCK_BYTES

C2S, S2C = Direction.C2S, Direction.S2C
GET = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", "/")]


def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def goaway(last: int) -> bytes:
    return frame(7, 0, 0, struct.pack(">II", last, 0))


def test_rapid_reset_is_flagged_once_when_the_client_cancels_many_streams_fast(make_conv):
    conv = make_conv()
    f = conv.f
    for i in range(2 * RAPID_RESET_COUNT):
        sid = 1 + 2 * i
        conv.send(C2S, f.headers(C2S, sid, GET, flags=["END_HEADERS", "END_STREAM"]),
                  dt=0.0001)
        conv.send(C2S, f.rst(sid), dt=0.0001)
    found = [x for e in conv.frames() for x in e.findings if x.code == "rapid-reset"]
    assert len(found) == 1
    assert found[0].stream_id == 2 * RAPID_RESET_COUNT - 1 and "CVE-2023-44487" in found[0].message


def test_cancelling_slowly_or_after_the_response_is_no_attack(make_conv):
    conv = make_conv()
    f = conv.f
    for i in range(RAPID_RESET_COUNT + 10):
        sid = 1 + 2 * i
        conv.send(C2S, f.headers(C2S, sid, GET, flags=["END_HEADERS", "END_STREAM"]), dt=0.02)
        conv.send(C2S, f.rst(sid), dt=0.0001)  # 100 cancels take 2 s: a busy page, not a flood
    fast = make_conv()
    for i in range(RAPID_RESET_COUNT + 10):
        sid = 1 + 2 * i
        fast.send(C2S, fast.f.headers(C2S, sid, GET), dt=0.0001)
        fast.send(S2C, fast.f.headers(S2C, sid, [(":status", "200")]), dt=0.0001)
        fast.send(C2S, fast.f.rst(sid), dt=0.0001)  # after the response: a download cancelled
    assert "rapid-reset" not in conv.findings() + fast.findings()


def test_a_header_block_in_too_many_continuations_is_flagged(conv):
    block = conv.f.block(C2S, GET)
    conv.send(C2S, frame(1, 0x1, 1, block))  # HEADERS without END_HEADERS
    for _ in range(CONTINUATION_FLOOD + 5):
        conv.send(C2S, frame(9, 0, 1, b""))
    evs = conv.send(C2S, frame(9, 0x4, 1, b""))
    assert conv.findings().count("continuation-flood") == 1
    assert conv.frames(evs)[0].block is not None  # still decoded: the block was whole


def test_a_header_block_that_never_ends_is_not_buffered_without_bound(conv):
    conv.send(C2S, frame(1, 0x1, 1, b"\x82"))
    chunk = b"\x00" * 16_384
    for _ in range(MAX_BLOCK_BYTES // len(chunk) + 1):
        conv.send(C2S, frame(9, 0, 1, chunk))
    pending = conv.obs.sides[C2S].block
    assert pending is not None and pending.fragments == []
    assert conv.findings().count("header-block-too-large") == 1
    evs = conv.send(C2S, frame(9, 0x4, 1, b""))
    assert conv.frames(evs)[0].block is None  # not decodable, and said so


def test_goaway_may_lower_its_last_stream_id_but_not_raise_it(conv):
    assert conv.findings(conv.send(S2C, goaway(7))) == []
    assert conv.findings(conv.send(S2C, goaway(3))) == []
    assert conv.findings(conv.send(S2C, goaway(5))) == ["goaway-last-stream-id-increased"]


def _flood_codes(conv) -> list[tuple[str, str]]:
    return [(x.code, x.message) for e in conv.frames() for x in e.findings
            if x.code.endswith("-flood") and x.code != "continuation-flood"]


def test_ping_settings_and_empty_data_floods_are_flagged_once_each(make_conv):
    from proxy.observe.floods import FLOOD_COUNT

    conv = make_conv()
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, GET, flags=["END_HEADERS"]))
    for i in range(FLOOD_COUNT + 20):
        conv.send(C2S, frame(6, 0, 0, struct.pack(">Q", i)), dt=0.001)  # PING
        conv.send(C2S, frame(4, 0, 0, b""), dt=0.001)  # SETTINGS (empty)
        conv.send(C2S, frame(0, 0, 1, b""), dt=0.001)  # DATA, no data, no END_STREAM
    found = _flood_codes(conv)
    assert sorted(code for code, _ in found) == ["empty-frames-flood", "ping-flood",
                                                 "settings-flood"]
    messages = dict(found)
    assert "CVE-2019-9512" in messages["ping-flood"]
    assert "CVE-2019-9515" in messages["settings-flood"]
    assert "CVE-2019-9518" in messages["empty-frames-flood"]
    assert messages["ping-flood"].startswith(f"the client sent {FLOOD_COUNT} PING frames")


def test_ordinary_pings_settings_and_empty_end_stream_data_are_no_flood(make_conv):
    from proxy.observe.floods import FLOOD_COUNT

    conv = make_conv()
    f = conv.f
    for i in range(FLOOD_COUNT + 20):
        sid = 1 + 2 * i
        conv.send(C2S, frame(6, 0, 0, struct.pack(">Q", i)), dt=0.02)  # 50 per second
        conv.send(C2S, f.headers(C2S, sid, GET, flags=["END_HEADERS"]), dt=0.0001)
        conv.send(C2S, frame(0, 1, sid, b""), dt=0.0001)  # empty, but it ends the request
    conv.send(C2S, frame(0, 0, 1, b""))  # one empty DATA is nothing either
    assert _flood_codes(conv) == []
