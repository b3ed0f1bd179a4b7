"""Fixtures for the proxy integration tests: certificates, origins and the proxy itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.h2server import ServerThread
from tests.helpers.options import Options
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles, make_self_signed


@pytest.fixture(scope="session")
def origin_cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed certificate for localhost and 127.0.0.1 (the origins' TLS)."""
    return make_self_signed(tmp_path_factory.mktemp("origin-cert"))


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One h2scope configuration directory (CA) for the whole session: minting is cached."""
    return tmp_path_factory.mktemp("h2scope-conf")


@pytest.fixture(scope="session")
def docroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("www")
    (root / "index.html").write_text("<html><body>hello from nghttpd</body></html>\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * 4096)
    return root


@pytest.fixture
def make_proxy(confdir: Path, origin_cert: CertFiles) -> Iterator[Callable[..., ProxyThread]]:
    """Start a proxy with Options(**overrides); all are stopped after the test."""
    started: list[ProxyThread] = []

    def make(*, sinks: tuple[object, ...] = (), decode: bool = True,
             **overrides: object) -> ProxyThread:
        opts: dict[str, object] = {"confdir": confdir, "upstream_ca": origin_cert.cert}
        opts.update(overrides)
        proxy = ProxyThread(Options(**opts), sinks, decode=decode)  # type: ignore[arg-type]
        started.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for p in started:
            p.close()


@pytest.fixture
def proxy(make_proxy: Callable[..., ProxyThread]) -> ProxyThread:
    return make_proxy()


@pytest.fixture
def h2_origin(origin_cert: CertFiles) -> Iterator[ServerThread]:
    server = ServerThread(origin_cert.cert, origin_cert.key)
    try:
        yield server
    finally:
        server.close()
