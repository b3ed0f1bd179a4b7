"""``h2scope run --headless`` as a long-lived service: a stdout nobody reads, a
failed start beside an existing capture, SIGHUP, a closed stdout, an
unwritable confdir, ``--record /dev/stdout``. The real command, real peers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from proxy.cli import main
from tests.bench.proxyproc import ProxyProcess
from tests.helpers import procs


@contextlib.contextmanager
def unread_pipe() -> Iterator[Path]:
    """A pipe whose read end is held open and never read: writes to it block once
    its buffer is full. Yields a path that opens its write end."""
    r, w = os.pipe()
    try:
        yield Path(f"/proc/self/fd/{w}")
    finally:
        os.close(w)
        os.close(r)


def test_a_stdout_nobody_reads_stops_neither_traffic_nor_sigterm(
        tmp_path: Path, docroot: Path) -> None:
    """The frame log's reader stops reading (a paused `| less`, a stuck shipper):
    the pipe fills, and the proxy froze — every client hung and SIGTERM did
    nothing. Now lines are dropped and counted: the load completes, another
    request completes, SIGTERM stops it with exit 0 and the summary counts what
    was not printed."""
    with procs.nghttpd(docroot) as sport, unread_pipe() as pipe:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             stdout=pipe, cwd=tmp_path).start()
        try:
            # far more lines than the pipe and the queue hold (about 150,000)
            load = procs.run([procs.require("h2load"), "-n", "10000", "-c", "4", "-m", "10",
                              f"http://127.0.0.1:{proxy.port}/index.html"], timeout=60)
            assert b"10000 succeeded" in load.stdout, load.stdout
            result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                "--max-time", "10", f"http://127.0.0.1:{proxy.port}/index.html"])
            assert result.returncode == 0 and b"hello from nghttpd" in result.stdout, result
        finally:
            status = proxy.stop(timeout=20)
    lines = list(proxy.stderr_lines)
    assert status == 0, lines
    said = [ln for ln in lines if "stdout is not read fast enough" in ln]
    assert len(said) == 1 and "the proxy goes on relaying" in said[0], lines
    assert any(ln.endswith("frame log lines not printed: stdout was not read fast enough "
                           "(--record FILE keeps every frame)") for ln in lines), lines
    assert any(ln.startswith("h2scope: 5 connections (5 h2c)") for ln in lines), lines


def test_a_pipe_reader_that_keeps_up_gets_every_line(tmp_path: Path, docroot: Path) -> None:
    """Written to the pipe by a thread, the log is whole, each line as it comes,
    and nothing is said about dropped lines."""
    r, w = os.pipe()
    got = bytearray()

    def read() -> None:
        while chunk := os.read(r, 65536):
            got.extend(chunk)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with procs.nghttpd(docroot) as sport:
            proxy = ProxyProcess(confdir=tmp_path / "conf",
                                 mode=f"reverse:http://127.0.0.1:{sport}",
                                 stdout=Path(f"/proc/self/fd/{w}"), cwd=tmp_path).start()
            try:
                for n in range(1, 4):
                    result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                        f"http://127.0.0.1:{proxy.port}/index.html"])
                    assert result.returncode == 0, result.stderr
                    deadline = time.monotonic() + 10  # (printed while the proxy runs)
                    while got.count(b" DATA [END_STREAM]") < n:
                        assert time.monotonic() < deadline, got
                        time.sleep(0.02)
            finally:
                status = proxy.stop()
    finally:
        os.close(w)
        reader.join(10)
        os.close(r)
    lines = list(proxy.stderr_lines)
    assert status == 0, lines
    assert not any("not printed" in ln or "not read fast" in ln for ln in lines), lines
    text = got.decode()
    assert text.endswith("\n")
    assert text.count(" closed by ") == 3, text
    assert text.count(" HEADERS ") == 6, text


def test_a_start_that_fails_leaves_the_existing_capture_as_it_was(tmp_path: Path) -> None:
    """The port is taken: the proxy cannot start, and the capture --record names
    (5 MiB of last night's session) was truncated to a bare header; it is now
    untouched."""
    capture = tmp_path / "night.h2scope"
    capture.write_bytes(b"x" * 100_000)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "proxy", "run", "--headless", "-p",
                                 str(port), "--confdir", str(tmp_path / "conf"), "--record",
                                 str(capture)], capture_output=True, timeout=60,
                                stdin=subprocess.DEVNULL, check=False)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in err
    assert capture.read_bytes() == b"x" * 100_000
    assert "recording replaces" not in err  # (it does not: nothing is replaced)


def test_sighup_stops_the_proxy_cleanly(tmp_path: Path, docroot: Path) -> None:
    """The ssh session or tmux pane closes: SIGHUP killed the proxy with no
    summary and a recording without its end. Now it stops as on SIGTERM."""
    (tmp_path / "rec.h2scope").write_bytes(b"y" * 2048)  # (last session's: replaced)
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q", "--record", "rec.h2scope"], cwd=tmp_path).start()
        try:
            result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                f"http://127.0.0.1:{proxy.port}/index.html"])
            assert result.returncode == 0, result.stderr
            assert proxy.proc is not None
            proxy.proc.send_signal(signal.SIGHUP)
            proxy.proc.wait(20)
        finally:
            status = proxy.stop()
    lines = list(proxy.stderr_lines)
    assert status == 0, lines
    assert f"h2scope: recorded to {tmp_path / 'rec.h2scope'}" in lines, lines
    # (said once listening: a start that fails replaces nothing, and says nothing)
    assert f"h2scope: note: recording replaces {tmp_path / 'rec.h2scope'} (2048 B were " \
        "there)" in lines, lines
    assert any(ln.startswith("h2scope: 1 connection (1 h2c)") for ln in lines), lines
    assert main(["check", str(tmp_path / "rec.h2scope")]) == 0


def _run_to_stop(args: list[str], *, cwd: Path, **popen: object) -> tuple[int, str]:
    """``h2scope run --headless -p 0 ARGS``, stopped with SIGTERM once listening:
    its exit status and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "run", "--headless", "-p", "0",
                             *args], stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=cwd, **popen)  # type: ignore[call-overload]
    assert proc.stderr is not None
    err: list[str] = []
    try:
        for raw in proc.stderr:
            err.append(raw.decode())
            if "proxy listening on" in err[-1]:
                proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()
    return proc.returncode, "".join(err)


