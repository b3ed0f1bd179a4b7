"""The h2scope certificate authority: created once, then loaded — never silently replaced.

Two files in the configuration directory (0700):

* ``h2scope-ca-cert.pem`` — the CA certificate, mode 0644: users copy it into
  trust stores, so it is world-readable.
* ``h2scope-ca-key.pem`` — its private key (PKCS#8, unencrypted), mode 0600.
  Anyone who can read it can impersonate every site to every browser that
  trusts the CA, so a key readable by group or others is reported with the
  command that fixes it.

Users' browsers and systems trust a particular CA, so a damaged or mismatched
pair is an error naming the file — regenerating would silently break every
trust store already set up. Only an absent pair is created, and only
``h2scope ca regenerate`` (:func:`regenerate_ca`) replaces an existing one.

The certificate is built to satisfy strict verifiers (OpenSSL's
``-x509_strict``, Python's ``VERIFY_X509_STRICT``, browsers): see
:func:`build_ca_certificate`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import getpass
import hashlib
import logging
import os
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from certs.files import (
    PUBLIC_FILE_MODE,
    SECRET_FILE_MODE,
    ensure_private_dir,
    locked,
    loose_permissions,
    write_atomic,
)

log = logging.getLogger("h2scope.certs")

CA_CERT_FILE = "h2scope-ca-cert.pem"
CA_KEY_FILE = "h2scope-ca-key.pem"
_LOCK_FILE = ".ca.lock"

#: RSA-2048: every trust store ever shipped accepts it (see docs/certificates.md).
CA_KEY_BITS = 2048
#: Years, not days: a CA that expires means re-trusting it everywhere.
CA_VALIDITY = datetime.timedelta(days=10 * 365)
#: Clock skew between this machine and the client that verifies.
BACKDATE = datetime.timedelta(days=1)

CASigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CAFileError(Exception):
    """A CA file is missing, unreadable, corrupt or does not match its partner.

    ``path`` is the file at fault; the message names it and says what to do.
    """

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateAuthority:
    """A loaded CA: the certificate, its key, and the digests users compare."""

    cert: x509.Certificate
    """The CA certificate."""
    key: CASigningKey
    """The CA private key, used to sign leaves."""
    cert_path: Path
    """Where the certificate lives (PEM); what users install in trust stores."""
    key_path: Path
    """Where the private key lives (PEM, mode 0600)."""
    cert_pem: bytes
    """The certificate in PEM, as stored in :attr:`cert_path`."""
    cert_der: bytes
    """The certificate in DER."""
    fingerprint: str
    """SHA-256 of the DER certificate, colon-separated uppercase hex (as browsers show)."""
    spki_hash: str
    """Base64 SHA-256 of the DER SubjectPublicKeyInfo: Chromium's
    ``--ignore-certificate-errors-spki-list`` value, HPKP-style pin."""
    subject_key_identifier: x509.SubjectKeyIdentifier
    """The CA's key identifier, copied into each leaf's authority key identifier."""
    created: bool
    """True if this call created the CA (it did not exist before)."""


def ca_paths(confdir: Path) -> tuple[Path, Path]:
    """The (certificate, key) paths for a configuration directory."""
    return confdir / CA_CERT_FILE, confdir / CA_KEY_FILE


def load_or_create_ca(confdir: Path) -> CertificateAuthority:
    """Load the CA from *confdir*; create the directory (0700) and CA if both files are absent.

    Raises :class:`CAFileError` if only one file exists, if either cannot be
    read or parsed, or if the key does not belong to the certificate.
    Logs a warning if the key is readable by group/others or the CA expired.
    """
    cert_path, key_path = ca_paths(confdir)
    if not cert_path.exists() and not key_path.exists():
        ensure_private_dir(confdir)
        with locked(confdir / _LOCK_FILE):
            # Another process may have created it while we waited for the lock.
            if not cert_path.exists() and not key_path.exists():
                return _create(confdir)
    return load_ca(confdir)


def load_ca(confdir: Path) -> CertificateAuthority:
    """Load an existing CA; see :func:`load_or_create_ca` for what it raises."""
    cert_path, key_path = ca_paths(confdir)
    for present, missing in ((cert_path, key_path), (key_path, cert_path)):
        if present.exists() and not missing.exists():
            raise CAFileError(
                missing,
                f"CA file {missing} is missing but {present} exists. Restore {missing.name} "
                f"from a backup, or replace both with `h2scope ca regenerate` (every trust "
                f"store holding the old CA must then be updated).",
            )
    key = _load_key(key_path)
    cert = _load_cert(cert_path)
    if _spki_der(cert.public_key()) != _spki_der(key.public_key()):
        raise CAFileError(
            key_path,
            f"CA private key {key_path} does not belong to CA certificate {cert_path}. "
            f"Restore the matching pair from a backup, or replace both with "
            f"`h2scope ca regenerate`.",
        )
    mode = loose_permissions(key_path)
    if mode is not None:
        log.warning(
            "the CA private key %s is readable by group/others (mode %04o): anyone who can "
            "read it can impersonate any site to browsers that trust this CA. Fix it with: "
            "chmod 600 '%s'",
            key_path,
            mode,
            key_path,
        )
    with contextlib.suppress(OSError):
        dir_mode = stat.S_IMODE(os.stat(confdir).st_mode)
        if os.name == "posix" and dir_mode & 0o022:
            log.warning(
                "the directory %s holding the CA is writable by group/others (mode %04o): "
                "anyone who can write there can put in a CA of their own (and read what "
                "h2scope then intercepts). Fix it with: chmod 700 '%s'",
                confdir,
                dir_mode,
                confdir,
            )
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        log.warning(
            "the CA certificate %s expired on %s; replace it with `h2scope ca regenerate`",
            cert_path,
            cert.not_valid_after_utc.date(),
        )
    elif cert.not_valid_before_utc > now:
        log.warning(
            "the CA certificate %s is not valid before %s UTC, so clients reject what it "
            "signs until then: check this machine's clock, or replace it with `h2scope ca "
            "regenerate`",
            cert_path,
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}",
        )
    return _authority(cert, key, cert_path, key_path, created=False)


def regenerate_ca(confdir: Path) -> CertificateAuthority:
    """Replace the CA in *confdir* with a new one, whatever state the old files are in.

    The key is written before the certificate, each atomically, so an
    interruption leaves a mismatched pair that the next load reports — never a
    half-written file.
    """
    ensure_private_dir(confdir)
    with locked(confdir / _LOCK_FILE):
        return _create(confdir)


class CAImportError(ValueError):
    """A certificate/key pair that cannot serve as h2scope's CA; the message says why."""


