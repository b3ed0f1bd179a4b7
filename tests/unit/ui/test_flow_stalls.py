"""The flow-control view says how each stall ended: resumed (and after how long),
reset while stalled, the stream ended with its window spent (nothing waited), or
still stalled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from tests.unit.observe.conftest import REQUEST, FrameFactory
from ui.model.capture import CaptureFile, load
from ui.model.session import Session
from ui.screens.state import flow_text

C2S, S2C = Direction.C2S, Direction.S2C
META = {"client": {"ip": "127.0.0.1", "port": 50000}, "target": "example.com:443",
        "mode": "regular", "protocol": "h2"}


def record(path: Path) -> None:
    f = FrameFactory()
    writer = CaptureWriter(path, autoflush=False)
    # (times as given; the connection opened 1 s before its first frame)
    tap = RecordingObserver(writer, 1, {**META, "opened": 0.0}, t=1.0, wall_clock=True)
    t = [1.0]

    def send(direction: Direction, data: bytes, dt: float = 0.01) -> None:
        t[0] += dt
        tap.feed(direction, data, t[0])

    send(C2S, CONNECTION_PREFACE + f.settings(initial_window_size=100))
    send(S2C, f.settings() + f.settings(ack=True))
    send(C2S, f.settings(ack=True))
    for sid in (1, 3, 5, 7):
        send(C2S, f.headers(C2S, sid, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
        send(S2C, f.headers(S2C, sid, [(":status", "200")]))
        send(S2C, f.data(sid, b"x" * 100))  # the stream window of 100 is spent: stalled
    send(C2S, f.window_update(1, 100), dt=0.25)  # 1: resumed
    send(S2C, f.data(1, b"y", flags=["END_STREAM"]))
    send(C2S, f.rst(3, 8))  # 3: the client gives up
    send(S2C, f.data(5, b"", flags=["END_STREAM"]))  # 5: nothing more was waiting
    writer.close(fsync=False)  # 7: still stalled when the capture ends


def _flow(session: Session) -> str:
    """The flow-control tab of connection 1, on the timeline's clock."""
    return flow_text(session.conns[1], session.t0 or 0.0, {}).plain


def test_each_stall_says_how_it_ended(tmp_path: Path) -> None:
    from ui.widgets.timeline import render_frame_row

    record(tmp_path / "stalls.h2scope")
    capture = CaptureFile(tmp_path / "stalls.h2scope")
    try:
        session = Session(capture)
        load(session, capture)
        text = _flow(session)
        # The DATA that spent stream 1's window, as the timeline shows it.
        t = session.table
        spent = next(r for r in range(len(t)) if t.type[r] == 0 and t.stream[r] == 1)
        timeline_row = render_frame_row(session, spent).plain
    finally:
        capture.close()
    head, *stalls = text[text.index("stalls (a window"):text.index("\nstreams (latest")
                         ].splitlines()
    assert head == ("stalls (a window at 0 or below while data waits): 4, 2 not resumed, "
                    "longest resumed 340.0 ms")
    # Those not resumed first (a hang is what the view is opened for), then the
    # others; each from when it began, on the timeline's clock (seconds since the
    # first connection opened, not since this one's first frame), and how it ended.
    assert stalls == [
        "  not resumed:",
        "    1.090000 s  ← stream 3 (GET / → 200): never resumed: reset by client: CANCEL "
        "after 330.0 ms",
        "    1.150000 s  ← stream 7 (GET / → 200): still stalled, 280.0 ms so far",
        "  resumed or harmless:",
        "    1.060000 s  ← stream 1 (GET / → 200): 340.0 ms",  # until the WINDOW_UPDATE
        "    1.120000 s  ← stream 5 (GET / → 200): window spent by the last DATA; the "
        "stream ended"]
    assert timeline_row.split()[0] == "1.060000", timeline_row
    # The streams' table says how long each waited, and which is waiting still.
    table = text[text.index("\nstreams (latest"):].splitlines()[2:]
    assert table == [
        "  stream     1           0/101         1 stall(s), 340.0 ms stalled",
        "  stream     3           0/100         1 stall(s), the last not resumed",
        "  stream     5           0/100         1 stall(s)",
        "  stream     7           0/100         1 stall(s), the last not resumed"]


