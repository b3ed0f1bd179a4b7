"""``h2scope decode``: frames and HPACK blocks from hex, human and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h2.config
import h2.connection
import pytest

from proxy.cli import main
from tests.helpers.corpus import CORPUS, missing


def client_bytes() -> bytes:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/index.html"), (":scheme", "https"),
                       (":authority", "example.com")], end_stream=True)
    return c.data_to_send()


def test_frames_human_output_names_types_and_fields(capsys):
    assert main(["decode", client_bytes().hex()]) == 0
    out = capsys.readouterr().out
    assert "connection preface" in out
    assert "#0 SETTINGS <length=" in out
    assert "HEADERS <length=" in out and "[END_STREAM,END_HEADERS]" in out
    assert ":path: /index.html    ; idx static:5" in out
    assert ":authority: example.com    ; lit+idx name=static:1 value=H" in out


def test_frames_json_lines(capsys):
    spaced = " ".join("0x" + client_bytes().hex()[i:i + 2] for i in range(0, 40, 2)) + \
        client_bytes().hex()[40:]
    assert main(["decode", "--json", spaced]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    headers = [x for x in lines if x["type"] == "HEADERS"][0]
    assert headers["flags"] == ["END_STREAM", "END_HEADERS"]
    assert headers["block"]["headers"][1] == {"name": ":path", "value": "/index.html"}
    assert headers["block"]["fields"][3]["representation"] == "literal_incremental"
    assert headers["block"]["table"]["entries"] == 1


def test_server_frames_detected_without_preface(capsys):
    s = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    s.initiate_connection()
    s.receive_data(client_bytes())
    s.send_headers(1, [(":status", "404")], end_stream=True)
    assert main(["decode", s.data_to_send().hex()]) == 0
    out = capsys.readouterr().out
    assert ":status: 404" in out and "!" not in out  # no findings: judged as the server


def test_altsvc_and_origin_frames_mark_the_input_as_the_servers(capsys):
    """Frames only a server sends (RFC 7838 §4, RFC 8336 §2.1) decide --from auto
    as PUSH_PROMISE does: they read as 'from the client: a server ignores it'."""
    origin = b"https://a.example"
    altsvc_value = b'h3=":443"; ma=86400'
    altsvc = len(origin).to_bytes(2, "big") + origin + altsvc_value
    frames = (len(altsvc).to_bytes(3, "big") + b"\x0a\x00" + bytes(4) + altsvc)
    entry = len(origin).to_bytes(2, "big") + origin
    frames += len(entry).to_bytes(3, "big") + b"\x0c\x00" + bytes(4) + entry
    assert main(["decode", frames.hex()]) == 0
    out = capsys.readouterr().out
    assert "ALTSVC" in out and "ORIGIN" in out and "from the client" not in out, out


def test_bad_hex_names_line_and_column(capsys):
    assert main(["decode", "000004080000000000\n00000fzz01"]) == 1
    err = capsys.readouterr().err
    assert "line 2, column 7" in err and "'z' is not a hex digit" in err


def test_truncated_frame_exits_1_after_printing_what_decoded(capsys):
    data = client_bytes().hex()
    assert main(["decode", data[:-4]]) == 1
    captured = capsys.readouterr()
    assert "SETTINGS" in captured.out and "frame-truncated" in captured.out


def test_hpack_blocks_share_a_table(capsys):
    # RFC 7541 C.4.1 and C.4.2: the second block indexes the first's entry.
    text = "828684418cf1e3c2e5f23a6ba0ab90f4ff\n828684be5886a8eb10649cbf\n"
    assert main(["decode", "--hpack", "--json", text]) == 0
    blocks = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert blocks[1]["headers"][3] == {"name": ":authority", "value": "www.example.com"}
    assert blocks[1]["fields"][3]["table"] == "dynamic"
    assert blocks[1]["table"] == {"size_before": 57, "size": 110, "max": 4096, "entries": 2}


def test_hpack_error_reports_line_and_offset_after_earlier_blocks(capsys):
    assert main(["decode", "--hpack", "8286\n82ff\n82"]) == 1
    captured = capsys.readouterr()
    assert "block 0 (line 1)" in captured.out
    # the broken block: what decoded before the error, annotated, then the error once
    assert "block 1 (line 2): 2 bytes, does not decode; the 1 representation before the " \
        "error:\n    :method: GET    ; idx static:2 (1 B)\n" in captured.out
    assert captured.err == (
        "h2scope decode: header block on line 2 does not decode: truncated integer (index): "
        "the block ends after 1 of its bytes (RFC 7541 §5.1; at byte 1 of the header block); "
        "blocks after it are not decoded (1 left)\n")


def test_hpack_error_as_json_is_an_object_with_the_error_and_what_decoded(capsys):
    assert main(["decode", "--hpack", "--json", "8286\n828220"]) == 1
    good, broken = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert "error" not in good
    assert broken["error"] == {"offset": 2, "rfc": "RFC 7541 §4.2", "reason":
                               "dynamic table size update after the first header field"}
    assert [f["offset"] for f in broken["fields"]] == [0, 1]
    assert broken["wire_length"] == 3 and broken["line"] == 2


@pytest.mark.parametrize(("hex_block", "reason"), [
    ("82ffff", "truncated integer (index): the block ends after 2 of its bytes"),
    ("82ffffffffffff0f", "over-long integer (index): more continuation bytes than any "
     "value up to 4294967296 needs"),
    ("ff8080808010", "integer 4294967423 too large (index): above 4294967296"),
])
def test_a_truncated_integer_and_a_too_large_one_are_told_apart(capsys, hex_block, reason):
    assert main(["decode", "--hpack", hex_block]) == 1
    assert f"does not decode: {reason} (RFC 7541 §5.1;" in capsys.readouterr().err


def test_an_index_to_an_entry_this_block_evicted_says_which_and_where(capsys):
    def lit(name: bytes, value: bytes) -> bytes:
        return bytes([0x40, len(name)]) + name + bytes([len(value)]) + value
    first = bytes([0x3F, 0x45]) + lit(b"x-a", b"a" * 60)  # table max 100, x-a 95 bytes
    second = lit(b"x-c", b"c" * 30) + bytes([0x80 | 63])  # x-c evicts x-a; then 63
    assert main(["decode", "--hpack", f"{first.hex()}\n{second.hex()}"]) == 1
    out, err = capsys.readouterr()
    assert "x-c: cccccccccccccccccccccccccccccc    ; lit+idx name=raw 3→3 value=raw 30→30 (36 B) " \
        f"evicted x-a={'a' * 24}…\n" in out  # (name=value: the name may be in twice)
    assert "index 63 out of range: 61 static + 1 dynamic entries; index 63 was x-a: " \
        f"{'a' * 40}… until the representation at byte 0 of this block evicted it" in err


def test_table_size_limits_size_updates(capsys):
    assert main(["decode", "--hpack", "--table-size", "100", "3f4682"]) == 1  # update to 101
    assert main(["decode", "--hpack", "--table-size", "100", "3f4582"]) == 0  # to 100


def test_reads_file_and_stdin(tmp_path, capsys, monkeypatch):
    p = tmp_path / "in.hex"
    p.write_text("# a comment\n8286\n")
    assert main(["decode", "--hpack", "-f", str(p)]) == 0
    assert ":method: GET" in capsys.readouterr().out
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO("8286"))
    assert main(["decode", "--hpack", "-"]) == 0
    assert ":scheme: http" in capsys.readouterr().out


def _stories() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.fail(missing(CORPUS))
    return sorted(p for d in CORPUS.iterdir() if d.is_dir() and d.name != "raw-data"
                  for p in d.glob("story_*.json"))


def test_corpus_decodes_through_the_cli(tmp_path, capsys):
    stories = _stories()
    assert len(stories) > 100
    for story in stories:
        cases = json.loads(story.read_text())["cases"]
        size = max([c.get("header_table_size") or 4096 for c in cases])
        hexfile = tmp_path / "blocks.hex"
        hexfile.write_text("\n".join(c["wire"] for c in cases) + "\n")
        assert main(["decode", "--hpack", "--json", "--table-size", str(size), "-f",
                     str(hexfile)]) == 0, story
        got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert len(got) == len(cases), story
        for case, block in zip(cases, got, strict=True):
            expected = [next(iter(h.items())) for h in case["headers"]]
            assert [(h["name"], h["value"]) for h in block["headers"]] == expected, story


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "proxy", "decode", "--hpack", "82"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and ":method: GET" in proc.stdout


def test_protobuf_messages_one_per_line_with_or_without_the_grpc_prefix(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "messages.hex"
    src.write_text("# from a log\n00 00000007 0a0568656c6c6f\n1a03089601\n\n")
    assert main(["decode", "--protobuf", "-f", str(src)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "message 0 (line 2): 7 bytes (gRPC message, 5-byte prefix removed)",
        '  1: "hello"',
        "message 1 (line 3): 5 bytes",
        "  3 {", "    1: 150", "  }",
    ]
    assert main(["decode", "--protobuf", "0aff"]) == 1
    assert "line 1: 2 bytes that are not a well-formed protobuf message" in \
        capsys.readouterr().err
    assert main(["decode", "--protobuf", "--hpack", "82"]) == 2


def test_goaway_debug_data_keeps_its_bytes_in_json_and_bad_hex_says_what_was_decoded(capsys):
    import hyperframe.frame as hf

    goaway = hf.GoAwayFrame(0, last_stream_id=3, error_code=0, additional_data=b"bye\x00\xff")
    assert main(["decode", "--json", goaway.serialize().hex()]) == 0
    (obj,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert obj["debug_data_hex"] == "627965" + "00ff"
    assert main(["decode", "000004080000000000000f0001", "0"]) == 1
    err = capsys.readouterr().err
    assert "nothing was decoded (a line is decoded whole)" in err


def test_http1_given_to_decode_is_named_and_a_cut_input_is_the_inputs_end(capsys):
    assert main(["decode", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".hex()]) == 1
    assert "this is HTTP/1.x (b'GET / HTTP/1.1'), not HTTP/2 frames" in capsys.readouterr().err
    assert main(["decode", "000004080000000000000f00"]) == 1
    out = capsys.readouterr().out
    assert ("a WINDOW_UPDATE frame (stream 0) announcing 4 bytes, of which 3 came, from the "
            "client at the end of the input") in out


def test_a_headers_frame_whose_block_breaks_says_so_and_cites_both_rfcs(capsys):
    assert main(["decode", "000001010500000001be"]) == 0
    first, finding = capsys.readouterr().out.splitlines()[:2]
    assert first.endswith("stream=1>  header block NOT decoded (HPACK error)")
    assert "hpack-error (RFC 7541 §2.3.3, RFC 9113 §4.3): header block on stream 1 does not " \
        "decode: index 62 out of range: 61 static + 0 dynamic entries (at byte 0 of the " \
        "header block);" in finding


def test_a_table_size_line_changes_the_acknowledged_setting_between_blocks(capsys):
    """`table-size N` between blocks: as a SETTINGS_HEADER_TABLE_SIZE lowered and
    acknowledged mid-connection; the next block must then start with a size update
    (RFC 7541 §4.2), which the first input does and the second does not."""
    assert main(["decode", "--hpack", "82\ntable-size 256\n3f e1 01 82\n82"]) == 0
    out = capsys.readouterr().out
    # (the table's maximum, not its size — it holds nothing here — and HTTP/2's rule)
    assert ("table-size 256 (line 2): the decoder now allows a dynamic table of at most "
            "this; the next block must start with a size update if the table's maximum "
            "(4096) is above it (RFC 9113 §4.3.1)") in out
    assert "<size-update 256 (" in out and "block 2 (line 4)" in out
    assert main(["decode", "--hpack", "82\ntable-size 256\n82"]) == 1
    err = capsys.readouterr().err
    assert "exceeds the acknowledged SETTINGS_HEADER_TABLE_SIZE 256" in err
    assert "(RFC 7541 §4.2, RFC 9113 §4.3.1; at byte 0" in err
    assert main(["decode", "--hpack", "--json", "82\ntable-size 256\n3fe10182"]) == 0
    objs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert objs[1] == {"line": 2, "table_size": 256}
    assert main(["decode", "--hpack", "82\ntable-size many\n82"]) == 1
    assert "a table-size line is 'table-size N'" in capsys.readouterr().err
    assert main(["decode", "--hpack", "82\ntable-size 4294967296\n82"]) == 1
    assert main(["decode", "--hpack", "--table-size", "4294967296", "82"]) == 2


def test_windows_printed_from_defaults_come_with_a_note_that_says_so(capsys):
    # A WINDOW_UPDATE alone: the window printed is 65,535 + the increment, which is
    # the connection's only if nothing went before and the peer changed nothing.
    assert main(["decode", "000004080000000000000f0001"]) == 0
    out, err = capsys.readouterr()
    assert "window conn=1048576" in out
    assert "note: the windows shown count from RFC 9113's initial 65,535" in err
    assert "nor what went before the input" in err
    # From the preface on, what went before is known; the peer's side still is not.
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "POST"), (":path", "/"), (":scheme", "https"),
                       (":authority", "example.com")])
    c.send_data(1, b"x" * 10, end_stream=True)
    assert main(["decode", c.data_to_send().hex()]) == 0
    out, err = capsys.readouterr()
    assert "window conn=65525 stream=65525" in out
    assert "not the peer's SETTINGS and WINDOW_UPDATEs, so" in err
    # No window, no note; JSON output carries no notes.
    assert main(["decode", client_bytes().hex()]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main(["decode", "--json", "000004080000000000000f0001"]) == 0
    assert capsys.readouterr().err == ""


def test_a_size_update_says_what_it_evicted_and_a_long_run_of_continuations_is_over_long(
        capsys):
    assert main(["decode", "--hpack", "4003782d610461616161\n2082"]) == 0
    out = capsys.readouterr().out
    assert "    <size-update 0 (1 B) evicted x-a=aaaa>\n" in out
    # Five continuation bytes that each say more follows: over-long, though the
    # block ends there (one fewer could still be a value cut short).
    assert main(["decode", "--hpack", "ffffffffffffffffffff"]) == 1
    assert "over-long integer (index)" in capsys.readouterr().err
    assert main(["decode", "--hpack", "ff80808080"]) == 1
    assert "truncated integer (index): the block ends after 5 of its bytes" in \
        capsys.readouterr().err
    assert main(["decode", "--hpack", "3fe13f82"]) == 1
    assert "exceeds the allowed maximum 4096 (RFC 7541 §6.3;" in capsys.readouterr().err


def test_decode_hpack_warns_of_more_than_two_size_updates_as_the_proxy_does(capsys):
    assert main(["decode", "--hpack", "203f213fe11f82"]) == 0
    out = capsys.readouterr().out
    assert ("    ! WARNING hpack-size-updates (RFC 7541 §4.2): 3 dynamic table size updates "
            "open the header block (0 → 64 → 4096)") in out
    assert main(["decode", "--hpack", "--json", "203f213fe11f82"]) == 0
    (finding,) = json.loads(capsys.readouterr().out)["findings"]
    assert finding["code"] == "hpack-size-updates"
    assert main(["decode", "--hpack", "203fe11f82"]) == 0  # two: as §4.2 allows
    assert "hpack-size-updates" not in capsys.readouterr().out


def test_an_index_to_an_entry_an_earlier_block_evicted_names_it(capsys):
    """The hint named only entries the same block evicted: an encoder that kept an
    entry the decoder had to evict a block earlier (RFC 7541 §4.4) got a bare
    'out of range'."""
    first = bytes([0x40, 3]) + b"x-a" + bytes([1]) + b"1"
    shrink = bytes([0x3f, 0x21, 0x82])  # a maximum of 64: x-a (36 B) still fits
    big = bytes([0x40, 5]) + b"x-big" + bytes([100]) + b"z" * 100  # 137 B: empties it
    blocks = "\n".join(b.hex() for b in (first, shrink, big, bytes([0xbe])))
    assert main(["decode", "--hpack", blocks]) == 1
    err = capsys.readouterr().err
    assert "index 62 out of range: 61 static + 0 dynamic entries; index 62 was x-a: 1 until " \
        "an earlier header block evicted it (RFC 7541 §4.4" in err


def test_a_file_that_is_not_there_is_a_usage_error(tmp_path, capsys):
    """As a missing input file is for every other command: exit 2 (it was 1)."""
    assert main(["decode", "-f", str(tmp_path / "nope.hex")]) == 2
    assert "decode: cannot read" in capsys.readouterr().err



def test_a_client_dump_from_its_preface_is_not_judged_on_what_the_server_sent(capsys):
    """decode sees one direction: a client's SETTINGS ACK and PING ACK answer the
    server's frames (RFC 9113 §3.4, §6.7), its frames on the server's stream 2 follow
    the server's PUSH_PROMISE, its DATA past 65,535 bytes the server's WINDOW_UPDATEs,
    and its FLOW_CONTROL_ERROR reset the server's DATA; none of that is in the input
    (they were settings-ack-unexpected, ping-ack-unmatched, frame-on-idle-stream,
    flow-control-exceeded and flow-control-error-unexplained)."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "POST"), (":path", "/"), (":scheme", "https"),
                       (":authority", "example.com")])
    data = c.data_to_send()
    frame = bytes.fromhex
    data += frame("000000040100000000")  # SETTINGS ACK
    data += frame("000008060100000000") + b"12345678"  # PING ACK
    data += frame("000004030000000002") + (8).to_bytes(4, "big")  # RST_STREAM(2, CANCEL)
    data += frame("000004080000000004") + (100).to_bytes(4, "big")  # WINDOW_UPDATE(4)
    for _ in range(5):
        data += frame("004000000000000001") + b"x" * 16384  # 81,920 bytes on stream 1
    data += frame("000004030000000003") + (3).to_bytes(4, "big")  # (opens nothing)
    c.send_headers(5, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                       (":authority", "example.com")])
    data += c.data_to_send()
    data += frame("000004030000000005") + (3).to_bytes(4, "big")  # FLOW_CONTROL_ERROR
    assert main(["decode", "--from", "client", data.hex()]) == 0
    out = capsys.readouterr().out
    found = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("!")]
    assert found == ["! ERROR frame-on-idle-stream (RFC 9113 §5.1): stream 3: RST_STREAM "
                     "on an idle stream"]  # (the client's own id: that rule still holds)