def test_a_closed_stdout_is_a_log_nobody_reads(tmp_path: Path) -> None:
    """Started with stdout closed (`>&-`): a traceback at the stop, no summary,
    exit 1. Now one note, the summary, exit 0."""
    status, err = _run_to_stop(["--confdir", str(tmp_path / "conf")], cwd=tmp_path,
                               preexec_fn=lambda: os.close(1))
    assert status == 0, err
    assert "h2scope: stdout is closed: the frame log is not printed" in err
    assert "h2scope: 0 connections" in err
    assert "Traceback" not in err


def test_an_unwritable_confdir_is_said_as_such_not_as_a_port(tmp_path: Path) -> None:
    """A confdir that cannot be created was reported as 'cannot listen on
    127.0.0.1:PORT: ...' with a hint about ports below 1024."""
    conf = tmp_path / "conf"
    conf.write_text("")  # (a file where the directory should be)
    result = subprocess.run([sys.executable, "-m", "proxy", "run", "--headless", "-p", "0",
                             "--confdir", str(conf)], capture_output=True, timeout=60,
                            stdin=subprocess.DEVNULL, check=False)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert f"h2scope: cannot create the CA directory {conf}: Not a directory (set --confdir " \
           "or H2SCOPE_HOME to a writable directory)" in err, err
    assert "cannot listen" not in err


def test_recording_to_stdout_keeps_the_text_log_out_of_the_capture(tmp_path: Path,
                                                                   docroot: Path) -> None:
    """`--record /dev/stdout > file`: the text log was written into the capture's
    bytes (even with -q: connection lines), so the file did not read. The log
    goes to stderr instead, said once."""
    capture = tmp_path / "out.h2scope"
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q", "--record", "/dev/stdout"], stdout=capture,
                             cwd=tmp_path).start()
        try:
            result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                f"http://127.0.0.1:{proxy.port}/index.html"])
            assert result.returncode == 0, result.stderr
            deadline = time.monotonic() + 10
            while not any(" closed by client" in ln for ln in proxy.stderr_lines):
                assert time.monotonic() < deadline, list(proxy.stderr_lines)
                time.sleep(0.02)
        finally:
            status = proxy.stop()
    lines = list(proxy.stderr_lines)
    assert status == 0, lines
    assert "h2scope: the recording goes to stdout: the frame log goes to stderr instead" \
        in lines, lines
    assert any("relaying h2c" in ln for ln in lines), lines
    assert b"relaying" not in capture.read_bytes()
    assert main(["check", str(capture)]) == 0
