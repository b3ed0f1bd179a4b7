"""Live repaints are spaced out while traffic keeps coming, and catch up once it stops."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from proxy.capture.format import RecordType
from proxy.capture.replay import replay
from proxy.events import Batch
from tests.unit.ui.traffic import record
from ui.app import H2ScopeApp
from ui.model.live import LiveFeed
from ui.model.session import Session
from ui.model.table import LiveFrames


def _batches(path: Path) -> list[Batch]:
    return [Batch(conn_id=item.record.conn_id, t=item.record.t, events=tuple(item.events),
                  direction=item.record.direction, data=b"", protocol="h2")
            for item in replay(path) if item.record.type in (RecordType.FRAME, RecordType.RAW)]


def _live(tmp_path: Path) -> tuple[list[Batch], LiveFeed, H2ScopeApp]:
    """A recorded session's batches, and a live app fed by ``feed``."""
    frames = LiveFrames()
    feed = LiveFeed()
    app = H2ScopeApp(Session(frames, title="live"), feed=feed, frames=frames)
    return _batches(record(tmp_path / "t.h2c")), feed, app


def test_views_catch_up_as_soon_as_the_traffic_stops(tmp_path: Path) -> None:
    batches, feed, app = _live(tmp_path)

    def over_budget() -> None:  # as if the UI thread had just spent a lot of CPU
        app._repaint_mark = (time.monotonic(), time.thread_time() - 100.0)

    async def scenario() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            shown = app._last_count
            for batch in batches:
                feed.put(batch)
            over_budget()
            app.tick()  # traffic is coming: the views wait
            assert app._last_count == shown
            assert len(app.session.table) > 0
            await asyncio.sleep(0.15)  # nothing more arrived for a tick
            over_budget()
            app.tick()  # quiet now: the views show everything at once
            assert app._last_count[0] == len(app.session.table)
    asyncio.run(scenario())


def test_follow_scrolls_to_the_tail_after_a_first_burst_that_overflows_the_view(
        tmp_path: Path) -> None:
    """Live, following: the first traffic arrives in one burst of more rows than
    the timeline shows. The view must end on the last rows — not on the first
    ones with the cursor out of sight (the vertical scrollbar did not exist yet
    when the burst was taken, so a plain scroll to the end did nothing)."""
    batches, feed, app = _live(tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            tl = app.timeline
            tl.follow = True
            await pilot.pause()
            for batch in batches:
                feed.put(batch)
            await asyncio.sleep(0.15)  # a quiet moment: the views repaint at the next tick
            app.tick()
            await pilot.pause()
            await pilot.pause()
            count = tl.row_count()
            assert count > tl.size.height > 0
            assert tl.cursor == count - 1
            assert tl.scroll_offset.y == tl.max_scroll_y > 0
    asyncio.run(scenario())


def test_a_connection_that_closes_without_a_frame_is_shown_closed(tmp_path: Path) -> None:
    """A client killed mid-download: the close is the last event, with no frame after
    it. The connections pane must say so without waiting for more traffic (it only
    refreshed with new frames)."""
    from proxy.events import Closer, ConnectionClosed
    from ui.widgets.panes import ConnectionsPane

    batches, feed, app = _live(tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            for batch in batches:
                feed.put(batch)
            await asyncio.sleep(0.15)
            app.tick()
            pane = app.query_one(ConnectionsPane)
            row = pane.get_row(str(batches[0].conn_id))
            assert "closed" not in [str(c) for c in row]
            feed.put(Batch(conn_id=batches[0].conn_id, t=batches[-1].t + 1, events=(
                ConnectionClosed(conn_id=batches[0].conn_id, t=batches[-1].t + 1,
                                 closed_by=Closer.CLIENT, reason="client connection failed "
                                 "(connection reset)", error=None, bytes_c2s=1, bytes_s2c=2),)))
            # No traffic comes after the close: the view's own ticks must show it
            # (waited for, not slept on: a tick within TICK of the last arrival
            # repaints only the status bar).
            deadline = asyncio.get_running_loop().time() + 5
            while True:
                await asyncio.sleep(0.05)
                app.tick()
                await pilot.pause()
                row = pane.get_row(str(batches[0].conn_id))
                if "closed" in [str(c).strip() for c in row] or \
                        asyncio.get_running_loop().time() > deadline:
                    break
            assert "closed" in [str(c).strip() for c in row]
    asyncio.run(scenario())


def test_an_idle_session_lets_the_ingest_timer_sleep_and_wakes_it_for_traffic(
        tmp_path: Path) -> None:
    """Idle, the 25 ms ingest timer was most of the UI's 2.7 % of a core; it sleeps
    after INGEST_IDLE without a batch, and the tick wakes it when one comes."""
    import ui.app as app_module

    batches, feed, app = _live(tmp_path)
    app_module.INGEST_IDLE = 0.2  # type: ignore[misc]
    try:
        async def scenario() -> None:
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.pause()
                timer = app._ingest_timer
                assert timer is not None
                deadline = time.monotonic() + 5
                while timer._active.is_set():  # (Textual: set while the timer runs)
                    assert time.monotonic() < deadline, "the ingest timer never slept"
                    await asyncio.sleep(0.05)
                for batch in batches:
                    feed.put(batch)
                deadline = time.monotonic() + 5
                while len(app.session.table) == 0:
                    assert time.monotonic() < deadline, "the batches were never taken"
                    await asyncio.sleep(0.02)
                assert timer._active.is_set()  # awake again while traffic comes
        asyncio.run(scenario())
    finally:
        app_module.INGEST_IDLE = 2.0  # type: ignore[misc]


class _StubLive:
    """What the status bar asks of a live session's source."""

    recording = None
    backing = None
    unrecorded: str | None = None

    def behind(self) -> int:
        return 0

    def disk_slows(self) -> bool:
        return False

    def problem(self) -> str | None:
        return None


def test_the_status_bar_leads_with_what_the_user_must_not_miss(tmp_path: Path) -> None:
    """Behind the screen, the start-up warnings are not seen: --insecure, a capture
    the disk refused and a stopped proxy lead the bar for as long as they hold."""
    _, _, app = _live(tmp_path)
    stub = _StubLive()

    async def scenario() -> None:
        async with app.run_test(size=(200, 48)) as pilot:
            await pilot.pause()
            app.tick = lambda: None  # type: ignore[method-assign]  # (only _status here)
            app.live = stub  # type: ignore[assignment]
            app.insecure = True
            app._status()
            assert app.status.plain.startswith("upstream NOT verified (--insecure) │ ")
            stub.unrecorded = "writing the session's capture failed: No space left on device"
            app._status()
            assert app.status.plain.startswith("NOT RECORDING, NOT SEEN: the disk refused the "
                                               "capture │ upstream NOT verified")
            app._problem_shown = True
            app._status()
            assert app.status.plain.startswith("STOPPED: no live traffic │ ")
            assert "listening" not in app.status.plain
            app.live = None
    asyncio.run(scenario())
