"""A verbatim replay of a large upload waits for the server's windows (RFC 9113 §6.9).

curl POSTs 1 MiB through the proxy to the python-hyper h2 origin, which
echoes it; the upload is far larger than the initial 65,535-byte windows, so
the recorded DATA frames can only go as the new server's WINDOW_UPDATEs
allow. At ``--speed 0`` a replay that ignored the windows would overrun them
(FLOW_CONTROL_ERROR) and the echoed body would differ.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles

pytestmark = pytest.mark.peer


@pytest.mark.parametrize("mode", ["verbatim", "reencode"])
def test_a_large_upload_replays_within_the_servers_flow_control_windows(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread,
        origin_cert: CertFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        mode: str) -> None:
    body = tmp_path / "upload.bin"
    body.write_bytes(bytes(range(256)) * 4096)
    capture = tmp_path / "upload.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    try:
        proxy = make_proxy(modes=[f"reverse:https://127.0.0.1:{h2_origin.port}"],
                           sinks=(recorder,))
        result = procs.run([procs.require("curl"), "-sS", "--http2", "--cacert",
                            str(proxy.ca_cert), "--data-binary", f"@{body}", "-o", "/dev/null",
                            f"https://127.0.0.1:{proxy.port('reverse')}/echo"])
        assert result.returncode == 0, result.stderr
        proxy.wait_closed()
        proxy.close()
    finally:
        recorder.close()

    fresh = ServerThread(origin_cert.cert, origin_cert.key)
    try:
        capsys.readouterr()
        code = main(["replay", str(capture), "--target", f"https://127.0.0.1:{fresh.port}",
                     "--upstream-ca", str(origin_cert.cert), "--speed", "0", "--mode", mode,
                     "--timeout", "5"])
    finally:
        fresh.close()
    out, err = capsys.readouterr()
    assert code == 0, out + err
    # The origin echoes the upload after "hello /echo\n": 12 + 1 MiB bytes came back.
    assert f"(POST /echo): 200, {12 + 1048576} bytes" in out


def test_a_server_that_refuses_with_the_recorded_goaway_again_matches(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread,
        origin_cert: CertFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The recording has the server's GOAWAY ENHANCE_YOUR_CALM; a server that sends it
    again behaves as recorded: exit 0 (it was exit 3 whatever the server did, under a
    summary saying 'it matches')."""
    capture = tmp_path / "calm.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    try:
        proxy = make_proxy(modes=[f"reverse:https://127.0.0.1:{h2_origin.port}"],
                           sinks=(recorder,))
        procs.run([procs.require("curl"), "-sS", "--http2", "--cacert", str(proxy.ca_cert),
                   "-o", "/dev/null", f"https://127.0.0.1:{proxy.port('reverse')}/calm"])
        proxy.wait_closed()
        proxy.close()
    finally:
        recorder.close()
    capsys.readouterr()
    code = main(["replay", str(capture), "--target", f"https://127.0.0.1:{h2_origin.port}",
                 "--upstream-ca", str(origin_cert.cert), "--speed", "0", "--timeout", "5"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "  same     the server ended the connection with GOAWAY ENHANCE_YOUR_CALM, last " \
        "stream 0: calm down, as recorded" in out, out
    # (RFC 9113 §6.8: the GOAWAY's last stream 0 says stream 1 will never be answered)
    assert "stopped waiting" not in out, out


def test_a_recorded_goaway_is_waited_for_and_compared(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread,
        origin_cert: CertFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded server answered, then sent GOAWAY ENHANCE_YOUR_CALM 'too_many_pings'
    1 ms later: the replay closed after its last frame and said 'all match' whether
    the new server sent it or not — and that GOAWAY is why one replays a gRPC
    keepalive recording."""
    capture = tmp_path / "pings.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    try:
        proxy = make_proxy(modes=[f"reverse:https://127.0.0.1:{h2_origin.port}"],
                           sinks=(recorder,))
        procs.run([procs.require("curl"), "-sS", "--http2", "--cacert", str(proxy.ca_cert),
                   "-o", "/dev/null", f"https://127.0.0.1:{proxy.port('reverse')}/then-calm"])
        proxy.wait_closed()
        proxy.close()
    finally:
        recorder.close()
    for calm, expected in ((True, 0), (False, 3)):
        server = ServerThread(origin_cert.cert, origin_cert.key, calm=calm)
        try:
            capsys.readouterr()
            code = main(["replay", str(capture), "--target", f"https://127.0.0.1:{server.port}",
                         "--upstream-ca", str(origin_cert.cert), "--speed", "0",
                         "--timeout", "2"])
        finally:
            server.close()
        out, err = capsys.readouterr()
        assert code == expected, (calm, out + err)
        if calm:
            assert "same     the server ended the connection with GOAWAY ENHANCE_YOUR_CALM, " \
                "last stream 1: too_many_pings, as recorded" in out, out
        else:
            assert "  DIFFERS  the recorded server ended the connection with GOAWAY " \
                "ENHANCE_YOUR_CALM, last stream 1: too_many_pings; this one sent none" in out
            assert "a connection's GOAWAY is not the recorded one" in err, err
        assert "(GET /then-calm): 200" in out, out
