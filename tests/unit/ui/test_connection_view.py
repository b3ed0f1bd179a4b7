"""The connection tab (``i``): both TLS legs, the client's ClientHello as
offered, the certificate h2scope showed, and what went wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.capture.writer import CaptureWriter
from proxy.net.clienthello import parse_client_hello
from tests.unit.net.test_clienthello import fixture
from ui.launch import view_app
from ui.screens.state import StateScreen


def test_i_shows_both_legs_and_the_client_hello_with_grease(tmp_path: Path) -> None:
    hello = parse_client_hello(fixture("clienthello-chromium-156.hex"))
    assert hello is not None
    path = tmp_path / "c.h2scope"
    with CaptureWriter(path, autoflush=False) as writer:
        writer.connection(3, {
            "client": {"ip": "127.0.0.1", "port": 50123}, "mode": "regular", "via": "CONNECT",
            "target": "localhost:8443", "protocol": "h2",
            "client_tls": {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256",
                           "alpn_offered": ["h2", "http/1.1"], "alpn": "h2",
                           "sni": "localhost", "client_hello": hello.as_json()},
            "server_tls": {"version": "TLSv1.2", "cipher": "ECDHE-RSA-AES128-GCM-SHA256",
                           "alpn_offered": ["h2", "http/1.1"], "alpn": "h2",
                           "certificate": {"subject": "CN=localhost", "issuer": "CN=test CA",
                                           "sans": ["localhost"],
                                           "not_after": "2030-01-01T00:00:00+00:00"}}},
            t=1.0)
        writer.close_connection(3, t=2.0, closed_by="server", details={
            "reason": "server reset", "errors": [{"stage": "relay", "message": "upstream "
                                                  "reset the connection", "hint": None}]})
    app = view_app(path)
    seen: dict[str, str] = {}

    async def main() -> None:
        async with app.run_test(size=(140, 60)) as pilot:
            for _ in range(500):
                if app.session.loaded:
                    break
                await pilot.pause(0.01)
            app.tick()
            await pilot.pause()
            await pilot.press("i")
            await pilot.pause()
            assert isinstance(app.screen, StateScreen)
            seen["text"] = app.screen.text("connection")
    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        if app.capture is not None:
            app.capture.close()
    text = seen["text"]
    assert "connection #3  127.0.0.1:50123 → localhost:8443" in text
    assert "mode      regular via CONNECT, h2" in text
    assert "error     relay: upstream reset the connection" in text
    client, server = text.split("server leg")
    assert "TLSv1.3  TLS_AES_128_GCM_SHA256" in client
    assert "offered h2, http/1.1 → h2" in client
    assert "(sends GREASE values, RFC 8701)" in client
    assert f"cipher suites ({len(hello.cipher_suites)})" in client
    assert "GREASE(0x" in client and "key_share" in client and "x25519" in client
    assert "TLSv1.2  ECDHE-RSA-AES128-GCM-SHA256" in server
    assert "certificate  CN=localhost" in server and "issued by CN=test CA" in server
    assert "ClientHello" not in server


def test_an_http1_connection_lists_its_messages_live_and_offline(tmp_path: Path) -> None:
    """A connection that does not speak HTTP/2 has no frames: its HTTP/1.x messages
    are in its note and in the connection tab, from both readers."""
    from proxy.observe.enums import Direction
    from tests.unit.ui.test_follow import both_readers
    from ui.screens.state import connection_text

    path = tmp_path / "h1.h2scope"
    with CaptureWriter(path, autoflush=False) as writer:
        writer.connection(5, {"client": {"ip": "127.0.0.1", "port": 40000}, "mode": "regular",
                              "target": "example.test:80", "protocol": "http/1.1"}, t=1.0)
        writer.http1(5, Direction.C2S, b"GET /x HTTP/1.1\r\nhost: example.test\r\n\r\n",
                     t=1.0, wall=1.1)
        writer.http1(5, Direction.S2C, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
                     t=1.1, wall=1.2)
        writer.close_connection(5, t=1.3, closed_by="client", details={"reason": "done"})
    for session in both_readers(path):
        c = session.conns[5]
        assert c.note == ("HTTP/1.x: 1 request, 1 response(s), last 'HTTP/1.1 200 OK'; "
                          "by client: done")
        text = connection_text(c).plain
        assert "HTTP/1.x messages (2)" in text
        assert "→ GET /x HTTP/1.1" in text and "host: example.test" in text
        assert "← HTTP/1.1 200 OK" in text and "content-length: 2" in text


def test_http1_exchanges_are_in_the_requests_list(tmp_path: Path) -> None:
    """The requests list (R) had only HTTP/2 streams: a browser's HTTP/1.1 requests
    (an h1-only origin, a plain-http redirect) were missing, though the HAR has them."""
    from proxy.observe.enums import Direction
    from tests.unit.ui.test_follow import both_readers
    from ui.screens.requests import request_rows

    path = tmp_path / "h1.h2scope"
    with CaptureWriter(path, autoflush=False) as writer:
        writer.connection(5, {"client": {"ip": "127.0.0.1", "port": 40000}, "mode": "regular",
                              "target": "example.test:80", "protocol": "http/1.1"}, t=1.0)
        writer.http1(5, Direction.C2S, b"POST /up HTTP/1.1\r\ncontent-length: 7\r\n\r\n",
                     t=1.0, wall=1.05)
        writer.http1(5, Direction.S2C, b"HTTP/1.1 100 Continue\r\n\r\n", t=1.02, wall=1.02)
        writer.http1(5, Direction.S2C, b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n",
                     t=1.1, wall=1.25)
        writer.http1(5, Direction.C2S, b"GET /next HTTP/1.1\r\n\r\n", t=2.0, wall=2.0)
        writer.http1(5, Direction.S2C, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                     b"\r\n", t=2.0, wall=3.0)
        # answered before its body ended: the request is recorded after its response
        writer.http1(5, Direction.S2C, b"HTTP/1.1 413 Payload Too Large\r\n"
                     b"content-length: 9\r\n\r\n", t=4.0, wall=4.01)
        writer.http1(5, Direction.C2S, b"POST /big HTTP/1.1\r\ncontent-length: 9000\r\n\r\n",
                     t=4.0, wall=4.02, body_truncated=True)
        writer.close_connection(5, t=4.1, closed_by="proxy")
    for session in both_readers(path):
        rows = [(r.label, r.status, r.wait, round(r.duration, 3), r.sent, r.body, r.first_row)
                for r in request_rows(session)]
        assert rows == [("POST /up (HTTP/1.x)", "201", None, 0.25, 7, 2, -5),
                        ("GET /next (HTTP/1.x)", "200", None, 1.0, 0, -1, -5),
                        ("POST /big (HTTP/1.x)", "413", None, 0.01, 9000, 9, -5)]

    # Enter on one (it has no frame): the timeline is scoped to its connection.

    from tests.unit.ui.conftest import drive
    from ui.app import H2ScopeApp
    from ui.screens.requests import RequestsScreen

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, RequestsScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, RequestsScreen) and app.scope_conn == 5
    drive(path, scenario)


def test_a_capture_cut_short_says_its_connection_and_body_did_not_end(tmp_path: Path) -> None:
    """A connection with no CLOSE in a capture with no END record (the recording
    killed, the file cut) was not plainly "open": the capture ends; a body shorter
    than its content-length there is incomplete. With the END record, the
    connection was open when the recording ended."""
    import os

    from proxy.capture.tap import RecordingObserver
    from proxy.observe.enums import CONNECTION_PREFACE, Direction
    from tests.unit.observe.conftest import REQUEST, FrameFactory
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session
    from ui.screens.state import connection_text
    from ui.screens.stream import stream_text

    c2s, s2c = Direction.C2S, Direction.S2C
    f = FrameFactory()
    path = tmp_path / "cut.h2scope"
    writer = CaptureWriter(path, autoflush=False)
    tap = RecordingObserver(writer, 1, {"client": {"ip": "127.0.0.1", "port": 50000},
                                        "target": "example.com:443", "mode": "regular",
                                        "protocol": "h2"}, t=1.0, wall_clock=True)
    tap.feed(c2s, CONNECTION_PREFACE + f.settings(), 1.0)
    tap.feed(s2c, f.settings() + f.settings(ack=True), 1.0)
    tap.feed(c2s, f.headers(c2s, 1, REQUEST, flags=["END_HEADERS", "END_STREAM"]), 1.1)
    tap.feed(s2c, f.headers(s2c, 1, [(":status", "200"), ("content-length", "5000")])
             + f.data(1, b"x" * 1200), 1.2)
    writer.close(fsync=False)

    def shown() -> tuple[str, str]:
        capture = CaptureFile(path)
        try:
            session = Session(capture)
            load(session, capture)
            conn = session.conns[1]
            return (connection_text(conn, session).plain,
                    stream_text(session, conn, conn.streams[1]).plain)
        finally:
            capture.close()

    conn, stream = shown()
    assert "  state     open at the end of the capture (no close recorded)\n" in conn
    assert "response body: 1,200 bytes in 1 DATA frame(s)  (incomplete: 1,200 of " \
        "content-length 5,000)\n" in stream
    os.truncate(path, path.stat().st_size - 3)  # the END record torn off
    conn, _ = shown()
    assert ("  state     open at the end of the capture (no close recorded; the capture has "
            "no END record: the recording was killed or the file cut short)\n") in conn


@pytest.fixture
def tz_plus_two(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 2 hours ahead of UTC (a POSIX TZ rule: no zone database needed)."""
    import time

    monkeypatch.setenv("TZ", "XYZ-2")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_connection_tab_gives_open_and_close_on_the_wall_clock_and_the_duration(
        tz_plus_two: None) -> None:
    """No wall-clock time anywhere: which connection of the afternoon was this?"""
    from ui.model.connections import ConnInfo
    from ui.screens.state import connection_text

    c = ConnInfo(conn_id=1, meta={"opened": 1_796_680_800.25, "mode": "regular"})
    c.closed_t, c.closed = 1_796_680_861.5, "by client: done"
    text = connection_text(c).plain
    assert "  opened    2026-12-08 00:00:00.250000+02:00\n" in text
    assert "  closed    2026-12-08 00:01:01.500000+02:00, after 61.250 s\n" in text
    c.closed_t = c.closed = None
    assert "  open for  10.000 s so far\n" in connection_text(c, now=1_796_680_810.25).plain


