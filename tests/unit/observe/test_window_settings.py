"""SETTINGS_INITIAL_WINDOW_SIZE changes every open stream's window when it takes
effect (RFC 9113 §6.9.2): a stalled stream it opens has resumed, a window it
pushes above 2^31-1 is a FLOW_CONTROL_ERROR, and the log line says by how much
the windows moved. Also: a peer that rejects SETTINGS with an error GOAWAY is
not blamed for not acknowledging them, and the summary's longest stall counts
the hang that never resumed."""

from __future__ import annotations

from proxy.events import Batch
from proxy.observe.connection import ConnectionObserver
from proxy.observe.describe import event_line
from proxy.observe.enums import Direction
from proxy.observe.events import (
    ConnectionFindingRaised,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
    SettingsAcknowledged,
)
from proxy.observe.findings import Severity
from proxy.summary import RunSummary
from tests.unit.observe.conftest import Conversation

C2S, S2C = Direction.C2S, Direction.S2C
REQUEST = [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/")]


def _stalled_download(conv: Conversation) -> None:
    """Stream 1's response fills the client's initial 65,535-byte stream window."""
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    conv.send(C2S, conv.f.window_update(0, 1 << 20))  # only the connection window grows
    for _ in range(3):
        conv.send(S2C, conv.f.data(1, b"x" * 16384))
    conv.send(S2C, conv.f.data(1, b"x" * 16383))


def test_a_larger_initial_window_resumes_a_stalled_stream(conv: Conversation) -> None:
    _stalled_download(conv)
    assert [(e.stream_id, e.direction) for e in conv.events
            if isinstance(e, FlowControlStalled)] == [(1, S2C)]
    conv.send(C2S, conv.f.settings(initial_window_size=65535 + 16384))
    new = conv.send(S2C, conv.f.settings(ack=True), dt=0.5)
    (resumed,) = [e for e in new if isinstance(e, FlowControlResumed)]
    assert (resumed.stream_id, resumed.direction) == (1, S2C)
    assert 0.5 <= resumed.stalled_for < 0.6
    (acked,) = [e for e in new if isinstance(e, SettingsAcknowledged)]
    assert (acked.window_delta, acked.streams_adjusted) == (16384, 1)
    assert event_line(acked) == ("settings in force for the server (the client's settings, "
                                 "now binding the server): INITIAL_WINDOW_SIZE=81919;"
                                 " 1 open stream's window +16384 (RFC 9113 §6.9.2): stream 1"
                                 " now 16384")
    # The server may send 16,384 more bytes on the stream, and no more.
    assert conv.findings(conv.send(S2C, conv.f.data(1, b"y" * 16384))) == []
    assert conv.findings(conv.send(S2C, conv.f.data(1, b"z"))) == ["flow-control-exceeded"]


def test_a_lowered_initial_window_that_leaves_a_body_unable_to_go_on_is_a_stall(
        conv: Conversation) -> None:
    """RFC 9113 §6.9.2: a smaller INITIAL_WINDOW_SIZE can take a window below 0; a
    sender in the middle of a body must then wait for WINDOW_UPDATEs that make it
    positive. The stall starts at the ACK (not only when DATA spends a window to
    0), a WINDOW_UPDATE that leaves it at 0 or below does not end it, and the
    ACK's line says the windows that result, not only the change."""
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    conv.send(S2C, conv.f.data(1, b"x" * 16384))
    conv.send(S2C, conv.f.data(1, b"x" * 13616))  # window 35,535
    conv.send(C2S, conv.f.settings(initial_window_size=16384))
    new = conv.send(S2C, conv.f.settings(ack=True), dt=0.1)
    acked, stalled = [e for e in new if isinstance(e, (SettingsAcknowledged,
                                                       FlowControlStalled))]
    assert isinstance(acked, SettingsAcknowledged) and acked.windows == ((1, -13616),)
    assert event_line(acked) == ("settings in force for the server (the client's settings, "
                                 "now binding the server): INITIAL_WINDOW_SIZE=16384;"
                                 " 1 open stream's window -49151 (RFC 9113 §6.9.2): stream 1"
                                 " now -13616")
    assert isinstance(stalled, FlowControlStalled)
    assert (stalled.stream_id, stalled.direction, stalled.window) == (1, S2C, -13616)
    assert event_line(stalled) == ("flow control: server blocked, stream 1 window is -13616 "
                                   "after the SETTINGS change (RFC 9113 §6.9.2)")
    not_yet = conv.send(C2S, conv.f.window_update(1, 13616), dt=0.5)  # back to 0 only
    assert not [e for e in not_yet if isinstance(e, FlowControlResumed)]
    (resumed,) = [e for e in conv.send(C2S, conv.f.window_update(1, 1000), dt=0.5)
                  if isinstance(e, FlowControlResumed)]
    assert resumed.stream_id == 1 and 0.99 < resumed.stalled_for < 1.01
    assert not resumed.connection_blocked


def test_a_stream_window_that_reopens_while_the_connections_is_spent_says_so(
        conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    for _ in range(3):
        conv.send(S2C, conv.f.data(1, b"x" * 16384))
    stalls = conv.send(S2C, conv.f.data(1, b"x" * 16383))  # both windows at 0
    assert sorted(e.stream_id for e in stalls if isinstance(e, FlowControlStalled)) == [0, 1]
    (resumed,) = [e for e in conv.send(C2S, conv.f.window_update(1, 50000))
                  if isinstance(e, FlowControlResumed)]
    assert resumed.connection_blocked
    assert event_line(resumed).endswith(  # type: ignore[union-attr]
        "(the connection window is still 0: still blocked)")
    (conn,) = [e for e in conv.send(C2S, conv.f.window_update(0, 50000))
               if isinstance(e, FlowControlResumed)]
    assert conn.stream_id == 0 and not conn.connection_blocked


def test_a_lowered_window_does_not_stall_a_stream_whose_sender_has_not_started(
        conv: Conversation) -> None:
    """No body under way (the server has not answered yet), or the body already
    ended: nothing waits on the window, so no stall. A response whose HEADERS came
    without END_STREAM has a body to send: that one stalls."""
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(C2S, conv.f.headers(C2S, 3, REQUEST, flags=["END_HEADERS"]))  # (uploading)
    conv.send(S2C, conv.f.headers(S2C, 3, [(":status", "200")]))
    conv.send(S2C, conv.f.data(3, b"d" * 100, flags=["END_STREAM"]))
    conv.send(C2S, conv.f.headers(C2S, 5, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 5, [(":status", "200")]))
    conv.send(C2S, conv.f.settings(initial_window_size=0))
    new = conv.send(S2C, conv.f.settings(ack=True))
    assert [(e.stream_id, e.window) for e in new if isinstance(e, FlowControlStalled)] == [
        (5, 0)]
    (acked,) = [e for e in new if isinstance(e, SettingsAcknowledged)]
    assert acked.windows == ((1, 0), (3, -100), (5, 0))
    assert event_line(acked).endswith(  # type: ignore[union-attr]
        ": stream 1 now 0, stream 3 now -100, stream 5 now 0")


def test_a_body_announced_with_no_window_is_a_stall_from_its_headers(
        conv: Conversation) -> None:
    """An INITIAL_WINDOW_SIZE of 0 from the start: the response HEADERS announce a
    body (no END_STREAM) that cannot be sent; the stall starts there."""
    conv.send(C2S, conv.f.settings(initial_window_size=0))
    conv.send(S2C, conv.f.settings(ack=True))
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    new = conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    (stalled,) = [e for e in new if isinstance(e, FlowControlStalled)]
    assert (stalled.stream_id, stalled.direction, stalled.window) == (1, S2C, 0)
    (resumed,) = [e for e in conv.send(C2S, conv.f.window_update(1, 1000), dt=0.2)
                  if isinstance(e, FlowControlResumed)]
    assert resumed.stream_id == 1


def test_data_within_a_larger_initial_window_not_yet_acknowledged_is_no_violation(
        conv: Conversation) -> None:
    """The client raised INITIAL_WINDOW_SIZE; the server processed that SETTINGS and
    used the room before its ACK reached the observer (RFC 9113 §6.9.2): not a
    flow-control violation. Beyond the raised window it still is."""
    conv.send(C2S, conv.f.settings(initial_window_size=1000))
    conv.send(S2C, conv.f.settings(ack=True))
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    conv.send(C2S, conv.f.settings(initial_window_size=50000))
    assert conv.findings(conv.send(S2C, conv.f.data(1, b"x" * 10000))) == []
    assert conv.findings(conv.send(S2C, conv.f.data(1, b"x" * 10000))) == []
    acked = conv.send(S2C, conv.f.settings(ack=True))
    assert [e.windows for e in acked if isinstance(e, SettingsAcknowledged)] == [((1, 30000),)]
    assert conv.findings(conv.send(S2C, conv.f.data(1, b"x" * 16384))) == []
    assert conv.findings(conv.send(S2C, conv.f.data(1, b"x" * 16384))) == [
        "flow-control-exceeded"]


def test_an_initial_window_that_overflows_an_open_stream_is_an_error(
        conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST))  # the client will send a body
    conv.send(S2C, conv.f.window_update(1, (1 << 31) - 1 - 65535))  # stream window at max
    assert conv.findings() == []
    conv.send(S2C, conv.f.settings(initial_window_size=65536))
    new = conv.send(C2S, conv.f.settings(ack=True))
    assert conv.finding_objects(new) == []  # (not the ACK's: the client only applied them)
    (raised,) = [e for e in new if isinstance(e, ConnectionFindingRaised)]
    finding = raised.finding
    assert raised.direction is S2C  # the server's SETTINGS did it
    assert (finding.code, finding.rfc) == ("window-overflow", "RFC 9113 §6.9.2")
    assert finding.message.startswith("the server's INITIAL_WINDOW_SIZE = 65536 (+1)")
    assert "stream 1" in finding.message and "FLOW_CONTROL_ERROR" in finding.message


def test_no_settings_ack_owed_after_an_error_goaway(conv: Conversation) -> None:
    conv.send(C2S, conv.f.settings(initial_window_size=1 << 31))  # out of range
    goaway = bytes.fromhex("000008070000000000") + (0).to_bytes(4, "big") + (3).to_bytes(4, "big")
    conv.send(S2C, goaway)  # FLOW_CONTROL_ERROR: the server rejects them
    closing = conv.obs.close(conv.t + 5, "server")
    assert not [e for e in closing if isinstance(e, ConnectionFindingRaised)
                and e.finding.code == "settings-not-acknowledged"]
    # Without the GOAWAY the missing ACK is still reported.
    other = Conversation()
    other.send(C2S, other.f.settings(max_concurrent_streams=5))
    assert [e.finding.code for e in other.obs.close(other.t + 5, "server")
            if isinstance(e, ConnectionFindingRaised)] == ["settings-not-acknowledged"]


def test_the_longest_stall_counts_one_that_never_resumed() -> None:
    conv = Conversation()
    _stalled_download(conv)
    conv.send(C2S, conv.f.window_update(1, 100), dt=0.002)  # resumed after 2 ms
    conv.send(S2C, conv.f.data(1, b"x" * 100))  # stalled again, never resumed
    summary = RunSummary()
    summary.handle(Batch(conn_id=1, t=conv.t, events=tuple(conv.events)))
    summary.handle(Batch(conn_id=1, t=conv.t + 3.0, events=()))  # still stalled 3 s on
    lines = "\n".join(summary.lines())
    assert "flow control: 2 stalls, longest 3000.0 ms (#1 stream 1, server blocked, never " \
           "resumed)" in lines, lines
    assert summary.as_dict()["stalls"]["longest"]["resumed"] is False


def test_the_http2_settings_of_an_h2c_upgrade_set_stream_1s_windows() -> None:
    obs = ConnectionObserver()
    obs.upgrade_h2c(http2_settings=b"\x00\x04\x00\x01\x00\x00",
                    request_headers=((":method", "GET"), (":path", "/")), t=0.0)
    assert obs.streams[1].send_window[S2C] == 65536


def test_an_informational_response_that_ends_its_stream_is_malformed(
        conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    new = conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "103"), ("link", "</a>")],
                                        flags=["END_HEADERS", "END_STREAM"]))
    (finding,) = conv.finding_objects(new)
    assert (finding.code, finding.rfc) == ("informational-end-stream", "RFC 9113 §8.1")
    # An informational response followed by the final one is fine.
    conv.send(C2S, conv.f.headers(C2S, 3, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    assert conv.findings(conv.send(S2C, conv.f.headers(S2C, 3, [(":status", "103")]))) == []
    assert conv.findings(conv.send(S2C, conv.f.headers(
        S2C, 3, [(":status", "204")], flags=["END_HEADERS", "END_STREAM"]))) == []


def test_padding_shown_and_flagged_when_not_zero(conv: Conversation) -> None:
    from proxy.observe.describe import frame_summary
    from proxy.observe.jsonview import frame_dict

    new = conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "PADDED"],
                                        pad_length=3))
    (frame,) = conv.frames(new)
    assert conv.findings(new) == []  # hyperframe pads with zeros
    assert frame_summary(frame).startswith("+3 padding  GET a.test/")
    data = bytearray(conv.f.data(1, b"xy", pad_length=2, flags=["END_STREAM"]))
    data[-2:] = b"ZZ"
    new = conv.send(C2S, bytes(data))
    (finding,) = conv.finding_objects(new)
    assert (finding.code, finding.rfc) == ("padding-not-zero", "RFC 9113 §6.1")
    assert "0x5a" in finding.message
    assert frame_dict(conv.frames(new)[0])["padding_hex"] == "5a5a"


