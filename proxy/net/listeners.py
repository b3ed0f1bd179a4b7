"""The per-mode connection handlers: explicit proxy (CONNECT, absolute-form HTTP) and reverse.

SOCKS5 lives in :mod:`proxy.net.socks5`. Each handler gets a fresh
:class:`~proxy.net.context.Conn` and the client stream; the server wraps it
so that every connection ends with exactly one ConnectionClosed and every
stream it opened is closed.
"""

from __future__ import annotations

import contextlib

from proxy.events import Closer
from proxy.net import http1, tls
from proxy.net.clienthello import looks_like_tls
from proxy.net.context import CONNECT_TIMEOUT, Conn, hostport
from proxy.net.h2_refusal import answer_h2, is_h2_preface
from proxy.net.http1 import Http1Error, RequestHead
from proxy.net.relay_http1 import Http1Relay
from proxy.net.streams import TcpStream, connect_failure, open_tcp
from proxy.net.tunnel import (
    FIRST_BYTES_TIMEOUT,
    first_bytes,
    open_tunnel,
    peek_client_hello,
    relay_decrypted,
    relay_plain,
)
from proxy.net.upstream_proxy import UpstreamProxyTimeout
from proxy.observe.enums import CONNECTION_PREFACE


async def handle_regular(conn: Conn, client: TcpStream) -> None:
    """The explicit proxy: CONNECT tunnels and absolute-form plain HTTP."""
    first = await first_bytes(conn, client, None)
    if first == "timeout":
        await conn.closed(Closer.PROXY, f"no request from the client in "
                          f"{FIRST_BYTES_TIMEOUT:.0f} s")
        return
    if first != "client":
        await conn.closed(Closer.CLIENT, "client closed without sending a request")
        return
    if looks_like_tls(bytes(client.buffer[:3])):
        await conn.error("request", "the client started TLS on the proxy port: h2scope is an "
                         "HTTP proxy", "configure the proxy as http://HOST:PORT, not "
                         "https://; or, for clients that connect to h2scope as if it were "
                         "the server, run it with --mode reverse:https://SERVER:PORT")
        await tls.refuse_client(client, 70)  # protocol_version: clear on the client side
        await conn.closed(Closer.PROXY, "TLS sent to the HTTP proxy port")
        return
    if client.buffer[:1] in (b"\x04", b"\x05"):  # (no HTTP request starts so)
        version = client.buffer[0]
        await conn.error("request", f"the client speaks SOCKS{version} to the HTTP proxy "
                         "port", "run h2scope with --mode socks5 as well (a listener of its "
                         "own) and point the client there, or configure the client's proxy "
                         "as http://HOST:PORT")
        # (refused in the client's own protocol: it fails at once, not at its timeout)
        client.write(b"\x05\xff" if version == 5 else b"\x00\x5b" + bytes(6))
        with contextlib.suppress(OSError):
            await client.drain()
        await conn.closed(Closer.PROXY, f"SOCKS{version} sent to the HTTP proxy port")
        return

    async def on_connect(request: RequestHead) -> None:
        await handle_connect(conn, client, request)

    await Http1Relay(conn, client, None, forward_proxy=True, on_connect=on_connect).run()


async def _answer(client: TcpStream, status: int, reason: str, body: str) -> None:
    client.write(http1.simple_response(status, reason, body, extra=(("Connection", "close"),)))
    await client.drain()


async def handle_connect(conn: Conn, client: TcpStream, request: RequestHead) -> None:
    """``CONNECT host:port``: open the server connection first, then answer 200 (or 502)."""
    try:
        host, port = http1.split_authority(request.target, -1)
        if port < 0:
            raise Http1Error(f"CONNECT target {request.target!r} has no port")
    except Http1Error as exc:
        await conn.error("request", f"invalid CONNECT target: {exc}")
        await _answer(client, 400, "Bad Request", f"h2scope: invalid CONNECT target: {exc}\n")
        await conn.closed(Closer.PROXY, "invalid CONNECT target", str(exc))
        return
    where = hostport(host, port)

    async def refuse(reason: str, exc: BaseException) -> None:
        status, phrase = ((504, "Gateway Timeout") if isinstance(exc, UpstreamProxyTimeout)
                          else (502, "Bad Gateway"))
        with contextlib.suppress(ConnectionError, OSError):
            await _answer(client, status, phrase,
                          f"h2scope: cannot connect to {where}: {reason}\n")

    async def accept(server: TcpStream) -> None:
        client.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await client.drain()

    await open_tunnel(conn, client, host, port, via="CONNECT", refuse=refuse, accept=accept)


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _connect_to_itself(head: bytes, host: str, port: int) -> bool:
    """Whether ``head`` opens a CONNECT to the reverse proxy's own server."""
    if not head.startswith(b"CONNECT "):
        return False
    target = head[8:].split(b" ", 1)[0].decode("latin-1").lower()
    name, _, number = target.rpartition(":")
    if not number.isdigit() or int(number) != port:
        return False
    return name == host.lower() or (name in _LOOPBACK and host.lower() in _LOOPBACK)


