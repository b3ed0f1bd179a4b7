"""The writer: back-pressure instead of loss, periodic flushes, unframed bytes kept."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from proxy.capture.format import RecordFlag, RecordType
from proxy.capture.index import CaptureIndex
from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay_observer
from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import Desynced, FrameObserved
from tests.unit.capture.traffic import META

PING = bytes.fromhex("000008060000000000") + b"12345678"
SETTINGS = bytes.fromhex("000000040000000000")


def _records(path: Path) -> list:
    with CaptureReader(path) as reader:
        return list(reader.records())


def test_buffer_never_exceeds_its_limit_by_more_than_one_record(tmp_path: Path) -> None:
    path = tmp_path / "bp.h2scope"
    writer = CaptureWriter(path, buffer_limit=4096, autoflush=False)
    peak = 0
    for i in range(2000):
        writer.frame(1, Direction.C2S, PING, t=float(i))
        peak = max(peak, writer.pending_bytes)
    assert peak < 4096 + 40 + len(PING)
    assert path.stat().st_size > 2000 * 40  # the producer wrote it itself: nothing dropped
    writer.close()
    assert sum(1 for r in _records(path) if r.type == RecordType.FRAME) == 2000


def test_drain_awaits_the_disk_when_the_buffer_is_full(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "drain.h2scope", buffer_limit=1 << 20, autoflush=False)

    async def produce() -> int:
        peak = 0
        for i in range(5000):
            if writer.full:
                await writer.drain()
                assert not writer.full
            writer.frame(1, Direction.C2S, PING + bytes(200), t=float(i))
            peak = max(peak, writer.pending_bytes)
        return peak

    assert asyncio.run(produce()) <= (1 << 20) + 300
    writer.close()


def test_background_flush_puts_records_on_disk_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "periodic.h2scope"
    writer = CaptureWriter(path, flush_interval=0.1)
    try:
        writer.frame(1, Direction.C2S, PING, t=1.0)
        deadline = time.monotonic() + 5
        while writer.pending_bytes and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.pending_bytes == 0
        assert [r.body for r in _records(path) if r.type == RecordType.FRAME] == [PING]
    finally:
        writer.close()


def test_a_failed_background_flush_makes_the_next_append_raise(tmp_path: Path) -> None:
    """A full disk seen by the flushing thread must reach the producer at once (its
    sink then fails and says so), not after the buffer has grown to its limit."""
    path = tmp_path / "full.h2scope"
    writer = CaptureWriter(path, flush_interval=0.05)
    real_writev = writer._writev

    def disk_full(iov: object) -> None:
        raise OSError(28, "No space left on device")
    writer._writev = disk_full  # type: ignore[method-assign]
    try:
        writer.frame(1, Direction.C2S, PING, t=1.0)
        deadline = time.monotonic() + 5
        while writer._failed is None:
            assert time.monotonic() < deadline, "the background flush did not run"
            time.sleep(0.01)
        with pytest.raises(OSError, match="No space left on device") as raised:
            writer.frame(1, Direction.C2S, PING, t=2.0)
        assert raised.value.errno == 28 and raised.value.filename == str(path)
        with pytest.raises(OSError):
            writer.frames(1, Direction.C2S, [(PING, 3.0)])
    finally:
        writer._writev = real_writev  # type: ignore[method-assign]
        with pytest.raises(OSError, match="No space left"):
            writer.close(fsync=False)  # says so again, and closes the file all the same
        writer.close()  # idempotent
    assert writer._closed


def test_appending_after_close_raises(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "c.h2scope")
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.frame(1, Direction.C2S, PING, t=0.0)


def test_end_record_counts_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "end.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0)
        writer.frame(1, Direction.C2S, PING, t=0.0)
        writer.lost(1, count=3, reason="ui queue full", t=0.0)
    end = _records(path)[-1]
    assert end.type == RecordType.END
    assert end.json()["counts"] == {"CONNECTION": 1, "FRAME": 1, "LOST": 1}


def test_desynced_bytes_are_recorded_raw_and_replay_the_same_desync(tmp_path: Path) -> None:
    path = tmp_path / "desync.h2scope"
    garbage = b"\xff\xff\xff\xfe\x00\x00\x00\x00\x01this is not http/2 at all"
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, META, t=0.0)
        live = tap.feed(Direction.C2S, CONNECTION_PREFACE + SETTINGS + PING[:5], 1.0)
        live += tap.feed(Direction.C2S, PING[5:] + garbage[:4], 2.0)
        live += tap.feed(Direction.C2S, garbage[4:], 3.0)
        live += tap.feed(Direction.C2S, b"more after the desync", 4.0)
        live += tap.close(5.0)
    assert any(isinstance(e, Desynced) for e in live)
    assert [e for _, e in replay_observer(path)] == live
    raws = [r for r in _records(path) if r.type == RecordType.RAW]
    assert raws[0].body == CONNECTION_PREFACE and raws[0].flags & RecordFlag.PREFACE
    assert b"".join(r.body for r in raws[1:]) == garbage + b"more after the desync"


def test_incomplete_frame_at_close_replays_the_same_findings(tmp_path: Path) -> None:
    path = tmp_path / "cut.h2scope"
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, META, t=0.0)
        live = tap.feed(Direction.C2S, CONNECTION_PREFACE + SETTINGS + PING[:12], 1.0)
        live += tap.feed(Direction.S2C, SETTINGS[:4], 1.5)
        live += tap.close(2.0, closed_by="server", error="connection reset")
    codes = [getattr(getattr(e, "finding", None), "code", None) for e in live]
    assert codes.count("frame-truncated") == 2
    assert [e for _, e in replay_observer(path)] == live
    close = next(r for r in _records(path) if r.type == RecordType.CLOSE)
    assert close.json() == {"closed_by": "server", "error": "connection reset",
                            "bytes_c2s": len(CONNECTION_PREFACE + SETTINGS) + 12,
                            "bytes_s2c": 4}


def test_h2c_upgrade_and_http1_records_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "h2c.h2scope"
    settings = bytes.fromhex("000300000064")
    req = ((":method", "GET"), (":path", "/"), (":authority", "a"), (":scheme", "http"))
    with CaptureWriter(path) as writer:
        writer.connection(2, {"protocol": "http/1.1"}, t=0.0)
        writer.http1(2, Direction.C2S, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", t=0.1)
        writer.http1(2, Direction.S2C, b"HTTP/1.1 200 OK\r\n\r\n", b"hi", t=0.2)
        tap = RecordingObserver(writer, 1, {"protocol": "h2c"}, t=0.0)
        live = tap.upgrade_h2c(http2_settings=settings, request_headers=req, t=0.5)
        live += tap.feed(Direction.C2S, CONNECTION_PREFACE + SETTINGS, 1.0)
        live += tap.feed(Direction.S2C, SETTINGS + bytes.fromhex("000001010500000001") + b"\x88",
                         1.1)
        live += tap.close(2.0)
    events = list(replay_observer(path))
    assert [e for c, e in events if c == 1] == live
    assert all(c == 1 for c, _ in events)  # the HTTP/1 connection has no observer
    h1 = [r.http1() for r in _records(path) if r.type == RecordType.HTTP1]
    assert h1[1] == (b"HTTP/1.1 200 OK\r\n\r\n", b"hi")
    assert any(isinstance(e, FrameObserved) and e.block is not None for e in live)


def test_a_slow_disk_is_counted_and_the_recorder_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Back-pressure from the disk is never silent: the writer counts the time its
    producer waited, and the recorder logs a warning (the console shows it)."""
    from proxy.capture.recorder import CaptureRecorder
    from proxy.events import Batch

    writer = CaptureWriter(tmp_path / "slow.h2scope", buffer_limit=1024, autoflush=False)
    real = writer._writev

    def slow(iov: list[bytes | bytearray]) -> None:
        time.sleep(0.3)
        real(iov)
    writer._writev = slow  # type: ignore[method-assign]
    recorder = CaptureRecorder(writer)
    big = bytes(9) + bytes(2000)  # one DATA-sized frame's worth of bytes, past the limit
    try:
        with caplog.at_level("WARNING", logger="h2scope.capture"):
            for n in range(3):
                writer.raw(1, Direction.C2S, big, t=float(n))
                asyncio.run(recorder.handle_many([Batch(conn_id=1, t=float(n), events=())]))
    finally:
        writer._writev = real  # type: ignore[method-assign]
        writer.close(fsync=False)
    assert writer.waited >= 0.5
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once per 10 s, not once per wait
    assert warnings[0].startswith("recording slows the proxy down: it waited ")
    assert "nothing is lost" in warnings[0]


