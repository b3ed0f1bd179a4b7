"""Fixtures for the proxy integration tests: certificates, origins and the proxy itself."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import procs
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


@pytest.fixture
def serve(confdir: Path) -> Iterator[Callable[..., str]]:
    """Start ``h2scope serve ARGS`` on a free port; yields a function returning the URL."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> str:
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "-p", "0",
                                 "--confdir", str(confdir), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(proc)
        assert proc.stderr is not None
        deadline = time.monotonic() + 15
        seen = b""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            m = re.search(rb"listening on (\S+?)/ ", line)
            if m:
                url = m.group(1).decode()
                procs.wait_for_port(int(url.rsplit(":", 1)[1]), None)
                return url
            if not line and proc.poll() is not None:
                break
        raise AssertionError(f"h2scope serve did not start: {seen.decode(errors='replace')}")

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()
            proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
