"""A bare Python TLS byte relay: the reference point the proxy's targets were set against.

    python tests/bench/reference_relay.py --listen-port P --upstream-port U
        --cert C --key K --upstream-ca CA [--hpack]

Reverse-proxy style, TLS on both legs: it accepts TLS on 127.0.0.1:P with
the given certificate (ALPN ``h2``), opens one TLS connection to
127.0.0.1:U per client (ALPN ``h2``, verified against ``CA`` as
``localhost``) and pumps bytes both ways with asyncio streams — read up to
256 KiB, write, drain — until either side closes. Nothing is parsed.

With ``--hpack`` it also splits each direction's bytes into HTTP/2 frames
(after the client's 24-byte preface) and decodes every header block
(HEADERS or PUSH_PROMISE plus its CONTINUATIONs) with one ``hpack.Decoder``
per direction, throwing the fields away: the cost of the least a decoding
proxy must do. Only the benchmark (``bench_proxy.py``) uses it.

It prints "reference relay listening on 127.0.0.1:P" on stderr when ready
and exits on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hpack

CHUNK = 256 * 1024
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
UPSTREAM_NAME = "localhost"
"""The name checked in the upstream's certificate (``make_self_signed`` names it)."""

HEADERS, PUSH_PROMISE, CONTINUATION = 0x1, 0x5, 0x9
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20

Feed = Callable[[bytes], None]


class HeaderBlockDecoder:
    """One direction's bytes in, every header block decoded (and dropped).

    Frames are cut at their 9-byte headers, partial ones kept for the next
    chunk; only HEADERS, PUSH_PROMISE and CONTINUATION payloads are looked at.
    """

    def __init__(self, *, preface: bool) -> None:
        self.buffer = bytearray()
        self.skip = len(PREFACE) if preface else 0
        """Bytes of the client preface still to pass over."""
        self.block = bytearray()
        """The header block being gathered, until END_HEADERS."""
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 20
        self.blocks = 0

    def feed(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if self.skip:
            n = min(self.skip, len(buf))
            del buf[:n]
            self.skip -= n
        pos, size = 0, len(buf)
        while size - pos >= 9:
            end = pos + 9 + int.from_bytes(buf[pos:pos + 3], "big")
            if end > size:
                break
            kind = buf[pos + 3]
            if kind in (HEADERS, PUSH_PROMISE, CONTINUATION):
                self.fragment(kind, buf[pos + 4], bytes(buf[pos + 9:end]))
            pos = end
        del buf[:pos]

    def fragment(self, kind: int, flags: int, payload: bytes) -> None:
        """Add one frame's header block fragment; decode the block at END_HEADERS."""
        if kind != CONTINUATION:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if kind == PUSH_PROMISE:
                payload = payload[4:]  # the promised stream id
            elif flags & PRIORITY:
                payload = payload[5:]  # stream dependency and weight
        self.block += payload
        if flags & END_HEADERS:
            self.decoder.decode(bytes(self.block))
            self.block.clear()
            self.blocks += 1


# ------------------------------------------------------------------ relay


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def client_context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               feed: Feed | None) -> None:
    """Copy *reader* to *writer* until end of file, then close *writer*."""
    try:
        while data := await reader.read(CHUNK):
            if feed is not None:
                feed(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    except hpack.HPACKError as exc:
        print(f"reference relay: ERROR decoding a header block: {exc!r}", file=sys.stderr,
              flush=True)
    finally:
        writer.close()


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


class Relay:
    """The per-connection handler (one upstream connection, two pumps) and its open
    connections, so that a stop ends them before the event loop does."""

    def __init__(self, upstream_port: int, upstream: ssl.SSLContext, *, decode: bool) -> None:
        self.upstream_port = upstream_port
        self.upstream = upstream
        self.decode = decode
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[Any]] = set()

    async def handle(self, c_reader: asyncio.StreamReader,
                     c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(c_writer)
        try:
            await self.relay(c_reader, c_writer)
        finally:
            await close(c_writer)
            self.writers.discard(c_writer)
            self.tasks.discard(task)

    async def relay(self, c_reader: asyncio.StreamReader,
                    c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port, ssl=self.upstream,
                server_hostname=UPSTREAM_NAME)
        except (OSError, ssl.SSLError) as exc:
            print(f"reference relay: ERROR connecting upstream: {exc!r}", file=sys.stderr,
                  flush=True)
            return
        self.writers.add(u_writer)
        up = HeaderBlockDecoder(preface=True).feed if self.decode else None
        down = HeaderBlockDecoder(preface=False).feed if self.decode else None
        try:
            await asyncio.gather(pump(c_reader, u_writer, up), pump(u_reader, c_writer, down))
        finally:
            await close(u_writer)
            self.writers.discard(u_writer)

    async def stop(self, timeout: float = 5.0) -> None:
        """Abort every open connection and let the handlers finish."""
        for writer in self.writers:
            writer.transport.abort()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)


async def serve(args: argparse.Namespace) -> int:
    relay = Relay(args.upstream_port, client_context(args.upstream_ca), decode=args.hpack)
    server = await asyncio.start_server(relay.handle, "127.0.0.1", args.listen_port,
                                        ssl=server_context(args.cert, args.key))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port = server.sockets[0].getsockname()[1]
    print(f"reference relay listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()
        server.close()  # no new connections while the open ones are ended
        await relay.stop()
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen-port", type=int, required=True)
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--cert", type=Path, required=True, help="PEM certificate to serve")
    p.add_argument("--key", type=Path, required=True, help="its private key")
    p.add_argument("--upstream-ca", type=Path, required=True,
                   help="PEM CA the upstream's certificate is verified against")
    p.add_argument("--hpack", action="store_true",
                   help="also decode every header block of both directions")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
