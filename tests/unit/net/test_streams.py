"""TLS streams: a read takes everything already received (up to CHUNK_SIZE), in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections import deque
from pathlib import Path

from proxy.net.streams import CHUNK_SIZE, Stream, TlsStream
from tests.helpers.tls_files import make_self_signed


class Pipe(Stream):
    """One end of an in-memory byte pipe: what the other end writes, this end reads."""

    def __init__(self) -> None:
        super().__init__()
        self.peer: Pipe | None = None
        self.inbox: deque[bytes] = deque()
        self.arrived = asyncio.Event()
        self.eof = False

    async def _recv(self) -> bytes:
        while not self.inbox and not self.eof:
            self.arrived.clear()
            await self.arrived.wait()
        return self.inbox.popleft() if self.inbox else b""

    def write(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer.inbox.append(bytes(data))
        self.peer.arrived.set()

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def write_eof(self) -> None:
        assert self.peer is not None
        self.peer.eof = True
        self.peer.arrived.set()

    async def aclose(self) -> None:
        self.write_eof()


async def _tls_pair(tmp: Path) -> tuple[TlsStream, TlsStream, Pipe]:
    files = make_self_signed(tmp)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    client_ctx = ssl.create_default_context(cafile=str(files.cert))
    a, b = Pipe(), Pipe()
    a.peer, b.peer = b, a
    client = TlsStream(a, client_ctx, server_side=False, server_hostname="localhost")
    server = TlsStream(b, server_ctx, server_side=True)
    await asyncio.wait_for(asyncio.gather(client.handshake(), server.handshake()), 10)
    return client, server, a


def test_one_read_takes_every_record_already_received_up_to_the_chunk_size(
        tmp_path: Path) -> None:
    async def main() -> None:
        client, server, client_pipe = await _tls_pair(tmp_path)
        payload = os.urandom(CHUNK_SIZE * 2 + 12345)  # about 40 TLS records
        server.write(payload)
        server.write_eof()
        assert len(client_pipe.inbox) >= 1
        reads = []
        while True:
            data = await asyncio.wait_for(client.read_some(), 5)
            if not data:
                break
            reads.append(data)
        assert b"".join(reads) == payload  # every byte, in order, then end of stream
        # Records are at most 16 KiB; what had arrived comes back in chunks of CHUNK_SIZE.
        assert [len(r) for r in reads[:2]] == [CHUNK_SIZE, CHUNK_SIZE]
        assert len(reads) == 3

    asyncio.run(main())


def test_a_read_does_not_wait_for_more_than_has_arrived(tmp_path: Path) -> None:
    async def main() -> None:
        client, server, _ = await _tls_pair(tmp_path)
        server.write(b"x" * 100)
        assert await asyncio.wait_for(client.read_some(), 5) == b"x" * 100
        server.write(b"y" * 70_000)
        assert await asyncio.wait_for(client.read_some(), 5) == b"y" * 70_000

    asyncio.run(main())


def test_close_notify_right_after_data_ends_the_stream_while_tcp_stays_open(
        tmp_path: Path) -> None:
    async def main() -> None:
        client, server, client_pipe = await _tls_pair(tmp_path)
        server.ssl.write(b"last words")
        with contextlib.suppress(ssl.SSLError):
            server.ssl.unwrap()  # close_notify only: TCP stays open (no write_eof)
        server._flush()  # the data record and close_notify arrive together
        assert await asyncio.wait_for(client.read_some(), 5) == b"last words"
        assert await asyncio.wait_for(client.read_some(), 5) == b""
        assert not client_pipe.eof

    asyncio.run(main())
