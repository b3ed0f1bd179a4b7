"""The filter language, over real frames: an h2 client and server talk through
the observer and the filters select from what it reported."""

from __future__ import annotations

from dataclasses import dataclass

import h2.config
import h2.connection
import pytest
from hyperframe.frame import ContinuationFrame, Frame, PushPromiseFrame

from proxy.filter import Filter, FilterError, compile_filter, term_keys
from proxy.filter_context import StreamHeadersTracker
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved


@dataclass(frozen=True)
class Conn:
    conn_id: int
    host: str | None


def _exchange() -> list[FrameObserved]:
    """Two requests and responses, a PING, an unknown frame and a zero WINDOW_UPDATE.

    Sequence numbers (asserted below so a change in h2 shows up here first):
    0-3 SETTINGS and ACKs, 4 GET /index.html (stream 1), 5 POST /api/items +
    6 its DATA (stream 3), 7 PING, 8 :status 200, 9-10 DATA 1000 + 500 bytes,
    11 :status 404, 12 PING ACK, 13 UNKNOWN(0xbb) (info), 14 WINDOW_UPDATE +0 (error).
    """
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    obs = ConnectionObserver()
    events = []

    def pump() -> None:
        for _ in range(20):
            up, down = client.data_to_send(), b""
            if up:
                events.extend(obs.feed(Direction.C2S, up, 0.0))
                server.receive_data(up)
            down = server.data_to_send()
            if down:
                events.extend(obs.feed(Direction.S2C, down, 0.0))
                client.receive_data(down)
            if not up and not down:
                return
        raise AssertionError("h2 peers kept talking")

    client.initiate_connection()
    server.initiate_connection()
    pump()
    req = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com")]
    client.send_headers(1, [*req, (":path", "/index.html"), ("user-agent", "Curl/8")],
                        end_stream=True)
    client.send_headers(3, [(":method", "POST"), (":scheme", "https"),
                            (":authority", "example.com"), (":path", "/api/items"),
                            ("content-type", "application/JSON")])
    client.send_data(3, b'{"a":1}', end_stream=True)
    pump()
    server.send_headers(1, [(":status", "200"), ("content-type", "text/html")])
    server.send_data(1, b"x" * 1000)
    server.send_data(1, b"y" * 500, end_stream=True)
    server.send_headers(3, [(":status", "404")], end_stream=True)
    client.ping(b"12345678")
    pump()
    events.extend(obs.feed(Direction.C2S, bytes.fromhex("000003bb0000000000") + b"abc", 1.0))
    events.extend(obs.feed(Direction.C2S, bytes.fromhex("000004080000000000") + bytes(4), 1.0))
    frames = [e for e in events if isinstance(e, FrameObserved)]
    layout = [(e.seq, e.frame.type_name, e.frame.stream_id) for e in frames]
    assert layout == [
        (0, "SETTINGS", 0), (1, "SETTINGS", 0), (2, "SETTINGS", 0), (3, "SETTINGS", 0),
        (4, "HEADERS", 1), (5, "HEADERS", 3), (6, "DATA", 3), (7, "PING", 0),
        (8, "HEADERS", 1), (9, "DATA", 1), (10, "DATA", 1), (11, "HEADERS", 3),
        (12, "PING", 0), (13, "UNKNOWN(0xbb)", 0), (14, "WINDOW_UPDATE", 0)]
    return frames


FRAMES = _exchange()
CONN = Conn(conn_id=3, host="api.example.com")


def _stream_headers() -> dict[int, tuple[tuple[str, str], ...]]:
    out: dict[int, tuple[tuple[str, str], ...]] = {}
    for ev in FRAMES:
        if ev.block is not None:
            out[ev.frame.stream_id] = out.get(ev.frame.stream_id, ()) + ev.block.headers
    return out


STREAM_HEADERS = _stream_headers()


def seqs(text: str, conn: Conn | None = CONN, *, with_streams: bool = False) -> list[int]:
    flt = compile_filter(text)
    return [ev.seq for ev in FRAMES
            if flt.matches(ev, conn, STREAM_HEADERS.get(ev.frame.stream_id)
                           if with_streams else None)]