async def handle_reverse(conn: Conn, client: TcpStream) -> None:
    """Reverse proxy to the mode's fixed target; the client may speak TLS or cleartext."""
    mode = conn.mode
    assert mode.host is not None and mode.port is not None
    host, port = mode.host, mode.port
    first = await first_bytes(conn, client, None)
    if first == "timeout":
        await conn.closed(Closer.PROXY, f"nothing from the client in {FIRST_BYTES_TIMEOUT:.0f} s")
        return
    if first != "client":
        await conn.closed(Closer.CLIENT, "client closed without sending anything")
        return
    hello = None
    if looks_like_tls(bytes(client.buffer[:3])):
        hello = await peek_client_hello(conn, client)
        if hello is None:
            return  # (closed, saying why)
    elif _connect_to_itself(bytes(client.buffer[:300]), host, port):
        # (a client told to use h2scope as its proxy, -x, at a reverse listener: the
        # CONNECT would go to the server as a request. One to another host is let
        # through: the server may be a proxy being debugged.)
        await conn.error("request", f"a CONNECT at the reverse proxy to {hostport(host, port)}",
                         "a client that uses h2scope as its proxy (curl -x, a browser's "
                         "proxy setting) wants the regular listener (--mode regular); this "
                         "one is the server's stand-in: send requests to it directly")
        await _answer(client, 400, "Bad Request", "h2scope: this listener is a reverse proxy "
                      f"to {hostport(host, port)}, not an HTTP proxy: send the request to it "
                      "directly, or use h2scope's regular listener (--mode regular) as the "
                      "proxy\n")
        await conn.closed(Closer.PROXY, "CONNECT sent to a reverse proxy")
        return
    try:
        server_tcp = await open_tcp(host, port, timeout=CONNECT_TIMEOUT,
                                    own=conn.state.listening)
    except (OSError, TimeoutError) as exc:
        reason = connect_failure(exc)
        await conn.error("connect", f"cannot connect to {hostport(host, port)}: {reason}",
                         conn.connect_hint(exc, host))
        if hello is not None:
            await tls.refuse_client(client)
        elif is_h2_preface(bytes(client.buffer[:24])):
            await answer_h2(client, 502,
                            f"h2scope: cannot connect to {hostport(host, port)}: {reason}\n")
        elif http1.looks_like_http1_request(bytes(client.buffer[:24])):
            await _answer(client, 502, "Bad Gateway",
                          f"h2scope: cannot connect to {hostport(host, port)}: {reason}\n")
        await conn.closed(Closer.PROXY, "upstream connection failed", reason)
        return
    conn.streams.append(server_tcp)
    if mode.scheme == "https":
        if hello is not None:
            offers = hello.alpn
        else:
            await client.peek(lambda b: len(b) >= 24 or not CONNECTION_PREFACE.startswith(b),
                              limit=64)
            h2 = bytes(client.buffer[:24]) == CONNECTION_PREFACE
            offers = ("h2",) if h2 else ("http/1.1",)
        try:
            server = await tls.connect_upstream_tls(conn, server_tcp, host, offers, None, hello)
        except tls.InterceptFailed as exc:
            if hello is not None:
                await tls.refuse_client(client)
            elif is_h2_preface(bytes(client.buffer[:24])):
                await answer_h2(client, 502,
                                f"h2scope: TLS to {hostport(host, port)} failed: {exc}\n")
            elif http1.looks_like_http1_request(bytes(client.buffer[:24])):
                await _answer(client, 502, "Bad Gateway",
                              f"h2scope: TLS to {hostport(host, port)} failed: {exc}\n")
            await conn.closed(Closer.PROXY, "upstream TLS failed", str(exc))
            return
        alpn = server.ssl.selected_alpn_protocol()
        if hello is None:
            await relay_plain(conn, client, server, secure=True)
            return
        _, sans = tls.cert_summary(server.ssl.getpeercert(binary_form=True))
        try:
            client_tls = await tls.accept_client_tls(conn, client, hello, hello.sni or host,
                                                     alpn, sans)
        except tls.InterceptFailed as exc:
            await conn.closed(exc.closer, "TLS with the client failed", str(exc))
            return
        await relay_decrypted(conn, client_tls, server, alpn)
        return
    # reverse:http:// — cleartext upstream.
    if hello is not None:
        # TLS on the client leg only: pick the protocol a cleartext upstream can speak.
        alpn = "http/1.1" if "http/1.1" in hello.alpn or not hello.alpn else hello.alpn[0]
        try:
            client_tls = await tls.accept_client_tls(conn, client, hello, hello.sni or host,
                                                     alpn if hello.alpn else None, ())
        except tls.InterceptFailed as exc:
            await conn.closed(exc.closer, "TLS with the client failed", str(exc))
            return
        await relay_plain(conn, client_tls, server_tcp, secure=False)
        return
    await relay_plain(conn, client, server_tcp, secure=False)
