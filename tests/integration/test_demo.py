"""``h2scope demo``: a real origin, the real proxy and a real client, no network."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture
def demo_output(tmp_path) -> tuple[str, str]:
    env = dict(os.environ, H2SCOPE_HOME=str(tmp_path / "conf"))
    record = tmp_path / "demo.h2scope"
    proc = subprocess.run(
        [sys.executable, "-m", "proxy", "demo", "--headless", "--rounds", "1", "--annotate",
         "--record", str(record)],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert record.stat().st_size > 0 and (record.stat().st_mode & 0o777) == 0o600
    return proc.stdout, proc.stderr


def test_demo_shows_the_interesting_parts_of_http2(demo_output):
    out, err = demo_output
    assert "round 1: 13 streams" in err and "pushed /style.css" in err
    assert "PUSH_PROMISE" in out and "promised=2" in out
    assert "RST_STREAM [] len=4  CANCEL" in out
    assert "PING answered" in out
    assert "flow control: server blocked, stream" in out and "reopened after" in out
    assert "HEADERS [END_STREAM,END_HEADERS] len=" in out  # trailers from the API call
    assert "x-checksum:" in out
    assert "<size-update 256 (" in out  # the server honours the smaller HPACK table
    # Several streams are in flight at once: their DATA frames interleave.
    assert "dep=1 weight=220" in out and "priority: u=0" in out


def test_demo_traffic_is_clean(demo_output):
    out, _ = demo_output
    assert "! ERROR" not in out and "! WARNING" not in out
