"""HTTP message rules over frames: a response starts with HEADERS (RFC 9113 §8.1),
some responses carry no content (RFC 9110 §6.4.1) and no content-length (§8.6),
and Host agrees with :authority (RFC 9113 §8.3.1)."""

from __future__ import annotations

from hyperframe import frame as hf

from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import ConnectionFindingRaised
from tests.unit.observe.conftest import REQUEST, Conversation

C2S, S2C = Direction.C2S, Direction.S2C
HEAD = [(":method", "HEAD"), *REQUEST[1:]]
END = ["END_HEADERS", "END_STREAM"]


def codes(conv: Conversation, events: list | None = None) -> list[str]:
    return [c for c in conv.findings(events) if c != "unknown-setting"]


def test_an_ordinary_exchange_raises_none_of_these(conv: Conversation) -> None:
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQUEST, flags=END))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "103"), ("link", "</a.css>; rel=preload")]))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "200"), ("content-length", "3")]))
    conv.send(S2C, f.data(1, b"abc", flags=["END_STREAM"]))
    conv.send(C2S, f.headers(C2S, 3, HEAD, flags=END))
    conv.send(S2C, f.headers(S2C, 3, [(":status", "200"), ("content-length", "1000")]))
    conv.send(S2C, f.data(3, b"", flags=["END_STREAM"]))  # an empty DATA is no content
    conv.send(C2S, f.headers(C2S, 5, REQUEST, flags=END))
    conv.send(S2C, f.headers(S2C, 5, [(":status", "304"), ("content-length", "512")], flags=END))
    assert codes(conv) == []
    assert sum(1 for e in conv.frames() if e.block is not None) == 7  # every block decoded


def test_data_before_the_response_headers_is_flagged_once(conv: Conversation) -> None:
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQUEST, flags=END))
    first = conv.finding_objects(conv.send(S2C, f.data(1, b"body")))
    assert [x.code for x in first] == ["data-before-headers"]
    assert first[0].rfc == "RFC 9113 §8.1" and first[0].stream_id == 1
    assert "no HEADERS so far" in first[0].message
    assert codes(conv, conv.send(S2C, f.data(1, b"more"))) == []
    # The response's HEADERS, late, still counts its body from then on.
    assert codes(conv, conv.send(S2C, f.headers(S2C, 1, [(":status", "200")], flags=END))) == []


def test_data_after_only_an_informational_response_is_flagged(conv: Conversation) -> None:
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQUEST, flags=END))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "100")]))
    found = conv.finding_objects(conv.send(S2C, f.data(1, b"x", flags=["END_STREAM"])))
    assert [x.code for x in found] == ["data-before-headers"]
    assert "informational (1xx)" in found[0].message