def pem_from_pkcs12(data: bytes) -> tuple[bytes, bytes]:
    """The certificate and key of a PKCS#12 file (``.p12``, ``.pfx``: how organisation
    CAs and mitmproxy's ``mitmproxy-ca.p12`` come) as PEM, for :func:`import_ca`.

    Raises :class:`CAImportError` when it is not PKCS#12, has a password, or lacks
    the certificate or its key."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, None)
    except ValueError as exc:
        if "password" in str(exc).lower() or "mac" in str(exc).lower():
            raise CAImportError("the PKCS#12 file has a password; h2scope needs the key "
                                "unencrypted: openssl pkcs12 -in FILE.p12 -nodes -out ca.pem, "
                                "then h2scope ca import ca.pem") from None
        raise CAImportError(f"no PEM certificate could be read, nor PKCS#12 "
                            f"({_reason(exc)})") from None
    if key is None:  # (a certificate alone: what clients install, not what signs)
        raise CAImportError("the PKCS#12 file holds no private key, only certificates to "
                            "install in clients (mitmproxy-ca-cert.p12 is one): import the "
                            "file with the key (mitmproxy-ca.pem)")
    if cert is None:
        raise CAImportError("the PKCS#12 file holds a private key but no certificate")
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def import_ca(confdir: Path, cert_pem: bytes, key_pem: bytes, *,
              now: datetime.datetime | None = None) -> CertificateAuthority:
    """Make an existing CA h2scope's (an organisation's CA, or mitmproxy's
    ``mitmproxy-ca.pem``, which holds both): checked, then written as
    :func:`regenerate_ca` writes a new one (key first, 0600).

    Raises :class:`CAImportError` naming what is wrong with the pair.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CAImportError(f"no PEM certificate could be read ({_reason(exc)})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CAImportError("the private key is encrypted; h2scope needs it unencrypted: "
                            "openssl pkey -in KEY.pem -out plain-key.pem") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CAImportError(f"no PEM private key could be read ({_reason(exc)})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CAImportError(f"the private key is a {type(key).__name__}; h2scope signs with "
                            "RSA or EC keys")
    if _spki_der(cert.public_key()) != _spki_der(key.public_key()):
        raise CAImportError("the private key does not belong to the certificate")
    constraints: x509.BasicConstraints | None = None
    with contextlib.suppress(x509.ExtensionNotFound, ValueError):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if constraints is None or not constraints.ca:
        raise CAImportError(f"{cert.subject.rfc4514_string()} is not a CA certificate (no "
                            "basicConstraints CA:TRUE): clients would reject the leaves it "
                            "signs")
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise CAImportError(f"{cert.subject.rfc4514_string()} may not sign certificates "
                                "(its keyUsage lacks keyCertSign)")
    now = now or datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        raise CAImportError(f"{cert.subject.rfc4514_string()} expired on "
                            f"{cert.not_valid_after_utc.date()}")
    if cert.not_valid_before_utc > now:
        raise CAImportError(f"{cert.subject.rfc4514_string()} is not valid before "
                            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: clients would "
                            "reject every certificate it signs until then (is this "
                            "machine's clock right?)")
    cert_path, key_path = ca_paths(confdir)
    ensure_private_dir(confdir)
    with locked(confdir / _LOCK_FILE):
        key_out = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        write_atomic(key_path, key_out, mode=SECRET_FILE_MODE)
        write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM),
                     mode=PUBLIC_FILE_MODE)
    return _authority(cert, key, cert_path, key_path, created=False)


