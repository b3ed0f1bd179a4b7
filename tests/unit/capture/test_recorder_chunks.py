"""The recorder on reads split anywhere (the relay forwards whatever arrived), and the
writer's split of work between the appending thread and its background thread."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from proxy.capture import writer as writer_module
from proxy.capture.format import RecordFlag, RecordType
from proxy.capture.reader import CaptureReader
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.replay import replay_observer
from proxy.capture.writer import DEFER_BODY, HARD_LIMIT_FACTOR, CaptureWriter
from proxy.events import Batch, Closer, ConnectionClosed, RelayStarted
from proxy.net.context import Observer
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import Event, FrameObserved
from proxy.observe.framer import FrameSplitter
from proxy.observe.frames import DataFrame
from tests.unit.capture.traffic import Session, record_session

GARBAGE = b"\xff\xff\xff\xfe\x00\x00\x00\x00\x01 not HTTP/2 any more"


def _chunks(tmp_path: Path) -> list[tuple[Direction, bytes]]:
    with CaptureWriter(tmp_path / "scratch.h2scope") as w:
        return record_session(w, 1, session=Session(), close=False).chunks


def _relay(chunks: list[tuple[Direction, bytes]], rng: random.Random,
           observer: Observer | None = None) -> tuple[list[Batch], list[Event]]:
    """Batches as the relay publishes them, every chunk cut at random points."""
    cid, t = 3, 1_700_000_000.0
    batches = [Batch(conn_id=cid, t=t, events=(RelayStarted(conn_id=cid, t=t, protocol="h2",
                                                            target="example.test:443"),))]
    if observer is None:
        observer = ConnectionObserver(preface="required")
    live: list[Event] = []
    for direction, data in chunks:
        pos = 0
        while pos < len(data):
            step = rng.choice((1, 7, 40, 1000, 20000))
            t += 0.001
            part = data[pos:pos + step]
            pos += step
            events = observer.feed(direction, part, t)
            live += events
            batches.append(Batch(conn_id=cid, t=t, events=tuple(events), direction=direction,
                                 data=part, protocol="h2"))
    t += 0.001
    closing = observer.close(t, "client")  # (as the relay: who closed, below)
    live += closing
    if closing:  # as the relay: nothing is published for no events
        batches.append(Batch(conn_id=cid, t=t, events=tuple(closing), direction=Direction.C2S,
                             data=b"", protocol="h2"))
    batches.append(Batch(conn_id=cid, t=t, events=(ConnectionClosed(
        conn_id=cid, t=t, closed_by=Closer.CLIENT, reason="client closed"),)))
    return batches, live


def _record(path: Path, batches: list[Batch], **kw: object) -> list:
    recorder = CaptureRecorder(CaptureWriter(path, **kw))  # type: ignore[arg-type]
    for b in batches:
        recorder.consume(b)
    recorder.close()
    with CaptureReader(path) as reader:
        return list(reader.records())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reads_split_anywhere_record_every_byte_and_replay_the_live_events(
        tmp_path: Path, seed: int) -> None:
    chunks = _chunks(tmp_path)
    batches, live = _relay(chunks, random.Random(seed))
    path = tmp_path / "split.h2scope"
    records = _record(path, batches)
    assert [ev for _, ev in replay_observer(path)] == live
    stored: dict[int, bytearray] = {0: bytearray(), 1: bytearray()}
    for r in records:
        if r.type in (RecordType.FRAME, RecordType.RAW):
            stored[r.flags & RecordFlag.S2C].extend(r.body)
    for d in (Direction.C2S, Direction.S2C):
        assert bytes(stored[d]) == b"".join(c for dd, c in chunks if dd == d)


def test_a_direction_that_desyncs_mid_read_keeps_its_bytes_from_there_on(
        tmp_path: Path) -> None:
    chunks = _chunks(tmp_path)
    d0, first = chunks[0]
    chunks = [(d0, first + GARBAGE[:5]), (d0, GARBAGE[5:]), *chunks[1:]]
    batches, live = _relay(chunks, random.Random(4))
    path = tmp_path / "desync.h2scope"
    records = _record(path, batches)
    assert [ev for _, ev in replay_observer(path)] == live
    c2s = b"".join(r.body for r in records if r.type in (RecordType.FRAME, RecordType.RAW)
                   and not r.flags & RecordFlag.S2C)
    assert c2s == b"".join(c for d, c in chunks if d == Direction.C2S)


def _records(records: list) -> list[tuple]:
    """What two recordings of the same traffic share (the END record's time is the
    writer's own clock, at closing)."""
    return [(r.type, r.flags, r.conn_id, r.seq, r.t, r.body) for r in records
            if r.type != RecordType.END]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("damage", ["none", "garbage", "cut"])
def test_a_proxy_that_only_cuts_frames_records_the_capture_a_decoding_one_does(
        tmp_path: Path, seed: int, damage: str) -> None:
    """The live UI's proxy process (``decode=False``) frames with FrameSplitter: its
    capture must be the one the full observer's events give, record for record,
    whatever the reads, bytes that stop being HTTP/2, or a frame cut short."""
    chunks = _chunks(tmp_path)
    if damage == "garbage":
        d0, first = chunks[0]
        chunks = [(d0, first + GARBAGE[:5]), (d0, GARBAGE[5:]), *chunks[1:]]
    elif damage == "cut":
        d, last = chunks[-1]
        chunks = [*chunks[:-1], (d, last[:-3])]
    decoded, live = _relay(chunks, random.Random(seed))
    cut, _ = _relay(chunks, random.Random(seed), FrameSplitter(preface="required"))
    by_observer = _record(tmp_path / "decoded.h2scope", decoded)
    by_splitter = _record(tmp_path / "cut.h2scope", cut)
    assert _records(by_splitter) == _records(by_observer)
    assert [ev for _, ev in replay_observer(tmp_path / "cut.h2scope")] == live


def test_the_splitter_desyncs_where_the_observer_does() -> None:
    """Bytes that are not HTTP/2: the same Desynced (offset, finding) from both."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = bytes.fromhex("000000040000000000")
    cases = [
        (Direction.C2S, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
        (Direction.C2S, preface + GARBAGE),
        (Direction.S2C, GARBAGE),
        (Direction.C2S, preface + settings + bytes.fromhex("ffff00ee0000000001") + bytes(64)),
    ]
    for direction, data in cases:
        observer, splitter = ConnectionObserver(preface="required"), FrameSplitter()
        for i in range(0, len(data), 5):
            want = [e for e in observer.feed(direction, data[i:i + 5], 1.0)
                    if type(e).__name__ == "Desynced"]
            got = [e for e in splitter.feed(direction, data[i:i + 5], 1.0)
                   if type(e).__name__ == "Desynced"]
            assert got == want, (data, i)


def test_the_splitter_follows_a_larger_max_frame_size() -> None:
    """A receiver that accepts 64 KiB frames: a 40,000-byte unknown frame is a frame."""
    settings = bytes.fromhex("000006040000000000") + bytes.fromhex("000500010000")
    big = (40_000).to_bytes(3, "big") + bytes.fromhex("ee0000000001") + bytes(40_000)
    splitter = FrameSplitter()
    splitter.feed(Direction.S2C, settings, 1.0)  # the server accepts 65,536
    events = splitter.feed(Direction.C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                           + bytes.fromhex("000000040000000000") + big, 2.0)
    frames = [f for e in events for f in getattr(e, "frames", ())]
    assert frames[-1] == big and not any(type(e).__name__ == "Desynced" for e in events)
    assert FrameSplitter().feed(Direction.S2C, big, 1.0)[0].finding.code == "desynced"


def test_capped_data_in_split_reads_replays_like_the_live_connection(tmp_path: Path) -> None:
    batches, live = _relay(_chunks(tmp_path), random.Random(5))
    path = tmp_path / "capped.h2scope"
    records = _record(path, batches, max_data_bytes=100)
    assert any(r.flags & RecordFlag.TRUNCATED for r in records)
    replayed = [ev for _, ev in replay_observer(path)]
    assert len(replayed) == len(live)
    for a, b in zip(replayed, live, strict=True):
        if isinstance(b, FrameObserved) and isinstance(b.frame, DataFrame):
            assert isinstance(a, FrameObserved)  # the payload is zero-padded past the cap
            assert (a.windows, a.findings, a.frame.length, a.frame.raw[:109]) == (
                b.windows, b.findings, b.frame.length, b.frame.raw[:109])
        else:
            assert a == b


def test_frames_writes_the_records_frame_would(tmp_path: Path) -> None:
    big = bytes.fromhex("004e20000000000001") + bytes(20000)  # DATA: its CRC is deferred
    small = bytes.fromhex("000008060000000000") + b"pingpong"
    items = [(small, 1.0), (big, 2.0), (small, 3.0), (big, 4.0)]
    assert len(big) >= DEFER_BODY > len(small)
    got = []
    for name, cap in (("one", None), ("many", None), ("one-capped", 50), ("many-capped", 50)):
        path = tmp_path / f"{name}.h2scope"
        with CaptureWriter(path, max_data_bytes=cap) as w:
            if name.startswith("one"):
                for raw, t in items:
                    w.frame(2, Direction.S2C, raw, t=t, wall=9.0)
            else:
                w.frames(2, Direction.S2C, items, wall=9.0)
        with CaptureReader(path) as reader:
            got.append([(r.type, r.flags, r.conn_id, r.seq, r.t, r.wall, r.body)
                        for r in reader.records() if r.type != RecordType.END])
            assert reader.clean_end and not reader.problems
    assert got[0] == got[1] and got[2] == got[3]
    assert [r[-1] for r in got[0]] == [raw for raw, _ in items]
    assert got[2][1][1] & RecordFlag.TRUNCATED and len(got[2][1][-1]) == 9 + 50


def test_the_background_thread_writes_the_buffer_so_the_appender_does_not_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writers: list[str] = []
    real = writer_module.os.writev

    def writev(fd: int, buffers: list[bytes]) -> int:
        writers.append(threading.current_thread().name)
        return real(fd, buffers)

    monkeypatch.setattr(writer_module.os, "writev", writev)
    limit = 64 * 1024
    path = tmp_path / "bg.h2scope"
    w = CaptureWriter(path, buffer_limit=limit, flush_interval=30)  # only woken by size
    data = bytes.fromhex("001f40000000000001") + bytes(8000)
    peak = 0
    for i in range(200):  # 1.6 MB, 25 × the limit
        w.frame(1, Direction.S2C, data, t=float(i))
        peak = max(peak, w.pending_bytes)
        time.sleep(0.0005)  # a relay waits for its sockets: other threads run meanwhile
    deadline = time.monotonic() + 10
    while w.pending_bytes >= limit // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writers and set(writers) == {"capture-flush"}
    assert peak < limit * HARD_LIMIT_FACTOR + len(data) + 40
    w.close()
    with CaptureReader(path) as reader:
        frames = [r for r in reader.records() if r.type == RecordType.FRAME]
        assert not reader.problems
    assert len(frames) == 200 and all(r.body == data for r in frames)


def test_an_http1_message_published_with_its_bytes_gets_its_http1_record(
        tmp_path: Path) -> None:
    """The HTTP/1.1 relay publishes a message's event with its last bytes (a chunk
    batch): the bytes become RAW records and the message an HTTP1 record after
    them, which is what `view`, the text export and the UI list."""
    from proxy.capture.format import RecordType
    from proxy.capture.reader import CaptureReader
    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.writer import CaptureWriter
    from proxy.events import Batch, ConnectionOpened, Http1MessageObserved
    from proxy.observe.enums import Direction

    request = b"GET /x HTTP/1.1\r\nhost: example.test\r\n\r\n"
    message = Http1MessageObserved(
        conn_id=4, t=2.0, direction=Direction.C2S, start_line="GET /x HTTP/1.1",
        headers=(("host", "example.test"),), head_size=len(request), body_size=0,
        started=1.5, duration=0.5)
    path = tmp_path / "h1.h2scope"
    with CaptureWriter(path, autoflush=False) as writer:
        recorder = CaptureRecorder(writer)
        recorder.consume(Batch(conn_id=4, t=1.0, events=(ConnectionOpened(
            conn_id=4, t=1.0, client=("127.0.0.1", 40000), mode="regular", target=None),)))
        recorder.consume(Batch(conn_id=4, t=2.0, events=(message,), direction=Direction.C2S,
                               data=request, protocol="http/1.1"))
    with CaptureReader(path) as reader:
        records = [r for r in reader.records() if r.conn_id == 4]
    types = [r.type for r in records]
    assert types == [RecordType.CONNECTION, RecordType.RAW, RecordType.HTTP1]
    head, body = records[2].http1()
    assert head == request and body == b""
    assert records[1].body == request
