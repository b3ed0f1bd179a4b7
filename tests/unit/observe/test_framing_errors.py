"""Framing errors as a raw client sends them, each reported once and for what it is.

DATA on stream 0 is a connection error (RFC 9113 §6.1), not a flow-controlled
frame of a stream 0 that then stalls. A frame header that claims more than the
receiver's SETTINGS_MAX_FRAME_SIZE is an error at the header (§4.2): the
receiver fails the connection there and the payload may never come. A frame
cut short when the connection ends is the sender's doing only if it closed.
"""

from __future__ import annotations

from proxy.observe.enums import Direction
from proxy.observe.events import ConnectionFindingRaised, FlowControlStalled
from proxy.observe.findings import Severity
from tests.unit.observe.conftest import REQUEST, Conversation

C2S, S2C = Direction.C2S, Direction.S2C


def _frame(ftype: int, stream_id: int, payload: bytes) -> bytes:
    """A frame as a raw client writes it (hyperframe refuses stream 0 for these)."""
    return len(payload).to_bytes(3, "big") + bytes([ftype, 0]) \
        + stream_id.to_bytes(4, "big") + payload


def _conn_findings(conv: Conversation) -> list[tuple[str, Severity, str]]:
    return [(e.finding.code, e.finding.severity, e.finding.message) for e in conv.events
            if isinstance(e, ConnectionFindingRaised)]


def test_data_on_stream_0_is_one_finding_and_moves_no_window(conv: Conversation) -> None:
    before = conv.obs.sides[C2S].conn_window
    new = conv.send(C2S, _frame(0, 0, b"abc"))
    assert conv.findings(new) == ["stream-id-zero"]
    assert not [e for e in new if isinstance(e, FlowControlStalled)]
    (frame,) = conv.frames(new)
    assert frame.windows is None
    assert conv.obs.sides[C2S].conn_window == before
    assert 0 not in conv.obs.streams
    assert _conn_findings(conv) == []
    conv.events.extend(conv.obs.close(conv.t))
    assert _conn_findings(conv) == []


def test_rst_stream_on_stream_0_is_one_finding(conv: Conversation) -> None:
    assert conv.findings(conv.send(C2S, _frame(3, 0, b"\0\0\0\x08"))) == ["stream-id-zero"]
    assert 0 not in conv.obs.streams


