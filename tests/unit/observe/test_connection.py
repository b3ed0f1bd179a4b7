"""The connection model: state, windows, settings and the findings it raises."""

from __future__ import annotations

import base64
import random
import struct

from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
    PingAnswered,
    PrefaceObserved,
    SettingsAcknowledged,
    StreamStateChanged,
)

C2S, S2C = Direction.C2S, Direction.S2C
REQ = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", "/")]
RESP = [(":status", "200")]


def raw_frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def test_preface_then_settings_is_clean(make_conv):
    c = make_conv()
    assert isinstance(c.events[0], PrefaceObserved)
    assert c.findings() == []
    acks = [e for e in c.events if isinstance(e, SettingsAcknowledged)]
    assert len(acks) == 2


def test_request_response_walks_stream_states(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, RESP))
    conv.send(S2C, f.data(1, b"body", flags=["END_STREAM"]))
    changes = [(e.old, e.new) for e in conv.events if isinstance(e, StreamStateChanged)]
    assert changes == [("idle", "half-closed (client)"), ("half-closed (client)", "closed")]
    assert conv.findings() == []
    stream = conv.obs.stream(1)
    assert stream is not None and stream.request_headers == tuple(REQ)
    assert stream.response_headers == tuple(RESP)


def test_header_block_across_continuation_decodes_once(conv):
    block = conv.f.block(C2S, REQ)
    h = raw_frame(1, 0x1, 1, block[:3])
    c1 = raw_frame(9, 0, 1, block[3:5])
    c2 = raw_frame(9, 0x4, 1, block[5:])
    evs = conv.send(C2S, h + c1 + c2)
    frames = conv.frames(evs)
    assert [fr.block is not None for fr in frames] == [False, False, True]
    assert frames[-1].block is not None and frames[-1].block.headers == tuple(REQ)


def test_frame_between_headers_and_continuation_is_flagged(conv):
    block = conv.f.block(C2S, REQ)
    conv.send(C2S, raw_frame(1, 0x1, 1, block[:3]))
    evs = conv.send(C2S, conv.f.ping())
    assert "continuation-missing" in conv.findings(evs)


def test_continuation_without_headers_is_flagged(conv):
    evs = conv.send(C2S, raw_frame(9, 0x4, 1, b"\x82"))
    assert "continuation-unexpected" in conv.findings(evs)
    (f,) = conv.finding_objects(evs)
    assert f.message == ("CONTINUATION on stream 1 without a preceding HEADERS or "
                         "PUSH_PROMISE lacking END_HEADERS")


def test_a_continuation_after_its_block_was_cut_off_says_by_what(conv):
    """HEADERS, a PING, then the CONTINUATION: there was a HEADERS; the PING cut it."""
    block = conv.f.block(C2S, REQ)
    headers = conv.send(C2S, raw_frame(1, 0x1, 1, block[:3]))
    conv.send(C2S, conv.f.ping())
    evs = conv.send(C2S, raw_frame(9, 0x4, 1, block[3:]))
    (f,) = conv.finding_objects(evs)
    seq = conv.frames(headers)[0].seq
    assert (f.code, f.message) == (
        "continuation-unexpected",
        f"CONTINUATION on stream 1 after its header block (frame #{seq}) was cut off by "
        f"PING #{seq + 1}: a CONTINUATION must follow at once")


def test_a_continuation_on_another_stream_names_the_block_still_open(conv):
    block = conv.f.block(C2S, REQ)
    headers = conv.send(C2S, raw_frame(1, 0x1, 1, block[:3]))
    evs = conv.send(C2S, raw_frame(9, 0x4, 3, block[3:]))
    (f,) = conv.finding_objects(evs)
    assert (f.code, f.message) == (
        "continuation-unexpected",
        f"CONTINUATION on stream 3 while the header block on stream 1 (frame "
        f"#{conv.frames(headers)[0].seq}) still expected its CONTINUATION on stream 1; that "
        "block is dropped")


def test_data_beyond_stream_window_is_flagged(make_conv):
    c = make_conv(settings=False)
    f = c.f
    c.send(C2S, f.settings(initial_window_size=10))
    c.send(S2C, f.settings())
    c.send(S2C, f.settings(ack=True))  # server acknowledges: 10 now binds the server
    c.send(C2S, f.settings(ack=True))
    c.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    c.send(S2C, f.headers(S2C, 1, RESP))
    ok = c.send(S2C, f.data(1, b"x" * 10))
    assert c.findings(ok) == []
    over = c.send(S2C, f.data(1, b"y"))
    assert "flow-control-exceeded" in c.findings(over)


def test_initial_window_applies_only_after_ack(make_conv):
    c = make_conv(settings=False)
    f = c.f
    c.send(C2S, f.settings())
    c.send(S2C, f.settings())
    c.send(C2S, f.settings(ack=True))
    c.send(S2C, f.settings(ack=True))
    c.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    c.send(C2S, f.settings(initial_window_size=100))
    stream = c.obs.stream(1)
    assert stream is not None and stream.send_window[S2C] == 65_535
    c.send(S2C, f.settings(ack=True))
    # RFC 9113 §6.9.2: the change applies to open streams, by the difference.
    assert stream.send_window[S2C] == 100


def test_window_update_and_padding_accounting(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, RESP))
    ev = conv.frames(conv.send(S2C, f.data(1, b"abc", pad_length=6)))[0]
    # 3 data + 6 padding + 1 Pad Length byte = 10 bytes of window (RFC 9113 §6.9.1).
    assert ev.windows == (65_535 - 10, 65_535 - 10)
    wu = conv.frames(conv.send(C2S, f.window_update(1, 10)))[0]
    assert wu.windows == (65_525, 65_535)


