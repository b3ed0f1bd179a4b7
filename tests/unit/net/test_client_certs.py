"""Client certificates for upstream servers: what is accepted, what is refused and
how, and how a server's alert about them is explained."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from proxy.config import ConfigError, load_config
from proxy.net.client_certs import (
    FLAG_HINT,
    cert_file_for,
    client_cert_problem,
    explain_alert,
)
from tests.helpers.tls_files import make_self_signed


def pem(directory: Path, name: str = "client", *, password: bytes | None = None) -> Path:
    files = make_self_signed(directory, names=("client.example",), stem=name)
    key = files.key.read_bytes()
    if password is not None:
        loaded = serialization.load_pem_private_key(key, None)
        key = loaded.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.BestAvailableEncryption(password))
    out = directory / f"{name}.pem"
    out.write_bytes(files.cert.read_bytes() + key)
    return out


def test_a_pem_with_certificate_and_key_is_accepted(tmp_path: Path) -> None:
    good = pem(tmp_path)
    assert client_cert_problem(good) is None
    assert cert_file_for(good, "any.example") == good
    assert cert_file_for(None, "any.example") is None


def test_unusable_files_say_what_is_wrong_and_what_is_expected(tmp_path: Path) -> None:
    files = make_self_signed(tmp_path / "c", stem="only")
    problem = client_cert_problem(files.cert)  # a certificate without its key
    assert problem is not None and problem.startswith(f"{files.cert}: no certificate and "
                                                      "matching private key")
    assert "unencrypted private key" in problem
    locked = pem(tmp_path / "e", password=b"secret")
    problem = client_cert_problem(locked)  # never a password prompt on the terminal
    assert problem is not None and "encrypted" in problem
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM at all\n")
    assert "no certificate and matching private key" in (client_cert_problem(garbage) or "")
    missing = tmp_path / "missing.pem"
    assert client_cert_problem(missing) == (
        f"{missing} does not exist (expected a PEM file with a certificate and its key, or "
        "a directory of HOST.pem files)")


def test_a_directory_holds_one_pem_per_host(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.mkdir()
    api = pem(hosts, "api.example")
    assert client_cert_problem(hosts) is None
    assert cert_file_for(hosts, "api.example") == api
    assert cert_file_for(hosts, "www.example") is None
    (hosts / "broken.example.pem").write_text("x")
    assert (client_cert_problem(hosts) or "").startswith(f"{hosts / 'broken.example.pem'}:")


def test_the_config_key_is_checked_at_start(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("upstream:\n  client_certs: nothere.pem\n")
    try:
        load_config(path, {})
    except ConfigError as exc:
        assert (exc.key, exc.line) == ("upstream.client_certs", 2)
        assert f"{tmp_path / 'nothere.pem'} does not exist" in str(exc)
    else:
        raise AssertionError("a missing client_certs file was accepted")
    good = pem(tmp_path)
    assert load_config(path, {"upstream.client_certs": str(good)}).client_certs == good


def test_alerts_about_client_certificates_are_explained(tmp_path: Path) -> None:
    required = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert explain_alert(required, "api.example:443", None) == (
        "api.example:443 requires a client certificate (TLS alert certificate_required) and "
        "h2scope has none for it", FLAG_HINT)
    cert = tmp_path / "c.pem"
    message, hint = explain_alert("TLSV1_ALERT_UNKNOWN_CA", "api.example:443", cert) or ("", "")
    assert message == f"api.example:443 rejected the client certificate from {cert} " \
                      "(TLS alert unknown_ca)"
    assert hint is not None and "trusts its issuer" in hint
    assert explain_alert("SSLV3_ALERT_BAD_CERTIFICATE", "h:1", None) == (
        "h:1 ended the handshake with TLS alert bad_certificate: if it wants a client "
        "certificate, h2scope has none for it", FLAG_HINT)
    assert explain_alert("WRONG_VERSION_NUMBER", "h:1", None) is None
