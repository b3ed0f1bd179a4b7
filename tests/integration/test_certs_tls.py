"""Real TLS handshakes on 127.0.0.1 with minted leaves: Python's strict verifier, curl, openssl.

A small threaded HTTPS server presents :meth:`CertStore.server_context`; the
clients trust only the h2scope CA. ``curl`` and ``openssl`` are real peers
installed by ``tests/run``; if missing the tests fail rather than skip.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from certs.sni import dispatching_context
from certs.store import CertStore

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("H2SCOPE_HOME", str(tmp_path / "h2scope-home"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> CertStore:
    return CertStore(tmp_path_factory.mktemp("tls") / "conf")


class TLSServer:
    """Accepts connections on 127.0.0.1, handshakes with *context*, answers one HTTP request."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.alpn: list[str | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.alpn.append(tls.selected_alpn_protocol())
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    tls.sendall(RESPONSE)
            except (ssl.SSLError, OSError) as exc:
                self.errors.append(exc)
            finally:
                conn.close()

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@contextmanager
def serving(context: ssl.SSLContext) -> Iterator[TLSServer]:
    with TLSServer(context) as server:
        yield server


def strict_client(ca_file: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def fetch(
    context: ssl.SSLContext, port: int, server_hostname: str
) -> tuple[bytes, str | None, dict[str, object]]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        alpn, peer = tls.selected_alpn_protocol(), dict(tls.getpeercert() or {})
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_hostname}\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
        return data, alpn, peer


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed (tests/run installs it)")
    return exe


# --- Python's ssl with VERIFY_X509_STRICT ------------------------------------------------


@pytest.mark.parametrize(
    ("host", "server_hostname"),
    [
        ("www.example.com", "www.example.com"),
        ("bücher.example", "bücher.example"),
        ("xn--bcher-kva.example", "bücher.example"),
        ("my_bucket.example.com", "my_bucket.example.com"),
        ("127.0.0.1", "127.0.0.1"),
    ],
    ids=["dns", "idn", "idn-from-a-label-sni", "underscore", "ipv4"],
)
def test_strict_python_client_accepts_a_minted_leaf(
    store: CertStore, host: str, server_hostname: str
) -> None:
    with serving(store.server_context(host, ["http/1.1"])) as server:
        body, alpn, peer = fetch(strict_client(store.ca_cert_path), server.port, server_hostname)
    assert body == RESPONSE
    assert alpn is None  # the client offered no ALPN
    assert server.errors == []
    issuer = {key: value for rdn in peer["issuer"] for key, value in rdn}  # type: ignore[attr-defined]
    assert issuer["organizationName"] == "h2scope"


def test_strict_python_client_rejects_a_wrong_hostname(store: CertStore) -> None:
    with (
        serving(store.server_context("right.example.com", ["http/1.1"])) as server,
        pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"),
    ):
        fetch(strict_client(store.ca_cert_path), server.port, "wrong.example.com")


def test_strict_python_client_rejects_an_ip_the_leaf_does_not_name(store: CertStore) -> None:
    with (
        serving(store.server_context("127.0.0.2", ["http/1.1"])) as server,
        pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"),
    ):
        fetch(strict_client(store.ca_cert_path), server.port, "127.0.0.1")


def test_a_client_trusting_another_ca_rejects_the_leaf(
    store: CertStore, tmp_path: Path
) -> None:
    other = CertStore(tmp_path / "other")
    with (
        serving(store.server_context("www.example.com", ["http/1.1"])) as server,
        # The CA arrives in the chain but is not this client's anchor.
        pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate in cert"),
    ):
        fetch(strict_client(other.ca_cert_path), server.port, "www.example.com")


def test_upstream_wildcard_lets_other_names_of_the_server_match(store: CertStore) -> None:
    context = store.server_context("api.example.org", ["http/1.1"], ["*.example.org"])
    with serving(context) as server:
        body, _, _ = fetch(strict_client(store.ca_cert_path), server.port, "static.example.org")
    assert body == RESPONSE


def test_alpn_h2_is_negotiated_when_offered(store: CertStore) -> None:
    with serving(store.server_context("h2.example.com", ["h2"])) as server:
        _, alpn, _ = fetch(
            strict_client(store.ca_cert_path, ["h2", "http/1.1"]), server.port, "h2.example.com"
        )
    assert alpn == "h2"
    assert server.alpn == ["h2"]


# --- SNI dispatch: per-name leaves, clean failure for malformed names ---------------------


@pytest.fixture
def unraisable() -> Iterator[list[object]]:
    """Collects exceptions Python could not raise (e.g. from inside an SNI callback)."""
    seen: list[object] = []
    old = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = old


def test_sni_dispatch_serves_a_leaf_per_name(store: CertStore, unraisable: list[object]) -> None:
    with serving(dispatching_context(store, ["h2", "http/1.1"])) as server:
        for name in ("one.example.net", "two.example.net", "bücher.example"):
            body, alpn, _ = fetch(strict_client(store.ca_cert_path, ["h2"]), server.port, name)
            assert body == RESPONSE and alpn == "h2"
    assert server.errors == [] and unraisable == []


