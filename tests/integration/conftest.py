"""Fixtures for the proxy integration tests: certificates, origins and the proxy itself."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
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


class Served:
    """Starts ``h2scope serve ARGS`` on a free port (call it: the URL comes back) and
    keeps each server's output (its log of requests), readable with :meth:`log`."""

    def __init__(self, confdir: Path) -> None:
        self.confdir = confdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[str, list[str]] = {}
        self.readers: list[threading.Thread] = []

    def __call__(self, *args: str) -> str:
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "-p", "0",
                                 "--confdir", str(self.confdir), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        lines: list[str] = []
        found: list[str] = []
        ready = threading.Event()

        def drain() -> None:  # to the end, so a chatty server never blocks on its pipe
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                lines.append(line)
                m = re.search(r"listening on (\S+?)/ ", line)
                if m and not found:
                    found.append(m.group(1))
                    ready.set()
            ready.set()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        self.readers.append(reader)
        if not ready.wait(15) or not found:
            raise AssertionError("h2scope serve did not start: " + "\n".join(lines))
        url = found[0]
        self.logs[url] = lines
        procs.wait_for_port(int(url.rsplit(":", 1)[1]), None)
        return url

    def log(self, url: str) -> list[str]:
        """What the server at ``url`` has written so far, line by line."""
        return list(self.logs[url])

    def wait_log(self, url: str, text: str, timeout: float = 10, since: int = 0) -> list[str]:
        """The log once a line of it (from line ``since`` on) contains ``text``; fails
        with the log after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.logs[url][since:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the serve log:\n" + "\n".join(self.logs[url]))
            time.sleep(0.02)
        return list(self.logs[url])

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(5)
        for reader in self.readers:
            reader.join(5)
        for proc in self.procs:
            if proc.stdout:
                proc.stdout.close()


@pytest.fixture
def serve(confdir: Path) -> Iterator[Served]:
    """Start ``h2scope serve ARGS`` on a free port; yields a :class:`Served`."""
    served = Served(confdir)
    try:
        yield served
    finally:
        served.close()
