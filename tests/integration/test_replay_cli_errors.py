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


def test_a_target_that_cannot_be_reached_says_why_in_words(tmp_path: Path,
                                                           docroot: Path) -> None:
    """https:// to a cleartext HTTP/2 port (nghttpd --no-tls), and a port nobody
    listens on: what is wrong and what to give instead, not OpenSSL's or the
    kernel's text."""
    import socket

    from tests.helpers import procs

    capture = tmp_path / "one.h2scope"
    with CaptureWriter(capture) as writer:
        record_session(writer, 1)

    def replay(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "proxy", "replay", str(capture),
                               "--target", target, "--timeout", "5", "--insecure"],
                              capture_output=True, text=True, timeout=60)

    with procs.nghttpd(docroot) as port:
        got = replay(f"https://127.0.0.1:{port}")
    assert got.returncode == 1 and "Traceback" not in got.stderr, got.stderr
    assert "the server does not speak TLS there; for cleartext HTTP/2 (h2c) give " \
        f"http://127.0.0.1:{port}" in got.stderr, got.stderr
    with socket.socket() as s:  # a free port, closed again: nobody listens there
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    got = replay(f"http://127.0.0.1:{free}")
    assert got.returncode == 1 and f"nothing listens on 127.0.0.1:{free}" in got.stderr, \
        got.stderr
