"""Damaged captures: every intact record is still read, the damage is reported
by byte offset, and nothing about it is fatal."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.capture.format import RECORD_HEADER_SIZE, RecordType
from proxy.capture.index import CaptureIndex
from proxy.capture.reader import CaptureFormatError, CaptureReader, Record
from proxy.capture.replay import replay_observer
from tests.unit.capture.traffic import Session

REPO = Path(__file__).resolve().parents[3]


def _read(path: Path) -> tuple[list[Record], CaptureReader]:
    reader = CaptureReader(path)
    with reader:
        return list(reader.records()), reader


def test_torn_last_record_is_reported_and_every_complete_record_is_read(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    path, _ = recorded
    full, _ = _read(path)
    data = path.read_bytes()
    ends = {r.offset + RECORD_HEADER_SIZE + len(r.body) for r in full}
    rng = random.Random(3)
    cuts = rng.sample(range(full[0].offset + 1, len(data)), 60)
    for cut in cuts:
        torn = tmp_path / "torn.h2scope"
        torn.write_bytes(data[:cut])
        records, reader = _read(torn)
        complete = [r for r in full if r.offset + RECORD_HEADER_SIZE + len(r.body) <= cut]
        assert [r.seq for r in records] == [r.seq for r in complete], cut
        if cut in ends:
            assert reader.problems == []
        else:
            assert len(reader.problems) == 1, (cut, reader.problems)
            problem = reader.problems[0]
            assert problem.torn
            assert problem.offset == max((r.offset + RECORD_HEADER_SIZE + len(r.body)
                                          for r in complete), default=full[0].offset)
        with CaptureIndex.build(torn) as index:
            assert len(index) == sum(1 for r in complete if r.type == RecordType.FRAME)
            assert [p.offset for p in index.problems] == [p.offset for p in reader.problems]


def test_damaged_record_is_reported_by_offset_and_reading_resumes(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    path, _ = recorded
    full, _ = _read(path)
    victim = full[len(full) // 2]
    data = bytearray(path.read_bytes())
    data[victim.offset + RECORD_HEADER_SIZE + len(victim.body) // 2] ^= 0xFF
    bad = tmp_path / "bad.h2scope"
    bad.write_bytes(bytes(data))
    records, reader = _read(bad)
    assert [r.seq for r in records] == [r.seq for r in full if r.seq != victim.seq]
    assert len(reader.problems) == 1
    assert reader.problems[0].offset == victim.offset
    assert "CRC" in reader.problems[0].reason
    assert not reader.problems[0].torn
    with CaptureIndex.build(bad) as index:
        assert [p.offset for p in index.problems] == [victim.offset]


def test_damaged_length_field_is_skipped_to_the_next_valid_record(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    path, _ = recorded
    full, _ = _read(path)
    victim = full[10]
    data = bytearray(path.read_bytes())
    data[victim.offset + 4:victim.offset + 8] = (1 << 23).to_bytes(4, "big")
    bad = tmp_path / "bad-length.h2scope"
    bad.write_bytes(bytes(data))
    records, reader = _read(bad)
    assert [r.seq for r in records] == [r.seq for r in full if r.seq != victim.seq]
    assert [p.offset for p in reader.problems] == [victim.offset]


def test_a_file_that_is_not_a_capture_raises_a_clear_error(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(CaptureFormatError, match="not an h2scope capture"):
        CaptureReader(other)
    stub = tmp_path / "stub.h2scope"
    stub.write_bytes(b"H2SCOPE\n\0\1\0\0")
    with pytest.raises(CaptureFormatError, match=r"cut inside its header \(12 of its first"):
        CaptureReader(stub)
    script = tmp_path / "edited.yaml"  # (a YAML tool dropped the comment, sorted the keys)
    script.write_text("connection: 1\nframes:\n- {type: PING}\nh2scope_script: 1\n")
    with pytest.raises(CaptureFormatError, match=r"this is a frame script .* `h2scope replay"):
        CaptureReader(script)
    markdown = tmp_path / "README.md"  # a '#' line is a heading here, not a script's comment
    markdown.write_text("# h2scope\n\nAn HTTP/2 debugging proxy.\n")
    with pytest.raises(CaptureFormatError, match=r"^not an h2scope capture \(the file does "
                       r"not start with the H2SCOPE magic\)$"):
        CaptureReader(markdown)
    commented = tmp_path / "commented.yaml"  # a comment of one's own: known by its keys
    commented.write_text("# my script\nconnection: 1\nframes:\n- {type: PING}\n")
    with pytest.raises(CaptureFormatError, match=r"this is a frame script"):
        CaptureReader(commented)


WRITER_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import Direction
w = CaptureWriter(sys.argv[1], flush_interval=0.2)
w.connection(1, {"protocol": "h2"}, t=0.0)
frame = bytes.fromhex("000008060000000000") + b"pingpong"
i = 0
while True:
    w.frame(1, Direction.C2S, frame, t=float(i))
    i += 1
    if i % 100 == 0:
        print(i, flush=True)
        time.sleep(0.01)
"""


