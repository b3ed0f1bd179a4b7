"""OnceLRU: bounded, least-recently-used eviction, one computation per missing key."""

from __future__ import annotations

import threading
import time

import pytest

from certs.lru import OnceLRU


def test_values_are_computed_once_and_then_served_from_the_cache() -> None:
    cache: OnceLRU[str, int] = OnceLRU(4)
    calls: list[str] = []
    assert cache.get_or_create("a", lambda: calls.append("a") or 1) == 1
    assert cache.get_or_create("a", lambda: calls.append("a") or 2) == 1
    assert calls == ["a"]
    assert (cache.hits, cache.misses) == (1, 1)


def test_least_recently_used_entry_is_evicted_and_reported() -> None:
    evicted: list[tuple[str, int]] = []
    cache: OnceLRU[str, int] = OnceLRU(2, on_evict=lambda k, v: evicted.append((k, v)))
    cache.get_or_create("a", lambda: 1)
    cache.get_or_create("b", lambda: 2)
    cache.get_or_create("a", lambda: 0)
    cache.get_or_create("c", lambda: 3)
    assert evicted == [("b", 2)]
    assert len(cache) == 2


def test_a_failing_factory_raises_for_every_waiter_and_caches_nothing() -> None:
    cache: OnceLRU[str, int] = OnceLRU(2)
    started = threading.Event()

    def boom() -> int:
        started.set()
        time.sleep(0.05)
        raise RuntimeError("boom")

    errors: list[BaseException] = []

    def waiter() -> None:
        started.wait()
        try:
            cache.get_or_create("k", lambda: 99)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    with pytest.raises(RuntimeError):
        cache.get_or_create("k", boom)
    t.join()
    assert [str(e) for e in errors] == ["boom"]
    assert cache.get_or_create("k", lambda: 7) == 7


def test_concurrent_callers_share_one_computation() -> None:
    cache: OnceLRU[str, object] = OnceLRU(8)
    barrier = threading.Barrier(16)
    calls = 0
    results: list[object] = []

    def slow() -> object:
        nonlocal calls
        calls += 1
        time.sleep(0.02)
        return object()

    def worker() -> None:
        barrier.wait()
        results.append(cache.get_or_create("k", slow))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1
    assert len({id(r) for r in results}) == 1


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OnceLRU(0)