def error(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    return info.value


ALL = list(range(15))


def test_an_empty_filter_matches_every_frame() -> None:
    assert seqs("") == ALL
    assert seqs("   ") == ALL
    assert compile_filter(" ").matches_everything
    assert not compile_filter("type:DATA").matches_everything


def test_type_matches_rfc_names_case_insensitively_and_numbers() -> None:
    assert seqs("type:DATA") == [6, 9, 10]
    assert seqs("type:data,ping") == [6, 7, 9, 10, 12]
    assert seqs("type:0x1") == [4, 5, 8, 11]
    assert seqs("type:0xbb") == [13]
    assert seqs("TYPE:window-update") == [14]


def test_an_unknown_frame_type_is_named_with_its_column_and_the_known_types() -> None:
    exc = error("type:DATUM")
    assert str(exc).startswith(
        "unknown frame type 'DATUM' in 'type:DATUM' (column 6); known: DATA, HEADERS, ")
    assert exc.column == 6
    assert error("dir:c2s type:DATA,DATUM").column == 19


def test_stream_selects_one_id_or_an_inclusive_range() -> None:
    assert seqs("stream:3") == [5, 6, 11]
    assert seqs("stream:1-3") == [4, 5, 6, 8, 9, 10, 11]
    assert seqs("stream:0 type:settings") == [0, 1, 2, 3]
    assert seqs("stream:5,1") == [4, 8, 9, 10]
    assert "write the smaller number first" in str(error("stream:9-1"))
    assert error("stream:x").column == 8


def test_conn_matches_the_connection_id_and_nothing_without_a_connection() -> None:
    assert seqs("conn:3") == ALL
    assert seqs("conn:1-2") == []
    assert seqs("conn:3", conn=None) == []


def test_dir_accepts_c2s_client_and_arrows() -> None:
    sent_by_client = [0, 3, 4, 5, 6, 7, 13, 14]
    assert seqs("dir:c2s") == sent_by_client
    assert seqs("dir:client") == sent_by_client
    assert seqs("dir:→") == sent_by_client
    assert seqs("dir:S2C") == [1, 2, 8, 9, 10, 11, 12]
    assert seqs("dir:←") == seqs("dir:server")
    assert seqs("dir:c2s,s2c") == ALL
    assert "known: c2s, client, →, s2c, server, ←" in str(error("dir:up"))


def test_host_is_a_case_insensitive_glob_on_the_connection_host() -> None:
    assert seqs("host:*.example.com") == ALL
    assert seqs("host:API.EXAMPLE.COM") == ALL
    assert seqs("host:example.com") == []
    assert seqs("host:*", conn=Conn(conn_id=1, host=None)) == []


def test_finding_selects_by_presence_severity_or_code() -> None:
    assert seqs("finding:any") == [13, 14]
    assert seqs("finding:error") == [14]
    assert seqs("finding:INFO") == [13]
    assert seqs("finding:warning") == []
    assert seqs("finding:window-update-zero") == [14]
    assert seqs("finding:unknown-*") == [13]
    assert seqs("-finding:any") == list(range(13))
    assert seqs("finding:window-update-[a-z]*") == [14]  # (a glob's [...] as documented)
    assert "expected any, error, warning, info" in str(error("finding:E!"))


def test_len_compares_the_payload_length() -> None:
    assert seqs("len>999") == [9]
    assert seqs("len>=500 type:DATA") == [9, 10]
    assert seqs("len<1") == [2, 3]
    assert seqs("len=0") == [2, 3]
    assert seqs("len<=1 type:headers") == [11]
    assert seqs("len:7-8") == [6, 7, 12]
    assert error("len>big").column == 5


def test_flags_are_looked_up_per_frame_type() -> None:
    # END_STREAM and ACK share bit 0x1: each name selects only the types it belongs to.
    assert seqs("flags:END_STREAM") == [4, 6, 10, 11]
    assert seqs("flags:ack") == [2, 3, 12]
    assert seqs("flags:ACK,END_STREAM") == [2, 3, 4, 6, 10, 11, 12]
    assert seqs("flags:0x1") == [2, 3, 4, 6, 10, 11, 12]
    assert seqs("flags:END_HEADERS -flags:END_STREAM") == [5, 8]
    assert "known: ACK, END_HEADERS, END_STREAM, PADDED, PRIORITY" in str(error("flags:FIN"))


def test_header_matches_a_decoded_name_and_a_case_insensitive_value_substring() -> None:
    assert seqs("header:content-type") == [5, 8]
    assert seqs("header:Content-Type=json") == [5]
    assert seqs("header:content-type=HTML") == [8]
    assert seqs("header:user-agent=curl") == [4]
    assert seqs("header:x-*") == []
    assert seqs("header:*agent") == [4]
    assert seqs("header::status=404") == [11]
    assert "missing header name" in str(error("header:=json"))


def test_status_method_and_path_apply_to_their_own_header_frames() -> None:
    assert seqs("status:404") == [11]
    assert seqs("status:2xx") == [8]
    assert seqs("status:4XX,200") == [8, 11]
    assert seqs("method:post") == [5]
    assert seqs("path:/api*") == [5]
    assert seqs("path:/API*") == []
    assert seqs("path:/index.html,/api/items") == [4, 5]
    assert "expected a code like 404" in str(error("status:999"))
    assert "expected a token" in str(error("method:P@ST"))


def test_status_method_and_path_reach_the_whole_stream_with_stream_headers() -> None:
    assert seqs("status:404", with_streams=True) == [5, 6, 11]
    assert seqs("method:GET", with_streams=True) == [4, 8, 9, 10]
    assert seqs("path:/index.html type:DATA", with_streams=True) == [9, 10]
    assert seqs("status:200 method:GET len>0", with_streams=True) == [4, 8, 9, 10]
    assert compile_filter("type:DATA status:5xx").needs_stream_headers
    assert not compile_filter("type:DATA header:x").needs_stream_headers


def test_bare_words_search_header_names_values_type_and_summary() -> None:
    assert seqs("api/items") == [5]
    assert seqs("EXAMPLE.COM") == [4, 5]
    assert seqs("ping") == [7, 12]
    assert seqs("opaque=3132") == [7, 12]
    assert seqs("window-update") == []
    assert seqs("window_update") == [14]
    assert seqs('"1000 bytes"') == [9]
    assert seqs("text/html 200") == [8]


def test_negation_with_bang_or_minus_inverts_one_term() -> None:
    assert seqs("!type:settings dir:c2s") == [4, 5, 6, 7, 13, 14]
    assert seqs("-type:settings -type:data dir:s2c") == [8, 11, 12]
    assert seqs("!ping !finding:any stream:0") == [0, 1, 2, 3]


def test_or_joins_alternatives_and_binds_looser_than_spaces() -> None:
    assert seqs("type:PING or status:404") == [7, 11, 12]
    assert seqs("type:DATA dir:c2s or type:PING dir:s2c") == [6, 12]
    assert seqs("type:DATA and dir:c2s") == [6]
    # Quoted, "or" is a word to search for (":authority" contains it), not the keyword.
    assert seqs('"or"') == [4, 5]
    assert error("or type:DATA").column == 1
    assert error("type:DATA or").column == 11
    assert error("type:DATA or or dir:c2s").column == 14


def test_and_needs_a_term_on_each_side_like_or() -> None:
    exc = error("type:HEADERS and")
    assert str(exc) == "'and' needs a term after it (column 14)"
    assert exc.column == 14
    assert str(error("and")) == "'and' needs a term before it (column 1)"
    assert error("and type:DATA").column == 1
    assert error("type:DATA and and dir:c2s").column == 15
    assert error("type:DATA and or type:PING").column == 15
    assert error("type:DATA or and type:PING").column == 14
    # Quoted, "and" is a word to search for.
    assert seqs('"and"') == []


def test_a_lone_bang_or_minus_needs_a_term_after_it() -> None:
    exc = error("!")
    assert str(exc) == "'!' needs a term after it (column 1); to search for '!', put it in quotes"
    assert exc.column == 1
    assert str(error("-")) == ("'-' needs a term after it (column 1); to search for '-', "
                               "put it in quotes")
    assert error("type:DATA !").column == 11
    assert error("type:DATA - or type:PING").column == 11
    assert str(error('!""')) == "empty quotes (column 2)"
    # Quoted, the sign is a word to search for.
    assert seqs('"-"') == [4, 5, 8]
    assert seqs('"!"') == []


def test_a_bang_or_minus_must_touch_the_term_it_negates() -> None:
    exc = error("! type:DATA")
    assert str(exc) == ("'!' needs its term right after it, without a space: write "
                        "'!type:DATA' (column 1)")
    assert exc.column == 1
    assert str(error('dir:c2s - "no such"')) == (
        "'-' needs its term right after it, without a space: write '-\"no such\"' (column 9)")
    assert seqs("!type:DATA") == [0, 1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 14]


def test_a_key_and_its_operator_typed_apart_are_an_error_not_words() -> None:
    # As words, 'len >100' would search every summary for 'len' and '>100'.
    exc = error("type:DATA len >100")
    assert str(exc) == ("'len >100' would search for 2 words; the term is written 'len>100', "
                        "without spaces (column 11); to search for the words, put them in "
                        "quotes")
    assert exc.column == 11
    assert "the term is written '-len>=10'," in str(error("-len >= 10"))
    assert "the term is written 'status:404'," in str(error("status = 404"))
    assert "the term is written 'STREAM:3'," in str(error("STREAM :3"))
    # Quoted, they are words; a key word before an ordinary word is a word too.
    assert seqs('"len" ">100"') == []
    assert seqs("type or data") == sorted({*seqs("type"), *seqs("data")})


def test_mitmproxy_filter_operators_name_the_term_to_use() -> None:
    """'~d localhost' searched every summary for '~d' and matched nothing."""
    exc = error("~d localhost")
    assert str(exc) == ("'~d' is mitmproxy's filter syntax (column 1); in h2scope: host:GLOB "
                        "(docs/filters.md lists the terms); to search for '~d', put it in "
                        "quotes")
    assert "in h2scope: method:NAME" in str(error("~m POST"))
    assert error("type:DATA !~c 404").column == 11
    assert "in h2scope: or" in str(error("type:DATA | type:PING"))
    assert "bodies are not searched" in str(error("~b secret"))
    assert seqs('"~d"') == []  # (quoted: a word)


def test_parentheses_are_rejected_since_terms_cannot_be_grouped() -> None:
    exc = error("(type:DATA)")
    assert str(exc) == (
        "parentheses are not supported: '(' in '(type:DATA)' (column 1); terms are combined "
        "with 'and' (or a space) and 'or', and 'a b or c' means (a and b) or c; to search "
        "for '(', put it in quotes")
    assert exc.column == 1
    assert error("(type:DATA").column == 1
    assert error("dir:c2s !(type:DATA or type:PING)").column == 10
    assert str(error("type:DATA)")).startswith(
        "parentheses are not supported: ')' in 'type:DATA)' (column 10); ")
    assert error("host:(a.com or b.com)").column == 21
    # A word that only contains parentheses, or quotes them, is still searched for.
    assert seqs("unknown(0xbb)") == [13]
    assert seqs('"(0xbb)"') == [13]
    assert seqs('-"(0xbb)" stream:0 !type:settings') == [7, 12, 14]


def test_term_keys_checks_the_filter_like_the_compiler() -> None:
    assert term_keys("!type:DATA and len>9 or ping") == [
        ("type", "type:DATA"), ("len", "len>9"), (None, "ping")]
    for text in ("type:DATA and", "!", "! type:DATA", "(type:DATA)", "or ping"):
        with pytest.raises(FilterError):
            term_keys(text)


def test_quotes_keep_spaces_and_colons_in_a_value() -> None:
    assert seqs('header:user-agent="curl/8"') == [4]
    assert seqs("'example.com/index.html'") == [4]
    exc = error('header:"user-agent')
    assert str(exc) == "unclosed quote \" (column 8)"


def test_an_unknown_key_is_named_with_the_known_keys_and_how_to_search_for_colons() -> None:
    exc = error("dir:c2s stram:1")
    assert exc.column == 9
    assert str(exc) == (
        "unknown filter key 'stram' in 'stram:1' (column 9): did you mean stream:1? (known "
        "keys: type, stream, conn, dir, host, finding, len, flags, header, status, method, "
        "path, grpc, stall; text containing ':' goes in quotes)")
    assert str(error("localhost:8080")) == (
        "unknown filter key 'localhost' in 'localhost:8080' (column 1); known: type, stream, "
        "conn, dir, host, finding, len, flags, header, status, method, path, grpc, stall; to "
        "search for text containing ':', put it in quotes")
    assert seqs('"ping:"') == []


def test_a_header_written_as_a_key_gets_the_header_term_meant() -> None:
    """``content-type:text/html`` was a bare word that could never match (a word is
    searched in names and values apart), silently."""
    assert "did you mean header:content-type=text/html?" in str(
        error("content-type:text/html"))
    assert "did you mean header:x-request-id?" in str(error("x-request-id:"))
    assert seqs('header:content-type=json') == [5]


def test_a_comma_inside_quotes_is_part_of_the_value() -> None:
    """``header:user-agent="Curl/8, zzz"`` had split into ``user-agent=Curl/8`` or
    a header named ``zzz``: a literal comma could not be searched for."""
    assert seqs('header:user-agent="curl/8, zzz"') == []
    assert seqs('header:user-agent="curl/8",content-type') == [4, 5, 8]
    assert seqs("'type:DATA,PING'") == []  # (a bare word, quoted whole)


def test_numbers_are_ascii_digits_and_a_host_has_no_port() -> None:
    """``len>²`` passed str.isdigit and crashed int(): the UI's filter bar took the
    viewer down with it."""
    exc = error("len>²")
    assert str(exc) == "bad length '²' in 'len>²' (column 5); expected a number after 'len>'"
    assert str(error("host:localhost:8443")) == (
        "bad host 'localhost:8443' in 'host:localhost:8443' (column 6); host: matches the "
        "host name without its port: write host:localhost")
    assert seqs("host:api.example.com") == ALL


def test_empty_values_are_reported_where_they_are() -> None:
    assert str(error("type:")) == "'type:' needs a value after ':' (column 6)"
    assert str(error("type:DATA,,PING")) == "empty value in 'type:DATA,,PING' (column 11)"
    assert str(error('""')) == "empty quotes (column 1)"


def test_the_compiled_filter_keeps_its_text_and_is_reusable() -> None:
    flt = compile_filter("type:DATA  dir:s2c")
    assert isinstance(flt, Filter)
    assert str(flt) == "type:DATA  dir:s2c"
    assert [ev.seq for ev in FRAMES if flt.predicate(ev, None, None)] == [9, 10]
    assert [ev.seq for ev in FRAMES if flt.matches(ev)] == [9, 10]


def test_the_stream_tracker_gives_each_frame_its_streams_headers_so_far() -> None:
    tracker = StreamHeadersTracker()
    seen = {ev.seq: tracker.update(7, ev) for ev in FRAMES}
    assert seen[0] is None  # stream 0 never has headers
    assert seen[4] is not None and dict(seen[4])[":path"] == "/index.html"
    assert seen[9] is not None and dict(seen[9])[":status"] == "200"
    assert dict(seen[9])[":method"] == "GET"
    flt = compile_filter("status:200 type:DATA")
    assert [ev.seq for ev in FRAMES if flt.matches(ev, CONN, seen[ev.seq])] == [9, 10]
    assert len(tracker) == 2
    tracker.forget(7)
    assert len(tracker) == 0


def test_the_stream_tracker_is_bounded() -> None:
    tracker = StreamHeadersTracker(max_streams=1)
    for ev in FRAMES:
        tracker.update(1, ev)
    assert len(tracker) == 1
    # Stream 3's response came last: stream 1 was evicted.
    assert tracker.update(1, FRAMES[6]) is not None
    assert tracker.update(1, FRAMES[9]) is None


def test_grpc_selects_calls_by_their_grpc_status() -> None:
    """'Failed calls' was not expressible: header:grpc-status=1 is a substring (it
    matched 10 and 14) and !header:grpc-status=0 hid ABORTED (10)."""
    from proxy.filter_context import all_stream_headers

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    obs = ConnectionObserver()
    events: list[FrameObserved] = []

    def pump() -> None:
        for _ in range(20):
            up = client.data_to_send()
            if up:
                events.extend(e for e in obs.feed(Direction.C2S, up, 0.0)
                              if isinstance(e, FrameObserved))
                server.receive_data(up)
            down = server.data_to_send()
            if down:
                events.extend(e for e in obs.feed(Direction.S2C, down, 0.0)
                              if isinstance(e, FrameObserved))
                client.receive_data(down)
            if not up and not down:
                return

    client.initiate_connection()
    server.initiate_connection()
    pump()
    grpc = [("content-type", "application/grpc")]
    for sid, status in ((1, "0"), (3, "10"), (5, "14"), (7, "5"), (9, None)):
        client.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                  (":authority", "a"), (":path", "/pkg.Svc/Do"), *grpc],
                            end_stream=True)
        pump()
        if status is None:  # a load balancer's own page: no grpc-status at all
            server.send_headers(sid, [(":status", "503"), ("content-type", "text/plain")])
            server.send_data(sid, b"no healthy upstream", end_stream=True)
            pump()
            continue
        server.send_headers(sid, [(":status", "200"), *grpc])
        server.send_data(sid, b"\0\0\0\0\0")
        server.send_headers(sid, [("grpc-status", status)], end_stream=True)
        pump()
    known = all_stream_headers((1, ev) for ev in events)

    def streams(text: str) -> list[int]:
        flt = compile_filter(text)
        return sorted({ev.frame.stream_id for ev in events
                       if flt.matches(ev, CONN, known.get((1, ev.frame.stream_id)))})

    assert streams("grpc:failed") == [3, 5, 7, 9]  # (9: answered by something else)
    assert streams("grpc:1") == []
    assert streams("grpc:aborted,NOT_FOUND") == [3, 7]
    assert streams("grpc:10-14 type:DATA") == [3, 5]
    assert streams("grpc:any") == [1, 3, 5, 7]
    assert streams("!grpc:0 grpc:any") == [3, 5, 7]
    assert streams("grpc:UNAVAILABLE") == [5]  # (a code is a grpc-status that came)
    assert streams("grpc:not-found") == [7]  # (a name with '-', as type: takes them)
    assert compile_filter("grpc:5").needs_stream_headers
    assert "expected a code 0-16" in str(error("grpc:17"))
    assert str(error("grpc:16-1")) == ("empty gRPC status range '16-1' in 'grpc:16-1' "
                                       "(column 6); write the smaller number first")


