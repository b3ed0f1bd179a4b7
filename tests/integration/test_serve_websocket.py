"""``h2scope serve`` lets a client open a recorded WebSocket over HTTP/2 (RFC 8441).

A python-hyper h2 origin sends its first SETTINGS with h2's defaults
(ENABLE_CONNECT_PROTOCOL=0) and ENABLE_CONNECT_PROTOCOL=1 in a second SETTINGS
frame (``update_settings()`` after ``initiate_connection()``); a Python h2
client opens a WebSocket through the recording proxy. Served, the client must
find ENABLE_CONNECT_PROTOCOL=1 in the mock's SETTINGS — a browser that finds 0
falls back to an HTTP/1.1 WebSocket — and get the recorded echo.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.replay.responses import load_responses
from tests.helpers.h2server import H2Origin
from tests.helpers.loop_thread import LoopThread
from tests.helpers.options import Options
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles
from tests.integration.conftest import Served

pytestmark = pytest.mark.peer

ECP = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


class LateConnectProtocolOrigin(H2Origin):
    """H2Origin's WebSocket echo, its ENABLE_CONNECT_PROTOCOL=1 in a second SETTINGS."""

    def __init__(self) -> None:
        super().__init__(websocket=True)
        self.conn.local_settings = h2.settings.Settings(client=False)  # (h2's: ECP 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # (initiate_connection: the first SETTINGS)
        self.conn.update_settings({ECP: 1})
        self.flush()


def open_websocket(port: int, ca: Path, *, wait_for_ecp: bool) -> tuple[int, str, bytes]:
    """A Python h2 client: TLS (ALPN h2) to 127.0.0.1:``port``, an extended CONNECT
    for a WebSocket on /chat, one masked text frame 'hi'. Returns the
    ENABLE_CONNECT_PROTOCOL of the server's first SETTINGS, the response status
    and the DATA received on the stream. ``wait_for_ecp``: read further SETTINGS
    until the server allows extended CONNECT (else it must in the first)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["h2"])
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    events: list[h2.events.Event] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "h2"

        def read_until(done: object) -> None:
            while not done():  # type: ignore[operator]
                data = sock.recv(65536)
                assert data, f"the server closed the connection: {events}"
                events.extend(conn.receive_data(data))
                sock.sendall(conn.data_to_send())

        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        read_until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events))
        first = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
        first_ecp = first.changed_settings[ECP].new_value if ECP in first.changed_settings \
            else 0
        if wait_for_ecp:
            read_until(lambda: conn.remote_settings.enable_connect_protocol == 1)
        elif first_ecp != 1:
            return first_ecp, "", b""
        conn.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"),
                              (":scheme", "https"), (":path", "/chat"),
                              (":authority", f"localhost:{port}"),
                              ("sec-websocket-version", "13")])
        sock.sendall(conn.data_to_send())
        read_until(lambda: any(isinstance(e, (h2.events.ResponseReceived,
                                              h2.events.StreamReset)) for e in events))
        response = next((e for e in events if isinstance(e, h2.events.ResponseReceived)), None)
        assert response is not None, events
        status = dict(response.headers)[b":status"].decode()
        mask = os.urandom(4)
        conn.send_data(1, b"\x81\x82" + mask + bytes(b ^ mask[i % 4]
                                                    for i, b in enumerate(b"hi")))
        sock.sendall(conn.data_to_send())

        def got() -> bytes:
            return b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))

        read_until(lambda: b"echo: hi" in got())
        conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
        conn.close_connection()
        sock.sendall(conn.data_to_send())
        return first_ecp, status, got()


@pytest.fixture(scope="module")
def websocket_capture(tmp_path_factory: pytest.TempPathFactory, confdir: Path,
                      origin_cert: CertFiles) -> Path:
    loop = LoopThread()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(origin_cert.cert, origin_cert.key)
    ctx.set_alpn_protocols(["h2"])

    async def start() -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(
            LateConnectProtocolOrigin, "127.0.0.1", 0, ssl=ctx)

    server = loop.run(start())
    path = tmp_path_factory.mktemp("serve-ws") / "ws.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    try:
        origin = server.sockets[0].getsockname()[1]
        proxy = ProxyThread(Options(confdir=confdir, upstream_ca=origin_cert.cert,
                                    modes=[f"reverse:https://127.0.0.1:{origin}"]), [recorder])
        try:
            first_ecp, status, data = open_websocket(proxy.port("reverse"),
                                                     confdir / "h2scope-ca-cert.pem",
                                                     wait_for_ecp=True)
            assert (first_ecp, status) == (0, "200") and b"echo: hi" in data
            proxy.wait_closed()
        finally:
            proxy.close()
    finally:
        async def stop() -> None:
            server.close()
        loop.run(stop())
        loop.close()
        recorder.close()
    return path


def test_a_websocket_recorded_with_connect_protocol_in_a_second_settings_is_served(
        websocket_capture: Path, serve: Served, confdir: Path) -> None:
    """Only the first recorded SETTINGS (ENABLE_CONNECT_PROTOCOL=0) was sent: the
    client was told it may not open a WebSocket over HTTP/2 (Chromium fell back
    to HTTP/1.1, answered 505)."""
    (ws,) = [r for r in load_responses(websocket_capture) if r.method == "CONNECT"]
    assert (0x8, 0) in (ws.server_settings or ()) and (0x8, 1) in ws.later_settings
    url = serve(str(websocket_capture))
    port = int(url.rsplit(":", 1)[1])
    first_ecp, status, data = open_websocket(port, confdir / "h2scope-ca-cert.pem",
                                             wait_for_ecp=False)
    assert first_ecp == 1
    assert status == "200" and b"echo: hi" in data
    log = serve.wait_log(url, "SETTINGS as the recorded")
    assert any("ENABLE_CONNECT_PROTOCOL=1 from a later SETTINGS frame" in line
               for line in log), log
