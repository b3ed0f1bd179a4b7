"""Choosing the leaf during the TLS handshake, and failing cleanly on a bad SNI.

The proxy normally reads the ClientHello first and calls
:meth:`CertStore.server_context` with the SNI it found. Either way a malformed
name must end the handshake with a TLS alert — ``unrecognized_name``, the
alert RFC 6066 §3 defines for a server name it will not serve — and never
with an exception trace or a certificate for garbage.

:func:`dispatching_context` packages that: a server context whose SNI
callback validates the name, switches the connection to the leaf's context
(``ssl_object.context = ...``; OpenSSL selects the certificate and ALPN after
the callback) or answers with the alert.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence

from certs.hostnames import InvalidHostname
from certs.store import CertStore

log = logging.getLogger("h2scope.certs")

SNICallback = Callable[[ssl.SSLObject | ssl.SSLSocket, str | None, ssl.SSLContext], int | None]


def make_sni_callback(
    store: CertStore, alpn: Sequence[str], *, default_host: str | None = None
) -> SNICallback:
    """An ``SSLContext.sni_callback`` that serves the leaf for the client's SNI.

    A client that sends no SNI (e.g. it connected to an IP address) gets the
    leaf for *default_host* — the CONNECT target — or ``unrecognized_name``
    without one. Minting failures other than a bad name give
    ``internal_error`` and are logged, never raised into OpenSSL.
    """
    protocols = tuple(alpn)

    def on_server_name(
        conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        host = server_name if server_name is not None else default_host
        if host is None:
            log.info("TLS client sent no server name and no default host is known")
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        try:
            conn.context = store.server_context(host, protocols)
        except InvalidHostname as exc:
            log.info("refusing TLS handshake: %s", exc)
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        except Exception:
            log.exception("could not provide a certificate for %r", host)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    return on_server_name


def dispatching_context(
    store: CertStore, alpn: Sequence[str], *, default_host: str | None = None
) -> ssl.SSLContext:
    """A server context that picks the leaf per SNI; see :func:`make_sni_callback`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.sni_callback = make_sni_callback(store, alpn, default_host=default_host)
    return context
