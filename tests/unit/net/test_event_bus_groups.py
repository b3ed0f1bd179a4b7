"""Sinks with ``handle_many``: every queued batch at once, in order, still bounded."""

from __future__ import annotations

import asyncio

from proxy.events import MAX_GROUP, Batch, EventBus


def batch(i: int) -> Batch:
    return Batch(conn_id=i, t=float(i), events=())


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))  # type: ignore[arg-type]


class Grouped:
    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    def handle(self, b: Batch) -> None:
        raise AssertionError("a sink with handle_many gets groups only")

    def handle_many(self, batches: list[Batch]) -> None:
        self.groups.append([b.conn_id for b in batches])


def test_batches_queued_while_the_sink_waits_arrive_as_one_group_in_order() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=1000)
        sink = Grouped()
        bus.subscribe(sink)
        for i in range(600):
            await bus.publish(batch(i))  # no await that yields: the sink has not run yet
        await bus.close()
        assert [i for g in sink.groups for i in g] == list(range(600))
        assert [len(g) for g in sink.groups] == [MAX_GROUP, MAX_GROUP, 600 - 2 * MAX_GROUP]

    run(main())


def test_a_blocked_grouped_sink_makes_publish_wait_at_its_queue_size() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=3)
        gate = asyncio.Event()
        seen: list[int] = []

        async def handle_many(batches: list[Batch]) -> None:
            await gate.wait()
            seen.extend(b.conn_id for b in batches)

        class Sink:
            def handle(self, b: Batch) -> None: ...

        sink = Sink()
        sink.handle_many = handle_many  # type: ignore[attr-defined]
        sub = bus.subscribe(sink)
        published = 0

        async def producer() -> None:
            nonlocal published
            for i in range(40):
                await bus.publish(batch(i))
                published += 1

        task = asyncio.create_task(producer())
        for _ in range(50):
            await asyncio.sleep(0)
        # The sink holds the group it took (at most the queue size), three wait behind it.
        assert published <= 3 + 3
        assert sub.queue.qsize() == 3
        assert not task.done()
        gate.set()
        await asyncio.wait_for(task, 5)
        await bus.close()
        assert seen == list(range(40))
        assert sub.delivered == 40

    run(main())


def test_a_failing_grouped_sink_is_cut_off_and_never_blocks_publish() -> None:
    async def main() -> None:
        bus = EventBus(maxsize=2)

        class Broken:
            def handle(self, b: Batch) -> None: ...

            def handle_many(self, batches: list[Batch]) -> None:
                raise RuntimeError("boom")

        got: list[int] = []
        bad = bus.subscribe(Broken())
        bus.subscribe(lambda b: got.append(b.conn_id))
        for i in range(20):
            await asyncio.wait_for(bus.publish(batch(i)), 1)
        await bus.close()
        assert bad.failed and bad.delivered == 0
        assert got == list(range(20))

    run(main())