def test_the_frame_detail_gives_the_frames_wall_clock_time(
        session: Any, tz_plus_two: None) -> None:
    from ui.model.detail import decoded
    from ui.model.session import wall_clock

    t = session.table
    ev = t.event(0)
    text = decoded(session, 0, ev).plain
    line = next(x for x in text.splitlines() if x.startswith("time "))
    assert line.endswith(f"s  ({wall_clock(ev.t)})") and "+02:00)" in line, line


def test_websocket_messages_after_an_upgrade_are_not_counted_as_requests() -> None:
    """An HTTP/1.1 WebSocket's connection said '4 requests, 4 response(s)' for one
    Upgrade, its 101 and six messages."""
    from proxy.observe.enums import Direction
    from ui.model.session import Session
    from ui.model.table import LiveFrames

    c = Session(LiveFrames()).conn(4)
    c.http1.extend([(1.0, Direction.C2S, "GET /chat HTTP/1.1\r\nupgrade: websocket"),
                    (1.1, Direction.S2C, "HTTP/1.1 101 Switching Protocols"),
                    *[(1.2 + i / 10, Direction(i % 2), f"websocket text 'm{i}'")
                      for i in range(5)],
                    (2.0, Direction.C2S, "websocket close 1000 normal closure")])
    assert c.note == ("HTTP/1.x: 1 request, 1 response(s), 6 WebSocket messages, "
                      "last 'websocket close 1000 normal closure'")


def test_a_long_url_does_not_widen_the_requests_table_past_its_other_columns() -> None:
    """One 300-character query string made the request column as wide as itself: the
    status, times and sizes of every row were off the screen."""
    from ui.screens.requests import REQUEST_WIDTH, _request

    long = "GET localhost:58021/index.html?q=" + "p" * 300
    assert _request(long) == f"GET {long[4:REQUEST_WIDTH - 1]}…"
    assert len(_request(long)) == REQUEST_WIDTH
    deep = "POST api.test/" + "a" * 100 + "/pkg.Svc/Call"
    assert _request(deep).endswith("/pkg.Svc/Call") and len(_request(deep)) == REQUEST_WIDTH
    assert _request("GET a.test/x") == "GET a.test/x"