def test_an_oversized_frame_header_is_flagged_when_it_arrives_and_once(
        conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    header = (0xFFFFFF).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big")
    conv.send(C2S, header)
    flagged = _conn_findings(conv)
    assert [(code, sev) for code, sev, _ in flagged] == [("frame-too-large", Severity.ERROR)]
    assert "DATA frame header (stream 1) claims 16777215 bytes" in flagged[0][2]
    conv.send(C2S, b"x" * 1000)  # more of the payload: not said again
    assert len(_conn_findings(conv)) == 1


def test_a_too_large_frame_that_arrives_whole_is_flagged_once(conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS"]))
    frame = conv.f.data(1, b"y" * 20_000)  # the receiver accepts 16,384
    conv.send(C2S, frame[:100])
    conv.send(C2S, frame[100:])
    said = [code for code, _, _ in _conn_findings(conv)] + conv.findings()
    assert said.count("frame-too-large") == 1


def test_a_frame_cut_by_the_other_side_leaving_is_not_the_senders_fault(
        make_conv: type[Conversation]) -> None:
    for closed_by, severity in (("client", Severity.INFO), ("server", Severity.WARNING),
                                (None, Severity.WARNING)):
        conv = make_conv()
        conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
        conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
        conv.send(S2C, conv.f.data(1, b"z" * 10_000)[:5000])  # the client went away here
        conv.events.extend(conv.obs.close(conv.t, closed_by))
        ((code, sev, message),) = [f for f in _conn_findings(conv)
                                   if f[0] == "frame-truncated"]
        assert (code, sev) == ("frame-truncated", severity), closed_by
        assert ("the client ended it" in message) is (closed_by == "client")


def _cut_download(conv: Conversation, closed_by: str | None, *,
                  length: bool = True) -> list[tuple[str, Severity, str]]:
    """A 100,000-byte response of which 10,000 bytes came before the end."""
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    head = [(":status", "200")] + ([("content-length", "100000")] if length else [])
    conv.send(S2C, conv.f.headers(S2C, 1, head))
    conv.send(S2C, conv.f.data(1, b"q" * 10_000))
    conv.events.extend(conv.obs.close(conv.t, closed_by))
    return _conn_findings(conv)


def test_a_server_closing_in_the_middle_of_a_body_sent_a_short_one(
        make_conv: type[Conversation]) -> None:
    for closed_by in ("server", None):
        ((code, sev, message),) = _cut_download(make_conv(), closed_by)
        assert (code, sev) == ("content-length-mismatch", Severity.ERROR)
        assert message == ("the response on stream 1 declares content-length 100000 but the "
                           "connection closed after 10000 bytes of it")


def test_a_client_that_gives_up_a_download_is_information(
        make_conv: type[Conversation]) -> None:
    ((code, sev, message),) = _cut_download(make_conv(), "client")
    assert (code, sev) == ("stream-unfinished", Severity.INFO)
    assert message == ("the connection ended (the client closed it) with the server's "
                       "response on stream 1 (10,000 of 100,000 bytes) unfinished (no "
                       "END_STREAM)")


def test_a_server_abandoning_a_response_of_unknown_length_is_a_warning(
        make_conv: type[Conversation]) -> None:
    ((code, sev, _),) = _cut_download(make_conv(), "server", length=False)
    assert (code, sev) == ("stream-unfinished", Severity.WARNING)


def test_a_server_closing_after_its_error_goaway_abandoned_nothing(
        make_conv: type[Conversation]) -> None:
    """The client's connection error (here a frame too large): the server sends
    GOAWAY FRAME_SIZE_ERROR and closes, as RFC 9113 §5.4.1 requires. Its response
    was charged as abandoned (a warning; an error when it had a content-length),
    failing --fail-on warning against the side that did right."""
    goaway = bytes.fromhex("000008070000000000") + (1).to_bytes(4, "big") + \
        (6).to_bytes(4, "big")  # FRAME_SIZE_ERROR, last-stream-id 1
    for length in (True, False):
        conv = make_conv()
        conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
        head = [(":status", "200")] + ([("content-length", "100000")] if length else [])
        conv.send(S2C, conv.f.headers(S2C, 1, head))
        conv.send(S2C, conv.f.data(1, b"q" * 10_000))
        conv.send(S2C, goaway)
        conv.events.extend(conv.obs.close(conv.t, "server"))
        ((code, sev, message),) = _conn_findings(conv)
        assert (code, sev) == ("stream-unfinished", Severity.INFO), length
        assert message.endswith("unfinished (no END_STREAM): it had sent GOAWAY "
                                "FRAME_SIZE_ERROR, and a connection error ends every open "
                                "stream (§5.4.1)"), message
    # A graceful GOAWAY (NO_ERROR) excuses nothing: the response was still cut; nor
    # does the server's own INTERNAL_ERROR (its trouble, not the client's).
    for code_bytes in (bytes(4), (2).to_bytes(4, "big")):
        conv = make_conv()
        conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
        conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")]))
        conv.send(S2C, goaway[:-4] + code_bytes)
        conv.events.extend(conv.obs.close(conv.t, "server"))
        ((code, sev, _),) = _conn_findings(conv)
        assert (code, sev) == ("stream-unfinished", Severity.WARNING), code_bytes
    conv = make_conv()
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200"), ("content-length", "100")]))
    conv.send(S2C, conv.f.data(1, b"q" * 10))
    conv.send(S2C, goaway[:-4] + (2).to_bytes(4, "big"))
    conv.events.extend(conv.obs.close(conv.t, "server"))
    ((code, sev, _),) = _conn_findings(conv)
    assert (code, sev) == ("content-length-mismatch", Severity.ERROR)


def test_finished_and_reset_streams_are_not_unfinished(conv: Conversation) -> None:
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")], flags=["END_HEADERS",
                                                                     "END_STREAM"]))
    conv.send(C2S, conv.f.headers(C2S, 3, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(C2S, conv.f.rst(3))
    conv.events.extend(conv.obs.close(conv.t, "server"))
    assert _conn_findings(conv) == []


def test_grpc_true_binary_metadata_is_raw_bytes_where_the_receiver_allowed_it(
        make_conv: type[Conversation]) -> None:
    """grpc-core sends setting 0xfe03 = 1; then a -bin value may hold any byte. A
    NUL in any other value, or where the receiver did not allow it, stays an error."""
    from proxy.observe.describe import block_lines

    trailers = [(b"grpc-status", b"0"), (b"x-bin-bin", b"\x00\x00\x01\xff")]
    for allowed in (True, False):
        conv = make_conv(preface=False, settings=False)
        client_settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + (
            b"\xfe\x03\x00\x00\x00\x01" if allowed else b"\x00\x03\x00\x00\x00\x64")
        conv.send(C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + client_settings)
        conv.send(S2C, conv.f.settings())
        conv.send(C2S, conv.f.settings(ack=True))
        conv.send(S2C, conv.f.settings(ack=True))
        conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
        conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200"),
                                               ("content-type", "application/grpc")]))
        new = conv.send(S2C, conv.f.headers(S2C, 1, trailers,  # type: ignore[arg-type]
                                            flags=["END_HEADERS", "END_STREAM"]))
        assert ("header-value-invalid" in conv.findings(new)) is not allowed, allowed
        assert "unknown-setting" not in conv.findings()
        (frame,) = conv.frames(new)
        assert frame.block is not None
        assert block_lines(frame.block)[-1] == "    x-bin-bin: \\x00\\x00\\x01\\xff"


