"""Upstream servers that ask for a client certificate (mutual TLS): with none, the
failure says so and names the flag; with ``--client-certs`` (a file, or a directory
of HOST.pem files) the exchange goes through; a certificate the server refuses is
named with the server's alert."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from proxy.events import ProxyErrorRaised
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles, make_self_signed
from tests.helpers.tls_server import tls_server


def client_pem(directory: Path, name: str = "client") -> Path:
    files = make_self_signed(directory, names=("client.example",), stem=name)
    pem = directory / f"{name}.pem"
    pem.write_bytes(files.cert.read_bytes() + files.key.read_bytes())
    return pem


def fetch(proxy: ProxyThread, sport: int, path: str = "/index.html") -> tuple[int, bytes]:
    """curl (HTTP/2) to the reverse proxy in front of localhost:SPORT."""
    result = procs.run([procs.require("curl"), "-sS", "--http2", "--cacert",
                        str(proxy.ca_cert), "--connect-to",
                        f"localhost:{sport}:127.0.0.1:{proxy.port('reverse')}",
                        f"https://localhost:{sport}{path}"])
    return result.returncode, result.stdout


def errors(proxy: ProxyThread) -> list[ProxyErrorRaised]:
    return proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                   if e.stage == "server-tls"], what="a server-tls error")


def test_a_server_that_requires_a_certificate_says_so_and_names_the_flag(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles) -> None:
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["--verify-client"]) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
        code, _ = fetch(proxy, sport)
        error = errors(proxy)[0]
    assert code != 0
    assert error.message == (f"localhost:{sport} requires a client certificate (TLS alert "
                             "certificate_required) and h2scope has none for it")
    assert error.hint is not None and "--client-certs FILE|DIR" in error.hint


def test_client_certs_as_one_file_or_per_host_in_a_directory(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles,
        tmp_path: Path) -> None:
    pem = client_pem(tmp_path / "one")
    per_host = tmp_path / "hosts"
    client_pem(per_host, "localhost")
    elsewhere = tmp_path / "others"
    client_pem(elsewhere, "other.example")
    body = (docroot / "index.html").read_bytes()
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["--verify-client"]) as sport:
        mode = f"reverse:https://localhost:{sport}"
        for certs in (pem, per_host):
            proxy = make_proxy(modes=[mode], client_certs=certs)
            assert fetch(proxy, sport) == (0, body), certs
            assert not [e for e in proxy.events(ProxyErrorRaised)]
        proxy = make_proxy(modes=[mode], client_certs=elsewhere)  # no localhost.pem there
        code, _ = fetch(proxy, sport)
        assert code != 0 and "h2scope has none for it" in errors(proxy)[0].message


@contextmanager
def verifying_server(directory: Path, alpn: str = "h2",
                     tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> Iterator[int]:
    """A TLS server (ALPN ``alpn``, TLS up to ``tls``) that requires a client
    certificate from its own CA."""
    server = make_self_signed(directory / "srv")
    trusted = make_self_signed(directory / "trusted", stem="trusted-ca")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(server.cert, server.key)
    ctx.load_verify_locations(cafile=str(trusted.cert))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.maximum_version = tls
    ctx.set_alpn_protocols([alpn])
    with tls_server(ctx, lambda tls: tls.recv(1)) as port:  # (the refusal is the point)
        yield port


def test_a_certificate_the_server_refuses_is_named_with_its_alert(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    pem = client_pem(tmp_path / "untrusted")
    with verifying_server(tmp_path) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"], client_certs=pem,
                           upstream_ca=tmp_path / "srv" / "server.crt")
        code, _ = fetch(proxy, sport)
        error = errors(proxy)[0]
    assert code != 0
    assert error.message == (f"localhost:{sport} rejected the client certificate from {pem} "
                             "(TLS alert unknown_ca)")


def test_an_http1_server_or_a_tls12_one_wanting_a_certificate_is_said_with_the_flag(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    """The HTTP/1.1 relay said only 'connection failed [[SSL: TLSV13_ALERT_…]]' and
    curl got an empty reply; over TLS 1.2 the handshake's alert had no hint."""
    with verifying_server(tmp_path / "h1", alpn="http/1.1") as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"],
                           upstream_ca=tmp_path / "h1" / "srv" / "server.crt")
        result = procs.run([procs.require("curl"), "-sS", "--http1.1", "-w", "%{http_code}",
                            "--cacert", str(proxy.ca_cert), "--connect-to",
                            f"localhost:{sport}:127.0.0.1:{proxy.port('reverse')}",
                            f"https://localhost:{sport}/"])
        error = errors(proxy)[0]
    said = (f"localhost:{sport} requires a client certificate (TLS alert certificate_required) "
            "and h2scope has none for it")
    assert error.message == said and error.hint is not None and "--client-certs" in error.hint
    assert result.stdout == f"h2scope: {said}\n502".encode()
    with verifying_server(tmp_path / "v12", tls=ssl.TLSVersion.TLSv1_2) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"],
                           upstream_ca=tmp_path / "v12" / "srv" / "server.crt")
        code, _ = fetch(proxy, sport)
        error = errors(proxy)[0]
    assert code != 0 and error.hint is not None
    assert error.hint.startswith(f"if localhost:{sport} wants a client certificate, h2scope has "
                                 "none for it: give h2scope a client certificate"), error.hint


