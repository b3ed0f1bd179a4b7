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
