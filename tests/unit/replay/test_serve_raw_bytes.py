"""``serve`` keeps header bytes that are not UTF-8 as they were recorded: a raw
``-bin`` trailer (gRPC's true binary metadata) raised a UnicodeEncodeError inside
the stream's task and the client waited forever; a request path that is not
UTF-8 dropped the connection, and one recorded broke every 404."""

from __future__ import annotations

import asyncio
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.replay.mock_server import start_mock_server
from proxy.replay.responses import ResponseBook, load_responses
from tests.unit.capture.traffic import META, exchange

RAW = b"\x00\xfe\xff\x80binary"
RAW_PATH = b"/caf\xe9/x"
LAX = {"validate_outbound_headers": False, "validate_inbound_headers": False}


def request(path: bytes = b"/pkg.Svc/Call") -> list[tuple[bytes, bytes]]:
    return [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.test"),
            (b":path", path), (b"content-type", b"application/grpc"), (b"te", b"trailers")]


def make_capture(path: Path, request_path: bytes = b"/pkg.Svc/Call") -> Path:
    """One gRPC call, recorded: its response ends with a raw binary trailer."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, **LAX))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, **LAX))
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, META, t=10.0)

        client.initiate_connection()
        server.initiate_connection()
        exchange(tap, client, server, 10.1)
        client.send_headers(1, request(request_path), end_stream=True)
        exchange(tap, client, server, 10.2)
        server.send_headers(1, [(":status", "200"), ("content-type", "application/grpc")])
        server.send_data(1, b"\x00\x00\x00\x00\x00")
        server.send_headers(1, [(b"grpc-status", b"0"), (b"x-trace-bin", RAW)], end_stream=True)
        exchange(tap, client, server, 10.3)
        tap.close(10.4)
    return path


async def _ask(book: ResponseBook, path: bytes) -> tuple[list[tuple[bytes, bytes]],
                                                         list[tuple[bytes, bytes]], bytes]:
    """The mock's answer to a request for ``path``: headers, trailers, body."""
    server = await start_mock_server(book, "127.0.0.1", 0, None, lambda _line: None)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, **LAX))
        conn.initiate_connection()
        conn.send_headers(1, request(path), end_stream=True)
        writer.write(conn.data_to_send())
        headers: list[tuple[bytes, bytes]] = []
        trailers: list[tuple[bytes, bytes]] = []
        body = b""
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data, "the mock closed the connection"
                for ev in conn.receive_data(data):
                    assert not isinstance(ev, h2.events.StreamReset), ev
                    if isinstance(ev, h2.events.ResponseReceived):
                        headers = list(ev.headers)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        trailers = list(ev.headers)
                    elif isinstance(ev, h2.events.DataReceived):
                        body += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, 1)
                    elif isinstance(ev, h2.events.StreamEnded):
                        return headers, trailers, body
                writer.write(conn.data_to_send())
        finally:
            writer.close()


def test_a_raw_binary_trailer_is_served_as_recorded(tmp_path: Path) -> None:
    book = ResponseBook(load_responses(make_capture(tmp_path / "grpc.h2scope")))
    _, trailers, _ = asyncio.run(_ask(book, b"/pkg.Svc/Call"))
    assert (b"x-trace-bin", RAW) in trailers


def test_a_request_path_that_is_not_utf8_is_matched_and_404s_stay_readable(
        tmp_path: Path) -> None:
    book = ResponseBook(load_responses(make_capture(tmp_path / "raw-path.h2scope", RAW_PATH)))
    headers, _, _ = asyncio.run(_ask(book, RAW_PATH))
    assert (b":status", b"200") in headers
    # (a gRPC request: the answer is gRPC's UNIMPLEMENTED, the text in grpc-message)
    headers, _, _ = asyncio.run(_ask(book, b"/other"))
    assert (b":status", b"200") in headers and (b"grpc-status", b"12") in headers
    assert b"closest recorded: /caf\\xe9/x" in dict(headers)[b"grpc-message"]
