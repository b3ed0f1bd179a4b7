"""Peers for the replay and diff tests: an h2c origin whose answers a test chooses
(python-hyper ``h2``), a client that records through the proxy, and the proxy's
recording of it.

:class:`Origin` serves each request, when its stream ends, with the route for its
path: a function given the h2 connection, the stream id, the request's fields and
body, which answers with h2 calls (1xx responses, resets, trailers). A route that
answers a stream the client has reset already is not an error.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from tests.helpers.proxy_thread import ProxyThread

Fields = list[tuple[str, str]]
Route = Callable[[h2.connection.H2Connection, int, Fields, bytes], None]


def answer(status: str, body: bytes = b"", *fields: tuple[str, str],
           informational: Sequence[Fields] = ()) -> Route:
    """A route that sends ``informational`` 1xx header blocks, then ``status`` with
    ``fields`` and ``body``."""
    def route(conn: h2.connection.H2Connection, sid: int, _req: Fields, _body: bytes) -> None:
        for block in informational:
            conn.send_headers(sid, block)
        conn.send_headers(sid, [(":status", status), *fields], end_stream=not body)
        if body:
            conn.send_data(sid, body, end_stream=True)
    return route


class Origin:
    """An h2c server on a free loopback port (:attr:`port`), one thread per connection."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Origin:
        self._accepting.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None,
                 ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in list(self._conns):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._accepting.join(5)
        for t in self._threads:
            t.join(5)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(sock)
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        requests: dict[int, Fields] = {}
        bodies: dict[int, bytearray] = {}
        with sock:
            try:
                sock.sendall(conn.data_to_send())
                while data := sock.recv(65536):
                    for ev in conn.receive_data(data):
                        if isinstance(ev, h2.events.RequestReceived):
                            requests[ev.stream_id] = [(str(n), str(v)) for n, v in ev.headers]
                            bodies[ev.stream_id] = bytearray()
                        elif isinstance(ev, h2.events.DataReceived):
                            bodies[ev.stream_id] += ev.data
                            conn.acknowledge_received_data(ev.flow_controlled_length,
                                                           ev.stream_id)
                        elif isinstance(ev, h2.events.StreamEnded):
                            req = requests[ev.stream_id]
                            route = self.routes.get(dict(req)[":path"], answer("404"))
                            # (the client may have reset it in the same read)
                            with contextlib.suppress(h2.exceptions.StreamClosedError):
                                route(conn, ev.stream_id, req, bytes(bodies[ev.stream_id]))
                    sock.sendall(conn.data_to_send())
            except (OSError, h2.exceptions.ProtocolError):
                return


def record_through_proxy(make_proxy: Callable[..., ProxyThread], origin_port: int,
                         path: Path, client: Callable[[int], None]) -> Path:
    """``client(port)`` run against the proxy (reverse, h2c) in front of the origin on
    ``origin_port``, recorded to ``path``."""
    recorder = CaptureRecorder(CaptureWriter(path))
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin_port}"], sinks=(recorder,))
    client(proxy.port("reverse"))
    proxy.wait_closed()
    proxy.close()
    recorder.close()
    return path


def fetch(port: int, requests: Sequence[tuple[Fields, bytes]]) -> None:
    """A python-h2 client on one h2c connection: each request (fields, body) in turn,
    its response read to the end."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn.initiate_connection()
        for fields, body in requests:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, fields, end_stream=not body)
            if body:
                conn.send_data(sid, body, end_stream=True)
            sock.sendall(conn.data_to_send())
            for _ in _until_ended(conn, sock, sid):
                pass
        conn.close_connection()
        sock.sendall(conn.data_to_send())


def _until_ended(conn: h2.connection.H2Connection, sock: socket.socket,
                 sid: int) -> Iterator[h2.events.Event]:
    ended = False
    while not ended:
        data = sock.recv(65536)
        assert data, "the connection closed before the response ended"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            ended |= isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) \
                and ev.stream_id == sid
            yield ev
        sock.sendall(conn.data_to_send())


def request(method: str, path: str, *fields: tuple[str, str]) -> Fields:
    return [(":method", method), (":scheme", "http"), (":authority", "origin.example"),
            (":path", path), *fields]


ERRORS = h2.errors.ErrorCodes
