"""``h2scope replay`` usage mistakes end in one line naming the thing to fix, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from proxy.capture.writer import CaptureWriter
from tests.unit.capture.traffic import record_session


def test_record_into_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    capture = tmp_path / "one.h2scope"
    with CaptureWriter(capture) as writer:
        record_session(writer, 1)
    out = tmp_path / "no-such-dir" / "replay.h2scope"
    # the recording is opened before any connection, so no server is needed
    run = subprocess.run([sys.executable, "-m", "proxy", "replay", str(capture), "--target",
                          "http://127.0.0.1:9", "--timeout", "2", "--record", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert f"--record: cannot write {out}: No such file or directory" in run.stderr
