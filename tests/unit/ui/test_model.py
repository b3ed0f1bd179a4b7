"""The UI model (no screen): what the views are built from must equal the observer's truth."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from proxy.capture.replay import replay
from proxy.filter import compile_filter
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction, SettingCode
from proxy.observe.events import FrameObserved
from tests.unit.ui.traffic import BIG, GRPC_MESSAGES, JSON_BODY
from ui.model.body import curl_command, grpc_messages, reassemble, render_body
from ui.model.filtering import needs_frames, run_filter
from ui.model.session import Session


def _frames(path: Path) -> list[tuple[int, FrameObserved]]:
    return [(item.record.conn_id, ev) for item in replay(path) for ev in item.events
            if isinstance(ev, FrameObserved)]


def test_table_has_one_row_per_frame_event_in_capture_order(session: Session,
                                                             capture_path: Path) -> None:
    frames = _frames(capture_path)
    t = session.table
    assert len(t) == len(frames) > 30
    for row, (conn, ev) in enumerate(frames):
        assert (t.conn[row], t.stream[row], t.type[row], t.flags[row], t.length[row]) == (
            conn, ev.frame.stream_id, ev.frame.type, ev.frame.flags, ev.frame.length)
        # The UI runs on the capture's wall clock (one clock for every view).
        got = t.event(row)
        assert got is not None
        assert dataclasses.replace(got, t=ev.t, block=ev.block) == ev
        if ev.block is not None:
            # The table keeps the header list; the annotated block is decoded again.
            assert got.block is not None and got.block.headers == ev.block.headers
            assert session.header_block(row) == ev.block
        else:
            assert got.block is None and session.header_block(row) is None


def test_connection_summary_counts_frames_bytes_streams_and_findings(session: Session) -> None:
    c = session.conns[1]
    assert c.target == "api.example.test:443"
    assert c.tls("client") == "TLSv1.3 h2"
    assert c.state == "closed"
    assert sum(c.frames) == len(session.table)
    assert sorted(c.streams) == [1, 2, 3, 5, 7]
    assert c.findings >= 1


def test_streams_hold_request_response_informational_and_trailers(session: Session) -> None:
    st = session.conns[1].streams
    assert dict(st[1].request_headers or ())[":path"] == "/api/users"
    assert dict(st[1].response_headers or ())["content-encoding"] == "gzip"
    assert st[2].pushed_by == 1 and dict(st[2].request_headers or ())[":path"] == "/app.js"
    assert st[3].response_trailers == (("grpc-status", "0"), ("grpc-message", "OK"))
    assert st[7].reset == "by client: CANCEL"
    assert (st[1].urgency, st[1].incremental) == (1, True)


def test_hpack_tables_rebuilt_from_annotations_equal_the_observers_decoder(
        session: Session, capture_path: Path) -> None:
    obs = ConnectionObserver()
    for item in replay(capture_path):
        if item.record.type in (2, 3):
            obs.feed(item.record.direction, item.record.frame_bytes()
                     if item.record.type == 2 else item.record.body, item.record.t)
    c = session.conns[1]
    for d in Direction:
        c.hpack[d].rebuild(session.block_bytes)
        decoder = obs.sides[d].decoder
        entries = [(str(n), str(v)) for n, v in decoder.entries]
        assert entries, "the traffic inserts into both directions' tables"
        assert c.hpack[d].in_sync
        assert list(c.hpack[d].entries) == entries
        assert c.hpack[d].size == decoder.table_size
        assert len(c.hpack[d].sizes) > 0


def test_settings_are_pending_until_acknowledged_then_in_force(session: Session) -> None:
    c = session.conns[1]
    client = c.settings_acked[Direction.C2S]
    assert client[SettingCode.HEADER_TABLE_SIZE] == 8192
    assert c.settings_acked[Direction.S2C][SettingCode.MAX_CONCURRENT_STREAMS] == 100
    assert c.settings_pending[Direction.C2S] == []


def test_flow_control_series_show_the_stall_and_the_window_updates(session: Session) -> None:
    c = session.conns[1]
    s2c = c.flow[Direction.S2C]
    assert 0 in s2c.conn  # the connection window reached 0
    assert 8 in s2c.kind  # WINDOW_UPDATE markers
    assert any(sid == 0 and end is not None for _, d, sid, end, _ in c.stalls)
    assert c.pings and c.pings[0] == pytest.approx(0.001, abs=1e-6)


@pytest.mark.parametrize("text", [
    "type:DATA", "type:HEADERS,DATA dir:s2c", "stream:3", "stream:1-3 -type:DATA",
    "finding:any", "len>16000", "flags:END_STREAM", "header:content-type=grpc",
    "status:200", "method:POST", "path:/api*", "conn:1", "host:*.example.test",
    "type:WINDOW_UPDATE or type:RST_STREAM", "gzip", "opaque=6832", "-type:SETTINGS big",
    # Bare words: the summary's own characters take the exact path, the others
    # the row object; both must agree with the real events.
    "bytes", "window", "conn=", "+1", "ack", "promised", "weight", "cancel", "fragment",
    "GET", "example.test/api", '"200 application"', ":status", "grpc-status", "zzz",
    "-gzip", "type:DATA or users", "data", "settings_max", "+16", "n=", "update", "=-",
    "window stream=",
    # A PUSH_PROMISE belongs to the stream it promises (2) as well as its own (1).
    "stream:2", "stream:2 promised", "stream:2-9 type:PUSH_PROMISE",
])
def test_filter_over_the_table_equals_the_filter_on_real_events(session: Session,
                                                                capture_path: Path,
                                                                text: str) -> None:
    flt = compile_filter(text)
    got = list(run_filter(session, flt) or [])
    want = []
    for row in range(len(session.table)):
        ev = session.table.event(row)
        assert ev is not None
        c = session.conns[session.table.conn[row]]
        st = c.streams.get(ev.frame.stream_id)
        sh = st.stream_headers if st is not None and flt.needs_stream_headers else None
        if flt.matches(ev, c, sh):
            want.append(row)
    assert got == want
    if text in ("stream:3", "type:DATA", "status:200", "stream:2-9 type:PUSH_PROMISE"):
        assert got


def test_bare_words_take_the_exact_path() -> None:
    assert needs_frames("gzip")
    assert needs_frames("type:DATA -gzip")
    assert not needs_frames("type:DATA len>10 or stream:3")
    assert not needs_frames('header:user-agent="a b"')


def test_bodies_reassemble_from_data_frames_and_decode(session: Session) -> None:
    c = session.conns[1]
    js = reassemble(session, c.streams[1], 1)
    lines = render_body(js.raw, "application/json", "gzip")
    assert lines[0] == "; gzip decoded"
    assert json.loads("\n".join(lines[1:])) == JSON_BODY
    assert reassemble(session, c.streams[5], 1).raw == BIG
    grpc = reassemble(session, c.streams[3], 0).raw
    assert [m for _, m in grpc_messages(grpc)] == list(GRPC_MESSAGES)
    shown = render_body(grpc, "application/grpc", None)
    assert "; gRPC: 2 length-prefixed message(s)" in shown
    # Each message decoded as protobuf without a schema (b"\x0a\x05hello": field 1, "hello").
    assert shown[1:] == ["message 1: 7 bytes",
                         "  ; protobuf, no schema: field number: value (protoc --decode_raw)",
                         '  1: "hello"',
                         "message 2: 7 bytes",
                         "  ; protobuf, no schema: field number: value (protoc --decode_raw)",
                         '  1: "world"']


def test_copy_as_curl_rebuilds_the_request(session: Session) -> None:
    c = session.conns[1]
    cmd = curl_command(c, c.streams[1])
    assert cmd.startswith("curl --http2 ")
    assert "'accept-encoding: gzip'" in cmd
    assert cmd.endswith("https://api.example.test/api/users")


def test_copy_as_curl_of_raw_binary_metadata_is_text_that_sends_the_bytes(
        session: Session) -> None:
    """A gRPC -bin value sent raw (bytes that are not UTF-8) crashed the copy (the
    clipboard takes text): the command writes them $'\\xNN', and a shell sends them."""
    import dataclasses
    import subprocess

    c = session.conns[1]
    stream = dataclasses.replace(c.streams[1], request_headers=(
        (":method", "POST"), (":scheme", "http"), (":authority", "g.test"),
        (":path", "/pkg.Svc/Call"), ("x-trace-bin", "\udcff\x01ok")))
    cmd = curl_command(c, stream)
    cmd.encode("utf-8")  # (text: the clipboard takes it)
    assert "-H $'x-trace-bin: \\xff\\x01ok'" in cmd
    token = cmd.split(" -H ", 1)[1].rsplit(" ", 1)[0]  # (the URL is last)
    echoed = subprocess.run(["bash", "-c", f"printf %s {token}"], capture_output=True,
                            check=True).stdout
    assert echoed == b"x-trace-bin: \xff\x01ok"


def test_copy_as_curl_of_a_websocket_over_h2_opens_it_as_curl_can(session: Session) -> None:
    """An RFC 8441 WebSocket was copied as 'curl --http2 -X CONNECT … --data-binary
    @body.bin': a plain CONNECT with :scheme and :path (malformed) and the masked
    frames as a body. curl opens a WebSocket over HTTP/1.1 at its wss:// URL."""
    import dataclasses
    import shlex

    c = session.conns[1]
    ws = (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), \
        (":authority", "chat.test"), (":path", "/chat?room=1"), \
        ("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat"), \
        ("origin", "https://chat.test")
    cmd = curl_command(c, dataclasses.replace(c.streams[1], request_headers=ws), b"\x81\x85")
    words = shlex.split(cmd, comments=True)
    assert words == ["curl", "--no-buffer", "--include", "-H", "sec-websocket-protocol: chat",
                     "-H", "origin: https://chat.test", "wss://chat.test/chat?room=1"]
    assert "RFC 8441" in cmd
    udp = ((":method", "CONNECT"), (":protocol", "connect-udp"), (":scheme", "https"),
           (":authority", "proxy.test"), (":path", "/.well-known/masque/udp/h/443/"))
    cmd = curl_command(c, dataclasses.replace(c.streams[1], request_headers=udp))
    assert cmd.startswith("# an extended CONNECT (:protocol connect-udp, RFC 8441)")


