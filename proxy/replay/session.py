"""A whole replay: every planned connection, one after another, then the comparison.

The replay is always recorded — to ``record`` if given, else to a private
temporary capture — and the comparison reads that capture back through the
observer, exactly as ``h2scope export`` would (architecture principle 6): what
is compared is what a user can open afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.events import Batch
from proxy.replay.client import (
    ConnectionResult,
    ReplayConnection,
    ReplayError,
    ReplayOptions,
    Target,
)
from proxy.replay.compare import VOLATILE_HEADERS, StreamDiff, StreamOutcome, compare, outcomes
from proxy.replay.source import ReplaySource


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionReport:
    result: ConnectionResult
    replayed: tuple[StreamOutcome, ...]
    diffs: tuple[StreamDiff, ...] | None
    """None when there is no original to compare with (a frame script)."""

    @property
    def differs(self) -> bool:
        return self.diffs is not None and any(not d.matches for d in self.diffs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    connections: tuple[ConnectionReport, ...]
    record: Path | None

    @property
    def differs(self) -> bool:
        return any(c.differs for c in self.connections)

    @property
    def failed(self) -> bool:
        return any(c.result.error is not None for c in self.connections)

    @property
    def refused(self) -> bool:
        """A server ended a connection with an error (GOAWAY other than NO_ERROR) that
        the recorded server did not end it with."""
        return any(c.result.refused for c in self.connections)


async def _replay_all(source: ReplaySource, target: Target, options: ReplayOptions,
                      writer: CaptureWriter, on_batch: Callable[[Batch], Any] | None,
                      on_connection: Callable[[int, int], None] | None,
                      ) -> list[ConnectionResult]:
    results = []
    for n, plan in enumerate(source.plans, 1):
        if on_connection is not None:
            on_connection(n, len(source.plans))
        conn = ReplayConnection(plan, target, options, conn_id=n, writer=writer,
                                on_batch=on_batch)
        try:
            results.append(await conn.run())
        except ReplayError as exc:
            if not results:
                raise  # (the target is wrong: said once, as a usage problem)
            # (it went away during the replay: what the earlier connections did stands,
            # and this one and the rest say why they were not replayed)
            results += [ConnectionResult(plan=p, conn_id=n + i, error=f"not replayed: {exc}",
                                         never_made=True)
                        for i, p in enumerate(source.plans[n - 1:])]
            break
    return results


def run_replay(source: ReplaySource, target: Target, options: ReplayOptions, *,
               record: Path | None = None, on_batch: Callable[[Batch], Any] | None = None,
               on_connection: Callable[[int, int], None] | None = None,
               volatile: frozenset[str] = VOLATILE_HEADERS, values: bool = False,
               ) -> ReplayReport:
    """Replay every plan of ``source`` against ``target`` and compare: names in
    ``volatile`` left out, the response fields' values too with ``values``.

    Raises :class:`ReplayError` when a connection cannot be made.
    """
    tmpdir = None
    if record is None:  # a private directory (mode 0700): captures hold secrets
        tmpdir = tempfile.TemporaryDirectory(prefix="h2scope-replay-")
        path = Path(tmpdir.name) / "replay.h2scope"
    else:
        path = record
    try:
        writer = CaptureWriter(path, config={"replay": {"target": target.url,
                                                        "mode": options.mode,
                                                        "speed": options.speed}})
        # A server that dies mid-replay leaves writes of its TLS layer to a closed
        # socket, which asyncio reports one line each ("socket.send() raised
        # exception."); the replay says once what happened to the connection.
        quiet = logging.getLogger("asyncio")
        level = quiet.level
        quiet.setLevel(max(level, logging.ERROR))
        try:
            results = asyncio.run(_replay_all(source, target, options, writer, on_batch,
                                              on_connection))
        finally:
            quiet.setLevel(level)
            writer.close(fsync=record is not None)
        items = list(replay(path))
        reports = []
        for result in results:
            got = outcomes(items, result.conn_id, fields=values)
            original = result.plan.original
            if result.never_made:
                original = None  # (its error says so, once, not per stream)
            diffs = None if original is None else tuple(compare(list(original), got,
                                                                volatile, values=values))
            if diffs is not None and (result.goaway or result.error):
                diffs = tuple(_not_sent(d, result) for d in diffs)
            reports.append(ConnectionReport(result=result, replayed=tuple(got), diffs=diffs))
        return ReplayReport(connections=tuple(reports), record=record)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


def _not_sent(d: StreamDiff, result: ConnectionResult) -> StreamDiff:
    """A recorded stream the replay never opened because the server had ended the
    connection (a GOAWAY, an error) is said as that, not as 'no such stream'."""
    if d.replayed is not None or d.original is None:
        return d
    why = f"GOAWAY {result.goaway}" if result.goaway else result.error
    return dataclasses.replace(d, differences=(
        f"not sent: the server had ended the connection first ({why})",))


__all__ = ["ReplayError", "ReplayReport", "run_replay"]