@pytest.mark.parametrize(
    "bad_name",
    ["bad host!.example", "xn--zzzz.example", "evil/.example", "-lead.example", "1.2.3.999"],
)
def test_malformed_sni_gets_an_unrecognized_name_alert_and_no_certificate(
    store: CertStore, unraisable: list[object], bad_name: str
) -> None:
    client = ssl.create_default_context(cafile=str(store.ca_cert_path))
    client.check_hostname = False  # lets Python send a name it would not verify
    before = len(store.leaf_cache)
    with (
        serving(dispatching_context(store, ["h2"])) as server,
        pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"),
    ):
        fetch(client, server.port, bad_name)
    assert len(store.leaf_cache) == before
    assert all(isinstance(e, ssl.SSLError) for e in server.errors)
    assert unraisable == []


def test_missing_sni_uses_the_default_host(store: CertStore) -> None:
    client = ssl.create_default_context(cafile=str(store.ca_cert_path))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    client.check_hostname = False
    context = dispatching_context(store, ["http/1.1"], default_host="127.0.0.1")
    with (
        serving(context) as server,
        socket.create_connection(("127.0.0.1", server.port)) as raw,
        client.wrap_socket(raw) as tls,  # no server_hostname: no SNI
    ):
        cert = tls.getpeercert()
    assert cert is not None and ("IP Address", "127.0.0.1") in cert["subjectAltName"]


def test_many_asyncio_tasks_connecting_at_once_get_one_leaf(tmp_path: Path) -> None:
    fresh = CertStore(tmp_path / "conf")
    server_context = dispatching_context(fresh, ["http/1.1"])

    async def main() -> set[bytes]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
            await writer.drain()
            writer.close()

        # The SNI callback mints inside the handshake; asyncio runs it on the loop
        # thread, so concurrency here comes from to_thread callers below too.
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]

        async def client() -> bytes:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=strict_client(fresh.ca_cert_path),
                server_hostname="burst.example.com",
            )  # fmt: skip
            writer.write(b"GET / HTTP/1.1\r\nHost: burst.example.com\r\n\r\n")
            await reader.read()
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            return bytes(der)

        minted = asyncio.gather(
            *(asyncio.to_thread(fresh.leaf, "burst.example.com") for _ in range(20))
        )
        ders = await asyncio.gather(*(client() for _ in range(20)))
        await minted
        server.close()
        await server.wait_closed()
        return set(ders)

    assert len(asyncio.run(main())) == 1
    assert fresh.leaf_cache.misses == 1


# --- curl and openssl s_client -------------------------------------------------------------


def run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.peer
@pytest.mark.parametrize(
    ("host", "url_host"),
    [
        ("www.example.com", "www.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("127.0.0.1", "127.0.0.1"),
    ],
    ids=["dns", "idn", "ipv4"],
)
def test_curl_with_cacert_accepts_a_minted_leaf(store: CertStore, host: str, url_host: str) -> None:
    curl = tool("curl")
    with serving(store.server_context(host, ["http/1.1"])) as server:
        argv = [curl, "--silent", "--show-error", "--cacert", str(store.ca_cert_path)]
        if url_host != "127.0.0.1":
            argv += ["--resolve", f"{url_host}:{server.port}:127.0.0.1"]
        result = run_tool([*argv, f"https://{url_host}:{server.port}/"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


@pytest.mark.peer
def test_curl_rejects_a_wrong_hostname(store: CertStore) -> None:
    curl = tool("curl")
    with serving(store.server_context("right.example.com", ["http/1.1"])) as server:
        result = run_tool(
            [curl, "--silent", "--show-error", "--cacert", str(store.ca_cert_path),
             "--resolve", f"wrong.example.com:{server.port}:127.0.0.1",
             f"https://wrong.example.com:{server.port}/"]
        )  # fmt: skip
    assert result.returncode == 60, result.stderr  # CURLE_PEER_FAILED_VERIFICATION


@pytest.mark.peer
def test_openssl_s_client_sees_leaf_plus_ca_and_verifies_strictly(store: CertStore) -> None:
    openssl = tool("openssl")
    with serving(store.server_context("chain.example.com", ["h2"])) as server:
        result = subprocess.run(
            [openssl, "s_client", "-connect", f"127.0.0.1:{server.port}",
             "-servername", "chain.example.com", "-verify_hostname", "chain.example.com",
             "-CAfile", str(store.ca_cert_path), "-x509_strict", "-verify_return_error",
             "-alpn", "h2", "-showcerts"],
            input=b"", capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "Verify return code: 0 (ok)" in out
    assert out.count("-----BEGIN CERTIFICATE-----") == 2  # leaf + CA (Chromium's SPKI list)
    assert "ALPN protocol: h2" in out