def test_an_entry_the_encoders_own_size_update_removed_cites_4_3_not_4_4(capsys):
    """An index to an entry a size update evicted: the encoder forgot its own update
    (RFC 7541 §4.3), not an eviction on insert (§4.4, 'evict as the decoder does')."""
    first = bytes([0x41, 15]) + b"www.example.com"  # :authority, inserted at 62
    updates = bytes([0x20, 0x3f, 0xe1, 0x01])  # size updates to 0, then 256
    assert main(["decode", "--hpack", "\n".join(b.hex() for b in (first, updates, b"\xbe"))]) \
        == 1
    assert ("index 62 was :authority: www.example.com until the encoder's own size update "
            "to 0 in an earlier header block emptied the table (RFC 7541 §4.3: a lower "
            "maximum evicts entries") in capsys.readouterr().err
    assert main(["decode", "--hpack", "\n".join(b.hex() for b in (first, b"\x20\xbe"))]) == 1
    assert "until the encoder's own size update to 0 at byte 0 of this block emptied the " \
        "table (RFC 7541 §4.3" in capsys.readouterr().err


def test_table_size_help_says_it_is_the_maximum_from_the_start(capsys):
    """--table-size sets the table's maximum from the start (RFC 7541 Appendix C), which
    an acknowledged SETTINGS_HEADER_TABLE_SIZE would not (its first block needs a size
    update, RFC 9113 §4.3.1): the help said 'as if acknowledged'."""
    with pytest.raises(SystemExit):
        main(["decode", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the dynamic table's maximum from the start, as in RFC 7541 Appendix C" in out
    assert "as if acknowledged" not in out


_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_GET = bytes.fromhex("828784418aa0e41d139d09b8f01e07")  # GET https://www.example.com/


def _frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
        sid.to_bytes(4, "big") + payload


def _decode_findings(data: bytes, capsys) -> list[str]:
    assert main(["decode", data.hex()]) == 0
    out = capsys.readouterr().out
    return [ln.strip() for ln in out.splitlines() if ln.strip().startswith("!")]


def test_a_client_dump_with_headers_or_data_on_a_server_stream_is_flagged(capsys):
    """RFC 9113 §5.1: a client never sends HEADERS or DATA on a server's (even) stream,
    whatever the server sent, so one direction proves it. With the server's side
    unseen the stream was taken as opened there: the HEADERS read as trailers
    (pseudo-header-in-trailers), and DATA or HEADERS without pseudo-headers passed."""
    start = _PREFACE + _frame(4, 0, 0)
    assert _decode_findings(start + _frame(1, 5, 2, _GET), capsys) == [
        "! ERROR stream-id-parity (RFC 9113 §5.1.1): the client opened even-numbered "
        "stream 2"]
    found = _decode_findings(start + _frame(0, 1, 2, b"hello"), capsys)
    assert found == ["! ERROR frame-on-idle-stream (RFC 9113 §5.1): stream 2: DATA on an "
                     "idle stream"]
    # (its RST_STREAM and WINDOW_UPDATE there may follow a PUSH_PROMISE: not flagged)
    assert _decode_findings(start + _frame(3, 0, 2, bytes(4))
                            + _frame(8, 0, 4, (100).to_bytes(4, "big")), capsys) == []


def test_a_client_dump_is_held_to_the_defaults_until_its_first_settings_ack(capsys):
    """Until the client acknowledged the server's SETTINGS it had applied none of them,
    nor any WINDOW_UPDATE (RFC 9113 §3.4, §6.5.3): the defaults bound it (§4.2,
    §6.9.2; RFC 7541 §4.2 with RFC 9113 §4.3.1). All of this passed in decode since
    the server's side was taken as unknown from the start."""
    start = _PREFACE + _frame(4, 0, 0)
    post = _frame(1, 4, 1, bytes.fromhex("838784418aa0e41d139d09b8f01e07"))
    codes = [ln.split()[2] for ln in _decode_findings(
        start + post + _frame(0, 0, 1, b"x" * 20000), capsys)]
    assert codes == ["frame-too-large"]
    upload = start + post + b"".join(_frame(0, 0, 1, b"x" * 16384) for _ in range(4))
    found = _decode_findings(upload, capsys)
    assert found == [
        "! ERROR flow-control-exceeded (RFC 9113 §6.9.1): DATA of 16384 bytes exceeds the "
        "connection window by 1",
        "! ERROR flow-control-exceeded (RFC 9113 §6.9.1): DATA of 16384 bytes exceeds "
        "stream 1's window by 1"]
    resized = start + _frame(1, 5, 1, bytes.fromhex("3fe13f") + _GET)  # size update 8192
    (found_hpack,) = _decode_findings(resized, capsys)
    assert "table size update to 8192 exceeds the allowed maximum 4096" in found_hpack
    (overflow,) = _decode_findings(start + _frame(8, 0, 0, (2**31 - 1).to_bytes(4, "big")),
                                   capsys)
    assert overflow.startswith("! ERROR window-overflow (RFC 9113 §6.9.1): connection "
                               "window would reach 2147549182")
    # After its ACK the server's SETTINGS and WINDOW_UPDATEs bind it, and are unseen.
    ack = _frame(4, 1, 0)
    assert _decode_findings(start + ack + post + _frame(0, 0, 1, b"x" * 20000), capsys) == []
    assert _decode_findings(start + ack + post + b"".join(
        _frame(0, 0, 1, b"x" * 16384) for _ in range(4)), capsys) == []
    assert _decode_findings(start + ack + _frame(1, 5, 1, bytes.fromhex("3fe13f") + _GET),
                            capsys) == []
    # (a WINDOW_UPDATE once a stream is open: the server may have spent its window)
    assert _decode_findings(start + post + _frame(8, 0, 0, (2**31 - 1).to_bytes(4, "big")),
                            capsys) == []


def test_a_client_dump_with_the_rapid_reset_pattern_is_flagged(capsys):
    """CVE-2023-44487: streams the client opens and resets at once are visible in its
    bytes alone; decode said nothing once the server's side was taken as unknown (a
    response might have come). Each reset must follow its request directly."""
    data = _PREFACE + _frame(4, 0, 0)
    for i in range(150):
        sid = 1 + 2 * i
        data += _frame(1, 5, sid, _GET) + _frame(3, 0, sid, (8).to_bytes(4, "big"))
    (found,) = _decode_findings(data, capsys)
    assert found.startswith("! WARNING rapid-reset (RFC 9113 §10.5): the client reset 100 "
                            "of its streams as the next frame after each request (the "
                            "server's responses are not in the input)")
    later = _PREFACE + _frame(4, 0, 0)
    for i in range(150):  # (a PING between: a response may have come meanwhile)
        sid = 1 + 2 * i
        later += _frame(1, 5, sid, _GET) + _frame(6, 0, 0, bytes(8)) + \
            _frame(3, 0, sid, (8).to_bytes(4, "big"))
    assert not [x for x in _decode_findings(later, capsys) if "rapid-reset" in x]


def test_a_server_dump_from_its_settings_is_held_to_the_defaults_until_its_ack(capsys):
    """A server's bytes have no preface: one that opens with the server's SETTINGS (its
    first frame, RFC 9113 §3.4) is taken from the start, so its frames before its ACK
    are held to the client's defaults (§4.2); an excerpt that opens otherwise may
    start after the ACK, and is not."""
    response = _frame(1, 4, 1, bytes.fromhex("88")) + _frame(0, 1, 1, b"x" * 20000)
    for data, codes in ((_frame(4, 0, 0) + response, ["frame-too-large"]),
                        (_frame(4, 0, 0) + _frame(4, 1, 0) + response, []),
                        (response, [])):
        assert main(["decode", "--from", "server", data.hex()]) == 0
        out = capsys.readouterr().out
        assert [ln.split()[2] for ln in out.splitlines() if ln.strip().startswith("!")] \
            == codes