def test_a_finding_code_no_finding_has_is_named_with_the_code_meant() -> None:
    """``finding:flow-control-exeeded`` compiles and matches nothing: what says
    "no frame matches" adds which code is unknown and the closest known one."""
    from proxy.filter import unknown_finding_codes

    compile_filter("finding:flow-control-exeeded")  # (valid syntax: matches nothing)
    assert unknown_finding_codes("finding:flow-control-exeeded") == \
        " (no finding has the code flow-control-exeeded; did you mean flow-control-exceeded?)"
    for known in ("finding:flow-control-exceeded", "finding:any", "finding:error,warning",
                  "!finding:stream-*", "type:DATA or finding:RAPID-RESET", ""):
        assert unknown_finding_codes(known) == "", known
    assert unknown_finding_codes("type:DATA finding:zzz,nothing-*") == (
        " (no finding has the code zzz (docs/findings.md lists the codes); no finding has "
        "the code nothing-* (docs/findings.md lists the codes))")


def test_the_known_finding_codes_are_the_documented_ones_and_cover_what_is_raised() -> None:
    """proxy/finding_codes.py is docs/findings.md's table, one to one, and holds
    every code the observer raises (the same scan as the findings-documented test)."""
    import re
    from pathlib import Path

    from proxy.finding_codes import FINDING_CODES
    from proxy.observe.floods import FLOODS

    root = Path(__file__).resolve().parents[2]
    table = (root / "docs" / "findings.md").read_text()
    cells = re.findall(r"^\| (`[^|]*`) \|", table, re.MULTILINE)
    documented = {code for cell in cells for code in re.findall(r"`([a-z0-9-]+)`", cell)}
    assert sorted(documented ^ FINDING_CODES) == []
    raised = set(FLOODS) | {code for path in (root / "proxy").rglob("*.py")
                            for code in re.findall(r'_f\(\s*"([a-z0-9-]+)"', path.read_text())}
    assert sorted(raised - FINDING_CODES) == []


