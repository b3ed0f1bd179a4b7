"""The leaf recipe: names, extensions, validity and serials of minted certificates."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.ca import CertificateAuthority, load_or_create_ca
from certs.leaf import LEAF_LIFETIME, build_leaf_certificate, normalise_sans, upstream_sans
from certs.store import CertStore


def san_of(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_dns_leaf_has_the_name_as_san_and_common_name(shared_store: CertStore) -> None:
    leaf = shared_store.leaf("www.example.com")
    assert san_of(leaf.cert).get_values_for_type(x509.DNSName) == ["www.example.com"]
    cn = leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "www.example.com"
    assert leaf.host == "www.example.com" and leaf.sans == ("www.example.com",)


def test_idn_leaf_carries_the_a_label(shared_store: CertStore) -> None:
    leaf = shared_store.leaf("Bücher.example")
    assert san_of(leaf.cert).get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example"]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "[2001:db8::7]"])
def test_ip_leaf_has_an_ip_address_san_and_no_dns_san(
    shared_store: CertStore, address: str
) -> None:
    leaf = shared_store.leaf(address)
    san = san_of(leaf.cert)
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address(address.strip("[]"))
    ]
    assert san.get_values_for_type(x509.DNSName) == []


def test_upstream_sans_are_added_after_the_host_deduplicated_and_validated(
    shared_store: CertStore,
) -> None:
    leaf = shared_store.leaf(
        "api.example.com",
        ["*.example.com", "example.com", "API.example.com", "bad name!", "f*.x.com", "10.1.2.3"],
    )
    san = san_of(leaf.cert)
    assert san.get_values_for_type(x509.DNSName) == [
        "api.example.com",
        "*.example.com",
        "example.com",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("10.1.2.3")]


def test_leaf_extensions_are_what_strict_verifiers_require(shared_store: CertStore) -> None:
    cert = shared_store.leaf("ext.example.com").cert
    ca = shared_store.ca
    exts = cert.extensions
    bc = exts.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = exts.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = exts.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert aki.value.key_identifier == ca.subject_key_identifier.digest
    ski = exts.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert not exts.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert cert.issuer == ca.cert.subject
    cert.verify_directly_issued_by(ca.cert)


def test_leaf_validity_is_backdated_a_day_and_at_most_397_days(shared_store: CertStore) -> None:
    leaf = shared_store.leaf("validity.example.com")
    now = datetime.datetime.now(datetime.UTC)
    assert leaf.not_before <= now - datetime.timedelta(hours=23)
    assert leaf.not_before >= now - datetime.timedelta(days=1, minutes=1)
    assert leaf.not_after - leaf.not_before <= datetime.timedelta(days=397)
    assert leaf.not_after == leaf.cert.not_valid_after_utc


def test_leaf_never_outlives_its_ca(shared_store: CertStore) -> None:
    ca = shared_store.ca
    near_end = ca.cert.not_valid_after_utc - datetime.timedelta(days=10)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_leaf_certificate(
        ca=ca,
        sans=("late.example.com",),
        public_key=key.public_key(),
        subject_key_identifier=x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
        now=near_end,
    )
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc
    assert datetime.timedelta(days=397) == LEAF_LIFETIME


def test_serials_are_random_128_bit(shared_store: CertStore) -> None:
    serials = [shared_store.leaf(f"serial{i}.example.com").serial for i in range(20)]
    assert len(set(serials)) == 20
    assert all(0 < s < 2**128 for s in serials)
    assert max(s.bit_length() for s in serials) > 120


def test_leaves_share_one_ecdsa_p256_key(shared_store: CertStore) -> None:
    a = shared_store.leaf("a.shared.example").cert.public_key()
    b = shared_store.leaf("b.shared.example").cert.public_key()
    assert isinstance(a, ec.EllipticCurvePublicKey) and isinstance(a.curve, ec.SECP256R1)
    assert a == b


def test_a_name_longer_than_64_characters_lives_in_the_san_only(shared_store: CertStore) -> None:
    host = ("x" * 60) + ".example.com"
    cert = shared_store.leaf(host).cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    assert san_of(cert).get_values_for_type(x509.DNSName) == [host]


def test_normalise_sans_keeps_host_first_and_drops_invalid() -> None:
    assert normalise_sans("a.example", ["b.example", "", "a.example", "x y"]) == (
        "a.example",
        "b.example",
    )


def test_upstream_sans_reads_dns_and_ip_names_from_der(shared_store: CertStore) -> None:
    from cryptography.hazmat.primitives import serialization

    leaf = shared_store.leaf("up.example.com", ["*.up.example.com", "192.0.2.1"])
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    assert upstream_sans(der) == ("up.example.com", "*.up.example.com", "192.0.2.1")
    assert upstream_sans(b"not a certificate") == ()
    ca: CertificateAuthority = shared_store.ca
    assert upstream_sans(ca.cert_der) == ()  # no SAN extension


def test_ca_fixture_is_loaded_not_regenerated(shared_store: CertStore) -> None:
    assert load_or_create_ca(shared_store.confdir).fingerprint == shared_store.ca.fingerprint
