"""Fixtures for the certificate tests: temporary configuration directories only.

Every test runs with ``HOME`` and ``H2SCOPE_HOME`` pointing into its own
temporary directory, so nothing can reach a real ``~/.h2scope``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from certs.store import CertStore


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("H2SCOPE_HOME", str(tmp_path / "h2scope-home"))


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    """A configuration directory that does not exist yet."""
    return tmp_path / "conf"


@pytest.fixture
def store(confdir: Path) -> CertStore:
    """A fresh store with a new CA."""
    return CertStore(confdir)


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertStore]:
    """One store for tests that only read from it (a CA costs an RSA key generation)."""
    yield CertStore(tmp_path_factory.mktemp("shared") / "conf")


Handshake = Callable[[ssl.SSLContext, ssl.SSLContext, str], ssl.SSLObject]
StrictClient = Callable[..., ssl.SSLContext]


def _strict_client_context(ca_file: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


@pytest.fixture
def strict_client() -> StrictClient:
    """``strict_client(ca_file, alpn=None)``: a client context trusting only *ca_file*.

    Verification is strict (``VERIFY_X509_STRICT``, Python 3.13's default) with
    hostname checking on.
    """
    return _strict_client_context


@pytest.fixture
def handshake() -> Handshake:
    """Run a real TLS handshake in memory (``MemoryBIO``); returns the client's SSLObject.

    ``handshake(client_context, server_context, server_hostname)``; raises the
    client's :class:`ssl.SSLError` if verification fails.
    """

    def run(
        client_context: ssl.SSLContext, server_context: ssl.SSLContext, server_hostname: str
    ) -> ssl.SSLObject:
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = client_context.wrap_bio(c_in, c_out, server_hostname=server_hostname)
        server = server_context.wrap_bio(s_in, s_out, server_side=True)
        client_done = server_done = False
        for _ in range(20):
            for obj, done_attr in ((client, "c"), (server, "s")):
                if (client_done if done_attr == "c" else server_done):
                    continue
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    if obj is client:
                        raise
                    # The server failed: deliver its alert to the client.
                    c_in.write(s_out.read())
                    client.do_handshake()
                    raise
                else:
                    if done_attr == "c":
                        client_done = True
                    else:
                        server_done = True
                s_in.write(c_out.read())
                c_in.write(s_out.read())
            if client_done and server_done:
                return client
        raise AssertionError("handshake did not finish")

    return run
