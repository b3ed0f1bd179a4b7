"""Minted certificates against OpenSSL's own verifier, run as a subprocess.

``openssl`` is a real peer installed by ``tests/run``; if it is missing these
tests fail rather than skip.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from certs.cli import export_bytes
from certs.store import CertStore

pytestmark = pytest.mark.peer


def openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl is not installed (tests/run installs it)")
    return subprocess.run(
        [exe, *args], input=stdin, capture_output=True, timeout=30, check=False
    )


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("H2SCOPE_HOME", str(tmp_path / "h2scope-home"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> CertStore:
    return CertStore(tmp_path_factory.mktemp("openssl") / "conf")


def write_leaf(store: CertStore, tmp_path: Path, host: str, extra: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "leaf.pem"
    path.write_bytes(store.leaf(host, extra).cert_pem)
    return path


def test_ca_certificate_passes_x509_strict_on_its_own(store: CertStore) -> None:
    result = openssl("verify", "-x509_strict", "-CAfile", str(store.ca_cert_path),
                     str(store.ca_cert_path))  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize(
    ("host", "check"),
    [
        ("www.example.com", ["-verify_hostname", "www.example.com"]),
        ("bücher.example", ["-verify_hostname", "xn--bcher-kva.example"]),
        ("my_bucket.example.com", ["-verify_hostname", "my_bucket.example.com"]),
        ("localhost", ["-verify_hostname", "localhost"]),
        ("127.0.0.1", ["-verify_ip", "127.0.0.1"]),
        ("::1", ["-verify_ip", "::1"]),
        (("x" * 60) + ".example.com", ["-verify_hostname", ("x" * 60) + ".example.com"]),
    ],
)
def test_leaf_passes_openssl_verify_x509_strict(
    store: CertStore, tmp_path: Path, host: str, check: list[str]
) -> None:
    leaf = write_leaf(store, tmp_path, host)
    result = openssl(
        "verify", "-x509_strict", "-purpose", "sslserver", *check,
        "-CAfile", str(store.ca_cert_path), str(leaf),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    assert result.stdout.decode().strip().endswith(": OK")


def test_upstream_wildcard_san_matches_other_names(store: CertStore, tmp_path: Path) -> None:
    leaf = write_leaf(store, tmp_path, "api.example.com", ("*.example.com",))
    result = openssl(
        "verify", "-x509_strict", "-verify_hostname", "cdn.example.com",
        "-CAfile", str(store.ca_cert_path), str(leaf),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()


def test_wrong_hostname_fails_openssl_verify(store: CertStore, tmp_path: Path) -> None:
    leaf = write_leaf(store, tmp_path, "right.example.com")
    result = openssl(
        "verify", "-x509_strict", "-verify_hostname", "wrong.example.com",
        "-CAfile", str(store.ca_cert_path), str(leaf),
    )  # fmt: skip
    assert result.returncode != 0
    assert b"hostname mismatch" in result.stdout + result.stderr


def test_leaf_of_another_ca_fails_openssl_verify(
    store: CertStore, tmp_path: Path
) -> None:
    other = CertStore(tmp_path / "other")
    leaf = write_leaf(other, tmp_path, "www.example.com")
    result = openssl("verify", "-x509_strict", "-CAfile", str(store.ca_cert_path), str(leaf))
    assert result.returncode != 0


def test_chain_file_starts_with_a_leaf_that_verifies(store: CertStore) -> None:
    leaf = store.leaf("chain.example.com")
    result = openssl("verify", "-x509_strict", "-CAfile", str(store.ca_cert_path),
                     str(leaf.chain_path))  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()


def test_spki_hash_matches_openssl(store: CertStore) -> None:
    pubkey = openssl("x509", "-in", str(store.ca_cert_path), "-noout", "-pubkey")
    der = openssl("pkey", "-pubin", "-outform", "DER", stdin=pubkey.stdout)
    digest = openssl("dgst", "-sha256", "-binary", stdin=der.stdout)
    assert base64.b64encode(digest.stdout).decode() == store.ca.spki_hash


def test_fingerprint_matches_openssl(store: CertStore) -> None:
    result = openssl("x509", "-in", str(store.ca_cert_path), "-noout", "-fingerprint", "-sha256")
    assert result.stdout.decode().strip().split("=", 1)[1] == store.ca.fingerprint


def test_openssl_reads_the_der_and_p12_exports(store: CertStore, tmp_path: Path) -> None:
    der = tmp_path / "ca.der"
    der.write_bytes(export_bytes(store.ca, "der"))
    pem_from_der = openssl("x509", "-inform", "DER", "-in", str(der))
    assert pem_from_der.stdout == store.ca.cert_pem
    p12 = tmp_path / "ca.p12"
    p12.write_bytes(export_bytes(store.ca, "p12"))
    result = openssl("pkcs12", "-in", str(p12), "-passin", "pass:", "-nokeys")
    assert result.returncode == 0, result.stderr.decode()
    assert store.ca.cert_pem in result.stdout
    assert b"PRIVATE KEY" not in result.stdout
