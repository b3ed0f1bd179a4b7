"""Explicit proxy: CONNECT + TLS interception (upstream first) + the HTTP/2 relay, with curl."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from proxy.capture.format import RecordType
from proxy.capture.reader import CaptureReader
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.events import (
    Batch,
    ConnectionClosed,
    Leg,
    ProxyErrorRaised,
    RelayStarted,
    TargetChosen,
    TlsEstablished,
)
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles, make_self_signed


def curl(proxy: ProxyThread, url: str, *args: str) -> tuple[int, str, str]:
    exe = procs.require("curl")
    result = procs.run([exe, "-sS", "-x", proxy.url, "--cacert", str(proxy.ca_cert),
                        "-w", "\n%{http_code} %{http_version}", *args, url])
    out = result.stdout.decode(errors="replace")
    body, _, status = out.rpartition("\n")
    return result.returncode, body, status + " " + result.stderr.decode(errors="replace")


def connect_tunnel(sock: Any, target: str) -> bytes:
    """Send ``CONNECT target`` on a raw socket; the proxy's answer head."""
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return head


def status_headers(proxy: ProxyThread, direction: Direction) -> list[str]:
    return [dict(e.block.headers).get(":status", "") for e in proxy.events(FrameObserved)
            if e.direction is direction and e.block is not None]


def test_curl_h2_through_connect_to_nghttpd_is_intercepted_and_decoded(
        proxy: ProxyThread, docroot: Path, origin_cert: CertFiles) -> None:
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as port:
        code, body, status = curl(proxy, f"https://localhost:{port}/index.html", "--http2")
    assert code == 0, status
    assert body == "<html><body>hello from nghttpd</body></html>\n"
    assert status.startswith("200 2"), status
    proxy.wait_closed()
    legs = {e.leg: e for e in proxy.events(TlsEstablished)}
    assert legs[Leg.SERVER].alpn == "h2" and legs[Leg.CLIENT].alpn == "h2"
    assert legs[Leg.CLIENT].client_hello is not None
    assert legs[Leg.CLIENT].client_hello.alpn == ("h2", "http/1.1")
    assert legs[Leg.SERVER].cert is not None and "localhost" in legs[Leg.SERVER].cert.sans
    assert "200" in status_headers(proxy, Direction.S2C)
    requests = [e for e in proxy.events(FrameObserved)
                if e.direction is Direction.C2S and e.block is not None]
    assert dict(requests[0].block.headers)[":path"] == "/index.html"