def test_data_on_a_pushed_stream_before_its_headers_is_one_state_error(
        conv: Conversation) -> None:
    """A reserved stream takes only HEADERS (RFC 9113 §5.1): the state check says so,
    and only it."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQUEST, flags=END))
    push = hf.PushPromiseFrame(1, promised_stream_id=2, flags=["END_HEADERS"])
    push.data = f.block(S2C, [*REQUEST[:3], (":path", "/style.css")])
    conv.send(S2C, push.serialize())
    conv.send(S2C, f.headers(S2C, 1, [(":status", "200")], flags=END))
    assert codes(conv) == []
    found = conv.finding_objects(conv.send(S2C, f.data(2, b"body{}")))
    assert [x.code for x in found] == ["frame-on-closed-stream"]
    assert "reserved" in found[0].message


def test_no_data_before_headers_claim_when_the_servers_hpack_is_lost(
        conv: Conversation) -> None:
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQUEST, flags=END))
    broken = hf.HeadersFrame(1, flags=["END_HEADERS"])
    broken.data = b"\xbf"  # indexed field 63: beyond the empty dynamic table
    assert "hpack-error" in codes(conv, conv.send(S2C, broken.serialize()))
    assert codes(conv, conv.send(S2C, f.data(1, b"body", flags=["END_STREAM"]))) == []


def test_an_excerpt_does_not_claim_its_responses_headers_are_missing() -> None:
    obs = ConnectionObserver(preface="none", partial=True)
    data = hf.DataFrame(7, data=b"middle of a body").serialize()
    events = obs.feed(S2C, data, 0.0)
    assert [type(e).__name__ for e in events] == ["FrameObserved"]
    assert [x.code for e in events for x in getattr(e, "findings", ())] == []


def test_content_in_a_response_to_head_is_flagged(conv: Conversation) -> None:
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, HEAD, flags=END))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "200"), ("content-length", "5")]))
    found = conv.finding_objects(conv.send(S2C, f.data(1, b"hello", flags=["END_STREAM"])))
    assert [x.code for x in found] == ["content-not-allowed"]
    assert found[0].rfc == "RFC 9110 §6.4.1"
    assert "5 bytes of content in the response to a HEAD request" in found[0].message


def test_a_204_with_content_length_and_content_is_flagged_twice(conv: Conversation) -> None:
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQUEST, flags=END))
    head = conv.finding_objects(conv.send(
        S2C, f.headers(S2C, 1, [(":status", "204"), ("content-length", "4")])))
    assert [(x.code, x.severity.name, x.rfc) for x in head] == [
        ("content-length-forbidden", "WARNING", "RFC 9110 §8.6")]
    body = conv.finding_objects(conv.send(S2C, f.data(1, b"oops")))
    assert [x.code for x in body] == ["content-not-allowed"] and "a 204 response" in body[0].message
    assert codes(conv, conv.send(S2C, f.data(1, b"!", flags=["END_STREAM"]))) == []  # once


def test_content_length_in_an_informational_response_is_flagged(conv: Conversation) -> None:
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQUEST, flags=END))
    found = codes(conv, conv.send(S2C, f.headers(S2C, 1, [(":status", "100"),
                                                          ("content-length", "0")])))
    assert found == ["content-length-forbidden"]


def test_content_length_in_a_2xx_to_connect_is_flagged_and_no_body_length(
        conv: Conversation) -> None:
    """RFC 9110 §8.6 forbids it; the tunnel's bytes were also measured against it
    ('0 of 0 bytes' unfinished), and its DATA would have been 'more than declared'."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, [(":method", "CONNECT"), (":authority", "example.com:443")]))
    found = conv.finding_objects(conv.send(S2C, f.headers(S2C, 1, [(":status", "200"),
                                                                   ("content-length", "0")])))
    assert [(x.code, x.rfc) for x in found] == [("content-length-forbidden", "RFC 9110 §8.6")]
    assert "a 2xx response to CONNECT" in found[0].message
    assert codes(conv, conv.send(S2C, f.data(1, b"tunnelled bytes"))) == []
    closing = [e.finding for e in conv.obs.close(conv.t, "client")
               if isinstance(e, ConnectionFindingRaised) and e.finding.code == "stream-unfinished"]
    assert closing and not any("of 0 bytes" in x.message for x in closing)


def _request(conv: Conversation, headers: list[tuple[str, str]], sid: int = 1) -> list[str]:
    return codes(conv, conv.send(C2S, conv.f.headers(C2S, sid, headers, flags=END)))


def test_a_host_that_differs_from_authority_is_flagged(conv: Conversation) -> None:
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(
        C2S, 1, [*REQUEST, ("host", "internal.example")], flags=END)))
    assert [x.code for x in found] == ["host-authority-mismatch"]
    assert found[0].rfc == "RFC 9113 §8.3.1"
    assert "'internal.example'" in found[0].message and "'example.com'" in found[0].message


def test_host_and_authority_that_name_the_same_origin_are_clean(conv: Conversation) -> None:
    base = [(":method", "GET"), (":scheme", "https"), (":path", "/")]
    assert _request(conv, [*base, (":authority", "Example.COM"), ("host", "example.com")]) == []
    assert _request(conv, [*base, (":authority", "example.com:443"), ("host", "example.com")],
                    3) == []
    assert _request(conv, [*base, (":authority", "[::1]:8443"), ("host", "[::1]:8443")], 5) == []
    assert _request(conv, [*base, ("host", "example.com")], 7) == []  # no :authority at all
    assert _request(conv, [*base, (":authority", "example.com:8443"),
                           ("host", "example.com")], 9) == ["host-authority-mismatch"]


