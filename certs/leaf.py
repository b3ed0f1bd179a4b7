"""The leaf certificate recipe: one certificate per intercepted host, signed by the CA.

Pure functions: names must already be validated (:mod:`certs.hostnames`), the
clock is passed in, and nothing touches the disk. :mod:`certs.store` caches
the results and writes the files :mod:`ssl` needs.

Every leaf carries (see docs/certificates.md for the reasoning):

* subjectAltName with the requested host — a dNSName (A-label) or an
  iPAddress — plus the names of the upstream certificate when known, so a
  client that connected to one name of a multi-name or wildcard server still
  matches (RFC 6125 §6.4: clients match the SAN, not the common name);
* basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
  extendedKeyUsage serverAuth (RFC 5280 §4.2.1.12; Apple requires it),
  subject and authority key identifiers (RFC 5280 §4.2.1.1-2; OpenSSL's
  ``-x509_strict`` requires the latter on non-self-signed certificates);
* validity: ``notBefore`` a day in the past for clock skew, total lifetime
  397 days (the CA/Browser Forum limit, BR §6.3.2; Apple allows at most 825
  days even for user-added roots),
  never past the CA's own ``notAfter``;
* a random 128-bit serial (RFC 5280 §4.1.2.2; CA/B Forum BR §7.1 asks for at
  least 64 random bits).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.ca import BACKDATE, CertificateAuthority, random_serial
from certs.hostnames import Host, InvalidHostname, validate_san

log = logging.getLogger("h2scope.certs")

#: Total leaf lifetime, notBefore to notAfter (CA/B Forum BR §6.3.2: 397 days).
LEAF_LIFETIME = datetime.timedelta(days=397)

_LEAF_KEY_USAGE = x509.KeyUsage(
    # RFC 5280 §4.2.1.3 / RFC 8446 §4.4.2.4: an ECDSA TLS key signs the handshake;
    # keyEncipherment applies to RSA key transport only.
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_SERVER_AUTH = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
_NOT_A_CA = x509.BasicConstraints(ca=False, path_length=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Leaf:
    """A minted leaf certificate and the files :mod:`ssl` loads it from."""

    host: Host
    """The normalised host it was minted for (first SAN)."""
    sans: tuple[Host, ...]
    """Every subjectAltName, the host first: A-label DNS names, wildcards, IP addresses."""
    cert: x509.Certificate
    """The certificate."""
    cert_pem: bytes = field(repr=False)
    """The certificate alone, PEM."""
    chain_path: Path
    """PEM file of this certificate followed by the CA certificate (mode 0600)."""
    key_path: Path
    """PEM file of the shared leaf private key (mode 0600)."""
    serial: int
    """The random serial number."""
    not_before: datetime.datetime
    """Start of validity (UTC), backdated for clock skew."""
    not_after: datetime.datetime
    """End of validity (UTC)."""


def normalise_sans(host: Host, extra_sans: Iterable[str | Host]) -> tuple[Host, ...]:
    """The SAN list for a leaf: *host* first, then valid extra names, deduplicated.

    Extra names come from an upstream certificate, i.e. from the network: an
    entry that fails :func:`~certs.hostnames.validate_san` is dropped (and
    logged) rather than put into a certificate or failing the handshake.
    """
    names: dict[Host, None] = {host: None}
    for raw in extra_sans:
        if isinstance(raw, ipaddress.IPv4Address | ipaddress.IPv6Address):
            names.setdefault(raw, None)
            continue
        try:
            names.setdefault(validate_san(raw), None)
        except InvalidHostname as exc:
            log.debug("dropping upstream subjectAltName: %s", exc)
    return tuple(names)


def build_leaf_certificate(
    *,
    ca: CertificateAuthority,
    sans: tuple[Host, ...],
    public_key: ec.EllipticCurvePublicKey,
    subject_key_identifier: x509.SubjectKeyIdentifier,
    now: datetime.datetime,
    serial: int | None = None,
) -> x509.Certificate:
    """Sign a leaf for *sans* (first entry = the host) with the CA key.

    *sans* must come from :func:`normalise_sans`. *subject_key_identifier* is
    passed in because the leaf key is shared: hashing it once saves time per
    leaf.
    """
    host = sans[0]
    not_before = now - BACKDATE
    not_after = min(not_before + LEAF_LIFETIME, ca.cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_subject(host))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(serial if serial is not None else random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # The subject is never empty (O=h2scope), so the SAN is non-critical
        # (RFC 5280 §4.2.1.6).
        .add_extension(x509.SubjectAlternativeName(_general_names(sans)), critical=False)
        .add_extension(_NOT_A_CA, critical=True)
        .add_extension(_LEAF_KEY_USAGE, critical=True)
        .add_extension(_SERVER_AUTH, critical=False)
        .add_extension(subject_key_identifier, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca.subject_key_identifier
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )


def upstream_sans(der: bytes) -> tuple[str, ...]:
    """The dNSName and iPAddress SANs of a DER certificate (e.g. ``getpeercert(True)``).

    Returns text ready for ``extra_sans``; a certificate that does not parse
    or has no SAN gives ``()`` — an upstream's odd certificate must never stop
    interception.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = ext.get_values_for_type(x509.DNSName)
        ips = ext.get_values_for_type(x509.IPAddress)
    except (ValueError, x509.ExtensionNotFound):
        return ()
    addresses = [
        str(ip) for ip in ips if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    ]
    return (*dns, *addresses)


def _subject(host: Host) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "h2scope")]
    text = str(host)
    # RFC 5280 Appendix A: ub-common-name is 64; longer names live in the SAN only.
    if len(text) <= 64:
        attributes.insert(0, x509.NameAttribute(NameOID.COMMON_NAME, text))
    return x509.Name(attributes)


def _general_names(sans: tuple[Host, ...]) -> list[x509.GeneralName]:
    return [
        x509.DNSName(name) if isinstance(name, str) else x509.IPAddress(name) for name in sans
    ]
