"""The end of a headless run: a summary of what was seen on stderr, and
``--fail-on SEVERITY`` turning protocol violations into exit status 3 (a proxy
in front of a server in CI fails the job). The real command, real peers."""

from __future__ import annotations

import socket
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


def test_a_clean_run_summarizes_and_exits_0(tmp_path: Path, docroot: Path) -> None:
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=["-q", "--fail-on", "warning"], cwd=tmp_path).start()
        try:
            for _ in range(2):
                result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                    f"http://127.0.0.1:{proxy.port}/index.html"])
                assert result.returncode == 0, result.stderr
        finally:
            status = proxy.stop()
    lines = list(proxy.stderr_lines)
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
    assert any("error   stream-id-parity (RFC 9113 §5.1.1) ×1, first #1 stream 2: the client "
               "opened even-numbered stream 2" in ln for ln in lines), lines
    assert "h2scope: exit status 3: error findings were seen (--fail-on error)" in lines
    # The recording says the same offline.
    assert main(["check", str(tmp_path / "v.h2scope")]) == 3
    assert "error   stream-id-parity (RFC 9113 §5.1.1) ×1" in capsys.readouterr().out
