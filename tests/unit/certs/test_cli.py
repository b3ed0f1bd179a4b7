"""``h2scope ca ...`` through the real entry point, ``proxy.cli.main``, with temporary confdirs."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certs.ca import CA_CERT_FILE, CA_KEY_FILE, load_ca
from certs.store import LEAF_DIR, CertStore
from proxy import cli
from proxy.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ca_command_is_registered() -> None:
    assert "certs.cli" in cli.COMMAND_MODULES


def test_path_prints_only_the_path_and_creates_the_ca(
    confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "ca", "path", "--confdir", str(confdir))
    assert code == 0
    assert out == f"{confdir / CA_CERT_FILE}\n"
    assert "created a new CA" in err
    assert stat.S_IMODE(confdir.stat().st_mode) == 0o700
    code, out, err = run(capsys, "ca", "path", "--confdir", str(confdir))
    assert (code, out, err) == (0, f"{confdir / CA_CERT_FILE}\n", "")


@pytest.mark.parametrize(
    "argv",
    [
        ["--confdir", "{d}", "ca", "path"],
        ["ca", "--confdir", "{d}", "path"],
        ["ca", "path", "--confdir", "{d}"],
    ],
    ids=["before-command", "between", "after-action"],
)
def test_confdir_is_accepted_before_or_after_the_subcommand(
    confdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, _ = run(capsys, *(a.replace("{d}", str(confdir)) for a in argv))
    assert code == 0
    assert out.strip() == str(confdir / CA_CERT_FILE)


def test_h2scope_home_is_the_default_confdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "from-env"
    monkeypatch.setenv("H2SCOPE_HOME", str(home))
    code, out, _ = run(capsys, "ca", "path")
    assert code == 0 and out.strip() == str(home / CA_CERT_FILE)
    assert (home / CA_KEY_FILE).exists()


def test_confdir_flag_beats_h2scope_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("H2SCOPE_HOME", str(tmp_path / "env"))
    code, out, _ = run(capsys, "ca", "path", "--confdir", str(tmp_path / "flag"))
    assert code == 0
    assert out.strip() == str(tmp_path / "flag" / CA_CERT_FILE)
    assert not (tmp_path / "env").exists()


def test_without_either_the_default_is_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("H2SCOPE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, out, _ = run(capsys, "ca", "path")
    assert code == 0
    assert out.strip() == str(tmp_path / "home" / ".h2scope" / CA_CERT_FILE)


def test_show_prints_subject_fingerprints_spki_and_validity(
    confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = CertStore(confdir).ca
    code, out, _ = run(capsys, "ca", "show", "--confdir", str(confdir))
    assert code == 0
    assert ca.cert.subject.rfc4514_string() in out
    assert f"SHA-256 fingerprint:   {ca.fingerprint}" in out
    assert f"SPKI SHA-256 (base64): {ca.spki_hash}" in out
    assert f"{ca.cert.not_valid_after_utc:%Y-%m-%d}" in out
    assert "Not before:" in out and "RSA 2048" in out


@pytest.mark.parametrize(
    ("fmt", "loader"),
    [
        ("pem", x509.load_pem_x509_certificate),
        ("der", x509.load_der_x509_certificate),
    ],
)
def test_export_to_a_file(
    confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, loader: object
) -> None:
    target = tmp_path / f"out.{fmt}"
    code, out, _ = run(
        capsys, "ca", "export", "--format", fmt, "-o", str(target), "--confdir", str(confdir)
    )
    assert code == 0 and out == ""
    assert callable(loader)
    assert loader(target.read_bytes()) == load_ca(confdir).cert
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_export_to_a_missing_directory_is_a_usage_error_like_every_other_o(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "ca.pem"
    code, _, err = run(capsys, "ca", "export", "-o", str(target), "--confdir", str(confdir))
    assert code == 2 and f"cannot write {target}: No such file or directory" in err


def test_export_p12_holds_the_certificate_and_no_key(
    confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ca.p12"
    code, _, _ = run(capsys, "ca", "export", "-o", str(target), "--confdir", str(confdir))
    assert code == 0  # format guessed from the suffix
    bundle = pkcs12.load_pkcs12(target.read_bytes(), None)
    assert bundle.key is None
    assert [c.certificate for c in bundle.additional_certs] == [load_ca(confdir).cert]


def test_export_pem_to_stdout_by_default(
    confdir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["ca", "export", "--confdir", str(confdir)]) == 0
    out, _ = capsysbinary.readouterr()
    assert out == (confdir / CA_CERT_FILE).read_bytes()


def test_export_der_to_stdout_is_binary(
    confdir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["ca", "export", "--format", "der", "--confdir", str(confdir)]) == 0
    out, _ = capsysbinary.readouterr()
    assert x509.load_der_x509_certificate(out) == load_ca(confdir).cert


def test_export_rejects_an_unknown_format(
    confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ca", "export", "--format", "jks", "--confdir", str(confdir)])
    assert info.value.code == 2


def test_install_hints_fill_in_this_ca(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ca", "install-hints", "--confdir", str(confdir))
    ca = load_ca(confdir)
    assert code == 0
    assert f"--ignore-certificate-errors-spki-list={ca.spki_hash}" in out
    assert str(ca.cert_path) in out
    for needle in ("update-ca-certificates", "update-ca-trust", "keytool", "NODE_EXTRA_CA_CERTS"):
        assert needle in out


def test_install_hints_use_the_configured_listen_address_unless_proxy_is_given(
    confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The examples name the port the user's proxy listens on: the config file's
    first regular or upstream mode (a wildcard address through loopback), else
    listen.*; --proxy overrides, --config chooses another file."""
    confdir.mkdir(mode=0o700)
    (confdir / "config.yaml").write_text(
        "modes: [socks5@27011, 'regular@0.0.0.0:27012']\n"
        "listen: {port: 27010, allow_remote: true}\n")
    code, out, _ = run(capsys, "ca", "install-hints", "--confdir", str(confdir))
    assert code == 0
    assert "Examples assume h2scope listens at http://127.0.0.1:27012." in out
    assert "--proxy http://127.0.0.1:27012 https://example.com/" in out
    assert "8080" not in out
    other = tmp_path / "other.yaml"
    other.write_text("listen: {port: 27020}\n")
    code, out, _ = run(capsys, "ca", "install-hints", "--confdir", str(confdir),
                       "--config", str(other))
    assert "listens at http://127.0.0.1:27020." in out
    code, out, _ = run(capsys, "ca", "install-hints", "--confdir", str(confdir),
                       "--proxy", "http://10.0.0.2:3128")
    assert "listens at http://10.0.0.2:3128." in out
    (confdir / "config.yaml").unlink()
    code, out, _ = run(capsys, "ca", "install-hints", "--confdir", str(confdir))
    assert "listens at http://127.0.0.1:8080." in out


