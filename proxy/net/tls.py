"""TLS interception, upstream first (architecture principle 2).

1. The client's ClientHello is already in the client stream's buffer (peeked,
   not consumed) and parsed: SNI and the ALPN list are known.
2. h2scope connects upstream offering *the same* ALPN list, verifying the
   server's certificate (system store + ``upstream_ca``, unless ``insecure``).
3. Only then is the client's handshake finished, with a leaf for the SNI (or
   the target host) that also carries the upstream certificate's names, and
   offering exactly the protocol the server chose — so both legs speak the
   same protocol and no translation is ever needed.

A failure on the server leg ends the client's handshake with a TLS alert
(handshake_failure) and is published with the reason. A client that rejects
h2scope's certificate is recognised by the alert it sends and reported with
the hint to trust the CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.hostnames import InvalidHostname, validate_host
from certs.store import LeafWriteError
from proxy.events import CertSummary, Closer, Leg, TlsEstablished
from proxy.net.client_certs import FLAG_HINT, cert_file_for, describe, explain_alert
from proxy.net.clienthello import ClientHello, iana_cipher, version_name
from proxy.net.context import HANDSHAKE_TIMEOUT, Conn, is_ip
from proxy.net.streams import Stream, StreamClosed, TlsStream

#: OpenSSL reasons for alerts a client sends when it does not trust our certificate.
_UNTRUSTED_ALERTS = ("ALERT_UNKNOWN_CA", "ALERT_BAD_CERTIFICATE", "ALERT_CERTIFICATE_UNKNOWN",
                     "ALERT_UNSUPPORTED_CERTIFICATE", "ALERT_CERTIFICATE_EXPIRED",
                     "ALERT_ACCESS_DENIED")
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                      "HTTP_REQUEST", "UNKNOWN_PROTOCOL"})
"""OpenSSL's reasons for a peer that answered a ClientHello with something not TLS."""
CA_HINT = "trust the h2scope CA in the client: `h2scope ca install-hints` says how"
"""(Short: it ends the connection's note in the UI's one-line status bar.)"""
VERIFY_HINT = ("pass the CA that issued the server's certificate with --upstream-ca FILE "
               "(the server's own CA if it is yours; on a network whose TLS-inspecting "
               "proxy, a corporate or sandbox egress, re-signs every site, that proxy's "
               "CA), or use --insecure to skip upstream verification")


def verify_hint(exc: ssl.SSLCertVerificationError, host: str, upstream_ca: object) -> str:
    """What to do about a server certificate that did not verify, by why it did not
    (``upstream_ca``: the ``--upstream-ca`` given, if any)."""
    code = getattr(exc, "verify_code", None)
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return ("the server's certificate has expired: renew it (or check this machine's "
                "clock), or use --insecure to skip upstream verification")
    if code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
        return ("the server's certificate is not valid yet: check the clocks of this machine "
                "and of whoever issued it, or use --insecure to skip upstream verification")
    if code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        return (f"the server's certificate does not name {host}: connect by a name it has "
                "(its names are in the connection's details), or use --insecure")
    if upstream_ca is not None:
        return (f"the CA in --upstream-ca {upstream_ca} did not issue this chain: pass the one "
                "that did, or use --insecure to skip upstream verification")
    return VERIFY_HINT


class InterceptFailed(Exception):
    """The interception could not complete; the event explaining why is published.
    ``closer``: who ended it (h2scope, unless the client left mid-handshake)."""

    def __init__(self, message: str, closer: Closer = Closer.PROXY) -> None:
        super().__init__(message)
        self.closer = closer


@dataclass(frozen=True, slots=True, kw_only=True)
class Intercepted:
    client: TlsStream
    server: TlsStream
    alpn: str | None
    """The protocol both legs negotiated (None: no ALPN, i.e. HTTP/1.1 or whatever the
    client speaks)."""


def cert_summary(der: bytes | None) -> tuple[CertSummary | None, tuple[str, ...]]:
    """Subject, issuer, SANs and expiry of a DER certificate, plus the SANs as names."""
    if not der:
        return None, ()
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None, ()
    sans: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans += [str(n) for n in ext.get_values_for_type(x509.DNSName)]
        sans += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    not_after = cert.not_valid_after_utc.astimezone(datetime.UTC).isoformat()
    return CertSummary(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                       sans=tuple(sans), not_after=not_after), tuple(sans)


