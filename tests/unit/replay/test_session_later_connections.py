"""A server that goes away during a replay of several connections: the replay of
the first had been done and compared, then the next connection was refused and
the whole run said only 'cannot connect … connection refused', results lost."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from proxy.replay import session
from proxy.replay.client import ConnectionResult, ReplayError, ReplayOptions, parse_target
from proxy.replay.source import ConnectionPlan, ReplaySource


def _plan(n: int) -> ConnectionPlan:
    return ConnectionPlan(conn_id=n, meta={}, sends=(), entries=(), original=())


def test_later_connections_that_cannot_connect_keep_the_earlier_results(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made: list[int] = []
    levels: list[int] = []

    class Connection:
        def __init__(self, plan: ConnectionPlan, *args: Any, conn_id: int, **kw: Any) -> None:
            self.plan, self.conn_id = plan, conn_id

        async def run(self) -> ConnectionResult:
            made.append(self.conn_id)
            # (a TLS layer writing to a socket the server closed: asyncio's one warning
            # a write, "socket.send() raised exception.", is not the replay's to print)
            levels.append(logging.getLogger("asyncio").getEffectiveLevel())
            if self.plan.conn_id and self.plan.conn_id > 1:
                raise ReplayError("cannot connect to http://127.0.0.1:9: nothing listens")
            return ConnectionResult(plan=self.plan, conn_id=self.conn_id, sent_frames=3)

    monkeypatch.setattr(session, "ReplayConnection", Connection)
    source = ReplaySource(plans=(_plan(1), _plan(2), _plan(3)))
    report = session.run_replay(source, parse_target("http://127.0.0.1:9"),
                                ReplayOptions(), record=tmp_path / "r.h2scope")
    assert made == [1, 2]
    assert levels and all(level >= logging.ERROR for level in levels)
    results = [c.result for c in report.connections]
    assert [(r.conn_id, r.sent_frames, r.error) for r in results] == [
        (1, 3, None),
        (2, 0, "not replayed: cannot connect to http://127.0.0.1:9: nothing listens"),
        (3, 0, "not replayed: cannot connect to http://127.0.0.1:9: nothing listens")]
    assert report.failed
    # (a connection never made is said once, by its error: its streams are not listed)
    assert [c.diffs is None for c in report.connections] == [False, True, True]
    # The first connection cannot connect: the target is wrong, said as before.
    source = ReplaySource(plans=(_plan(2),))
    with pytest.raises(ReplayError):
        session.run_replay(source, parse_target("http://127.0.0.1:9"), ReplayOptions(),
                           record=tmp_path / "s.h2scope")
