"""The end of a headless run: a summary of what was seen on stderr, and
``--fail-on SEVERITY`` turning protocol violations into exit status 3 (a proxy
in front of a server in CI fails the job). The real command, real peers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from proxy.cli import main
from tests.bench.proxyproc import ProxyProcess
from tests.helpers import procs

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = bytes.fromhex("000000040000000000")


def even_stream_request(port: int) -> None:
    """A client that opens stream 2 (client streams are odd, RFC 9113 §5.1.1)."""
    block = b"\x82\x86\x84\x41\x09localhost"  # GET http / , :authority localhost
    headers = len(block).to_bytes(3, "big") + b"\x01\x05" + (2).to_bytes(4, "big") + block
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(PREFACE + SETTINGS + headers)
        sock.settimeout(2)
        try:
            while sock.recv(65536):  # until the server answers GOAWAY and closes
                pass
        except TimeoutError:
            pass


def _two_gets(tmp_path: Path, docroot: Path, **options: object) -> tuple[int, list[str]]:
    """Two curl GETs through a reverse-proxy h2scope run (``options`` for
    ProxyProcess); its exit status and stderr lines."""
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             cwd=tmp_path, **options).start()  # type: ignore[arg-type]
        try:
            for _ in range(2):
                result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                    f"http://127.0.0.1:{proxy.port}/index.html"])
                assert result.returncode == 0, result.stderr
        finally:
            status = proxy.stop()
    return status, list(proxy.stderr_lines)


def test_a_clean_run_summarizes_and_exits_0(tmp_path: Path, docroot: Path) -> None:
    status, lines = _two_gets(tmp_path, docroot, extra=["-q", "--fail-on", "warning"])
    assert status == 0, lines
    assert any(ln.startswith("h2scope: 2 connections (2 h2c), ") and ln.endswith(" 2 streams")
               for ln in lines), lines
    assert "h2scope: findings: none" in lines


def test_a_protocol_violation_fails_the_run_with_status_3(
        tmp_path: Path, docroot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q", "--fail-on", "error", "--record", "v.h2scope"],
                             cwd=tmp_path).start()
        try:
            even_stream_request(proxy.port)
        finally:
            status = proxy.stop()
    lines = list(proxy.stderr_lines)
    assert status == 3, lines
    assert any(ln.startswith("h2scope: findings: ") and "1 error" in ln for ln in lines), lines
    assert any("error   stream-id-parity (RFC 9113 §5.1.1) ×1 by the client, first #1 stream "
               "2: the client opened even-numbered stream 2" in ln for ln in lines), lines
    assert "h2scope: exit status 3: error findings were seen (--fail-on error)" in lines
    # The recording says the same offline.
    assert main(["check", str(tmp_path / "v.h2scope")]) == 3
    assert "error   stream-id-parity (RFC 9113 §5.1.1) ×1" in capsys.readouterr().out


def stalled_download(port: int, path: str) -> None:
    """An h2c client (Python h2) that offers a 1 KiB stream window, reads what the
    server sends into it and never opens it again, then goes away."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                          (":authority", f"127.0.0.1:{port}"), (":path", path)], end_stream=True)
    received = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(conn.data_to_send())
        while received < 1024:
            data = sock.recv(65536)
            assert data, "the server closed before filling the window"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    received += len(ev.data)  # read, and never acknowledged
            sock.sendall(conn.data_to_send())


def test_the_summary_names_stalls_that_never_resumed_and_the_slowest_streams(
        tmp_path: Path, docroot: Path) -> None:
    (docroot / "stall.bin").write_bytes(b"z" * 200_000)
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q"], cwd=tmp_path).start()
        try:
            # nghttp with a 2^10-1 byte stream window: stalls, resumed by its WINDOW_UPDATEs.
            result = procs.run([procs.require("nghttp"), "-n", "-w", "10",
                                f"http://127.0.0.1:{proxy.port}/stall.bin"])
            assert result.returncode == 0, result.stderr
            stalled_download(proxy.port, "/stall.bin")
        finally:
            status = proxy.stop()
    lines = [ln.removeprefix("h2scope: ") for ln in proxy.stderr_lines]
    assert status == 0, lines
    stalls = next(ln for ln in lines if ln.startswith("flow control: "))
    # The longest: one of nghttp's (resumed) or the hang (never resumed), whichever
    # lasted longer — the hang may be cut short by the connection's close.
    assert " stalls, longest " in stalls and ("#1 stream 13, server blocked)" in stalls or (
        "#2 stream 1, server blocked, never resumed)" in stalls)), lines
    never = [ln.strip() for ln in lines if ln.strip().startswith("never resumed")]
    assert len(never) == 1, lines
    assert never[0].startswith("never resumed: #2 stream 1, server blocked, stalled for "), never
    assert never[0].endswith("until the connection closed: the client sent no WINDOW_UPDATE "
                             "that reopened it"), never
    slowest = lines[lines.index("slowest streams:") + 1:][:2]
    assert any(ln.strip().endswith(f"#1 stream 13  GET 127.0.0.1:{proxy.port}/stall.bin")
               for ln in slowest), lines


