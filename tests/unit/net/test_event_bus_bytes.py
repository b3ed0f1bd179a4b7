"""The bus bounds the relayed bytes a sink holds, not only the number of batches."""

from __future__ import annotations

import asyncio

from proxy.events import Batch, EventBus
from proxy.observe.enums import Direction

CHUNK = bytes(256 * 1024)


def chunk(i: int) -> Batch:
    return Batch(conn_id=i, t=float(i), events=(), direction=Direction.S2C, data=CHUNK,
                 protocol="h2")


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]


def test_a_slow_sink_holding_max_bytes_makes_publish_wait_though_its_queue_has_room() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=1024, max_bytes=4 * len(CHUNK))
        gate = asyncio.Event()
        seen: list[int] = []

        async def slow(b: Batch) -> None:
            await gate.wait()
            seen.append(b.conn_id)

        sub = bus.subscribe(slow)
        published = 0

        async def producer() -> None:
            nonlocal published
            for i in range(30):
                await bus.publish(chunk(i))
                published += 1

        task = asyncio.create_task(producer())
        for _ in range(50):
            await asyncio.sleep(0)
        assert published == 4  # 1 MiB held: the fifth read waits, 1019 slots unused
        assert sub.queued_bytes == 4 * len(CHUNK)
        assert not task.done()
        gate.set()
        await asyncio.wait_for(task, 5)
        await bus.close()
        assert seen == list(range(30)) and sub.queued_bytes == 0

    run(main())


def test_a_lossy_sink_over_its_byte_budget_drops_and_counts() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=1024, max_bytes=3 * len(CHUNK))
        gate = asyncio.Event()

        async def blocked(_: Batch) -> None:
            await gate.wait()

        sub = bus.subscribe(blocked, lossy=True)
        for i in range(10):
            await asyncio.wait_for(bus.publish(chunk(i)), 1)
        assert sub.dropped == 7 and sub.queued_bytes == 3 * len(CHUNK)
        gate.set()
        await bus.close()
        assert sub.delivered + sub.dropped == 10

    run(main())