def test_a_path_that_is_not_origin_form_is_flagged(conv: Conversation) -> None:
    base = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com")]
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(
        C2S, 1, [*base, (":path", "https://example.com/x")], flags=END)))
    assert [(x.code, x.rfc) for x in found] == [("pseudo-header-invalid", "RFC 9113 §8.3.1")]
    assert "origin-form" in found[0].message
    options = [(":method", "OPTIONS"), *base[1:], (":path", "*")]
    assert _request(conv, options, 3) == []


def test_userinfo_in_authority_is_flagged(conv: Conversation) -> None:
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(
        C2S, 1, [(":method", "GET"), (":scheme", "https"), (":authority", "bob:pw@example.com"),
                 (":path", "/")], flags=END)))
    assert [x.code for x in found] == ["pseudo-header-invalid"]
    assert "userinfo" in found[0].message


WS_CONNECT = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
              (":path", "/chat"), (":authority", "example.com"),
              ("sec-websocket-version", "13")]


def test_extended_connect_needs_the_servers_setting() -> None:
    conv = Conversation()  # the server's SETTINGS did not enable it
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(C2S, 1, WS_CONNECT)))
    assert [(x.code, x.rfc) for x in found] == [("extended-connect-not-enabled", "RFC 8441 §4")]
    enabled = Conversation(settings=False)
    enabled.send(C2S, enabled.f.settings())
    enabled.send(S2C, enabled.f.settings(enable_connect_protocol=1))  # no ACK needed
    events = enabled.send(C2S, enabled.f.headers(C2S, 1, WS_CONNECT))
    assert len(enabled.frames(events)) == 1 and codes(enabled, events) == []


def test_protocol_outside_connect_and_a_withdrawn_setting_are_flagged() -> None:
    conv = Conversation(settings=False)
    conv.send(C2S, conv.f.settings())
    conv.send(S2C, conv.f.settings(enable_connect_protocol=1))
    get = [(":method", "GET"), *WS_CONNECT[1:]]
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(C2S, 1, get, flags=END)))
    assert [(x.code, x.rfc) for x in found] == [("pseudo-header-invalid", "RFC 8441 §4")]
    found = conv.finding_objects(conv.send(S2C, conv.f.settings(enable_connect_protocol=0)))
    assert [(x.code, x.rfc) for x in found] == [("setting-out-of-range", "RFC 8441 §3")]


def test_an_extended_connect_without_scheme_cites_rfc_8441() -> None:
    """A plain CONNECT must leave :scheme and :path out (RFC 9113 §8.5): citing §8.3.1
    for an extended one without :scheme read as h2scope contradicting itself."""
    conv = Conversation(settings=False)
    conv.send(C2S, conv.f.settings())
    conv.send(S2C, conv.f.settings(enable_connect_protocol=1))
    bare = [f for f in WS_CONNECT if f[0] != ":scheme"]
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(C2S, 1, bare)))
    assert [(x.code, x.rfc) for x in found] == [("pseudo-header-missing", "RFC 8441 §4")]
    assert found[0].message.startswith("extended CONNECT (:protocol) without :scheme")


def test_protocol_on_a_get_is_one_error_not_an_extended_connect_too() -> None:
    """Where the server never enabled extended CONNECT, a GET with :protocol was also
    called 'an extended CONNECT' the server had not allowed: two errors for one."""
    conv = Conversation()
    get = [(":method", "GET"), *WS_CONNECT[1:]]
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(C2S, 1, get, flags=END)))
    assert [(x.code, x.rfc) for x in found] == [("pseudo-header-invalid", "RFC 8441 §4")]


def test_a_request_with_neither_authority_nor_host_is_flagged(conv: Conversation) -> None:
    """RFC 9113 §8.3.1: an http or https request carries :authority or host; nghttpd
    resets one that has neither (PROTOCOL_ERROR), and nothing said why."""
    bare = [(":method", "GET"), (":scheme", "http"), (":path", "/index.html")]
    found = conv.finding_objects(conv.send(C2S, conv.f.headers(C2S, 1, bare, flags=END)))
    # (that an http(s) target URI has an authority is RFC 9110's rule, not §8.3.1's)
    assert [(x.code, x.rfc) for x in found] == [
        ("pseudo-header-missing", "RFC 9113 §8.3.1, RFC 9110 §4.2.1, §4.2.2, §7.2")]
    assert found[0].message.startswith("http request with neither :authority nor host")
    assert _request(conv, [*bare, ("host", "example.com")], 3) == []
    assert _request(conv, [(":method", "GET"), (":scheme", "urn"), (":path", "/x")], 5) == []


