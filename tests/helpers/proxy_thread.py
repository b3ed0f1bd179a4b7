"""The real ProxyServer on a background event loop, collecting every batch it publishes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from proxy.events import Batch, ConnectionClosed, ProxyEvent
from proxy.server import ProxyServer
from tests.helpers.loop_thread import LoopThread
from tests.helpers.options import Options

E = TypeVar("E")


class ProxyThread:
    def __init__(self, options: Options, sinks: Sequence[object] = (), *,
                 decode: bool = True) -> None:
        self.options = options
        self.batches: list[Batch] = []
        self.lock = threading.Lock()
        self.closed = False
        self.loop = LoopThread()
        self.server = ProxyServer(options, [self._collect, *sinks],  # type: ignore[list-item]
                                  decode=decode)
        self.loop.run(self.server.start())

    def _collect(self, batch: Batch) -> None:
        with self.lock:
            self.batches.append(batch)

    @property
    def ca_cert(self) -> Path:
        assert self.server.state is not None
        return self.server.state.certs.ca_cert_path

    def port(self, kind: str = "regular") -> int:
        return self.server.address(kind)[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port()}"

    def events(self, kind: type[E] | None = None, conn_id: int | None = None) -> list[Any]:
        with self.lock:
            batches = list(self.batches)
        out: list[ProxyEvent] = []
        for b in batches:
            if conn_id is not None and b.conn_id != conn_id:
                continue
            out.extend(e for e in b.events if kind is None or isinstance(e, kind))
        return out

    def chunks(self, conn_id: int) -> list[Batch]:
        with self.lock:
            return [b for b in self.batches if b.conn_id == conn_id and b.direction is not None]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0,
                 what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_closed(self, count: int = 1, timeout: float = 10.0) -> list[ConnectionClosed]:
        return self.wait_for(lambda: len(c := self.events(ConnectionClosed)) >= count and c,
                             timeout, f"{count} ConnectionClosed events")

    def close(self) -> None:
        """Stop the proxy and let the sinks drain (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.run(self.server.stop(), timeout=20)
        finally:
            self.loop.close()
