"""Fixtures for capture tests: recorded captures of real h2 traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.capture.writer import CaptureWriter
from tests.unit.capture.traffic import Session, record_session


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Session]:
    """A closed capture of two full connections, and their live events."""
    path = tmp_path / "session.h2scope"
    session = Session()
    with CaptureWriter(path, config={"listen": "127.0.0.1:0"}) as writer:
        record_session(writer, 1, session=session)
        record_session(writer, 2, t0=2000.0, session=session)
    return path, session
