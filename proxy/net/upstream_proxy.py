"""Chaining to another HTTP proxy: the ``upstream:http://HOST:PORT`` mode.

The listener is the explicit proxy of ``regular`` mode; only the way out
differs (mitmproxy's upstream mode). A tunnel (``CONNECT``, then TLS
interception as usual) becomes a ``CONNECT`` to the upstream proxy; a plain
``http://`` request goes to the upstream proxy in absolute form. With
``upstream.auth`` (``--upstream-auth USER:PASS``) both carry
``Proxy-Authorization: Basic``, added on the wire only (never recorded). A
client's own ``Proxy-Authorization`` (for h2scope's ``proxyauth``, or one it
meant for the upstream proxy) never leaves h2scope: the upstream proxy gets
``upstream.auth``'s credentials or none, for tunnels and plain requests alike.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from proxy.net import http1
from proxy.net.http1 import Http1Error, ResponseHead
from proxy.net.modes import Mode, is_loopback
from proxy.net.streams import (
    HeadTooLarge,
    Stream,
    StreamClosed,
    TcpStream,
    connect_failure,
    hostport,
    open_tcp,
)

REPLY_TIMEOUT = 75.0
"""Seconds the upstream proxy has to answer a CONNECT (or a plain request on a
connection just opened to it): longer than squid's own 60 s ``connect_timeout``,
so a proxy still trying the server says so itself; a proxy that took the TCP
connection and never answers (frozen, overloaded) is given up on."""


class UpstreamProxyError(OSError):
    """The upstream proxy refused the tunnel or could not be used; says which and why."""


class UpstreamProxyTimeout(UpstreamProxyError):
    """The upstream proxy did not answer within :data:`REPLY_TIMEOUT` (a 504 for the client)."""


class ClientLeftWaiting(ConnectionError):
    """The client closed while h2scope waited for the upstream proxy's answer."""


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
        raise UpstreamProxyError(f"cannot reach the upstream proxy {mode.address}: "
                                 f"{connect_failure(exc)}") from None


_CHALLENGE = re.compile(r"(?:^|,)\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?=\s|,|$)")
"""An auth-scheme at the start of a challenge (RFC 9110 §11.6.1); an auth-param
(``realm="x"``) is followed by ``=``, so it is not one."""


def offered_schemes(response: ResponseHead) -> list[str]:
    """The auth schemes a 407's ``Proxy-Authenticate`` fields offer, in order."""
    schemes: list[str] = []
    for value in response.get_all("proxy-authenticate"):
        for name in _CHALLENGE.findall(value):
            if name.lower() not in (s.lower() for s in schemes):
                schemes.append(name)
    return schemes


def auth_hint(response: ResponseHead, auth: str | None) -> str:
    """What a 407 from the upstream proxy means for the user, in parentheses."""
    schemes = offered_schemes(response)
    if schemes and not any(s.lower() == "basic" for s in schemes):
        return (f" (it wants {'/'.join(schemes)}, which h2scope does not speak: "
                "--upstream-auth is Basic only; chain through a local relay that does, "
                "such as cntlm or px, and point upstream: at it)")
    if auth:
        return " (it refused the credentials of --upstream-auth)"
    return (" (it wants credentials: --upstream-auth USER:PASS; h2scope never passes a "
            "client's own Proxy-Authorization on)")


def refusal(proxy: str | None, what: str, response: ResponseHead, auth: str | None) -> str:
    """``the upstream proxy P refused WHAT: 407 ... (hint)``."""
    hint = auth_hint(response, auth) if response.status == 407 else ""
    return f"the upstream proxy {proxy} refused {what}: {response.status} {response.reason}{hint}"


async def _client_left(client: Stream) -> bool:
    """Wait until *client* closes (True), or sends more than a tunnel's early bytes
    (False: it is there, and will be answered in time)."""
    try:
        return not await client.peek(lambda b: len(b) > 16384, limit=1 << 20)
    except (ConnectionError, OSError):
        return True
    except HeadTooLarge:
        return False