def test_a_long_list_of_stalls_says_it_shows_the_latest(tmp_path: Path) -> None:
    from ui.screens import state

    record(tmp_path / "stalls.h2scope")
    capture = CaptureFile(tmp_path / "stalls.h2scope")
    try:
        session = Session(capture)
        load(session, capture)
        old, state.STALLS_SHOWN = state.STALLS_SHOWN, 1
        try:
            text = _flow(session)
        finally:
            state.STALLS_SHOWN = old
    finally:
        capture.close()
    # However many resumed stalls came after it, a hang stays listed (an upload's
    # dozens of short stalls had pushed a 5 s one out of the latest 100).
    assert ("stalls (a window at 0 or below while data waits): 4, 2 not resumed, longest "
            "resumed 340.0 ms; the latest 1 of the others\n") in text
    assert "  not resumed (the latest 1):\n" in text
    assert "stream 3 (GET / → 200): never resumed" not in text
    assert "stream 7 (GET / → 200): still stalled" in text
    assert "stream 5 (GET / → 200): window spent" in text
    assert "stream 1 (GET / → 200): 340.0 ms" not in text


def _one_request(path: Path, *after: tuple[Direction, bytes, float],
                 window: int | None = None,
                 closed: tuple[float, str] | None = None) -> Path:
    """A recorded connection: settings both ways (the client's stream window
    ``window``), a GET on stream 1, then ``after``; ``closed``: (when, by whom)."""
    f = FrameFactory()
    writer = CaptureWriter(path, autoflush=False)
    tap = RecordingObserver(writer, 1, META, t=1.0, wall_clock=True)
    settings = f.settings() if window is None else f.settings(initial_window_size=window)
    tap.feed(C2S, CONNECTION_PREFACE + settings, 1.01)
    tap.feed(S2C, f.settings() + f.settings(ack=True), 1.02)
    tap.feed(C2S, f.settings(ack=True), 1.03)
    tap.feed(C2S, f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]), 1.04)
    for direction, data, t in after:
        tap.feed(direction, data, t)
    if closed is not None:
        tap.close(closed[0], closed_by=closed[1])
    writer.close(fsync=False)
    return path


def _spent() -> bytes:
    """Stream 1's response and the DATA that spends a 100-byte window, read at one
    moment (the server's first header block: a fresh encoder's bytes)."""
    f = FrameFactory()
    return f.headers(S2C, 1, [(":status", "200")]) + f.data(1, b"x" * 100)


SPENT = _spent()


def _lane(path: Path, stream_id: int = 1, *, by_time: bool = False) -> str:
    """Stream ``stream_id``'s lane, 60 columns, as the lanes pane draws it."""
    from typing import Any

    from tests.unit.ui.conftest import drive
    from ui.app import H2ScopeApp

    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        app.lanes.by_time = by_time
        app.lanes.rebuild()
        lane = next(st for st in app.lanes.lanes if st.stream_id == stream_id)
        seen.append(app.lanes.lane(lane, 60).plain)

    drive(path, scenario)
    return seen[0]


def _loaded(path: Path, show: Callable[[Session], str]) -> str:
    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        return show(session)
    finally:
        capture.close()


def test_the_connection_window_marks_only_its_own_window_updates(tmp_path: Path) -> None:
    """A stream's WINDOW_UPDATE does not move the connection window: the chart's
    ↑ count is the stream-0 updates alone (here one, against one for stream 1)."""
    f = FrameFactory()
    path = _one_request(
        tmp_path / "updates.h2scope",
        (S2C, f.headers(S2C, 1, [(":status", "200")]) + f.data(1, b"x" * 1000), 1.05),
        (C2S, f.window_update(1, 1000), 1.06), (C2S, f.window_update(0, 1000), 1.07))
    text = _loaded(path, _flow)
    assert "(↑ marks the 1 WINDOW_UPDATE on stream 0):" in text
    # The scale: the top row's value and 0.
    chart_rows = [ln for ln in text.splitlines() if ln.startswith("  │") and "(no data)" not in ln]
    assert chart_rows[0].endswith("  65,535") and chart_rows[4].endswith("  0"), chart_rows


def test_the_stream_view_names_the_reset_that_ended_the_stream_first(tmp_path: Path) -> None:
    """A gRPC deadline: the client's CANCEL, then the server's NO_ERROR crossing it."""
    from ui.screens.stream import stream_text

    f = FrameFactory()
    path = _one_request(tmp_path / "resets.h2scope", (C2S, f.rst(1, 8), 1.5),
                        (S2C, f.rst(1, 0), 1.51))
    text = _loaded(path, lambda session: stream_text(
        session, session.conns[1], session.conns[1].streams[1]).plain)
    assert "reset by client: CANCEL (then by server: NO_ERROR)" in text


