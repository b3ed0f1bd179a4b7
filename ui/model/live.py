"""Live traffic into the UI: a lossy bus sink and the proxy on its own thread.

The proxy never imports ``ui/`` (DESIGN.md §3); the UI subscribes a
:class:`LiveFeed` to the proxy's event bus as a *lossy* sink. The feed only
appends batches to a bounded deque (no work on the proxy's loop); the UI
drains it once per tick — one coalesced wake-up, never one per frame. If the
UI falls behind, the bus counts the batches it could not take and the status
bar shows the number.

:class:`LiveProxy` runs :class:`proxy.server.ProxyServer` on a private event
loop in a thread, so the relay never waits for a screen redraw, and can start
and stop recording while it runs.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from proxy.child import FromNowRecorder
from proxy.events import Batch, ConnectionEvent
from proxy.observe.events import FrameObserved
from ui.model.backing import SessionCapture
from ui.model.session import Session
from ui.model.table import LiveFrames

SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it, while the
proxy runs in this process (see :meth:`LiveProxy.start`)."""


class LiveFeed:
    """Bus sink: keeps at most ``maxsize`` batches for the UI to collect."""

    def __init__(self, maxsize: int = 65_536) -> None:
        self.maxsize = maxsize
        self.batches: deque[Batch] = deque()
        self.dropped = 0
        self.received = 0

    def handle(self, batch: Batch) -> None:
        if len(self.batches) >= self.maxsize:
            self.dropped += 1
            return
        self.received += 1
        self.batches.append(batch)  # deque.append is atomic: no lock needed

    def handle_many(self, batches: Sequence[Batch]) -> None:
        """What the bus queued meanwhile, in one call: one wake-up of the sink's task
        on the proxy's loop per group, not one per relayed read."""
        room = self.maxsize - len(self.batches)
        keep = len(batches) if room >= len(batches) else max(0, room)
        self.batches.extend(batches[:keep] if keep < len(batches) else batches)  # atomic
        self.received += keep
        self.dropped += len(batches) - keep


def ingest(session: Session, frames: LiveFrames, feed: LiveFeed, *, paused: bool = False,
           limit: int = 50_000) -> tuple[int, int]:
    """Move up to ``limit`` events from ``feed`` into ``session``: (frames added, skipped).

    While ``paused``, batches are taken off the feed and counted as skipped; only
    their connection events are kept (the connections pane stays complete).
    """
    added = skipped = 0
    events = 0
    popleft = feed.batches.popleft
    add = frames.add
    with session.lock:
        while feed.batches and events < limit:
            batch = popleft()
            conn = batch.conn_id
            if paused:  # connections stay listed; their frames are not kept
                skipped += 1
                for ev in batch.events:
                    if isinstance(ev, ConnectionEvent):
                        session.connection_event(ev)
                    elif type(ev) is FrameObserved:
                        session.conn(conn).lost += 1
                continue
            events += len(batch.events)
            for ev in batch.events:
                if type(ev) is FrameObserved:  # most events: checked first
                    session.observe(conn, ev, add(ev.frame.raw, conn, ev.seq))
                    added += 1
                elif isinstance(ev, ConnectionEvent):
                    session.connection_event(ev)
                else:
                    session.observe(conn, ev)
        session.dropped = feed.dropped
        if added or events:
            session.touch()
    return added, skipped


