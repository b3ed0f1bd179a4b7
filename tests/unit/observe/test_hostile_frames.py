"""Frames a peer can craft against the observer, found by driving a proxy with
them: a cycle in the priority tree (the observer, and with it the whole proxy,
looped forever), PRIORITY frames for idle streams (each one a node nothing
removes), and extension frames whose values were printed raw."""

from __future__ import annotations

import threading

from proxy.cli import main
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved
from proxy.observe.priority import MAX_NODES, PriorityTree
from tests.unit.observe.test_connection import raw_frame

C2S, S2C = Direction.C2S, Direction.S2C


def finishes(work, seconds: float = 10.0) -> bool:
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(seconds)


def test_a_push_promise_that_promises_its_own_stream_does_not_hang_the_observer(
        capsys) -> None:
    """PUSH_PROMISE on stream 2 promising stream 2, then another on it: the tree
    got stream 2 as its own parent and the next walk through it never ended."""
    hexed = ("00000004000000000000000d05040000000200000002828641811f4482607f00000b0504000000"
             "02000000048286bf4482623f")
    assert finishes(lambda: main(["decode", "--from", "server", hexed]))
    assert "push-on-closed-stream" in capsys.readouterr().out


def test_a_priority_cycle_cannot_be_built_whatever_the_caller() -> None:
    tree = PriorityTree()
    tree.set(3, 3, 16, False)  # (a self-dependency: reported by the caller, ignored here)
    assert 3 not in tree
    tree.set(3, 5, 16, False)
    tree.set(5, 3, 16, True)  # §5.3.3: 3 first moves up to 5's old parent
    assert finishes(lambda: tree.set(7, 3, 16, False))
    assert tree.node(5).parent == 3 and tree.node(3).parent == 0


def test_priority_frames_for_idle_streams_stay_bounded_and_are_flagged_once() -> None:
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE + raw_frame(0x4, 0, 0, b""), 0.0)
    frames = b"".join(raw_frame(0x2, 0, 2 * i + 1, (0).to_bytes(4, "big") + b"\x0f")
                      for i in range(MAX_NODES + 500))
    events = obs.feed(C2S, frames, 0.1)
    assert len(obs.priority) <= MAX_NODES
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [f.code for f in found].count("priority-tree-limit") == 1
    # (RFC 9113 §5.3.2 only deprecates the tree: bounding it is RFC 7540 §5.3.4's)
    assert {f.rfc for f in found if f.code == "priority-tree-limit"} == {
        "RFC 7540 §5.3.4, RFC 9113 §10.5"}


def test_extension_frames_carrying_control_characters_do_not_reach_the_terminal() -> None:
    """ALTSVC, ORIGIN and PRIORITY_UPDATE values are a peer's bytes: printed raw,
    a line break and an escape sequence forged a log line ('0.300 #1 ... :status 200
    (forged)') and cleared the real one."""
    from proxy.observe.describe import frame_summary

    forged = b"x\n    0.300 #1   <-     1 HEADERS  :status 200 (forged)\x1b[2K"
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE + raw_frame(0x4, 0, 0, b""), 0.0)
    events = obs.feed(S2C, raw_frame(0x4, 0, 0, b"")
                      + raw_frame(0xA, 0, 0, len(b"o\x1b").to_bytes(2, "big") + b"o\x1b" + forged)
                      + raw_frame(0xC, 0, 0, len(forged).to_bytes(2, "big") + forged), 0.1)
    events += obs.feed(C2S, raw_frame(0x10, 0, 0, (1).to_bytes(4, "big") + forged), 0.2)
    lines = [frame_summary(e) for e in events if isinstance(e, FrameObserved)
             and e.frame.type in (0xA, 0xC, 0x10)]
    assert len(lines) == 3
    for line in lines:
        assert "\n" not in line and "\x1b" not in line, line
        assert "\\x0a" in line and "\\x1b[2K" in line


