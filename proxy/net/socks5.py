"""SOCKS5 (RFC 1928) with no authentication or username/password (RFC 1929).

Only CONNECT is supported, by name or by address; the tunnel then gets the
same handling as an HTTP CONNECT tunnel (:mod:`proxy.net.tunnel`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from proxy.events import Closer
from proxy.net.context import Conn
from proxy.net.streams import Stream, StreamClosed, TcpStream
from proxy.net.tunnel import open_tunnel

VERSION = 5
NO_AUTH, USERPASS, NO_ACCEPTABLE = 0x00, 0x02, 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04
# RFC 1928 §6 reply codes.
SUCCEEDED, GENERAL_FAILURE, NOT_ALLOWED, NET_UNREACHABLE, HOST_UNREACHABLE = 0, 1, 2, 3, 4
CONNECTION_REFUSED, TTL_EXPIRED, COMMAND_NOT_SUPPORTED, ATYP_NOT_SUPPORTED = 5, 6, 7, 8
HANDSHAKE_TIMEOUT = 30.0


class Socks5Error(Exception):
    """The client broke the protocol; the message says how."""


def reply(code: int, bound: tuple[str, int] = ("0.0.0.0", 0)) -> bytes:
    """A SOCKS5 reply with the bound address (RFC 1928 §6)."""
    try:
        ip = ipaddress.ip_address(bound[0])
    except ValueError:
        ip = ipaddress.ip_address("0.0.0.0")
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes([VERSION, code, 0, atyp]) + ip.packed + bound[1].to_bytes(2, "big")


def _connect_error_code(exc: BaseException) -> int:
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, socket.gaierror):
        return HOST_UNREACHABLE
    if isinstance(exc, TimeoutError):
        return TTL_EXPIRED
    if isinstance(exc, OSError) and exc.errno in (101,):
        return NET_UNREACHABLE
    return HOST_UNREACHABLE


async def _negotiate(conn: Conn, client: Stream) -> tuple[str, int] | None:
    """Greeting, authentication and request; returns the target, or None after replying."""
    head = await client.read_exactly(2)
    if head[0] != VERSION:
        if 0x41 <= head[0] <= 0x5A:  # (an HTTP method's first letter: CONNECT, GET)
            raise Socks5Error(f"not SOCKS5: the client speaks HTTP to the SOCKS5 port "
                              f"({bytes(head)!r}…); point its HTTP proxy at h2scope's "
                              "regular listener (--mode regular), or configure it as "
                              "socks5h://HOST:PORT")
        raise Socks5Error(f"not SOCKS5 (version byte 0x{head[0]:02x})")
    methods = await client.read_exactly(head[1])
    wanted = USERPASS if conn.state.auth_required else NO_AUTH
    if wanted not in methods:
        client.write(bytes([VERSION, NO_ACCEPTABLE]))
        await client.drain()
        what = "username/password" if wanted == USERPASS else "no authentication"
        await conn.error("socks5", f"the client does not offer {what} (methods "
                         f"{list(methods)})", "pass --proxyauth credentials to the client"
                         if wanted == USERPASS else None)
        return None
    client.write(bytes([VERSION, wanted]))
    await client.drain()
    if wanted == USERPASS:
        # RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD; reply VER, STATUS.
        ver, ulen = await client.read_exactly(2)
        if ver != 1:
            raise Socks5Error(f"bad username/password version {ver}")
        user = await client.read_exactly(ulen)
        plen = (await client.read_exactly(1))[0]
        password = await client.read_exactly(plen)
        ok = conn.state.check_userpass(user, password)
        client.write(bytes([1, 0 if ok else 1]))
        await client.drain()
        if not ok:
            await conn.auth_failed(f"SOCKS5 authentication failed: wrong username or password "
                                   f"(user {user.decode('utf-8', 'replace')!r})")
            return None
    ver, cmd, _rsv, atyp = await client.read_exactly(4)
    if ver != VERSION:
        raise Socks5Error(f"bad request version {ver}")
    if atyp == ATYP_IPV4:
        host = str(ipaddress.IPv4Address(await client.read_exactly(4)))
    elif atyp == ATYP_IPV6:
        host = str(ipaddress.IPv6Address(await client.read_exactly(16)))
    elif atyp == ATYP_DOMAIN:
        n = (await client.read_exactly(1))[0]
        host = (await client.read_exactly(n)).decode("ascii", errors="replace")
    else:
        client.write(reply(ATYP_NOT_SUPPORTED))
        await client.drain()
        await conn.error("socks5", f"unsupported address type {atyp}")
        return None
    port = int.from_bytes(await client.read_exactly(2), "big")
    if cmd != CMD_CONNECT:
        client.write(reply(COMMAND_NOT_SUPPORTED))
        await client.drain()
        await conn.error("socks5", f"command {cmd} is not supported (only CONNECT)")
        return None
    return host, port


async def handle_socks5(conn: Conn, client: TcpStream) -> None:
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            target = await _negotiate(conn, client)
    except (Socks5Error, StreamClosed, TimeoutError) as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        await conn.error("socks5", f"SOCKS5 handshake failed: {why}")
        await conn.closed(Closer.PROXY, "SOCKS5 handshake failed", why)
        return
    if target is None:
        await conn.closed(Closer.PROXY, "SOCKS5 request refused", conn.last_error)
        return
    host, port = target

    async def refuse(reason: str, exc: BaseException) -> None:
        client.write(reply(_connect_error_code(exc)))
        await client.drain()

    async def accept(server: TcpStream) -> None:
        sock = server.get_extra_info("sockname")
        client.write(reply(SUCCEEDED, (sock[0], sock[1]) if sock else ("0.0.0.0", 0)))
        await client.drain()

    await open_tunnel(conn, client, host, port, via="SOCKS5", refuse=refuse, accept=accept)