GRPC_REQUEST = [(":method", "POST"), (":scheme", "https"), (":authority", "example.com"),
                (":path", "/pkg.Svc/Call"), ("content-type", "application/grpc"),
                ("te", "trailers")]
GRPC_RESPONSE = [(":status", "200"), ("content-type", "application/grpc")]
MESSAGE = b"\x00\x00\x00\x00\x02\x08\x01"


def grpc_call(conv: Conversation, sid: int) -> None:
    conv.send(C2S, conv.f.headers(C2S, sid, GRPC_REQUEST))
    conv.send(C2S, conv.f.data(sid, MESSAGE, flags=["END_STREAM"]))


def test_a_grpc_response_with_its_status_in_trailers_or_trailers_only_is_clean(
        conv: Conversation) -> None:
    f = conv.f
    grpc_call(conv, 1)
    conv.send(S2C, f.headers(S2C, 1, GRPC_RESPONSE))
    conv.send(S2C, f.data(1, MESSAGE))
    conv.send(S2C, f.headers(S2C, 1, [("grpc-status", "0")], flags=END))
    grpc_call(conv, 3)
    conv.send(S2C, f.headers(S2C, 3, [*GRPC_RESPONSE, ("grpc-status", "5"),
                                      ("grpc-message", "not found")], flags=END))
    assert codes(conv) == [] and len(conv.frames()) > 10


def test_a_grpc_response_that_ends_without_grpc_status_is_flagged(conv: Conversation) -> None:
    f = conv.f
    cases = [
        (1, [f.headers(S2C, 1, GRPC_RESPONSE), f.data(1, MESSAGE, flags=["END_STREAM"])],
         "ended with DATA and no trailers"),
        (3, [f.headers(S2C, 3, GRPC_RESPONSE), f.data(3, MESSAGE),
             f.headers(S2C, 3, [("x-trace", "1")], flags=END)],
         "ended with trailers: no grpc-status"),
        (5, [f.headers(S2C, 5, GRPC_RESPONSE, flags=END)], "with its HEADERS"),
    ]
    for sid, frames, how in cases:
        grpc_call(conv, sid)
        found = [x for frame in frames for x in conv.finding_objects(conv.send(S2C, frame))]
        assert [(x.code, x.stream_id) for x in found] == [("grpc-status-missing", sid)], how
        assert how in found[0].message and found[0].rfc == "gRPC PROTOCOL-HTTP2"


def test_a_grpc_web_response_carries_its_status_in_the_body(conv: Conversation) -> None:
    """gRPC-Web (PROTOCOL-WEB.md) ends with a trailers frame inside the DATA: no
    HTTP trailers are due, so nothing is missing."""
    f = conv.f
    web = ("content-type", "application/grpc-web+proto")
    conv.send(C2S, f.headers(C2S, 1, [*GRPC_REQUEST[:4], web]))
    conv.send(C2S, f.data(1, MESSAGE, flags=["END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "200"), web]))
    trailers = b"grpc-status: 0\r\n"
    body = MESSAGE + b"\x80" + len(trailers).to_bytes(4, "big") + trailers
    assert codes(conv, conv.send(S2C, f.data(1, body, flags=["END_STREAM"]))) == []


def test_an_invalid_priority_field_says_it_is_ignored(conv: Conversation) -> None:
    """RFC 9218 §4: a value out of range is ignored (a MUST), not an error: the warning
    says so, and the stream keeps the default urgency."""
    req = [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/"),
           ("priority", "u=9")]
    (found,) = conv.finding_objects(conv.send(C2S, conv.f.headers(C2S, 1, req, flags=END)))
    assert found.code == "priority-field-invalid"
    assert found.message == ("priority 'u=9': urgency '9' is not an integer 0-7; ignored, as "
                             "RFC 9218 requires (the parameter keeps its default or earlier "
                             "value)")
    stream = conv.obs.stream(1)
    assert stream is not None and stream.urgency == 3