def build_ca_certificate(
    key: CASigningKey, *, subject: x509.Name, now: datetime.datetime
) -> x509.Certificate:
    """The self-signed CA certificate for *key*: the recipe strict verifiers accept."""
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        # RFC 5280 §4.2.1.9: a CA MUST mark basicConstraints critical. pathLen 0:
        # this CA only ever signs leaves, never intermediates.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # RFC 5280 §4.2.1.3: keyCertSign for a CA; critical (CA/Browser Forum BR §7.1.2.1).
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # RFC 5280 §4.2.1.2: CAs MUST include a subject key identifier (OpenSSL's
        # -x509_strict enforces it), non-critical.
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def ca_subject(now: datetime.datetime) -> x509.Name:
    """``CN=h2scope CA user@host, O=h2scope, OU=created YYYY-MM-DD``.

    User and host tell two machines' CAs apart in a trust store; the date tells
    a regenerated CA from the one it replaced.
    """
    common_name = f"h2scope CA {_user()}@{socket.gethostname() or 'localhost'}"
    return x509.Name(
        [
            # RFC 5280 Appendix A: ub-common-name is 64 characters.
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "h2scope"),
            x509.NameAttribute(
                NameOID.ORGANIZATIONAL_UNIT_NAME, f"created {now.date().isoformat()}"
            ),
        ]
    )


def random_serial() -> int:
    """A random positive 128-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 octets)."""
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


def serial_hex(serial: int) -> str:
    """A serial number as openssl and certutil write it: upper-case hex of whole
    octets (``0F23…``, not ``f23…``)."""
    text = f"{serial:X}"
    return "0" * (len(text) % 2) + text


def spki_sha256_base64(cert: x509.Certificate) -> str:
    """Base64 of SHA-256 over the DER SubjectPublicKeyInfo (RFC 7469 §2.4 pin format)."""
    return base64.b64encode(hashlib.sha256(_spki_der(cert.public_key())).digest()).decode()


def colon_hex(digest: bytes) -> str:
    """``AB:CD:...``: how browsers and ``openssl x509 -fingerprint`` print digests."""
    return ":".join(f"{b:02X}" for b in digest)


def _create(confdir: Path) -> CertificateAuthority:
    cert_path, key_path = ca_paths(confdir)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
    cert = build_ca_certificate(key, subject=ca_subject(now), now=now)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(key_path, key_pem, mode=SECRET_FILE_MODE)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE)
    return _authority(cert, key, cert_path, key_path, created=True)


def _authority(
    cert: x509.Certificate,
    key: CASigningKey,
    cert_path: Path,
    key_path: Path,
    *,
    created: bool,
) -> CertificateAuthority:
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    return CertificateAuthority(
        cert=cert,
        key=key,
        cert_path=cert_path,
        key_path=key_path,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        cert_der=cert_der,
        fingerprint=colon_hex(hashlib.sha256(cert_der).digest()),
        spki_hash=spki_sha256_base64(cert),
        subject_key_identifier=ski,
        created=created,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CAFileError(path, f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _load_key(path: Path) -> CASigningKey:
    data = _read(path, "CA private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CAFileError(
            path,
            f"corrupt CA private key {path}: not a readable unencrypted PEM private key "
            f"({_reason(exc)}). Restore it from a backup, or replace the CA with "
            f"`h2scope ca regenerate` (every trust store holding the old CA must then be "
            f"updated).",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CAFileError(
            path, f"CA private key {path} is a {type(key).__name__}; h2scope signs with RSA or EC"
        )
    return key


def _load_cert(path: Path) -> x509.Certificate:
    data = _read(path, "CA certificate")
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CAFileError(
            path,
            f"corrupt CA certificate {path}: not a readable PEM certificate "
            f"({_reason(exc)}). Restore it from a backup, or replace the CA with "
            f"`h2scope ca regenerate` (every trust store holding the old CA must then be "
            f"updated).",
        ) from None
    constraints: x509.BasicConstraints | None = None
    with contextlib.suppress(x509.ExtensionNotFound, ValueError):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if constraints is None or not constraints.ca:
        raise CAFileError(path, f"CA certificate {path} is not a CA certificate (no CA:TRUE)")
    return cert


def _spki_der(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # getuser() raises OSError/KeyError when no user is known
        return "user"