def test_window_exhaustion_stalls_and_window_update_resumes(make_conv):
    c = make_conv(settings=False)
    f = c.f
    for d in (C2S, S2C):
        c.send(d, f.settings(initial_window_size=4) if d is C2S else f.settings())
    c.send(S2C, f.settings(ack=True))
    c.send(C2S, f.settings(ack=True))
    c.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    c.send(S2C, f.headers(S2C, 1, RESP))
    evs = c.send(S2C, f.data(1, b"abcd"))
    stalls = [e for e in evs if isinstance(e, FlowControlStalled)]
    assert [(e.direction, e.stream_id) for e in stalls] == [(S2C, 1)]
    evs = c.send(C2S, f.window_update(1, 100), dt=0.5)
    resumed = [e for e in evs if isinstance(e, FlowControlResumed)]
    assert len(resumed) == 1 and abs(resumed[0].stalled_for - 0.5) < 1e-9


def test_window_overflow_and_zero_increment(conv):
    f = conv.f
    assert "window-update-zero" in conv.findings(conv.send(C2S, f.window_update(0, 0)))
    assert "window-overflow" in conv.findings(conv.send(C2S, f.window_update(0, 2**31 - 1)))


def test_stream_id_rules(conv):
    f = conv.f
    assert "stream-id-parity" in conv.findings(conv.send(C2S, f.headers(C2S, 2, REQ)))
    conv.send(C2S, f.headers(C2S, 7, REQ, flags=["END_HEADERS", "END_STREAM"]))
    assert "stream-id-order" in conv.findings(
        conv.send(C2S, f.headers(C2S, 5, REQ, flags=["END_HEADERS", "END_STREAM"])))


def test_a_stream_opened_against_the_id_rules_is_one_finding_and_owes_nothing(conv):
    """§5.1.1: a decreasing or even client stream id is a connection error the server
    must not process. Said once: it counts towards no MAX_CONCURRENT_STREAMS, and the
    close does not blame the server for leaving it unanswered."""
    from proxy.observe.events import ConnectionFindingRaised

    f = conv.f
    conv.send(C2S, f.settings(max_concurrent_streams=1))
    conv.send(S2C, f.settings(max_concurrent_streams=1))
    conv.send(S2C, f.settings(ack=True))
    conv.send(C2S, f.settings(ack=True))
    conv.send(C2S, f.headers(C2S, 5, REQ, flags=["END_HEADERS", "END_STREAM"]))
    assert conv.findings(conv.send(C2S, f.headers(C2S, 3, REQ, flags=[
        "END_HEADERS", "END_STREAM"]))) == ["stream-id-order"]
    assert conv.findings(conv.send(C2S, f.headers(C2S, 4, REQ, flags=[
        "END_HEADERS", "END_STREAM"]))) == ["stream-id-parity", "stream-id-order"]
    closing = conv.obs.close(conv.t + 1, "client")
    unfinished = [e.finding.message for e in closing if isinstance(e, ConnectionFindingRaised)
                  and e.finding.code == "stream-unfinished"]
    assert len(unfinished) == 1 and "stream 5 " in unfinished[0], unfinished


