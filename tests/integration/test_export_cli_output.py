"""``h2scope export -o`` to a place that cannot be written: a one-line usage error, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from proxy.capture.writer import CaptureWriter
from tests.unit.capture.traffic import record_session


def test_unwritable_output_names_the_file_and_exits_2(tmp_path: Path) -> None:
    capture = tmp_path / "one.h2scope"
    with CaptureWriter(capture) as writer:
        record_session(writer, 1)
    target = tmp_path / "no-such-dir" / "out.har"
    run = subprocess.run([sys.executable, "-m", "proxy", "export", str(capture), "--format",
                          "har", "-o", str(target)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert f"cannot write {target}: No such file or directory" in run.stderr