async def reply_or_gone(stream: Stream, client: Stream | None, timeout: float) -> bytes:
    """The upstream proxy's response head on *stream*, within *timeout*, unless *client*
    leaves first. Raises :class:`TimeoutError`, :class:`ClientLeftWaiting`, or what
    ``read_until`` raises."""
    reply = asyncio.ensure_future(stream.read_until(b"\r\n\r\n"))
    gone = asyncio.ensure_future(_client_left(client)) if client is not None else None
    waits = {reply} if gone is None else {reply, gone}
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            done, _ = await asyncio.wait(waits, timeout=max(0.0, left),
                                         return_when=asyncio.FIRST_COMPLETED)
            if reply in done:
                return reply.result()
            if not done:
                raise TimeoutError()
            assert gone is not None
            if gone.result():
                raise ClientLeftWaiting()
            waits = {reply}  # (the client is there: wait for the answer alone)
    finally:
        for task in (reply, gone):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (reply, gone) if t is not None),
                             return_exceptions=True)


async def connect_via(mode: Mode, auth: str | None, host: str, port: int, *,
                      timeout: float, own: Sequence[tuple[str, int]] = (),
                      client: Stream | None = None) -> TcpStream:
    """A TCP stream to ``host:port`` through the upstream proxy of ``mode``.

    Raises :class:`UpstreamProxyError` (an ``OSError``) with the proxy's answer
    when it refuses or cannot be reached, :class:`UpstreamProxyTimeout` when it
    does not answer within :data:`REPLY_TIMEOUT`, and :class:`ClientLeftWaiting`
    when *client* closes while it is waited for.
    """
    proxy = mode.address
    stream = await open_proxy(mode, timeout=timeout, own=own)
    where = hostport(host, port)
    stream.write(f"CONNECT {where} HTTP/1.1\r\nHost: {where}\r\n".encode("latin-1")
                 + authorization(auth) + b"\r\n")
    try:
        await stream.drain()
        head = await reply_or_gone(stream, client, REPLY_TIMEOUT)
        response = http1.parse_response_head(head)
    except ClientLeftWaiting:
        stream.abort()
        raise
    except TimeoutError:
        stream.abort()
        raise UpstreamProxyTimeout(f"the upstream proxy {proxy} did not answer CONNECT "
                                   f"{where} within {REPLY_TIMEOUT:g} s") from None
    except (StreamClosed, HeadTooLarge, Http1Error, OSError) as exc:
        stream.abort()
        raise UpstreamProxyError(f"the upstream proxy {proxy} did not answer CONNECT {where} "
                                 f"with an HTTP response ({exc})") from None
    if not 200 <= response.status < 300:
        stream.abort()
        raise UpstreamProxyError(refusal(proxy, f"CONNECT {where}", response, auth))
    return stream  # bytes after the head stay in its buffer: the tunnel's first bytes


_ENV_PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def env_proxy_hint(own: Sequence[tuple[str, int]] = (), host: str | None = None) -> str | None:
    """When ``$HTTPS_PROXY``/``$HTTP_PROXY`` names a proxy other than h2scope itself
    (one of ``own``), and ``$NO_PROXY`` does not exempt ``host`` (which a client
    using them would reach directly too): the hint that h2scope does not use it,
    naming the variable as it is set. h2scope ignores them on purpose: they are
    often set to h2scope's own address, for its clients."""
    if host is not None and (_no_proxy(host) or is_loopback(host.strip("[]")) or
                             host.lower().rstrip(".").split(".")[-1] == "localhost"):
        return None  # (clients go to this machine directly whatever the variables say)
    for name in _ENV_PROXIES:
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        try:
            url = urlsplit(value if "://" in value else f"http://{value}")
            address = (url.hostname or "", url.port or 80)
        except ValueError:
            address = ("", 0)
        if any(address[1] == own_port and (address[0] == own_host or is_loopback(address[0]))
               for own_host, own_port in own):  # (h2scope itself: meant for its clients)
            continue
        return (f"h2scope does not use ${name} for its own connections: to go "
                "through that proxy, use --mode upstream:http://HOST:PORT")
    return None


def _no_proxy(host: str) -> bool:
    """Whether ``$NO_PROXY`` (or ``$no_proxy``) exempts *host*, as curl and Go read it:
    ``*``, the host itself, a domain it is in (``example.com`` and ``.example.com``
    both cover ``a.example.com``), or a network an address is in (``10.0.0.0/8``)."""
    value = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = \
            ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in value.split(","):
        entry = entry.strip().lower().lstrip(".")
        if not entry:
            continue
        if entry == "*" or host == entry or host.endswith("." + entry):
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:  # (not a network, or another family: no match)
                continue
    return False
