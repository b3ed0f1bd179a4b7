"""A capture read back reproduces exactly what the live observer saw."""

from __future__ import annotations

import gzip
import os
import random
import stat
from pathlib import Path

from proxy.capture.format import RecordType
from proxy.capture.index import CaptureIndex
from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay_observer
from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.events import FrameObserved
from tests.unit.capture.traffic import META, Session, record_session


def test_replayed_events_equal_the_live_events(recorded: tuple[Path, Session]) -> None:
    path, session = recorded
    replayed = list(replay_observer(path))
    assert len(replayed) == len(session.live) > 80
    assert replayed == session.live


def test_capture_holds_every_relayed_byte_in_order(recorded: tuple[Path, Session]) -> None:
    path, session = recorded
    with CaptureReader(path) as reader:
        per_direction: dict[tuple[int, int], bytearray] = {}
        for rec in reader.records():
            if rec.type in (RecordType.FRAME, RecordType.RAW):
                per_direction.setdefault((rec.conn_id, rec.direction), bytearray()).extend(
                    rec.body)
        assert reader.problems == []
        assert reader.clean_end
    relayed: dict[tuple[int, int], bytearray] = {}
    conn = 1
    for i, (direction, chunk) in enumerate(session.chunks):
        if i and direction == 0 and chunk.startswith(b"PRI * HTTP/2.0"):
            conn = 2
        relayed.setdefault((conn, direction), bytearray()).extend(chunk)
    assert per_direction == relayed


def test_random_split_points_record_the_same_capture(tmp_path: Path) -> None:
    whole = tmp_path / "whole.h2scope"
    with CaptureWriter(whole) as writer:
        session = record_session(writer, 1)
    rng = random.Random(7)
    split = tmp_path / "split.h2scope"
    with CaptureWriter(split) as writer:
        tap = RecordingObserver(writer, 1, META, t=1000.0)
        live = []
        for n, (direction, chunk) in enumerate(session.chunks):
            pos = 0
            while pos < len(chunk):
                step = rng.randint(1, 40)
                live += tap.feed(direction, chunk[pos:pos + step], 1000.0 + n)
                pos += step
        live += tap.close(5000.0, closed_by="client")
    frames_live = [ev.frame.raw for ev in live if isinstance(ev, FrameObserved)]
    frames_read = [ev.frame.raw for _, ev in replay_observer(split)
                   if isinstance(ev, FrameObserved)]
    assert frames_read == frames_live
    assert [type(e).__name__ for _, e in replay_observer(split)] == \
        [type(e).__name__ for e in live]


def test_header_records_format_version_and_config(recorded: tuple[Path, Session]) -> None:
    path, _ = recorded
    with CaptureReader(path) as reader:
        h = reader.header
        conns = [r.json() for r in reader.records() if r.type == RecordType.CONNECTION]
    assert h.version == 1
    assert h.h2scope
    assert h.config == {"listen": "127.0.0.1:0"}
    assert h.started > 1e9
    assert conns[0]["sni"] == "example.test"
    assert conns[0]["client_tls"]["alpn"] == "h2"
    assert conns[0]["observer"] == {"preface": "required"}


def test_capture_file_is_private(recorded: tuple[Path, Session]) -> None:
    path, _ = recorded
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_existing_file_is_made_private_when_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "old.h2scope"
    path.write_bytes(b"old")
    path.chmod(0o644)
    CaptureWriter(path, autoflush=False).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_gzip_capture_is_read_by_magic_not_name(recorded: tuple[Path, Session],
                                                 tmp_path: Path) -> None:
    path, session = recorded
    packed = tmp_path / "no-gz-suffix.cap"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert list(replay_observer(packed)) == session.live
    with CaptureIndex.build(packed) as index, CaptureIndex.build(path) as plain:
        assert list(index.offset) == list(plain.offset)
        assert index.frame_record(5).body == plain.frame_record(5).body


def test_index_columns_match_the_decoded_frames(recorded: tuple[Path, Session]) -> None:
    path, session = recorded
    frames = [(c, ev) for c, ev in session.live if isinstance(ev, FrameObserved)]
    with CaptureIndex.build(path) as index:
        assert len(index) == len(frames)
        for i, (conn, ev) in enumerate(frames):
            f = ev.frame
            assert (index.conn[i], index.stream[i], index.type[i], index.flags[i],
                    index.direction[i], index.length[i]) == (
                conn, f.stream_id, f.type, f.flags, int(ev.direction), f.length)
            assert index.frame(i).raw == f.raw
        assert sorted(index.connections) == [1, 2]
        assert index.connections[1].frames == len(frames) // 2
        assert index.connections[1].close_info["closed_by"] == "client"
        assert index.clean_end and not index.problems
        assert index.memory_bytes() <= 40 * len(index) + 4096


def test_index_without_crc_verification_gives_the_same_columns(
        recorded: tuple[Path, Session]) -> None:
    path, _ = recorded
    with CaptureIndex.build(path) as a, CaptureIndex.build(path, verify=False) as b:
        assert list(a.offset) == list(b.offset) and list(a.time) == list(b.time)