def test_a_server_that_closes_during_the_handshake_names_the_flag_as_a_maybe(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    """A TLS 1.2 server that wants a client certificate may close without an alert
    ('the peer closed the connection during the TLS handshake', no hint)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def close_after_hello() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.recv(4096)  # (the ClientHello; then nothing, as such a server may)

    threading.Thread(target=close_after_hello, daemon=True).start()
    sport = listener.getsockname()[1]
    proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
    code, _ = fetch(proxy, sport)
    error = errors(proxy)[0]
    listener.close()
    assert code != 0
    assert error.message.endswith("the peer closed the connection during the TLS handshake")
    assert error.hint is not None and error.hint.startswith(
        f"if localhost:{sport} wants a client certificate, h2scope has none for it: give "
        "h2scope a client certificate")


def test_the_certificate_held_for_a_server_is_recorded_printed_and_shown(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles,
        tmp_path: Path) -> None:
    from proxy.capture.format import RecordType
    from proxy.capture.reader import CaptureReader
    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.writer import CaptureWriter
    from proxy.events import Leg, TlsEstablished
    from proxy.headless import connection_line
    from ui.model.session import RecordedConnection, Session
    from ui.model.table import LiveFrames
    from ui.screens.state import connection_text

    pem = client_pem(tmp_path)
    capture = tmp_path / "mtls.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["--verify-client"]) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"], client_certs=pem,
                           sinks=(recorder,))
        assert fetch(proxy, sport)[0] == 0
        proxy.wait_closed()
        proxy.close()
    recorder.close()
    leg = next(e for e in proxy.events(TlsEstablished) if e.leg is Leg.SERVER)
    assert leg.client_cert is not None and leg.client_cert.file == str(pem)
    assert leg.client_cert.subject == "CN=h2scope test client"
    assert f"client_cert=CN=h2scope test client ({pem}, sent if asked)" in (
        connection_line(leg) or "")
    with CaptureReader(capture) as reader:
        meta = next(r for r in reader.records() if r.type == RecordType.CONNECTION).json()
    assert meta["server_tls"]["client_certificate"]["file"] == str(pem)
    session = Session(LiveFrames())
    session.connection_event(RecordedConnection(conn_id=1, t=0.0, meta=meta))
    text = connection_text(session.conns[1]).plain
    assert "client certificate  CN=h2scope test client  (sent if the server asks)" in text
    assert f"from {pem}" in text

