"""The CA: created once with the right modes and extensions; damaged files are errors."""

from __future__ import annotations

import datetime
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from certs.ca import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    CAFileError,
    load_ca,
    load_or_create_ca,
    regenerate_ca,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=["umask000", "umask022", "umask077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_first_use_creates_directory_0700_key_0600_cert_0644_whatever_the_umask(
    confdir: Path, umask: int
) -> None:
    ca = load_or_create_ca(confdir)
    assert ca.created
    assert mode(confdir) == 0o700
    assert mode(confdir / CA_KEY_FILE) == 0o600
    assert mode(confdir / CA_CERT_FILE) == 0o644
    assert ca.cert_path == confdir / CA_CERT_FILE
    assert ca.key_path == confdir / CA_KEY_FILE


def test_nested_missing_confdir_is_created(tmp_path: Path) -> None:
    confdir = tmp_path / "a" / "b" / "conf"
    load_or_create_ca(confdir)
    assert mode(confdir) == 0o700


def test_second_use_loads_the_same_ca(confdir: Path) -> None:
    first = load_or_create_ca(confdir)
    second = load_or_create_ca(confdir)
    assert not second.created
    assert second.fingerprint == first.fingerprint
    assert second.cert_pem == (confdir / CA_CERT_FILE).read_bytes()


def test_ca_certificate_has_critical_ca_basic_constraints_and_key_usage(confdir: Path) -> None:
    cert = load_or_create_ca(confdir).cert
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def test_ca_is_rsa_2048_self_signed_sha256(confdir: Path) -> None:
    ca = load_or_create_ca(confdir)
    assert isinstance(ca.key, rsa.RSAPrivateKey) and ca.key.key_size == 2048
    assert ca.cert.issuer == ca.cert.subject
    ca.cert.verify_directly_issued_by(ca.cert)
    assert ca.cert.signature_hash_algorithm is not None
    assert ca.cert.signature_hash_algorithm.name == "sha256"


def test_ca_subject_names_h2scope_user_and_host(confdir: Path) -> None:
    subject = load_or_create_ca(confdir).cert.subject
    cn = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str) and cn.startswith("h2scope CA ") and "@" in cn
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "h2scope"


def test_ca_validity_is_years_and_backdated(confdir: Path) -> None:
    cert = load_or_create_ca(confdir).cert
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now - datetime.timedelta(hours=23)
    assert cert.not_valid_after_utc - now > datetime.timedelta(days=9 * 365)


def test_ca_serial_is_random_and_at_most_20_octets(tmp_path: Path) -> None:
    serials = {load_or_create_ca(tmp_path / str(i)).cert.serial_number for i in range(3)}
    assert len(serials) == 3
    assert all(0 < s < 2**128 for s in serials)


def test_spki_hash_and_fingerprint_are_base64_and_colon_hex(confdir: Path) -> None:
    ca = load_or_create_ca(confdir)
    assert len(ca.spki_hash) == 44 and ca.spki_hash.endswith("=")
    assert len(ca.fingerprint.split(":")) == 32


def test_group_readable_key_warns_with_the_fix(
    confdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_or_create_ca(confdir)
    key = confdir / CA_KEY_FILE
    key.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="h2scope.certs"):
        load_or_create_ca(confdir)
    assert f"chmod 600 '{key}'" in caplog.text
    assert "0640" in caplog.text


def test_private_key_does_not_warn(confdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    load_or_create_ca(confdir)
    with caplog.at_level(logging.WARNING, logger="h2scope.certs"):
        load_or_create_ca(confdir)
    assert caplog.text == ""


@pytest.mark.parametrize("victim", [CA_KEY_FILE, CA_CERT_FILE])
@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ids=["empty", "text", "bad-pem"],
)
def test_corrupt_file_is_an_error_naming_it_and_nothing_is_regenerated(
    confdir: Path, victim: str, garbage: bytes
) -> None:
    load_or_create_ca(confdir)
    (confdir / victim).write_bytes(garbage)
    before = {p.name: p.read_bytes() for p in confdir.iterdir() if p.is_file()}
    with pytest.raises(CAFileError) as info:
        load_or_create_ca(confdir)
    assert info.value.path == confdir / victim
    assert str(confdir / victim) in str(info.value)
    assert "corrupt" in str(info.value)
    assert "h2scope ca regenerate" in str(info.value)
    assert {p.name: p.read_bytes() for p in confdir.iterdir() if p.is_file()} == before


def test_key_of_another_ca_is_a_mismatch_naming_both_files(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    load_or_create_ca(mine)
    load_or_create_ca(other)
    (mine / CA_KEY_FILE).write_bytes((other / CA_KEY_FILE).read_bytes())
    with pytest.raises(CAFileError, match="does not belong to") as info:
        load_or_create_ca(mine)
    assert str(mine / CA_KEY_FILE) in str(info.value)
    assert str(mine / CA_CERT_FILE) in str(info.value)


@pytest.mark.parametrize("victim", [CA_KEY_FILE, CA_CERT_FILE])
def test_one_missing_file_is_an_error_not_a_new_ca(confdir: Path, victim: str) -> None:
    load_or_create_ca(confdir)
    (confdir / victim).unlink()
    with pytest.raises(CAFileError, match="is missing") as info:
        load_or_create_ca(confdir)
    assert info.value.path == confdir / victim
    assert not (confdir / victim).exists()


def test_a_leaf_certificate_in_place_of_the_ca_is_refused(confdir: Path) -> None:
    from certs.store import CertStore

    store = CertStore(confdir)
    leaf_pem = store.leaf("example.com").cert_pem
    (confdir / CA_CERT_FILE).write_bytes(leaf_pem)
    with pytest.raises(CAFileError, match="not a CA certificate"):
        load_ca(confdir)


def test_regenerate_replaces_even_a_corrupt_ca(confdir: Path) -> None:
    old = load_or_create_ca(confdir)
    (confdir / CA_KEY_FILE).write_bytes(b"garbage")
    new = regenerate_ca(confdir)
    assert new.fingerprint != old.fingerprint
    assert load_ca(confdir).fingerprint == new.fingerprint
    assert mode(confdir / CA_KEY_FILE) == 0o600
    assert mode(confdir / CA_CERT_FILE) == 0o644


def test_concurrent_first_use_creates_one_ca(confdir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        cas = list(pool.map(lambda _: load_or_create_ca(confdir), range(8)))
    assert len({ca.fingerprint for ca in cas}) == 1
    assert sum(ca.created for ca in cas) == 1


def test_a_serial_is_written_as_openssl_and_certutil_write_it() -> None:
    from certs.ca import serial_hex

    assert serial_hex(0x0F23D2CF7769A760BDFFA29EF920F1A7) == "0F23D2CF7769A760BDFFA29EF920F1A7"
    assert serial_hex(0xABC) == "0ABC" and serial_hex(0x10) == "10"
