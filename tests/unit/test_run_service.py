"""Pieces of ``h2scope run`` as a service: the log file on a full disk, the start
error of an unwritable confdir, the frame log's background writer."""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

import pytest

from proxy.background_output import BackgroundOutput
from proxy.commands import run as run_cmd
from proxy.config import load_config
from proxy.server import ProxyBindError, ProxyStartError, confdir_error


def test_a_log_file_on_a_full_disk_is_said_once_without_tracebacks(
        capsys: pytest.CaptureFixture[str]) -> None:
    handler = run_cmd._LogFile(Path("/dev/full"))
    try:
        record = logging.LogRecord("h2scope.proxy", logging.WARNING, __file__, 1, "m %s",
                                   ("x",), None)
        for _ in range(3):
            handler.emit(record)
    finally:
        handler.close()
    err = capsys.readouterr().err
    assert err == ("h2scope: cannot write the log file /dev/full: No space left on device: "
                   "log records are lost until it can be written (the proxy goes on)\n")


def test_only_a_bind_failure_is_said_as_a_port_problem(tmp_path: Path) -> None:
    config = load_config(None, {"confdir": tmp_path / "conf", "listen.port": 80})

    class Server:
        addresses: dict[str, tuple[str, int]] = {}
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "conf"))
    ca = ProxyStartError(confdir_error(tmp_path / "conf", denied))
    ca.__cause__ = denied
    assert run_cmd.start_error(config, Server(), ca) == (
        f"cannot create the CA directory {tmp_path / 'conf'}: Permission denied (set "
        "--confdir or H2SCOPE_HOME to a writable directory)")
    bind = ProxyBindError("cannot listen")
    bind.__cause__ = denied
    assert "ports below 1024 need privileges" in run_cmd.start_error(config, Server(), bind)
    (tmp_path / "conf").mkdir()
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "conf" / "x.pem"))
    assert confdir_error(tmp_path / "conf", full) == (
        f"cannot write {tmp_path / 'conf' / 'x.pem'}: No space left on device (free some "
        "space, or set --confdir or H2SCOPE_HOME to a writable directory)")


def test_the_background_writer_drops_and_counts_what_a_stalled_reader_leaves() -> None:
    r, w = os.pipe()
    dropped = threading.Event()
    with os.fdopen(w, "w", encoding="utf-8", closefd=False) as stream:
        out = BackgroundOutput(stream, limit=100_000, on_drop=dropped.set)
        line = "x" * 99 + "\n"
        for _ in range(5000):  # 500 kB: the pipe (64 KiB) and the queue fill
            out.write(line * 10)
        assert dropped.is_set() and out.dropped_lines > 0
        out.close(stalled_after=0.2)
        assert out.dropped_lines >= 40_000
    got = b""
    os.set_blocking(r, False)
    try:
        while chunk := os.read(r, 1 << 20):
            got += chunk
    except BlockingIOError:
        pass
    os.close(w)
    os.close(r)
    # (every line printed or counted; the slice under way when the reader was given up
    # on is counted, and may still get out if the reader reads again: 41 lines or 42)
    assert 50_000 <= got.count(b"\n") + out.dropped_lines <= 50_000 + 4096 // 100 + 1
    assert set(got.split(b"\n")[:-1]) == {b"x" * 99}


def test_a_reader_gone_is_raised_once_by_the_background_writer() -> None:
    r, w = os.pipe()
    os.close(r)
    with os.fdopen(w, "w", encoding="utf-8") as stream:
        out = BackgroundOutput(stream)
        out.write("a\n")
        with pytest.raises(BrokenPipeError):
            out.close()
        out.write("b\n")  # (said once: the printer stops writing after it)