def test_lanes_draw_a_stall_from_its_data_and_a_hang_to_the_end(tmp_path: Path) -> None:
    """Stream 1's response HEADERS and the DATA that spends its window are read at
    one moment: the stall starts at the DATA, not before the HEADERS. It never
    resumes, while stream 3 goes on: the stall runs on past stream 1's last frame."""
    f = FrameFactory()
    f.block(C2S, REQUEST)  # (the encoder as _one_request left it: the request indexed)
    others = []
    for i in range(20):  # stream 3 goes on; stream 1 never gets its WINDOW_UPDATE
        sid = 3 + 2 * i
        others.append((C2S, f.headers(C2S, sid, REQUEST, flags=["END_HEADERS", "END_STREAM"]),
                       1.1 + i * 0.01))
        others.append((S2C, f.headers(S2C, sid, [(":status", "204")],
                                      flags=["END_HEADERS", "END_STREAM"]),
                       1.1 + i * 0.01 + 0.005))
    lane = _lane(_one_request(tmp_path / "hang.h2scope", (S2C, SPENT, 1.05), *others,
                              window=100))
    assert lane.index("H") < lane.index("░"), lane  # HEADERS first, then the stall
    assert lane.rstrip().endswith("░") and lane.rstrip() == lane, lane  # to the end


def test_the_har_entry_of_a_stream_lists_its_stalls(tmp_path: Path) -> None:
    import io
    import json

    from proxy.capture.export_har import write_har
    from proxy.capture.replay import replay

    record(tmp_path / "stalls.h2scope")
    out = io.StringIO()
    write_har(replay(tmp_path / "stalls.h2scope"), out)
    entries = {e["_h2scope"]["stream_id"]: e["_h2scope"]
               for e in json.loads(out.getvalue())["log"]["entries"]}
    (resumed,) = entries[1]["stalls"]
    assert resumed["blocked"] == "server" and resumed["seconds"] == 0.34
    assert entries[7]["stalls"][0]["seconds"] is None  # never resumed: the hang
    assert entries[7]["stalls"][0]["started"].endswith("Z")


def test_a_reset_with_a_finding_keeps_its_cross_in_the_lane(tmp_path: Path) -> None:
    f = FrameFactory()
    lane = _lane(_one_request(
        tmp_path / "rst.h2scope",
        (S2C, f.headers(S2C, 1, [(":status", "200")], flags=["END_HEADERS", "END_STREAM"]),
         1.05),
        (C2S, f.rst(3, 8), 1.06)), 3)  # a reset of a stream never opened: a finding
    assert "✕" in lane and "!" not in lane, lane


def test_a_stall_that_never_resumed_lasts_until_the_close(tmp_path: Path) -> None:
    """Not until the connection's last frame: a client that stops reading, then
    closes three seconds later, kept the server waiting three seconds."""
    path = _one_request(tmp_path / "close.h2scope", (S2C, SPENT, 1.05), window=100,
                        closed=(4.05, "client"))
    text = _loaded(path, _flow)
    assert "stream 1 (GET / → 200): never resumed: the connection closed after 3000.0 ms" \
        in text, text


def test_the_text_export_puts_what_the_close_raised_before_the_close(tmp_path: Path) -> None:
    import io

    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay

    goaway = bytes.fromhex("000008070000000000") + bytes(8)  # GOAWAY, last stream 0
    path = _one_request(tmp_path / "goaway.h2scope", (S2C, goaway, 1.05),
                        closed=(1.06, "server"))
    out = io.StringIO()
    write_text(replay(path), out)
    lines = out.getvalue().splitlines()
    finding = next(i for i, ln in enumerate(lines) if "stream-not-processed" in ln)
    closed = next(i for i, ln in enumerate(lines) if "closed by server" in ln)
    assert finding < closed, lines


def test_in_time_lanes_a_hang_lasts_until_the_close(tmp_path: Path) -> None:
    lane = _lane(_one_request(tmp_path / "hang-close.h2scope", (S2C, SPENT, 1.05), window=100,
                              closed=(5.0, "client")),  # the client gave up 4 s later
                 by_time=True)
    assert lane.endswith("░"), lane  # the axis, and the stall, run to the close
    assert lane.index("░") < 5, lane  # while the frames are all at its start


