"""The UI's lossy bus sink: bounded, and what it could not keep is counted."""

from __future__ import annotations

from proxy.events import Batch
from ui.model.live import LiveFeed


def test_a_group_of_batches_is_kept_up_to_maxsize_and_the_rest_counted() -> None:
    feed = LiveFeed(maxsize=3)
    group = [Batch(conn_id=1, t=float(i), events=()) for i in range(5)]
    feed.handle_many(group[:2])
    assert list(feed.batches) == group[:2] and feed.received == 2
    feed.handle_many(group[2:])  # room for one
    assert list(feed.batches) == group[:3]
    assert feed.received == 3 and feed.dropped == 2
    feed.handle(group[4])
    assert feed.dropped == 3