def test_a_servers_headers_on_an_idle_stream_open_nothing(conv):
    """§5.1: one server-opened-stream finding; the client's own request on that id
    afterwards is a request, not trailers with pseudo-headers (four errors, two of
    them charged to the server for answering it)."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    (found,) = conv.finding_objects(conv.send(S2C, f.headers(S2C, 3, [(":status", "200")],
                                                             flags=["END_HEADERS",
                                                                    "END_STREAM"])))
    # (RFC 9113 §5.1's rule, not §8.4's; and PUSH_PROMISE reserves a stream, it opens none)
    assert (found.code, found.rfc) == ("server-opened-stream", "RFC 9113 §5.1, §5.1.1")
    assert found.message.endswith("a server's HEADERS may only start a stream it reserved "
                                  "earlier with PUSH_PROMISE")
    assert conv.findings(conv.send(C2S, f.headers(C2S, 3, REQ, flags=[
        "END_HEADERS", "END_STREAM"]))) == []
    assert conv.findings(conv.send(S2C, f.headers(S2C, 3, [(":status", "200")], flags=[
        "END_HEADERS", "END_STREAM"]))) == []


def test_a_reset_of_an_idle_stream_opens_no_stream(conv):
    """RST_STREAM on an idle stream is a connection error (§5.1): flagged, and no
    stream comes of it (the summary listed it as a hung request)."""
    from proxy.observe.events import StreamStateChanged

    new = conv.send(C2S, bytes.fromhex("000004030000000007") + (8).to_bytes(4, "big"))
    assert conv.findings(new) == ["frame-on-idle-stream"]
    assert not [e for e in new if isinstance(e, StreamStateChanged)]


def test_data_on_idle_and_closed_streams(conv):
    f = conv.f
    assert "frame-on-idle-stream" in conv.findings(conv.send(C2S, f.data(1, b"x")))
    conv.send(C2S, f.headers(C2S, 3, REQ, flags=["END_HEADERS", "END_STREAM"]))
    assert "frame-on-closed-stream" in conv.findings(conv.send(C2S, f.data(3, b"late")))


def test_frames_racing_a_reset_are_info_not_error(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, RESP))
    conv.send(C2S, f.rst(1))
    ev = conv.frames(conv.send(S2C, f.data(1, b"in flight")))[0]
    assert [(x.code, x.severity.name) for x in ev.findings] == [("frame-after-reset", "INFO")]
    # Said once per stream: a cancelled download has a window's worth in flight.
    assert conv.findings(conv.send(S2C, f.data(1, b"more") + f.data(1, b"and more"))) == []


def test_header_field_rules(conv):
    f = conv.f
    bad = [(":method", "GET"), (":path", "/"), ("x-a", "1"), (":scheme", "https"),
           ("Upper", "v"), ("connection", "close"), ("te", "gzip"), (":bogus", "1")]
    codes = conv.findings(conv.send(C2S, f.headers(C2S, 1, bad)))
    for code in ("pseudo-header-after-regular", "header-name-uppercase",
                 "connection-specific-header", "pseudo-header-invalid"):
        assert code in codes, code


def test_missing_and_duplicated_pseudo_headers(conv):
    f = conv.f
    codes = conv.findings(conv.send(C2S, f.headers(C2S, 1, [(":method", "GET"),
                                                             (":method", "GET")])))
    assert "pseudo-header-duplicated" in codes and "pseudo-header-missing" in codes
    codes = conv.findings(conv.send(S2C, f.headers(S2C, 1, [("server", "x")])))
    assert "pseudo-header-missing" in codes


def test_trailers_and_informational_responses(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ))
    conv.send(C2S, f.headers(C2S, 1, [("x-checksum", "abc")],
                             flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "103"), ("link", "</a.css>")]))
    conv.send(S2C, f.headers(S2C, 1, RESP))
    conv.send(S2C, f.headers(S2C, 1, [("grpc-status", "0")], flags=["END_HEADERS", "END_STREAM"]))
    assert conv.findings() == []
    s = conv.obs.stream(1)
    assert s is not None
    assert s.informational == [((":status", "103"), ("link", "</a.css>"))]
    assert s.trailers == {C2S: (("x-checksum", "abc"),), S2C: (("grpc-status", "0"),)}


def test_pseudo_header_in_trailers(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ))
    evs = conv.send(C2S, f.headers(C2S, 1, [(":path", "/x")], flags=["END_HEADERS", "END_STREAM"]))
    assert "pseudo-header-in-trailers" in conv.findings(evs)


def test_frame_larger_than_max_frame_size(conv):
    evs = conv.send(S2C, raw_frame(0, 0, 1, b"x" * 16_385))
    assert "frame-too-large" in conv.findings(evs)


def test_settings_out_of_range_and_unknown(conv):
    payload = struct.pack(">HIHIHI", 2, 5, 5, 100, 0x4A4A, 1)
    codes = conv.findings(conv.send(C2S, raw_frame(4, 0, 0, payload)))
    assert codes.count("setting-out-of-range") == 2 and "unknown-setting" in codes


def test_a_setting_out_of_range_cites_the_rfc_that_defines_it(conv):
    """Every out-of-range value cited RFC 9113 §6.5.2 and a PROTOCOL_ERROR, also for
    settings RFC 9113 does not define; gRPC's own one has no RFC and no error."""
    payload = struct.pack(">HIHIHIHI", 2, 5, 8, 2, 9, 3, 0xFE03, 7)
    found = conv.finding_objects(conv.send(C2S, raw_frame(4, 0, 0, payload)))
    assert [(x.rfc, x.severity.name) for x in found] == [
        ("RFC 9113 §6.5.2", "ERROR"), ("RFC 8441 §3", "ERROR"), ("RFC 9218 §2.1", "ERROR"),
        ("gRPC (grpc-core)", "WARNING")]
    assert [x.message for x in found] == [
        "ENABLE_PUSH = 5 is outside 0..1: a connection error of type PROTOCOL_ERROR",
        "ENABLE_CONNECT_PROTOCOL = 2 is outside 0..1 (it must be 0 or 1)",
        "NO_RFC7540_PRIORITIES = 3 is outside 0..1: a connection error of type PROTOCOL_ERROR",
        "GRPC_ALLOW_TRUE_BINARY_METADATA = 7 is outside 0..1 (gRPC defines 0 and 1)"]


def test_no_rfc7540_priorities_changed_after_the_first_settings_is_flagged(make_conv):
    """RFC 9218 §2.1: a sender must not change SETTINGS_NO_RFC7540_PRIORITIES after its
    first SETTINGS frame (the same value again is no change)."""
    c = make_conv(settings=False)
    c.send(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 9, 1)))
    assert c.findings(c.send(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 9, 1)))) == []
    (found,) = c.finding_objects(c.send(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 9, 0))))
    assert (found.code, found.rfc, found.severity.name) == (
        "setting-out-of-range", "RFC 9218 §2.1", "ERROR")
    assert "changed SETTINGS_NO_RFC7540_PRIORITIES from 1 (its first SETTINGS) to 0" in \
        found.message


def test_no_rfc7540_priorities_left_out_of_the_first_settings_is_0_then(make_conv):
    """A first SETTINGS without it leaves the initial value, 0: a later 1 is a change
    (RFC 9218 §2.1), a later 0 is not; an excerpt's first SETTINGS seen proves nothing."""
    c = make_conv(settings=False)
    c.send(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 3, 100)))
    assert c.findings(c.send(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 9, 0)))) == []
    (found,) = c.finding_objects(c.send(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 9, 1))))
    assert "from 0 (its initial value: the first SETTINGS left it out) to 1" in found.message
    from proxy.observe.connection import ConnectionObserver

    excerpt = ConnectionObserver(partial=True)
    excerpt.feed(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 3, 100)), 0.0)
    events = excerpt.feed(C2S, raw_frame(4, 0, 0, struct.pack(">HI", 9, 1)), 0.1)
    assert not [f for e in events for f in getattr(e, "findings", ())
                if f.code == "setting-out-of-range"]