def test_curl_h2_to_python_h2_origin_keeps_body_and_status(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    code, body, status = curl(proxy, f"https://127.0.0.1:{h2_origin.port}/big/300000",
                              "--http2")
    assert code == 0, status
    assert body == "x" * 300000
    assert status.startswith("200 2")
    proxy.wait_closed()
    assert "200" in status_headers(proxy, Direction.S2C)
    data = sum(e.frame.length for e in proxy.events(FrameObserved)
               if e.direction is Direction.S2C and e.frame.type == 0)
    assert data == 300000


def test_client_offering_only_http11_gets_http11(proxy: ProxyThread, tmp_path: Path,
                                                 origin_cert: CertFiles) -> None:
    with procs.process([procs.require("openssl"), "version"]):
        pass
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b"h1 only " + self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(origin_cert.cert, origin_cert.key)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        code, body, status = curl(proxy, f"https://localhost:{port}/x", "--http1.1")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 0, status
    assert body == "h1 only /x"
    assert status.startswith("200 1.1")
    legs = {e.leg: e for e in proxy.events(TlsEstablished)}
    assert legs[Leg.SERVER].alpn_offered == ("http/1.1",)
    assert legs[Leg.CLIENT].alpn == "http/1.1"
    assert [e.protocol for e in proxy.events(RelayStarted)] == ["http/1.1"]


def test_ignored_host_passes_through_with_the_real_certificate(
        make_proxy: object, h2_origin: ServerThread, origin_cert: CertFiles) -> None:
    proxy = make_proxy(ignore_hosts=[r"^127\.0\.0\.1:"])  # type: ignore[operator]
    # The client trusts only the origin's own certificate: it works only if the
    # proxy did not intercept.
    exe = procs.require("curl")
    result = procs.run([exe, "-sS", "-x", proxy.url, "--cacert", str(origin_cert.cert),
                        "--http2", f"https://127.0.0.1:{h2_origin.port}/pass"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello /pass\n"
    assert [e.protocol for e in proxy.events(RelayStarted)] == ["passthrough"]
    assert proxy.events(TlsEstablished) == []


def test_a_host_ignored_by_its_tls_name_says_so_after_the_target_line(
        make_proxy: object, h2_origin: ServerThread, origin_cert: CertFiles) -> None:
    """CONNECT 127.0.0.1 names no ignored host, the ClientHello's SNI (localhost)
    does: the first target line says intercept, a second one passthrough and why."""
    proxy = make_proxy(ignore_hosts=[r"^localhost:"])  # type: ignore[operator]
    exe = procs.require("curl")
    result = procs.run([exe, "-sS", "-x", proxy.url, "--cacert", str(origin_cert.cert),
                        "--connect-to", f"localhost:{h2_origin.port}:127.0.0.1:{h2_origin.port}",
                        "--http2", f"https://localhost:{h2_origin.port}/pass"])
    assert result.returncode == 0, result.stderr
    assert [(e.via, e.intercept) for e in proxy.events(TargetChosen)] == [
        ("CONNECT", True), ("TLS SNI", False)]
    assert [e.protocol for e in proxy.events(RelayStarted)] == ["passthrough"]


def test_allow_hosts_intercepts_only_what_it_matches(
        make_proxy: object, h2_origin: ServerThread, origin_cert: CertFiles) -> None:
    proxy = make_proxy(allow_hosts=[r"^localhost:"])  # type: ignore[operator]
    exe = procs.require("curl")
    # Not allowed: passed through, so the origin's own certificate is what verifies.
    passed = procs.run([exe, "-sS", "-x", proxy.url, "--cacert", str(origin_cert.cert),
                        "--http2", f"https://127.0.0.1:{h2_origin.port}/pass"])
    # Allowed: intercepted, so only h2scope's CA verifies, and the frames are decoded.
    code, body, status = curl(proxy, f"https://localhost:{h2_origin.port}/seen", "--http2")
    assert passed.returncode == 0 and passed.stdout == b"hello /pass\n", passed.stderr
    assert code == 0 and body == "hello /seen\n", status
    chosen = proxy.wait_for(lambda: len(r := proxy.events(TargetChosen)) == 2 and r,
                            what="both CONNECTs")
    assert sorted((e.target.split(":")[0], e.intercept) for e in chosen) == [
        ("127.0.0.1", False), ("localhost", True)]
    assert proxy.wait_for(lambda: status_headers(proxy, Direction.S2C), what=":status") == ["200"]


def test_allow_hosts_matches_the_tls_name_of_a_tunnel_to_an_address_and_ignores_case(
        make_proxy: object, h2_origin: ServerThread) -> None:
    """A client that resolves names itself (SOCKS5 with local DNS, --connect-to)
    tunnels to an address: the SNI it sends decides, as in mitmproxy; it was passed
    through unseen. Host names match whatever their case."""
    proxy = make_proxy(allow_hosts=[r"^LOCALHOST:"])  # type: ignore[operator]
    code, body, status = curl(proxy, f"https://localhost:{h2_origin.port}/by-address",
                              "--http2", "--connect-to",
                              f"localhost:{h2_origin.port}:127.0.0.1:{h2_origin.port}")
    assert code == 0 and body == "hello /by-address\n", status  # (h2scope's CA verified it)
    chosen = proxy.wait_for(lambda: len(r := proxy.events(TargetChosen)) == 2 and r,
                            what="the target, then the TLS name")
    # (said once decided: not "pass through", then "intercept")
    assert [(e.via, e.target, e.intercept) for e in chosen] == [
        ("CONNECT", f"127.0.0.1:{h2_origin.port}", True),
        ("TLS SNI", f"localhost:{h2_origin.port}", True)]
    assert proxy.wait_for(lambda: status_headers(proxy, Direction.S2C), what=":status") == ["200"]


def test_allow_hosts_intercepts_a_target_it_matches_whatever_its_sni(
        make_proxy: object, h2_origin: ServerThread) -> None:
    """A target that matched allow_hosts was passed through when its SNI did not:
    the docs say a matching target is intercepted."""
    proxy = make_proxy(allow_hosts=[r"^127\.0\.0\.1:"])  # type: ignore[operator]
    code, body, status = curl(proxy, f"https://localhost:{h2_origin.port}/by-name",
                              "--http2", "--connect-to",
                              f"localhost:{h2_origin.port}:127.0.0.1:{h2_origin.port}")
    assert code == 0 and body == "hello /by-name\n", status  # (h2scope's CA verified it)
    chosen = proxy.wait_for(lambda: proxy.events(TargetChosen), what="the target")
    assert [(e.via, e.intercept) for e in chosen] == [("CONNECT", True)]


def test_an_unreachable_target_allow_hosts_misses_still_has_its_target_line(
        make_proxy: object) -> None:
    import socket

    proxy = make_proxy(allow_hosts=[r"^elsewhere\.example:"])  # type: ignore[operator]
    port = procs.free_port()
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
        assert connect_tunnel(sock, f"127.0.0.1:{port}").startswith(b"HTTP/1.1 502")
    proxy.wait_closed()
    assert [(e.target, e.intercept) for e in proxy.events(TargetChosen)] == [
        (f"127.0.0.1:{port}", False)]


def test_an_idle_tunnel_allow_hosts_misses_stays_open_as_a_passed_through_one(
        make_proxy: object, h2_origin: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """While its first bytes were awaited (the SNI decides), a silent tunnel was closed
    after the wait; passed through by ignore_hosts, it stays open."""
    import socket

    from proxy.net import tunnel

    monkeypatch.setattr(tunnel, "FIRST_BYTES_TIMEOUT", 0.3)
    proxy = make_proxy(allow_hosts=[r"^elsewhere\.example:"])  # type: ignore[operator]
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{h2_origin.port} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        chosen = proxy.wait_for(lambda: proxy.events(TargetChosen), what="the target")
        assert [(e.via, e.intercept) for e in chosen] == [("CONNECT", False)]
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # (open, and nothing from the proxy)
            sock.recv(4096)
        assert not proxy.events(ConnectionClosed)


def test_upstream_with_untrusted_certificate_fails_clearly(
        make_proxy: object, tmp_path: Path) -> None:
    bad = make_self_signed(tmp_path / "bad", stem="untrusted")
    server = ServerThread(bad.cert, bad.key)
    try:
        proxy = make_proxy()  # type: ignore[operator]
        code, _body, status = curl(proxy, f"https://localhost:{server.port}/", "--http2")
    finally:
        server.close()
    assert code != 0
    assert "alert handshake failure" in status
    errors = proxy.wait_for(lambda: proxy.events(ProxyErrorRaised), what="an error event")
    assert errors[0].stage == "server-tls"
    assert "certificate verification failed" in errors[0].message
    assert errors[0].hint and "--upstream-ca" in errors[0].hint


@pytest.mark.parametrize(("kind", "hint"), [
    ("expired", "the server's certificate has expired: renew it"),
    ("wrong name", "the server's certificate does not name localhost: connect by a name"),
    ("other CA", "did not issue this chain: pass the one that did"),
])
def test_an_upstream_certificate_failure_gets_the_hint_for_its_cause(
        make_proxy: object, tmp_path: Path, kind: str, hint: str) -> None:
    """Expired, another name, another CA: the server's CA was given with
    --upstream-ca each time, so 'pass its CA' would send the user round in circles."""
    cert = make_self_signed(tmp_path / "srv", expired=kind == "expired",
                            names=("other.test",) if kind == "wrong name" else
                            ("localhost", "127.0.0.1"))
    trusted = make_self_signed(tmp_path / "ca", stem="ca").cert if kind == "other CA" \
        else cert.cert
    server = ServerThread(cert.cert, cert.key)
    try:
        proxy = make_proxy(upstream_ca=trusted)  # type: ignore[operator]
        code, _body, _status = curl(proxy, f"https://localhost:{server.port}/", "--http2")
    finally:
        server.close()
    assert code != 0
    errors = proxy.wait_for(lambda: proxy.events(ProxyErrorRaised), what="an error event")
    assert errors[0].stage == "server-tls" and errors[0].hint and hint in errors[0].hint, \
        errors[0]


def test_insecure_accepts_an_untrusted_upstream(make_proxy: object, tmp_path: Path) -> None:
    bad = make_self_signed(tmp_path / "bad", stem="untrusted")
    server = ServerThread(bad.cert, bad.key)
    try:
        proxy = make_proxy(insecure=True, upstream_ca=None)  # type: ignore[operator]
        code, body, status = curl(proxy, f"https://localhost:{server.port}/ok", "--http2")
    finally:
        server.close()
    assert code == 0, status
    assert body == "hello /ok\n"


def _client_hello(ctx: ssl.SSLContext) -> bytes:
    """The ClientHello a client with *ctx* sends to localhost (the flight never read)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _leave_after_the_certificate(proxy: ProxyThread, port: int,
                                 ctx: ssl.SSLContext) -> None:
    """A TLS client through the proxy that reads the server's flight (h2scope's
    certificate in it) and closes without an alert."""
    import socket

    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
        assert connect_tunnel(sock, f"localhost:{port}").startswith(b"HTTP/1.1 200")
        sock.sendall(_client_hello(ctx))
        assert sock.recv(65536)[:1] == b"\x16"  # (the server's flight, its certificate in it)
        sock.shutdown(socket.SHUT_RDWR)


def test_a_client_that_leaves_silently_after_the_certificate_gets_the_ca_hint(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    """grpc-core does not trust the certificate and closes without a TLS alert: the
    error said only 'the peer closed the connection during the TLS handshake'."""
    ctx = ssl.create_default_context()  # (h2scope's CA not in it: it would refuse)
    ctx.set_alpn_protocols(["h2"])
    _leave_after_the_certificate(proxy, h2_origin.port, ctx)  # (no alert: grpc-core's way)
    errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                     if e.stage == "client-tls"], what="client-tls error")
    assert "after h2scope's certificate for localhost" in errors[0].message, errors[0]
    assert errors[0].hint and "h2scope ca install-hints" in errors[0].hint


def test_a_spare_connection_a_client_abandons_after_a_working_one_is_no_failure(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    """Chromium races connections to a host and drops the spares once one works, a
    few ms after h2scope's certificate reached them: that was a client-tls failure
    with the hint to trust h2scope's CA, which this client plainly does. A
    connection opened after the other finished, and another TLS library on the
    same address (every client of a machine is 127.0.0.1), that leave so still get
    the hint: they may well not trust the CA."""
    import socket

    trusting = ssl.create_default_context(cafile=str(proxy.ca_cert))
    trusting.set_alpn_protocols(["h2"])
    # The spare is opened first and left waiting; the other one finishes meanwhile.
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as spare_sock:
        assert connect_tunnel(spare_sock, f"localhost:{h2_origin.port}").startswith(
            b"HTTP/1.1 200")
        spare_sock.sendall(_client_hello(trusting))
        assert spare_sock.recv(65536)[:1] == b"\x16"  # (h2scope's certificate reached it)
        with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as raw:
            assert connect_tunnel(raw, f"localhost:{h2_origin.port}").startswith(
                b"HTTP/1.1 200")
            with trusting.wrap_socket(raw, server_hostname="localhost") as done:
                assert done.selected_alpn_protocol() == "h2"
        spare_sock.shutdown(socket.SHUT_RDWR)
    closed = proxy.wait_closed(2)
    spare = min(closed, key=lambda c: c.conn_id)  # (opened first)
    assert spare.closed_by.name == "CLIENT", spare
    assert "abandoned this connection during the TLS handshake" in (spare.error or ""), spare
    assert "it has finished another to localhost" in (spare.error or "")
    assert not [e for e in proxy.events(ProxyErrorRaised) if e.stage == "client-tls"]
    # The same library opening a connection after that one finished is no race: one
    # Python program trusts h2scope's CA, the next may not (it was excused too).
    _leave_after_the_certificate(proxy, h2_origin.port, trusting)
    errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                     if e.stage == "client-tls"], what="client-tls error")
    assert errors[0].hint and "h2scope ca install-hints" in errors[0].hint, errors
    other = ssl.create_default_context()
    other.set_alpn_protocols(["h2", "http/1.1"])
    other.set_ciphers("ECDHE+AESGCM")
    _leave_after_the_certificate(proxy, h2_origin.port, other)
    errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                     if e.stage == "client-tls"][1:], what="client-tls error")
    assert errors[0].hint and "h2scope ca install-hints" in errors[0].hint, errors


def test_a_client_that_closed_while_h2scope_went_upstream_gets_no_ca_hint(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    """A client that sends its ClientHello and closes at once (a cancelled preconnect)
    has left before h2scope's certificate was written: the write to its closed
    socket succeeded, so it was told it distrusted that certificate."""
    import socket

    hello = _client_hello(ssl.create_default_context())
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
        assert connect_tunnel(sock, f"localhost:{h2_origin.port}").startswith(b"HTTP/1.1 200")
        sock.sendall(hello)
    errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                     if e.stage == "client-tls"], what="client-tls error")
    assert errors[0].message.endswith("before h2scope's certificate for localhost reached it")
    assert errors[0].hint is None


def test_a_client_that_resets_before_the_certificate_is_not_sent_to_the_ca_hint(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    """Browsers cancel preconnects and raced connections: a client gone while h2scope
    was still connecting upstream was told to trust h2scope's CA, and the close was
    put down to the proxy."""
    import socket
    import struct

    hello = _client_hello(ssl.create_default_context())
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
        connect_tunnel(sock, f"localhost:{h2_origin.port}")
        sock.sendall(hello)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                     if e.stage == "client-tls"], what="client-tls error")
    assert errors[0].message.startswith("the client left during the TLS handshake ("), errors
    assert errors[0].message.endswith("before h2scope's certificate for localhost reached it")
    assert errors[0].hint is None
    closed = proxy.wait_closed()
    assert closed[0].closed_by.name == "CLIENT"


def test_a_reverse_https_mode_at_a_plain_server_says_to_use_http(
        make_proxy: object, tmp_path: Path) -> None:
    """reverse:https:// at a plain HTTP server gave only OpenSSL's WRONG_VERSION_NUMBER."""
    from tests.helpers.h1servers import http_server

    with http_server() as port:
        proxy = make_proxy(modes=[f"reverse:https://127.0.0.1:{port}"])  # type: ignore[operator]
        procs.run([procs.require("curl"), "-sk", "-m", "10",
                   f"https://127.0.0.1:{proxy.port('reverse')}/"])
        errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                         if e.stage == "server-tls"], what="server-tls error")
    assert "does not answer in TLS" in (errors[0].hint or ""), errors[0]
    assert "reverse:http://" in (errors[0].hint or "")


def test_client_rejecting_the_h2scope_ca_is_reported_with_a_hint(
        proxy: ProxyThread, h2_origin: ServerThread, tmp_path: Path) -> None:
    exe = procs.require("curl")
    result = procs.run([exe, "-sS", "-x", proxy.url, "--http2",
                        f"https://localhost:{h2_origin.port}/"])
    assert result.returncode != 0
    errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                     if e.stage == "client-tls"], what="client-tls error")
    assert "rejected h2scope's certificate" in errors[0].message
    assert errors[0].hint and "h2scope ca install-hints" in errors[0].hint
    hello = errors[0].client_hello  # which client it was, and what it offered
    assert hello is not None and hello.sni == "localhost" and "h2" in hello.alpn
    # ... which the capture keeps for the UI (the recorder folds it into client_tls)
    closed = next(e for e in proxy.wait_closed() if e.conn_id == errors[0].conn_id)
    path = tmp_path / "c.h2scope"
    with CaptureWriter(path, autoflush=False) as writer:
        recorder = CaptureRecorder(writer)
        for ev in (errors[0], closed):
            recorder.consume(Batch(conn_id=ev.conn_id, t=ev.t, events=(ev,)))
    with CaptureReader(path) as reader:
        meta = next(r for r in reader.records() if r.type == RecordType.CONNECTION).json()
    assert meta["client_tls"]["client_hello"]["sni"] == "localhost"