@pytest.mark.parametrize(
    "action", ["", "path", "show", "export", "install-hints", "regenerate", "import"])
def test_every_ca_help_has_examples_and_exit_statuses(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ca", *([action] if action else []), "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  h2scope ca " in out
    assert "exit status: 0 " in out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    if action in ("path", "show", "export", "install-hints"):
        assert "1 when the CA files are damaged" in out
    if action in ("regenerate", "import"):
        assert "2 with no terminal to ask" in out or "with no terminal to ask on and no --yes" \
            in out
    if action == "import":
        flat = " ".join(out.split())
        assert "an encrypted key" in flat and "not a CA" in flat
        assert "Cached leaf certificates are deleted; a running proxy keeps signing with the " \
            "old CA until it is restarted." in flat


def test_regenerate_without_tty_and_without_yes_refuses_with_exit_2(
    confdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = CertStore(confdir).ca.fingerprint
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, _, err = run(capsys, "ca", "regenerate", "--confdir", str(confdir))
    assert code == 2
    assert "--yes" in err
    assert load_ca(confdir).fingerprint == before


def test_regenerate_yes_replaces_the_ca_and_lists_trust_stores(
    confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CertStore(confdir)
    store.leaf("old.example")
    before = store.ca.fingerprint
    code, out, _ = run(capsys, "ca", "regenerate", "--yes", "--confdir", str(confdir))
    after = load_ca(confdir)
    assert code == 0
    assert after.fingerprint != before
    assert before in out and after.fingerprint in out
    for store_name in ("update-ca-certificates", "NSS", "keychain", "Windows", "keytool"):
        assert store_name in out
    assert [p.name for p in (confdir / LEAF_DIR).iterdir()] == ["leaf-key.pem"]
    assert "is running" not in out  # (no proxy holds the confdir: nothing to restart)


@pytest.fixture
def tty_stdin(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Make stdin a real terminal (a pty); yields the master fd to type into."""
    master, slave = os.openpty()
    stdin = open(slave, encoding="utf-8")  # noqa: SIM115 - closed below
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        yield master
    finally:
        stdin.close()
        os.close(master)


@pytest.mark.parametrize(("answer", "replaced"), [("y", True), ("n", False), ("", False)])
def test_regenerate_asks_on_a_terminal(
    confdir: Path,
    capsys: pytest.CaptureFixture[str],
    tty_stdin: int,
    answer: str,
    replaced: bool,
) -> None:
    before = CertStore(confdir).ca.fingerprint
    os.write(tty_stdin, f"{answer}\n".encode())
    code, out, _ = run(capsys, "ca", "regenerate", "--confdir", str(confdir))
    assert "Replace the h2scope CA?" in out
    assert (load_ca(confdir).fingerprint != before) is replaced
    assert code == (0 if replaced else 1)


def test_regenerate_works_when_the_old_ca_is_corrupt(
    confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    CertStore(confdir)
    (confdir / CA_CERT_FILE).write_text("garbage")
    code, _, _ = run(capsys, "ca", "regenerate", "--yes", "--confdir", str(confdir))
    assert code == 0
    load_ca(confdir)


@pytest.mark.parametrize("action", ["path", "show", "export", "install-hints"])
@pytest.mark.parametrize("victim", [CA_CERT_FILE, CA_KEY_FILE])
def test_corrupt_ca_files_give_exit_1_naming_the_file(
    confdir: Path, capsys: pytest.CaptureFixture[str], action: str, victim: str
) -> None:
    CertStore(confdir)
    (confdir / victim).write_bytes(b"\x00garbage")
    code, out, err = run(capsys, "ca", action, "--confdir", str(confdir))
    assert code == 1
    assert out == ""
    assert str(confdir / victim) in err
    assert "Traceback" not in err


def test_mismatched_pair_gives_exit_1_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = CertStore(tmp_path / "a"), CertStore(tmp_path / "b")
    a.ca.key_path.write_bytes(b.ca.key_path.read_bytes())
    code, _, err = run(capsys, "ca", "show", "--confdir", str(tmp_path / "a"))
    assert code == 1
    assert "does not belong to" in err and str(a.ca.key_path) in err


def test_group_readable_key_warns_on_stderr_with_the_fix(
    confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = CertStore(confdir).ca
    ca.key_path.chmod(0o644)
    code, out, err = run(capsys, "ca", "path", "--confdir", str(confdir))
    assert code == 0 and out.strip() == str(ca.cert_path)
    assert "h2scope: warning:" in err
    assert f"chmod 600 '{ca.key_path}'" in err


def test_ca_without_an_action_prints_help_and_exits_2(
    confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ca", "--confdir", str(confdir))
    assert code == 2
    assert "install-hints" in err
    assert not confdir.exists()


def _external_ca(directory: Path, *, ca: bool = True, key_cert_sign: bool = True,
                 days: int = 30, password: bytes | None = None,
                 starts_in_days: int = -2) -> tuple[Path, Path]:
    """A CA made elsewhere (as an organisation's or mitmproxy's): cert and key files."""
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Corp Inspection CA")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=starts_in_days))
               .not_valid_after(now + datetime.timedelta(days=max(days, starts_in_days + 1)))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                   crl_sign=key_cert_sign, encipher_only=False, decipher_only=False),
                   critical=True))
    cert = builder.sign(key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, encryption))
    return cert_path, key_path


def test_import_makes_an_existing_ca_h2scopes_and_its_leaves_chain_to_it(
    confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CertStore(confdir)
    store.leaf("old.example")
    cert, key = _external_ca(tmp_path / "corp")
    both = tmp_path / "mitmproxy-ca.pem"  # mitmproxy keeps the two in one file
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    code, out, err = run(capsys, "ca", "import", "--yes", str(both), "--confdir", str(confdir))
    assert code == 0, err
    ca = load_ca(confdir)
    assert ca.cert.public_bytes(serialization.Encoding.PEM) == cert.read_bytes()
    assert "h2scope now signs with CN=Example Corp Inspection CA" in out and ca.spki_hash in out
    assert stat.S_IMODE(os.stat(confdir / CA_KEY_FILE).st_mode) == 0o600
    assert [p.name for p in (confdir / LEAF_DIR).iterdir()] == ["leaf-key.pem"]
    leaf = CertStore(confdir).leaf("api.example")
    assert leaf.cert.issuer == ca.cert.subject
    public = ca.cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and leaf.cert.signature_hash_algorithm
    public.verify(leaf.cert.signature, leaf.cert.tbs_certificate_bytes, padding.PKCS1v15(),
                  leaf.cert.signature_hash_algorithm)  # raises if the CA did not sign it
    code, _, err = run(capsys, "ca", "import", str(cert), str(key), "--confdir", str(confdir))
    assert code == 2 and "--yes" in err  # a CA is there and no terminal to ask on


@pytest.mark.parametrize("problem", ["not a CA", "no keyCertSign", "expired", "not yet valid",
                                     "encrypted", "another key"])
def test_import_refuses_what_cannot_be_a_ca_and_says_why(
    confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    before = CertStore(confdir).ca.fingerprint
    kw = {"not a CA": {"ca": False}, "no keyCertSign": {"key_cert_sign": False},
          "expired": {"days": -1}, "not yet valid": {"starts_in_days": 100},
          "encrypted": {"password": b"secret"}}.get(problem, {})
    cert, key = _external_ca(tmp_path / "x", **kw)  # type: ignore[arg-type]
    if problem == "another key":
        _, key = _external_ca(tmp_path / "y")
    code, _, err = run(capsys, "ca", "import", "--yes", str(cert), str(key),
                       "--confdir", str(confdir))
    assert code == 2
    subject = "CN=Example Corp Inspection CA"
    want = {"not a CA": f"{subject} is not a CA certificate (no basicConstraints CA:TRUE)",
            "no keyCertSign": f"{subject} may not sign certificates (its keyUsage lacks "
                              "keyCertSign)",
            "expired": f"{subject} expired on",
            "not yet valid": f"{subject} is not valid before ",
            "encrypted": "the private key is encrypted; h2scope needs it unencrypted",
            "another key": "the private key does not belong to the certificate"}[problem]
    assert f"ca import: {cert} and {key}: {want}" in err
    assert load_ca(confdir).fingerprint == before  # nothing was replaced



@pytest.mark.parametrize(("kw", "said"), [({"days": -1}, "expired on"),
                                          ({"starts_in_days": 100}, "is not valid before")])
def test_a_ca_out_of_its_validity_on_disk_is_warned_about_when_loaded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, kw: dict[str, int],
        said: str) -> None:
    """A CA put in the confdir by hand (or a clock that is wrong): every leaf it
    signs is rejected, so loading it says so, and what to do."""
    confdir = tmp_path / "conf"
    confdir.mkdir(mode=0o700)
    cert, key = _external_ca(tmp_path / "x", **kw)  # type: ignore[arg-type]
    (confdir / CA_CERT_FILE).write_bytes(cert.read_bytes())
    (confdir / CA_KEY_FILE).write_bytes(key.read_bytes())
    (confdir / CA_KEY_FILE).chmod(0o600)
    with caplog.at_level("WARNING", logger="h2scope"):
        load_ca(confdir)
    assert any(said in r.getMessage() and "h2scope ca regenerate" in r.getMessage()
               for r in caplog.records), caplog.text


def test_import_takes_a_pkcs12_file_and_says_what_to_do_with_a_password(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Organisation CAs and mitmproxy's mitmproxy-ca.p12 come as PKCS#12: 'no PEM
    certificate could be read'."""
    cert, key = _external_ca(tmp_path / "corp")
    x509_cert = x509.load_pem_x509_certificate(cert.read_bytes())
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    plain, locked = tmp_path / "ca.p12", tmp_path / "locked.pfx"
    plain.write_bytes(pkcs12.serialize_key_and_certificates(
        b"ca", private, x509_cert, None, serialization.NoEncryption()))  # type: ignore[arg-type]
    locked.write_bytes(pkcs12.serialize_key_and_certificates(
        b"ca", private, x509_cert, None,  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(b"secret")))
    code, _, err = run(capsys, "ca", "import", "--yes", str(locked), "--confdir", str(confdir))
    assert code == 2 and "the PKCS#12 file has a password" in err
    assert "openssl pkcs12 -in FILE.p12 -nodes -out ca.pem" in err
    code, _, err = run(capsys, "ca", "import", "--yes", str(plain), "--confdir", str(confdir))
    assert code == 0, err
    assert load_ca(confdir).cert == x509_cert
    # mitmproxy-ca-cert.p12: the certificate only, for clients
    cert_only = tmp_path / "mitmproxy-ca-cert.p12"
    cert_only.write_bytes(pkcs12.serialize_key_and_certificates(
        b"ca", None, None, [x509_cert], serialization.NoEncryption()))
    code, _, err = run(capsys, "ca", "import", "--yes", str(cert_only), "--confdir",
                       str(confdir))
    assert code == 2 and "the PKCS#12 file holds no private key, only certificates" in err


def test_import_of_a_certificate_without_its_key_says_to_give_the_key(
        confdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, _key = _external_ca(tmp_path / "x")
    code, _, err = run(capsys, "ca", "import", "--yes", str(cert), "--confdir", str(confdir))
    assert code == 2 and "no PEM private key could be read" in err
    assert f"give it too: h2scope ca import {cert} KEY.pem" in err


def test_a_confdir_others_can_write_to_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Anyone who can write to it can swap in a CA of their own (the key file's
    0600 does not stop a rename)."""
    confdir = tmp_path / "conf"
    confdir.mkdir(mode=0o700)
    load_or_create = CertStore(confdir)  # (creates the CA)
    assert load_or_create.ca is not None
    confdir.chmod(0o777)
    with caplog.at_level("WARNING", logger="h2scope"):
        load_ca(confdir)
    assert any("writable by group/others (mode 0777)" in r.getMessage() and "chmod 700" in
               r.getMessage() for r in caplog.records), caplog.text
    caplog.clear()
    confdir.chmod(0o700)
    with caplog.at_level("WARNING", logger="h2scope"):
        load_ca(confdir)
    assert not caplog.records
