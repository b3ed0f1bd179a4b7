"""Regenerate the UI screenshots in this directory from real traffic.

    python docs/images/make_screenshots.py

curl (HTTP/2 over TLS, several requests multiplexed on one connection with
``--parallel``) talks through h2scope — the live UI with recording on — to a
local ``h2`` origin (tests/helpers/h2server.py) that serves a large download
(flow control), a reset stream and small responses. The recording is then
opened with ``h2scope view``'s app and each screen is saved as SVG (Textual's
own export), so the pictures show exactly what a terminal shows.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from proxy.config import Config, ListenConfig, RecordConfig, UpstreamConfig  # noqa: E402
from tests.helpers.h2server import ServerThread  # noqa: E402
from tests.helpers.tls_files import make_self_signed  # noqa: E402
from ui.app import H2ScopeApp  # noqa: E402
from ui.launch import live_app, view_app  # noqa: E402
from ui.model.follow import ChildProxy  # noqa: E402

OUT = Path(__file__).resolve().parent
SIZE = (160, 46)


def neutral_ca(confdir: Path) -> None:
    """Create the CA up front under a neutral name: its name holds user@host,
    which the pictures should not show (the proxy's process then loads it)."""
    from unittest import mock

    import certs.ca
    from certs.store import CertStore

    with mock.patch.object(certs.ca, "_user", lambda: "user"), \
            mock.patch.object(certs.ca.socket, "gethostname", lambda: "example"):
        CertStore(confdir)


def slow_reader(proxy_port: int, ca: Path, origin_port: int, path: str) -> None:
    """An HTTP/2 client (python-hyper h2) through the proxy that reads a download
    slowly: a 16 KiB stream window, acknowledged 0.1 s after each fill, so the
    server stalls on flow control as a slow consumer makes it (the flow-control
    picture)."""
    import socket
    import ssl
    import time

    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    sock = socket.create_connection(("127.0.0.1", proxy_port))
    target = f"localhost:{origin_port}"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", target),
                          (":path", path)], end_stream=True)
    tls.sendall(conn.data_to_send())
    done = False
    while not done:
        data = tls.recv(65536)
        if not data:
            break
        unacked = 0
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                unacked += ev.flow_controlled_length
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
        tls.sendall(conn.data_to_send())
        if unacked and not done:
            time.sleep(0.1)  # the slow consumer
            conn.acknowledge_received_data(unacked, 1)
            tls.sendall(conn.data_to_send())
    conn.close_connection()
    tls.sendall(conn.data_to_send())
    tls.close()


def record(tmp: Path) -> Path:
    neutral_ca(tmp / "conf")
    cert = make_self_signed(tmp / "origin")
    origin = ServerThread(cert.cert, cert.key)
    capture = Path("curl.h2scope")  # relative (cwd is the temp dir): no paths on screen
    config = Config(listen=ListenConfig(port=0), confdir=tmp / "conf",
                    upstream=UpstreamConfig(ca_file=cert.cert),
                    record=RecordConfig(file=capture))
    app: H2ScopeApp = live_app(config)
    assert isinstance(app.live, ChildProxy) and app.live.ca_cert_path is not None
    port = int(app.listen.rsplit(":", 1)[1])
    ca = app.live.ca_cert_path
    base = f"https://localhost:{origin.port}"
    curl = [shutil.which("curl") or "curl", "-sS", "--http2", "--cacert", str(ca), "-x",
            f"http://127.0.0.1:{port}", "--parallel", "--parallel-immediate",
            "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
            "-o", "/dev/null", "-H", "accept-encoding: gzip",
            f"{base}/index.html", f"{base}/big/300000", f"{base}/api/users",
            f"{base}/reset", f"{base}/slow/65536"]

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: subprocess.run(curl, timeout=60))
            await loop.run_in_executor(None, lambda: slow_reader(port, ca, origin.port,
                                                                 "/big/100000"))
            for _ in range(200):
                await pilot.pause(0.05)
                if app.session.conns and all(c.closed for c in app.session.conns.values()):
                    break
            # Under load the app spaces its repaints out (up to MAX_REPAINT_GAP):
            # wait for the repaint that shows everything.
            await pilot.pause(1.5)
            app.tick()
            await pilot.pause(0.2)
            app.save_screenshot("live.svg", str(OUT))
            await pilot.press("q")
    try:
        asyncio.run(main())
    finally:
        origin.close()
    return capture


def shoot(capture: Path) -> None:
    app = view_app(capture, theme_name="dark")

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            while not app.session.loaded:
                await pilot.pause(0.05)
            app.tick()
            t = app.session.table
            headers = next(r for r in range(len(t)) if t.type[r] == 1 and t.direction[r] == 0)
            app._select_row(headers)
            await pilot.press("2")
            await pilot.pause(0.2)
            app.save_screenshot("timeline-hpack.svg", str(OUT))
            await pilot.press("3")
            await pilot.pause(0.2)
            app.save_screenshot("timeline-hex.svg", str(OUT))
            stalled = max(app.session.conns.values(), key=lambda c: len(c.stalls))
            app._select_row(next(r for r in range(len(t)) if t.conn[r] == stalled.conn_id))
            await pilot.press("w")
            await pilot.pause(0.2)
            app.save_screenshot("flow-control.svg", str(OUT))
            app._select_row(headers)
            await pilot.press("escape", "h")
            await pilot.pause(0.2)
            app.save_screenshot("hpack-tables.svg", str(OUT))
            await pilot.press("i")
            await pilot.pause(0.2)
            app.save_screenshot("connection.svg", str(OUT))
            await pilot.press("escape")
            big = next(st for c in app.session.conns.values() for st in c.streams.values()
                       if "/big/" in dict(st.request_headers or ()).get(":path", ""))
            app._select_row(big.rows[0])
            await pilot.press("s")
            await pilot.pause(0.2)
            app.save_screenshot("stream.svg", str(OUT))
            await pilot.press("escape", "q")
    try:
        asyncio.run(main())
    finally:
        if app.capture is not None:
            app.capture.close()


if __name__ == "__main__":
    import os

    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        shoot(record(Path(d)).resolve())
        os.chdir(ROOT)
    print("screenshots written to", OUT)