def test_render_body_says_why_it_cannot_decode() -> None:
    assert render_body(b"not gzip", "text/plain", "gzip")[0].startswith("; gzip: cannot decode")
    assert render_body(b"", None, None) == ["(no body)"]
    assert render_body(bytes(range(20)), None, None)[0].startswith("00000000  00 01 02")


def test_summaries_from_the_columns_are_the_frames_own(session: Session) -> None:
    """What the bare-word filter reads instead of parsing a frame: the summary of a
    header frame from its header list, of an unpadded DATA frame from its length
    and windows, exactly as frame_summary says it."""
    from proxy.observe.describe import block_summary, frame_summary
    from ui.model.filtering import (
        _data_summary,
        _window_update_stand_in,
        _window_update_summary,
    )

    table = session.table
    checked = {0: 0, 1: 0, 9: 0}
    for row in range(len(table)):
        ev = table.event(row)
        assert ev is not None
        want = frame_summary(ev).lower()
        ftype, flags = table.type[row], table.flags[row]
        headers = table.block_headers.get(row)
        if headers is not None and ftype != 5 and not flags & 0x20:
            assert block_summary(headers).lower() == want, row
            checked[ftype] += 1
        elif ftype == 0 and not flags & 0x8 and headers is None:
            assert _data_summary(table.length[row], table.win_conn[row],
                                 table.win_stream[row]) == want, row
            checked[0] += 1
        elif ftype == 8:  # the increment's digits become "0"; the rest is the summary
            stand_in = _window_update_stand_in(table.win_conn[row], table.win_stream[row])
            assert re.sub(r"\+\d+", "+0", want, count=1) == stand_in, row
            increment = ev.frame.increment  # type: ignore[attr-defined]
            assert _window_update_summary(increment, table.win_conn[row],
                                          table.win_stream[row]) == want
            checked[8] = checked.get(8, 0) + 1
    assert checked[0] > 5 and checked[1] > 5 and checked[8] >= 3


