"""``h2scope serve`` answers HTTP/1.1 clients with the recorded responses.

An HTTP/1.1 origin (Python's http.server: a chunked response with a trailer)
is recorded through the proxy with curl --http1.1; nghttpd's HTTP/2 responses
come from ``pushed_capture``. Served, HTTP/1.1-only clients — curl --http1.1,
Python's http.client over TLS with the h2scope CA, a raw socket — get the
recorded status, fields and bodies from both kinds of recording, on one
keep-alive connection, over TLS and cleartext; they were all answered 505.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from tests.helpers import procs
from tests.helpers.options import Options
from tests.helpers.proxy_thread import ProxyThread
from tests.integration.conftest import Served
from tests.integration.test_serve_clients import pushed_capture, recorded  # noqa: F401

pytestmark = pytest.mark.peer

H1_BODY = b"from the HTTP/1.1 origin\n"


class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # a chunked body and a trailer
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Sum")
        self.send_header("X-Origin", "http.server")
        self.end_headers()
        half = len(H1_BODY) // 2
        for piece in (H1_BODY[:half], H1_BODY[half:]):
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\nX-Sum: 42\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def h1_capture(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    path = tmp_path_factory.mktemp("serve-h1") / "h1.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    try:
        proxy = ProxyThread(Options(confdir=confdir, modes=[
            f"reverse:http://127.0.0.1:{server.server_address[1]}"]), [recorder])
        try:
            result = procs.run([procs.require("curl"), "-sS", "--http1.1",
                                f"http://127.0.0.1:{proxy.port('reverse')}/h1.txt"])
            assert result.stdout == H1_BODY, result.stderr
            proxy.wait_closed()
        finally:
            proxy.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        recorder.close()
    yield path


def test_http_client_over_tls_keeps_one_connection_for_several_requests(
        pushed_capture: Path, serve: Served, confdir: Path, docroot: Path) -> None:  # noqa: F811
    url = serve(str(pushed_capture), "--match", "method,path")
    port = int(url.rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(confdir / "h2scope-ca-cert.pem"))
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    try:
        headers, body = recorded(pushed_capture, "/index.html")
        conn.request("GET", "/index.html")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, body)
        assert r.getheader("last-modified") == headers["last-modified"]
        assert r.getheader("content-length") == str(len(body))
        sock = conn.sock
        assert sock.selected_alpn_protocol() in (None, "http/1.1")
        conn.request("GET", "/indx.html")  # (the same connection: keep-alive)
        r = conn.getresponse()
        page = r.read().decode()
        assert r.status == 404 and "closest recorded paths" in page and "/index.html" in page
        # a chunked request body; a resource recorded only as nghttpd's push
        conn.request("GET", "/style.css", body=iter([b"a", b"b"]),
                     headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"body { color: #123456 }\n")
        assert conn.sock is sock
    finally:
        conn.close()
    log = serve.wait_log(url, "/style.css")
    assert any("GET localhost" in line and "/indx.html → 404" in line for line in log), log


def test_curl_http1_over_tls_and_cleartext_with_expect_continue(
        h1_capture: Path, pushed_capture: Path, serve: Served, confdir: Path,  # noqa: F811
        tmp_path: Path) -> None:
    ca = str(confdir / "h2scope-ca-cert.pem")
    body = tmp_path / "body.bin"
    body.write_bytes(b"x" * 100_000)
    for url in (serve(str(h1_capture), "--match", "path"),
                serve(str(h1_capture), "--h2c", "--match", "path")):
        result = procs.run([procs.require("curl"), "-sS", "--http1.1", "--cacert", ca,
                            "-D", "-", "-H", "Expect: 100-continue",
                            "--expect100-timeout", "5", "--data-binary", f"@{body}",
                            "-w", "\n%{time_total}", f"{url}/h1.txt"])
        assert result.returncode == 0, result.stderr
        out, _, took = result.stdout.rpartition(b"\n")
        assert float(took) < 4, f"curl waited {took!r} s for the 100"
        heads, _, got = out.rpartition(b"\r\n\r\n")
        assert heads.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), heads
        assert got == H1_BODY
        fields = heads.decode().lower()
        # (recorded chunked, its trailer only for a client that takes them: a length)
        assert f"content-length: {len(H1_BODY)}" in fields and "chunked" not in fields
        assert "x-origin: http.server" in fields
        assert any("HTTP/1.1 exchange 1; served over HTTP/1.1" in line
                   for line in serve.wait_log(url, "served over HTTP/1.1)"))


def test_a_client_that_takes_trailers_gets_them_chunked(h1_capture: Path,
                                                         serve: Served) -> None:
    url = serve(str(h1_capture), "--h2c", "--match", "path")
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /h1.txt HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n"
                     b"Connection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head and b"connection: close" in head, head
    assert rest.endswith(b"0\r\nx-sum: 42\r\n\r\n"), rest
    # HTTP/2 clients get the HTTP/1.1 recording's trailer as HEADERS
    result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge", "-D", "-",
                        f"{url}/h1.txt"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/2 200") and H1_BODY in result.stdout
    assert b"x-sum: 42" in result.stdout


def test_a_websocket_upgrade_over_http1_gets_a_501_that_says_why(
        pushed_capture: Path, serve: Served, confdir: Path) -> None:  # noqa: F811
    url = serve(str(pushed_capture))
    result = procs.run([procs.require("curl"), "-sS", "--http1.1", "--cacert",
                        str(confdir / "h2scope-ca-cert.pem"), "-D", "-",
                        "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
                        "-H", "Sec-WebSocket-Version: 13",
                        "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", f"{url}/chat"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 501"), result.stdout[:200]
    assert b"plays WebSockets back over HTTP/2 only" in result.stdout


def test_a_head_request_gets_the_recorded_gets_head_and_no_body(
        h1_capture: Path, pushed_capture: Path, serve: Served, confdir: Path,  # noqa: F811
        ) -> None:
    """curl -I of a recorded GET got a 404 (nothing recorded was a HEAD): it gets the
    GET's status and fields and no body (RFC 9110 §9.3.2), over HTTP/1.1 and h2."""
    ca = str(confdir / "h2scope-ca-cert.pem")
    url = serve(str(h1_capture), "--match", "method,path")
    for version in ("--http1.1", "--http2"):
        result = procs.run([procs.require("curl"), "-sS", version, "--cacert", ca, "-I",
                            "--max-time", "10", f"{url}/h1.txt"])
        assert result.returncode == 0, result.stderr
        heads = result.stdout.decode().lower()
        assert heads.startswith(("http/1.1 200", "http/2 200")), heads
        assert f"content-length: {len(H1_BODY)}" in heads, heads
        assert "x-origin: http.server" in heads
        assert result.stdout.endswith(b"\r\n\r\n"), result.stdout[-80:]  # (no body)
