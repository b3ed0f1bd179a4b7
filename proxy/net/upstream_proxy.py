"""Chaining to another HTTP proxy: the ``upstream:http://HOST:PORT`` mode.

The listener is the explicit proxy of ``regular`` mode; only the way out
differs (mitmproxy's upstream mode). A tunnel (``CONNECT``, then TLS
interception as usual) becomes a ``CONNECT`` to the upstream proxy; a plain
``http://`` request goes to the upstream proxy in absolute form. With
``upstream.auth`` (``--upstream-auth USER:PASS``) both carry
``Proxy-Authorization: Basic``; the client's own credentials for h2scope
(``proxyauth``) never leave h2scope.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from proxy.net import http1
from proxy.net.http1 import Http1Error
from proxy.net.modes import Mode
from proxy.net.streams import HeadTooLarge, StreamClosed, TcpStream, hostport, open_tcp


class UpstreamProxyError(OSError):
    """The upstream proxy refused the tunnel or could not be used; says which and why."""


def authorization(auth: str | None) -> bytes:
    """The ``Proxy-Authorization`` header line for ``USER:PASS`` (with CRLF), or b""."""
    if not auth:
        return b""
    token = base64.b64encode(auth.encode("utf-8")).decode("ascii")
    return f"Proxy-Authorization: Basic {token}\r\n".encode("ascii")


async def open_proxy(mode: Mode, *, timeout: float,
                     own: Sequence[tuple[str, int]] = ()) -> TcpStream:
    """TCP to the upstream proxy of ``mode``; :class:`UpstreamProxyError` says why not
    (also when it is one of ``own``, h2scope's listeners: a loop)."""
    assert mode.host is not None and mode.port is not None
    try:
        return await open_tcp(mode.host, mode.port, timeout=timeout, own=own)
    except (OSError, TimeoutError) as exc:
        why = (exc.strerror if isinstance(exc, OSError) and exc.strerror else
               str(exc) or type(exc).__name__)
        raise UpstreamProxyError(f"cannot reach the upstream proxy {mode.address}: "
                                 f"{why}") from None


async def connect_via(mode: Mode, auth: str | None, host: str, port: int, *,
                      timeout: float, own: Sequence[tuple[str, int]] = ()) -> TcpStream:
    """A TCP stream to ``host:port`` through the upstream proxy of ``mode``.

    Raises :class:`UpstreamProxyError` (an ``OSError``) with the proxy's answer
    when it refuses, and ``OSError``/``TimeoutError`` when it cannot be reached.
    """
    proxy = mode.address
    stream = await open_proxy(mode, timeout=timeout, own=own)
    where = hostport(host, port)
    stream.write(f"CONNECT {where} HTTP/1.1\r\nHost: {where}\r\n".encode("latin-1")
                 + authorization(auth) + b"\r\n")
    try:
        await stream.drain()
        head = await stream.read_until(b"\r\n\r\n")
        response = http1.parse_response_head(head)
    except (StreamClosed, HeadTooLarge, Http1Error, OSError) as exc:
        stream.abort()
        raise UpstreamProxyError(f"the upstream proxy {proxy} did not answer CONNECT {where} "
                                 f"with an HTTP response ({exc})") from None
    if not 200 <= response.status < 300:
        stream.abort()
        hint = ""
        if response.status == 407:
            hint = (" (it wants credentials: --upstream-auth USER:PASS)" if not auth else
                    " (it refused the credentials of --upstream-auth)")
        raise UpstreamProxyError(f"the upstream proxy {proxy} refused CONNECT {where}: "
                                 f"{response.status} {response.reason}{hint}")
    return stream  # bytes after the head stay in its buffer: the tunnel's first bytes
