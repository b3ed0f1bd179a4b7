"""ALPN between a client and a server that do not share a protocol: the proxy
mirrors the server's choice (architecture principle 2) and says what happened."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from proxy.events import ProxyErrorRaised
from tests.helpers import procs
from tests.helpers.h1servers import http_server
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles


def https_http11_server(cert: CertFiles) -> AbstractContextManager[int]:
    """An HTTPS server that speaks HTTP/1.1 only (ALPN http/1.1)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    ctx.set_alpn_protocols(["http/1.1"])
    return http_server(tls=ctx)


def test_an_h2_only_client_and_a_server_without_h2_are_explained(
        make_proxy: Callable[..., ProxyThread], origin_cert: CertFiles) -> None:
    """nghttp offers only h2; the server negotiates nothing: the client gives up
    after the handshake. The event says why, not 'neither TLS nor HTTP'."""
    from proxy.events import ConnectionClosed

    with https_http11_server(origin_cert) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
        result = procs.run([procs.require("nghttp"), f"https://127.0.0.1:{proxy.port('reverse')}/"])
        closed = proxy.wait_closed()
        # curl offers http/1.1 too: the same server works through the same proxy.
        ok = procs.run([procs.require("curl"), "-sS", "--cacert", str(proxy.ca_cert),
                        "--connect-to", f"localhost:{sport}:127.0.0.1:{proxy.port('reverse')}",
                        f"https://localhost:{sport}/x"])
    assert b"HTTP/2 protocol was not selected" in result.stderr  # (nghttp exits 0)
    errors = [e for e in proxy.events(ProxyErrorRaised) if e.conn_id == closed[0].conn_id]
    assert [e.stage for e in errors] == ["alpn"]
    assert errors[0].message == (f"localhost:{sport} chose none of the protocols the client "
                                 "offered (h2, h2-16, h2-14) and the client offered no "
                                 "HTTP/1.1: the server does not speak HTTP/2 (over TLS)")
    assert isinstance(closed[0], ConnectionClosed)
    assert closed[0].reason == ("the client closed the connection without sending anything "
                                "after the TLS handshake")
    assert ok.returncode == 0 and ok.stdout == b"h1 /x", ok.stderr


def test_a_client_offering_neither_h2_nor_http11_is_told_so_not_that_the_server_lacks_h2(
        make_proxy: Callable[..., ProxyThread], origin_cert: CertFiles, docroot: Path) -> None:
    import socket

    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
        ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
        ctx.set_alpn_protocols(["h3", "spdy/3"])
        with socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() is None
        (error,) = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                           if e.stage == "alpn"], what="the alpn error")
    assert error.message == (f"the client offered only h3, spdy/3, which localhost:{sport} does "
                             "not speak over TLS on TCP, and neither h2 nor http/1.1")
