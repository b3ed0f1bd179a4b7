"""The UI as terminals differ: NO_COLOR (no-color.org), resizes, a crash's exit status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.ui.conftest import drive, loaded, screen_text
from ui.app import H2ScopeApp


def test_the_ui_runs_with_no_color_set(capture_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Textual's monochrome filter reads every segment's style: a segment of an empty
    line rendered without one crashed the UI at start-up (AttributeError), exit 0."""
    monkeypatch.setenv("NO_COLOR", "1")
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await loaded(app, pilot)
        for key in ("down", "enter", "tab", "s", "escape", "w", "escape", "question_mark"):
            await pilot.press(key)
            await pilot.pause()
        seen.append(screen_text(app))

    drive(capture_path, scenario)
    assert seen and seen[0].strip()


def test_a_ui_that_crashed_exits_1_not_0() -> None:
    """Textual prints a crash's traceback and sets the app's return_code to 1; the
    command exited 0 all the same."""
    from types import SimpleNamespace

    from ui.launch import _status

    assert _status(SimpleNamespace(return_code=1), None) == 1  # type: ignore[arg-type]
    assert _status(SimpleNamespace(return_code=0), None) == 0  # type: ignore[arg-type]
    assert _status(SimpleNamespace(return_code=1), 3) == 3  # type: ignore[arg-type]