def test_a_connection_that_failed_before_relaying_has_no_protocol() -> None:
    """Its TLS or upstream connection failed: nothing was agreed, so not 'h2'."""
    from ui.model.connections import ConnInfo

    failed = ConnInfo(1, meta={"client": {"ip": "127.0.0.1", "port": 1}}, closed="proxy",
                      errors=["server-tls: certificate verify failed"])
    assert failed.protocol == "-"
    relayed = ConnInfo(2, meta={"protocol": "h2c"}, closed="client")
    assert relayed.protocol == "h2c"


def test_the_settings_view_marks_values_no_one_sent() -> None:
    """In force at their RFC defaults (the peer never sent them): said so, not shown
    as if Chromium had sent MAX_CONCURRENT_STREAMS 2147483647."""
    from proxy.observe.enums import Direction
    from ui.model.connections import ConnInfo, settings_view

    c = ConnInfo(1)
    c.settings_acked[Direction.S2C].update({3: 100})
    c.settings_sent[Direction.S2C].add(3)
    rows = {name: force for name, force, _ in settings_view(c, Direction.S2C)}
    assert rows["MAX_CONCURRENT_STREAMS"] == "100"
    assert rows["INITIAL_WINDOW_SIZE"] == "65535 (default)"
    assert rows["MAX_HEADER_LIST_SIZE"] == "unlimited (default)"  # (RFC 9113 §6.5.2)
    # A server's ENABLE_PUSH means nothing (§6.5.2: it must not send 1); a client's is 1.
    assert rows["ENABLE_PUSH"] == "n/a (clients never push)"
    client = {name: force for name, force, _ in settings_view(c, Direction.C2S)}
    assert client["ENABLE_PUSH"] == "1 (default)"


