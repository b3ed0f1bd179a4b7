"""A server that goes away mid-response (killed): the client resets the streams it
had open as the socket closes — after the server left. Those streams were counted
as finished by the client's reset, so nothing was said; the relay now notes where
each side's bytes ended, live and in the recording, and the server's abandoned
response is the finding it is (the same from ``check`` of the recording)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.events import ConnectionClosed
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import ConnectionFindingRaised
from tests.helpers.proxy_thread import ProxyThread
from tests.unit.observe.conftest import REQUEST, FrameFactory

C2S, S2C = Direction.C2S, Direction.S2C


def _read_some(sock: socket.socket, want: int) -> bytes:
    data = b""
    while len(data) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_streams_the_client_resets_after_the_server_left_are_the_servers_unfinished(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    f = FrameFactory()
    origin = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:  # half a response, then gone (as a killed server's kernel does)
        conn, _ = origin.accept()
        with conn:
            conn.settimeout(10)
            _read_some(conn, len(CONNECTION_PREFACE) + 9)
            conn.sendall(f.settings() + f.settings(ack=True)
                         + f.headers(S2C, 1, [(":status", "200")]) + f.data(1, b"half"))
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    capture = tmp_path / "gone.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin.getsockname()[1]}"],
                       sinks=(recorder,))
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10)
        with client:
            client.sendall(CONNECTION_PREFACE + f.settings()
                           + f.headers(C2S, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]))
            while client.recv(65536):  # until the server's end reaches the client
                pass
            client.sendall(f.rst(1, 7))  # REFUSED_STREAM, as grpc-core does then
        proxy.wait_closed()
        thread.join(10)
    finally:
        origin.close()
    proxy.close()
    recorder.close()
    closed = proxy.events(ConnectionClosed)[0]
    assert closed.ends and closed.ends[0][0] == "s2c"
    live = [e.finding for e in proxy.events(ConnectionFindingRaised)
            if e.finding.code == "stream-unfinished"]
    assert [(x.severity.name, x.stream_id) for x in live] == [("WARNING", 1)]
    assert "the server's response on stream 1 unfinished" in live[0].message
    assert main(["check", str(capture), "--fail-on", "none"]) == 0
    assert "warning stream-unfinished (RFC 9113 §8.1) ×1" in capsys.readouterr().out


def test_a_server_that_keeps_its_half_open_after_the_client_left_is_closed(
        make_proxy: Callable[..., ProxyThread], monkeypatch: pytest.MonkeyPatch) -> None:
    """The client ends its side; the server (as a Node server after its GOAWAY) never
    ends its own and stays silent. The relay's wait for it had no timeout when its
    read began before the client's end: the connection stayed open until h2scope
    stopped, and was then said to be closed 'because h2scope is stopping'."""
    import proxy.net.relay

    monkeypatch.setattr(proxy.net.relay, "HALF_CLOSE_GRACE", 0.5)
    f = FrameFactory()
    origin = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:  # answers, then keeps its side open, silent
        conn, _ = origin.accept()
        with conn:
            conn.settimeout(10)
            _read_some(conn, len(CONNECTION_PREFACE) + 9)
            conn.sendall(f.settings() + f.settings(ack=True))
            while conn.recv(65536):  # until the client's end comes through
                pass
            done.wait(10)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin.getsockname()[1]}"])
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10)
        with client:
            client.sendall(CONNECTION_PREFACE + f.settings())
            _read_some(client, 18)  # the server's SETTINGS and ACK: both pumps now read
            client.shutdown(socket.SHUT_WR)
            closed = proxy.wait_closed(timeout=5)[0]
            assert client.recv(65536) == b""  # the proxy closed the client's side too
    finally:
        done.set()
        origin.close()
        thread.join(10)
    assert closed.closed_by.name == "CLIENT"
    assert closed.reason == ("client closed the connection; the server kept its side open, "
                             "silent for 0.5 s: h2scope closed it")


def test_a_slow_download_after_the_clients_half_close_is_not_cut(
        make_proxy: Callable[..., ProxyThread], monkeypatch: pytest.MonkeyPatch) -> None:
    """The silence watch must not take a sink's back-pressure for silence: the server
    sends 32 MB after the client ended its side, the client reads them after a pause
    longer than the grace; nothing read from the server meanwhile (the relay waits
    for the client to read), and the download completes."""
    import proxy.net.relay

    monkeypatch.setattr(proxy.net.relay, "HALF_CLOSE_GRACE", 0.5)
    size = 32 << 20
    origin = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = origin.accept()
        with conn:
            conn.settimeout(20)
            while conn.recv(65536):  # until the client's end
                pass
            conn.sendall(b"\xff" * size)  # (one oversized frame header: desynced at once)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin.getsockname()[1]}"])
    got = 0
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=20)
        with client:
            client.sendall(CONNECTION_PREFACE)
            client.shutdown(socket.SHUT_WR)
            time.sleep(1.5)  # (three graces: the relay is stuck writing to us)
            while chunk := client.recv(1 << 20):
                got += len(chunk)
        closed = proxy.wait_closed(timeout=10)[0]
    finally:
        origin.close()
        thread.join(10)
    assert got == size
    assert "silent" not in closed.reason, closed.reason
