"""Frame fidelity: what one endpoint sends is exactly what the other receives, both ways.

A scripted exchange between a Python h2 client and server (SETTINGS changes,
PINGs, WINDOW_UPDATEs, several streams with bodies) runs through the proxy's
h2c reverse mode; every byte is compared, and so are the chunks the bus
published (what a recorder stores).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings

from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved, PingAnswered, SettingsAcknowledged
from tests.helpers.proxy_thread import ProxyThread


class Recorded:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent = bytearray()
        self.received = bytearray()

    def send(self, data: bytes) -> None:
        self.sent += data
        self.sock.sendall(data)

    def recv(self) -> bytes:
        data = self.sock.recv(65536)
        self.received += data
        return data


def serve_one(listener: socket.socket, out: dict[str, Recorded]) -> None:
    conn, _ = listener.accept()
    conn.settimeout(10)
    rec = out["server"] = Recorded(conn)
    h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    h2c.initiate_connection()
    h2c.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 7})
    rec.send(h2c.data_to_send())
    with conn:
        while data := rec.recv():
            for ev in h2c.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    h2c.ping(b"srvping1")
                    body = f"stream {ev.stream_id}".encode()
                    h2c.send_headers(ev.stream_id, [(":status", "200"),
                                                    ("x-echo", "yes")])
                    h2c.send_data(ev.stream_id, body, end_stream=True)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    rec.send(h2c.data_to_send())
                    return
            rec.send(h2c.data_to_send())


def test_bytes_received_equal_bytes_sent_in_both_directions(
        make_proxy: Callable[..., ProxyThread]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    recorded: dict[str, Recorded] = {}
    server = threading.Thread(target=serve_one, args=(listener, recorded))
    server.start()
    try:
        port = listener.getsockname()[1]
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        sock = socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10)
        client = Recorded(sock)
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        h2c.initiate_connection()
        h2c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100_000,
                             h2.settings.SettingCodes.HEADER_TABLE_SIZE: 1024})
        h2c.ping(b"cliping1")
        h2c.increment_flow_control_window(500_000)
        for sid in (1, 3, 5):
            h2c.send_headers(sid, [(":method", "POST"), (":path", f"/s{sid}"),
                                   (":scheme", "http"), (":authority", "example")])
            h2c.send_data(sid, b"b" * 1000 * sid, end_stream=True)
        client.send(h2c.data_to_send())
        done: set[int] = set()
        with sock:
            while len(done) < 3:
                data = client.recv()
                assert data, "server closed early"
                for ev in h2c.receive_data(data):
                    if isinstance(ev, h2.events.StreamEnded):
                        done.add(ev.stream_id)
                client.send(h2c.data_to_send())
            h2c.close_connection()
            client.send(h2c.data_to_send())
            sock.shutdown(socket.SHUT_WR)
            while client.recv():
                pass
        server.join(10)
    finally:
        listener.close()
    srv = recorded["server"]
    assert bytes(srv.received) == bytes(client.sent)
    assert bytes(client.received) == bytes(srv.sent)
    proxy.wait_closed()
    chunks = proxy.chunks(1)
    assert b"".join(b.data for b in chunks if b.direction is Direction.C2S) == bytes(client.sent)
    assert b"".join(b.data for b in chunks if b.direction is Direction.S2C) == bytes(srv.sent)
    frames = proxy.events(FrameObserved)
    raw_c2s = b"".join(e.frame.raw for e in frames if e.direction is Direction.C2S)
    assert bytes(client.sent) == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + raw_c2s
    answered = {(e.direction, e.opaque) for e in proxy.events(PingAnswered)}
    assert answered == {(Direction.S2C, b"cliping1"), (Direction.C2S, b"srvping1")}
    assert len(proxy.events(SettingsAcknowledged)) >= 3