def test_stopping_mid_download_reports_what_check_reports_on_its_recording(
        tmp_path: Path, docroot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM while a download waits on its window: the connection is closed by
    h2scope, and what it left unfinished is a finding live as in the recording's
    check (the live summary said 'findings: none' and exited 0; check exited 3)."""
    import contextlib
    import threading

    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q", "--fail-on", "info", "--record", "s.h2scope"],
                             cwd=tmp_path).start()
        hold = threading.Event()

        def client() -> None:
            import h2.config
            import h2.connection
            import h2.settings

            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
            conn.initiate_connection()
            conn.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                                  (":authority", "localhost"), (":path", "/big.bin")],
                              end_stream=True)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
                sock.sendall(conn.data_to_send())
                got = 0
                while got < 1024:
                    data = sock.recv(65536)
                    if not data:
                        break
                    got += len(data)
                hold.set()
                sock.settimeout(10)
                with contextlib.suppress(OSError):
                    while sock.recv(65536):  # until h2scope closes it
                        pass

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        try:
            assert hold.wait(10), "the download did not start"
        finally:
            status = proxy.stop()
        thread.join(10)
    lines = list(proxy.stderr_lines)
    live = next((ln for ln in lines if ln.startswith("h2scope: findings: ")), None)
    assert live is not None and "info" in live and status == 3, lines
    assert main(["check", "--fail-on", "info", str(tmp_path / "s.h2scope")]) == 3
    out = capsys.readouterr().out
    findings = [ln.removeprefix("h2scope:").split(" ×")[0].strip() for ln in lines
                if " ×" in ln]
    assert findings and all(f in out for f in findings), (findings, out)


def test_a_disk_that_refuses_the_recording_is_said_once_and_the_relay_goes_on(
        tmp_path: Path, docroot: Path) -> None:
    """A full disk (here: a file size limit set on the running proxy, EFBIG): one
    line says recording stopped and what to do, curl's downloads still complete,
    the stop prints the summary and says the capture is incomplete (exit 1, no
    traceback), and what was written reads."""
    import resource

    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q", "--record", "rec.h2scope"], cwd=tmp_path).start()
        try:
            limit = (tmp_path / "rec.h2scope").stat().st_size + 200_000
            resource.prlimit(proxy.pid, resource.RLIMIT_FSIZE, (limit, limit))
            for _ in range(3):  # 1 MiB each: well past the limit
                result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                    "-o", str(tmp_path / "big"),
                                    f"http://127.0.0.1:{proxy.port}/big.bin"])
                assert result.returncode == 0, result.stderr
                assert (tmp_path / "big").read_bytes() == (docroot / "big.bin").read_bytes()
            # The file is let go at once: deleting it frees the disk while h2scope runs
            # on (it stayed open, and the disk full, until the stop).
            rec = str(tmp_path / "rec.h2scope")

            def holds() -> bool:
                fds = Path(f"/proc/{proxy.pid}/fd")
                return any(os.readlink(fd) == rec for fd in fds.iterdir()
                           if fd.is_symlink())

            deadline = time.monotonic() + 10
            while holds():
                assert time.monotonic() < deadline, "the proxy still holds the recording"
                time.sleep(0.05)
        finally:
            status = proxy.stop()
    lines = list(proxy.stderr_lines)
    said = [ln for ln in lines if "recording stopped: cannot write" in ln]
    assert status == 1, lines
    assert all(ln.startswith("h2scope: ") for ln in lines), lines  # (the log's lines too)
    assert len(said) == 1 and "File too large" in said[0] and "h2scope check" in said[0], lines
    assert not any("Traceback" in ln for ln in lines), lines
    assert any(ln.startswith("h2scope: 3 connections") for ln in lines), lines
    assert lines[-1].startswith(f"h2scope: the recording {tmp_path / 'rec.h2scope'} is "
                                "incomplete"), lines
    assert main(["check", str(tmp_path / "rec.h2scope")]) in (0, 3)  # (reads: no usage error)


def test_a_frame_log_stdout_refuses_is_said_once_and_the_run_exits_1(
        tmp_path: Path, docroot: Path) -> None:
    """stdout on a full disk (here /dev/full): the frames cannot be printed. Said
    once when it happens, the relay goes on, and the stop says what was lost and
    exits 1 (it exited 0 with nothing said)."""
    status, lines = _two_gets(tmp_path, docroot, stdout=Path("/dev/full"))
    assert status == 1, lines
    said = [ln for ln in lines if "cannot write to stdout: No space left on device" in ln]
    assert len(said) == 1 and "the proxy goes on relaying" in said[0], lines
    assert lines[-1].startswith("h2scope: the frame log could not be written to stdout"), lines
    assert not any("Traceback" in ln for ln in lines), lines


def test_running_out_of_file_descriptors_is_one_warning_and_the_proxy_recovers(
        tmp_path: Path, docroot: Path) -> None:
    """asyncio logs a traceback for every connection it cannot accept (thousands of
    lines a second); h2scope says it once, with the limit and the fix, and serves
    again once connections close."""
    import resource

    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q"], cwd=tmp_path).start()
        idle: list[socket.socket] = []
        try:
            limit = proxy.fd_count() + 12
            resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (limit, limit))
            for _ in range(40):  # more than the limit lets it accept
                idle.append(socket.create_connection(("127.0.0.1", proxy.port), timeout=5))
            deadline = time.monotonic() + 10
            while not any("cannot accept new connections" in ln for ln in proxy.stderr_lines):
                assert time.monotonic() < deadline, list(proxy.stderr_lines)
                time.sleep(0.05)
            time.sleep(1.5)  # (asyncio retries every second: each retry failed again)
            for s in idle:
                s.close()
            idle.clear()
            result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                "--max-time", "10", f"http://127.0.0.1:{proxy.port}/index.html"])
            assert result.returncode == 0, result.stderr
        finally:
            for s in idle:
                s.close()
            status = proxy.stop()
    lines = list(proxy.stderr_lines)
    assert status == 0, lines
    warned = [ln for ln in lines if "cannot accept new connections" in ln]
    assert len(warned) == 1 and "Too many open files" in warned[0] and "ulimit -n" in warned[0], \
        "\n".join(lines[:30])
    assert f"the limit on open files is {limit}" in warned[0]
    assert not any("Traceback" in ln or "out of system resource" in ln for ln in lines), lines


def test_stopped_mid_transfer_the_summary_says_what_the_recording_holds(
        tmp_path: Path, docroot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stopped while ten connections download: the end-of-run summary and 'check' of
    the recording agree (frames, findings). Pumps kept feeding the observer after
    its close, and a publish cancelled half way reached some sinks only, so the
    summary counted frames and truncated frames the capture did not hold."""
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q", "--record", "rec.h2scope"], cwd=tmp_path).start()
        load = subprocess.Popen([procs.require("h2load"), "-n", "100000", "-c", "10", "-m", "10",
                                 f"http://127.0.0.1:{proxy.port}/big.bin"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while (tmp_path / "rec.h2scope").stat().st_size < 20 << 20:  # (well under way)
                assert time.monotonic() < deadline and load.poll() is None
                time.sleep(0.05)
            status = proxy.stop()
        finally:
            load.kill()
            load.wait(5)
    lines = [ln.removeprefix("h2scope: ") for ln in proxy.stderr_lines]
    assert status == 0, lines
    live = [ln for ln in lines if " HTTP/2 frames " in ln or ln.startswith("findings:")]
    assert main(["check", str(tmp_path / "rec.h2scope")]) in (0, 3)
    checked = [ln.strip() for ln in capsys.readouterr().out.splitlines()
               if " HTTP/2 frames " in ln or ln.strip().startswith("findings:")]
    assert len(live) == 2 and live == checked, (live, checked)
