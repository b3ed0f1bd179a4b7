"""The ``http://h2scope/`` page: download the CA certificate and read how to trust it.

While the proxy runs, a plain-HTTP request through it to the host ``h2scope``
is answered by h2scope itself with :func:`respond`, a pure function of the
request path — no sockets, no files — so the proxy calls it and tests check
it directly.

The page shows no path of the machine the proxy runs on: it may be reached
from other devices (a phone set up to use the proxy).
"""

from __future__ import annotations

import html
from typing import NamedTuple

from certs.ca import CertificateAuthority
from certs.hints import DEFAULT_PROXY_URL, render_hints

PEM_PATH = "/cert/pem"
DER_PATH = "/cert/der"
PEM_FILENAME = "h2scope-ca-cert.pem"
DER_FILENAME = "h2scope-ca-cert.cer"

HTML_TYPE = "text/html; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
PEM_TYPE = "application/x-pem-file"
#: The type browsers and Android recognise as "install this CA certificate".
DER_TYPE = "application/x-x509-ca-cert"


# A NamedTuple rather than a dataclass: callers unpack it as the
# (status, content-type, body) triple an HTTP response is built from.
class PageResponse(NamedTuple):
    """An HTTP response for the proxy to send: status code, Content-Type, body."""

    status: int
    content_type: str
    body: bytes


def respond(path: str, *, ca: CertificateAuthority, proxy_url: str | None = None) -> PageResponse:
    """The response for a GET of *path* on ``http://h2scope/``.

    ``/`` is the HTML page, ``/cert/pem`` and ``/cert/der`` the certificate;
    a query string or fragment is ignored; anything else is 404.
    """
    route = path.split("?", 1)[0].split("#", 1)[0] or "/"
    if route == "/":
        return PageResponse(200, HTML_TYPE, _index(ca, proxy_url).encode("utf-8"))
    if route == PEM_PATH:
        return PageResponse(200, PEM_TYPE, ca.cert_pem)
    if route == DER_PATH:
        return PageResponse(200, DER_TYPE, ca.cert_der)
    return PageResponse(404, TEXT_TYPE, b"Not found. The h2scope CA page is at http://h2scope/\n")


def download_filename(path: str) -> str | None:
    """The file name to offer in ``Content-Disposition: attachment`` for *path*, if any."""
    route = path.split("?", 1)[0].split("#", 1)[0]
    return {PEM_PATH: PEM_FILENAME, DER_PATH: DER_FILENAME}.get(route)


def _index(ca: CertificateAuthority, proxy_url: str | None) -> str:
    hints = render_hints(ca, cert_file=PEM_FILENAME, proxy_url=proxy_url or DEFAULT_PROXY_URL)
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>h2scope CA certificate</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; }}
pre {{ background: #f4f4f4; padding: 1rem; overflow-x: auto; }}
code {{ word-break: break-all; }}
</style>
</head>
<body>
<h1>h2scope CA certificate</h1>
<p>This proxy intercepts TLS with certificates signed by this CA. Trust it only on
devices you are debugging.</p>
<ul>
<li><a href="{PEM_PATH}" download="{PEM_FILENAME}">Download PEM</a> (Linux, macOS, Firefox,
Java, curl, Python, Node, Go)</li>
<li><a href="{DER_PATH}" download="{DER_FILENAME}">Download DER</a> (Windows, Android, iOS)</li>
</ul>
<table>
<tr><th align="left">Subject</th><td><code>{esc(ca.cert.subject.rfc4514_string())}</code></td></tr>
<tr><th align="left">SHA-256</th><td><code>{esc(ca.fingerprint)}</code></td></tr>
<tr><th align="left">SPKI SHA-256</th><td><code>{esc(ca.spki_hash)}</code></td></tr>
</table>
<h2>How to trust it</h2>
<pre>{esc(hints)}</pre>
</body>
</html>
"""