def _data_frame(stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + b"\x00\x00" + stream.to_bytes(4, "big") + payload


@pytest.mark.parametrize("appender", ["frames", "frame"])
def test_an_unchecked_writer_checksums_large_bodies_headers_only(tmp_path: Path,
                                                                 appender: str) -> None:
    """The live UI's scratch capture: a large body's CRC covers its record header
    only (flagged UNCHECKED); small records and every reader stay as they were."""
    path = tmp_path / "scratch.h2scope"
    big = _data_frame(1, bytes(range(256)) * 64)  # 16 KiB payload
    sent = [PING, big, SETTINGS, _data_frame(1, b"x" * 100), big]
    with CaptureWriter(path, check_bodies=False) as writer:
        if appender == "frames":
            writer.frames(1, Direction.S2C, [(raw, float(i)) for i, raw in enumerate(sent)])
        else:
            for i, raw in enumerate(sent):
                writer.frame(1, Direction.S2C, raw, t=float(i))
    with CaptureReader(path) as reader:
        frames = [r for r in reader.records() if r.type == RecordType.FRAME]
        assert not reader.problems and reader.clean_end
    assert [r.body for r in frames] == sent
    assert [bool(r.flags & RecordFlag.UNCHECKED) for r in frames] == [
        len(raw) >= 4096 for raw in sent]
    assert all(r.flags & RecordFlag.S2C for r in frames)
    with CaptureIndex.build(path, verify=True) as index:
        assert len(index.offset) == len(sent) and not index.problems

    # Damage in an unchecked record's header is still found (the CRC covers it).
    data = bytearray(path.read_bytes())
    data[frames[1].offset + 12] ^= 0x01  # a byte of its connection id
    bad = tmp_path / "bad.h2scope"
    bad.write_bytes(bytes(data))
    with CaptureReader(bad) as reader:
        assert [r.seq for r in reader.records() if r.type == RecordType.FRAME] == [
            frames[i].seq for i in (0, 2, 3, 4)]
        assert [p.offset for p in reader.problems] == [frames[1].offset]


def test_a_checked_writer_never_flags_a_record_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "rec.h2scope"
    with CaptureWriter(path) as writer:
        writer.frame(1, Direction.S2C, _data_frame(1, b"y" * 16384), t=0.0)
    (rec,) = [r for r in _records(path) if r.type == RecordType.FRAME]
    assert not rec.flags & RecordFlag.UNCHECKED


def test_a_capture_being_written_cannot_be_opened_by_a_second_writer(
        tmp_path: Path) -> None:
    """Two recorders on one file (two proxies given the same --record) truncated
    each other's records and interleaved theirs; the second now fails, before it
    touches the file, and the first's capture reads whole."""
    import errno

    from proxy.cli import main

    path = tmp_path / "shared.h2scope"
    first = CaptureWriter(path, autoflush=False)
    first.raw(1, Direction.C2S, b"first writer", t=1.0)
    first.flush()
    size = path.stat().st_size
    with pytest.raises(OSError) as refused:
        CaptureWriter(path)
    assert refused.value.errno == errno.EBUSY
    assert "another program is writing it" in str(refused.value)
    assert path.stat().st_size == size  # (not truncated by the attempt)
    assert main(["run", "--headless", "-p", "0", "--confdir", str(tmp_path / "conf"),
                 "--record", str(path)]) == 1  # (the proxy cannot start)
    first.close()
    with CaptureReader(path) as reader:
        assert [r.body for r in reader.records() if r.type == RecordType.RAW] == \
            [b"first writer"]
    CaptureWriter(path).close()  # free again once the first writer closed
