"""The live UI's follower: a growing capture read record by record, decoded,
and handed to the feed the UI ingests (ui/model/follow.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from proxy.capture.reader import read_header
from proxy.capture.writer import CaptureWriter
from proxy.observe.events import FrameObserved
from tests.unit.capture.traffic import record_session
from ui.model.backing import CaptureFrames, SessionCapture
from ui.model.body import reassemble
from ui.model.capture import CaptureFile, load
from ui.model.detail import decoded
from ui.model.follow import Follower
from ui.model.live import LiveFeed, ingest
from ui.model.session import RecordedClose, RecordedConnection, Session


def _capture(path: Path) -> list[Any]:
    """Two full connections (real h2 client and server); their live events."""
    with CaptureWriter(path, autoflush=False) as writer:
        live = record_session(writer, 1).live
        live += record_session(writer, 2, t0=2000.0).live
    return live


def _frames(events: list[Any]) -> list[tuple[int, bytes]]:
    return [(int(ev.direction), ev.frame.raw) for ev in events if type(ev) is FrameObserved]


def _followed(path: Path) -> tuple[Session, int]:
    """A session filled by following the whole file once, and the frames ingested."""
    feed = LiveFeed()
    follower = Follower(path, feed)
    try:
        follower.poll()
    finally:
        follower.stop()
    frames = CaptureFrames(SessionCapture(path))  # as the live app reads rows back
    session = Session(frames)
    return session, ingest(session, frames, feed)


def both_readers(path: Path) -> tuple[Session, Session]:
    """The capture read as the live UI follows it, and as ``h2scope view`` opens it."""
    followed, _ = _followed(path)
    capture = CaptureFile(path)
    viewed = Session(capture)
    try:
        load(viewed, capture)
    finally:
        capture.close()
    return followed, viewed


def _drain(feed: LiveFeed) -> list[Any]:
    out: list[Any] = []
    while feed.batches:
        out.extend(feed.batches.popleft().events)
    return out


def test_a_capture_read_as_it_grows_gives_the_live_observers_frames(tmp_path: Path) -> None:
    whole = tmp_path / "whole.h2scope"
    live = _capture(whole)
    data = whole.read_bytes()
    growing = tmp_path / "growing.h2scope"
    # The follower opens the file once its header is there, like the UI does
    # after the proxy's "ready"; then the file grows by odd-sized pieces, so
    # most reads end in the middle of a record.
    with open(whole, "rb") as f:
        read_header(f)
        start = f.tell()
    growing.write_bytes(data[:start])
    feed = LiveFeed()
    follower = Follower(growing, feed)
    try:
        events: list[Any] = []
        pos = start
        step = 37
        while pos < len(data):
            pos = min(len(data), pos + step)
            step = step * 3 % 1021 + 1
            with open(growing, "ab") as out:
                out.write(data[len(growing.read_bytes()):pos])
            follower.poll()
            events += _drain(feed)
        assert follower.broken is None
        assert follower.behind() == 0
    finally:
        follower.stop()
    live_frames = [(c, int(ev.direction), ev.frame.raw) for c, ev in live
                   if type(ev) is FrameObserved]
    assert len(live_frames) > 50
    assert _frames(events) == [(d, raw) for _, d, raw in live_frames]
    opened = [ev for ev in events if isinstance(ev, RecordedConnection)]
    closed = [ev for ev in events if isinstance(ev, RecordedClose)]
    assert [ev.conn_id for ev in opened] == [1, 2] == [ev.conn_id for ev in closed]
    assert opened[0].meta["sni"] == "example.test"


def test_what_it_reads_fills_the_session_like_live_traffic(tmp_path: Path) -> None:
    path = tmp_path / "c.h2scope"
    live = _capture(path)
    session, added = _followed(path)
    n = sum(1 for _, ev in live if type(ev) is FrameObserved)
    assert added == n
    c = session.conns[1]
    assert c.meta["server"]["host"] == "example.test" and c.closed
    assert sum(c.frames) == sum(1 for cid, ev in live if cid == 1 and type(ev) is FrameObserved)
    assert any(s.request_headers for s in c.streams.values())


def test_a_full_feed_makes_the_follower_wait_not_drop(tmp_path: Path) -> None:
    path = tmp_path / "c.h2scope"
    live = _capture(path)
    feed = LiveFeed(maxsize=1)
    follower = Follower(path, feed)
    follower.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + 10
        while sum(isinstance(ev, RecordedClose) for ev in got) < 2:
            assert time.monotonic() < deadline, "the follower did not read the whole file"
            assert len(feed.batches) <= feed.maxsize
            got += _drain(feed)
            time.sleep(0.001)
    finally:
        follower.stop()
    assert [ev.conn_id for ev in got if isinstance(ev, RecordedClose)] == [1, 2]
    assert len(_frames(got)) == sum(1 for _, ev in live if type(ev) is FrameObserved)


def test_garbage_in_the_file_stops_the_follower_with_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "c.h2scope"
    _capture(path)
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"\x00" * 64)
    feed = LiveFeed()
    follower = Follower(path, feed)
    try:
        follower.poll()
        follower.poll()
    finally:
        follower.stop()
    assert follower.broken == f"no record at byte offset {size} of the session's capture"


def test_payloads_capped_by_the_capture_are_marked_live_and_offline(tmp_path: Path) -> None:
    """record.max_data_bytes: the frames read as zero-padded (flow control stays
    exact) but the views must not pass the zeros off as the body."""
    path = tmp_path / "capped.h2scope"
    with CaptureWriter(path, autoflush=False, max_data_bytes=5) as writer:
        live = record_session(writer, 1).live
    full = {ev.seq: ev.frame for c, ev in live if type(ev) is FrameObserved}
    followed, _ = _followed(path)

    capture = CaptureFile(path)
    viewed = Session(capture)
    try:
        load(viewed, capture)
        for session in (followed, viewed):
            t = session.table
            data_rows = [r for r in range(len(t)) if t.type[r] == 0 and t.length[r] > 5]
            assert data_rows and set(data_rows) <= set(session.capped)
            # five bytes of data kept, after the pad length byte of a padded frame
            assert all(session.capped[r] == 5 + (t.event(r).frame.pad_length is not None)
                       for r in data_rows)
            st = next(s for s in session.conns[1].streams.values()
                      if any(r in session.capped for r in s.rows))
            body = reassemble(session, st, 1)
            assert body.truncated
            sent = b"".join(full[t.seq[r]].data for r in st.rows  # type: ignore[attr-defined]
                            if t.type[r] == 0 and t.direction[r] == 1)
            assert len(body.raw) < len(sent) and sent.startswith(body.raw[:5])
            text = decoded(session, data_rows[0], t.event(data_rows[0])).plain
            assert f"only the first {session.capped[data_rows[0]]} of" in text
    finally:
        capture.close()


def _follow_growing(tmp_path: Path, scenario: Any) -> tuple[Any, Path, int]:
    """``h2scope view --follow`` on a capture that holds one connection and that
    ``scenario(app, pilot, until, grow)`` may make grow: ``await grow()`` records a
    second connection and returns its frame count. Returns (app, path, frames of
    the first connection)."""
    import asyncio

    from ui.launch import follow_app

    path = tmp_path / "growing.h2scope"
    writer = CaptureWriter(path, autoflush=False)
    first = record_session(writer, 1).live
    writer.flush()
    n1 = sum(1 for _, ev in first if type(ev) is FrameObserved)
    app = follow_app(path)

    async def grow() -> int:
        second = record_session(writer, 2, t0=2000.0).live
        writer.flush()
        return sum(1 for _, ev in second if type(ev) is FrameObserved)

    async def main() -> None:
        async with app.run_test(size=(160, 40)) as pilot:
            loop = asyncio.get_running_loop()

            async def until(cond: Any, what: str) -> None:
                deadline = loop.time() + 20
                while not cond():
                    assert loop.time() < deadline, f"timed out waiting for {what}"
                    await pilot.pause(0.05)
            await until(lambda: len(app.session.table) == n1, "the first connection")
            await scenario(app, pilot, until, grow)
            await pilot.press("q")
            await pilot.pause()

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        writer.close()
    return app, path, n1


def test_view_follow_shows_a_capture_as_another_program_writes_it(tmp_path: Path) -> None:
    """``h2scope view --follow FILE``: rows appear as the file grows; quitting
    leaves the file alone; the record key explains itself."""
    seen: dict[str, Any] = {}

    async def scenario(app: Any, pilot: Any, until: Any, grow: Any) -> None:
        seen["status"] = app.status.plain
        n1 = len(app.session.table)
        n2 = await grow()
        await until(lambda: len(app.session.table) == n1 + n2, "the second connection")
        seen["conns"] = sorted(app.session.conns)
        await pilot.press("r")
        await pilot.pause()
        seen["record"] = app.message

    app, path, _ = _follow_growing(tmp_path, scenario)
    assert seen["status"].startswith(f"following {path}")
    assert seen["conns"] == [1, 2]
    assert "is recorded by the program writing it" in seen["record"]
    assert app.return_code == 0 and path.exists()


def test_a_paused_view_holds_still_and_shows_what_came_meanwhile_on_resume(
        tmp_path: Path) -> None:
    """Pause (space) freezes the view, not the capture: a connection recorded
    while paused is counted in the status bar, then shown whole on resume."""
    seen: dict[str, Any] = {}

    async def scenario(app: Any, pilot: Any, until: Any, grow: Any) -> None:
        n1 = len(app.session.table)
        await pilot.press("space")
        seen["said"] = app.message
        n2 = await grow()
        await until(lambda: f"PAUSED ({n2} new frames waiting)" in app.status.plain,
                    "the status bar to count the frames waiting")
        await pilot.pause(0.3)  # (several ingest ticks: none may take anything)
        seen["paused"] = (len(app.session.table), sorted(app.session.conns))
        await pilot.press("space")
        await until(lambda: len(app.session.table) == n1 + n2, "the frames that waited")
        seen["resumed"] = (sorted(app.session.conns), app.status.plain)

    app, path, n1 = _follow_growing(tmp_path, scenario)
    assert "paused" in seen["said"] and "records on" in seen["said"]
    assert seen["paused"] == (n1, [1])
    conns, status = seen["resumed"]
    assert conns == [1, 2] and "PAUSED" not in status
    followed, _ = _followed(path)  # the same session as one that was never paused
    assert [c.frames for c in app.session.conns.values()] == \
        [c.frames for c in followed.conns.values()]
    assert app.session.conns[2].closed and app.session.conns[2].streams.keys() == \
        followed.conns[2].streams.keys()


def test_a_connection_the_proxy_failed_shows_why_live_and_offline(tmp_path: Path) -> None:
    """A client that rejected h2scope's certificate: the recorder keeps the proxy's
    error (with its hint) in the CLOSE record; both readers show it in the row."""
    from tests.unit.ui.traffic import failed_connection
    from ui.widgets.panes import COLUMNS, conn_cells

    path = failed_connection(tmp_path / "failed.h2scope")
    for session in both_readers(path):
        c = session.conns[7]
        assert c.state == "failed"
        assert c.note == ("client-tls: the client rejected h2scope's certificate "
                          "(TLSV1_ALERT_UNKNOWN_CA) (run `h2scope ca install-hints`)")
        cells = dict(zip(COLUMNS, conn_cells(c), strict=True))
        assert str(cells["state"]) == "failed"
        assert str(cells["note"]).startswith("client-tls: the client rejected")


def test_a_record_that_does_not_decode_stops_the_follower_and_says_where(
        tmp_path: Path) -> None:
    from proxy.capture.format import RecordType

    path = tmp_path / "bad.h2scope"
    with CaptureWriter(path, autoflush=False) as writer:
        record_session(writer, 1)
        writer._append(int(RecordType.CONNECTION), 0, 2, 5.0, None, b"{not json")
    follower = Follower(path, LiveFeed())
    follower.start()
    try:
        follower.thread.join(10)
        assert not follower.thread.is_alive()
    finally:
        follower.stop()
    assert follower.broken is not None
    assert follower.broken.startswith("a record after byte ")
    assert "of the session's capture does not read" in follower.broken


def test_the_status_poll_notices_when_recording_slows_the_proxy(
        monkeypatch: Any, tmp_path: Path) -> None:
    """The UI asks the proxy's process how long it waited for the disk; while that
    grows, the status bar says the disk slows the proxy down."""
    import ui.model.follow as follow
    from proxy.config import Config

    monkeypatch.setattr(follow, "STATUS_EVERY", 0.01)
    child = follow.ChildProxy(Config(confdir=tmp_path), feed=LiveFeed())
    answers = iter([0.0, 0.0, 0.8, 0.8])

    def command(line: str, timeout: float = 1.0) -> dict[str, Any]:
        assert line == "status"
        try:
            return {"disk_wait": next(answers)}
        except StopIteration:
            child._stopping = True
            return {"disk_wait": 0.8}
    child._command = command  # type: ignore[method-assign]
    assert not child.disk_slows()
    child._poll_status()
    assert child.disk_wait == 0.8 and child.disk_slows()
    child.disk_slowed_at -= follow.DISK_NOTE  # and some seconds later, nothing more
    assert not child.disk_slows()