def _settled(path: Path, f: FrameFactory) -> tuple[CaptureWriter, RecordingObserver]:
    """A capture of connection 1 whose preface and SETTINGS (both acknowledged) are in."""
    writer = CaptureWriter(path, autoflush=False)
    tap = RecordingObserver(writer, 1, META, t=1.0, wall_clock=True)
    tap.feed(C2S, CONNECTION_PREFACE + f.settings(), 1.0)
    tap.feed(S2C, f.settings() + f.settings(ack=True), 1.0)
    tap.feed(C2S, f.settings(ack=True), 1.0)
    return writer, tap


def test_a_stream_named_only_by_priority_frames_gets_no_lane(tmp_path: Path) -> None:
    """nghttp's RFC 7540 anchor streams (PRIORITY only, never opened) had lanes of
    their own above the requests; a stream that opens after a PRIORITY still gets one."""
    f = FrameFactory()
    path = tmp_path / "anchors.h2scope"
    writer, tap = _settled(path, f)
    for sid in (3, 5, 7):  # PRIORITY: depends on 0, weight 100 (RFC 9113 §6.3)
        tap.feed(C2S, bytes.fromhex("0000050200") + sid.to_bytes(4, "big")
                 + bytes.fromhex("0000000063"), 1.4)
    tap.feed(C2S, f.headers(C2S, 7, REQUEST, flags=["END_HEADERS", "END_STREAM"]), 1.5)
    tap.feed(C2S, f.headers(C2S, 9, REQUEST, flags=["END_HEADERS", "END_STREAM"]), 1.6)
    writer.close(fsync=False)
    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        assert [s.stream_id for s in session.stream_order] == [7, 9]
        assert [s.stream_id for s in session.conns[1].stream_order] == [7, 9]
        assert len(session.conns[1].streams[7].rows) == 2  # its PRIORITY, then HEADERS
    finally:
        capture.close()


def test_a_bidirectional_grpc_stream_lists_its_messages_in_the_order_they_came(
        tmp_path: Path) -> None:
    """The bodies list each direction on its own; the back and forth of a bidi call
    (ask, answer, ask, answer) is what one debugs, so it is listed in order too."""
    from ui.screens.stream import stream_text

    def message(text: str) -> bytes:
        pb = b"\x0a" + bytes([len(text)]) + text.encode()
        return b"\x00" + len(pb).to_bytes(4, "big") + pb

    f = FrameFactory()
    path = tmp_path / "bidi.h2scope"
    writer, tap = _settled(path, f)
    grpc = [("content-type", "application/grpc")]
    tap.feed(C2S, f.headers(C2S, 1, [(":method", "POST"), (":scheme", "http"),
                                     (":authority", "a"), (":path", "/chat.Chat/Talk"),
                                     *grpc]), 1.1)
    tap.feed(S2C, f.headers(S2C, 1, [(":status", "200"), *grpc]), 1.2)
    for i, (d, text) in enumerate([(C2S, "hi"), (S2C, "hello"), (C2S, "how are you"),
                                   (S2C, "fine")]):
        tap.feed(d, f.data(1, message(text)), 1.3 + i / 10)
    tap.feed(C2S, f.data(1, b"", flags=["END_STREAM"]), 1.8)
    tap.feed(S2C, f.headers(S2C, 1, [("grpc-status", "0")], flags=["END_HEADERS",
                                                                    "END_STREAM"]), 1.9)
    writer.close(fsync=False)
    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        conn = session.conns[1]
        text = stream_text(session, conn, conn.streams[1]).plain
    finally:
        capture.close()
    part = text[text.index("gRPC messages in order (both directions)"):].splitlines()[1:5]
    assert [ln.split("ms  ", 1)[1] for ln in part] == [
        '→ message 1: 4 bytes  {1: "hi"}', '← message 1: 7 bytes  {1: "hello"}',
        '→ message 2: 13 bytes  {1: "how are you"}', '← message 2: 6 bytes  {1: "fine"}']
    assert part[0].strip().startswith("+") and "200.000 ms" in part[0]


