"""Keeping the cycle collector off the session's data and out of key presses
(ui/model/heap.py)."""

from __future__ import annotations

import gc
import time
from typing import Any

import pytest

from ui.model import heap


@pytest.fixture
def thresholds() -> Any:
    saved = gc.get_threshold()
    try:
        yield saved
    finally:
        gc.set_threshold(*saved)


def _young_collections(n: int) -> None:
    """Make ``n`` collections of the middle generation happen (what, left to the
    interpreter, schedules the full ones)."""
    for _ in range(n):
        gc.collect(1)


def test_full_collections_wait_for_a_quiet_moment(thresholds: Any) -> None:
    collector = heap.IdleCollector(quiet=60.0, due=5, ceiling=1000)
    collector.start()
    try:
        assert gc.get_threshold()[:2] == thresholds[:2]
        assert gc.get_threshold()[2] > 1_000_000  # the interpreter's own: off
        gc.collect()
        _young_collections(3)
        assert not collector.tick()  # not due yet
        collector.input_seen()
        _young_collections(5)
        assert not collector.tick()  # due, but a key was just pressed
        collector.last_input = time.monotonic() - 61
        assert collector.tick()  # due and quiet
        assert gc.get_count()[2] == 0 and collector.collections == 1
    finally:
        collector.stop()
    assert gc.get_threshold() == thresholds


def test_a_busy_user_still_gets_garbage_collected_past_the_ceiling(thresholds: Any) -> None:
    collector = heap.IdleCollector(quiet=60.0, due=2, ceiling=6)
    collector.start()
    try:
        gc.collect()

        class Cycle:
            def __init__(self) -> None:
                self.me = self
        cycle = Cycle()
        _young_collections(2)  # now in the oldest generation
        del cycle  # cyclic garbage only a full collection finds
        collector.input_seen()
        _young_collections(3)
        assert not collector.tick()
        assert any(type(o) is Cycle for o in gc.get_objects())
        _young_collections(1)
        collector.input_seen()
        assert collector.tick()
        assert not any(type(o) is Cycle for o in gc.get_objects())
    finally:
        collector.stop()


def test_the_app_runs_the_collector_and_restores_the_thresholds(thresholds: Any,
                                                                capture_path: Any) -> None:
    from tests.unit.ui.conftest import drive

    seen: dict[str, Any] = {}

    async def scenario(app: Any, pilot: Any) -> None:
        seen["during"] = gc.get_threshold()
        before = app.collector.last_input
        await pilot.press("down")
        seen["input"] = app.collector.last_input > before
    drive(capture_path, scenario)
    assert seen["during"][2] > 1_000_000 and seen["input"]
    assert gc.get_threshold() == thresholds
