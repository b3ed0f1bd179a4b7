"""A recording whose client closed the connection while a response still came (a
client that stopped reading a long stream): the recorded client did not wait for the
end, so a fast replay does not either — it ends once as much of the response as was
recorded has come, not after --timeout of silence from a server that keeps the stream
open."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from proxy.cli import main
from tests.helpers.proxy_thread import ProxyThread
from tests.integration.replay_peers import (
    Fields,
    Origin,
    answer,
    fetch,
    record_through_proxy,
    request,
)


def _endless(conn: h2.connection.H2Connection, sid: int, _req: Fields, _body: bytes) -> None:
    """The start of a stream that is never ended (a feed, a long poll)."""
    conn.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
    conn.send_data(sid, b"data: one\n\n")


def _leave_mid_stream(port: int) -> None:
    """Fetches /page, opens /feed, reads its first event and closes the connection."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn.initiate_connection()
        conn.send_headers(1, request("GET", "/page"), end_stream=True)
        conn.send_headers(3, request("GET", "/feed"), end_stream=True)
        sock.sendall(conn.data_to_send())
        done: set[int] = set()
        event = False
        while not (event and 1 in done):
            data = sock.recv(65536)
            assert data
            for ev in conn.receive_data(data):
                done |= {ev.stream_id} if isinstance(ev, h2.events.StreamEnded) else set()
                event |= isinstance(ev, h2.events.DataReceived) and ev.stream_id == 3
            sock.sendall(conn.data_to_send())


def test_a_stream_the_recorded_client_left_open_is_not_waited_for(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    routes = {"/page": answer("200", b"page"), "/feed": _endless}
    with Origin(routes) as origin:
        capture = record_through_proxy(make_proxy, origin.port, tmp_path / "left.h2scope",
                                       _leave_mid_stream)
        started = time.monotonic()
        code = main(["replay", str(capture), "--target", f"http://127.0.0.1:{origin.port}",
                     "--speed", "0", "--timeout", "5"])
        took = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out
    assert took < 2.5, f"{took:.1f} s:\n{out}"  # (not the 5 s --timeout)
    assert "stream 3 (GET /feed): the recorded client closed the connection before the " \
        "response ended: the replay waits for as much of it as was recorded (11 bytes), " \
        "not for its end" in out
    assert "stopped waiting" not in out
    assert "same     stream 3 (GET /feed): 200, 11 bytes before the client closed the " \
        "connection (not compared)" in out


def test_a_replay_that_stops_waiting_says_for_how_long_and_which_streams(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded response ended; this server keeps the stream open: the replay waits
    --timeout of silence, and says so, naming the stream."""
    with Origin({"/feed": answer("200", b"data: one\n\n")}) as origin:
        capture = record_through_proxy(make_proxy, origin.port, tmp_path / "whole.h2scope",
                                       lambda port: fetch(port, [(request("GET", "/feed"),
                                                                  b"")]))
    with Origin({"/feed": _endless}) as endless:
        code = main(["replay", str(capture), "--target", f"http://127.0.0.1:{endless.port}",
                     "--speed", "0", "--timeout", "1"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "note: stopped waiting: the server sent nothing for 1 s (--timeout) and had not " \
        "ended every stream (stream 1)" in out
