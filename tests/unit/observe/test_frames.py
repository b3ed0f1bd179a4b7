"""Frame payload decoding: byte-exact against hyperframe-built frames."""

from __future__ import annotations

import struct

import pytest
from hyperframe import frame as hf

from proxy.observe.enums import flag_names, type_name
from proxy.observe.frames import (
    AltSvcFrame,
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    OriginFrame,
    PingFrame,
    PriorityFrame,
    PriorityUpdateFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    UnknownFrame,
    WindowUpdateFrame,
    parse_frame,
)


def raw_frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def test_data_frame_keeps_payload_and_flags():
    raw = hf.DataFrame(3, data=b"hello", flags=["END_STREAM"]).serialize()
    f = parse_frame(raw)
    assert isinstance(f, DataFrame)
    assert (f.stream_id, f.length, f.data, f.end_stream, f.pad_length) == (3, 5, b"hello", True,
                                                                           None)
    assert f.raw == raw and f.flag_names == ("END_STREAM",)


def test_padded_data_frame_separates_padding():
    fr = hf.DataFrame(1, data=b"abc", flags=["PADDED"])
    fr.pad_length = 4
    f = parse_frame(fr.serialize())
    assert isinstance(f, DataFrame)
    assert (f.length, f.pad_length, f.data_length, f.data) == (8, 4, 3, b"abc")


def test_padding_not_shorter_than_payload_is_malformed():
    f = parse_frame(raw_frame(0, 0x8, 1, bytes([5]) + b"ab"))
    assert f.malformed and "Pad Length 5" in f.malformed


def test_headers_with_priority_and_padding():
    fr = hf.HeadersFrame(5, data=b"\x82\x84", flags=["END_HEADERS", "PRIORITY", "PADDED"])
    fr.pad_length = 2
    fr.depends_on, fr.stream_weight, fr.exclusive = 3, 199, True
    f = parse_frame(fr.serialize())
    assert isinstance(f, HeadersFrame)
    assert f.fragment == b"\x82\x84" and f.pad_length == 2
    assert f.priority is not None
    assert (f.priority.depends_on, f.priority.weight, f.priority.exclusive) == (3, 200, True)
    assert f.end_headers and not f.end_stream


def test_headers_priority_flag_without_room_is_malformed():
    f = parse_frame(raw_frame(1, 0x24, 1, b"\x00\x00"))
    assert type(f) is Frame and "PRIORITY flag" in (f.malformed or "")


@pytest.mark.parametrize("length", [4, 6])
def test_priority_frame_must_be_five_bytes(length):
    f = parse_frame(raw_frame(2, 0, 1, b"\x00" * length))
    assert type(f) is Frame and "must be 5" in (f.malformed or "")


def test_priority_frame_fields():
    fr = hf.PriorityFrame(7, depends_on=5, stream_weight=15, exclusive=False)
    f = parse_frame(fr.serialize())
    assert isinstance(f, PriorityFrame)
    assert (f.priority.depends_on, f.priority.weight, f.priority.exclusive) == (5, 16, False)


def test_rst_stream_error_code_named():
    f = parse_frame(hf.RstStreamFrame(1, error_code=8).serialize())
    assert isinstance(f, RstStreamFrame) and f.error_name == "CANCEL"
    f2 = parse_frame(hf.RstStreamFrame(1, error_code=0xBEEF).serialize())
    assert isinstance(f2, RstStreamFrame) and f2.error_name == "0xbeef (unregistered)"


def test_settings_keeps_order_repeats_and_unknown_ids():
    payload = struct.pack(">HIHIHI", 4, 1000, 0x1A1A, 7, 4, 2000)
    f = parse_frame(raw_frame(4, 0, 0, payload))
    assert isinstance(f, SettingsFrame)
    assert f.settings == ((4, 1000), (0x1A1A, 7), (4, 2000))
    assert f.named()[1] == ("UNKNOWN_SETTING(0x1a1a)", 7)


def test_settings_length_not_multiple_of_six():
    f = parse_frame(raw_frame(4, 0, 0, b"\x00" * 7))
    assert "multiple of 6" in (f.malformed or "")


def test_push_promise_fields():
    fr = hf.PushPromiseFrame(1, promised_stream_id=2, data=b"\x82", flags=["END_HEADERS"])
    f = parse_frame(fr.serialize())
    assert isinstance(f, PushPromiseFrame)
    assert (f.promised_stream_id, f.fragment, f.end_headers) == (2, b"\x82", True)


def test_ping_and_ack():
    f = parse_frame(hf.PingFrame(0, opaque_data=b"abcdefgh", flags=["ACK"]).serialize())
    assert isinstance(f, PingFrame) and f.ack and f.opaque == b"abcdefgh"
    assert "must be 8" in (parse_frame(raw_frame(6, 0, 0, b"1234567")).malformed or "")


def test_goaway_with_debug_data():
    fr = hf.GoAwayFrame(0, last_stream_id=9, error_code=11, additional_data=b"calm down")
    f = parse_frame(fr.serialize())
    assert isinstance(f, GoAwayFrame)
    assert (f.last_stream_id, f.error_name, f.debug_data) == (9, "ENHANCE_YOUR_CALM", b"calm down")


def test_window_update_ignores_reserved_bit_of_increment():
    f = parse_frame(raw_frame(8, 0, 0, struct.pack(">I", 0x8000_0010)))
    assert isinstance(f, WindowUpdateFrame) and f.increment == 16


def test_continuation_fragment():
    f = parse_frame(hf.ContinuationFrame(1, data=b"\x84", flags=["END_HEADERS"]).serialize())
    assert isinstance(f, ContinuationFrame) and f.fragment == b"\x84" and f.end_headers


def test_altsvc_origin_and_value():
    fr = hf.AltSvcFrame(0, origin=b"https://a.example", field=b'h3=":443"')
    f = parse_frame(fr.serialize())
    assert isinstance(f, AltSvcFrame)
    assert (f.origin, f.field_value) == (b"https://a.example", b'h3=":443"')


def test_origin_frame_entries():
    payload = b"".join(struct.pack(">H", len(o)) + o for o in (b"https://a", b"https://b"))
    f = parse_frame(raw_frame(0xC, 0, 0, payload))
    assert isinstance(f, OriginFrame) and f.origins == (b"https://a", b"https://b")
    assert "runs past" in (parse_frame(raw_frame(0xC, 0, 0, b"\x00\x09ab")).malformed or "")


def test_priority_update_fields():
    f = parse_frame(raw_frame(0x10, 0, 0, struct.pack(">I", 5) + b"u=1, i"))
    assert isinstance(f, PriorityUpdateFrame)
    assert (f.prioritized_stream_id, f.field_value) == (5, b"u=1, i")


def test_unknown_and_grease_types_kept_raw():
    f = parse_frame(raw_frame(0xBB, 0x3, 0, b"grease"))
    assert isinstance(f, UnknownFrame) and f.payload == b"grease"
    assert f.type_name == "UNKNOWN(0xbb)" and f.flag_names == ("0x03",)


def test_reserved_stream_bit_is_reported_not_lost():
    f = parse_frame(raw_frame(0, 0, 0x8000_0001, b""))
    assert f.reserved and f.stream_id == 1


def test_names_by_rfc():
    assert type_name(8) == "WINDOW_UPDATE"
    assert flag_names(1, 0x25) == ("END_STREAM", "END_HEADERS", "PRIORITY")