def test_an_oversized_frame_of_an_unknown_type_is_framed_past_not_a_desync(
        conv: Conversation) -> None:
    """A GREASE-like frame (unknown type 0x42) of 20,000 bytes, more than the
    receiver's 16,384: its header is intact, so it is frame-too-large and the
    frames after it are decoded (as nghttp2 and Wireshark frame past it); the
    recording proxy's splitter cuts the same frames."""
    from proxy.observe.events import Desynced
    from proxy.observe.framer import FramesCut, FrameSplitter
    grease = _frame(0x42, 0, b"g" * 20_000)
    request = conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"])
    new = conv.send(C2S, grease + request)
    assert not [e for e in new if isinstance(e, Desynced)]
    assert sorted(conv.findings(new)) == ["frame-too-large", "unknown-frame-type"]
    (_, headers) = conv.frames(new)
    assert headers.block is not None and (":path", "/") in headers.block.headers
    splitter = FrameSplitter(preface="optional")
    settings = conv.f.settings()
    cut = [f for e in splitter.feed(C2S, settings + grease + request, 0.0)
           if isinstance(e, FramesCut) for f in e.frames]
    assert cut == [settings, grease, request]


def test_megabytes_claimed_by_an_unknown_type_or_a_first_frame_are_not_http2(
        make_conv: type[Conversation]) -> None:
    """Text or a TLS record where frames are due reads as a header claiming
    megabytes: that is a desync, not a frame to wait for. A first frame of a known
    type that claims a little too much (a SETTINGS of 16,386 bytes) is framed."""
    from proxy.observe.events import Desynced
    conv = make_conv()
    new = conv.send(C2S, (0x170303).to_bytes(3, "big") + b"\x42\x00" + bytes(4) + b"x" * 50)
    assert [e for e in new if isinstance(e, Desynced)]
    first = make_conv(settings=False)
    big = _frame(0x4, 0, bytes(16_386))  # SETTINGS: 6-byte entries, 16,386 is not a multiple
    new = first.send(C2S, big)
    assert not [e for e in new if isinstance(e, Desynced)]
    assert "frame-too-large" in first.findings(new)


def test_after_one_side_desyncs_the_other_is_not_blamed_for_what_was_not_seen(
        make_conv: type[Conversation]) -> None:
    """The client's bytes stop being frames (a broken preface): the server's ACK of
    the SETTINGS in them, its answer on the stream they opened and its PING ACK are
    not errors of the server's (RFC 9113 §6.5.3, §8.4, §6.7)."""
    from proxy.observe.events import Desynced
    conv = make_conv(preface=False, settings=False)
    new = conv.send(C2S, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + conv.f.settings())
    assert [e for e in new if isinstance(e, Desynced)]
    said = conv.findings(conv.send(S2C, conv.f.settings()))
    said += conv.findings(conv.send(S2C, conv.f.settings(ack=True)))
    said += conv.findings(conv.send(S2C, conv.f.headers(S2C, 1, [(":status", "200")],
                                                        flags=["END_HEADERS", "END_STREAM"])))
    said += conv.findings(conv.send(S2C, conv.f.ping(ack=True)))
    assert said == []


