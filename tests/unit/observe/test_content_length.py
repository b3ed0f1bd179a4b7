"""RFC 9113 §8.1.1: a message's DATA must add up to its content-length."""

from __future__ import annotations

from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved

C2S, S2C = Direction.C2S, Direction.S2C
GET = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", "/")]
HEAD = [(":method", "HEAD"), *GET[1:]]


def post(length: str) -> list[tuple[str, str]]:
    return [(":method", "POST"), *GET[1:], ("content-length", length)]


def ok(length: str | None, status: str = "200") -> list[tuple[str, str]]:
    return [(":status", status)] + ([] if length is None else [("content-length", length)])


def mismatches(conv, events=None):
    return [f for f in conv.finding_objects(events) if f.code == "content-length-mismatch"]


def test_a_body_that_matches_its_content_length_is_clean(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, post("5")))
    conv.send(C2S, f.data(1, b"ab"))
    conv.send(C2S, f.data(1, b"cde", flags=["END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok("4")))
    conv.send(S2C, f.data(1, b"body", flags=["END_STREAM"]))
    assert conv.findings() == []


def test_a_short_response_body_is_flagged_at_end_stream(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, GET, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok("10")))
    assert mismatches(conv, conv.send(S2C, f.data(1, b"12345"))) == []
    found = mismatches(conv, conv.send(S2C, f.data(1, b"678", flags=["END_STREAM"])))
    assert len(found) == 1
    assert found[0].rfc == "RFC 9113 §8.1.1" and found[0].stream_id == 1
    assert "content-length 10" in found[0].message and "8 bytes in all" in found[0].message


def test_data_past_the_content_length_is_flagged_when_it_goes_past_and_only_once(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, post("3")))
    found = mismatches(conv, conv.send(C2S, f.data(1, b"abcd")))
    assert len(found) == 1 and "4 bytes so far" in found[0].message
    assert mismatches(conv, conv.send(C2S, f.data(1, b"e", flags=["END_STREAM"]))) == []


def test_headers_with_end_stream_and_a_nonzero_content_length_is_flagged(conv):
    f = conv.f
    found = mismatches(conv, conv.send(C2S, f.headers(C2S, 1, post("7"),
                                                      flags=["END_HEADERS", "END_STREAM"])))
    assert len(found) == 1 and "0 bytes in all" in found[0].message


def test_trailers_end_the_body_that_is_checked(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, GET, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok("6")))
    conv.send(S2C, f.data(1, b"abc"))
    found = mismatches(conv, conv.send(S2C, f.headers(S2C, 1, [("grpc-status", "0")],
                                                      flags=["END_HEADERS", "END_STREAM"])))
    assert len(found) == 1 and "3 bytes in all" in found[0].message


def test_head_and_304_responses_declare_a_length_they_do_not_carry(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, HEAD, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok("1000"), flags=["END_HEADERS", "END_STREAM"]))
    conv.send(C2S, f.headers(C2S, 3, GET, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 3, ok("1000", "304"), flags=["END_HEADERS", "END_STREAM"]))
    assert mismatches(conv) == []


def test_informational_responses_do_not_declare_the_final_length(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, GET, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok(None, "103")))
    conv.send(S2C, f.headers(S2C, 1, ok("2")))
    conv.send(S2C, f.data(1, b"hi", flags=["END_STREAM"]))
    assert conv.findings() == []


def test_a_reset_stream_is_not_checked(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, GET, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok("100")))
    conv.send(S2C, f.data(1, b"partial"))
    conv.send(C2S, f.rst(1, 8))
    conv.send(S2C, f.data(1, b"in flight", flags=["END_STREAM"]))
    assert mismatches(conv) == []


def test_padding_does_not_count_and_a_repeated_value_is_one_length(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, GET, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok("4, 4")))
    evs = conv.send(S2C, f.data(1, b"body", flags=["END_STREAM"], pad_length=10))
    assert any(isinstance(e, FrameObserved) for e in evs)
    assert conv.findings() == []


def test_an_unparsable_content_length_is_not_a_length_to_check(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, GET, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, ok("4, 5")))
    conv.send(S2C, f.data(1, b"body!", flags=["END_STREAM"]))
    assert mismatches(conv) == []
