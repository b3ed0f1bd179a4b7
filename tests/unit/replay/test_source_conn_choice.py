"""``replay --conn ID`` for a connection the capture lacks names the ones it has."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.capture.writer import CaptureWriter
from proxy.replay.source import load_capture
from tests.unit.capture.traffic import Session, record_session


def test_a_missing_connection_lists_the_recorded_ones(tmp_path: Path) -> None:
    path = tmp_path / "two.h2scope"
    session = Session()
    with CaptureWriter(path) as writer:
        record_session(writer, 1, session=session)
        record_session(writer, 2, t0=2000.0, session=session)
    assert [p.conn_id for p in load_capture(path, conn=2).plans] == [2]
    with pytest.raises(LookupError, match=r"no HTTP/2 connection 9 \(its connections: 1, 2;"):
        load_capture(path, conn=9)


def test_a_capture_cut_short_says_once_which_streams_it_has_part_of(tmp_path: Path) -> None:
    """Every stream open where a recording was killed got a note of its own (ten lines
    of the same words); more than three are one note naming the first."""
    import hpack

    from proxy.observe.enums import Direction
    from proxy.replay.source import load_capture
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    enc = hpack.Encoder()
    requests = [(Direction.C2S, raw_frame(1, 5, sid, enc.encode([
        (":method", "GET"), (":scheme", "http"), (":authority", "a"),
        (":path", f"/{sid}")])), 0.01) for sid in range(1, 12, 2)]
    path = h2c_capture(tmp_path / "cut.h2scope", [
        *requests, (Direction.S2C, raw_frame(0, 0, 1, b"x" * 500), 0.02)])
    data = path.read_bytes()
    path.write_bytes(data[:data.rindex(b"x" * 500) + 100])  # (killed in the last record)
    (plan,) = load_capture(path).plans
    missing = [n for n in plan.notes if "missing from the capture" in n]
    assert missing == ["6 streams (stream 1 (GET /1), stream 3 (GET /3), stream 5 (GET /5), "
                       "…): part of each is missing from the capture (lost or damaged records, "
                       "or a capture that stops while they were open): their bodies are not "
                       "compared"], plan.notes