def test_a_frame_cut_by_the_close_says_what_its_header_announced(
        make_conv: type[Conversation]) -> None:
    conv = make_conv()
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS"]))
    conv.send(C2S, conv.f.data(1, b"d" * 100)[:12])  # the header and 3 of its 100 bytes
    conv.events.extend(conv.obs.close(conv.t, closed_by="client"))
    (truncated,) = [e.finding for e in conv.events if isinstance(e, ConnectionFindingRaised)
                    and e.finding.code == "frame-truncated"]
    assert truncated.message.startswith(
        "a DATA frame (stream 1) announcing 100 bytes, of which 3 came, from the client")
    assert truncated.stream_id == 1


def test_smaller_messages_say_one_thing_each(conv: Conversation) -> None:
    """A client's PUSH_PROMISE is push-from-client (not also push-on-closed-stream);
    an unknown frame that cut a header block is not 'ignored'; DATA on an idle
    stream shows no stream window (it has none); Huffman padding over 7 bits is
    named as such (RFC 7541 §5.2)."""
    from proxy.observe.huffman import HuffmanDecodeError, decode
    conv.send(C2S, conv.f.headers(C2S, 1, REQUEST, flags=["END_HEADERS"]))
    promise = len(conv.f.block(C2S, REQUEST)) + 4
    new = conv.send(C2S, promise.to_bytes(3, "big") + b"\x05\x04" + (1).to_bytes(4, "big")
                    + (2).to_bytes(4, "big") + conv.f.block(C2S, REQUEST))
    assert conv.findings(new) == ["push-from-client"]
    block = conv.f.block(C2S, REQUEST)
    cut = len(block).to_bytes(3, "big") + b"\x01\x00" + (3).to_bytes(4, "big") + block
    new = conv.send(C2S, cut + _frame(0x42, 0, b"x"))
    assert conv.findings(new) == ["continuation-missing"]
    (idle,) = conv.frames(conv.send(C2S, _frame(0, 9, b"abc")))
    assert idle.windows is not None and idle.windows[1] is None
    try:
        decode(b"\xff")
    except HuffmanDecodeError as exc:
        assert "padding longer than 7 bits" in str(exc)
    else:
        raise AssertionError("8 bits of 1s decoded")


def test_a_header_block_that_never_completes_says_the_fields_that_came(
        make_conv: type[Conversation]) -> None:
    """HEADERS without END_HEADERS, then the end (or another frame): the fields its
    fragment carries are in the finding — the half-sent request is the evidence."""
    conv = make_conv()
    block = conv.f.block(C2S, REQUEST)
    cut = len(block).to_bytes(3, "big") + b"\x01\x00" + (1).to_bytes(4, "big") + block
    conv.send(C2S, cut)
    conv.events.extend(conv.obs.close(conv.t, closed_by="client"))
    (truncated,) = [m for code, _, m in _conn_findings(conv) if code == "header-block-truncated"]
    assert truncated.endswith("(no END_HEADERS); fields that came: :method: GET, :scheme: "
                              "https, :authority: example.com, :path: /"), truncated
    other = make_conv()
    new = other.send(C2S, cut[:9 + 5].replace(len(block).to_bytes(3, "big"),
                                             (5).to_bytes(3, "big"), 1)
                     + other.f.ping())
    (missing,) = other.finding_objects(new)
    assert missing.code == "continuation-missing"
    assert missing.message.endswith("; fields that came: :method: GET, :scheme: https"), \
        missing.message


def test_a_flood_of_tiny_continuations_is_said_by_its_first_fields_only(
        make_conv: type[Conversation]) -> None:
    """A CONTINUATION flood leaves megabytes of one-field fragments: decoding them all
    at the close took seconds, and every other connection through h2scope waited."""
    conv = make_conv()
    conv.send(C2S, b"\x00\x00\x00\x01\x00\x00\x00\x00\x01")  # HEADERS, no END_HEADERS
    tiny = b"\x00\x00\x05\x09\x00\x00\x00\x00\x01" + b"\x40\x01a\x01b"
    conv.send(C2S, tiny * 100_000)  # (500 KB of fields: literal a: b, indexed)
    conv.events.extend(conv.obs.close(conv.t, closed_by="client"))
    (truncated,) = [m for code, _, m in _conn_findings(conv) if code == "header-block-truncated"]
    assert truncated.endswith("(in its first 64 KiB of 500,000 bytes)"), truncated[-200:]
    assert "a: b, a: b" in truncated
