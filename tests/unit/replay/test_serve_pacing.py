"""``serve --speed``: the mock keeps the recorded server's pace.

A capture is made from an in-process h2 client and server whose bytes reach the
recording tap at chosen times: the request ends at 0, the server pushes and
answers at +200 ms, sends the rest of its body at +500 ms and the pushed body
at +400 ms. The recorded offsets are read back, then the mock server (h2c)
answers a real h2 client at twice that pace and as fast as it can.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import Direction
from proxy.replay.mock_server import start_mock_server
from proxy.replay.responses import RecordedResponse, ResponseBook, load_responses
from tests.unit.capture.traffic import META

REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "example.test"),
           (":path", "/slow")]
T0 = 5000.0


def make_capture(path: Path) -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding="utf-8"))
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, META, t=T0 - 1)

        def exchange(at: float) -> None:
            """Both sides' pending bytes, seen by the tap at T0 + ``at``."""
            for _ in range(10):
                c2s, s2c = client.data_to_send(), server.data_to_send()
                if not c2s and not s2c:
                    return
                if c2s:
                    tap.feed(Direction.C2S, c2s, T0 + at)
                    server.receive_data(c2s)
                if s2c:
                    tap.feed(Direction.S2C, s2c, T0 + at)
                    client.receive_data(s2c)

        client.initiate_connection()
        server.initiate_connection()
        exchange(-0.1)
        client.send_headers(1, REQUEST, end_stream=True)
        exchange(0.0)
        server.push_stream(1, 2, [*REQUEST[:3], (":path", "/pushed")])
        server.send_headers(1, [(":status", "200"), ("content-length", "8")])
        server.send_data(1, b"half")
        server.send_headers(2, [(":status", "200")])
        exchange(0.2)
        server.send_data(2, b"pushed", end_stream=True)
        exchange(0.4)
        server.send_data(1, b"done", end_stream=True)
        exchange(0.5)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> RecordedResponse:
    path = tmp_path_factory.mktemp("pacing") / "slow.h2scope"
    make_capture(path)
    (response,) = [r for r in load_responses(path) if r.pushed_on is None]
    return response


def test_each_action_keeps_its_offset_from_the_request(slow: RecordedResponse) -> None:
    got = [(a.kind, round(a.at, 3)) for a in slow.actions]
    assert got == [("push", 0.2), ("headers", 0.2), ("data", 0.2), ("data", 0.5)]
    pushed = slow.actions[0].pushed
    assert [(a.kind, round(a.at, 3)) for a in pushed] == [("headers", 0.2), ("data", 0.4)]


async def fetch(port: int) -> dict[str, float]:
    """When (seconds after sending the request) each part of the answer came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, REQUEST, end_stream=True)
    loop = asyncio.get_running_loop()
    writer.write(conn.data_to_send())
    sent = loop.time()
    seen: dict[str, float] = {}
    try:
        while not {"end 1", "end 2"} <= seen.keys():
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, f"the mock closed the connection; seen so far: {seen}"
            for ev in conn.receive_data(data):
                now = loop.time() - sent
                if isinstance(ev, h2.events.ResponseReceived):
                    seen.setdefault(f"headers {ev.stream_id}", now)
                elif isinstance(ev, h2.events.PushedStreamReceived):
                    seen.setdefault("push", now)
                elif isinstance(ev, h2.events.DataReceived):
                    seen.setdefault(f"data {ev.stream_id}", now)
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    seen[f"end {ev.stream_id}"] = now
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    return seen


async def served(book: ResponseBook, speed: float) -> dict[str, float]:
    server = await start_mock_server(book, "127.0.0.1", 0, None, lambda _line: None, speed)
    async with server:
        return await fetch(server.sockets[0].getsockname()[1])


def test_speed_2_answers_at_twice_the_recorded_pace(slow: RecordedResponse) -> None:
    seen = asyncio.run(served(ResponseBook([slow]), 2.0))
    slack = 0.01  # the event loop's clock granularity
    assert seen["push"] >= 0.1 - slack and seen["headers 1"] >= 0.1 - slack
    assert seen["end 2"] >= 0.2 - slack  # the pushed body, counted from the request
    assert seen["end 1"] >= 0.25 - slack
    assert seen["data 1"] < seen["end 2"] < seen["end 1"], seen  # the recorded order


def test_speed_0_does_not_wait(slow: RecordedResponse) -> None:
    seen = asyncio.run(served(ResponseBook([slow]), 0.0))
    # Nothing waits for the recorded gaps: the whole answer comes well before the
    # recorded 500 ms (a margin for a loaded machine; at its pace it takes 500).
    assert seen["end 1"] < 0.45, seen
