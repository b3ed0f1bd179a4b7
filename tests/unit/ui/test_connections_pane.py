"""The connections pane: a column widens when what it shows grows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ui.app import H2ScopeApp
from ui.model.live import LiveFeed
from ui.model.session import Session
from ui.model.table import LiveFrames
from ui.widgets.panes import ConnectionsPane


def _live_app() -> tuple[Session, H2ScopeApp]:
    frames = LiveFrames()
    session = Session(frames, title="live")
    return session, H2ScopeApp(session, feed=LiveFeed(), frames=frames)


def test_cells_that_grow_widen_their_column() -> None:
    session, app = _live_app()

    async def scenario() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            pane = app.main.query_one(ConnectionsPane)
            session.conn(1)  # a connection known before its metadata ("?", "-", "open")
            session.touch()
            pane.sync()
            await pilot.pause()
            session.connection(1, {"client": {"ip": "127.0.0.1", "port": 51001},
                                   "mode": "regular"})
            session.closed(1, "by client: done")
            session.touch()
            pane.sync()
            await pilot.pause()
            width = {key.value: col.content_width for key, col in pane.columns.items()}
            assert width["client"] >= len("127.0.0.1:51001")
            assert width["mode"] >= len("regular") and width["state"] >= len("closed")
    asyncio.run(scenario())


def test_connections_that_start_relaying_out_of_order_are_listed_by_id() -> None:
    """A connection appears when it starts relaying: #3 can come before #2 (its
    handshake was quicker). The rows stay in id order; the cursor stays on its
    connection."""
    session, app = _live_app()
    seen: dict[str, object] = {}

    async def scenario() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            pane = app.main.query_one(ConnectionsPane)
            for conn_id in (1, 3):
                session.conn(conn_id)
            session.touch()
            pane.sync()
            pane.select_conn(3)
            await pilot.pause()
            for conn_id in (2, 5, 4):
                session.conn(conn_id)
            session.touch()
            pane.sync()
            await pilot.pause()
            seen["order"] = [str(pane.get_row(r.key)[0]) for r in pane.ordered_rows]
            seen["selected"] = pane.selected_conn()
            pane.move_cursor(row=2)
            seen["row 2"] = pane.selected_conn()
    asyncio.run(scenario())
    assert seen["order"] == ["all", "#1", "#2", "#3", "#4", "#5"]
    assert seen["selected"] == 3 and seen["row 2"] == 2


def test_frame_counts_are_shortened_in_thousands_bytes_in_kib() -> None:
    """45,248 frames read "23k/23k" (each way, as the column's head says) in the "all"
    row and the connection's (it was "44K": a count divided by 1024); bytes stay in
    KiB."""
    session, app = _live_app()
    seen: dict[str, object] = {}

    async def scenario() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            pane = app.main.query_one(ConnectionsPane)
            conn = session.conn(1)
            conn.frames = [22_624, 22_624]
            conn.bytes = [45_248, 12_000_000]
            session.touch()
            pane.sync()
            await pilot.pause()
            seen["all"] = pane.get_cell("all", "frames →/←")
            seen["frames"] = pane.get_cell("1", "frames →/←")
            seen["bytes"] = pane.get_cell("1", "bytes →/←")
    asyncio.run(scenario())
    assert seen == {"all": "23k/23k", "frames": "23k/23k", "bytes": "44K/11M"}


def test_a_reverse_mode_connection_shows_its_mode_short_and_its_state_on_screen(
        tmp_path: Path) -> None:
    """The mode column was 38 characters wide in reverse mode
    (reverse:https://localhost:65010@65021), pushing the state, the frames, the
    findings and the note off a 120-column screen; the connection tab keeps it whole."""
    from tests.unit.ui.conftest import drive, screen_text
    from tests.unit.ui.traffic import META, record_requests
    from ui.widgets.panes import mode_kind

    spec = "reverse:https://localhost:65010@65021"
    path = record_requests(tmp_path / "reverse.h2scope", {
        **META, "mode": spec, "target": "localhost:65010"},
        [[(":method", "GET"), (":scheme", "https"), (":authority", "localhost:65021"),
          (":path", "/")]])
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        seen.append(screen_text(app))
        await pilot.press("i")
        await pilot.pause()
        seen.append(screen_text(app))

    drive(path, scenario, size=(120, 30))
    row = next(line for line in seen[0].splitlines() if line.lstrip().startswith("#1 "))
    assert " reverse " in row and spec not in row
    assert " closed " in row and " 3/4 " in row, row  # (state and frames)
    assert spec in seen[1]
    assert [mode_kind({"mode": m}) for m in (
        "regular", "socks5@1080", "upstream:http://p:3128", "pcap", None)] == [
        "regular", "socks5", "upstream", "pcap", "-"]


def test_the_all_row_totals_bytes_and_streams_and_counts_have_separators(
        capture_path: Path) -> None:
    """The "all" row's bytes and streams were empty, and counts read '4506' beside
    the status bar's '4,506 frames'."""
    from tests.unit.ui.conftest import drive
    from ui.widgets.panes import ALL, COLUMNS, _bytes, _count

    seen: dict[str, Any] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        pane = app.main.query_one(ConnectionsPane)
        seen["all"] = dict(zip(COLUMNS, (str(c) for c in pane.get_row(ALL)), strict=True))
        seen["conn"] = dict(zip(COLUMNS, (str(c) for c in pane.get_row("1")), strict=True))

    drive(capture_path, scenario)
    for col in ("frames →/←", "bytes →/←", "streams open/all", "findings"):
        assert seen["all"][col] == seen["conn"][col] != "", (col, seen)
    assert (_count(4506), _bytes(4506), _count(45_657), _bytes(45_657)) == (
        "4,506", "4,506", "46k", "45K")
