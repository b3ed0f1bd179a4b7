"""The ``try: curl ...`` line printed by ``h2scope run`` in a reverse mode works as printed.

In reverse TLS mode, a client that connects to the listen address by IP sends no
SNI, and h2scope mints its leaf for the *target* host: the printed line must keep
the target's name (``--connect-to``) or curl rejects the certificate.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.tls_files import make_self_signed
from tests.unit.test_run_cli import H2scopeProcess


@pytest.fixture
def start_h2scope(tmp_path: Path) -> Iterator[Callable[..., H2scopeProcess]]:
    started: list[H2scopeProcess] = []
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    env["H2SCOPE_HOME"] = str(tmp_path / "conf")

    def start(*argv: str) -> H2scopeProcess:
        proc = H2scopeProcess(list(argv), env)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()


def _run_printed_curl(proc: H2scopeProcess) -> str:
    line = proc.wait_for_line(r"h2scope: try: (curl .*)").group(1)
    argv = shlex.split(line)
    assert argv[0] == "curl"
    result = procs.run([procs.require("curl"), "-sS", *argv[1:]])
    assert result.returncode == 0, f"{line}: {result.stderr.decode()}"
    return result.stdout.decode()


@pytest.mark.peer
def test_reverse_tls_try_line_verifies_the_minted_certificate(
        start_h2scope: Callable[..., H2scopeProcess], tmp_path: Path) -> None:
    # a server named only "localhost", like most real ones lack the proxy's address
    cert = make_self_signed(tmp_path / "origin", names=("localhost",))
    server = ServerThread(cert.cert, cert.key)
    try:
        proc = start_h2scope("run", "--headless", "-q", "-p", "0", "--upstream-ca",
                             str(cert.cert), "--mode", f"reverse:https://localhost:{server.port}")
        assert _run_printed_curl(proc) == "hello /\n"
        code, _ = proc.finish(signal.SIGINT)
        assert code == 0, proc.stderr
    finally:
        server.close()


@pytest.mark.peer
def test_reverse_h2c_try_line_speaks_http2(
        start_h2scope: Callable[..., H2scopeProcess]) -> None:
    server = ServerThread()
    try:
        proc = start_h2scope("run", "--headless", "-p", "0",
                             "--mode", f"reverse:http://127.0.0.1:{server.port}")
        assert _run_printed_curl(proc) == "hello /\n"
        code, out = proc.finish(signal.SIGINT)
        assert code == 0, proc.stderr
        assert " HEADERS " in out  # relayed and decoded as HTTP/2, not HTTP/1.1
    finally:
        server.close()


def test_reverse_h2c_to_an_http1_only_server_says_what_the_server_speaks(
        start_h2scope: Callable[..., H2scopeProcess]) -> None:
    """A reverse h2c proxy in front of a server that speaks only HTTP/1.x (Python's
    http.server answers the preface with an HTML 400 page): the log says the
    server sent text and speaks HTTP/1.x, once, without follow-on warnings about
    SETTINGS never acknowledged or a response never finished, which nobody can
    know once its bytes are not frames."""
    from tests.helpers.h1servers import http_server

    with http_server() as port:
        proc = start_h2scope("run", "--headless", "-p", "0", "--fail-on", "warning",
                             "--mode", f"reverse:http://127.0.0.1:{port}")
        listen = int(proc.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge", "--max-time", "10",
                   f"http://127.0.0.1:{listen}/index.html"])
        code, out = proc.finish(signal.SIGINT)
    desync = [ln for ln in out.splitlines() if "DESYNCED" in ln]
    assert len(desync) == 1, out
    assert "the server sent text where HTTP/2 frames were due ('<!DOCTYPE HTML>" in desync[0]
    assert "it speaks HTTP/1.x, not HTTP/2 with prior knowledge (h2c)" in desync[0]
    assert "settings-not-acknowledged" not in out and "stream-unfinished" not in out, out
    assert code == 3 and "h2scope: findings: 1 error\n" in proc.stderr, proc.stderr  # (alone)