def _alert_context(alert: int) -> ssl.SSLContext:
    """A server context that answers any ClientHello with *alert*."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sni_callback = lambda *_: alert
    return ctx


async def refuse_client(client: Stream, alert: int = ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE,
                        *, raw: bool = False) -> None:
    """End the client's handshake (its ClientHello is in the buffer) with a TLS alert.
    ``raw``: written as a plaintext alert record, without letting OpenSSL read the
    hello (a server name that is not ASCII makes the ssl module fail inside the
    handshake, which then sends internal_error instead)."""
    if raw:
        with contextlib.suppress(StreamClosed, OSError):
            client.write(bytes([21, 3, 3, 0, 2, 2, alert]))  # fatal alert, TLS 1.2 record
            await client.drain()
        return
    tls = TlsStream(client, _alert_context(alert), server_side=True)
    with contextlib.suppress(ssl.SSLError, StreamClosed, OSError, TimeoutError):
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            await tls.handshake()


def _tls_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def client_rejected_cert(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLError) and any(a in (exc.reason or "")
                                                 for a in _UNTRUSTED_ALERTS)


def _summary(tls: TlsStream, leg: Leg, conn: Conn, offered: tuple[str, ...],
             sni: str | None, der: bytes | None, hello: ClientHello | None) -> TlsEstablished:
    cipher = tls.ssl.cipher()
    summary, _ = cert_summary(der)
    return TlsEstablished(conn_id=conn.id, t=time.time(), leg=leg,
                          version=tls.ssl.version() or "?",
                          cipher=iana_cipher(cipher[0]) if cipher else "?",
                          alpn_offered=offered, alpn=tls.ssl.selected_alpn_protocol(), sni=sni,
                          cert=summary, client_hello=hello,
                          client_cert=describe(tls.client_cert) if tls.client_cert else None)


_TLS_VERSIONS = range(0x0301, 0x0305)
"""TLS 1.0 to 1.3 as a ClientHello writes them (ssl.TLSVersion's values are the same)."""
_VERSION_ALERTS = ("UNSUPPORTED_PROTOCOL", "ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE")
"""(WRONG_VERSION_NUMBER is a server that does not speak TLS at all: _NOT_TLS)"""


def offered_versions(hello: ClientHello | None,
                     ) -> tuple[ssl.TLSVersion | None, ssl.TLSVersion | None]:
    """The lowest and highest TLS version a ClientHello offers (supported_versions;
    without it, legacy_version is the highest and the lowest is not said)."""
    if hello is None:
        return None, None
    real = [v for v in hello.supported_versions if v in _TLS_VERSIONS]
    if real:
        return ssl.TLSVersion(min(real)), ssl.TLSVersion(max(real))
    legacy = hello.legacy_version
    return None, ssl.TLSVersion(legacy) if legacy in _TLS_VERSIONS else None


def _versions_text(versions: tuple[ssl.TLSVersion | None, ssl.TLSVersion | None]) -> str:
    low, high = (None if v is None else version_name(v) for v in versions)
    if low is None:
        return f"TLS versions up to {high}"
    return f"{low} to {high}" if low != high else f"{high} only"


def _narrow(versions: tuple[ssl.TLSVersion | None, ssl.TLSVersion | None]) -> bool:
    """Whether the client offered less than TLS 1.2 and 1.3 both (a test client pinned
    to one version, an old library)."""
    low, high = versions
    return (high is not None and high < ssl.TLSVersion.TLSv1_3) or (
        low is not None and low > ssl.TLSVersion.TLSv1_2)


def _version_hint(versions: tuple[ssl.TLSVersion | None, ssl.TLSVersion | None],
                  maybe: bool = False) -> str:
    said = "may have" if maybe else "have"
    return (f"the client offered {_versions_text(versions)}, and h2scope offers the server "
            f"the same versions, so this fails as it would without h2scope: the two {said} "
            "no TLS version in common")


def _certificate_maybe(where: str) -> str:
    return f"if {where} wants a client certificate, h2scope has none for it: {FLAG_HINT}"


async def connect_upstream_tls(conn: Conn, tcp: Stream, host: str, alpn: tuple[str, ...],
                               sni: str | None, hello: ClientHello | None = None) -> TlsStream:
    """TLS handshake with the server over *tcp*, offering what the client's *hello*
    offered (ALPN, TLS versions); publishes TlsEstablished or the error.

    Raises InterceptFailed after publishing the reason.
    """
    server_hostname = sni or host
    cert = cert_file_for(conn.state.options.client_certs, server_hostname)
    versions = offered_versions(hello)
    ctx = conn.state.upstream_context(alpn, cert, versions)
    server = TlsStream(tcp, ctx, server_side=False, server_hostname=server_hostname)
    server.client_cert = cert
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            await server.handshake()
    except (ssl.SSLError, StreamClosed, OSError, TimeoutError) as exc:
        hint = verify_hint(exc, server_hostname, conn.state.options.upstream_ca) \
            if isinstance(exc, ssl.SSLCertVerificationError) else None
        message = f"TLS handshake with {conn.target or host} failed: {_tls_error(exc)}"
        if isinstance(exc, ssl.SSLError):
            explained = explain_alert(exc.reason or str(exc), conn.target or host, cert)
            if explained:  # TLS 1.2: the server refuses within the handshake
                message, hint = explained
            elif "HANDSHAKE_FAILURE" in (exc.reason or "") and cert is None:
                # (TLS 1.2 asks for the certificate within the handshake: a server that
                # gets none may answer with this alert)
                hint = _certificate_maybe(conn.target or host) + (
                    " (a server that shares no cipher suite with h2scope ends the handshake "
                    "this way too)")
            elif any(a in (exc.reason or "") for a in _VERSION_ALERTS) and _narrow(versions):
                hint = _version_hint(versions)
            elif (exc.reason or "") in _NOT_TLS:
                hint = (f"{conn.target or host} does not answer in TLS: if it speaks plain "
                        "HTTP (h2c or HTTP/1.1), use --mode reverse:http://… for it, or an "
                        "http:// URL through the proxy")
        if hint is None and isinstance(exc, StreamClosed) and _narrow(versions):
            # (a server without the client's versions may close without an alert)
            hint = _version_hint(versions, maybe=True)
        elif hint is None and isinstance(exc, StreamClosed) and cert is None:
            # (as may a TLS 1.2 server that asked for a client certificate and got none)
            hint = _certificate_maybe(conn.target or host)
        await conn.error("server-tls", message, hint)
        raise InterceptFailed(_tls_error(exc)) from exc
    sent_sni = None if is_ip(server_hostname) else server_hostname
    await conn.emit(_summary(server, Leg.SERVER, conn, alpn, sent_sni,
                             server.ssl.getpeercert(binary_form=True), None))
    return server


async def accept_client_tls(conn: Conn, client: Stream, hello: ClientHello | None,
                            leaf_host: str, alpn: str | None,
                            extra_sans: tuple[str, ...]) -> TlsStream:
    """Finish the client's handshake with a leaf for *leaf_host*, offering only *alpn*."""
    try:
        ctx = conn.state.client_context(leaf_host, [alpn] if alpn else [], extra_sans)
    except InvalidHostname as exc:
        await conn.error("client-tls", f"no certificate for {leaf_host!r}: {exc}")
        await refuse_client(client, ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME)
        raise InterceptFailed(str(exc)) from exc
    except LeafWriteError as exc:  # (a full disk under the confdir)
        await conn.error("client-tls", str(exc), exc.hint)
        await refuse_client(client, ssl.ALERT_DESCRIPTION_INTERNAL_ERROR)
        raise InterceptFailed(str(exc)) from exc
    tls = TlsStream(client, ctx, server_side=True)
    # (a client that closed while h2scope connected upstream: a flight written to its
    # closed socket does not reach it)
    gone = client.peer_ended
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            await tls.handshake()
    except (ssl.SSLError, StreamClosed, OSError, TimeoutError) as exc:
        if client_rejected_cert(exc):
            hint = CA_HINT
            if conn.state.certs.ca_replaced():  # (checked on a rejection only: rare)
                hint = (f"the CA in {conn.state.certs.ca_cert_path} was replaced after this "
                        "h2scope started (ca regenerate or ca import), and it still signs "
                        "with the old one: restart h2scope")
            await conn.error("client-tls", f"the client rejected h2scope's certificate for "
                             f"{leaf_host} ({_tls_error(exc)})", hint, client_hello=hello)
        elif isinstance(exc, (StreamClosed, ssl.SSLEOFError, ConnectionError)) and \
                hello is not None and \
                conn.state.client_trusts(conn.client[0], leaf_host, hello.stack, conn.opened):
            # (the same client finished a handshake with h2scope's certificate for this
            # host while this one was under way: this one it abandoned — a browser
            # races connections and cancels the spare ones once one works —, no
            # verdict on the certificate)
            raise InterceptFailed(
                f"the client abandoned this connection during the TLS handshake "
                f"({_tls_error(exc)}); it has finished another to {leaf_host} with "
                "h2scope's certificate (a browser's raced or spare connection)",
                Closer.CLIENT) from exc
        elif isinstance(exc, (StreamClosed, ssl.SSLEOFError, ConnectionError)) and \
                (gone or not tls.flight_sent):
            # (gone before h2scope's certificate reached it: a browser cancelling a
            # preconnect or a raced connection, not a verdict on the certificate)
            await conn.error("client-tls", "the client left during the TLS handshake "
                             f"({_tls_error(exc)}), before h2scope's certificate for "
                             f"{leaf_host} reached it", client_hello=hello)
            raise InterceptFailed(_tls_error(exc), Closer.CLIENT) from exc
        elif isinstance(exc, (StreamClosed, ssl.SSLEOFError, ConnectionResetError)):
            # (its ClientHello was whole: it read h2scope's certificate and left)
            await conn.error("client-tls", f"TLS handshake with the client failed: "
                             f"{_tls_error(exc)}, after h2scope's certificate for {leaf_host}",
                             "a client that does not trust the certificate may close without "
                             "saying so (grpc-core and Go do): " + CA_HINT,
                             client_hello=hello)
        else:
            await conn.error("client-tls", f"TLS handshake with the client failed: "
                             f"{_tls_error(exc)}", client_hello=hello)
        raise InterceptFailed(_tls_error(exc)) from exc
    if hello is not None:
        conn.state.client_tls_done(conn.client[0], leaf_host, hello.stack)
    leaf = conn.state.certs.leaf(leaf_host, extra_sans)
    await conn.emit(_summary(tls, Leg.CLIENT, conn, hello.alpn if hello else (),
                             hello.sni if hello else None, leaf.cert.public_bytes(Encoding.DER),
                             hello))
    if hello is not None and hello.alpn and alpn is None and "http/1.1" not in hello.alpn:
        offered = ", ".join(hello.alpn)
        if "h2" in hello.alpn:
            await conn.error("alpn", f"{conn.target or leaf_host} chose none of the protocols "
                             f"the client offered ({offered}) and the client offered no "
                             "HTTP/1.1: the server does not speak HTTP/2 (over TLS)",
                             "check the server's HTTP/2 support, or use a client that can fall "
                             "back to HTTP/1.1 (curl offers h2 and http/1.1)")
        else:  # (h3 is never negotiated over TCP; spdy/3 is long gone)
            await conn.error("alpn", f"the client offered only {offered}, which "
                             f"{conn.target or leaf_host} does not speak over TLS on TCP, and "
                             "neither h2 nor http/1.1",
                             "offer h2 or http/1.1 from the client (ALPN)")
    return tls


async def intercept(conn: Conn, client: Stream, hello: ClientHello, upstream: Stream,
                    host: str) -> Intercepted:
    """Upstream first, then the client. Raises InterceptFailed (event already published)."""
    if hello.sni is not None:
        # Checked before it goes upstream as the server name: no certificate could
        # be made for it anyway, and the ssl module's IDNA codec raises on some.
        try:
            if not hello.sni.isascii():  # (RFC 6066 §3: A-labels; ssl's callback raises)
                raise InvalidHostname(f"hostname {hello.sni!r} is not ASCII (an IDN goes "
                                      "in the SNI as its xn-- A-label)")
            validate_host(hello.sni)
        except InvalidHostname as exc:
            await conn.error("client-tls", f"no certificate for the server name {hello.sni!r} "
                             f"the client sent (SNI): {exc}",
                             "the client's TLS library sent a name that is not a valid host "
                             "name (RFC 6066 §3); nothing was sent to the server")
            await refuse_client(client, ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME,
                                raw=not hello.sni.isascii())
            raise InterceptFailed(str(exc)) from exc
    try:
        server = await connect_upstream_tls(conn, upstream, host, hello.alpn, hello.sni, hello)
    except InterceptFailed:
        await refuse_client(client)
        raise
    alpn = server.ssl.selected_alpn_protocol()
    _, sans = cert_summary(server.ssl.getpeercert(binary_form=True))
    if conn.state.options.insecure:
        # Unverified (--insecure), the server's other names are its own say-so: a
        # leaf the client trusts is made for the name it asked for only.
        sans = ()
    leaf_host = hello.sni or host
    with contextlib.suppress(ValueError):
        leaf_host = str(ipaddress.ip_address(leaf_host))
    client_tls = await accept_client_tls(conn, client, hello, leaf_host, alpn, sans)
    return Intercepted(client=client_tls, server=server, alpn=alpn)
