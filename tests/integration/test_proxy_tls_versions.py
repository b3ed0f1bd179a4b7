"""The server leg offers the TLS versions the client offered: a client and a server
with no version in common fail through h2scope as they fail without it (a TLS 1.3
client and a TLS 1.2 server worked through h2scope, hiding the very mismatch being
debugged), and the failure says why; clients with a version in common go through."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from proxy.events import Leg, ProxyErrorRaised, TlsEstablished
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import make_self_signed
from tests.helpers.tls_server import tls_server


@contextmanager
def tls12_server(directory: Path) -> Iterator[tuple[int, Path]]:
    """An HTTP/1.1 server that speaks TLS 1.2 and nothing newer; (port, its cert)."""
    files = make_self_signed(directory, names=("localhost", "127.0.0.1"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert, files.key)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])

    def answer(tls: ssl.SSLSocket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
        tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")

    with tls_server(ctx, answer) as port:
        yield port, files.cert


def curl(proxy: ProxyThread, sport: int, *flags: str) -> tuple[int, bytes, bytes]:
    result = procs.run([procs.require("curl"), "-sS", *flags, "--cacert", str(proxy.ca_cert),
                        "-x", f"http://127.0.0.1:{proxy.port('regular')}",
                        f"https://localhost:{sport}/"])
    return result.returncode, result.stdout, result.stderr


def test_a_client_and_server_without_a_common_version_fail_as_they_would_directly(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    with tls12_server(tmp_path) as (sport, cert):
        direct = procs.run([procs.require("curl"), "-sS", "--tlsv1.3", "--cacert", str(cert),
                            f"https://localhost:{sport}/"])
        assert direct.returncode != 0  # (the mismatch, without h2scope)
        proxy = make_proxy(modes=["regular"], upstream_ca=cert)
        code, out, _ = curl(proxy, sport, "--tlsv1.3")
        assert code != 0 and out == b""
        (error,) = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                           if e.stage == "server-tls"], what="server-tls")
        assert error.hint is not None and error.hint.startswith(
            "the client offered TLS 1.3 only, and h2scope offers the server the same versions")
        # A client that also speaks TLS 1.2 goes through, on TLS 1.2 both ways.
        code, out, err = curl(proxy, sport)
        assert (code, out) == (0, b"ok\n"), err
        legs = proxy.wait_for(lambda: [e for e in proxy.events(TlsEstablished)
                                       if e.leg is Leg.SERVER], what="the server leg")
        assert [e.version for e in legs] == ["TLSv1.2"]
        # (its suite by the IANA name TLS 1.3's and the ClientHello's have, not OpenSSL's)
        assert legs[0].cipher.startswith("TLS_ECDHE_") and "_WITH_" in legs[0].cipher, legs
