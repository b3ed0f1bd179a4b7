"""The connection tab (``i``): both TLS legs, the client's ClientHello as
offered, the certificate h2scope showed, and what went wrong."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
