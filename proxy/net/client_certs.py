"""Client certificates for upstream servers that ask for one (mutual TLS).

``upstream.client_certs`` (``--client-certs``) is either one PEM file — the
certificate, any intermediates, and its private key — presented to every
upstream server that requests a certificate, or a directory of ``HOST.pem``
files of that shape, one per upstream host name (the SNI h2scope sends, or
the address): mitmproxy's ``client_certs`` convention. A host without a file
in the directory gets no certificate.

A server that requests a certificate and gets none (or one it does not
accept) ends the handshake with a TLS alert; :func:`explain_alert` turns the
alert into a sentence that says which and what to do.
"""

from __future__ import annotations

import datetime
import functools
import ssl
from pathlib import Path

from cryptography import x509

from proxy.events import ClientCert

CERT_REQUIRED_ALERTS = ("TLSV13_ALERT_CERTIFICATE_REQUIRED",)
"""The server asked for a certificate and got none (TLS 1.3, RFC 8446 §4.4.2.4)."""
CERT_REJECTED_ALERTS = ("SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                        "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
                        "SSLV3_ALERT_CERTIFICATE_EXPIRED", "TLSV1_ALERT_ACCESS_DENIED")
"""What a server answers to a client certificate it does not accept."""
FLAG_HINT = ("give h2scope a client certificate for it with --client-certs FILE|DIR "
             "(upstream.client_certs: one PEM file with the certificate and its key, or a "
             "directory of HOST.pem files)")


def cert_file_for(path: Path | None, host: str) -> Path | None:
    """The PEM file to present to ``host``, if any."""
    if path is None:
        return None
    if path.is_dir():
        candidate = path / f"{host.strip('[]')}.pem"
        return candidate if candidate.is_file() else None
    return path


@functools.lru_cache(maxsize=64)
def describe(pem: Path) -> ClientCert:
    """Whose certificate ``pem`` holds (its first one), for the connection's TLS summary."""
    try:
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
    except (OSError, ValueError):
        return ClientCert(file=str(pem), subject="?", issuer="?", not_after="?")
    return ClientCert(file=str(pem), subject=cert.subject.rfc4514_string(),
                      issuer=cert.issuer.rfc4514_string(),
                      not_after=cert.not_valid_after_utc.astimezone(datetime.UTC).isoformat())


def _no_password() -> bytes:
    return b""  # never OpenSSL's prompt on the proxy's terminal: an encrypted key fails


def present(ctx: ssl.SSLContext, pem: Path) -> None:
    """Have ``ctx`` present the certificate and key in ``pem`` to a server that asks
    (never OpenSSL's password prompt: an encrypted key raises ssl.SSLError)."""
    ctx.load_cert_chain(str(pem), password=_no_password)


def load_problem(pem: Path) -> str | None:
    """Why ``pem`` cannot serve as a client certificate, or None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        present(ctx, pem)
    except ssl.SSLError as exc:  # (an OSError too: first)
        reason = exc.reason or str(exc)
        if "BAD_DECRYPT" in reason or "bad decrypt" in reason.lower():
            return (f"{pem}: its private key is encrypted; h2scope needs it unencrypted "
                    "(openssl pkey -in KEY.pem -out plain.pem), in the same file as the "
                    "certificate")
        return (f"{pem}: no certificate and matching private key could be loaded from it "
                f"({reason}); expected one PEM file with the certificate (chain) and its "
                "unencrypted private key")
    except OSError as exc:
        return f"cannot read {pem}: {exc.strerror or exc}"
    return None


def client_cert_problem(path: Path) -> str | None:
    """Why ``upstream.client_certs`` = ``path`` is unusable, or None (checked at start)."""
    if path.is_dir():
        for pem in sorted(path.glob("*.pem")):
            problem = load_problem(pem)
            if problem:
                return problem
        return None
    if not path.exists():
        return (f"{path} does not exist (expected a PEM file with a certificate and its key, "
                "or a directory of HOST.pem files)")
    return load_problem(path)


def explain_alert(reason: str, host: str, cert: Path | None) -> tuple[str, str | None] | None:
    """A server's TLS alert about client certificates, as (message, hint); None for others."""
    if any(a in reason for a in CERT_REQUIRED_ALERTS):
        if cert is None:
            return (f"{host} requires a client certificate (TLS alert certificate_required) "
                    "and h2scope has none for it", FLAG_HINT)
        return (f"{host} requires a client certificate and did not take the one from {cert} "
                "(TLS alert certificate_required)", None)
    if any(a in reason for a in CERT_REJECTED_ALERTS):
        alert = next(a for a in CERT_REJECTED_ALERTS if a in reason)
        name = alert.split("_ALERT_", 1)[1].lower()
        if cert is None:
            return (f"{host} ended the handshake with TLS alert {name}: if it wants a client "
                    "certificate, h2scope has none for it", FLAG_HINT)
        return (f"{host} rejected the client certificate from {cert} (TLS alert {name})",
                "check that the server trusts its issuer and that it has not expired")
    return None