def test_unreachable_connect_target_gets_502(proxy: ProxyThread) -> None:
    port = procs.free_port()
    code, _body, status = curl(proxy, f"https://localhost:{port}/")
    assert code != 0
    assert "502" in status
    closed = proxy.wait_closed()
    assert closed[0].reason == "upstream connection failed"
    assert [e.stage for e in proxy.events(ProxyErrorRaised)] == ["connect"]


def test_peer_reset_mid_stream_is_relayed_and_reported(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    code, _body, status = curl(proxy, f"https://localhost:{h2_origin.port}/reset", "--http2")
    assert code != 0  # curl: stream was not closed cleanly: INTERNAL_ERROR
    assert "INTERNAL_ERROR" in status or "92" in status
    rst = proxy.wait_for(lambda: [e for e in proxy.events(FrameObserved) if e.frame.type == 3],
                         what="an RST_STREAM frame")
    assert rst[0].direction is Direction.S2C
    assert rst[0].frame.error_name == "INTERNAL_ERROR"


def test_upstream_connection_reset_mid_stream_closes_the_client(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    code, _body, _status = curl(proxy, f"https://localhost:{h2_origin.port}/abort", "--http2")
    assert code != 0
    closed = proxy.wait_closed()
    assert closed[0].closed_by.name == "SERVER"
    assert "reset" in (closed[0].error or "") or "failed" in closed[0].reason


def test_connection_closed_says_the_client_closed(proxy: ProxyThread,
                                                  h2_origin: ServerThread) -> None:
    code, _body, status = curl(proxy, f"https://localhost:{h2_origin.port}/x", "--http2")
    assert code == 0, status
    closed: list[ConnectionClosed] = proxy.wait_closed()
    assert closed[0].closed_by.name == "CLIENT"
    assert closed[0].bytes_c2s > 0 and closed[0].bytes_s2c > 0


def test_a_truncated_body_is_flagged_with_its_rfc_section(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    code, _body, _status = curl(proxy, f"https://localhost:{h2_origin.port}/short/4000", "--http2")
    assert code != 0  # curl, like any receiver, rejects the short body
    flagged = proxy.wait_for(
        lambda: [x for e in proxy.events(FrameObserved) for x in e.findings
                 if x.code == "content-length-mismatch"], what="a content-length finding")
    assert flagged[0].rfc == "RFC 9113 §8.1.1"
    assert "content-length 4000" in flagged[0].message and "2000 bytes" in flagged[0].message


def test_an_imported_ca_signs_the_intercepting_certificates(
        make_proxy: object, h2_origin: ServerThread, tmp_path: Path) -> None:
    """A CA made with openssl (an organisation's, already trusted by its clients),
    imported with `h2scope ca import`: curl trusting only that CA is intercepted."""
    from proxy.cli import main

    ca_key, ca_cert = tmp_path / "corp.key", tmp_path / "corp.crt"
    made = procs.run([procs.require("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                      "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "30",
                      "-subj", "/CN=Example Corp Inspection CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    assert made.returncode == 0, made.stderr
    confdir = tmp_path / "conf"
    assert main(["ca", "import", "--yes", str(ca_cert), str(ca_key),
                 "--confdir", str(confdir)]) == 0
    proxy = make_proxy(confdir=confdir)  # type: ignore[operator]
    result = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "--cacert", str(ca_cert),
                        "--http2", f"https://localhost:{h2_origin.port}/corp"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello /corp\n"
    legs = {e.leg: e for e in proxy.events(TlsEstablished)}
    assert legs[Leg.CLIENT].cert is not None
    assert legs[Leg.CLIENT].cert.issuer == "CN=Example Corp Inspection CA"


def test_a_ca_replaced_while_the_proxy_runs_is_named_when_a_client_rejects_it(
        proxy: ProxyThread, h2_origin: ServerThread, confdir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """ca regenerate while a proxy runs: the proxy still signs with the old CA, so a
    client given the new file rejects it. 'Trust the h2scope CA' would be wrong:
    the client does trust the one on disk. The hint says to restart."""
    from proxy.cli import main

    assert main(["ca", "regenerate", "--yes", "--confdir", str(confdir)]) == 0
    # ca regenerate sees the running proxy (its lock on the confdir) and says so
    assert f"An h2scope proxy is running with {confdir}" in capsys.readouterr().out
    result = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "--http2", "--cacert",
                        str(proxy.ca_cert), f"https://localhost:{h2_origin.port}/"])
    assert result.returncode != 0
    errors = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                     if e.stage == "client-tls"], what="client-tls error")
    assert errors[0].hint and "was replaced after this h2scope started" in errors[0].hint
    assert "restart h2scope" in errors[0].hint


@pytest.mark.parametrize("insecure", [False, True])
def test_the_leaf_takes_the_servers_other_names_only_from_a_verified_certificate(
        make_proxy: object, h2_origin: ServerThread, insecure: bool) -> None:
    """Verified, the server's other names go into the leaf (a browser may then reuse
    the connection for them, as with the real certificate). With --insecure they are
    the server's own say-so: the client would trust h2scope's leaf for names any
    server in the path chose."""
    import socket

    from cryptography import x509

    proxy = make_proxy(insecure=insecure)  # type: ignore[operator]
    raw = socket.create_connection(("127.0.0.1", proxy.port()), timeout=10)
    raw.sendall(f"CONNECT localhost:{h2_origin.port} HTTP/1.1\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert "localhost" in dns
    # The origin's certificate names localhost and 127.0.0.1 (tests/helpers/tls_files).
    assert ("127.0.0.1" in ips) is not insecure


def test_a_target_that_closes_at_once_is_said_to_have_closed_not_the_client(
        proxy: ProxyThread) -> None:
    """A server that accepts and closes while the client has sent nothing yet: the
    tunnel's close was put down to the client."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def accept_and_close() -> None:
        sock, _ = listener.accept()
        sock.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as client:
        client.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        assert client.recv(4096) == b""  # (the server's close reaches the client)
        closed = proxy.wait_closed()
    listener.close()
    assert (closed[0].closed_by.name, closed[0].reason) == (
        "SERVER", "the server closed the tunnel before anything was sent")
    (error,) = proxy.events(ProxyErrorRaised)
    assert error.message == (f"{target} closed the connection as soon as it was made, before "
                             "either side sent anything")


def test_a_client_silent_past_the_timeout_is_closed_by_the_proxy_and_said_so(
        proxy: ProxyThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """h2scope's own wait for a request ended the connection; the log said the client
    had closed it."""
    import socket

    from proxy.net import tunnel

    monkeypatch.setattr(tunnel, "FIRST_BYTES_TIMEOUT", 0.3)
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as client:
        assert client.recv(4096) == b""  # (closed by the proxy, the client still there)
        closed = proxy.wait_closed()
    assert closed[0].closed_by.name == "PROXY"
    assert closed[0].reason.startswith("no request from the client in ")