def test_a_header_block_cut_off_before_its_continuation_stops_the_decoding() -> None:
    """The cut block inserted x-new into the encoder's table; the next block indexes
    it. Decoding on with the table that missed the insert showed 'x-old: old', a
    field the encoder never sent there, without a finding."""
    import hpack

    enc = hpack.Encoder()
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE + raw_frame(0x4, 0, 0, b"")
             + raw_frame(0x1, 0x5, 1, bytes.fromhex("82868441") + b"\x01a")
             + raw_frame(0x1, 0x5, 3, bytes.fromhex("82868441") + b"\x01a"), 0.0)
    first = enc.encode([(":status", "200"), ("x-old", "old")])
    cut = enc.encode([(":status", "200"), ("x-new", "new")])
    again = enc.encode([(":status", "200"), ("x-new", "new")])  # (indexes x-new)
    events = obs.feed(S2C, raw_frame(0x4, 0, 0, b"") + raw_frame(0x1, 0x5, 1, first)
                      + raw_frame(0x1, 0x1, 3, cut)  # no END_HEADERS ...
                      + raw_frame(0x6, 0, 0, b"8 bytes!")  # ... and no CONTINUATION
                      + raw_frame(0x1, 0x5, 3, again), 0.1)
    frames = [e for e in events if isinstance(e, FrameObserved)]
    assert any(f.code == "continuation-missing" and "cannot be decoded" in f.message
               for e in frames for f in e.findings)
    last = frames[-1]
    assert last.frame.type == 0x1 and last.block is None  # not decoded, rather than wrong
    assert not any(e.block is not None and ("x-old", "old") in e.block.headers
                   for e in frames[2:])


def test_a_table_size_lowered_and_raised_again_must_be_signalled_at_its_lowest() -> None:
    """SETTINGS_HEADER_TABLE_SIZE 4096 → 0 → 4096, both acknowledged, then a block
    that signals only 4096 and indexes 62: the entry there should have been evicted
    by the update to 0 the encoder skipped. It was decoded as if nothing happened."""
    import hpack

    def settings(size: int) -> bytes:
        return raw_frame(0x4, 0, 0, (1).to_bytes(2, "big") + size.to_bytes(4, "big"))

    enc = hpack.Encoder()
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE + raw_frame(0x4, 0, 0, b"")
             + raw_frame(0x1, 0x5, 1, bytes.fromhex("82868441") + b"\x01a"), 0.0)
    obs.feed(S2C, raw_frame(0x4, 0, 0, b"") + raw_frame(0x4, 1, 0, b"")
             + raw_frame(0x1, 0x5, 1, enc.encode([(":status", "200"), ("x-a", "1")])), 0.1)
    obs.feed(C2S, raw_frame(0x4, 1, 0, b"") + settings(0) + settings(4096)
             + raw_frame(0x1, 0x5, 3, bytes.fromhex("82868441") + b"\x01a"), 0.2)
    skipped = bytes.fromhex("3fe11f") + b"\x88\xbe"  # size update 4096; :status 200; idx 62
    events = obs.feed(S2C, raw_frame(0x4, 1, 0, b"") + raw_frame(0x4, 1, 0, b"")
                      + raw_frame(0x1, 0x5, 3, skipped), 0.3)
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [(f.code, f.rfc) for f in found] == [
        ("hpack-error", "RFC 7541 §4.2, RFC 9113 §4.3.1, §4.3")]  # (§4.3.1: HTTP/2's MUST)
    assert "lowered to 0 since the last block" in found[0].message
    assert "go no lower than 4096" in found[0].message


def _codes(events: list) -> list[str]:
    return [f.code for e in events if isinstance(e, FrameObserved) for f in e.findings]


def _client_opened() -> ConnectionObserver:
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE + raw_frame(0x4, 0, 0, b"")
             + raw_frame(0x1, 0x5, 1, bytes.fromhex("82868441") + b"\x01a")
             + raw_frame(0x1, 0x5, 3, bytes.fromhex("82868441") + b"\x01a"), 0.0)
    obs.feed(S2C, raw_frame(0x4, 0, 0, b""), 0.0)
    return obs