def test_a_following_timeline_keeps_its_last_row_in_view_when_resized(
        capture_path: Path) -> None:
    """FOLLOW said so while the newest row sat below the bottom edge after the terminal
    grew and shrank again (or a pane above the timeline grew)."""
    seen: list[tuple[int, int, int]] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        tl = app.timeline
        tl.follow = True
        tl.refresh_rows()
        await pilot.pause()
        for size in ((200, 60), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
        seen.append((int(tl.scroll_offset.y), tl.scrollable_content_region.height,
                     tl.row_count()))

    drive(capture_path, scenario, size=(80, 24))
    top, height, count = seen[0]
    assert count > height  # (else there is nothing to scroll)
    assert top + height >= count, seen


def test_no_frames_but_a_failed_connection_says_where_to_look(tmp_path: Path) -> None:
    """'No frames yet. Send traffic…' stayed on screen after the only connection had
    failed (and no frame would come of it)."""
    from proxy.capture.writer import CaptureWriter

    path = tmp_path / "failed.h2scope"
    with CaptureWriter(path) as w:
        w.connection(1, {"mode": "reverse:https://a:443", "client": {"ip": "127.0.0.1",
                                                                      "port": 5}},
                     t=0.0, wall=1000.0)
        w.close_connection(1, t=0.1, wall=1000.1, closed_by="proxy",
                           error="cannot connect to a:443: connection refused",
                           details={"errors": [{"stage": "connect", "message": "cannot "
                                                "connect to a:443: connection refused"}]})
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.timeline.empty_lines = ["No frames yet. Send traffic through the proxy"]
        app.tick()
        await pilot.pause()
        seen.append(app.timeline.render_line(0).text)

        seen.append(app.status.plain)

    drive(path, scenario)
    assert seen[0].startswith("No HTTP/2 frames, but 1 connection: c lists them, and why "
                              "one failed"), seen
    assert "1 failed (c: why)" in seen[1], seen  # (one among many would be lost)


@pytest.mark.parametrize("live", [True, False])
def test_an_http1_connection_is_not_called_failed(tmp_path: Path, live: bool) -> None:
    """Not failed, and where its messages are, live (the 'no frames yet' hint gives way
    to it) and in ``h2scope view`` (which had opened on a blank timeline, '0 frames':
    the hint was the live UI's only)."""
    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import Direction

    path = tmp_path / "h1.h2scope"
    with CaptureWriter(path) as w:
        w.connection(1, {"mode": "regular", "protocol": "http/1.1",
                         "client": {"ip": "127.0.0.1", "port": 5}}, t=0.0, wall=1000.0)
        w.http1(1, Direction.C2S, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", t=0.1, wall=1000.1)
        w.close_connection(1, t=0.2, wall=1000.2, closed_by="client")
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        if live:
            app.timeline.empty_lines = ["No frames yet. Send traffic through the proxy"]
        app.tick()
        await pilot.pause()
        seen.append(app.timeline.render_line(0).text)
        seen.append(app.status.plain)

    drive(path, scenario)
    assert seen[0].startswith("No HTTP/2 frames, but 1 connection: c lists them; i shows an "
                              "HTTP/1.x connection's messages"), seen
    assert "failed" not in seen[0] + seen[1], seen


def test_the_first_hint_wraps_in_a_narrow_terminal(capture_path: Path) -> None:
    """At 80 columns the example command was cut before its port."""
    command = ("  curl --cacert /home/someone/.h2scope/h2scope-ca-cert.pem -x "
               "http://127.0.0.1:28100 https://example.com/")
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.timeline._count = 0  # (as if no frame had come yet)
        app.timeline.empty_lines = ["No frames yet. Send traffic through the proxy, for "
                                    "example:", command]
        for y in range(6):
            seen.append(app.timeline.render_line(y).text.rstrip())

    drive(capture_path, scenario, size=(80, 24))
    shown = [ln for ln in seen if ln]
    assert all(len(ln) <= 80 and "…" not in ln for ln in shown), shown
    joined = " ".join(ln.strip().removesuffix("\\").strip() for ln in shown[1:])
    assert joined == command.strip(), shown
    assert shown[1].endswith(" \\"), shown  # (a shell reads the lines as one command)


def test_an_old_message_leaves_the_status_bar_work_in_progress_stays(
        capture_path: Path) -> None:
    """A message minutes old crowded out the live parts (rate, listening address)."""
    from ui.app import MESSAGE_LIFE

    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.say("saved the session to somewhere")
        app.tick()
        seen.append(app.message)
        app._message_at -= MESSAGE_LIFE + 1
        app.tick()
        seen.append(app.message)
        app.say("exporting har to x.har…")
        app._message_at -= MESSAGE_LIFE + 1
        app.tick()
        seen.append(app.message)

    drive(capture_path, scenario)
    assert seen == ["saved the session to somewhere", "", "exporting har to x.har…"]


def test_vim_and_less_keys_move_as_expected(capture_path: Path) -> None:
    """G, ctrl+d/ctrl+u, ctrl+b did nothing; j/k did nothing in the connections pane,
    and Escape did not leave it."""
    from ui.widgets.panes import ConnectionsPane

    seen: dict[str, Any] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        tl = app.timeline
        tl.focus()
        await pilot.press("home", "G")
        seen["G"] = tl.cursor == tl.row_count() - 1
        await pilot.press("home", "ctrl+d")
        half = tl.scrollable_content_region.height // 2
        seen["ctrl+d"] = tl.cursor == half
        await pilot.press("ctrl+u")
        seen["ctrl+u"] = tl.cursor == 0
        await pilot.press("c")
        pane = app.query_one(ConnectionsPane)
        start = pane.cursor_row
        await pilot.press("j")
        seen["j"] = pane.cursor_row == start + 1
        await pilot.press("k")
        seen["k"] = pane.cursor_row == start
        await pilot.press("escape")
        await pilot.pause()
        seen["escape"] = app.focused is tl

    drive(capture_path, scenario, size=(160, 48))
    assert seen == {"G": True, "ctrl+d": True, "ctrl+u": True, "j": True, "k": True,
                    "escape": True}


def test_the_hex_dump_fits_its_pane() -> None:
    """At 160 columns the detail pane is narrower than a 16-byte line and its
    characters: the character column showed its first character only."""
    from proxy.observe.frames import parse_frame
    from ui.model.detail import hex_view

    raw = bytes([0, 0, 20, 0, 1, 0, 0, 0, 1]) + b"hello, h2scope world"
    frame = parse_frame(raw)
    wide = [ln for ln in hex_view(frame, 100).plain.splitlines() if ln[:1] == "0"]
    narrow = [ln for ln in hex_view(frame, 60).plain.splitlines() if ln[:1] == "0"]
    assert len(wide) == 2 and wide[0].endswith(".........hello, ")
    assert len(narrow) == 4 and all(len(ln) <= 60 for ln in narrow)
    assert narrow[1].endswith(" .hello, ") and narrow[2].endswith(" h2scope ")


def test_the_decoded_tabs_data_dump_fits_its_pane(session: Any) -> None:
    """A binary DATA payload's dump on the Decoded tab is 8 bytes a line when 16 and
    their characters would wrap in the detail pane (every line wrapped at 140 columns
    and less, the characters on a line of their own)."""
    from proxy.observe.frames import DataFrame
    from ui.model.detail import decoded

    t = session.table
    rows = [r for r in range(len(t)) if (ev := t.event(r)) is not None
            and isinstance(ev.frame, DataFrame) and ev.frame.data[:1] == b"\x00"]
    assert rows, "the fixture has binary DATA (gRPC messages)"
    row = rows[0]
    wide = decoded(session, row, t.event(row), 100).plain.splitlines()
    narrow = decoded(session, row, t.event(row), 60).plain.splitlines()
    dump_wide = [ln for ln in wide if ln.startswith("  0000")]
    dump_narrow = [ln for ln in narrow if ln.startswith("  0000")]
    assert dump_wide and all(len(ln) <= 100 for ln in dump_wide)
    assert len(dump_wide[0].split("  ")[2].split()) == 16
    assert dump_narrow and all(len(ln) <= 60 for ln in dump_narrow)
    assert len(dump_narrow[0].split("  ")[2].split()) == 8


def test_the_lanes_pane_grows_with_a_tall_terminal(capture_path: Path) -> None:
    """Eight rows of lanes whatever the terminal: a page of 41 streams needed
    scrolling even at 220 × 60."""
    heights: list[int] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        for size in ((160, 90), (160, 48), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            heights.append(app.lanes.size.height)

    drive(capture_path, scenario)
    assert heights[0] == 15 and heights[1] == 8 and heights[2] < 8, heights


def test_a_prompts_long_hint_wraps_instead_of_being_cut(capture_path: Path,
                                                        tmp_path: Path) -> None:
    """The save dialog cut the directory it saves into at the box's edge."""
    from textual.widgets import Label

    from ui.screens.prompt import Prompt

    seen: list[int] = []
    hint = "Enter saves · Esc cancels · a relative name goes in " + "/very/long" * 12

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.push_screen(Prompt("Save", "x.h2scope", hint=hint))
        await pilot.pause()
        await pilot.pause()
        label = [w for w in app.screen.query(Label) if "relative name" in str(w.render())][0]
        seen.append(label.size.height)
        seen.append(label.size.width)

    drive(capture_path, scenario, size=(80, 24))
    assert seen[0] >= 2 and seen[1] <= 80, seen


def test_timeline_columns_stay_aligned_past_1000_s_and_six_digit_ids(
        tmp_path: Path) -> None:
    """A stream id of six digits (h2load runs reach them), a 1,000th connection or a
    1,000th second pushed the rest of that row one column right of the others."""
    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import CONNECTION_PREFACE, Direction
    from tests.unit.capture.traffic import raw_frame

    path = tmp_path / "wide.h2scope"
    with CaptureWriter(path) as w:
        for conn, t0, sid in ((7, 0.0, 1), (1234, 1500.0, 100001)):
            w.connection(conn, {"protocol": "h2c", "mode": "reverse:http://a:80",
                                "server": {"host": "a", "port": 80}}, t=t0, wall=1000.0)
            w.raw(conn, Direction.C2S, CONNECTION_PREFACE, t=t0, wall=1000.0 + t0)
            w.frame(conn, Direction.C2S, raw_frame(4, 0, 0, b""), t=t0, wall=1000.0 + t0)
            w.frame(conn, Direction.C2S, raw_frame(8, 0, sid, b"\x00\x00\x01\x00"),
                    t=t0, wall=1000.0 + t0)
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        for i in range(app.timeline.row_count()):
            seen.append(app.timeline.render_line(i).text)

    drive(path, scenario)
    rows = [r for r in seen if "WINDOW_UPDATE" in r]
    assert len(rows) == 2, seen
    assert len({r.index("WINDOW_UPDATE") for r in rows}) == 1, rows
    assert len({r.index("→") for r in rows}) == 1, rows
    assert "1500.000000" in rows[1] and "#1234" in rows[1] and " 100001 " in rows[1], rows


def test_a_raw_binary_header_value_stays_on_its_line_in_the_detail_pane(
        tmp_path: Path) -> None:
    """grpc-core sends -bin metadata raw (true binary): its newline bytes broke the
    decoded and HPACK tabs' layout, where every other output writes \\x0a."""
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame
    from ui.model.detail import decoded
    from ui.model.detail import hpack as hpack_tab

    details = b"\x00\x08\x03\x12\x0bbad name\x1a\x0a)type.googleapis.com/x"
    block = hpack.Encoder().encode([(b":status", b"200"),
                                    (b"grpc-status-details-bin", details)])
    path = h2c_capture(tmp_path / "bin.h2scope", [
        (Direction.C2S, raw_frame(1, 0x5, 1, hpack.Encoder().encode(
            [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")])),
         0.001),
        (Direction.S2C, raw_frame(4, 0, 0, b""), 0.002),
        (Direction.S2C, raw_frame(1, 0x5, 1, block), 0.003)])
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        t = app.session.table
        row = next(r for r in range(len(t)) if t.type[r] == 1 and t.direction[r] == 1)
        ev = t.event(row)
        seen.append(decoded(app.session, row, ev).plain)
        seen.append(hpack_tab(app.session, row, ev).plain)

    drive(path, scenario)
    for text in seen:
        line = next(ln for ln in text.splitlines() if "grpc-status-details-bin:" in ln)
        assert "\\x0a)type.googleapis.com/x" in line and "\\x00\\x08\\x03" in line, line


def test_a_no_match_message_goes_when_another_scope_has_matches(capture_path: Path) -> None:
    """'no frame on connection #4 matches …' stayed in the status bar after `a` showed
    the frames that do match: the screen contradicted itself."""
    from textual.widgets import Input

    seen: list[str] = []

    async def until(pilot: Any, cond: Any) -> None:
        for _ in range(200):
            if cond():
                return
            await pilot.pause(0.05)
        raise AssertionError("timed out")

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        t = app.session.table
        row = next(r for r in range(len(t)) if t.type[r] == 1 and t.stream[r] == 3)
        app.timeline.cursor = app.timeline.index_of(row) or 0
        await pilot.press("S")  # only that stream
        await pilot.pause()
        app.query_one("#filter", Input).value = "path:/slow"
        await pilot.press("slash", "enter")
        await until(pilot, lambda: "matches" in app.message)
        seen.append(app.message)
        await pilot.press("a")
        await until(pilot, lambda: app.timeline.row_count() > 0)
        await pilot.pause()
        seen.append(app.message)
        seen.append(app.status.plain)

    drive(capture_path, scenario)
    assert seen[0].startswith("no frame on connection #1 matches 'path:/slow'"), seen
    assert seen[1] == "" and "matches 'path:/slow'" not in seen[2], seen


def test_the_stream_view_says_whether_a_cancel_was_the_calls_deadline(
        tmp_path: Path) -> None:
    """'reset by client: CANCEL' left the question a CANCEL raises — deadline or user
    cancel? — to arithmetic with grpc-timeout and the frames' times."""
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame
    from ui.screens.stream import stream_text

    def call(sid: int, timeout: str) -> bytes:
        return raw_frame(1, 0x4, sid, hpack.Encoder().encode([
            (":method", "POST"), (":scheme", "http"), (":authority", "a"),
            (":path", "/pkg.Svc/Slow"), ("content-type", "application/grpc"),
            ("grpc-timeout", timeout)]))

    path = h2c_capture(tmp_path / "deadline.h2scope", [
        (Direction.S2C, raw_frame(4, 0, 0, b""), 0.001),
        (Direction.C2S, call(1, "500m"), 0.010),
        (Direction.C2S, call(3, "10S"), 0.011),
        (Direction.C2S, raw_frame(3, 0, 3, (8).to_bytes(4, "big")), 0.111),
        (Direction.C2S, raw_frame(3, 0, 1, (8).to_bytes(4, "big")), 0.508)])
    seen: dict[int, str] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        conn = app.session.conns[1]
        for sid in (1, 3):
            seen[sid] = stream_text(app.session, conn, conn.streams[sid]).plain

    drive(path, scenario)
    assert "reset +498.000 ms, at the client's 500 ms deadline (grpc-timeout 500m)" in \
        seen[1], seen[1]
    assert "reset +100.000 ms, before the client's 10,000 ms deadline (grpc-timeout 10S): " \
        "a cancel" in seen[3], seen[3]


def test_the_help_wraps_once_in_an_80_column_terminal(capture_path: Path) -> None:
    """Lines broken by hand were broken again by the pane ('Home/End (G) the' alone
    on a line, then 'first/last row …')."""
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        static = app.screen.query_one("#help-moving")
        seen.extend(str(static.render()).splitlines())

    drive(capture_path, scenario, size=(80, 40))
    topics = [ln for ln in seen if ln.strip()]
    assert any("Home/End (G) the first/last row" in ln for ln in topics), topics
    assert any("at the quit question, keeps running" in ln for ln in topics), topics


def test_the_ui_filter_grpc_failed_selects_a_call_reset_before_its_status(
        tmp_path: Path) -> None:
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    enc = hpack.Encoder()
    call = [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
            (":path", "/pkg.Svc/Say"), ("content-type", "application/grpc")]
    path = h2c_capture(tmp_path / "cancelled.h2scope", [
        (Direction.S2C, raw_frame(4, 0, 0, b""), 0.001),
        (Direction.C2S, raw_frame(1, 0x5, 1, enc.encode(call)), 0.002),
        (Direction.C2S, raw_frame(3, 0, 1, (0xB).to_bytes(4, "big")), 0.003)])
    seen: list[list[int]] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        from proxy.filter import compile_filter
        from ui.model.filtering import run_filter

        t = app.session.table
        for text in ("grpc:failed", "grpc:RESOURCE_EXHAUSTED"):
            rows = run_filter(app.session, compile_filter(text))
            seen.append([int(t.type[r]) for r in rows or ()])

    drive(path, scenario)
    assert seen == [[1, 3], [1, 3]], seen  # (the call's HEADERS and its reset)


def test_the_status_bar_says_which_pane_has_the_keys(capture_path: Path) -> None:
    """At 80 columns Tab went from the timeline to the lanes, where ↑/Enter scoped a
    stream instead of opening it; only a background shade told the panes apart."""
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("tab")
        await pilot.pause()
        seen.append(app.status.plain)
        await pilot.press("escape")  # (as the status bar says: back to the timeline)
        await pilot.pause()
        seen.append(app.status.plain)
        seen.append(str(app.focused is app.timeline))

    drive(capture_path, scenario, size=(80, 24))
    assert "keys → lanes (Esc: timeline)" in seen[0], seen[0]
    assert "keys →" not in seen[1] and seen[2] == "True", seen


def test_with_no_color_stream_ids_and_lane_labels_stand_out_from_the_background(
        capture_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Textual's monochrome drew each colour as the grey of its brightness: blue
    stream ids and lane labels came out 238 on 234, nearly invisible. They are
    drawn in the text colour now (bold tells them apart)."""
    import io

    from rich.console import Console

    monkeypatch.setenv("NO_COLOR", "1")
    found: list[tuple[str, float, float, bool]] = []

    def luminance(r: int, g: int, b: int) -> float:
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await loaded(app, pilot)
        await pilot.pause()
        console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(),
                          force_terminal=True, color_system="256", legacy_windows=False)
        update = app.screen._compositor.render_update(full=True,
                                                      screen_stack=app._background_screens)
        screen = app.screen.styles.background
        for seg in console.render(update):
            style = seg.style
            if style is not None and style.color is not None \
                    and ("/big.bin → 200" in seg.text or seg.text.strip() == "5"):
                bg = style.bgcolor.get_truecolor() if style.bgcolor is not None else \
                    (screen.r, screen.g, screen.b)
                found.append((seg.text, luminance(*style.color.get_truecolor()),
                              luminance(*bg), bool(style.bold)))

    drive(capture_path, scenario)
    assert any("/big.bin" in text for text, *_ in found), found  # the lane's label
    assert any(text.strip() == "5" for text, *_ in found), found  # a timeline stream id
    for text, fg, bg, bold in found:
        assert abs(fg - bg) > 0.5 and bold, (text, fg, bg)
