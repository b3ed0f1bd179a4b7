"""The relay observes and publishes each chunk in the order the chunks crossed it.

A request forwarded to a server whose socket buffer is full waits in ``drain()``;
meanwhile the server may already answer. The relay used to observe (and record)
a chunk after that drain, so under load the response was observed before the
request that caused it: the server "opened" the stream (RFC 9113 §8.4), the
recording's clock ran backwards. These streams force that interleaving.
"""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.events import Batch
from proxy.net.relay import relay
from proxy.net.streams import Stream
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved
from tests.unit.observe.conftest import REQUEST, RESPONSE, FrameFactory


class _Scripted(Stream):
    """Reads: each item is bytes to return, or an event to wait for first."""

    def __init__(self, reads: list[Any], on_write: asyncio.Event,
                 drained: asyncio.Event | None = None) -> None:
        super().__init__()
        self.reads = reads
        self.on_write = on_write
        self.drained = drained
        self.written = bytearray()

    async def _recv(self) -> bytes:
        while self.reads:
            item = self.reads.pop(0)
            if isinstance(item, asyncio.Event):
                await item.wait()
                continue
            return bytes(item)
        return b""

    def write(self, data: bytes) -> None:
        self.written += data
        self.on_write.set()

    async def drain(self) -> None:
        if self.drained is not None:  # (a full socket buffer: it waits)
            await self.drained.wait()

    async def aclose(self) -> None:
        pass


class _Conn:
    """What relay() asks of a connection; the batches it hands the sinks, in order."""

    id = 1
    target = "origin.test"

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.byte_counts: Any = None

    async def room(self) -> None:
        await asyncio.sleep(0)  # (an await: the other pump may run here, harmlessly)

    def put_chunk(self, direction: Direction, data: bytes, t: float, events: Any,
                  protocol: str) -> None:
        self.batches.append(Batch(conn_id=1, t=t, events=tuple(events), direction=direction,
                                  data=data, protocol=protocol))

    async def publish_chunk(self, *args: Any) -> None:
        await self.room()
        self.put_chunk(*args)

    async def closed(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def error(self, *args: Any) -> None:
        pass


def test_a_request_is_observed_before_the_response_that_overtook_its_drain() -> None:
    f = FrameFactory()
    request = CONNECTION_PREFACE + f.settings() + f.headers(
        Direction.C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"])
    response = f.settings() + f.settings(ack=True) + f.headers(
        Direction.S2C, 1, RESPONSE, flags=["END_HEADERS"]) + f.data(1, b"hi",
                                                                    flags=["END_STREAM"])

    async def scenario() -> list[Batch]:
        request_sent, response_sent, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        client = _Scripted([request, done], on_write=response_sent)
        # The server answers once the request reached it; the request's drain waits
        # until that answer has been relayed back to the client.
        server = _Scripted([request_sent, response, done], on_write=request_sent,
                           drained=response_sent)
        conn = _Conn()
        task = asyncio.create_task(relay(conn, client, server, protocol="h2",  # type: ignore[arg-type]
                                         observer=ConnectionObserver()))
        await response_sent.wait()
        for _ in range(20):
            await asyncio.sleep(0)
        done.set()
        await asyncio.wait_for(task, 5)
        return conn.batches

    batches = [b for b in asyncio.run(scenario()) if b.data]
    assert [b.direction for b in batches] == [Direction.C2S, Direction.S2C]
    assert batches[0].t <= batches[1].t
    findings = [fd.code for b in batches for ev in b.events if isinstance(ev, FrameObserved)
                for fd in ev.findings]
    assert findings == []
