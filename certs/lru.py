"""A bounded, thread-safe LRU cache that computes each missing value exactly once.

Many connections to a new host arrive together (a browser opens six at a
time; asyncio tasks hand minting to threads with ``asyncio.to_thread``). They
must all get the *same* certificate: the first caller computes while the
others wait on its :class:`~concurrent.futures.Future` ("single flight"),
instead of each minting its own. The lock is held only for dictionary
operations, never while computing, so different keys are computed in
parallel.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class OnceLRU(Generic[K, V]):
    """``get_or_create(key, factory)`` with at most *maxsize* entries kept."""

    def __init__(
        self, maxsize: int, *, on_evict: Callable[[K, V], None] | None = None
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"cache size must be at least 1, not {maxsize}")
        self._maxsize = maxsize
        self._on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()
        self._pending: dict[K, Future[V]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        """Lookups answered from the cache (including waits on an in-flight computation)."""
        self.misses = 0
        """Lookups that ran the factory."""

    def __len__(self) -> int:
        return len(self._items)

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """The cached value for *key*, else ``factory()`` run once for all concurrent callers.

        If the factory raises, every caller waiting on it gets the exception and
        nothing is cached.
        """
        with self._lock:
            try:
                value = self._items[key]
            except KeyError:
                pass
            else:
                self._items.move_to_end(key)
                self.hits += 1
                return value
            future = self._pending.get(key)
            owner = future is None
            if future is None:
                future = self._pending[key] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if not owner:
            return future.result()
        try:
            value = factory()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        evicted: list[tuple[K, V]] = []
        with self._lock:
            del self._pending[key]
            self._items[key] = value
            while len(self._items) > self._maxsize:
                evicted.append(self._items.popitem(last=False))
        future.set_result(value)
        if self._on_evict is not None:
            for old_key, old_value in evicted:
                self._on_evict(old_key, old_value)
        return value

    def clear(self) -> None:
        """Forget every entry (in-flight computations still finish for their callers)."""
        with self._lock:
            self._items.clear()