class LiveProxy:
    """The proxy server running on its own loop thread, with the UI's feed attached.

    The session is always backed by a capture (issue 5): ``record`` (``--record
    FILE``) or a private temporary one, written by a normal (blocking) sink
    subscribed before the first connection — :attr:`backing`. Recording started
    from the UI (:meth:`start_recording`) is a second, separate file of the
    connections opened from then on.
    """

    def __init__(self, options: Any, *, feed: LiveFeed, record: Path | None = None,
                 max_data_bytes: int | None = None) -> None:
        self.options = options
        self.feed = feed
        self.max_data_bytes = max_data_bytes
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="h2scope-proxy",
                                       daemon=True)
        self.server: Any = None
        self.tap: FromNowRecorder | None = None
        self.backing: SessionCapture | None = None
        self._record = record
        self.error: str | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._on_stop: list[Callable[[], Awaitable[Any]]] = []
        self._switch_interval: float | None = None

    def start(self, timeout: float = 30.0, *,
              starter: Callable[[list[Any], list[Any]], Coroutine[Any, Any, Any]] | None = None,
              ) -> list[tuple[str, str]]:
        """Bind the listeners; returns (mode, address) pairs. Raises ProxyStartError
        (also when the session's capture file cannot be created).

        ``starter(sinks, lossy_sinks)``, if given, is awaited on the proxy's loop
        instead of starting a plain ProxyServer, and returns the started server
        (``h2scope demo`` starts its origin and client with it).
        """
        from proxy.server import ProxyServer, ProxyStartError

        try:
            self.backing = SessionCapture(self._record, config=_capture_config(self.options),
                                          max_data_bytes=self.max_data_bytes)
        except OSError as exc:
            where = self._record or "a temporary file"
            raise ProxyStartError(f"cannot record to {where}: {exc.strerror or exc}") from None
        # Two threads share the GIL: the relay, which mostly waits on sockets, and
        # the UI, which computes. A thread back from a socket call waits for the
        # GIL until the holder is made to drop it — up to the switch interval
        # (5 ms by default) each time, which is where the relay's time went.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.thread.start()
        sinks: list[Any] = [self.backing.recorder]

        async def plain(sinks: list[Any], lossy: list[Any]) -> Any:
            server = ProxyServer(self.options, sinks, lossy_sinks=lossy)
            await server.start()
            return server
        start = starter or plain
        self.server = asyncio.run_coroutine_threadsafe(start(sinks, [self.feed]),
                                                       self.loop).result(timeout)
        self.backing.settle = self.settle  # a frame the UI shows first is waited for
        return [(spec, f"{h}:{p}") for spec, (h, p) in self.server.addresses.items()]

    def run_soon(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task on the proxy's loop (cancelled when it stops)."""
        def create() -> None:
            self._tasks.append(self.loop.create_task(coro))
        self.loop.call_soon_threadsafe(create)

    def on_stop(self, coro_fn: Callable[[], Awaitable[Any]]) -> None:
        """Await ``coro_fn()`` on the proxy's loop after the proxy stopped."""
        self._on_stop.append(coro_fn)

    @property
    def record_file(self) -> Path | None:
        """The user's ``--record`` file backing the session, if that is what backs it."""
        b = self.backing
        return b.path if b is not None and not b.temporary else None

    def start_recording(self, path: Path) -> None:
        tap = FromNowRecorder(path, self.max_data_bytes)

        async def subscribe() -> None:
            assert self.server is not None and self.server.bus is not None
            self.server.bus.subscribe(tap)
        asyncio.run_coroutine_threadsafe(subscribe(), self.loop).result(10)
        self.tap = tap

    def stop_recording(self) -> Path | None:
        tap, self.tap = self.tap, None
        if tap is None:
            return None

        async def close() -> None:
            tap.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        return tap.path

    @property
    def recording(self) -> Path | None:
        """The file being recorded to: the UI's recording, else ``--record``."""
        if self.tap is not None and self.tap.active:
            return self.tap.path
        return self.record_file

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait (bounded) until the session capture's recorder has taken every batch
        published so far — what the UI shows is then in the file, once flushed.
        False if it did not within ``timeout`` (traffic keeps coming)."""
        backing = self.backing
        if backing is None or self.server is None or not self.thread.is_alive() \
                or threading.current_thread() is self.thread:  # (waiting would deadlock)
            return False
        recorder = backing.recorder

        async def wait() -> bool:
            bus = self.server.bus if self.server is not None else None
            subs = [s for s in getattr(bus, "subscriptions", ())
                    if getattr(s.handler, "__self__", None) is recorder]
            deadline = self.loop.time() + timeout
            while any(not s.queue.empty() or s.queued_bytes for s in subs):
                if self.loop.time() > deadline:
                    return False
                await asyncio.sleep(0.01)
            return True
        try:
            return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(timeout + 5)
        except Exception:  # the loop stopped meanwhile: nothing more to wait for
            return False

    def input_seen(self) -> None:
        """A key or mouse event arrived (the in-process proxy is not held back)."""

    def behind(self) -> int:
        """Bytes of traffic the UI has not taken yet (the feed is lossy: none)."""
        return 0

    def problem(self) -> str | None:
        """Why live traffic stopped, if it did (the proxy's thread ended)."""
        if self.server is not None and not self.thread.is_alive():
            return "the proxy's thread ended"
        return None

    def flush_recording(self) -> None:
        if self.tap is not None and self.tap.active:
            self.tap.recorder.writer.flush()
        if self.backing is not None and not self.backing.closed:
            self.backing.writer.flush()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the proxy (closing connections), let the sinks drain, end the thread,
        close the session's capture (a temporary one is removed)."""
        if self.server is not None and self.thread.is_alive():
            async def stop_all() -> None:
                for task in self._tasks:
                    task.cancel()
                await self.server.stop()
                for fn in self._on_stop:
                    await fn()
            try:
                asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(timeout)
            except Exception as exc:  # shutting down: report, never hang
                self.error = f"stopping the proxy: {exc}"
            self.server = None
        self.stop_recording()
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
        if not self.loop.is_running():
            self.loop.close()
        if self.backing is not None:
            try:
                self.backing.close()
            except (OSError, ValueError) as exc:
                self.error = f"closing {self.backing.path}: {exc}"
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None


def _capture_config(options: Any) -> dict[str, Any]:
    """The capture header's config (as ``h2scope run --record`` writes it)."""
    from proxy.commands.run import capture_config

    try:
        return capture_config(options)
    except AttributeError:  # options without every Config field (tests' stand-ins)
        return {}


def rate(samples: deque[tuple[float, int]], count: int, window: float = 2.0) -> float:
    """Frames per second over the last ``window`` seconds, given (time, count) samples."""
    now = time.monotonic()
    samples.append((now, count))
    while samples and now - samples[0][0] > window:
        samples.popleft()
    t0, c0 = samples[0]
    return (count - c0) / (now - t0) if now > t0 else 0.0


def addresses_text(addresses: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{mode} {addr}" for mode, addr in addresses)
