"""``h2scope demo --headless`` tells a newcomer how long its origin stays up for their own curl."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_headless_demo_says_when_it_stops_and_how_to_keep_it(tmp_path: Path) -> None:
    env = {**os.environ, "H2SCOPE_HOME": str(tmp_path / "conf")}
    run = subprocess.run([sys.executable, "-m", "proxy", "demo", "--headless", "--rounds", "1",
                          "--interval", "0"], capture_output=True, text=True, timeout=90, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert "(try: curl --cacert" in lines[0]
    assert "both stop after 1 round; for time to try your own client, give --rounds N" \
        in lines[1]


def test_demo_without_a_terminal_runs_headless_and_says_so(tmp_path: Path) -> None:
    """``h2scope demo | less``: the frame log, not the UI's escape codes."""
    env = {**os.environ, "H2SCOPE_HOME": str(tmp_path / "conf")}
    run = subprocess.run([sys.executable, "-m", "proxy", "demo", "--rounds", "1",
                          "--interval", "0"], capture_output=True, text=True, timeout=90,
                         env=env, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert "not a terminal: running the demo headless" in run.stderr
    assert "\x1b[" not in run.stdout and " HEADERS " in run.stdout
