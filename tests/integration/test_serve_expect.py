"""``h2scope serve`` sends ``100 Continue`` when a request that expects one arrives.

curl posts a 200 KB file with ``Expect: 100-continue`` through the recording
proxy to nghttpd, which answers 100 before the body; served, curl must get
the 100 on its request's HEADERS — not after the whole body, which it sends
only after its expect timeout (a client without one would wait forever).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.replay.responses import load_responses
from tests.helpers import procs
from tests.helpers.options import Options
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles
from tests.integration.conftest import Served

pytestmark = pytest.mark.peer

EXPECT_TIMEOUT = 5
"""curl's --expect100-timeout here: a 100 that waits for the body costs this long."""


def post(url: str, ca: Path, body: Path, *extra: str) -> tuple[float, bytes, bytes]:
    """curl POSTs ``body`` expecting 100; (seconds, response heads, body)."""
    result = procs.run([procs.require("curl"), "-sS", *extra, "--cacert", str(ca),
                        "-H", "Expect: 100-continue", "--expect100-timeout",
                        str(EXPECT_TIMEOUT), "--data-binary", f"@{body}", "-D", "-",
                        "-w", "\n%{time_total}", f"{url}/upload.txt"])
    assert result.returncode == 0, result.stderr
    out, _, took = result.stdout.rpartition(b"\n")
    heads, _, got = out.rpartition(b"\r\n\r\n")
    return float(took), heads, got


@pytest.fixture(scope="module")
def expect_capture(tmp_path_factory: pytest.TempPathFactory, docroot: Path, confdir: Path,
                   origin_cert: CertFiles) -> tuple[Path, Path]:
    (docroot / "upload.txt").write_bytes(b"stored\n")
    where = tmp_path_factory.mktemp("serve-expect")
    body = where / "body.bin"
    body.write_bytes(bytes(range(256)) * 800)  # (200 KB: more than curl's first window)
    path = where / "expect.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as origin:
        proxy = ProxyThread(Options(confdir=confdir, upstream_ca=origin_cert.cert,
                                    modes=[f"reverse:https://127.0.0.1:{origin}"]), [recorder])
        try:
            url = f"https://127.0.0.1:{proxy.port('reverse')}"
            took, heads, got = post(url, confdir / "h2scope-ca-cert.pem", body, "--http2")
            assert heads.startswith(b"HTTP/2 100") and got == b"stored\n", heads
            assert took < EXPECT_TIMEOUT * 0.8, took
            proxy.wait_closed()
        finally:
            proxy.close()
            recorder.close()
    return path, body


def test_a_recorded_100_continue_goes_on_the_requests_headers(
        expect_capture: tuple[Path, Path], serve: Served, confdir: Path) -> None:
    capture, body = expect_capture
    (upload,) = load_responses(capture)
    statuses = [dict(a.headers)[":status"] for a in upload.actions if a.kind == "headers"]
    assert statuses == ["100", "200"]
    for match in ("method,authority,path", "method,path,body"):
        url = serve(str(capture), "--match", match)
        took, heads, got = post(url, confdir / "h2scope-ca-cert.pem", body, "--http2")
        assert got == b"stored\n", heads
        # one 100 (the recorded one, not again with the response), then the 200
        assert heads.count(b"HTTP/2 100") == 1 and b"HTTP/2 200" in heads, heads
        assert took < EXPECT_TIMEOUT * 0.8, f"curl waited {took:.2f} s for the 100"
        assert any("100 Continue on its HEADERS" in line and "as recorded" in line
                   for line in serve.wait_log(url, "100 Continue"))