def test_offline_a_stall_not_resumed_lasts_until_the_capture_ends_live_until_now(
        tmp_path: Path) -> None:
    record(tmp_path / "stalls.h2scope")
    capture = CaptureFile(tmp_path / "stalls.h2scope")
    try:
        session = Session(capture)
        load(session, capture)
        conn = session.conns[1]
        offline = flow_text(conn, 0.0, {}).plain
        live = flow_text(conn, 0.0, {}, now=conn.last_t + 10).plain
    finally:
        capture.close()
    assert "stream 7 (GET / → 200): still stalled, 280.0 ms so far" in offline
    assert "stream 7 (GET / → 200): still stalled, 10280.0 ms so far" in live
    assert "stream 1 (GET / → 200): 340.0 ms" in live  # (a resumed stall is what it was)


def test_the_live_flow_view_measures_a_hang_to_now(tmp_path: Path) -> None:
    """``view --follow`` of a capture whose stream 7 hangs: its stall grows with the
    wall clock (it stopped at the connection's last frame: a hang looked 280 ms long)."""
    import asyncio
    import re
    import time

    from ui.launch import follow_app
    from ui.screens.state import StateScreen

    path = tmp_path / "hang.h2scope"
    record(path)
    app = follow_app(path)
    seen: list[str] = []

    async def main() -> None:
        async with app.run_test(size=(160, 40)) as pilot:
            deadline = time.monotonic() + 20
            while 1 not in app.session.conns or len(app.session.conns[1].stalls) < 4:
                assert time.monotonic() < deadline, "the stalls did not arrive"
                await pilot.pause(0.05)
            await pilot.press("w")
            await pilot.pause()
            assert isinstance(app.screen, StateScreen)
            seen.append(app.screen.text("flow"))
            await pilot.pause(StateScreen.LIVE_REDRAW + 0.5)  # (no key: it redraws itself)
            seen.append(app.screen.text("flow"))
            await pilot.press("q", "q")
            await pilot.pause()

    asyncio.run(asyncio.wait_for(main(), 60))
    (line,) = [ln for ln in seen[0].splitlines() if "stream 7 (" in ln]
    so_far = re.search(r"still stalled, ([\d.]+) ms so far", line)
    assert so_far and float(so_far[1]) > 1e9, line  # (the frames are from 1970)
    (later,) = [ln for ln in seen[1].splitlines() if "stream 7 (" in ln]
    grown = re.search(r"still stalled, ([\d.]+) ms so far", later)
    assert grown and float(grown[1]) >= float(so_far[1]) + 1000, (line, later)


def test_the_flow_view_lists_the_open_streams_send_windows_smallest_first(
        tmp_path: Path) -> None:
    """Not "the last stream window" (whichever stream the last DATA touched, or a
    placeholder 65535): each open stream's window now, from the observer's figures —
    after DATA, and after an INITIAL_WINDOW_SIZE change (RFC 9113 §6.9.2) that can
    leave one below 0. A stream no event moved has the window in force."""
    from ui.screens import state

    f = FrameFactory()
    f.block(C2S, REQUEST)  # (the encoder as _one_request left it: the request indexed)
    path = _one_request(
        tmp_path / "windows.h2scope",
        (S2C, f.headers(S2C, 1, [(":status", "200")]) + f.data(1, b"x" * 60), 1.05),
        (C2S, f.settings(initial_window_size=10), 1.06),  # stream 1: 40 - 90 = -50
        (S2C, f.settings(ack=True), 1.07),
        (C2S, f.headers(C2S, 3, REQUEST, flags=["END_HEADERS", "END_STREAM"]), 1.08),
        (S2C, f.headers(S2C, 3, [(":status", "200")]), 1.09),  # stream 3: 10, as set
        window=100)
    text = _loaded(path, _flow)
    assert "last stream window" not in text
    sent = text.splitlines()
    server = sent.index("← data sent by the server: connection window now 65,475")
    assert sent[server + 1] == ("  open streams' send windows, smallest first: stream 1 -50, "
                                "stream 3 10"), sent[server + 1]
    client = sent.index("→ data sent by the client: connection window now 65,535")
    assert sent[client + 1] == "  no open stream can send this way"  # (both requests ended)
    old, state.WINDOWS_SHOWN = state.WINDOWS_SHOWN, 1
    try:
        text = _loaded(path, _flow)
    finally:
        state.WINDOWS_SHOWN = old
    assert "smallest first: stream 1 -50, … 1 more\n" in text


