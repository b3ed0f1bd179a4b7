"""The capture behind a live session (ui/model/backing.py): every frame read back by
its record's offset, saving the session so far, cleaning up.

The batches are the ones the proxy would publish: each record of a real h2
capture (two interleaved connections) with the observer events it produced,
fed at once to the session's recorder and to the UI's ingest.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from proxy.capture.format import RecordFlag, RecordType
from proxy.capture.index import CaptureIndex
from proxy.capture.reader import CaptureReader
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.events import Batch
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.unit.ui.conftest import drive
from tests.unit.ui.traffic import record
from ui.app import H2ScopeApp
from ui.model.backing import TEMP_NAME, CaptureFrames, FrameOffsets, SessionCapture
from ui.model.follow import Follower
from ui.model.live import LiveFeed, ingest
from ui.model.session import Session
from ui.screens.prompt import Prompt


def _interleaved(path: Path) -> list[Batch]:
    """The chunk batches of ``path``, connections interleaved record by record."""
    per_conn: dict[int, list[Batch]] = {}
    for item in replay(path):
        rec = item.record
        if rec.type not in (RecordType.FRAME, RecordType.RAW):
            continue
        data = rec.frame_bytes() if rec.type == RecordType.FRAME else rec.body
        per_conn.setdefault(rec.conn_id, []).append(
            Batch(conn_id=rec.conn_id, t=rec.t, events=tuple(item.events),
                  direction=rec.direction, data=bytes(data), protocol="h2"))
    out: list[Batch] = []
    lists = list(per_conn.values())
    for i in range(max(map(len, lists))):
        out.extend(lst[i] for lst in lists if i < len(lst))
    return out


@pytest.fixture
def traffic(tmp_path: Path) -> list[Batch]:
    return _interleaved(record(tmp_path / "source.h2c", conns=2))


class _Written(SessionCapture):
    """The session's capture with its writer here (in the product it is the proxy's
    child process's): ``recorder`` is the bus sink the child runs."""

    def __init__(self, path: Path | None = None, *, autoflush: bool = True) -> None:
        temp_dir = None
        if path is None:
            temp_dir = Path(tempfile.mkdtemp(prefix="h2scope-test-"))
            path = temp_dir / TEMP_NAME
        # As the proxy's child writes it: a scratch capture's large bodies unchecked.
        self.writer = CaptureWriter(path, autoflush=autoflush, check_bodies=temp_dir is None)
        self.recorder = CaptureRecorder(self.writer)
        super().__init__(path, temp_dir=temp_dir, flush=self.writer.flush)

    def close(self) -> None:
        self.writer.close()
        super().close()


def _session(backing: _Written, batches: list[Batch]) -> tuple[Session, CaptureFrames]:
    """The proxy's child records ``batches``; the UI follows the file, as live."""
    for batch in batches:
        backing.recorder.consume(batch)
    backing.writer.flush()  # (the proxy's process flushes every 50 ms)
    feed = LiveFeed(maxsize=1 << 20)
    follower = Follower(backing.path, feed)
    try:
        while follower.poll():
            pass
    finally:
        follower.stop()
    frames = CaptureFrames(backing)
    session = Session(frames)
    ingest(session, frames, feed)
    return session, frames


def _expected(batches: list[Batch]) -> list[bytes]:
    return [ev.frame.raw for b in batches for ev in b.events if type(ev) is FrameObserved]