def test_a_status_outside_100_to_599_is_invalid() -> None:
    import hpack

    obs, enc = _client_opened(), hpack.Encoder()
    events = obs.feed(S2C, raw_frame(0x1, 0x5, 1, enc.encode([(":status", "099")]))
                      + raw_frame(0x1, 0x5, 3, enc.encode([(":status", "600")])), 0.1)
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [f.code for f in found] == ["pseudo-header-invalid"] * 2
    # (RFC 9110 §15's own words, not a paraphrase in quotation marks)
    assert found[1].message == (':status 600 is outside 100..599 ("All valid status codes are '
                                'within the range of 100 to 599, inclusive.")')


def test_a_settings_ack_first_says_so_and_a_raised_goaway_keeps_the_lower_limit() -> None:
    obs = ConnectionObserver()
    events = obs.feed(C2S, CONNECTION_PREFACE + raw_frame(0x4, 1, 0, b""), 0.0)
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert "first frame is a SETTINGS ACK, not its own SETTINGS" in found[0].message
    obs = _client_opened()

    def goaway(last: int) -> bytes:
        return raw_frame(0x7, 0, 0, last.to_bytes(4, "big") + bytes(4))
    assert _codes(obs.feed(S2C, goaway(3) + goaway(5), 0.1)) == \
        ["goaway-last-stream-id-increased"]
    events = obs.feed(C2S, raw_frame(0x1, 0x5, 5, bytes.fromhex("82868441") + b"\x01a"), 0.2)
    assert "stream-after-goaway" in _codes(events)  # (the limit is still 3)


def test_priority_update_for_stream_0_is_a_connection_error() -> None:
    obs = _client_opened()
    events = obs.feed(C2S, raw_frame(0x10, 0, 0, bytes(4) + b"u=2"), 0.1)
    assert _codes(events) == ["priority-update-stream-0"]


def test_content_length_fields_that_disagree_make_the_message_malformed() -> None:
    """Two fields (3 and 4) followed by 4 bytes: the last value won and matched, so
    nothing was said; one field '3, 4' was left unchecked without a word."""
    import hpack

    obs, enc = _client_opened(), hpack.Encoder()
    events = obs.feed(S2C, raw_frame(0x1, 0x4, 1, enc.encode(
        [(":status", "200"), ("content-length", "3"), ("content-length", "4")]))
        + raw_frame(0x0, 0x1, 1, b"four")
        + raw_frame(0x1, 0x4, 3, enc.encode([(":status", "200"), ("content-length", "3, 4")]))
        + raw_frame(0x0, 0x1, 3, b"four"), 0.1)
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [f.code for f in found] == ["content-length-conflict"] * 2, found
    assert "disagree (3, 4)" in found[0].message
    same = _client_opened().feed(S2C, raw_frame(0x1, 0x4, 1, hpack.Encoder().encode(
        [(":status", "200"), ("content-length", "4"), ("content-length", "4")]))
        + raw_frame(0x0, 0x1, 1, b"four"), 0.1)
    assert _codes(same) == []  # (the same number twice is allowed)


def test_a_content_length_that_is_not_a_number_is_malformed() -> None:
    """'abc' and '-1' went unflagged: nghttp2 resets such a request (PROTOCOL_ERROR)
    and the user saw a reset with no reason."""
    import hpack

    obs, enc = _client_opened(), hpack.Encoder()
    events = obs.feed(S2C, raw_frame(0x1, 0x4, 1, enc.encode(
        [(":status", "200"), ("content-length", "abc")])) + raw_frame(0x0, 0x1, 1, b"four")
        + raw_frame(0x1, 0x5, 3, enc.encode([(":status", "200"), ("content-length", "-1")])),
        0.1)
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [(f.code, f.stream_id) for f in found] == [("content-length-invalid", 1),
                                                       ("content-length-invalid", 3)], found
    assert "content-length 'abc' on stream 1 is not a number" in found[0].message
    fine = _client_opened().feed(S2C, raw_frame(0x1, 0x4, 1, hpack.Encoder().encode(
        [(":status", "200"), ("content-length", "4, 4")])) + raw_frame(0x0, 0x1, 1, b"four"),
        0.1)
    assert _codes(fine) == []


