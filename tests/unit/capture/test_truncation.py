"""max_data_bytes: DATA payloads are capped on disk, the cut is marked, and the
observer still accounts flow control exactly (the reader zero-pads)."""

from __future__ import annotations

from pathlib import Path

from proxy.capture.exchanges import collect
from proxy.capture.format import RecordType
from proxy.capture.index import CaptureIndex
from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay, replay_observer
from proxy.capture.writer import CaptureWriter
from proxy.observe.events import FrameObserved
from proxy.observe.frames import DataFrame
from tests.unit.capture.traffic import LARGE_BODY, record_session


def _capped(tmp_path: Path, cap: int) -> tuple[Path, list]:
    path = tmp_path / f"cap{cap}.h2scope"
    with CaptureWriter(path, max_data_bytes=cap) as writer:
        session = record_session(writer, 1)
    return path, [ev for _, ev in session.live]


def test_capped_data_is_marked_and_shorter_on_disk(tmp_path: Path) -> None:
    path, _ = _capped(tmp_path, 100)
    with CaptureReader(path) as reader:
        assert reader.header.max_data_bytes == 100
        frames = [r for r in reader.records() if r.type == RecordType.FRAME]
    data = [r for r in frames if r.body[3] == 0]
    cut = [r for r in data if r.truncated]
    assert cut, "some DATA frames are longer than 100 bytes"
    for r in cut:
        declared = int.from_bytes(r.body[:3], "big")
        padded = r.body[4] & 0x8
        assert len(r.body) == 9 + 100 + (1 if padded else 0) < 9 + declared
    for r in data:
        if not r.truncated:
            assert len(r.body) - 9 == int.from_bytes(r.body[:3], "big") <= 101
    assert not any(r.truncated for r in frames if r.body[3] != 0)  # only DATA is capped


def test_flow_control_and_states_replay_exactly_with_capped_data(tmp_path: Path) -> None:
    path, live = _capped(tmp_path, 0)
    replayed = [e for _, e in replay_observer(path)]
    assert len(replayed) == len(live)
    for a, b in zip(replayed, live, strict=True):
        if isinstance(b, FrameObserved) and isinstance(b.frame, DataFrame):
            assert isinstance(a, FrameObserved)
            assert (a.windows, a.findings, a.frame.length, a.frame.pad_length) == (
                b.windows, b.findings, b.frame.length, b.frame.pad_length)
        else:
            assert a == b


def test_capped_bodies_keep_their_prefix_and_say_they_were_cut(tmp_path: Path) -> None:
    path, _ = _capped(tmp_path, 10)
    exchanges = collect(replay(path))
    large = next(ex for ex in exchanges.items if ex.header(":path") == "/large.bin")
    assert large.response_body_truncated
    assert bytes(large.response_body) == LARGE_BODY[:10] + LARGE_BODY[16384:16394]
    upload = next(ex for ex in exchanges.items if ex.header(":path") == "/upload")
    assert bytes(upload.request_body) == b"hello worl"  # padding byte kept, data cut
    with CaptureIndex.build(path) as index:
        cut = sorted(index.truncated)
        assert cut and all(index.type[i] == 0 for i in cut)
        assert index.length[cut[-1]] == 16384  # the index keeps the declared length


def test_a_cut_request_body_says_so_in_har(tmp_path: Path) -> None:
    """The response's content said how much of the body was kept; the request's
    postData said nothing (only _h2scope.request_body_truncated did)."""
    from proxy.capture.export_har import entry

    path, _ = _capped(tmp_path, 10)
    exchanges = collect(replay(path))
    upload = next(ex for ex in exchanges.items if ex.header(":path") == "/upload")
    post = entry(upload, exchanges.connections[upload.conn_id])["request"]["postData"]
    assert post["text"] == "hello worl"
    assert post["comment"] == (f"only 10 of the body's {upload.request_sent} bytes were kept "
                               "when recorded (record.max_data_bytes, or imported without "
                               "the bytes)")