def test_data_on_an_idle_stream_is_no_stall(conv: Conversation) -> None:
    new = conv.send(C2S, conv.f.data(1, b"x" * 10))
    assert conv.findings(new) == ["frame-on-idle-stream"]
    assert not [e for e in new if isinstance(e, FlowControlStalled)]


def test_headers_on_stream_0_is_one_error_and_still_decoded(conv: Conversation) -> None:
    frame = bytearray(conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    frame[5:9] = bytes(4)  # stream 0
    new = conv.send(C2S, bytes(frame))
    assert conv.findings(new) == ["stream-id-zero"]
    (frame,) = conv.frames(new)
    assert frame.block is not None and (":path", "/") in frame.block.headers
    # The block went into the HPACK state: the next one, using it, decodes.
    new = conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    assert conv.findings(new) == []


def test_reserved_bits_inside_payloads_are_flagged(conv: Conversation) -> None:
    update = bytearray(conv.f.window_update(0, 16))
    update[9] |= 0x80
    new = conv.send(C2S, bytes(update))
    (finding,) = conv.finding_objects(new)
    assert (finding.code, finding.rfc) == ("reserved-bit-set", "RFC 9113 §6.9")
    assert conv.frames(new)[0].windows[0] == 65535 + 16  # type: ignore[index]
    goaway = bytes.fromhex("000008070000000000") + (0x80000001).to_bytes(4, "big") + bytes(4)
    (finding,) = conv.finding_objects(conv.send(S2C, goaway))
    assert finding.rfc == "RFC 9113 §6.8"


def test_decode_takes_a_push_promise_for_the_servers(capsys: object) -> None:
    from proxy.cli import main

    assert main(["decode", "00000004000000000000000a050400000001800000028287844101"
                           "61"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "push-from-client" not in out and "RFC 9113 §6.6" in out


def test_a_broken_header_block_says_what_decoded_before_the_break(
        conv: Conversation) -> None:
    import hyperframe.frame as hf

    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    broken = hf.HeadersFrame(1, flags=["END_HEADERS"])
    broken.data = bytes.fromhex("88") + bytes.fromhex("80")  # :status 200, then index 0
    (finding,) = conv.finding_objects(conv.send(S2C, broken.serialize()))
    assert finding.code == "hpack-error"
    assert finding.message.endswith("; decoded before it: :status: 200")


GRPC_REQUEST = [(":method", "POST"), (":scheme", "http"), (":authority", "a.test"),
                (":path", "/pkg.Svc/Call"), ("content-type", "application/grpc"),
                ("te", "trailers")]
GRPC_OK = [(":status", "200"), ("content-type", "application/grpc")]


def _grpc_call(conv: Conversation, sid: int) -> None:
    conv.send(C2S, conv.f.headers(C2S, sid, GRPC_REQUEST, flags=["END_HEADERS", "END_STREAM"]))


def test_grpc_status_outcomes_clients_fail_on_are_flagged(conv: Conversation) -> None:
    # A grpc-status in response HEADERS that do not end the stream does not count.
    _grpc_call(conv, 1)
    conv.send(S2C, conv.f.headers(S2C, 1, [*GRPC_OK, ("grpc-status", "0")]))
    (missing,) = conv.finding_objects(conv.send(S2C, conv.f.data(1, b"\0\0\0\0\0",
                                                                  flags=["END_STREAM"])))
    assert missing.code == "grpc-status-missing" and "does not count" in missing.message
    # Not a status code: the client cannot parse it.
    for sid, value in ((3, ""), (5, "abc"), (7, "99")):
        _grpc_call(conv, sid)
        conv.send(S2C, conv.f.headers(S2C, sid, GRPC_OK))
        new = conv.send(S2C, conv.f.headers(S2C, sid, [("grpc-status", value)],
                                            flags=["END_HEADERS", "END_STREAM"]))
        assert conv.findings(new) == ["grpc-status-invalid"], (value, conv.findings(new))
    # A load balancer's 503 for a gRPC call: the client maps the HTTP status.
    _grpc_call(conv, 9)
    new = conv.send(S2C, conv.f.headers(S2C, 9, [(":status", "503"),
                                                 ("content-type", "application/grpc")],
                                        flags=["END_HEADERS", "END_STREAM"]))
    (mapped,) = conv.finding_objects(new)
    assert mapped.code == "grpc-status-missing" and "HTTP 503 to (UNAVAILABLE)" in mapped.message
    # A Trailers-Only response and ordinary trailers are fine.
    _grpc_call(conv, 11)
    assert conv.findings(conv.send(S2C, conv.f.headers(
        S2C, 11, [*GRPC_OK, ("grpc-status", "5")], flags=["END_HEADERS", "END_STREAM"]))) == []
    _grpc_call(conv, 13)
    conv.send(S2C, conv.f.headers(S2C, 13, GRPC_OK))
    assert conv.findings(conv.send(S2C, conv.f.headers(
        S2C, 13, [("grpc-status", "0")], flags=["END_HEADERS", "END_STREAM"]))) == []
    # ... and, the classic, its own page (text/plain) in place of a gRPC response
    _grpc_call(conv, 15)
    conv.send(S2C, conv.f.headers(S2C, 15, [(":status", "503"), ("content-type", "text/plain")]))
    (page,) = conv.finding_objects(conv.send(S2C, conv.f.data(15, b"no healthy upstream",
                                                               flags=["END_STREAM"])))
    assert page.code == "grpc-status-missing" and page.stream_id == 15
    assert page.message.startswith("the answer to the gRPC call (text/plain, not "
                                   "application/grpc) on stream 15 ended with DATA and no "
                                   "trailers: no grpc-status, so the client fails the call "
                                   "with the code gRPC maps HTTP 503 to (UNAVAILABLE)")


def test_streams_above_a_graceful_goaway_were_not_processed_not_abandoned(
        conv: Conversation) -> None:
    for sid in (1, 3, 5):
        conv.send(C2S, conv.f.headers(C2S, sid, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    goaway = bytes.fromhex("000008070000000000") + (1).to_bytes(4, "big") + bytes(4)
    conv.send(S2C, goaway)  # NO_ERROR, last-stream-id 1: draining
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")],
                                  flags=["END_HEADERS", "END_STREAM"]))
    closing = [e.finding for e in conv.obs.close(conv.t + 0.1, "server")
               if isinstance(e, ConnectionFindingRaised)]
    assert [(f.code, f.severity.name) for f in closing] == [("stream-not-processed", "INFO")]
    assert "streams 3, 5 got no response" in closing[0].message


def test_streams_the_client_reset_above_a_goaway_are_not_said_safe_to_retry(
        conv: Conversation) -> None:
    """A rapid-reset client goes on resetting streams after the server's GOAWAY and
    close: those it cancelled itself were listed as 'not processed and safe to retry'."""
    goaway = bytes.fromhex("000008070000000000") + (1).to_bytes(4, "big") + bytes(4)
    for sid in (1, 3, 5):
        conv.send(C2S, conv.f.headers(C2S, sid, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
        if sid == 1:
            conv.send(S2C, goaway)
            conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")],
                                          flags=["END_HEADERS", "END_STREAM"]))
    # The server had closed its side before the client's reset came (the client had
    # sent this many bytes by then).
    ended = conv.obs.sides[C2S].offset
    conv.send(C2S, conv.f.rst(5))  # (CANCEL)
    closing = [e.finding for e in conv.obs.close(conv.t + 0.1, "server", {S2C: ended})
               if isinstance(e, ConnectionFindingRaised)]
    assert [f.code for f in closing] == ["stream-not-processed"]
    assert "stream 3 got no response" in closing[0].message, closing[0].message


def test_a_malformed_block_is_summarised_by_its_first_pseudo_header_and_values() -> None:
    from proxy.observe.describe import block_summary

    request_with_status = ((":method", "GET"), (":status", "200"), (":authority", "a"),
                           (":path", "/ok"))
    assert block_summary(request_with_status) == "GET a/ok"
    assert block_summary(((":method", "GET"), (":authority", "a"), (":path", "/ok"),
                          (":path", "/other"))) == "GET a/ok"
    assert block_summary(((":status", "200"), (":status", "204"))) == ":status 200"


def test_goaway_debug_data_reads_as_text(conv: Conversation) -> None:
    from proxy.observe.describe import frame_summary

    debug = b"draining for deploy \xff"
    goaway = (len(debug) + 8).to_bytes(3, "big") + b"\x07\x00\x00\x00\x00\x00" + \
        (1).to_bytes(4, "big") + bytes(4) + debug
    (frame,) = conv.frames(conv.send(S2C, goaway))
    assert frame_summary(frame) == ("last_stream_id=1 NO_ERROR debug='draining for deploy "
                                    "\\xff'")


def test_an_upload_cut_by_the_close_says_how_far_it_got(conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, [(":method", "POST"), *REQUEST[1:],
                                           ("content-length", "1000000")]))
    conv.send(C2S, conv.f.data(1, b"x" * 16384))
    closing = [e.finding for e in conv.obs.close(conv.t + 0.1, "client")
               if isinstance(e, ConnectionFindingRaised)]
    (cut,) = [f for f in closing if f.code == "stream-unfinished" and "request" in f.message]
    assert "stream 1 (16,384 of 1,000,000 bytes) unfinished" in cut.message, cut.message


def test_data_after_a_reset_the_sender_had_read_is_a_warning(conv: Conversation) -> None:
    """Frames in flight when a RST_STREAM arrives are a race (info). But a server that
    answered a request sent after the reset had read the reset: its later DATA on the
    reset stream was sent after it (RFC 9113 §5.1)."""
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    conv.send(S2C, conv.f.data(1, b"x" * 100))
    conv.send(C2S, conv.f.rst(1, 8))
    (race,) = conv.finding_objects(conv.send(S2C, conv.f.data(1, b"y" * 100)))
    assert (race.code, race.severity.name) == ("frame-after-reset", "INFO")
    conv.send(C2S, conv.f.headers(C2S, 3, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 3, [(":status", "200")],
                                  flags=["END_HEADERS", "END_STREAM"]))
    (late,) = conv.finding_objects(conv.send(S2C, conv.f.data(1, b"z" * 100)))
    assert (late.code, late.severity.name) == ("frame-after-reset", "WARNING")
    assert "had read that" in late.message


def test_data_that_overruns_a_window_is_a_violation_not_a_stall(conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    for _ in range(3):
        conv.send(S2C, conv.f.data(1, b"x" * 16384))
    new = conv.send(S2C, conv.f.data(1, b"x" * 16384))  # 65,536 > 65,535: overrun by 1
    assert "flow-control-exceeded" in conv.findings(new)
    assert not [e for e in new if isinstance(e, FlowControlStalled)]  # it did not wait


def test_a_flow_control_reset_the_observer_cannot_explain_is_a_warning(
        conv: Conversation) -> None:
    """The server resets an upload with FLOW_CONTROL_ERROR though the client stayed
    within every window by the observer's count (curl and nghttpd disagree this way
    when a SETTINGS change crosses an upload): say so, rather than let the proxy
    look guilty. A reset that follows a real overrun is explained: no warning."""
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS"]))
    conv.send(C2S, conv.f.data(1, b"u" * 1000))
    found = conv.finding_objects(conv.send(S2C, conv.f.rst(1, 0x3)))
    assert [(f.code, f.severity) for f in found] == [("flow-control-error-unexplained",
                                                      Severity.WARNING)]
    assert "the client never sent more than a window allowed" in found[0].message
    conv.send(C2S, conv.f.headers(C2S, 3, REQUEST, flags=["END_HEADERS"]))
    for _ in range(4):
        conv.send(C2S, conv.f.data(3, b"u" * 16384))  # 65,536: one byte too many
    assert conv.findings(conv.send(S2C, conv.f.rst(3, 0x3))) == []
    # A WINDOW_UPDATE that pushes the server's window past 2^31-1 (§6.9.1) explains it too.
    conv.send(C2S, conv.f.headers(C2S, 5, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    assert conv.findings(conv.send(C2S, conv.f.window_update(5, 2**31 - 1))) == [
        "window-overflow"]
    assert conv.findings(conv.send(S2C, conv.f.rst(5, 0x3))) == []


def test_an_excerpt_does_not_judge_windows_it_cannot_know() -> None:
    """``h2scope decode`` of one WINDOW_UPDATE from a log (no preface: an excerpt):
    the connection's window before it is unknown, so +2^31-1 is no overflow."""
    from proxy.observe.connection import ConnectionObserver
    obs = ConnectionObserver(preface="optional", partial=True)
    wu = bytes.fromhex("000004080000000000") + (2**31 - 1).to_bytes(4, "big")
    (frame,) = [e for e in obs.feed(C2S, wu, 0.0) if e.__class__.__name__ == "FrameObserved"]
    assert [f.code for f in frame.findings] == []


def test_an_excerpt_takes_a_frame_on_an_unseen_stream_for_one_opened_before_it() -> None:
    """A WINDOW_UPDATE (or DATA, RST_STREAM) of the client's on stream 1, pasted
    alone: the stream was opened before the excerpt, not idle."""
    from proxy.observe.connection import ConnectionObserver
    obs = ConnectionObserver(preface="optional", partial=True)
    wu = bytes.fromhex("000004080000000001") + (100).to_bytes(4, "big")
    (frame,) = [e for e in obs.feed(C2S, wu, 0.0) if e.__class__.__name__ == "FrameObserved"]
    assert [f.code for f in frame.findings] == []


def test_a_window_update_sent_behind_a_lowered_initial_window_does_not_end_the_stall(
        conv: Conversation) -> None:
    """The client lowers INITIAL_WINDOW_SIZE and opens a stalled stream's window a
    little, in one write. The server processes the SETTINGS first (RFC 9113 §6.5.3):
    its window goes 0 → -64535 → -64435, the stall goes on, from where it began
    (it was reported as 'reopened', then as a new and shorter stall at the ACK)."""
    _stalled_download(conv)
    conv.send(C2S, conv.f.settings(initial_window_size=1000), dt=0.5)
    new = conv.send(C2S, conv.f.window_update(1, 100))
    assert not [e for e in new if isinstance(e, FlowControlResumed)]
    # (its line shows the window as kept until the ACK, as the DATA lines between do)
    assert [e.windows for e in new if isinstance(e, FrameObserved)] == [(1 << 20, 100)]
    acked = conv.send(S2C, conv.f.settings(ack=True), dt=0.001)
    assert [e.windows for e in acked if isinstance(e, SettingsAcknowledged)] == [((1, -64435),)]
    assert not [e for e in acked if isinstance(e, (FlowControlStalled, FlowControlResumed))]
    (resumed,) = [e for e in conv.send(C2S, conv.f.window_update(1, 65000), dt=0.8)
                  if isinstance(e, FlowControlResumed)]
    assert 1.29 < resumed.stalled_for < 1.31  # the whole stall, from the DATA that began it
    assert len([e for e in conv.events if isinstance(e, FlowControlStalled)]) == 1


def test_a_window_update_that_overflows_a_raised_initial_window_is_its_stream_error(
        conv: Conversation) -> None:
    """SETTINGS(INITIAL_WINDOW_SIZE = 2^31-1) and WINDOW_UPDATE(+65536) on a stalled
    stream: the SETTINGS alone are legal (window 2,147,418,112); the WINDOW_UPDATE,
    processed after them, takes the window to 2^31 — a stream error (§6.9.1), as
    nghttpd answers it (RST_STREAM FLOW_CONTROL_ERROR), not the SETTINGS' connection
    error (§6.9.2)."""
    _stalled_download(conv)
    conv.send(C2S, conv.f.settings(initial_window_size=(1 << 31) - 1))
    new = conv.send(C2S, conv.f.window_update(1, 65536))
    (finding,) = conv.finding_objects(new)
    assert not [e for e in new if isinstance(e, FlowControlResumed)]  # (the reset ends it)
    assert (finding.code, finding.rfc, finding.stream_id) == ("window-overflow",
                                                             "RFC 9113 §6.9.1", 1)
    assert finding.message == (
        "stream 1's window would reach 2147483648 (with the INITIAL_WINDOW_SIZE = 2147483647 "
        "the client sent before it, which the server applies first), above 2^31-1: a stream "
        "error of type FLOW_CONTROL_ERROR")
    acked = conv.send(S2C, conv.f.settings(ack=True))
    assert not [e for e in acked if isinstance(e, ConnectionFindingRaised)]
    reset = conv.send(S2C, bytes.fromhex("000004030000000001") + (3).to_bytes(4, "big"))
    assert conv.findings(reset) == []  # (explained: not flow-control-error-unexplained)


def test_an_out_of_range_initial_window_pending_excuses_no_overrun(
        conv: Conversation) -> None:
    """INITIAL_WINDOW_SIZE = 2^31 never takes effect (§6.5.2: FLOW_CONTROL_ERROR):
    DATA past the window while it is pending is still flow-control-exceeded."""
    _stalled_download(conv)
    conv.send(C2S, conv.f.settings(initial_window_size=1 << 31))
    assert conv.findings(conv.send(S2C, conv.f.data(1, b"x"))) == ["flow-control-exceeded"]


def test_a_stall_the_connection_ends_in_is_a_warning_on_the_side_that_owed_the_window(
        ) -> None:
    """The client never opens stream 1's window and the connection ends: a hang, so
    a warning (``check --fail-on warning`` fails on it) charged to the client, naming
    the frame that began it. A stall its stream's reset ended is no hang."""
    conv = Conversation()
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
    for _ in range(3):
        conv.send(S2C, conv.f.data(1, b"x" * 16384))
    began = conv.send(S2C, conv.f.data(1, b"x" * 16383))  # both windows at 0
    seq = next(e.seq for e in began if isinstance(e, FlowControlStalled))
    closing = conv.obs.close(conv.t + 2.0, "client")
    (raised,) = [e for e in closing if isinstance(e, ConnectionFindingRaised)
                 and e.finding.code == "flow-control-stalled"]
    assert raised.direction is C2S and raised.finding.severity is Severity.WARNING
    assert raised.finding.seq == seq and raised.finding.stream_id == 1
    assert raised.finding.message == (
        f"the connection ended with the server still blocked by flow control on stream 1 "
        f"(window 0, since frame #{seq}, 2.0 s), the connection window (since frame #{seq}, "
        "2.0 s): the client never sent the WINDOW_UPDATE that would let it go on")

    reset = Conversation()
    _stalled_download(reset)
    reset.send(C2S, bytes.fromhex("000004030000000001") + (8).to_bytes(4, "big"))  # CANCEL
    assert not [e for e in reset.obs.close(reset.t + 2.0, "client")
                if isinstance(e, ConnectionFindingRaised)
                and e.finding.code == "flow-control-stalled"]


def test_a_window_update_after_its_senders_own_reset_is_said(conv: Conversation) -> None:
    """RFC 9113 §5.1: the client reset stream 1, then sent a WINDOW_UPDATE on it —
    information (the server ignores it, §6.9), not applied; the server's DATA in
    flight after the reset stays unflagged beyond the usual note."""
    _stalled_download(conv)
    conv.send(C2S, bytes.fromhex("000004030000000001") + (8).to_bytes(4, "big"))  # CANCEL
    new = conv.send(C2S, conv.f.window_update(1, 30000))
    (finding,) = conv.finding_objects(new)
    assert (finding.code, finding.severity) == ("frame-on-closed-stream", Severity.INFO)
    assert "after resetting it itself" in finding.message
    assert conv.findings(conv.send(C2S, conv.f.window_update(0, 30000))) == []


def test_a_zero_increment_behind_a_raised_initial_window_reopens_nothing(
        conv: Conversation) -> None:
    """SETTINGS raising the window, then a WINDOW_UPDATE of 0 (itself an error): the
    stall ends with the SETTINGS, which the ACK says, not with the WINDOW_UPDATE."""
    _stalled_download(conv)
    conv.send(C2S, conv.f.settings(initial_window_size=65535 + 1000))
    new = conv.send(C2S, conv.f.window_update(1, 0))
    assert not [e for e in new if isinstance(e, FlowControlResumed)]
    acked = conv.send(S2C, conv.f.settings(ack=True))
    assert [e.stream_id for e in acked if isinstance(e, FlowControlResumed)] == [1]


def test_settings_in_force_name_a_repeated_setting_once_with_its_last_value(
        conv: Conversation) -> None:
    """One SETTINGS frame that repeats INITIAL_WINDOW_SIZE leaves the last value in
    force; the line said both."""
    conv.send(C2S, conv.f.settings(initial_window_size=100000) + b"")
    frame = bytes.fromhex("00000c040000000000") + bytes.fromhex("0004000186a0") \
        + bytes.fromhex("0004000003e8")  # INITIAL_WINDOW_SIZE 100000, then 1000
    conv.send(C2S, frame)
    conv.send(S2C, conv.f.settings(ack=True))
    (acked,) = [e for e in conv.send(S2C, conv.f.settings(ack=True))
                if isinstance(e, SettingsAcknowledged)]
    assert event_line(acked) == ("settings in force for the server (the client's settings, "
                                 "now binding the server): INITIAL_WINDOW_SIZE=1000")


def _upload_behind_a_lowered_window(conv: Conversation, sid: int) -> None:
    """The client sends 49,152 bytes on ``sid``; the server lowers its
    INITIAL_WINDOW_SIZE to 16,384 and the client acknowledges: the window is -32,768."""
    conv.send(C2S, conv.f.window_update(0, 1 << 20))
    conv.send(S2C, conv.f.window_update(0, 1 << 20))
    conv.send(C2S, conv.f.headers(C2S, sid, REQUEST, flags=["END_HEADERS"]))
    for _ in range(3):
        conv.send(C2S, conv.f.data(sid, b"x" * 16384))
    conv.send(S2C, conv.f.settings(initial_window_size=16384))
    conv.send(C2S, conv.f.settings(ack=True))


def test_an_empty_data_that_ends_a_stream_needs_no_window(conv: Conversation) -> None:
    """RFC 9113 §6.9.1: an empty DATA frame with END_STREAM may be sent with no space in
    either window: it was flow-control-exceeded ('DATA of 0 bytes exceeds stream 1's
    window by 32768')."""
    _upload_behind_a_lowered_window(conv, 1)
    assert conv.findings(conv.send(C2S, conv.f.data(1, b"", flags=["END_STREAM"]))) == []


def test_data_sent_on_a_window_a_settings_change_made_negative_cites_6_9_2(
        conv: Conversation) -> None:
    """DATA with bytes on a window below 0 after a SETTINGS change: the sender had to
    wait for WINDOW_UPDATEs (§6.9.2), said so, not 'exceeds the window by'."""
    _upload_behind_a_lowered_window(conv, 1)
    (found,) = conv.finding_objects(conv.send(C2S, conv.f.data(1, b"y" * 10)))
    assert (found.code, found.rfc) == ("flow-control-exceeded", "RFC 9113 §6.9.2")
    assert found.message == (
        "DATA of 10 bytes sent while stream 1's window was -32768, below 0 after a SETTINGS "
        "change lowered INITIAL_WINDOW_SIZE: the client must wait for WINDOW_UPDATEs to make "
        "it positive")
    # The next DATA on it is said the same way: 10 bytes 'exceeding the window by
    # 32,788' (§6.9.1) read as if they had.
    (again,) = conv.finding_objects(conv.send(C2S, conv.f.data(1, b"z" * 10)))
    assert (again.rfc, again.message) == ("RFC 9113 §6.9.2", (
        "DATA of 10 bytes sent while stream 1's window was -32778, below 0 after a "
        "SETTINGS change lowered INITIAL_WINDOW_SIZE: the client must wait for "
        "WINDOW_UPDATEs to make it positive"))


def test_a_flow_control_reset_after_lowering_its_own_window_is_allowed(
        conv: Conversation) -> None:
    """RFC 9113 §6.9.3: after lowering INITIAL_WINDOW_SIZE a receiver may reset the
    streams that now exceed it with FLOW_CONTROL_ERROR: no flow-control-error-unexplained
    (it said the accounting differed), whether its SETTINGS were acknowledged or not."""
    _upload_behind_a_lowered_window(conv, 1)
    assert conv.findings(conv.send(S2C, conv.f.rst(1, 0x3))) == []
    conv.send(C2S, conv.f.headers(C2S, 3, REQUEST, flags=["END_HEADERS"]))
    conv.send(C2S, conv.f.data(3, b"x" * 10000))
    conv.send(S2C, conv.f.settings(initial_window_size=1000))  # not acknowledged yet
    assert conv.findings(conv.send(S2C, conv.f.rst(3, 0x3))) == []
    # Within the window even after the change: still unexplained.
    conv.send(C2S, conv.f.headers(C2S, 5, REQUEST, flags=["END_HEADERS"]))
    conv.send(C2S, conv.f.data(5, b"x" * 10))
    assert conv.findings(conv.send(S2C, conv.f.rst(5, 0x3))) == [
        "flow-control-error-unexplained"]


def test_a_client_that_sends_no_preface_after_an_h2c_101_is_not_charged_a_window() -> None:
    """Apache and h2o send SETTINGS, the response HEADERS and 64 KiB of DATA right after
    the 101; a client that then leaves without its preface was charged a
    flow-control hang ('the client never sent the WINDOW_UPDATE'). The fault is the
    missing preface (RFC 7540 §3.2)."""
    from proxy.observe.enums import CONNECTION_PREFACE
    from proxy.observe.events import ConnectionFindingRaised
    from tests.unit.capture.traffic import raw_frame

    server = raw_frame(4, 0, 0, b"") + raw_frame(1, 4, 1, bytes.fromhex("88"))
    server += b"".join(raw_frame(0, 0, 1, bytes(16383)) for _ in range(4))
    server += raw_frame(0, 0, 1, bytes(3))  # (65,535 bytes: every window spent)

    def closed(client: bytes) -> list[tuple[str, str]]:
        obs = ConnectionObserver()
        obs.upgrade_h2c(http2_settings=b"", request_headers=(
            (":method", "GET"), (":path", "/big"), (":scheme", "http"),
            (":authority", "a")), t=0.0)
        if client:
            obs.feed(Direction.C2S, client, 0.01)
        obs.feed(Direction.S2C, server, 0.01)
        return [(e.finding.code, e.finding.severity.name) for e in obs.close(0.02, "client")
                if isinstance(e, ConnectionFindingRaised)]

    said = closed(b"")
    assert ("preface-missing", "WARNING") in said, said
    assert all(code != "flow-control-stalled" for code, _ in said), said
    # A client that sent its preface and then owed the window still owes it.
    said = closed(CONNECTION_PREFACE + raw_frame(4, 0, 0, b""))
    assert ("flow-control-stalled", "WARNING") in said and \
        all(code != "preface-missing" for code, _ in said), said