def test_unexpected_settings_ack(conv):
    """No RFC rule forbids it (RFC 9113 §6.5.3 has none): a warning, naming the peer
    that fails the connection over it."""
    (found,) = conv.finding_objects(conv.send(S2C, conv.f.settings(ack=True)))
    assert (found.code, found.severity.name) == ("settings-ack-unexpected", "WARNING")
    assert "nghttp2 treats it as a connection error of type PROTOCOL_ERROR" in found.message


def test_settings_never_acknowledged_is_reported_at_close(make_conv):
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings(header_table_size=0))
    c.send(S2C, c.f.settings())
    evs = c.obs.close(5.0)
    codes = [e.finding.code for e in evs if isinstance(e, ConnectionFindingRaised)]
    assert codes == ["settings-not-acknowledged", "settings-not-acknowledged"]


def test_a_client_that_never_sent_a_frame_owes_no_settings_ack(make_conv):
    """A browser's spare tunnel (Chromium preconnects one and may never use it):
    the server's SETTINGS went out, the client sent nothing at all — not an
    endpoint that failed to acknowledge, so no warning (it broke --fail-on
    warning for every page load)."""
    c = make_conv(preface=False, settings=False)
    c.send(S2C, c.f.settings(max_concurrent_streams=100))
    evs = c.obs.close(1.0, closed_by="client")
    assert [e.finding.code for e in evs if isinstance(e, ConnectionFindingRaised)] == []
    # ... while a client that did speak (its preface and SETTINGS) still owes one
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings())
    c.send(S2C, c.f.settings(max_concurrent_streams=100))
    c.send(S2C, c.f.settings(ack=True))
    evs = c.obs.close(5.0)
    assert [e.finding.code for e in evs if isinstance(e, ConnectionFindingRaised)] == [
        "settings-not-acknowledged"]