def test_every_frame_is_read_back_from_the_private_capture(traffic: list[Batch]) -> None:
    backing = _Written()
    try:
        assert backing.temporary and backing.temp_dir is not None
        assert stat.S_IMODE(os.stat(backing.temp_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(backing.path).st_mode) == 0o600
        session, frames = _session(backing, traffic)
        expected = _expected(traffic)
        t = session.table
        assert len(t) == len(expected) and len(set(t.conn)) == 2
        # Every row refers to its FRAME record: the bytes there are the frame's own.
        assert [frames.frame_bytes(t.ref[r]) for r in range(len(t))] == expected
        assert frames.forgotten == 0
    finally:
        backing.close()
    assert not backing.temp_dir.exists()
    assert frames.frame_bytes(t.ref[0]) is None  # closed: nothing to read from


def test_rows_exist_only_for_records_in_the_file_and_a_wrong_offset_reads_nothing(
        traffic: list[Batch]) -> None:
    backing = _Written()
    try:
        half = len(traffic) // 2
        session, frames = _session(backing, traffic[:half])
        t = session.table
        assert len(t) == len(_expected(traffic[:half]))
        assert frames.frame_bytes(t.ref[0] + 1) is None  # not where a record starts
        assert frames.frame_bytes(0) is None  # the file header
        with pytest.raises(TypeError, match="offset"):
            frames.add(b"")  # frames are not kept in memory here
    finally:
        backing.close()


def test_save_copies_the_session_so_far_with_an_end_record(traffic: list[Batch],
                                                            tmp_path: Path) -> None:
    backing = _Written()
    dest = tmp_path / "saved.h2scope"
    dest.write_bytes(b"old")
    dest.chmod(0o644)
    try:
        half = len(traffic) // 2
        _session(backing, traffic[:half])
        assert backing.unsaved
        backing.save(dest)
        assert not backing.unsaved  # the status bar says "saved to saved.h2scope"
        for batch in traffic[half:]:
            backing.recorder.consume(batch)
        backing.writer.flush()  # (the proxy's process flushes every 50 ms)
        assert backing.unsaved  # ... and "new traffic since" once more comes
        records = backing.save(dest)
        assert not backing.unsaved
        with pytest.raises(ValueError, match="own capture"):
            backing.save(backing.path)
    finally:
        backing.close()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with CaptureReader(dest) as reader:
        types = [r.type for r in reader.records()]
        assert reader.clean_end and not reader.problems
    assert len(types) == records + 1 and types[-1] == RecordType.END
    index = CaptureIndex.build(dest)
    try:
        assert [index.frame_record(i).frame_bytes() for i in range(len(index.offset))] \
            == _expected(traffic)
    finally:
        index.close()


def test_save_checksums_the_bodies_the_scratch_capture_left_unchecked(
        tmp_path: Path) -> None:
    """The scratch capture's large bodies carry no CRC (RecordFlag.UNCHECKED); a
    saved copy is checked like any recording: same records, every body's CRC."""
    backing = _Written()
    dest = tmp_path / "saved.h2scope"
    payloads = [bytes([i]) * size for i, size in enumerate((16_384, 100, 5_000, 2_000_000))]
    frames = [len(p).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big") + p
              for p in payloads]
    try:
        backing.writer.connection(1, {"protocol": "h2"}, t=0.0)
        backing.writer.frames(1, Direction.S2C, [(raw, 1.0) for raw in frames])
        backing.writer.flush()
        with CaptureReader(backing.path) as reader:
            scratch = [r for r in reader.records() if r.type == RecordType.FRAME]
        assert [bool(r.flags & RecordFlag.UNCHECKED) for r in scratch] == [
            True, False, True, True]
        backing.save(dest)
    finally:
        backing.close()
    with CaptureReader(dest) as reader:
        saved = [r for r in reader.records() if r.type == RecordType.FRAME]
        assert reader.clean_end and not reader.problems
    assert [r.body for r in saved] == frames
    assert [r.flags for r in saved] == [int(RecordFlag.S2C)] * 4
    assert [(r.seq, r.offset, r.wall) for r in saved] == [
        (r.seq, r.offset, r.wall) for r in scratch]
    # A damaged body in the copy is found: its CRC covers the body now.
    data = bytearray(dest.read_bytes())
    data[saved[0].offset + 40 + 5000] ^= 0xFF
    dest.write_bytes(bytes(data))
    with CaptureReader(dest) as reader:
        list(reader.records())
        assert [p.offset for p in reader.problems] == [saved[0].offset]


def test_record_file_backing_is_kept_and_closed_cleanly(traffic: list[Batch],
                                                         tmp_path: Path) -> None:
    path = tmp_path / "rec.h2scope"
    backing = _Written(path)
    assert not backing.temporary and backing.path == path
    _session(backing, traffic)
    backing.close()
    with CaptureReader(path) as reader:
        frames = sum(1 for r in reader.records() if r.type == RecordType.FRAME)
        assert reader.clean_end
    assert frames == len(_expected(traffic))


def test_offsets_scan_stops_at_an_incomplete_record_and_resumes(tmp_path: Path) -> None:
    source = record(tmp_path / "source.h2c", conns=2)
    data = source.read_bytes()
    index = CaptureIndex.build(source)
    offsets_of_frames = list(index.offset)
    index.close()
    with CaptureReader(source) as reader:
        total = sum(1 for r in reader.records() if r.type != RecordType.END)
    growing = tmp_path / "growing.h2c"
    cut = offsets_of_frames[7] + 45  # inside a FRAME record
    growing.write_bytes(data[:cut])
    offsets = FrameOffsets(growing)
    try:
        first = offsets.scan()
        assert offsets.end == offsets_of_frames[7]  # complete records only
        assert offsets.frame_at(offsets_of_frames[6]) is not None
        with open(growing, "ab") as f:
            f.write(data[cut:])
        assert first + offsets.scan() == offsets.records >= total
        assert offsets.end == len(data) and offsets.broken is None
    finally:
        offsets.close()


def test_a_file_that_is_not_a_capture_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a capture at all, no magic here")
    with pytest.raises(ValueError, match="not an h2scope capture"):
        FrameOffsets(bad)


def test_capped_payloads_read_back_zero_padded_like_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "capped.h2c"
    writer = CaptureWriter(path, max_data_bytes=4, autoflush=False)
    frame = bytes([0, 0, 10, 0, 1, 0, 0, 0, 1]) + b"0123456789"
    writer.frame(1, 1, frame, t=1.0)  # type: ignore[arg-type]
    writer.flush()
    offsets = FrameOffsets(path)
    try:
        with CaptureReader(path) as reader:
            off = next(r.offset for r in reader.records() if r.type == RecordType.FRAME)
        assert offsets.frame_at(off) == offsets.frame_at(off, 1) == frame[:13] + bytes(6)
        assert offsets.frame_at(off, 2) is None  # another connection's record: refused
    finally:
        offsets.close()
        writer.close(fsync=False)


def test_save_in_view_mode_says_it_is_for_live_sessions(capture_path: Path) -> None:
    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "save applies to a live session" in app.message
        assert not isinstance(app.screen, Prompt)
    drive(capture_path, scenario)


def test_the_ui_reads_rows_and_asks_unsaved_while_a_save_copies(
        traffic: list[Batch], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy held the capture's lock: the UI thread, which takes it for every row
    it draws and for the status bar, froze for as long as the copy took."""
    import threading

    import ui.model.backing as backing_module

    backing = _Written()
    copying, release = threading.Event(), threading.Event()
    real_copy = backing_module._copy_checked

    def slow_copy(fd: int, out: Any, end: int) -> None:
        copying.set()
        assert release.wait(10)
        real_copy(fd, out, end)
    monkeypatch.setattr(backing_module, "_copy_checked", slow_copy)
    try:
        _session(backing, traffic)
        saver = threading.Thread(target=backing.save, args=(tmp_path / "s.h2scope",))
        saver.start()
        assert copying.wait(10)
        done = threading.Event()

        def ui_thread() -> None:
            backing.frame_records()
            assert backing.unsaved
            done.set()
        threading.Thread(target=ui_thread, daemon=True).start()
        assert done.wait(2), "the UI thread waited for the copy"
        release.set()
        saver.join(10)
        assert not backing.unsaved
    finally:
        release.set()
        backing.close()


def test_captures_a_killed_ui_left_behind_are_found_but_not_one_being_written(
        tmp_path: Path) -> None:
    import os

    from certs.files import create_private
    from ui.launch import _left_behind_note
    from ui.model.backing import left_behind

    old = tmp_path / "h2scope-abc123" / "session.h2scope"
    old.parent.mkdir()
    old.write_bytes(b"x" * 2048)
    busy = tmp_path / "h2scope-def456" / "session.h2scope"
    busy.parent.mkdir()
    fd = create_private(busy, exclusive=True)  # (a running proxy's lock)
    (tmp_path / "h2scope-empty").mkdir()
    (tmp_path / "other").mkdir()
    try:
        found = left_behind(tmp_path)
    finally:
        os.close(fd)
    assert [(p, size) for p, size, _ in found] == [(old, 2048)]
    note = _left_behind_note(*found[0])
    assert note.startswith(f"an earlier session's capture was left behind (its UI was "
                           f"killed): {old} (2048 B, ")
    assert f"h2scope view {old} opens it; delete {old.parent} when done" in note