def test_a_stream_reopened_while_the_connection_window_is_spent_says_it_was_still_blocked(
        tmp_path: Path) -> None:
    """Both windows spent; a WINDOW_UPDATE reopens stream 1's, the connection's comes
    later: the stream's stall line says the data could still not move."""
    f = FrameFactory()
    f.block(C2S, REQUEST)
    spend = f.headers(S2C, 1, [(":status", "200")]) + b"".join(
        f.data(1, b"x" * n) for n in (16384, 16384, 16384, 16383))
    path = _one_request(tmp_path / "both.h2scope", (S2C, spend, 1.05),
                        (C2S, f.window_update(1, 1000), 1.10),
                        (C2S, f.window_update(0, 1000), 1.50))
    text = _loaded(path, _flow)
    (line,) = [ln for ln in text.splitlines() if "← stream 1 (" in ln]
    assert line.endswith("50.0 ms (the connection window was still 0: still blocked)"), line
    (conn,) = [ln for ln in text.splitlines() if "← connection:" in ln]
    assert conn.endswith("450.0 ms"), conn


def test_the_frame_that_caused_a_stall_says_so_in_its_detail(tmp_path: Path) -> None:
    """The SETTINGS ACK that lowers stream 1's window below 0: its Decoded tab says
    what it caused — the settings now in force and the stall — as the log does."""
    from ui.model import detail

    f = FrameFactory()
    f.block(C2S, REQUEST)
    path = _one_request(
        tmp_path / "ack.h2scope",
        (S2C, f.headers(S2C, 1, [(":status", "200")]) + f.data(1, b"x" * 60), 1.05),
        (C2S, f.settings(initial_window_size=10), 1.06),
        (S2C, f.settings(ack=True), 1.07))
    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        t = session.table
        ack = len(t) - 1
        assert t.type[ack] == 4
        text = detail.decoded(session, ack, session.table.event(ack)).plain
    finally:
        capture.close()
    assert ("then        settings in force for the server (the client's settings, "
            "now binding the server): INITIAL_WINDOW_SIZE=10; 1 open "
            "stream's window -65525 (RFC 9113 §6.9.2): stream 1 now -50") in text, text
    assert ("            flow control: server blocked, stream 1 window is -50 after the "
            "SETTINGS change (RFC 9113 §6.9.2)") in text, text


def test_a_connection_a_capture_never_closes_reads_open_at_end(tmp_path: Path) -> None:
    """Read to its end with no close of the connection: not plain "open", which reads
    as live; one the capture closes is "closed"."""
    path = _one_request(tmp_path / "open.h2scope", (S2C, SPENT, 1.05))
    shut = _one_request(tmp_path / "shut.h2scope", (S2C, SPENT, 1.05),
                        closed=(1.2, "client"))
    states = []
    for p in (path, shut):
        capture = CaptureFile(p)
        try:
            session = Session(capture)
            load(session, capture)
            states.append(session.conns[1].state)
        finally:
            capture.close()
    assert states == ["open at end", "closed"]


def test_the_flow_view_charts_a_stream_window_the_selected_one_else_the_latest_stalled(
        tmp_path: Path) -> None:
    path = tmp_path / "stalls.h2scope"
    record(path)
    latest = _loaded(path, lambda s: flow_text(s.conns[1], s.t0 or 0.0, {}).plain)
    chosen = _loaded(path, lambda s: flow_text(s.conns[1], s.t0 or 0.0, {}, selected=1).plain)

    def stream_chart(text: str) -> list[str]:
        server = text[text.index("← data sent by the server"):text.index("stalls (a window")]
        lines = server.splitlines()
        at = next(i for i, line in enumerate(lines) if " send window, ↑ its " in line)
        return lines[at:at + 7]

    # Nothing selected: stream 7, stalled last (and never resumed), at 0 from its DATA on.
    head, *bars = stream_chart(latest)
    assert head.startswith("  stream 7 (GET / → 200) send window, ↑ its 0 WINDOW_UPDATEs"), head
    assert head.endswith("— the latest stall:")
    assert bars[0] == "  │ at 0 after its only DATA or WINDOW_UPDATE"
    # Stream 1 selected: spent by its DATA, reopened by the client's WINDOW_UPDATE.
    head, *bars = stream_chart(chosen)
    assert head.startswith("  stream 1 (GET / → 200) send window, ↑ its 1 WINDOW_UPDATE — "
                           "selected:"), head
    assert bars[0].endswith("█▇  100") and bars[4].endswith("██  0")
    assert bars[5].rstrip().endswith("↑")
    # The connection window's own chart is there too, above it, in both.
    for text in (latest, chosen):
        assert "connection send window over" in text