def test_time_zero_is_when_the_first_connection_opened_as_in_the_text_export(
        tmp_path: Path) -> None:
    """A row's time is its line's in the text log and export (both count from the
    first connection's opening), so the two can be matched by eye."""
    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import CONNECTION_PREFACE, Direction
    from ui.model.capture import CaptureFile, load

    path = tmp_path / "late.h2scope"
    with CaptureWriter(path) as w:
        w.connection(1, {"protocol": "h2", "opened": 1000.0}, t=5.0, wall=1000.4)
        w.raw(1, Direction.C2S, CONNECTION_PREFACE, t=5.0, wall=1000.4)
        w.frame(1, Direction.C2S, bytes(3) + b"\x04\x00" + bytes(4), t=5.1, wall=1000.5)
    capture = CaptureFile(path)
    try:
        s = Session(capture)
        load(s, capture)
        assert abs(s.relative(s.table.time[0]) - 0.5) < 1e-9
    finally:
        capture.close()
    import io

    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay
    out = io.StringIO()
    write_text(replay(path), out)
    assert "    0.500 #1   →     0 SETTINGS" in out.getvalue()


def test_the_decoded_tab_shows_a_data_payload_as_text_or_as_a_hex_dump(
        session: Session) -> None:
    """Never as a Python bytes repr (``b'\\x00\\x00…'``): printable UTF-8 as its text,
    anything else as the hex/ASCII dump of the stream view."""
    from proxy.observe.frames import DataFrame
    from ui.model.body import hexdump
    from ui.model.detail import decoded

    t = session.table
    payloads: dict[str, tuple[bytes, str]] = {}
    for row in range(len(t)):
        ev = t.event(row)
        if ev is None or not isinstance(ev.frame, DataFrame) or not ev.frame.data:
            continue
        data = ev.frame.data
        kind = ("binary" if data[:1] == b"\x00" else "long" if len(data) > 1024
                else "text" if data.isascii() and data.decode().isprintable() else "")
        if kind and kind not in payloads:
            payloads[kind] = (data, decoded(session, row, ev).plain)
    data, text = payloads["text"]  # console.log('pushed');
    assert f"data        {len(data):,} bytes, text:\n  {data.decode()}\n" in text
    data, text = payloads["long"]  # 16 KiB of 0123456789abcdef: the first KiB
    assert f"data        {len(data):,} bytes, text:\n  {data[:1024].decode()}\n" in text
    assert f"  … {len(data) - 1024:,} more bytes (the stream view shows the whole body)" in text
    data, text = payloads["binary"]  # gRPC messages
    assert f"data        {len(data):,} bytes, not text:\n" in text
    assert "  " + hexdump(data)[0] + "\n" in text
    assert not any("b'" in text for _, text in payloads.values())


