"""The recorder sink: bus batches in, a capture that replays to the same events out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from proxy.capture.format import RecordType
from proxy.capture.reader import CaptureReader
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.replay import replay_observer
from proxy.capture.writer import CaptureWriter
from proxy.events import (
    Batch,
    CertSummary,
    Closer,
    ConnectionClosed,
    ConnectionOpened,
    EventBus,
    Leg,
    RelayStarted,
    TlsEstablished,
)
from proxy.net.clienthello import parse_client_hello
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import Event
from tests.unit.capture.traffic import Session, record_session
from tests.unit.net.test_clienthello import python_client_hello


def _chunks(tmp_path: Path) -> list[tuple[Direction, bytes]]:
    with CaptureWriter(tmp_path / "scratch.h2scope") as writer:
        session = record_session(writer, 1, session=Session(), close=False)
    return session.chunks


def _batches(chunks: list[tuple[Direction, bytes]], cut_last: int = 0,
             ) -> tuple[list[Batch], list[Event]]:
    """What the relay publishes for one connection, and the observer's live events."""
    cid = 7
    t = 1_700_000_000.0
    batches = [Batch(conn_id=cid, t=t, events=(
        ConnectionOpened(conn_id=cid, t=t, client=("127.0.0.1", 40001), mode="regular",
                         target=None),
        TlsEstablished(conn_id=cid, t=t, leg=Leg.CLIENT, version="TLSv1.3",
                       cipher="TLS_AES_256_GCM_SHA384", alpn_offered=("h2", "http/1.1"),
                       alpn="h2", sni="example.test", cert=None,
                       client_hello=parse_client_hello(
                           python_client_hello("example.test", ["h2", "http/1.1"]))),
        TlsEstablished(conn_id=cid, t=t, leg=Leg.SERVER, version="TLSv1.3",
                       cipher="TLS_AES_256_GCM_SHA384", alpn_offered=("h2", "http/1.1"),
                       alpn="h2", sni="example.test",
                       cert=CertSummary(subject="CN=example.test", issuer="CN=CA",
                                        sans=("example.test",), not_after="2030-01-01")),
        RelayStarted(conn_id=cid, t=t, protocol="h2", target="example.test:443")))]
    observer = ConnectionObserver(preface="required")
    live: list[Event] = []
    if cut_last:
        direction, data = chunks[-1]
        chunks = [*chunks[:-1], (direction, data[:-cut_last])]
    for n, (direction, data) in enumerate(chunks):
        # Relays read whatever arrived: split some chunks in two to mimic that.
        parts = [data[:len(data) // 2], data[len(data) // 2:]] if n % 3 == 0 else [data]
        for part in filter(None, parts):
            t += 0.001
            events = observer.feed(direction, part, t)
            live += events
            batches.append(Batch(conn_id=cid, t=t, events=tuple(events), direction=direction,
                                 data=part, protocol="h2"))
    t += 0.001
    closing = observer.close(t)
    live += closing
    if closing:
        batches.append(Batch(conn_id=cid, t=t, events=tuple(closing), direction=Direction.C2S,
                             data=b"", protocol="h2"))
    batches.append(Batch(conn_id=cid, t=t + 0.01, events=(ConnectionClosed(
        conn_id=cid, t=t + 0.01, closed_by=Closer.CLIENT, reason="client closed the connection",
        bytes_c2s=1, bytes_s2c=2),)))
    return batches, live


def test_recorded_batches_replay_to_the_live_events(tmp_path: Path) -> None:
    batches, live = _batches(_chunks(tmp_path))
    path = tmp_path / "rec.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    for batch in batches:
        recorder.consume(batch)
    recorder.close()
    assert [ev for _, ev in replay_observer(path)] == live
    with CaptureReader(path) as reader:
        records = list(reader.records())
    meta = next(r for r in records if r.type == RecordType.CONNECTION).json()
    assert meta["client"] == {"ip": "127.0.0.1", "port": 40001}
    assert meta["server"] == {"host": "example.test", "port": 443}
    assert meta["client_tls"]["alpn_offered"] == ["h2", "http/1.1"]
    hello = meta["client_tls"]["client_hello"]  # what the client offered, for display
    assert hello["sni"] == "example.test" and "TLS_AES_256_GCM_SHA384" in hello["cipher_suites"]
    assert "supported_versions" in hello["extensions"] and "server_tls" in meta
    assert "client_hello" not in meta["server_tls"]
    assert meta["server_tls"]["certificate"]["subject"] == "CN=example.test"
    assert meta["sni"] == "example.test" and meta["protocol"] == "h2"
    closes = [r.json() for r in records if r.type == RecordType.CLOSE]
    assert len(closes) == 1 and closes[0]["closed_by"] == "client"


def test_an_incomplete_last_frame_replays_the_same_closing_findings(tmp_path: Path) -> None:
    batches, live = _batches(_chunks(tmp_path), cut_last=3)
    assert any(getattr(getattr(e, "finding", None), "code", "") == "frame-truncated"
               for e in live)
    path = tmp_path / "cut.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    for batch in batches:
        recorder.consume(batch)
    recorder.close()
    assert [ev for _, ev in replay_observer(path)] == live


def test_recorder_runs_as_a_bus_sink_with_back_pressure(tmp_path: Path) -> None:
    batches, live = _batches(_chunks(tmp_path))
    path = tmp_path / "bus.h2scope"
    writer = CaptureWriter(path, buffer_limit=2048)

    async def run() -> None:
        bus = EventBus(maxsize=4)
        bus.subscribe(CaptureRecorder(writer))
        for batch in batches:
            await bus.publish(batch)
        await bus.close()

    asyncio.run(run())
    writer.close()
    assert [ev for _, ev in replay_observer(path)] == live
