"""Pilot tests: every view and action of ``h2scope view``, asserting what is on screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Select, Static

from proxy.cli import main
from tests.unit.ui.conftest import drive, screen_text
from tests.unit.ui.traffic import record
from ui.app import H2ScopeApp
from ui.model.connections import ConnInfo
from ui.screens.help import HelpScreen
from ui.screens.prompt import ExportPrompt
from ui.screens.state import StateScreen
from ui.screens.stream import StreamScreen
from ui.widgets.panes import ConnectionsPane
from ui.widgets.timeline import render_frame_row


def _screen_text(app: H2ScopeApp) -> str:
    """Everything the terminal shows, as text (what a user reads)."""
    return screen_text(app)


def _row_of(app: H2ScopeApp, ftype: int, stream: int | None = None) -> int:
    t = app.session.table
    for row in range(len(t)):
        if t.type[row] == ftype and (stream is None or t.stream[row] == stream):
            return row
    raise AssertionError(f"no frame of type {ftype}")


async def _filter(app: H2ScopeApp, pilot: Any, text: str) -> None:
    await pilot.press("slash")
    box = app.query_one("#filter", Input)
    box.value = text
    await pilot.press("enter")
    await _filtered(app, pilot)


async def _stream_view(app: H2ScopeApp, pilot: Any, ftype: int, stream: int) -> Any:
    """Select the first frame of ``ftype`` on ``stream`` and open its stream view."""
    app._select_row(_row_of(app, ftype, stream))
    await pilot.press("s")
    await pilot.pause()
    return app.screen


async def _filtered(app: H2ScopeApp, pilot: Any) -> None:
    """Wait until the filter worker has made the new view."""
    for _ in range(100):
        await pilot.pause(0.02)
        if not app._filtering:
            break
    await pilot.pause()


def test_view_shows_connections_timeline_rows_and_status(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = _screen_text(app)
        assert "api.example.test:443" in screen
        assert "TLSv1.3 h2" in screen
        assert "HEADERS" in screen and "SETTINGS" in screen and "PUSH_PROMISE" in screen
        assert "GET /api/users" in screen  # (its host is the connection's: said there)
        status = app.status.plain
        assert f"{len(app.session.table):,} frames" in status
        assert "(loaded)" in status and "1 connection " in status + " "
    drive(capture_path, scenario)


def test_timeline_row_has_time_conn_direction_stream_type_flags_length_summary(
        session: Any) -> None:
    t = session.table
    row = next(r for r in range(len(t)) if t.type[r] == 1 and t.direction[r] == 1)
    text = render_frame_row(session, row).plain
    assert "#1" in text and "←" in text and "HEADERS" in text
    assert ":status 200" in text
    finding = t.finding_rows[0]
    assert render_frame_row(session, finding).plain.startswith("!")


def test_a_request_row_leads_with_its_path_and_names_a_host_not_the_connections() -> None:
    """At 160 columns with the detail pane open every Chromium request row read
    'GET localho…': the authority (the connection's own target) and the RFC 7540
    priority came before the path."""
    import h2.config
    import h2.connection

    from proxy.observe.connection import ConnectionObserver
    from proxy.observe.enums import Direction
    from proxy.observe.events import FrameObserved
    from ui.widgets.timeline import _block_row_summary

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    for sid, authority in ((1, "www.example.com"), (3, "cdn.example.com")):
        client.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                  (":authority", authority), (":path", f"/s{sid}.js")],
                            end_stream=True, priority_weight=183, priority_depends_on=0,
                            priority_exclusive=True)
    events = [ev for ev in ConnectionObserver().feed(Direction.C2S, client.data_to_send(), 0.0)
              if isinstance(ev, FrameObserved) and ev.block is not None]
    def conn(target: str, mode: str = "regular") -> ConnInfo:
        c = ConnInfo(conn_id=1, meta={"target": target, "mode": mode})
        c.first_authority = "www.example.com"
        return c

    rows = [_block_row_summary(ev, conn("www.example.com:443")) for ev in events]
    assert rows == ["GET /s1.js  dep=0(excl) weight=183",
                    "GET cdn.example.com/s3.js  dep=0(excl) weight=183"]
    assert _block_row_summary(events[0], conn("www.example.com:8443")).startswith(
        "GET www.example.com/s1.js")  # (another port: another origin)
    assert _block_row_summary(events[0], conn("WWW.Example.com:443")).startswith("GET /s1.js")


def test_a_reverse_mode_request_row_leaves_out_the_proxys_own_address(
        tmp_path: Path) -> None:
    """In reverse mode the client's :authority is h2scope's listener
    (localhost:65021), never the target, so every row read 'GET localhos…' with the
    path cut: an authority equal to the connection's first request's is left out
    there; another host is still named."""
    from tests.unit.ui.traffic import META, record_requests
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    headers = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost:65021")]
    path = record_requests(tmp_path / "reverse.h2scope", {
        **META, "mode": "reverse:https://localhost:65010@65021", "target": "localhost:65010",
        "sni": "localhost"}, [headers + [(":path", "/index.html")],
                              headers + [(":path", "/app.js")],
                              headers[:2] + [(":authority", "cdn.test"), (":path", "/x")]])
    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        t = session.table
        rows = [render_frame_row(session, r).plain for r in range(len(t))
                if t.type[r] == 1 and not t.direction[r]]
    finally:
        capture.close()
    assert [r.split(" GET ", 1)[1] for r in rows] == [
        "/index.html", "/app.js", "cdn.test/x"], rows


def test_a_reset_row_names_the_request_it_reset(session: Any) -> None:
    t = session.table
    (row,) = [r for r in range(len(t)) if t.type[r] == 3]
    text = render_frame_row(session, row).plain
    assert text.endswith("CANCEL  GET /slow → …"), text  # (reset before any response)


def test_selecting_a_frame_fills_every_detail_tab(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        row = _row_of(app, 1, 1)  # the request HEADERS of stream 1
        app._select_row(row)
        await pilot.pause()
        decoded = app.detail.text("decoded")
        assert "HEADERS" in decoded and ":path: /api/users" in decoded
        assert "→ C2S (sent by the client)" in decoded
        hp = app.detail.text("hpack")
        assert "lit+idx" in hp and "dynamic table: 0 →" in hp
        assert "inserted into the dynamic table" in hp
        hx = app.detail.text("hex")
        assert "frame header (9)" in hx and "payload (" in hx
        assert hx.splitlines()[2].startswith("00000000  00 00 ")
        await pilot.press("4")
        assert app.detail.active == "findings"
        assert "No findings on this frame" in app.detail.text("findings")
    drive(capture_path, scenario)


def test_next_finding_jumps_to_the_frame_and_shows_its_rfc_section(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("home", "n")
        await pilot.pause()
        row = app.timeline.selected_row
        assert row == app.session.table.finding_rows[0]
        text = app.detail.text("findings")
        assert "RFC 9113 §6.9" in text and "ERROR" in text
        rows = list(app.session.table.finding_rows)
        for want in rows[1:]:
            await pilot.press("n")
            assert app.timeline.selected_row == want
        await pilot.press("n")  # past the last: said at once, the selection stays
        assert app.timeline.selected_row == rows[-1]
        assert "no more findings" in app.status.plain
        for want in reversed(rows[:-1]):
            await pilot.press("N")
            assert app.timeline.selected_row == want
    drive(capture_path, scenario)


def test_the_status_bar_never_pairs_a_new_filter_with_the_old_count(
        capture_path: Path) -> None:
    """From the moment the bar shows the new filter's text, the count says it is
    being made (it showed the previous filter's count until the next tick)."""
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await _filter(app, pilot, "type:HEADERS")
        await _filtered(app, pilot)
        assert " of " in app.status.plain and "filter type:HEADERS" in app.status.plain
        app.set_filter("type:DATA")  # (no tick, no worker result in between)
        bar = app.status.plain
        assert "filter type:DATA" in bar and "filtering" in bar, bar
        await _filtered(app, pilot)
        app.tick()
        assert "filtering" not in app.status.plain
    drive(capture_path, scenario)


def test_valid_filter_narrows_the_view_and_invalid_one_keeps_it(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        total = app.timeline.row_count()
        await _filter(app, pilot, "type:HEADERS dir:s2c")
        t = app.session.table
        shown = [app.timeline.row_at(i) for i in range(app.timeline.row_count())]
        assert shown and all(t.type[r] == 1 and t.direction[r] == 1 for r in shown)
        assert f"{len(shown):,} of {total:,} frames" in app.status.plain
        await _filter(app, pilot, "tpye:DATA")
        err = app.query_one("#filter-error", Static)
        assert "unknown filter key 'tpye'" in str(err.content)
        assert "column 1" in str(err.content)
        assert app.timeline.row_count() == len(shown)  # unchanged
        # The bar keeps the focus to be fixed; Escape leaves the filter as it was.
        box = app.query_one("#filter", Input)
        assert box.has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert box.value == "type:HEADERS dir:s2c" and not err.has_class("shown")
        assert app.timeline.has_focus
        await _filter(app, pilot, "")
        assert app.timeline.row_count() == total
    drive(capture_path, scenario)


def test_stream_view_shows_messages_decoded_body_and_copies_curl(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = await _stream_view(app, pilot, 1, 1)
        assert isinstance(screen, StreamScreen)
        body = screen.query_one("#stream-body", Static).content
        text = getattr(body, "plain", str(body))
        assert "request headers" in text and ":path: /api/users" in text
        assert "response headers" in text and "content-encoding: gzip" in text
        assert "; gzip decoded" in text and '"name": "grace"' in text
        assert "timing: started 0.003000 s, response headers +1.000 ms" in text
        await pilot.press("c")
        assert screen.curl.endswith("https://api.example.test/api/users")
        await pilot.press("escape")
        assert not isinstance(app.screen, StreamScreen)
    drive(capture_path, scenario)


def test_the_stream_view_is_kept_and_shows_the_stream_selected_next(
        capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        first = await _stream_view(app, pilot, 1, 1)
        assert isinstance(first, StreamScreen)
        await pilot.press("c")  # a note and a curl command that must not stay
        assert first.curl
        await pilot.press("b")  # the save box, left open
        await pilot.pause()
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, StreamScreen)
        again = await _stream_view(app, pilot, 0, 3)
        assert again is first and again.stream.stream_id == 3
        text = again.query_one("#stream-body", Static).content.plain  # type: ignore[union-attr]
        assert "stream 3" in text and "gRPC: 2 length-prefixed message(s)" in text
        assert again.curl == "" and str(again.query_one("#stream-note", Static).content) == ""
        assert again.query_one("#save-path", Input).has_class("hidden")
        await pilot.press("escape")
    drive(capture_path, scenario)


def test_stream_view_splits_grpc_and_saves_the_body(capture_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "resp.bin"

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = await _stream_view(app, pilot, 0, 3)
        assert isinstance(screen, StreamScreen)
        text = screen.query_one("#stream-body", Static).content.plain  # type: ignore[union-attr]
        assert "gRPC: 2 length-prefixed message(s)" in text
        assert '1: "hello"' in text and '1: "world"' in text  # protobuf, no schema
        assert "response trailers" in text and "grpc-status: 0" in text
        await pilot.press("b")
        box = screen.query_one("#save-path", Input)
        box.value = str(out)
        await pilot.press("enter")
        await pilot.pause()
    drive(capture_path, scenario)
    assert out.read_bytes()[:5] == b"\x00\x00\x00\x00\x07"


def test_state_views_show_hpack_tables_flow_control_settings_priority(
        capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("h")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StateScreen)
        # Only the tab shown is drawn on opening; the others when first shown.
        assert str(screen.query_one("#state-flow", Static).content) == ""
        hp = screen.text("hpack")
        assert "→ client's header blocks" in hp and ":path: /api/users" in hp
        assert "table size over time" in hp
        seen["hpack"] = hp
        fl = screen.text("flow")
        assert "connection window" in fl and "↑" in fl
        assert "stalls" in fl and "connection:" in fl
        st = screen.text("settings")
        assert "HEADER_TABLE_SIZE" in st and "8192" in st
        pr = screen.text("priority")
        assert "u=1 i=1" in pr
        await pilot.press("w")
        assert screen.query_one("#state-tabs").active == "flow"  # type: ignore[attr-defined]
        await pilot.press("escape")
    seen: dict[str, str] = {}
    drive(capture_path, scenario)
    # The compression line, against the blocks as the observer decodes them again.
    from proxy.capture.replay import replay_observer
    from proxy.observe.events import FrameObserved

    wire, plain, blocks = [0, 0], [0, 0], [0, 0]
    for conn, ev in replay_observer(capture_path):
        if conn == 1 and isinstance(ev, FrameObserved) and ev.block is not None:
            d = int(ev.direction)
            wire[d] += ev.block.wire_length
            plain[d] += sum(len(n) + len(v) for n, v in ev.block.headers)
            blocks[d] += 1
    for d in (0, 1):
        assert (f"compression: {wire[d]:,} bytes on the wire for {plain[d]:,} bytes of names "
                f"and values ({plain[d] / wire[d]:.1f}:1) in {blocks[d]:,} blocks") \
            in seen["hpack"]


def test_flow_control_view_opens_on_its_tab_drawn_and_the_others_not(
        capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("w")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StateScreen)
        assert "connection window" in str(screen.query_one("#state-flow", Static).content)
        assert str(screen.query_one("#state-hpack", Static).content) == ""
        await pilot.press("p")  # switching draws the tab
        await pilot.pause()
        assert "RFC 9218" in str(screen.query_one("#state-priority", Static).content)
    drive(capture_path, scenario)


def test_the_flow_control_chart_fits_the_screen_and_follows_its_width(
        capture_path: Path) -> None:
    """At 80 columns the chart and its scale label share a line (it was 72 bars
    wide: a long label wrapped); at 200 the bars use the room."""
    def chart_rows(app: H2ScopeApp) -> list[str]:
        lines = _screen_text(app).splitlines()
        top = next(i for i, ln in enumerate(lines) if ln.rstrip().endswith("33,554,432"))
        return [ln.rstrip() for ln in lines[top:top + 5]]

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        for conn in app.session.conns.values():  # a long series, a wide scale label
            series = conn.flow[1]
            for i in range(1000):
                series.t.append(float(i))
                series.conn.append(i * 33_554 if i < 999 else 33_554_432)
                series.stream.append(0)
                series.stream_id.append(1)
                series.kind.append(0)
        await pilot.press("w")
        await pilot.pause()
        narrow = chart_rows(app)
        assert all(ln.startswith("  │") and len(ln) <= 78 for ln in narrow), narrow
        assert narrow[4].endswith("  0"), narrow
        await pilot.resize_terminal(200, 40)
        await pilot.pause()
        wide = chart_rows(app)
        assert len(wide[0]) > 180 and wide[4].endswith("  0"), wide
    drive(capture_path, scenario, size=(80, 40))


def test_the_state_screen_is_kept_and_redrawn_for_the_connection_in_scope(
        tmp_path: Path) -> None:
    """Composed once (its tabs are costly to build): opened again, it shows the
    connection now in scope, from the tab asked for, with the other tabs stale
    no more."""
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        conns = sorted(app.session.conns)
        assert len(conns) >= 2
        app.scope_conn = conns[0]
        await pilot.press("w")
        await pilot.pause()
        first = app.screen
        assert isinstance(first, StateScreen) and first.conn.conn_id == conns[0]
        assert f"connection #{conns[0]} " in str(first.query_one("#state-title", Static).content)
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, StateScreen)
        app.scope_conn = conns[1]
        await pilot.press("h")
        await pilot.pause()
        again = app.screen
        assert again is first and again.conn.conn_id == conns[1]
        assert f"connection #{conns[1]} " in str(again.query_one("#state-title", Static).content)
        assert again.query_one("#state-tabs").active == "hpack"  # type: ignore[attr-defined]
        assert "header blocks" in str(again.query_one("#state-hpack", Static).content)
        assert str(again.query_one("#state-flow", Static).content) == ""  # drawn when shown
        assert "connection window" in again.text("flow")
        await pilot.press("q")
    drive(record(tmp_path / "two.h2c", conns=2), scenario)


def test_chart_marks_are_one_per_column_with_a_match() -> None:
    from array import array

    from ui.screens.state import chart, first_in_columns

    kinds = array("B", [0] * 1000)
    kinds[5] = kinds[6] = 8
    kinds[999] = 8
    marks = first_in_columns(kinds, 8, 10)
    assert marks == [5, 999]
    lines = chart(array("q", range(1000)), width=10, height=2, marks=marks)
    assert lines[-1] == "↑        ↑"


def test_a_window_that_swings_within_a_column_shows_as_a_band() -> None:
    """nghttp's window hits 0 and refills 238 times: with each column drawn to its
    bucket's minimum only, every column was 0 and the chart blank."""
    from ui.screens.state import chart

    saw = [0 if i % 17 == 0 else 64_000 - (i % 17) * 3_000 for i in range(1_200)]
    lines = chart(saw, lo=0, height=5)
    assert len(lines) == 5 and set(lines[0]) == {"░"}, lines  # every column swings
    assert sum(line.count("░") for line in lines) > 0.9 * 5 * 72, lines
    # A steady value is a solid bar to its level, no band.
    lines = chart([0] * 50 + [40_000] * 50, lo=0, hi=40_000, width=2, height=2)
    assert lines == [" █", " █"]


def test_selecting_a_lane_filters_the_timeline_to_that_stream(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        lanes = app.lanes
        lanes.rebuild()
        labels = [f"{st.conn_id}/{st.stream_id}" for st in lanes.lanes]
        assert labels[:3] == ["1/1", "1/2", "1/3"]
        lanes.focus()
        await pilot.press("down", "down")  # stream 3
        await _filtered(app, pilot)
        t = app.session.table
        rows = [app.timeline.row_at(i) for i in range(app.timeline.row_count())]
        assert rows and {t.stream[r] for r in rows} == {3}
        assert "stream 3" in app.status.plain
        lane_text = lanes.render_row(0).plain
        assert "H" in lane_text and "▶" in lane_text
        # A long label keeps its end (what tells one gRPC method from the next).
        grpc = lanes.render_row(2).plain[:30]
        assert grpc == "#1    3 …Greeter/SayHello → OK", grpc
        assert "x: frame order (t: time)" in str(app.main.query_one("#lanes-title").render())
        await pilot.press("t")
        await pilot.pause()
        assert "x: time (t: frame order)" in str(app.main.query_one("#lanes-title").render())
    drive(capture_path, scenario)


def test_choosing_a_connection_scopes_the_views(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        pane = app.query_one(ConnectionsPane)
        pane.focus()
        await pilot.press("down", "down")  # rows: all, #1, #2
        await _filtered(app, pilot)
        assert app.scope_conn == 2
        t = app.session.table
        rows = [app.timeline.row_at(i) for i in range(app.timeline.row_count())]
        assert rows and {t.conn[r] for r in rows} == {2}
        await pilot.press("a")
        await pilot.pause(0.2)
        assert app.scope_conn is None
        # Home in the pane goes back to "all", End to the last connection.
        pane.focus()
        await pilot.press("end")
        await _filtered(app, pilot)
        assert app.scope_conn == 2
        await pilot.press("home")
        await _filtered(app, pilot)
        assert app.scope_conn is None
    path = capture_path.with_name("two.h2c")
    from tests.unit.ui.traffic import record

    record(path, conns=2)
    drive(path, scenario)


def test_help_screen_lists_every_key_and_the_filter_language(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        screen = _screen_text(app)
        for words in ("Quit", "Next finding", "Stream view", "HPACK tables", "Record",
                      "Export", "type:DATA,HEADERS"):
            assert words in screen
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
    drive(capture_path, scenario)


def test_footer_shows_the_main_keys(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = _screen_text(app)
        for words in ("Quit", "Help", "Filter", "Follow", "Stream view"):
            assert words in screen
        # A capture's footer leaves out the live-only keys; pressed, they still say so.
        footer = screen.splitlines()[-1]
        for words in ("Pause", "Record", "Save session"):
            assert words not in footer
        await pilot.press("r")
        await pilot.pause(0.2)
        assert "recording applies to live capture" in _screen_text(app)
    drive(capture_path, scenario, size=(220, 48))


def test_command_palette_lists_the_actions(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        helps = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert helps["Export"] == "key: x   keymap id: export"  # (the palette teaches keys)
        for title in ("Next finding", "Stream view", "HPACK tables", "Flow control", "Export",
                      "Record", "Follow"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"flow con")
        await pilot.pause(0.5)
        assert "Flow control" in _screen_text(app)
    drive(capture_path, scenario)


def test_goto_and_header_search_select_frames(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.goto("5")
        assert app.timeline.selected_row == 4
        app.goto("s3")
        assert app.session.table.stream[app.timeline.selected_row or 0] == 3
        app.goto("s99")
        assert "no stream 99" in app.message
        app.search_text = "grpc-message"
        await pilot.press("home")
        app.action_search_next(1)
        await pilot.pause()
        row = app.timeline.selected_row
        assert row is not None
        headers = dict(app.session.table.block_headers[row])
        assert headers["grpc-message"] == "OK"
        assert app.message.startswith("found 'grpc-message': match 1 of ")
        # Past the last match the search goes around; one match says it is the only one.
        app.search_text = ":status"
        matches = [r for r, h in app.session.table.block_headers.items()
                   if any(n == ":status" for n, _ in h)]
        app._select_row(max(matches))
        app.action_search_next(1)
        assert app.timeline.selected_row == min(matches)
        assert app.message.endswith("(from the top)")
        app.search_text = "grpc-message"
        app._select_row(row)
        app.action_search_next(1)
        assert app.timeline.selected_row == row
        assert app.message == "'grpc-message': this frame is the only match"
        await pilot.pause()
    drive(capture_path, scenario)


def test_follow_mode_sticks_to_the_last_row(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("home")
        assert app.timeline.cursor == 0
        await pilot.press("f")
        await pilot.pause()
        assert app.timeline.follow and "FOLLOW" in app.status.plain
        assert app.timeline.cursor == app.timeline.row_count() - 1
        await pilot.press("up")
        assert not app.timeline.follow
    drive(capture_path, scenario)


async def _export(app: H2ScopeApp, pilot: Any, out: Path, fmt: str = "har") -> None:
    """``x``, a format, a file name, Enter; waits for the export's message."""
    await pilot.press("x")
    await pilot.pause()
    assert isinstance(app.screen, ExportPrompt)
    app.screen.query_one("#export-format", Select).value = fmt
    await pilot.pause()
    app.screen.query_one("#export-path", Input).value = str(out)
    await pilot.press("enter")
    for _ in range(200):
        await pilot.pause(0.02)
        if "exported" in app.message or "failed" in app.message:
            break
    assert app.message == f"exported {fmt} to {out}"


def test_export_from_the_ui_writes_har(capture_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.har"

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await _export(app, pilot, out)
    drive(capture_path, scenario)
    har = json.loads(out.read_text())
    urls = [e["request"]["url"] for e in har["log"]["entries"]]
    assert "https://api.example.test/api/users" in urls


def test_a_text_export_from_the_ui_keeps_the_frames_of_the_active_filter(
        capture_path: Path, tmp_path: Path) -> None:
    """With a filter applied, text and jsonl exports hold what the timeline shows
    (the prompt says so); a HAR export is whole streams, unfiltered."""
    out = tmp_path / "out.jsonl"

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await _filter(app, pilot, "type:HEADERS dir:s2c")
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExportPrompt)
        assert "the frames of filter 'type:HEADERS dir:s2c'" in app.screen.scope
        await pilot.press("escape")
        await _export(app, pilot, out, "jsonl")
        await _export(app, pilot, tmp_path / "filtered.har")
        seen["rows"] = app.timeline.row_count()
    seen: dict[str, int] = {}
    drive(capture_path, scenario)
    objs = [json.loads(line) for line in out.read_text().splitlines()]
    assert objs and len(objs) == seen["rows"]
    assert {(o["type"], o["direction"]) for o in objs} == {("HEADERS", "s2c")}
    whole = tmp_path / "whole.har"
    assert main(["export", str(capture_path), "--format", "har", "-o", str(whole)]) == 0
    assert json.loads((tmp_path / "filtered.har").read_text())["log"]["entries"] == \
        json.loads(whole.read_text())["log"]["entries"]


def test_record_and_pause_say_they_need_live_capture(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("r")
        assert "live capture" in app.message
        await pilot.press("space")
        assert "live capture" in app.message
    drive(capture_path, scenario)


def test_q_quits_cleanly(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("q")
        await pilot.pause()
    app = drive(capture_path, scenario)
    assert app.return_code == 0


def test_the_footer_offers_q_to_quit_and_ctrl_q_quits_too(capture_path: Path) -> None:
    """The footer said '^q Quit' (Textual's own binding, listed first) while the docs
    and the dialogs say q."""
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        seen.append(_screen_text(app).splitlines()[-1])
        await pilot.press("ctrl+q")
        await pilot.pause()
    app = drive(capture_path, scenario)
    assert seen[0].startswith(" q Quit  ? Help  / Filter"), seen
    assert "^q" not in seen[0]
    assert app.return_code == 0 and not app.is_running


def test_light_and_ansi_themes_render(capture_path: Path) -> None:
    for theme in ("light", "ansi"):
        async def scenario(app: H2ScopeApp, pilot: Any) -> None:
            assert "HEADERS" in _screen_text(app)
        app = drive(capture_path, scenario, theme_name=theme)
        assert app.theme == ("textual-light" if theme == "light" else "ansi-dark")


def test_shifted_keys_scope_to_stream_and_connection_and_go_back(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app._select_row(_row_of(app, 0, 5))
        await pilot.press("S")
        await _filtered(app, pilot)
        t = app.session.table
        rows = [app.timeline.row_at(i) for i in range(app.timeline.row_count())]
        assert {t.stream[r] for r in rows} == {5}
        await pilot.press("C")
        await pilot.pause(0.2)
        assert app.scope_conn == 1 and app.scope_stream is None
        await pilot.press("end", "N")
        await pilot.pause()
        assert app.timeline.selected_row == t.finding_rows[-1]
    drive(capture_path, scenario)


def test_initial_filter_from_the_command_line(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await _filtered(app, pilot)
        t = app.session.table
        rows = [app.timeline.row_at(i) for i in range(app.timeline.row_count())]
        assert rows and {t.type[r] for r in rows} == {3}
    drive(capture_path, scenario, initial_filter="type:RST_STREAM")


def test_charts_are_kept_while_their_series_has_not_grown(session: Any) -> None:
    from ui.screens.state import ChartCache, flow_text

    conn = next(c for c in session.conns.values() if len(c.flow[1].conn))
    cache: ChartCache = {}
    first = flow_text(conn, 0.0, cache).plain
    assert cache and flow_text(conn, 0.0, cache).plain == first
    series = conn.flow[1]
    n = len(series.t)
    series.t.append(series.t[-1])  # one more DATA frame: the window at 0
    series.conn.append(0)
    series.stream.append(0)
    series.stream_id.append(1)
    series.kind.append(0)
    grown = flow_text(conn, 0.0, cache).plain
    assert f"over {n + 1} DATA/WINDOW_UPDATE frames" in grown
    assert grown == flow_text(conn, 0.0, None).plain  # the same as drawn without a cache


def test_the_last_message_stays_whole_when_the_status_bar_is_too_narrow(
        capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.goto("s99")  # says something
        app.say("saved the session (71 records) to /some/long/directory/name/session.h2scope")
        await pilot.pause()
        bar = app.status
        shown = bar.render().plain
        assert len(bar.plain) > bar.size.width  # everything would not fit ...
        assert shown.endswith("to /some/long/directory/name/session.h2scope")  # ... this does
        assert "…" in shown and shown.startswith("traffic.h")
        assert len(shown) <= bar.size.width
    drive(capture_path, scenario, size=(90, 40))


def test_findings_summary_groups_them_and_filters_or_jumps(capture_path: Path) -> None:
    from ui.screens.findings import FindingsScreen

    seen: dict[str, Any] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("F")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        table = screen.query_one("#findings-table", DataTable)
        seen["rows"] = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        seen["detail"] = str(screen.query_one("#findings-detail", Static).content)
        await pilot.press("enter")  # filter the timeline to that finding
        await pilot.pause()
        seen["filter"] = app.main.query_one("#filter", Input).value
        tl = app.timeline
        seen["shown"] = [tl.row_at(i) for i in range(tl.row_count())]
        await pilot.press("F")
        await pilot.pause()
        await pilot.press("g")  # the first frame that raised it
        await pilot.pause()
        seen["selected"] = app.timeline.selected_row
    drive(capture_path, scenario)
    assert seen["rows"] == [["error", "window-update-zero", "RFC 9113 §6.9", "client", "1",
                             "#1, frame 37", "WINDOW_UPDATE with an increment of 0: a "
                             "connection error of type PROTOCOL_ERROR"]]
    assert seen["detail"] == ("window-update-zero (RFC 9113 §6.9) by the client, first at #1, "
                              "frame 37: "
                              "WINDOW_UPDATE with an increment of 0: a connection error of "
                              "type PROTOCOL_ERROR")
    assert seen["filter"] == "finding:window-update-zero dir:c2s"  # (its line: the client)
    # (row 36 is frame 37: frames count from 1, as `g 37` and the detail pane say)
    assert seen["shown"] == [36] and seen["selected"] == 36


def test_connection_level_findings_are_counted_with_their_connection() -> None:
    from proxy.observe.enums import Direction
    from proxy.observe.findings import Finding, Severity
    from ui.model.session import Session
    from ui.model.table import LiveFrames
    from ui.screens.findings import finding_groups

    session = Session(LiveFrames())
    assert finding_groups(session) == []
    for _ in range(2):
        session.conn(4).conn_findings.append(Finding(
            code="settings-not-acknowledged", severity=Severity.WARNING, rfc="RFC 9113 §6.5.3",
            message="SETTINGS never acknowledged"))
        session.conn(4).conn_finding_dirs.append(Direction.S2C)
    [group] = finding_groups(session)
    assert (group.code, group.count, group.first_row, group.where, group.sender) == (
        "settings-not-acknowledged", 2, None, "#4 (connection)", "server")


def test_escape_closes_the_save_box_first_and_an_empty_body_is_not_saved(
        capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = await _stream_view(app, pilot, 1, 1)
        assert isinstance(screen, StreamScreen)
        await pilot.press("b")
        await pilot.pause()
        box = screen.query_one("#save-path", Input)
        assert not box.has_class("hidden")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and box.has_class("hidden")
        await pilot.press("B")  # a GET: no request body
        await pilot.pause()
        assert box.has_class("hidden")
        note = str(screen.query_one("#stream-note", Static).content)
        assert note == "stream 1 has no request body to save"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, StreamScreen)
    drive(capture_path, scenario)


def test_a_body_longer_than_the_view_says_how_much_is_left_out() -> None:
    """A 3 MB binary body: the dump stops within the view's lines and its last line
    says how many bytes it left out, and how to get them all (it said only that
    the body went on past 3,000 lines)."""
    import gzip

    from rich.text import Text

    from ui.model.body import Body
    from ui.screens.stream import MAX_LINES, _body

    data = bytes(range(256)) * (3_000_000 // 256)
    for raw, encoding in ((data, None), (gzip.compress(data), "gzip")):
        out = Text()
        headers = (("content-type", "application/octet-stream"),)
        if encoding:  # (its note first: the dump and its count are of the decoded bytes)
            headers += (("content-encoding", encoding),)
        _body(out, "response body", Body(raw=raw, frames=183), headers, (), request=False)
        lines = out.plain.splitlines()[2:]
        dumped = (MAX_LINES - 2) * 16
        assert len(lines) <= MAX_LINES, len(lines)
        assert lines[-2].startswith(f"  {dumped - 16:08x}  "), lines[-2]
        assert lines[-1] == f"  … {len(data) - dumped:,} more bytes (b saves the whole body)"


def test_escape_leaves_the_filter_bar_with_the_filter_in_force(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await _filter(app, pilot, "type:HEADERS")
        shown = app.timeline.row_count()
        await pilot.press("slash")
        await pilot.press("j", "u", "n", "k")
        box = app.query_one("#filter", Input)
        assert box.value.endswith("junk") and box.has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert not box.has_focus and app.timeline.has_focus
        assert box.value == "type:HEADERS" and app.timeline.row_count() == shown
        await pilot.press("s")  # a key for the views again, not for the bar
        await pilot.pause()
        assert isinstance(app.screen, StreamScreen)
    drive(capture_path, scenario)


def test_go_to_a_connection_selects_its_first_frame_and_clears_old_messages(
        capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.goto("#99")
        assert app.message == "no connection #99"
        last = len(app.session.table) - 1
        app._select_row(last)
        app.goto("#1")
        await _filtered(app, pilot)
        assert app.timeline.selected_row == 0 and app.scope_conn == 1
        assert app.message == ""
    drive(capture_path, scenario)


def test_an_80_by_24_terminal_gives_the_timeline_the_room(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        assert app.main.has_class("compact") and app.main.has_class("narrow")
        assert not app.detail.display
        assert app.timeline.size.height >= 10 and app.timeline.size.width >= 75
        await pilot.press("d")  # the detail pane is still one key away
        await pilot.pause()
        assert app.detail.display
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert not app.main.has_class("compact") and not app.main.has_class("narrow")
        assert app.detail.display
    drive(capture_path, scenario, size=(80, 24))


def test_enter_on_a_connection_level_finding_scopes_to_its_connection(
        tmp_path: Path) -> None:
    """SETTINGS never acknowledged marks no frame: finding:CODE would show an empty
    timeline; the connection it was raised on is shown instead, with the finding."""
    from hyperframe.frame import SettingsFrame

    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import Direction
    from ui.screens.findings import FindingsScreen

    path = tmp_path / "unacked.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0, wall=1000.0)
        writer.raw(1, Direction.C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", t=0.001,
                   wall=1000.001)
        writer.frame(1, Direction.C2S, bytes(SettingsFrame(0).serialize()), t=0.001,
                     wall=1000.001)
        writer.frame(1, Direction.S2C, bytes(SettingsFrame(0).serialize()), t=0.002,
                     wall=1000.002)
        writer.frame(1, Direction.C2S, bytes(SettingsFrame(0, flags=["ACK"]).serialize()),
                     t=0.003, wall=1000.003)
        writer.close_connection(1, t=2.0, wall=1002.0,  # (past the ACK grace)
                                closed_by="client")

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("F")
        await pilot.pause()
        assert isinstance(app.screen, FindingsScreen)
        await pilot.press("enter")
        await _filtered(app, pilot)
        assert not isinstance(app.screen, FindingsScreen)
        assert app.scope_conn == 1 and app.timeline.row_count() == 3
        assert app.message.startswith("#1 (connection): settings-not-acknowledged: the server")
    drive(path, scenario)


def test_going_to_a_frame_outside_the_filter_says_the_filter_was_cleared(
        capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await _filter(app, pilot, "type:HEADERS")
        row = _row_of(app, 0)  # a DATA frame: not in the view
        app.goto(str(row + 1))
        assert app.timeline.selected_row == row
        assert app.message == (f"frame {row + 1} was not in the view: the filter "
                               "'type:HEADERS' cleared to show it")
        await pilot.pause()
    drive(capture_path, scenario)


def test_keys_pasted_with_the_filter_key_go_into_the_filter(capture_path: Path) -> None:
    """``/type:DATA`` arriving in one burst (typed fast, pasted, sent by tmux): the
    keys after ``/`` went to the timeline's bindings (``t``, ``p``, ``e`` opened
    views) because they were forwarded before ``/`` had moved the focus."""
    from textual import events

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        names = {"/": "slash", ":": "colon"}
        for ch in "/type:DATA":
            app.post_message(events.Key(names.get(ch, ch), ch))
        box = app.main.query_one("#filter", Input)
        for _ in range(100):  # (until the app has read the burst)
            await pilot.pause(0.05)
            if box.value == "type:DATA" or len(app.screen_stack) > 1:
                break
        assert len(app.screen_stack) == 1  # no view opened by a stray key
        assert box.value == "type:DATA"
        # A "/" typed into the filter is text, not the filter key again.
        await pilot.press("space", "p", "a", "t", "h", "colon", "slash", "x")
        assert box.value == "type:DATA path:/x"
        await pilot.press("escape")
        await pilot.pause(0.1)
        # ... and in a prompt (here: search) too.
        await pilot.press("ctrl+f")
        await pilot.pause(0.1)
        await pilot.press("slash", "a")
        assert app.screen.query_one(Input).value.endswith("/a")
        await pilot.press("escape")
    drive(capture_path, scenario)


def test_state_views_scroll_with_the_page_keys(capture_path: Path) -> None:
    """The tabs have the focus in a state view: page keys moved nothing until Tab."""
    from textual.containers import VerticalScroll
    from textual.widgets import TabbedContent

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("h")  # HPACK tables: longer than the screen
        for _ in range(100):
            await pilot.pause(0.05)
            if isinstance(app.screen, StateScreen):
                break
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, StateScreen)
        pane = screen.query_one(TabbedContent).active_pane
        assert pane is not None
        view = pane.query_one(VerticalScroll)
        assert view.max_scroll_y > 0
        await pilot.press("pagedown")
        for _ in range(100):  # (until the scroll has happened)
            await pilot.pause(0.05)
            if view.scroll_y > 0:
                break
        assert view.scroll_y > 0
        await pilot.press("home")
        for _ in range(100):
            await pilot.pause(0.05)
            if view.scroll_y == 0:
                break
        assert view.scroll_y == 0
    drive(capture_path, scenario, size=(120, 20))


def test_the_connections_pane_grows_with_its_connections_up_to_a_share_of_the_screen(
        tmp_path: Path) -> None:
    """It was 7 lines whatever the terminal: 4 connections showed, the one with the
    finding hid below with no sign of it; at 80 × 24 none showed."""
    from ui.widgets.panes import ConnectionsPane

    async def few(app: H2ScopeApp, pilot: Any) -> None:
        pane = app.main.query_one(ConnectionsPane)
        assert pane.size.height == 2 + 2  # header, "all", #1, #2 (+ the rule under it)

    async def many(app: H2ScopeApp, pilot: Any) -> None:
        pane = app.main.query_one(ConnectionsPane)
        assert pane.size.height == 12 - 1  # 48 rows: a quarter, less the rule
        rows = pane.row_count
        assert rows == 10

    async def small(app: H2ScopeApp, pilot: Any) -> None:
        pane = app.main.query_one(ConnectionsPane)
        assert pane.size.height == 4 and pane.size.width > 0  # header, "all", #1, #2
        assert "every connection (9), interleaved" in str(pane.get_row("all"))

    drive(record(tmp_path / "two.h2c", conns=2), few)
    nine = record(tmp_path / "nine.h2c", conns=9)
    drive(nine, many)
    drive(nine, small, size=(80, 24))


def test_a_filter_that_matches_nothing_says_so(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        assert app.set_filter("path:/nowhere*")
        await _filtered(app, pilot)
        assert app.timeline.row_count() == 0
        assert app.message.startswith("no frame matches 'path:/nowhere*' (")
        assert "frames searched); / edits the filter" in app.message
        assert app.set_filter("type:HEADERS")
        await _filtered(app, pilot)
        assert app.timeline.row_count() > 0 and app.message == ""
    drive(capture_path, scenario)


def test_a_filter_given_on_the_command_line_that_matches_nothing_says_so(
        capture_path: Path) -> None:
    """``view --filter`` ran before the capture had loaded, and never said that nothing
    matched (a filter typed after / did, with its hints)."""
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        for _ in range(50):
            if app.message:
                break
            await pilot.pause(0.05)
        seen.append(app.message)

    drive(capture_path, scenario, initial_filter="status=404")
    assert seen[0].startswith("no frame matches 'status=404' ("), seen
    assert "did you mean status:404?" in seen[0]


def test_no_match_said_so_far_goes_when_a_later_frame_matches(capture_path: Path) -> None:
    """Live, 'no frame matches … so far' stayed in the status bar beside '1 of 46
    frames' once a matching frame had come."""
    from array import array

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        assert app.set_filter("type:DATA")
        await _filtered(app, pilot)
        t = app.session.table
        first = next(r for r in range(len(t)) if t.type[r] == 0)
        # The filter as it stood before the first DATA frame had arrived (nothing
        # came since, then):
        extend = app._extend_view
        app._extend_view = lambda count: None  # type: ignore[method-assign]
        app._filter_done(app._filter_gen, array("I"), first)
        app._extend_view = extend  # type: ignore[method-assign]
        assert app.message.startswith("no frame matches 'type:DATA'")
        app._extend_view(len(t))  # (the tick that takes the frames that came since)
        assert app.timeline.row_count() > 0 and app.message == ""
    drive(capture_path, scenario)


def test_next_finding_with_findings_on_connections_only_says_where_they_are(
        tmp_path: Path) -> None:
    """A download that hung until the client closed: its findings are the
    connection's (flow-control-stalled, stream-unfinished), on no frame. 'n' said
    'no findings'; it says they are on the connections and which key lists them."""
    from tests.unit.capture.traffic import hung_download

    path = hung_download(tmp_path / "hung.h2scope")

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("home", "n")
        await pilot.pause()
        assert "no findings on frames; 2 on connections (F lists them)" in app.status.plain
        # F, then g on the hang: the frame that began it (the DATA that spent the
        # windows), though the finding is the connection's.
        await pilot.press("F")
        await pilot.pause()
        await pilot.press("g")
        await pilot.pause()
        row = app.timeline.selected_row
        assert row is not None and app.session.table.type[row] == 0  # DATA
        assert app.session.table.length[row] == 16383  # (the last: it spent them)
    drive(path, scenario)


def test_a_filter_for_a_connection_level_finding_says_it_matches_one_on_no_frame(
        tmp_path: Path) -> None:
    """finding:stream-unfinished showed 'no frame matches', as if the capture had no
    such finding: it is the connection's (on no frame), and the message says so."""
    from tests.unit.capture.traffic import hung_download

    path = hung_download(tmp_path / "hung.h2scope")

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        for text, said in (
                ("finding:stream-unfinished", "; 1 connection-level finding (on no frame) "
                                              "matches: F lists them; / edits the filter"),
                ("finding:warning,info", "; 2 connection-level findings (on no frame) "
                                         "match: F lists them;"),
                # (the stall is the client's: it never sent the WINDOW_UPDATE)
                ("finding:warning dir:c2s", "; 1 connection-level finding (on no frame) "),
                ("finding:stream-unfinished dir:c2s", "frames searched); / edits the filter"),
                ("finding:stream-unfinished stream:3", "frames searched); / edits the filter")):
            await _filter(app, pilot, text)
            assert app.timeline.row_count() == 0, text
            assert app.message.startswith(f"no frame matches {text!r} ("), app.message
            assert said in app.message, (text, app.message)
    drive(path, scenario)


def test_the_filter_bar_selects_the_frame_that_stalled_a_download(tmp_path: Path) -> None:
    """stall:start in the UI: the DATA that spent the windows of the hung download
    (its events rebuilt for the windows), and nothing else; with a bare word too."""
    from tests.unit.capture.traffic import hung_download

    path = hung_download(tmp_path / "hung.h2scope")

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        for text in ("stall:start", "stall:any bytes"):
            await _filter(app, pilot, text)
            tl = app.timeline
            rows = [tl.row_at(i) for i in range(tl.row_count())]
            table = app.session.table
            assert [(table.type[r], table.length[r]) for r in rows if r is not None] == [
                (0, 16383)], text
    drive(path, scenario)


def test_a_running_export_says_so_and_quitting_gives_it_up(
        capture_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export gave no sign it ran (the last result stayed in the status bar), a
    second could start beside it, the dialog forgot the format, and quitting waited
    minutes for its thread on a blank screen."""
    import threading

    import ui.session_actions
    from ui.model.export import ExportCancelled

    calls: list[str] = []
    gave_up = threading.Event()

    def slow_export(source: Path, fmt: str, out: Path, **kw: Any) -> int:
        calls.append(fmt)
        if fmt == "text":
            out.write_text("done\n")
            return 1
        while not kw["cancelled"]():  # (an export of a huge session: it runs on)
            gave_up.wait(0.01)
        gave_up.set()
        raise ExportCancelled

    monkeypatch.setattr(ui.session_actions, "export", slow_export)

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await _export(app, pilot, tmp_path / "a.txt", "text")
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExportPrompt)
        assert app.screen.query_one("#export-format", Select).value == "text"  # (again)
        app.screen.query_one("#export-format", Select).value = "har"
        await pilot.pause()
        app.screen.query_one("#export-path", Input).value = str(tmp_path / "b.har")
        await pilot.press("enter")
        await pilot.pause()
        assert app.message == f"exporting har to {tmp_path / 'b.har'}…"
        await pilot.press("x")
        assert "an export is running (har to" in app.message
        app.say("something else")  # (the status bar still says the export runs)
        assert f"exporting har to {tmp_path / 'b.har'}…" in app.status.plain
        await pilot.press("q")
        await pilot.pause()
        assert f"q again to quit: the export (har to {tmp_path / 'b.har'}) is given up" in \
            app.status.plain
        await pilot.press("q")
        await pilot.pause()

    drive(capture_path, scenario)
    assert calls == ["text", "har"] and gave_up.wait(5)


def test_an_export_given_up_stops_and_leaves_no_half_file(capture_path: Path,
                                                          tmp_path: Path) -> None:
    from ui.model.export import ExportCancelled, export

    out = tmp_path / "given-up.har"
    with pytest.raises(ExportCancelled):
        export(capture_path, "har", out, cancelled=lambda: True)
    assert not out.exists()
    assert export(capture_path, "har", out, cancelled=lambda: False) > 0 and out.exists()


def test_header_search_keeps_the_filter_and_searches_what_it_shows(
        capture_path: Path) -> None:
    """The search cleared the filter to show a match outside it (and said so in a
    message it overwrote at once). It searches what the view shows, and says how many
    matches the filter hides."""
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        t = app.session.table
        everywhere = [r for r, h in t.block_headers.items()
                      if any(n == ":status" for n, _ in h)]
        await _filter(app, pilot, "dir:s2c")
        app.search_text = ":status"
        await pilot.press("home")
        seen = []
        for _ in range(len(everywhere) + 1):
            app.action_search_next(1)
            seen.append(app.timeline.selected_row)
        assert app.filter.text.strip() == "dir:s2c"
        assert sorted(set(seen)) == sorted(everywhere)  # (all server blocks: all shown)
        await _filter(app, pilot, "dir:c2s")
        app.action_search_next(1)
        assert app.filter.text.strip() == "dir:c2s"
        # Another text with as many matches: the first's rows were reused for it.
        view = app.timeline.view
        assert view is not None and len(view) >= 2
        assert app._in_view("a", [view[0]], view) == [view[0]]
        assert app._in_view("b", [view[1]], view) == [view[1]]
        assert app.message == f"':status' not found ({len(everywhere):,} outside the " \
            "filter or scope)"
        app.action_search_next(-1)
        await pilot.pause()
    drive(capture_path, scenario)


def test_the_requests_table_sorts_and_goes_to_a_streams_first_frame(
        capture_path: Path) -> None:
    """A performance engineer's first question — which request was slowest — had no
    answer but the lanes, scanned by eye (R: every request, slowest first)."""
    from textual.widgets import DataTable

    from ui.screens.requests import RequestsScreen, request_rows

    seen: dict[str, Any] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, RequestsScreen)
        screen = app.screen
        durations = [r.duration for r in screen.shown]
        seen["slowest_first"] = durations == sorted(durations, reverse=True)
        await pilot.press("b")
        sizes = [r.body for r in screen.shown]
        seen["largest_first"] = sizes == sorted(sizes, reverse=True)
        await pilot.press("t")
        starts = [r.start for r in screen.shown]
        seen["in_order"] = starts == sorted(starts)
        table = screen.query_one("#requests-table", DataTable)
        seen["rows"] = table.row_count
        target = screen.shown[1]
        await pilot.press("down", "enter")
        await pilot.pause()
        seen["selected"] = app.timeline.selected_row == target.first_row
        seen["all"] = len(request_rows(app.session))
        seen["grpc"] = [r.status for r in request_rows(app.session) if "Greeter" in r.label]

    drive(capture_path, scenario)
    assert seen["slowest_first"] and seen["largest_first"] and seen["in_order"]
    assert seen["rows"] == seen["all"] > 1
    assert seen["selected"]
    # (a gRPC call is always a 200: its grpc-status beside it says how it ended)
    assert seen["grpc"] == ["200 OK"], seen["grpc"]


def test_back_on_the_all_row_a_connections_note_is_not_left_in_the_status_bar(
        tmp_path: Path) -> None:
    from tests.unit.ui.traffic import failed_connection

    path = failed_connection(tmp_path / "failed.h2scope")

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        pane = app.query_one(ConnectionsPane)
        pane.focus()
        await pilot.press("down")
        await _filtered(app, pilot)
        assert app.message.startswith("#7 failed: client-tls: the client rejected")
        await pilot.press("home")
        await _filtered(app, pilot)
        assert app.scope_conn is None and app.message == ""
    drive(path, scenario)


def test_the_requests_table_goes_to_its_last_and_first_row_and_aligns_numbers(
        capture_path: Path) -> None:
    """End and G scrolled the requests table sideways and left the cursor on row 1,
    so Enter then opened the first request."""
    from ui.screens.requests import RequestsScreen

    seen: dict[str, Any] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("R")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RequestsScreen)
        table = screen.query_one("#requests-table", DataTable)
        last = table.row_count - 1
        seen["rows"] = last + 1
        for key, row in (("end", last), ("home", 0), ("G", last), ("g", 0)):
            await pilot.press(key)
            await pilot.pause()
            seen[key] = (table.cursor_row == row, table.scroll_x)
        seen["justify"] = [getattr(c, "justify", None) for c in table.get_row_at(0)[4:9]]
        target = screen.shown[last]
        await pilot.press("end", "enter")
        await pilot.pause()
        seen["selected"] = app.timeline.selected_row == target.first_row

    drive(capture_path, scenario, size=(80, 24))
    assert seen["rows"] > 2
    for key in ("end", "home", "G", "g"):
        assert seen[key] == (True, 0), (key, seen[key])
    assert seen["justify"] == ["right"] * 5
    assert seen["selected"]


def test_the_findings_message_column_takes_the_width_left_and_the_detail_shows_it_whole(
        capture_path: Path) -> None:
    """At 110 columns the message column ran off the screen, cut with no mark; the
    detail line under the table shows it whole."""
    from ui.screens.findings import FindingsScreen

    seen: dict[str, Any] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("F")
        await pilot.pause()
        assert isinstance(app.screen, FindingsScreen)
        table = app.screen.query_one("#findings-table", DataTable)
        seen["fits"] = table.virtual_size.width <= table.scrollable_content_region.width
        seen["screen"] = _screen_text(app)

    drive(capture_path, scenario, size=(110, 24))
    assert seen["fits"]
    lines = seen["screen"].splitlines()
    row = next(line for line in lines if "window-update-zero" in line and "error" in line)
    assert "WINDOW_UPDATE with" in row and "…" in row, row
    detail = " ".join(line.strip(" │╰╯") for line in lines[lines.index(row) + 1:])
    assert "a connection error of type PROTOCOL_ERROR" in " ".join(detail.split()), detail