def test_a_promised_request_must_be_safe_and_name_its_authority() -> None:
    import hpack

    obs, enc = _client_opened(), hpack.Encoder()

    def promise(promised: int, fields: list[tuple[str, str]]) -> bytes:
        return raw_frame(0x5, 0x4, 1, promised.to_bytes(4, "big") + enc.encode(fields))
    events = obs.feed(S2C, promise(2, [(":method", "POST"), (":scheme", "https"),
                                       (":authority", "a"), (":path", "/x")])
                      + promise(4, [(":method", "GET"), (":scheme", "https"),
                                    (":path", "/y")])
                      + promise(6, [(":method", "GET"), (":scheme", "https"),
                                    (":authority", "a"), (":path", "/z")]), 0.1)
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [(f.code, f.stream_id) for f in found] == [("push-request-invalid", 2),
                                                      ("push-request-invalid", 4)], found
    assert "promised POST request" in found[0].message
    assert "without :authority" in found[1].message


def test_data_on_a_skipped_stream_shows_no_made_up_window() -> None:
    """The client opens stream 7 and then sends DATA on stream 5, which it skipped
    (so implicitly closed, RFC 9113 §5.1.1). That stream has no window; the log
    showed 'stream=-1', made up from an empty one."""
    from proxy.observe.describe import frame_summary

    obs = _client_opened()
    obs.feed(C2S, raw_frame(0x1, 0x4, 7, bytes.fromhex("83868441") + b"\x01a"), 0.1)
    events = obs.feed(C2S, raw_frame(0x0, 0x1, 5, b"x"), 0.2)
    data = next(e for e in events if isinstance(e, FrameObserved))
    assert data.windows is not None and data.windows[1] is None
    assert "stream=" not in frame_summary(data)
    assert "frame-on-closed-stream" in _codes(events)


def test_a_push_promise_from_the_client_does_not_move_its_stream_ids() -> None:
    """push-from-client says what is wrong; the client's next legal stream (5) was
    also flagged 'opened after stream 12', the id it had wrongly promised."""
    import hpack

    obs = _client_opened()
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "https"),
                                    (":authority", "a"), (":path", "/p")])
    events = obs.feed(C2S, raw_frame(0x5, 0x4, 1, (12).to_bytes(4, "big") + block), 0.1)
    assert "push-from-client" in _codes(events) and "stream-id-order" not in _codes(events)
    events = obs.feed(C2S, raw_frame(0x1, 0x5, 5, bytes.fromhex("82868441") + b"\x01a"), 0.2)
    assert "stream-id-order" not in _codes(events)


def test_an_h2c_upgrade_whose_settings_are_not_whole_is_flagged() -> None:
    from proxy.observe.events import ConnectionFindingRaised

    obs = ConnectionObserver(preface="optional")
    events = obs.upgrade_h2c(http2_settings=bytes.fromhex("0003000000640000"),
                             request_headers=((":method", "GET"), (":path", "/")), t=0.0)
    found = [e.finding for e in events if isinstance(e, ConnectionFindingRaised)]
    assert [f.code for f in found] == ["h2c-settings-invalid"]
    assert "8 bytes, not a multiple of 6" in found[0].message


def test_a_request_that_reuses_a_closed_stream_id_is_one_finding_not_trailers() -> None:
    """A full request on stream 1 after stream 1 closed was read as trailers: 5-6
    errors (trailers without END_STREAM, a pseudo-header in trailers for each of
    :method, :scheme, :authority, :path) for one mistake."""
    import hpack

    obs = _client_opened()
    obs.feed(S2C, raw_frame(0x1, 0x5, 1, hpack.Encoder().encode([(":status", "204")])), 0.1)
    events = obs.feed(C2S, raw_frame(0x1, 0x5, 1, bytes.fromhex("82868441") + b"\x01a"), 0.2)
    codes = _codes(events)
    assert len(codes) == 1 and codes[0] in ("frame-on-closed-stream", "stream-closed"), codes


