"""``serve`` sends recorded header bytes that are not UTF-8 (gRPC's true binary
metadata: a ``-bin`` trailer sent raw) as they were recorded. It raised a
UnicodeEncodeError inside the stream's task, and the client waited forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import Direction
from proxy.replay.mock_server import start_mock_server
from proxy.replay.responses import ResponseBook, load_responses
from tests.unit.capture.traffic import META

REQUEST = [(":method", "POST"), (":scheme", "http"), (":authority", "example.test"),
           (":path", "/pkg.Svc/Call"), ("content-type", "application/grpc"), ("te", "trailers")]
RAW = b"\x00\xfe\xff\x80binary"


def make_capture(path: Path) -> None:
    lax = {"validate_outbound_headers": False, "validate_inbound_headers": False}
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, **lax))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, **lax))
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, META, t=10.0)

        def exchange(t: float) -> None:
            for _ in range(10):
                c2s, s2c = client.data_to_send(), server.data_to_send()
                if not c2s and not s2c:
                    return
                if c2s:
                    tap.feed(Direction.C2S, c2s, t)
                    server.receive_data(c2s)
                if s2c:
                    tap.feed(Direction.S2C, s2c, t)
                    client.receive_data(s2c)

        client.initiate_connection()
        server.initiate_connection()
        exchange(10.1)
        client.send_headers(1, REQUEST, end_stream=True)
        exchange(10.2)
        server.send_headers(1, [(":status", "200"), ("content-type", "application/grpc")])
        server.send_data(1, b"\x00\x00\x00\x00\x00")
        server.send_headers(1, [(b"grpc-status", b"0"), (b"x-trace-bin", RAW)], end_stream=True)
        exchange(10.3)
        tap.close(10.4)


async def trailers_from_mock(book: ResponseBook) -> list[tuple[bytes, bytes]]:
    server = await start_mock_server(book, "127.0.0.1", 0, None, lambda _line: None)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, validate_inbound_headers=False))
        conn.initiate_connection()
        conn.send_headers(1, REQUEST, end_stream=True)
        writer.write(conn.data_to_send())
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, "the mock closed the connection"
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.TrailersReceived):
                        return list(ev.headers)
                    assert not isinstance(ev, h2.events.StreamReset), ev
                writer.write(conn.data_to_send())
        finally:
            writer.close()


def test_a_raw_binary_trailer_is_served_as_recorded(tmp_path: Path) -> None:
    make_capture(tmp_path / "grpc.h2scope")
    book = ResponseBook(load_responses(tmp_path / "grpc.h2scope"))
    trailers = asyncio.run(trailers_from_mock(book))
    assert (b"x-trace-bin", RAW) in trailers


RAW_PATH = b"/caf\xe9/x"


async def _ask(book: ResponseBook, path: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    server = await start_mock_server(book, "127.0.0.1", 0, None, lambda _line: None)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False, validate_inbound_headers=False))
        conn.initiate_connection()
        conn.send_headers(1, [(n.encode(), v.encode()) for n, v in REQUEST[:3]]
                          + [(b":path", path)], end_stream=True)
        writer.write(conn.data_to_send())
        headers: list[tuple[bytes, bytes]] = []
        body = b""
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, "the mock closed the connection"
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        headers = list(ev.headers)
                    elif isinstance(ev, h2.events.DataReceived):
                        body += ev.data
                    elif isinstance(ev, h2.events.StreamEnded):
                        return headers, body
                writer.write(conn.data_to_send())
        finally:
            writer.close()


def test_a_request_path_that_is_not_utf8_is_matched_and_404s_stay_readable(
        tmp_path: Path) -> None:
    """The mock decoded request headers as strict UTF-8: such a request dropped the
    connection, and a recording holding such a path broke every 404."""
    import h2.connection as h2c

    path = tmp_path / "raw-path.h2scope"
    lax = {"validate_outbound_headers": False, "validate_inbound_headers": False}
    client = h2c.H2Connection(h2.config.H2Configuration(client_side=True, **lax))
    server = h2c.H2Connection(h2.config.H2Configuration(client_side=False, **lax))
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, META, t=10.0)
        client.initiate_connection()
        server.initiate_connection()
        for t in (10.1, 10.2):
            if t == 10.2:
                client.send_headers(1, [(n.encode(), v.encode()) for n, v in REQUEST[:3]]
                                    + [(b":path", RAW_PATH)], end_stream=True)
            for _ in range(3):
                c2s, s2c = client.data_to_send(), server.data_to_send()
                if c2s:
                    tap.feed(Direction.C2S, c2s, t)
                    server.receive_data(c2s)
                if s2c:
                    tap.feed(Direction.S2C, s2c, t)
                    client.receive_data(s2c)
        server.send_headers(1, [(b":status", b"200")], end_stream=True)
        tap.feed(Direction.S2C, server.data_to_send(), 10.3)
        tap.close(10.4)
    book = ResponseBook(load_responses(path))
    headers, _ = asyncio.run(_ask(book, RAW_PATH))
    assert (b":status", b"200") in headers
    headers, body = asyncio.run(_ask(book, b"/other"))
    assert (b":status", b"404") in headers
    assert "/caf\\xe9/x" in body.decode("utf-8")
