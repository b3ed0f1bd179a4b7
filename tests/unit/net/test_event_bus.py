"""The event bus: ordered batch delivery, back-pressure from slow sinks, counted loss."""

from __future__ import annotations

import asyncio

from proxy.events import Batch, ConnectionOpened, EventBus


def batch(i: int) -> Batch:
    return Batch(conn_id=i, t=float(i), events=())


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]


def test_every_sink_gets_every_batch_in_order() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=4)
        got_a: list[int] = []
        got_b: list[int] = []

        async def slow(b: Batch) -> None:
            await asyncio.sleep(0)
            got_b.append(b.conn_id)

        bus.subscribe(lambda b: got_a.append(b.conn_id))
        bus.subscribe(slow)
        for i in range(50):
            await bus.publish(batch(i))
        await bus.close()
        assert got_a == list(range(50))
        assert got_b == list(range(50))
        assert bus.dropped == 0

    run(main())


def test_slow_sink_makes_publish_wait_and_queue_stays_bounded() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=3)
        gate = asyncio.Event()
        seen: list[int] = []

        async def blocked(b: Batch) -> None:
            await gate.wait()
            seen.append(b.conn_id)

        sub = bus.subscribe(blocked)
        published = 0

        async def producer() -> None:
            nonlocal published
            for i in range(20):
                await bus.publish(batch(i))
                published += 1

        task = asyncio.create_task(producer())
        for _ in range(50):
            await asyncio.sleep(0)
        # One batch is held by the sink, three wait in its queue: the fifth publish blocks.
        assert published == 4
        assert sub.queue.qsize() == 3
        assert not task.done()
        gate.set()
        await asyncio.wait_for(task, 5)
        await bus.close()
        assert seen == list(range(20))

    run(main())


def test_lossy_sink_never_blocks_and_counts_what_it_missed() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=2)
        gate = asyncio.Event()

        async def blocked(_: Batch) -> None:
            await gate.wait()

        sub = bus.subscribe(blocked, lossy=True)
        for i in range(10):
            await asyncio.wait_for(bus.publish(batch(i)), 1)
        await asyncio.sleep(0)
        assert sub.dropped >= 7
        assert bus.dropped == sub.dropped
        gate.set()
        await bus.close()
        assert sub.delivered + sub.dropped == 10

    run(main())


def test_failing_sink_is_cut_off_without_stopping_the_others() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=2)
        got: list[int] = []

        def broken(_: Batch) -> None:
            raise RuntimeError("boom")

        bad = bus.subscribe(broken)
        bus.subscribe(lambda b: got.append(b.conn_id))
        for i in range(10):
            await asyncio.wait_for(bus.publish(batch(i)), 1)
        await bus.close()
        assert bad.failed
        assert got == list(range(10))

    run(main())


def test_emit_tags_the_batch_with_the_connection_id() -> None:
    async def main() -> None:
        bus = EventBus()
        got: list[Batch] = []
        bus.subscribe(got.append)
        ev = ConnectionOpened(conn_id=7, t=1.0, client=("127.0.0.1", 5), mode="regular",
                              target=None)
        await bus.emit(ev)
        await bus.close()
        assert got[0].conn_id == 7 and got[0].events == (ev,)

    run(main())