def test_bare_words_see_padded_headers_and_one_byte_data_as_the_export_does(
        tmp_path: Path) -> None:
    """The row fast path gave a padded HEADERS its header list's summary (no '+7
    padding': the word 'padding' found 4 frames in the UI, 7 in the export) and a
    1-byte DATA '1 bytes'."""
    import hpack

    from tests.unit.capture.traffic import h2c_capture, raw_frame
    from ui.model.capture import CaptureFile, load

    enc, dec_enc = hpack.Encoder(), hpack.Encoder()
    request = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                          (":path", "/p")])
    response = dec_enc.encode([(":status", "200")])
    c2s, s2c = Direction.C2S, Direction.S2C
    path = h2c_capture(tmp_path / "pad.h2scope", [
        (s2c, raw_frame(4, 0, 0, b""), 0.01), (c2s, raw_frame(4, 1, 0, b""), 0.02),
        (s2c, raw_frame(4, 1, 0, b""), 0.02),
        (c2s, raw_frame(1, 0x4 | 0x1 | 0x8, 1, bytes([7]) + request + bytes(7)), 0.03),
        (s2c, raw_frame(1, 0x4 | 0x8, 1, bytes([3]) + response + bytes(3)), 0.04),
        (s2c, raw_frame(0, 0, 1, b"x"), 0.05), (s2c, raw_frame(0, 1, 1, b"yz"), 0.06)])
    capture = CaptureFile(path)
    session = Session(capture)
    try:
        load(session, capture)
        for text in ("padding", "+7", "1 byte", "byte", "2 bytes", "stream=", "200"):
            flt = compile_filter(text)
            got = list(run_filter(session, flt) or [])
            want = [row for row in range(len(session.table))
                    if flt.matches(session.table.event(row),  # type: ignore[arg-type]
                                   session.conns[session.table.conn[row]])]
            assert got == want, text
            if text in ("padding", "1 byte"):
                assert got, text
    finally:
        capture.close()


def test_the_text_log_line_of_a_padded_headers_and_a_one_byte_data_is_their_summary(
        tmp_path: Path) -> None:
    """The text log's fast paths printed a padded HEADERS without its padding (a
    filtered export listed it with no sign of the word that matched) and '1 bytes'."""
    import io

    import hpack

    from proxy.capture.export_text import write_text
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    block = hpack.Encoder().encode([(":status", "200")])
    s2c = Direction.S2C
    path = h2c_capture(tmp_path / "pad.h2scope", [
        (s2c, raw_frame(1, 0x4 | 0x8, 2, bytes([3]) + block + bytes(3)), 0.04),
        (s2c, raw_frame(0, 0, 2, b"x"), 0.05)])
    out = io.StringIO()
    write_text(replay(path), out)
    text = out.getvalue()
    assert "HEADERS [END_HEADERS,PADDED] len=5  +3 padding  :status 200" in text, text
    assert "DATA [] len=1  1 byte" in text, text
