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
