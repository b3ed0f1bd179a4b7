"""``--sslkeylogfile`` writes NSS key-log lines a packet-capture decrypter can use.

Every TLS endpoint in the chain logs its secrets: curl (``SSLKEYLOGFILE``),
the proxy (both legs), ``h2scope serve`` and ``h2scope replay``. A line is
keyed by the ClientHello random, so the same session must appear with the
same secrets in both endpoints' files — that is what Wireshark needs.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread
from tests.unit.capture.traffic import record_session

pytestmark = pytest.mark.peer

SECRET_LINE = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]+)$")


def key_lines(path: Path) -> set[tuple[str, str, str]]:
    """(label, client random, secret) of every well-formed NSS key-log line."""
    out = set()
    for line in path.read_text().splitlines():
        m = SECRET_LINE.match(line.strip())
        if m:
            out.add((m.group(1), m.group(2), m.group(3)))
    return out


def randoms(lines: set[tuple[str, str, str]]) -> set[str]:
    return {r for _, r, _ in lines}


@pytest.fixture
def served(tmp_path: Path, confdir: Path) -> Iterator[tuple[int, Path]]:
    """``h2scope serve --sslkeylogfile`` on a capture of in-process h2 traffic."""
    capture = tmp_path / "traffic.h2scope"
    with CaptureWriter(capture) as writer:
        record_session(writer)
    keylog = tmp_path / "serve.keys"
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", str(capture), "-p", "0",
                             "--confdir", str(confdir), "--match", "method,path",
                             "--sslkeylogfile", str(keylog)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = 0
        deadline = time.monotonic() + 15
        while not port and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise AssertionError("h2scope serve exited before listening")
            m = re.search(rb"listening on https://127\.0\.0\.1:(\d+)/", line)
            port = int(m.group(1)) if m else 0
        procs.wait_for_port(port, None)
        yield port, keylog
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def test_proxy_logs_both_tls_legs_with_the_secrets_each_peer_logged(
        make_proxy: Callable[..., ProxyThread], confdir: Path, tmp_path: Path,
        served: tuple[int, Path]) -> None:
    port, serve_keys = served
    proxy_keys = tmp_path / "proxy.keys"
    proxy = make_proxy(modes=[f"reverse:https://127.0.0.1:{port}"],
                       upstream_ca=confdir / "h2scope-ca-cert.pem", sslkeylogfile=proxy_keys)
    curl_keys = tmp_path / "curl.keys"
    result = subprocess.run(
        [procs.require("curl"), "-sS", "--http2", "--cacert", str(proxy.ca_cert),
         f"https://127.0.0.1:{proxy.port('reverse')}/index.html"],
        capture_output=True, timeout=30, check=False,
        env={**os.environ, "SSLKEYLOGFILE": str(curl_keys)})
    assert result.returncode == 0, result.stderr
    assert b"<html><body>hello</body></html>" in result.stdout
    proxy.wait_closed()
    logged = key_lines(proxy_keys)
    for made in (proxy_keys, serve_keys):  # (the umask would give 0644: they hold keys)
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made
    client_leg, server_leg = key_lines(curl_keys), key_lines(serve_keys)
    assert client_leg and server_leg
    # Two sessions in the proxy's file: curl's (client leg) and its own to serve.
    assert randoms(logged) == randoms(client_leg) | randoms(server_leg)
    assert client_leg <= logged
    assert server_leg <= logged


def test_replay_against_serve_of_the_same_capture_matches_and_logs_its_keys(
        tmp_path: Path, confdir: Path, served: tuple[int, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    port, serve_keys = served
    capture = tmp_path / "again.h2scope"
    with CaptureWriter(capture) as writer:
        record_session(writer)
    replay_keys = tmp_path / "replay.keys"
    code = main(["replay", str(capture), "--target", f"https://127.0.0.1:{port}",
                 "--upstream-ca", str(confdir / "h2scope-ca-cert.pem"), "--speed", "0",
                 "--timeout", "5", "--sslkeylogfile", str(replay_keys)])
    out = capsys.readouterr().out
    # serve answers with the recorded frames, so the replay of the same capture matches.
    assert code == 0, out
    assert "5 streams compared: all match" in out
    mine = key_lines(replay_keys)
    assert stat.S_IMODE(replay_keys.stat().st_mode) == 0o600
    assert mine and mine <= key_lines(serve_keys)
    assert {label for label, _, _ in mine} >= {"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                               "CLIENT_TRAFFIC_SECRET_0"}