def test_a_connection_window_spent_by_a_download_that_ended_is_no_hang(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The last DATA spent both windows exactly, then an empty DATA ended the stream:
    the flow tab says nothing waited (it said 'never resumed' for the connection
    window), check lists no never-resumed stall and raises no flow-control-stalled."""
    from proxy.cli import main
    from tests.unit.capture.traffic import hung_download

    path = hung_download(tmp_path / "ended.h2scope", ended=True)
    text = _loaded(path, _flow)
    assert "connection: window spent; no stream is open to wait on it" in text
    assert "never resumed" not in text
    assert main(["check", str(path), "--fail-on", "warning"]) == 0
    out = capsys.readouterr().out
    assert "never resumed" not in out and "flow-control-stalled" not in out


def test_a_window_update_after_the_stream_closed_is_counted_apart_not_charted() -> None:
    """Chrome's WINDOW_UPDATE 344 ms after big.png ended: the timeline shows it, the
    chart has no window of the closed stream to draw, and its label said "its 0
    WINDOW_UPDATEs" beside it; it now says one more came after the stream closed."""
    from ui.model.connections import FlowSeries

    series = FlowSeries()
    for t, conn, stream, sid, kind in ((0.1, 1000, 900, 3, 0), (0.2, 500, 400, 3, 0),
                                       (0.3, 10000, -1, 3, 1), (0.4, 9000, 800, 5, 0)):
        series.t.append(t)
        series.conn.append(conn)
        series.stream.append(stream)
        series.stream_id.append(sid)
        series.kind.append(kind)
    values, kinds = series.stream_points(3)
    assert list(values) == [900, 400] and list(kinds) == [0, 0]
    assert series.late_updates(3) == 1 and series.late_updates(5) == 0
    series.t.append(0.5)
    series.conn.append(20000)
    series.stream.append(-1)
    series.stream_id.append(3)
    series.kind.append(1)
    series.stream_points(3)  # (extended from where it stopped, as a live view redraws)
    assert series.late_updates(3) == 2


def test_the_stream_view_times_the_response_to_its_end_not_to_a_later_window_update(
        tmp_path: Path) -> None:
    """Chrome's WINDOW_UPDATE for a download came 344 ms after its END_STREAM: the
    stream view's only end time was "last frame +449 ms" for a response complete at
    +105 ms. It gives the response's end, and the last frame apart."""
    from ui.screens.stream import stream_text

    f = FrameFactory()
    f.block(C2S, REQUEST)  # (the encoder as _one_request left it)
    path = _one_request(tmp_path / "late.h2scope",
                        (S2C, f.headers(S2C, 1, [(":status", "200")]), 1.10),
                        (S2C, f.data(1, b"x" * 100, flags=["END_STREAM"]), 1.15),
                        (C2S, f.window_update(1, 100), 1.50))
    text = _loaded(path, lambda session: stream_text(
        session, session.conns[1], session.conns[1].streams[1]).plain)
    timing = text.splitlines()[1]
    assert "response headers +60.000 ms, response complete +110.000 ms (receiving " \
        "50.000 ms), last frame +460.000 ms" in timing, timing


def test_the_wait_for_a_response_ends_at_the_final_response_not_a_1xx_or_window_update(
        tmp_path: Path) -> None:
    """The stream view's "first response byte" was a 100's (or a server's
    WINDOW_UPDATE for an upload), so "receiving" counted the server's wait for the
    final response, and the requests list's wait too; the HAR measured to the final
    response. Now all three agree, and the 1xx has its own time."""
    from ui.screens.requests import request_rows
    from ui.screens.stream import stream_text

    f = FrameFactory()
    f.block(C2S, REQUEST)
    path = _one_request(tmp_path / "interim.h2scope",
                        (S2C, f.window_update(1, 1000), 1.06),
                        (S2C, f.headers(S2C, 1, [(":status", "100")]), 1.08),
                        (S2C, f.headers(S2C, 1, [(":status", "200")]), 1.30),
                        (S2C, f.data(1, b"x" * 10, flags=["END_STREAM"]), 1.31))

    def seen(session: Session) -> tuple[str, float | None]:
        (row,) = request_rows(session)
        text = stream_text(session, session.conns[1], session.conns[1].streams[1]).plain
        return text.splitlines()[1], row.wait

    timing, wait = _loaded(path, seen)
    assert "interim 100 +40.000 ms, response headers +260.000 ms, response complete " \
        "+270.000 ms (receiving 10.000 ms)" in timing, timing
    assert wait == pytest.approx(0.26)


def test_the_stall_count_says_how_many_were_the_connections() -> None:
    """One DATA that spends both windows is two stalls (each window counts apart), which
    read as double a browser's count of stream stalls: the head says the split."""
    from ui.model.connections import ConnInfo

    conn = ConnInfo(conn_id=1)
    conn.stalls = [(1.0, 1, 0, 1.1, False), (1.0, 1, 3, 1.1, False), (2.0, 1, 5, 2.05, False)]
    text = flow_text(conn, 0.0, {}).plain
    assert "stalls (a window at 0 or below while data waits): 3 (1 of the connection " \
        "window, 2 of stream windows), longest resumed 100.0 ms" in text, text


def test_the_stream_view_shows_the_rfc7540_priority_and_each_change(tmp_path: Path) -> None:
    """Chromium sends its priority as a HEADERS weight and raises a request with
    PRIORITY frames; the stream view showed only an RFC 9218 header."""
    import hyperframe.frame as hf

    from ui.screens.stream import stream_text

    f = FrameFactory()
    path = tmp_path / "prio.h2scope"
    writer = CaptureWriter(path, autoflush=False)
    tap = RecordingObserver(writer, 1, META, t=1.0, wall_clock=True)
    tap.feed(C2S, CONNECTION_PREFACE + f.settings(), 1.01)
    tap.feed(S2C, f.settings() + f.settings(ack=True), 1.02)
    tap.feed(C2S, f.settings(ack=True), 1.03)
    tap.feed(C2S, f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM", "PRIORITY"],
                            depends_on=0, stream_weight=182, exclusive=True), 1.04)
    tap.feed(C2S, hf.PriorityFrame(1, depends_on=0, stream_weight=219,
                                   exclusive=True).serialize(), 1.09)
    tap.feed(S2C, f.headers(S2C, 1, [(":status", "200")], flags=["END_HEADERS", "END_STREAM"]),
             1.10)
    writer.close(fsync=False)
    text = _loaded(path, lambda session: stream_text(
        session, session.conns[1], session.conns[1].streams[1]).plain)
    assert ("RFC 7540 priority: HEADERS: depends on 0 exclusively, weight 183; then PRIORITY "
            "at +50.000 ms: depends on 0 exclusively, weight 220\n") in text, text