def test_a_connection_that_ends_moments_after_settings_owes_no_ack(make_conv):
    """curl gives up a millisecond after its preface (a header too large for it):
    the server had no time to acknowledge; 8 warnings failed --fail-on warning on
    ordinary traffic. Within the grace, no finding — unless the peer provably read
    the SETTINGS (it answered a frame sent after them)."""
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings())
    c.send(S2C, c.f.settings())
    evs = c.obs.close(c.t + 0.002, closed_by="client")
    assert [e.finding.code for e in evs if isinstance(e, ConnectionFindingRaised)] == []
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings())
    c.send(C2S, c.f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    c.send(S2C, c.f.settings(ack=True) + c.f.headers(S2C, 1, [(":status", "200")],
                                                       flags=["END_HEADERS", "END_STREAM"]))
    c.send(S2C, c.f.settings(max_concurrent_streams=5))
    c.send(C2S, c.f.headers(C2S, 3, REQ, flags=["END_HEADERS", "END_STREAM"]))
    c.send(S2C, c.f.headers(S2C, 3, [(":status", "200")], flags=["END_HEADERS", "END_STREAM"]))
    # (the client answered nothing of the server's after its SETTINGS: within the grace)
    evs = c.obs.close(c.t + 0.002, closed_by="server")
    assert [e.finding.code for e in evs if isinstance(e, ConnectionFindingRaised)] == []


def test_a_stream_reset_by_the_client_after_the_server_went_is_the_servers_unfinished(conv):
    """A server killed mid-stream: grpc-core's client resets the call as the socket
    closes (REFUSED_STREAM), so the stream looked finished by the client's reset,
    and nothing was said. Told where the server's bytes ended (``ends``), the close
    says the server left its response unfinished."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "200")]) + f.data(1, b"part"))
    server_gone = conv.obs.sides[C2S].offset  # (what of the client's bytes was read then)
    conv.send(C2S, f.rst(1, 7))  # REFUSED_STREAM, after the server's EOF
    closing = [e.finding for e in conv.obs.close(conv.t + 0.1, "server", ends={S2C: server_gone})
               if isinstance(e, ConnectionFindingRaised)]
    assert [(x.code, x.severity.name) for x in closing] == [("stream-unfinished", "WARNING")]
    assert "the server's response on stream 1 unfinished" in closing[0].message


def test_a_reset_before_the_server_went_still_finishes_the_stream(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, [(":status", "200")]))
    conv.send(C2S, f.rst(1, 8))  # the client cancels; the server leaves afterwards
    server_gone = conv.obs.sides[C2S].offset
    closing = [e.finding.code for e in conv.obs.close(conv.t + 0.1, "server",
                                                      ends={S2C: server_gone})
               if isinstance(e, ConnectionFindingRaised)]
    assert closing == []


def test_ping_answered_before_settings_proves_missing_ack(make_conv):
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings())
    c.send(S2C, c.f.settings())
    c.send(S2C, c.f.settings(ack=True))
    c.send(S2C, c.f.settings(initial_window_size=1000))
    c.send(S2C, c.f.ping(b"abcdefgh"))
    evs = c.send(C2S, c.f.ping(b"abcdefgh", ack=True), dt=0.25)
    assert "settings-not-acknowledged" in c.findings(evs)
    rtt = [e for e in evs if isinstance(e, PingAnswered)]
    assert len(rtt) == 1 and abs(rtt[0].rtt - 0.25) < 1e-9


def test_unmatched_ping_ack(conv):
    assert "ping-ack-unmatched" in conv.findings(conv.send(S2C, conv.f.ping(ack=True)))


def test_server_push_links_promised_stream(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    pp = raw_frame(5, 0x4, 1, struct.pack(">I", 2) + f.block(S2C, REQ[:3] + [(":path", "/a.css")]))
    ev = conv.frames(conv.send(S2C, pp))[0]
    assert ev.block_stream_id == 2 and ev.block is not None
    assert ("/a.css" in dict(ev.block.headers).values())
    conv.send(S2C, f.headers(S2C, 2, RESP))
    conv.send(S2C, f.data(2, b"css", flags=["END_STREAM"]))
    pushed = conv.obs.stream(2)
    assert pushed is not None and pushed.promised_by == 1
    assert conv.findings() == []


def test_a_push_promise_in_flight_when_the_client_reset_its_stream_is_a_race(conv):
    """RFC 9113 §6.6: a client that reset the associated stream must handle the
    PUSH_PROMISEs sent before its RST_STREAM arrived: info, as for the DATA in flight
    (it was push-on-closed-stream, an error), and the promised stream is reserved;
    once the server provably read the reset, a warning."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 1, RESP))
    conv.send(C2S, f.rst(1, 8))
    pp = raw_frame(5, 0x4, 1, struct.pack(">I", 2) + f.block(S2C, REQ[:3] + [(":path", "/a")]))
    (race,) = conv.finding_objects(conv.send(S2C, pp))
    assert (race.code, race.severity.name) == ("frame-after-reset", "INFO")
    assert race.message.startswith("PUSH_PROMISE on a closed stream (the client had reset it")
    pushed = conv.obs.stream(2)
    assert pushed is not None and pushed.state.name == "RESERVED"
    conv.send(C2S, f.headers(C2S, 3, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.headers(S2C, 3, RESP, flags=["END_HEADERS", "END_STREAM"]))
    pp = raw_frame(5, 0x4, 1, struct.pack(">I", 4) + f.block(S2C, REQ[:3] + [(":path", "/b")]))
    (late,) = conv.finding_objects(conv.send(S2C, pp))
    assert (late.code, late.severity.name) == ("frame-after-reset", "WARNING")


def test_push_from_client_and_push_disabled(make_conv):
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings(enable_push=0))
    c.send(S2C, c.f.settings())
    c.send(S2C, c.f.settings(ack=True))
    c.send(C2S, c.f.settings(ack=True))
    c.send(C2S, c.f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    pp = raw_frame(5, 0x4, 1, struct.pack(">I", 2) + c.f.block(S2C, REQ))
    assert "push-disabled" in c.findings(c.send(S2C, pp))
    pp2 = raw_frame(5, 0x4, 1, struct.pack(">I", 4) + c.f.block(C2S, REQ))
    assert "push-from-client" in c.findings(c.send(C2S, pp2))


def test_priority_tree_and_self_dependency(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS"]))
    conv.send(C2S, f.headers(C2S, 3, REQ, flags=["END_HEADERS"]))
    conv.send(C2S, raw_frame(2, 0, 5, struct.pack(">IB", 0x8000_0000 | 1, 31)))
    tree = conv.obs.priority
    assert tree.children(1) == [5] and tree.node(5).weight == 32  # type: ignore[union-attr]
    conv.send(C2S, raw_frame(2, 0, 7, struct.pack(">IB", 0x8000_0000 | 0, 0)))
    assert tree.children(7) == [1, 3]  # exclusive: adopts stream 0's other children
    (found,) = conv.finding_objects(conv.send(C2S, raw_frame(2, 0, 9, struct.pack(">IB", 9, 0))))
    # (RFC 7540's rule: RFC 9113 §5.3.1 is only background and has none)
    assert (found.code, found.rfc) == ("self-dependency", "RFC 7540 §5.3.1")


def test_rfc9218_priority_header_and_update(conv):
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ + [("priority", "u=1, i")], flags=["END_HEADERS"]))
    s = conv.obs.stream(1)
    assert s is not None and (s.urgency, s.incremental) == (1, True)
    conv.send(C2S, raw_frame(0x10, 0, 0, struct.pack(">I", 1) + b"u=5"))
    assert s.urgency == 5
    assert "priority-update-from-server" in conv.findings(
        conv.send(S2C, raw_frame(0x10, 0, 0, struct.pack(">I", 1) + b"u=0")))


def test_hpack_error_marks_direction_broken(conv):
    evs = conv.send(C2S, raw_frame(1, 0x5, 1, b"\x80"))  # index 0
    assert "hpack-error" in conv.findings(evs)
    evs = conv.send(C2S, conv.f.headers(C2S, 3, REQ, flags=["END_HEADERS", "END_STREAM"]))
    assert conv.frames(evs)[0].block is None  # the context is gone (COMPRESSION_ERROR)


def test_a_size_update_after_the_first_field_is_flagged_and_decoded_as_applied(conv):
    """Go's x/net h2 server (0.7.0) put a table size update between two fields when a
    client's SETTINGS arrived mid-encode; Java's HttpClient applied it and went on
    for 14 more requests, while h2scope stopped decoding the server's blocks: every
    later status, header and trailer unread. Still a decoding error by RFC 7541
    §4.2, and said so; the block and the later ones are decoded as that receiver
    had them."""
    conv.send(C2S, conv.f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    late = bytes.fromhex("3fe11f" "88" "3fe11f") + b"\x5f\x0atext/plain"  # (§6.2.1 literal)
    evs = conv.send(S2C, raw_frame(1, 0x5, 1, late))
    (frame,) = conv.frames(evs)
    assert frame.block is not None
    assert frame.block.headers == ((":status", "200"), ("content-type", "text/plain"))
    (finding,) = [f for f in frame.findings if f.code == "hpack-error"]
    assert finding.severity.name == "ERROR" and finding.rfc.startswith("RFC 7541 §4.2")
    assert "after the first header field (at byte 4 of the header block)" in finding.message
    assert [a.representation.name for a in frame.block.fields] == [
        "SIZE_UPDATE", "INDEXED", "SIZE_UPDATE", "LITERAL_INCREMENTAL"]
    conv.send(C2S, conv.f.headers(C2S, 3, REQ, flags=["END_HEADERS", "END_STREAM"]))
    evs = conv.send(S2C, raw_frame(1, 0x5, 3, b"\x88\xbe"))  # (the entry it inserted)
    (frame,) = conv.frames(evs)
    assert frame.block is not None and dict(frame.block.headers)["content-type"] == "text/plain"
    assert not frame.findings


def test_max_concurrent_streams_exceeded(make_conv):
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings())
    c.send(S2C, c.f.settings(max_concurrent_streams=1))
    c.send(C2S, c.f.settings(ack=True))
    c.send(S2C, c.f.settings(ack=True))
    c.send(C2S, c.f.headers(C2S, 1, REQ))
    assert "max-concurrent-streams-exceeded" in c.findings(c.send(C2S, c.f.headers(C2S, 3, REQ)))


def test_bad_preface_desyncs_client_direction():
    obs = ConnectionObserver()
    evs = obs.feed(C2S, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    assert [type(e) for e in evs] == [Desynced]
    assert obs.feed(C2S, b"more bytes", 0.1) == []
    assert obs.sides[C2S].skipped_bytes == 37


def test_http1_response_from_server_desyncs():
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE, 0.0)
    evs = obs.feed(S2C, b"HTTP/1.1 400 Bad Request\r\n\r\n", 0.0)
    assert any(isinstance(e, Desynced) for e in evs)


def test_h2c_upgrade_opens_stream_one():
    obs = ConnectionObserver()
    settings = base64.urlsafe_b64decode("AAMAAABkAARAAAAAAAIAAAAA")
    obs.upgrade_h2c(http2_settings=settings, request_headers=tuple(REQ), t=0.0)
    s = obs.stream(1)
    assert s is not None and s.state.value == "half-closed (client)"
    assert obs.sides[C2S].advertised[4] == 0x4000_0000
    assert s.send_window[S2C] == 0x4000_0000


def test_byte_splits_do_not_change_events(make_conv):
    c = make_conv()
    f = c.f
    script = [
        (C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"])),
        (S2C, f.headers(S2C, 1, RESP)),
        (S2C, f.data(1, b"x" * 3000)),
        (C2S, f.window_update(0, 3000)),
        (S2C, f.data(1, b"end", flags=["END_STREAM"], pad_length=3)),
        (C2S, f.ping()),
        (S2C, f.ping(ack=True)),
    ]
    whole = ConnectionObserver()
    expected = []
    for d, data in [(C2S, CONNECTION_PREFACE)] + script:
        expected.extend(whole.feed(d, data, 0.0))
    rng = random.Random(7)
    for _ in range(20):
        split = ConnectionObserver()
        got = []
        for d, data in [(C2S, CONNECTION_PREFACE)] + script:
            pos = 0
            while pos < len(data):
                step = rng.randint(1, 40)
                got.extend(split.feed(d, data[pos:pos + step], 0.0))
                pos += step
        assert got == expected


def test_unknown_frame_type_is_info(conv):
    ev = conv.frames(conv.send(C2S, raw_frame(0xEE, 0, 0, b"abc")))[0]
    assert [(x.code, x.severity.name) for x in ev.findings] == [("unknown-frame-type", "INFO")]


def test_first_frame_must_be_settings():
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE, 0.0)
    evs = obs.feed(C2S, raw_frame(6, 0, 0, b"12345678"), 0.0)
    assert isinstance(evs[0], FrameObserved)
    assert [x.code for x in evs[0].findings] == ["first-frame-not-settings"]


def test_data_and_headers_on_stream_zero_are_flagged(conv):
    assert "stream-id-zero" in conv.findings(conv.send(C2S, raw_frame(0, 0, 0, b"x")))
    assert "stream-id-zero" in conv.findings(conv.send(C2S, raw_frame(1, 0x4, 0, b"\x82")))


def test_a_repeated_block_is_checked_again_in_another_role(conv):
    """A block seen clean as a request is reused by the decoder; sent as trailers,
    the same bytes still break the trailers' rules (RFC 9113 §8.1)."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(C2S, f.headers(C2S, 3, REQ))  # all indexed now: the same record each time
    assert conv.findings() == []
    evs = conv.send(C2S, f.headers(C2S, 3, REQ, flags=["END_HEADERS", "END_STREAM"]))
    assert "pseudo-header-in-trailers" in conv.findings(evs)


def test_a_request_whose_header_block_never_ended_blames_the_client_only(conv):
    """A client that keeps sending CONTINUATION (a flood) until the connection
    closes: its header block is cut; the server, which never got a request to
    answer, left no response unfinished."""
    block = conv.f.block(C2S, REQ)
    conv.send(C2S, raw_frame(1, 0x1, 1, block[:3]) + raw_frame(9, 0, 1, block[3:5]))
    codes = [e.finding.code for e in conv.obs.close(1.0, "client")
             if isinstance(e, ConnectionFindingRaised)]
    assert "header-block-truncated" in codes
    assert "stream-unfinished" not in codes


def test_whitespace_at_a_values_ends_is_an_error_as_nul_cr_and_lf_are(conv):
    """RFC 9113 §8.2.1 forbids a leading or trailing SP or HTAB as it forbids NUL,
    CR and LF, and §8.1.1 makes the message malformed: `check` and `--fail-on
    error` must fail on it (it was a warning)."""
    f = conv.f
    for sid, value in ((1, "spaced   "), (3, " lead"), (5, "tab\t")):
        evs = conv.send(C2S, f.headers(C2S, sid, [*REQ, ("x-ws-req", value)]))
        found = [(x.code, x.severity.name) for ev in conv.frames(evs) for x in ev.findings]
        assert found == [("header-value-invalid", "ERROR")], (value, found)


def test_one_block_breaking_a_field_rule_many_times_is_one_finding_naming_them_all(conv):
    """A regular field before the four pseudo-headers of a request gave four
    pseudo-header-after-regular findings (and the summary counted four): the block
    is one malformed message. The same for the other rules of its fields: one
    finding per rule (and kind of problem) per block, naming every field."""
    f = conv.f
    block = [("x-first", "1"), *REQ, ("Upper", "a"), ("X-Also", "b"), ("connection", "close"),
             ("keep-alive", "5"), ("x-ws", "a "), ("x-ws2", " b"), ("x-nul", "a\x00b")]
    (ev,) = conv.frames(conv.send(C2S, f.headers(C2S, 1, block)))
    found = [(x.code, x.severity.name, x.message) for x in ev.findings]
    assert found == [
        ("pseudo-header-after-regular", "ERROR", "pseudo-headers :method, :scheme, :authority, "
         ":path follow regular fields (pseudo-header fields must come first)"),
        ("header-name-uppercase", "ERROR",
         "field names 'Upper', 'X-Also' contain uppercase characters"),
        ("connection-specific-header", "ERROR",
         "connection-specific fields 'connection', 'keep-alive' are not allowed in HTTP/2"),
        ("header-value-invalid", "ERROR", "values of 'x-ws', 'x-ws2' start or end with whitespace"),
        ("header-value-invalid", "ERROR", "value of 'x-nul' contains NUL, CR or LF"),
    ], found
    # Trailers with pseudo-headers; a pseudo-header twice, and another three times.
    evs = conv.send(C2S, f.headers(C2S, 1, [(":path", "/x"), (":method", "GET")],
                                   flags=["END_HEADERS", "END_STREAM"]))
    assert [x.message for ev in conv.frames(evs) for x in ev.findings] == [
        "trailers carry the pseudo-headers :path, :method"]
    dup = [*REQ, (":path", "/a"), (":path", "/b"), (":method", "GET")]
    evs = conv.send(C2S, f.headers(C2S, 3, dup, flags=["END_HEADERS", "END_STREAM"]))
    assert [x.message for ev in conv.frames(evs) for x in ev.findings] == [
        "pseudo-headers :path, :method appear more than once"]


def test_a_finding_names_at_most_eight_fields_and_counts_the_rest(conv):
    f = conv.f
    block = [*REQ, *[(f"X-{i}", "v") for i in range(20)]]
    (ev,) = conv.frames(conv.send(C2S, f.headers(C2S, 1, block)))
    (finding,) = ev.findings
    assert finding.message == ("field names 'X-0', 'X-1', 'X-2', 'X-3', 'X-4', 'X-5', 'X-6', "
                               "'X-7', … (20 in all) contain uppercase characters")


def test_a_connect_request_with_scheme_and_path_is_one_finding(conv):
    f = conv.f
    block = [(":method", "CONNECT"), (":authority", "a.test:443"), (":scheme", "https"),
             (":path", "/")]
    (ev,) = conv.frames(conv.send(C2S, f.headers(C2S, 1, block)))
    assert [x.message for x in ev.findings] == ["CONNECT request carries :scheme, :path"]


def test_a_request_reusing_an_id_the_client_ended_is_one_finding(conv):
    """§5.1: HEADERS from the client on a stream it had ended is
    frame-on-closed-stream — a request reusing the id, not trailers carrying
    pseudo-headers; the stream keeps the request its response answers."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    again = [(n, v if n != ":path" else "/again") for n, v in REQ]
    assert conv.findings(conv.send(C2S, f.headers(C2S, 1, again, flags=[
        "END_HEADERS", "END_STREAM"]))) == ["frame-on-closed-stream"]
    assert conv.findings(conv.send(S2C, f.headers(S2C, 1, [(":status", "200")], flags=[
        "END_HEADERS", "END_STREAM"]))) == []
    assert dict(conv.obs.closed[1].request_headers)[":path"] != "/again"


def test_a_server_that_sent_not_a_byte_is_no_http2_peer_breaking_off() -> None:
    """reverse:http:// at a TLS port: the server reads the preface and closes without
    a byte. That raised a WARNING against the server (failing --fail-on warning in
    CI) for what is a configuration mistake."""
    from tests.unit.observe.conftest import Conversation

    conv = Conversation(settings=False)
    conv.send(C2S, conv.f.settings())
    conv.send(C2S, conv.f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    closing = [e.finding for e in conv.obs.close(conv.t + 0.1, "server")
               if isinstance(e, ConnectionFindingRaised)]
    assert [(x.code, x.severity.name) for x in closing] == [("stream-unfinished", "INFO")]
    assert "the server sent not a byte" in closing[0].message
    assert "reverse:https://" in closing[0].message


def test_a_stream_opened_after_the_client_read_the_goaway_is_flagged_whatever_its_id(conv):
    """RFC 9113 §6.8: the receiver of a GOAWAY must not open new streams. An id at or
    below last-stream-id passed unflagged; once the client provably read the GOAWAY
    (it answered a PING sent after it), any new stream is flagged."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    goaway = raw_frame(7, 0, 0, (99).to_bytes(4, "big") + bytes(4))
    conv.send(S2C, goaway)
    # (in flight: the client may not have read it yet)
    assert conv.findings(conv.send(C2S, f.headers(C2S, 3, REQ, flags=[
        "END_HEADERS", "END_STREAM"]))) == []
    conv.send(S2C, f.ping(b"abcdefgh"))
    conv.send(C2S, f.ping(b"abcdefgh", ack=True))
    (found,) = conv.finding_objects(conv.send(C2S, f.headers(C2S, 5, REQ, flags=[
        "END_HEADERS", "END_STREAM"])))
    assert (found.code, found.severity.name, found.rfc) == (
        "stream-after-goaway", "WARNING", "RFC 9113 §6.8")
    assert found.message.startswith("stream 5 opened after the client had read the server's "
                                    "GOAWAY (frame #")
    assert "the receiver of a GOAWAY must not open new streams" in found.message


def test_a_stream_above_last_stream_id_in_flight_with_the_goaway_is_info(conv):
    """nginx ends a connection after keepalive_requests with GOAWAY; a busy client's
    next requests cross it in flight. That was a warning charged to the client
    (--fail-on warning failed) though nothing shows it had read the GOAWAY."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, raw_frame(7, 0, 0, (1).to_bytes(4, "big") + bytes(4)))
    (found,) = conv.finding_objects(conv.send(C2S, f.headers(C2S, 3, REQ, flags=[
        "END_HEADERS", "END_STREAM"])))
    assert (found.code, found.severity.name) == ("stream-after-goaway", "INFO")
    assert "may not have read yet (in flight): it will not be processed" in found.message


def test_a_header_list_over_a_limit_sent_but_not_yet_acknowledged_is_flagged(make_conv):
    """The server's SETTINGS_MAX_HEADER_LIST_SIZE is its own advisory limit, in force from
    when it sends it: a request sent before the client's ACK and over it (python-hyper's
    h2 acknowledges lazily) got a 431 with no finding to explain it."""
    c = make_conv(settings=False)
    c.send(C2S, c.f.settings())
    c.send(S2C, c.f.settings(ack=True))
    c.send(S2C, c.f.settings(max_header_list_size=1000))
    big = [*REQ, ("x-big", "a" * 2000)]
    (found,) = c.finding_objects(c.send(C2S, c.f.headers(C2S, 1, big, flags=[
        "END_HEADERS", "END_STREAM"])))
    assert found.code == "header-list-too-large"
    assert "SETTINGS_MAX_HEADER_LIST_SIZE 1000 (sent in the server's SETTINGS frame #" in \
        found.message and "not yet acknowledged" in found.message
    c.send(C2S, c.f.settings(ack=True))
    (found,) = c.finding_objects(c.send(C2S, c.f.headers(C2S, 3, big, flags=[
        "END_HEADERS", "END_STREAM"])))
    assert found.message.endswith("SETTINGS_MAX_HEADER_LIST_SIZE 1000")
    # A raised limit, sent and not yet acknowledged, is the one in force.
    c.send(S2C, c.f.settings(max_header_list_size=100_000))
    assert c.findings(c.send(C2S, c.f.headers(C2S, 5, big, flags=[
        "END_HEADERS", "END_STREAM"]))) == []


def test_a_second_reset_of_a_stream_by_the_side_that_reset_it_is_said(conv):
    """RFC 9113 §5.4.2: an endpoint should not send more than one RST_STREAM for a
    stream (info); the other side's reset answered by one of its own is no repeat."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(C2S, f.rst(1, 8))
    (found,) = conv.finding_objects(conv.send(C2S, f.rst(1, 5)))
    assert (found.code, found.severity.name, found.rfc) == (
        "frame-on-closed-stream", "INFO", "RFC 9113 §5.4.2")
    assert "the client reset stream 1 again (it reset it in frame #" in found.message
    conv.send(C2S, f.headers(C2S, 3, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.rst(3, 8))
    assert conv.findings(conv.send(C2S, f.rst(3, 5))) == []


def test_a_ping_ack_answering_a_ping_sent_before_the_goaway_proves_nothing(conv):
    """RFC 9113 §6.7 allows the same opaque data twice (all-zero keepalives). PING(0),
    GOAWAY, PING(0): the client's first ACK answers the PING before the GOAWAY (it is
    read first), so a stream it opens next crossed the GOAWAY in flight. Opaques were
    kept in a dict and the later PING took the first's place: stream-after-goaway
    WARNING, 'it answered frame #8, sent after it'. The second ACK proves it."""
    f = conv.f
    conv.send(C2S, f.headers(C2S, 1, REQ, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, f.ping(bytes(8)))
    conv.send(S2C, raw_frame(7, 0, 0, (0x7FFFFFFF).to_bytes(4, "big") + bytes(4)))
    conv.send(S2C, f.ping(bytes(8)))
    assert conv.findings(conv.send(C2S, f.ping(bytes(8), ack=True))) == []
    assert conv.findings(conv.send(C2S, f.headers(C2S, 3, REQ, flags=[
        "END_HEADERS", "END_STREAM"]))) == []
    assert conv.findings(conv.send(C2S, f.ping(bytes(8), ack=True))) == []  # (matched)
    (found,) = conv.finding_objects(conv.send(C2S, f.headers(C2S, 5, REQ, flags=[
        "END_HEADERS", "END_STREAM"])))
    assert (found.code, found.severity.name) == ("stream-after-goaway", "WARNING")