def test_pushed_responses_beyond_the_clients_concurrency_limit_are_flagged() -> None:
    """The client allows 1 concurrent stream from the server; two promised streams
    start their responses without ending: the second is over the limit."""
    import hpack

    obs = ConnectionObserver()
    limit_1 = raw_frame(0x4, 0, 0, (3).to_bytes(2, "big") + (1).to_bytes(4, "big"))
    obs.feed(C2S, CONNECTION_PREFACE + limit_1
             + raw_frame(0x1, 0x5, 1, bytes.fromhex("82868441") + b"\x01a"), 0.0)
    enc = hpack.Encoder()
    request = [(":method", "GET"), (":scheme", "https"), (":authority", "a")]
    events = obs.feed(S2C, raw_frame(0x4, 0, 0, b"") + raw_frame(0x4, 1, 0, b"")
                      + raw_frame(0x5, 0x4, 1, (2).to_bytes(4, "big")
                                  + enc.encode([*request, (":path", "/a")]))
                      + raw_frame(0x5, 0x4, 1, (4).to_bytes(4, "big")
                                  + enc.encode([*request, (":path", "/b")]))
                      + raw_frame(0x1, 0x4, 2, enc.encode([(":status", "200")]))
                      + raw_frame(0x1, 0x4, 4, enc.encode([(":status", "200")])), 0.1)
    found = [(f.code, f.stream_id) for e in events if isinstance(e, FrameObserved)
             for f in e.findings]
    assert found == [("max-concurrent-streams-exceeded", 4)], found


def test_altsvc_and_origin_frames_a_receiver_ignores_are_said_not_errors() -> None:
    """ORIGIN on stream 1 was an ERROR (RFC 8336 §2.1: invalid, ignored — no peer
    resets anything), failing --fail-on error; the ALTSVC frames RFC 7838 §4 says to
    ignore had no word at all."""
    from proxy.observe.findings import Severity

    def altsvc(sid: int, origin: bytes) -> bytes:
        return raw_frame(0xA, 0, sid, len(origin).to_bytes(2, "big") + origin + b'h2=":443"')

    obs = _client_opened()
    events = obs.feed(S2C, raw_frame(0xC, 0, 1, b"\x00\x11https://b.example")
                      + raw_frame(0xC, 0, 0, b"\x00\x11https://b.example")
                      + altsvc(0, b"") + altsvc(1, b"https://a.example")
                      + altsvc(0, b"https://a.example") + altsvc(1, b""), 0.1)
    events += obs.feed(C2S, altsvc(0, b"https://a.example"), 0.2)
    found = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [(f.code, f.stream_id, f.severity, f.rfc) for f in found] == [
        ("extension-frame-ignored", 1, Severity.INFO, "RFC 8336 §2.1"),
        ("extension-frame-ignored", 0, Severity.INFO, "RFC 7838 §4"),
        ("extension-frame-ignored", 1, Severity.INFO, "RFC 7838 §4"),
        ("extension-frame-ignored", 0, Severity.INFO, "RFC 7838 §4")], found
    assert "empty Origin" in found[1].message and "from the client" in found[3].message


def test_one_problem_is_one_finding() -> None:
    """A HEADERS on a stream its client had ended was also checked as a new request
    ('request without :method…'), and a 101 that ended its stream was also an
    informational-end-stream: two errors for one, counted twice by --fail-on."""
    import hpack

    obs, enc = _client_opened(), hpack.Encoder()
    events = obs.feed(C2S, raw_frame(0x1, 0x5, 1, enc.encode([("x-late", "1")])), 0.1)
    assert _codes(events) == ["frame-on-closed-stream"]
    block = enc.encode([("x-later", "2")])  # (split over a CONTINUATION: the same)
    events = obs.feed(C2S, raw_frame(0x1, 0x1, 3, block[:2]) + raw_frame(0x9, 0x4, 3, block[2:]),
                      0.2)
    assert "pseudo-header-missing" not in _codes(events), _codes(events)
    events = obs.feed(C2S, raw_frame(0x1, 0x5, 5, enc.encode([("x-new", "3")])), 0.3)
    assert _codes(events) == ["pseudo-header-missing"]  # (a new stream is checked)
    obs, enc = _client_opened(), hpack.Encoder()
    events = obs.feed(S2C, raw_frame(0x1, 0x5, 1, enc.encode([(":status", "101")])), 0.1)
    assert _codes(events) == ["status-101"]