def test_an_uploads_wait_counts_from_its_last_byte_as_the_hars(tmp_path: Path) -> None:
    """The requests list's wait for a 5 MB upload was 4.87 s, the time spent sending;
    the HAR's was 6.7 ms, from the request's end to the response."""
    from ui.screens.requests import request_rows
    from ui.screens.stream import stream_text

    f = FrameFactory()
    post = [(":method", "POST"), (":scheme", "https"), (":authority", "example.com"),
            (":path", "/upload")]
    path = tmp_path / "upload.h2scope"
    writer = CaptureWriter(path, autoflush=False)
    tap = RecordingObserver(writer, 1, META, t=1.0, wall_clock=True)
    tap.feed(C2S, CONNECTION_PREFACE + f.settings(), 1.01)
    tap.feed(S2C, f.settings() + f.settings(ack=True), 1.02)
    tap.feed(C2S, f.settings(ack=True), 1.03)
    tap.feed(C2S, f.headers(C2S, 1, post), 1.04)
    tap.feed(S2C, f.headers(S2C, 1, [(":status", "100")]), 1.05)
    tap.feed(C2S, f.data(1, b"x" * 1000), 2.00)
    tap.feed(C2S, f.data(1, b"x" * 1000, flags=["END_STREAM"]), 5.00)
    tap.feed(S2C, f.headers(S2C, 1, [(":status", "200")], flags=["END_HEADERS", "END_STREAM"]),
             5.01)
    writer.close(fsync=False)

    def seen(session: Session) -> tuple[str, float | None]:
        (row,) = request_rows(session)
        text = stream_text(session, session.conns[1], session.conns[1].streams[1]).plain
        return text.splitlines()[1], row.wait

    timing, wait = _loaded(path, seen)
    assert wait == pytest.approx(0.01)
    # (in the order they happened: the 100 came while the body was being sent)
    assert ("interim 100 +10.000 ms, request sent +3960.000 ms, response headers +3970.000 ms"
            in timing), timing
