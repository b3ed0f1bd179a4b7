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
    import struct

    import hpack

    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import CONNECTION_PREFACE, Direction
    from proxy.replay.source import load_capture

    def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
        return struct.pack(">L", len(payload))[1:] + bytes([ftype, flags]) + \
            struct.pack(">L", sid) + payload

    enc = hpack.Encoder()
    path = tmp_path / "cut.h2scope"
    with CaptureWriter(path) as w:
        w.connection(1, {"protocol": "h2c", "mode": "reverse:http://a:80",
                         "server": {"host": "a", "port": 80}}, t=0.0, wall=1000.0)
        w.raw(1, Direction.C2S, CONNECTION_PREFACE, t=0.0, wall=1000.0)
        w.frame(1, Direction.C2S, frame(4, 0, 0, b""), t=0.0, wall=1000.0)
        for sid in range(1, 12, 2):
            block = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                                (":path", f"/{sid}")])
            w.frame(1, Direction.C2S, frame(1, 5, sid, block), t=0.01, wall=1000.01)
        w.frame(1, Direction.S2C, frame(0, 0, 1, b"x" * 500), t=0.02, wall=1000.02)
    data = path.read_bytes()
    path.write_bytes(data[:data.rindex(b"x" * 500) + 100])  # (killed in the last record)
    (plan,) = load_capture(path).plans
    missing = [n for n in plan.notes if "missing from the capture" in n]
    assert missing == ["6 streams (stream 1 (GET /1), stream 3 (GET /3), stream 5 (GET /5), "
                       "…): part of each is missing from the capture (lost or damaged records, "
                       "or a capture that stops while they were open): their bodies are not "
                       "compared"], plan.notes
