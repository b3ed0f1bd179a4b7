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


class _Clock:
    """time for relay(): the observer's cost is whatever the test says it is."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def perf_counter(self) -> float:
        return self.now


class _Costly:
    """An observer whose every byte costs ``per_byte`` seconds of the clock."""

    def __init__(self, clock: _Clock, per_byte: float, turns: list[str]) -> None:
        self.clock = clock
        self.per_byte = per_byte
        self.fed: list[int] = []
        self.turns = turns

    def feed(self, direction: Direction, data: bytes, t: float) -> list[Any]:
        self.fed.append(len(data))
        self.turns.append("observed")
        self.clock.now += len(data) * self.per_byte
        return []

    def close(self, *args: Any) -> list[Any]:
        return []


def _relay_reads(monkeypatch: Any, reads: list[bytes], per_byte: float
                 ) -> tuple[_Costly, list[str], _Scripted, _Conn]:
    import proxy.net.relay as relay_module

    clock = _Clock()
    monkeypatch.setattr(relay_module, "time", clock)
    turns: list[str] = []
    observer = _Costly(clock, per_byte, turns)

    async def scenario() -> tuple[_Scripted, _Conn]:
        done = asyncio.Event()
        client = _Scripted([*reads, done], on_write=asyncio.Event())
        server = _Scripted([done], on_write=asyncio.Event())
        conn = _Conn()

        async def bystander() -> None:  # another connection, ready all along
            while not done.is_set():
                turns.append("other")
                await asyncio.sleep(0)

        other = asyncio.create_task(bystander())
        task = asyncio.create_task(relay(conn, client, server, protocol="h2",  # type: ignore[arg-type]
                                         observer=observer))  # type: ignore[arg-type]
        while sum(observer.fed) < sum(map(len, reads)):
            await asyncio.sleep(0)
        done.set()
        await asyncio.wait_for(task, 5)
        await other
        return server, conn

    server, conn = asyncio.run(scenario())
    return observer, turns, server, conn


def test_a_flood_of_tiny_frames_is_observed_in_turns_with_the_other_connections(
        monkeypatch: Any) -> None:
    """One read of 256 KiB of 13-byte frames (a rapid reset) took most of a second to
    observe, and every other connection through h2scope waited: a well-behaved
    client's request took 3 s. The read is observed a few KiB at a time, each piece
    costing about 20 ms, with the other connections' turns in between; nothing is
    lost or reordered."""
    read = bytes(range(256)) * 1024  # 256 KiB
    observer, turns, server, conn = _relay_reads(monkeypatch, [read], per_byte=5e-6)
    assert observer.fed[0] == 16384  # (the cost of a connection's bytes is not known yet)
    assert max(observer.fed[1:]) <= 4096 and len(observer.fed) > 50, observer.fed
    # Between two pieces, the other connection had a turn.
    assert all(turns[i + 1] == "other" for i, what in enumerate(turns[:-1])
               if what == "observed"), turns[:20]
    assert bytes(server.written) == read
    assert b"".join(b.data for b in conn.batches) == read


def test_bulk_data_is_observed_in_whole_reads(monkeypatch: Any) -> None:
    """DATA frames cost little per byte: after a few pieces a read is observed at once
    (slicing a bulk transfer would cost throughput for nothing)."""
    read = bytes(256 * 1024)
    observer, _, server, _ = _relay_reads(monkeypatch, [read, read], per_byte=1e-9)
    assert observer.fed == [16384, 32768, 65536, 131072, 16384, 262144], observer.fed
    assert bytes(server.written) == read * 2
