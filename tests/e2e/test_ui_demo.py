"""``h2scope demo`` with the UI: ui.demo.launch_demo runs the demo's origin, proxy
and client in the proxy's child process; the live views fill with its traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from certs.store import CertStore
from proxy.config import load_config
from ui import demo
from ui.app import H2ScopeApp


def test_demo_traffic_shows_in_the_live_ui_and_quit_stops_it(tmp_path: Path,
                                                              monkeypatch: Any) -> None:
    seen: dict[str, Any] = {}

    def run_headless(self: H2ScopeApp) -> int:
        async def main() -> None:
            async with self.run_test(size=(160, 48)) as pilot:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while len(self.session.table) < 40:
                    assert loop.time() < deadline, "no demo traffic in the UI"
                    await pilot.pause(0.05)
                t = self.session.table
                seen["types"] = {t.type[r] for r in range(len(t))}
                seen["status"] = self.status.plain
                seen["live"] = self.live
                await pilot.press("q")
        asyncio.run(asyncio.wait_for(main(), 60))
        return int(self.return_code or 0)

    monkeypatch.setattr(H2ScopeApp, "run", run_headless)
    store = CertStore(tmp_path)
    config = load_config(None, {"confdir": tmp_path, "listen.port": 0,
                                "upstream.ca_file": str(store.ca_cert_path)})
    assert demo.launch_demo(config, store, None, 0.2) == 0
    assert {1, 0, 4}.issubset(seen["types"])  # HEADERS, DATA, SETTINGS
    assert "listening regular 127.0.0.1:" in seen["status"]
    live = seen["live"]
    assert live.proc is not None and live.proc.returncode == 0  # stopped cleanly
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", int(seen["status"].split(":")[1].split()[0])),
                                 0.5).close()