def test_stall_selects_the_frames_that_left_a_sender_waiting_and_that_reopened() -> None:
    """stall:start the DATA after which its sender must wait (not one that also ends
    its stream), stall:end the WINDOW_UPDATE that reopened the window, stall:any
    both; a WINDOW_UPDATE that leaves the window at 0 or below is neither."""
    from tests.unit.observe.conftest import Conversation

    c2s, s2c = Direction.C2S, Direction.S2C
    conv = Conversation()
    request = [(":method", "GET"), (":scheme", "https"), (":authority", "a"), (":path", "/")]
    conv.send(c2s, conv.f.headers(c2s, 1, request, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(c2s, conv.f.headers(c2s, 3, request, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(s2c, conv.f.headers(s2c, 1, [(":status", "200")]))
    conv.send(s2c, conv.f.headers(s2c, 3, [(":status", "200")]))
    conv.send(c2s, conv.f.window_update(0, 1 << 20))
    for _ in range(3):
        conv.send(s2c, conv.f.data(1, b"x" * 16384))
    conv.send(s2c, conv.f.data(1, b"x" * 16383))  # stream 1 waits
    for _ in range(3):
        conv.send(s2c, conv.f.data(3, b"x" * 16384))
    conv.send(s2c, conv.f.data(3, b"x" * 16383, flags=["END_STREAM"]))  # ends: no wait
    conv.send(c2s, conv.f.window_update(1, 0 + 1))  # (reopens stream 1)
    frames = [e for e in conv.events if isinstance(e, FrameObserved)]

    def picked(text: str) -> list[tuple[str, int]]:
        f = compile_filter(text)
        return [(e.frame.type_name, e.frame.stream_id) for e in frames if f.matches(e)]

    assert picked("stall:start") == [("DATA", 1)]
    assert picked("stall:end") == [("WINDOW_UPDATE", 1)]
    assert picked("stall:any") == [("DATA", 1), ("WINDOW_UPDATE", 1)]
    assert picked("stall:any -dir:c2s") == [("DATA", 1)]
    exc = error("stall:soon")
    assert "bad stall 'soon'" in str(exc) and "expected any, start or end" in str(exc)


def test_a_key_written_with_an_equals_sign_gets_the_colon_meant() -> None:
    """'status=404' is a word search that matched nothing, with no word of why."""
    from proxy.filter import no_match_hint

    assert no_match_hint("status=404") == (
        " ('status=404' is a search for those characters: did you mean status:404?)")
    assert no_match_hint("type:DATA Path=/a.css") == (
        " ('Path=/a.css' is a search for those characters: did you mean path:/a.css?)")
    assert no_match_hint("token=abc") == ""  # (no key: a word like any other)
    assert no_match_hint("finding:flow-control-exeeded").startswith(" (no finding has")


def test_a_streams_status_is_its_final_response_not_a_1xx() -> None:
    """With a 103 Early Hints before the 200, headless and export had taken the 103 for
    the stream's status (status:200 missed its request and DATA, status:103 selected
    them), while the UI took the final one."""
    from proxy.filter_context import all_stream_headers

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    obs = ConnectionObserver()
    events: list[FrameObserved] = []
    client.initiate_connection()
    server.initiate_connection()
    client.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", "a"),
                            (":path", "/early")], end_stream=True)
    for up in (client.data_to_send(),):
        events += [e for e in obs.feed(Direction.C2S, up, 0.0) if isinstance(e, FrameObserved)]
        server.receive_data(up)
    server.send_headers(1, [(":status", "103"), ("link", "</a.css>; rel=preload")])
    server.send_headers(1, [(":status", "200")])
    server.send_data(1, b"body", end_stream=True)
    down = server.data_to_send()
    events += [e for e in obs.feed(Direction.S2C, down, 0.0) if isinstance(e, FrameObserved)]
    known = all_stream_headers((1, ev) for ev in events)
    live = StreamHeadersTracker()
    seen = [live.update(1, ev) for ev in events]
    on_1 = [i for i, ev in enumerate(events) if ev.frame.stream_id == 1]
    assert [events[i].frame.type_name for i in on_1] == ["HEADERS", "HEADERS", "HEADERS", "DATA"]

    def picked(text: str, offline: bool) -> list[int]:
        flt = compile_filter(text)
        return [i for i in on_1 if flt.matches(
            events[i], CONN, known.get((1, 1)) if offline else seen[i])]

    request, early, final, data = on_1
    assert picked("status:200", offline=True) == [request, final, data]
    assert picked("status:200", offline=False) == [final, data]  # (live: not yet known)
    for offline in (True, False):
        assert picked("status:103", offline) == [early]
        assert picked("status:1xx", offline) == [early]


def test_comparisons_and_double_negations_that_read_as_words_get_a_hint() -> None:
    """``len!=0``, ``stream>5`` and ``!-type:DATA`` are bare words that can never match,
    and the no-match message said nothing of why."""
    from proxy.filter import no_match_hint

    assert no_match_hint("len!=0") == (
        " ('len!=0' is a search for those characters: did you mean -len:0?)")
    assert "only len compares with < and >; stream: takes values and ranges" in \
        no_match_hint("stream>5")
    assert str(error("!-type:DATA")) == (
        "one ! or - per term: '!-type:DATA' (column 1); write -type:DATA to leave those "
        "frames out, type:DATA to keep them")
    assert seqs('!"-x"') == ALL  # (a quoted word: a search for those characters)
    assert no_match_hint("len>5 gzip") == ""


def _split_push_promise(data: bytes) -> bytes:
    """The server's bytes with its PUSH_PROMISE's block split over a CONTINUATION."""
    out = b""
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        data = data[9 + length:]
        if isinstance(frame, PushPromiseFrame):
            block = frame.data
            first = PushPromiseFrame(frame.stream_id, promised_stream_id=frame.promised_stream_id,
                                     data=block[:5])
            out += first.serialize() + ContinuationFrame(
                frame.stream_id, data=block[5:], flags=["END_HEADERS"]).serialize()
        else:
            out += frame.serialize()
    return out


def test_stream_selects_the_push_promise_of_a_pushed_stream() -> None:
    # The promised stream's request is in the PUSH_PROMISE sent on its parent
    # (here split in PUSH_PROMISE + CONTINUATION): stream:2 shows it, stream:1 too.
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    obs = ConnectionObserver()
    frames: list[FrameObserved] = []
    client.initiate_connection()
    server.initiate_connection()

    def pump() -> None:
        for _ in range(10):
            up, down = client.data_to_send(), _split_push_promise(server.data_to_send())
            for d, data, peer in ((Direction.C2S, up, server), (Direction.S2C, down, client)):
                if data:
                    frames.extend(e for e in obs.feed(d, data, 0.0)
                                  if isinstance(e, FrameObserved))
                    peer.receive_data(data)
            if not up and not down:
                return

    pump()
    req = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com")]
    client.send_headers(1, [*req, (":path", "/")], end_stream=True)
    pump()
    server.push_stream(1, 2, [*req, (":path", "/app.css")])
    server.send_headers(2, [(":status", "200")], end_stream=True)
    server.send_headers(1, [(":status", "200")], end_stream=True)
    pump()
    layout = [(ev.frame.type_name, ev.frame.stream_id) for ev in frames
              if ev.frame.stream_id]
    assert layout == [("HEADERS", 1), ("PUSH_PROMISE", 1), ("CONTINUATION", 1),
                      ("HEADERS", 2), ("HEADERS", 1)]
    assert not [f for ev in frames for f in ev.findings]

    def picked(text: str) -> list[tuple[str, int]]:
        flt = compile_filter(text)
        return [(ev.frame.type_name, ev.frame.stream_id) for ev in frames if flt.matches(ev)]

    assert picked("stream:2") == [("PUSH_PROMISE", 1), ("CONTINUATION", 1), ("HEADERS", 2)]
    assert picked("stream:1 type:PUSH_PROMISE,CONTINUATION") == [("PUSH_PROMISE", 1),
                                                                 ("CONTINUATION", 1)]
    assert picked("stream:4-9") == []
    assert picked("!stream:2 stream:1-3") == [("HEADERS", 1), ("HEADERS", 1)]
