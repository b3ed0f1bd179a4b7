"""What happens once the proxy knows the target: detect the client's protocol and relay.

Used by CONNECT and SOCKS5 tunnels and by reverse mode. The first bytes
decide: a TLS ClientHello is intercepted (or passed through for an ignored
SNI), the HTTP/2 preface means h2c prior knowledge, an HTTP/1 request line
the HTTP/1.1 relay, and anything else — or a server that speaks first — an
opaque TCP relay (reported, so nothing passes unseen).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from proxy.events import Closer, RelayStarted, TargetChosen
from proxy.net import tls
from proxy.net.clienthello import ClientHello, ClientHelloError, looks_like_tls, parse_client_hello
from proxy.net.context import Conn, hostport
from proxy.net.http1 import looks_like_http1_request
from proxy.net.relay import relay
from proxy.net.relay_http1 import Http1Relay
from proxy.net.streams import HeadTooLarge, Stream, TcpStream, connect_failure
from proxy.net.upstream_proxy import ClientLeftWaiting
from proxy.observe.enums import CONNECTION_PREFACE

FIRST_BYTES_TIMEOUT = 60.0
"""Seconds to wait for either side's first bytes in a new tunnel."""


_PREFACE_LINE = CONNECTION_PREFACE[:16]
"""``PRI * HTTP/2.0\r\n``."""


def _preface_decided(buf: bytearray) -> bool:
    n = min(len(buf), len(CONNECTION_PREFACE))
    return n == len(CONNECTION_PREFACE) or buf[:n] != CONNECTION_PREFACE[:n]