def test_kill_9_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "killed.h2scope"
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(REPO)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        written = 0
        deadline = time.monotonic() + 20
        while written < 2000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            written = int(line)
        assert written >= 2000, "the writer subprocess did not start"
        # Frames appended before this moment must be on disk within one flush interval.
        time.sleep(0.6)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    records, reader = _read(path)
    frames = [r for r in records if r.type == RecordType.FRAME]
    assert len(frames) >= written
    assert [r.t for r in frames] == [float(i) for i in range(len(frames))]
    assert not reader.clean_end
    assert all(p.torn for p in reader.problems)  # at most one torn tail, never worse
    assert len(reader.problems) <= 1
    assert sum(1 for _ in replay_observer(path)) > 0


def test_an_empty_file_and_a_capture_given_to_import_say_what_they_are(
        tmp_path: Path, recorded: tuple[Path, Session]) -> None:
    from proxy.capture.pcap import PcapError, packets

    empty = tmp_path / "empty.h2scope"
    empty.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="the file is empty"):
        CaptureReader(empty)
    path, _ = recorded
    with open(path, "rb") as f, pytest.raises(PcapError, match="already an h2scope capture"):
        list(packets(f))


def test_a_cut_or_damaged_gzip_capture_keeps_every_record_before_the_damage(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    """A half-downloaded ``.gz`` (or one with a bad byte) reads like a plain capture
    cut short: the records before the damage, then one problem naming it — in the
    streaming reader and in the UI's index alike."""
    import gzip

    path, _ = recorded
    full, _ = _read(path)
    data = gzip.compress(path.read_bytes(), mtime=0)
    cut = tmp_path / "cut.h2scope.gz"
    cut.write_bytes(data[:len(data) * 2 // 3])
    flipped = bytearray(data)
    flipped[len(data) * 2 // 3] ^= 0x55
    bad = tmp_path / "bad.h2scope.gz"
    bad.write_bytes(bytes(flipped))
    for damaged, words in ((cut, "cut short"), (bad, "")):
        records, reader = _read(damaged)
        # Every record read is an original one (after bad inflated bytes, maybe at a
        # shifted offset); all of them up to the first damage are, where they were.
        bodies = {r.body for r in full}
        assert all(r.body in bodies for r in records)
        first = reader.problems[0].offset
        assert [r.offset for r in records if r.offset < first] == \
            [r.offset for r in full if r.offset < first]
        assert len(records) >= len(full) // 3
        last = reader.problems[-1]
        # (a flipped byte: the data may inflate whole, to wrong bytes the records'
        # checksums find, and the gzip checksum then fails; or inflating stops there)
        assert ("checksum does not match" in last.reason and not last.torn) or (
            last.torn and words in last.reason and "are kept" in last.reason), last
        index = CaptureIndex.build(damaged)
        try:
            assert len(index) == len([r for r in records if r.type == RecordType.FRAME])
            assert words in index.problems[-1].reason or "checksum" in index.problems[-1].reason
        finally:
            index.close()
    # Two gzip members and zero padding after them read whole, with no problem.
    whole = tmp_path / "two.h2scope.gz"
    raw = path.read_bytes()
    whole.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]) + bytes(8))
    records, reader = _read(whole)
    assert len(records) == len(full) and not reader.problems
    # Cut inside the capture's own header: said so, not "empty".
    (tmp_path / "stub.gz").write_bytes(data[:2])
    with pytest.raises(CaptureFormatError, match="cut short"):
        CaptureReader(tmp_path / "stub.gz")


def test_a_gzip_capture_with_only_its_checksum_wrong_loses_nothing(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    """A bad CRC in the gzip trailer (zcat recovers every byte): every record is read,
    the END record too, and the problem says it is the checksum."""
    import gzip

    path, _ = recorded
    full, _ = _read(path)
    data = bytearray(gzip.compress(path.read_bytes(), mtime=0))
    data[-6] ^= 0xFF  # (the CRC-32 in the 8-byte trailer)
    bad = tmp_path / "crc.h2scope.gz"
    bad.write_bytes(bytes(data))
    records, reader = _read(bad)
    assert [r.body for r in records] == [r.body for r in full] and reader.clean_end
    (problem,) = reader.problems
    assert "checksum does not match" in problem.reason and not problem.torn


def test_a_damaged_header_is_read_with_defaults_and_every_record_kept(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    """One bad byte in the header's JSON lost the whole capture ('does not name the
    format'), though every record was whole: the records are read, the damage said."""
    path, _ = recorded
    full, _ = _read(path)
    for i, flip in ((10, 0), (0, 0x20)):  # (the JSON's length field; the JSON itself)
        data = bytearray(path.read_bytes())
        at = data.index(b'{"format"') + i if i == 0 else i
        if flip:
            data[at + 2] ^= flip  # '"Format"'
        else:
            data[at:at + 6] = b"\xff\xff\xff\xff\xff\xff"  # (a length past any header)
        bad = tmp_path / f"bad{i}.h2scope"
        bad.write_bytes(bytes(data))
        records, reader = _read(bad)
        assert [r.body for r in records] == [r.body for r in full], i
        assert reader.header.damaged is not None
        assert "the capture's header is damaged" in reader.problems[0].reason
        index = CaptureIndex.build(bad)
        try:
            assert len(index) == len([r for r in full if r.type == RecordType.FRAME])
            assert "header is damaged" in index.problems[0].reason
        finally:
            index.close()


@pytest.mark.parametrize(("edit", "said"), [
    (b'"started": [1, 2]', "its 'started' is not a number ([1, 2])"),
    (b'"config": "x"', "its 'config' is not an object"),
    (b'"max_data_bytes": -5', "its 'max_data_bytes' is not a byte count (-5)"),
])
def test_a_header_whose_keys_have_the_wrong_type_is_read_with_defaults(
        recorded: tuple[Path, Session], tmp_path: Path, edit: bytes, said: str) -> None:
    """Valid JSON, wrong types (another tool's writer): every command crashed with
    a TypeError before reading a record."""
    path, _ = recorded
    full, _ = _read(path)
    data = path.read_bytes()
    start = data.index(b'{"format"')
    (n,) = struct.unpack(">I", data[start - 4:start])
    meta = data[start:start + n]
    edited = meta.rstrip()[:-1] + b", " + edit + b"}"  # (JSON: the last of a key counts)
    bad = tmp_path / "bad.h2scope"
    bad.write_bytes(data[:start - 4] + struct.pack(">I", len(edited)) + edited
                    + data[start + n:])
    records, reader = _read(bad)
    assert [r.body for r in records] == [r.body for r in full]
    assert reader.header.damaged == said


def test_times_no_clock_can_hold_export_as_time_zero_not_a_traceback(tmp_path: Path) -> None:
    from proxy.capture.writer import CaptureWriter
    from proxy.cli import main
    from proxy.observe.enums import Direction

    path = tmp_path / "odd.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0)
        writer.raw(1, Direction.C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", t=0.0)
        writer.frame(1, Direction.C2S, bytes.fromhex("000000040000000000"), t=0.0,
                     wall=float("-inf"))
        writer.frame(1, Direction.S2C, bytes.fromhex("000000040000000000"), t=0.0,
                     wall=1e300)
    for fmt in ("har", "pcapng", "text", "jsonl"):
        assert main(["export", str(path), "--format", fmt, "-o", str(tmp_path / fmt)]) == 0