async def first_bytes(conn: Conn, client: Stream, server: Stream | None) -> str:
    """Wait for the first bytes: ``client``, ``server`` (it spoke first), ``eof`` (the
    client ended first, having sent nothing), ``server-eof`` (the server did) or
    ``timeout``."""
    waits = {asyncio.create_task(client.peek(bool)): "client"}
    if server is not None:
        waits[asyncio.create_task(server.peek(bool))] = "server"
    try:
        done, _ = await asyncio.wait(waits, timeout=FIRST_BYTES_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    if not done:
        return "timeout"
    if client.buffer:
        return "client"
    if server is not None and server.buffer:
        return "server"
    if server is not None and any(waits[task] == "server" for task in done):
        return "server-eof"
    return "eof"


async def peek_client_hello(conn: Conn, client: Stream) -> ClientHello | None:
    """The ClientHello at the front of *client*'s buffer (not consumed), or None after
    publishing why not (garbage, truncated, oversized) and closing the connection,
    said as closed by whoever ended it (the proxy refuses garbage with an alert)."""
    hello: ClientHello | None = None

    def complete(buf: bytearray) -> bool:
        nonlocal hello
        hello = parse_client_hello(buf)
        return hello is not None

    try:
        async with asyncio.timeout(tls.HANDSHAKE_TIMEOUT):
            ok = await client.peek(complete, limit=70_000)
    except (ClientHelloError, HeadTooLarge) as exc:
        await conn.error("client-tls", f"invalid TLS ClientHello from the client: {exc}")
        await tls.refuse_client(client, 50)  # RFC 8446 §6.2 decode_error
        await conn.closed(Closer.PROXY, "refused an invalid TLS ClientHello with an alert",
                          conn.last_error)
        return None
    except TimeoutError:
        await conn.error("client-tls", "the client did not finish its ClientHello in time")
        await conn.closed(Closer.PROXY, "no whole TLS ClientHello from the client in time",
                          conn.last_error)
        return None
    except (ConnectionError, OSError) as exc:
        await conn.error("client-tls", f"the client's connection failed in the middle of its "
                         f"ClientHello ({len(client.buffer)} bytes sent): "
                         f"{exc.strerror or type(exc).__name__}")
        await conn.closed(Closer.CLIENT, "no whole TLS ClientHello from the client",
                          conn.last_error)
        return None
    if not ok:
        await conn.error("client-tls", f"the client closed the connection in the middle of "
                         f"its ClientHello ({len(client.buffer)} bytes sent)")
        await conn.closed(Closer.CLIENT, "no whole TLS ClientHello from the client",
                          conn.last_error)
        return None
    return hello


async def started(conn: Conn, protocol: str) -> None:
    await conn.emit(RelayStarted(conn_id=conn.id, t=time.time(), protocol=protocol,
                                 target=conn.target or "?", server_ip=conn.server_ip()))


async def open_tunnel(conn: Conn, client: Stream, host: str, port: int, *, via: str,
                      refuse: Callable[[str, BaseException], Awaitable[None]],
                      accept: Callable[[TcpStream], Awaitable[None]]) -> None:
    """A tunnel a client asked for (``CONNECT``, SOCKS5 ``CONNECT``), to its end.

    Announces the target, connects to it, then tells the client how that went
    in its own protocol: ``refuse(reason, exc)`` when the server cannot be
    reached (the connection is then closed), ``accept(server)`` when it can.
    Hosts matching ``ignore_hosts`` are passed through untouched; the others go
    to :func:`run_tunnel`.
    """
    where = hostport(host, port)
    conn.target = where
    intercept = not conn.state.ignored(host, port)
    # allow_hosts that the target misses may still match the name the client asks TLS
    # for (a client that resolved the name itself tunnels to an address): as mitmproxy,
    # the SNI decides then
    sni_decides = not intercept and bool(conn.state.allow)
    if not sni_decides:  # (else said once decided: one line, not "pass through", then not)
        await conn.emit(TargetChosen(conn_id=conn.id, t=time.time(), target=where, via=via,
                                     intercept=intercept))
    try:
        server = await conn.open_server(host, port, client)
    except ClientLeftWaiting:
        await conn.closed(Closer.CLIENT, "client went away", f"before the upstream proxy "
                          f"{conn.mode.address} answered CONNECT {where}")
        return
    except (OSError, TimeoutError) as exc:
        if sni_decides:  # (nothing left to decide: the target's line, as it stands)
            await conn.emit(TargetChosen(conn_id=conn.id, t=time.time(), target=where,
                                         via=via, intercept=False))
        reason = connect_failure(exc)
        await refuse(reason, exc)
        await conn.error("connect", f"cannot connect to {where}: {reason}",
                         conn.connect_hint(exc, host))
        await conn.closed(Closer.PROXY, "upstream connection failed", reason)
        return
    conn.streams.append(server)
    await accept(server)
    if not intercept and not sni_decides:
        await _pass_through(conn, client, server)
        return
    await run_tunnel(conn, client, server, host, port, undecided=via if sni_decides else None)


async def _pass_through(conn: Conn, client: Stream, server: Stream) -> None:
    await started(conn, "passthrough")
    await relay(conn, client, server, protocol="passthrough", publish=False)


async def run_tunnel(conn: Conn, client: Stream, server: Stream, host: str, port: int, *,
                     undecided: str | None = None) -> None:
    """Relay an established tunnel to *host*:*port* (TCP to the server is open).
    ``undecided``: the target matched no allow_hosts pattern, so the TLS SNI decides
    (intercepted if it matches, else passed through, as any tunnel without TLS); the
    target line, not said yet, is said with the decision (``undecided`` is how the
    target came: ``CONNECT``, ``SOCKS5``)."""

    async def decided(intercept: bool) -> None:
        if undecided is not None:
            await conn.emit(TargetChosen(conn_id=conn.id, t=time.time(),
                                         target=hostport(host, port), via=undecided,
                                         intercept=intercept))

    first = await first_bytes(conn, client, server)
    if undecided is not None and first != "client":
        # (nothing to decide by: passed through, as the target's verdict says; an idle
        # tunnel stays open, as one ignore_hosts passes through does)
        await decided(False)
        await _pass_through(conn, client, server)
        return
    if first == "eof":
        await conn.closed(Closer.CLIENT, "client closed the tunnel without sending anything")
        return
    if first == "server-eof":
        await conn.error("connect", f"{conn.target or 'the server'} closed the connection as "
                         "soon as it was made, before either side sent anything",
                         "a server that accepts and closes at once: its listen backlog, a "
                         "firewall or a crashing worker")
        await conn.closed(Closer.SERVER, "the server closed the tunnel before anything was sent")
        return
    if first == "timeout":
        await conn.closed(Closer.PROXY, "no bytes from either side in "
                          f"{FIRST_BYTES_TIMEOUT:.0f} s")
        return
    if first == "server" or not looks_like_tls(bytes(client.buffer[:3])):
        if undecided is not None:  # (no TLS, no name: the target's verdict stands)
            await decided(False)
            await _pass_through(conn, client, server)
            return
        await relay_plain(conn, client, server, secure=False, server_first=first == "server")
        return
    hello = await peek_client_hello(conn, client)
    if hello is None:
        return  # (closed, saying why)
    if undecided is not None:
        allowed = bool(hello.sni) and not conn.state.ignored(hello.sni or "", port)
        await decided(allowed)
        if not allowed:
            await _pass_through(conn, client, server)
            return
        await conn.emit(TargetChosen(conn_id=conn.id, t=time.time(),
                                     target=hostport(hello.sni or "", port), via="TLS SNI",
                                     intercept=True))
    elif hello.sni and not conn.state.allow and conn.state.ignored(hello.sni, port):
        # (the target line said intercept: the name the client asks TLS for decides; with
        # allow_hosts, a target that matched is intercepted whatever its SNI)
        await conn.emit(TargetChosen(conn_id=conn.id, t=time.time(),
                                     target=hostport(hello.sni, port), via="TLS SNI",
                                     intercept=False))
        await _pass_through(conn, client, server)
        return
    try:
        legs = await tls.intercept(conn, client, hello, server, host)
    except tls.InterceptFailed as exc:
        await conn.closed(exc.closer, "TLS interception failed" if exc.closer is Closer.PROXY
                          else "the client left during the TLS handshake", str(exc))
        return
    await relay_decrypted(conn, legs.client, legs.server, legs.alpn)


async def relay_decrypted(conn: Conn, client: Stream, server: Stream, alpn: str | None) -> None:
    if alpn == "h2":
        await started(conn, "h2")
        await relay(conn, client, server, protocol="h2",
                    observer=conn.state.new_observer())
    else:
        await relay_plain(conn, client, server, secure=True)


async def relay_plain(conn: Conn, client: Stream, server: Stream, *, secure: bool,
                      server_first: bool = False) -> None:
    """Relay cleartext (over TLS or not): h2 by preface, HTTP/1 by request line, else TCP."""
    if not server_first:
        try:
            async with asyncio.timeout(FIRST_BYTES_TIMEOUT):
                await client.peek(_preface_decided, limit=64)
        except TimeoutError:
            pass
    data = bytes(client.buffer[:24])
    # The whole preface, or its request line followed by something else (RFC 9113
    # §3.4 reserves "PRI *" for it): HTTP/2 either way, and the observer says what
    # is wrong with a broken one — as an HTTP/1.1 request it would hang.
    if not server_first and len(data) == 24 and data.startswith(_PREFACE_LINE):
        protocol = "h2" if secure else "h2c"
        await started(conn, protocol)
        await relay(conn, client, server, protocol=protocol,
                    observer=conn.state.new_observer())
    elif not server_first and looks_like_http1_request(data):
        await started(conn, "http/1.1")
        await Http1Relay(conn, client, server, scheme="https" if secure else "http").run()
    elif not server_first and not data and client.at_eof:
        # Nothing sent, and gone: typically a client that found no protocol it wanted
        # in the TLS handshake (see the alpn event), not a protocol to relay.
        server.abort()
        await conn.closed(Closer.CLIENT, "the client closed the connection without sending "
                          "anything" + (" after the TLS handshake" if secure else ""))
    else:
        why = "the server spoke first" if server_first else \
            f"the client's first bytes ({data[:16]!r}) are neither TLS nor HTTP"
        await conn.error("detect", f"{why}: relaying opaque bytes", None)
        await started(conn, "tcp")
        await relay(conn, client, server, protocol="tcp")
