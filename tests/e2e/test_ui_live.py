"""The UI on a live proxy: real curl through the real proxy to a real h2 origin.

The app is driven with Textual's Pilot; the proxy runs on its own thread as in
``h2scope run``. Covers live ingest (rows appear, follow sticks to the tail),
pause/resume, start/stop recording from the UI (the file is a capture that
replays), export of the session, and quitting (the proxy stops).
tests/e2e/test_ui_live_backing.py covers the capture behind the session.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.capture.reader import CaptureReader
from proxy.config import Config, ListenConfig, UpstreamConfig
from tests.e2e.conftest import until
from tests.helpers.procs import require
from ui.app import H2ScopeApp
from ui.launch import live_app
from ui.model.follow import ChildProxy


def _curl(proxy_port: int, ca: Path, url: str) -> str:
    out = subprocess.run([require("curl"), "-sS", "--http2", "--cacert", str(ca), "-x",
                          f"http://127.0.0.1:{proxy_port}", url], capture_output=True,
                         timeout=30, check=True)
    return out.stdout.decode()






def test_live_traffic_appears_follows_pauses_records_and_exports(origin: Any,
                                                                  tmp_path: Path) -> None:
    server, cert = origin
    config = Config(listen=ListenConfig(port=0), confdir=tmp_path / "conf",
                    upstream=UpstreamConfig(ca_file=cert.cert))
    app: H2ScopeApp = live_app(config)
    assert app.live is not None
    port = int(app.listen.rsplit(":", 1)[1])
    assert isinstance(app.live, ChildProxy) and app.live.ca_cert_path is not None
    ca = app.live.ca_cert_path
    recording = tmp_path / "rec.h2c"
    har = tmp_path / "rec.har"
    url = f"https://localhost:{server.port}"

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            loop = asyncio.get_running_loop()
            assert "listening regular 127.0.0.1:" in app.status.plain
            # No frame yet: the hint has the width (its curl command was cut where the
            # empty detail pane began); the pane comes with the first frame.
            assert app.timeline.empty_lines and not app.detail.display
            body = await loop.run_in_executor(None, _curl, port, ca, f"{url}/hello")
            assert body.startswith("hello /hello")
            await until(pilot, lambda: any(c.closed for c in app.session.conns.values()),
                         "the connection to close")
            t = app.session.table
            assert any(t.type[r] == 1 for r in range(len(t)))
            await until(pilot, lambda: app.detail.display, "the detail pane to come back")
            # Follow sticks to the tail (the views repaint on the next due tick).
            await until(pilot, lambda: app.timeline.follow and app.timeline.row_count() > 0
                         and app.timeline.cursor == app.timeline.row_count() - 1,
                         "the timeline to follow to its last row")
            conn = next(iter(app.session.conns.values()))
            assert conn.target.startswith("localhost:") and conn.tls("client") != "-"

            # Pause: traffic still flows through the proxy (and into its capture),
            # the view holds still; resuming shows what came meanwhile.
            await pilot.press("space")
            assert app.paused and "PAUSED" in (app.tick() or app.status.plain)
            before, conns = len(t), len(app.session.conns)
            body = await loop.run_in_executor(None, _curl, port, ca, f"{url}/paused")
            assert body.startswith("hello /paused")
            await until(pilot, lambda: "new frames waiting" in app.status.plain
                        and not app.status.plain.startswith("PAUSED (0 "),
                        "the status bar to count the frames waiting")
            assert (len(app.session.table), len(app.session.conns)) == (before, conns)
            await pilot.press("space")
            assert not app.paused
            await until(pilot, lambda: any(
                s.request_headers and (":path", "/paused") in s.request_headers
                for c in app.session.conns.values() for s in c.streams.values()),
                "the request made while paused to be shown")

            # Record from the UI, make traffic, stop, export the recording.
            await pilot.press("r")
            await pilot.pause()
            app.screen.query_one("#prompt-input").value = str(recording)  # type: ignore[attr-defined]
            await pilot.press("enter")
            await until(pilot, lambda: app.live is not None and app.live.recording is not None,
                         "recording to start")
            await loop.run_in_executor(None, _curl, port, ca, f"{url}/recorded")
            await until(pilot, lambda: sum(1 for c in app.session.conns.values()
                                            if c.closed) >= 3, "the third connection")
            await pilot.press("x")
            await pilot.pause()
            app.screen.query_one("#export-path").value = str(har)  # type: ignore[attr-defined]
            await pilot.press("enter")
            await until(pilot, lambda: "exported" in app.message or "failed" in app.message,
                         "the export")
            assert "exported har" in app.message
            await pilot.press("r")  # stop recording
            await until(pilot, lambda: "recording stopped" in app.message, "recording stop")
            # A view grown past MEMORY_WARN says what it holds and how to free it.
            from ui.app import MEMORY_WARN

            app._memory = (time.monotonic(), 2 * MEMORY_WARN)
            app._status()
            assert "the view holds 2.0 GiB: ctrl+s saves, a new session frees it" in \
                app.status.plain
            app._memory = (time.monotonic(), MEMORY_WARN // 2)
            app._status()
            assert "the view holds" not in app.status.plain
            # The session itself was never saved: the first q says what would go — all
            # but the frames of the connection r recorded (they are in its file).
            unsaved = app.unsaved_frames()
            t = app.session.table
            recorded = max(app.session.conns)
            # (the proxy said which connections the recording holds: exact, not a span
            # of the ids the view had seen, which a view behind the proxy got wrong)
            assert app.live is not None and app.live.recorded_ids == {recorded}
            assert not app.recorded_conns
            assert unsaved == sum(1 for i in range(len(t)) if t.conn[i] != recorded) > 0
            assert unsaved < len(t)
            await pilot.press("q")
            await pilot.pause()
            assert app.live is not None and app.return_code is None
            assert app.message == f"q again to quit: {unsaved:,} frames not saved will be " \
                "lost (ctrl+s saves)"
            assert app.message in app.status.plain
            app._quit_asked -= 10  # the question lapses: the message goes, q asks again
            app.tick()
            assert app.message == ""
            await pilot.press("q")
            await pilot.pause()
            assert app.return_code is None and "q again to quit" in app.message
            await pilot.press("escape")  # no: the next q asks again, it does not quit
            await pilot.pause()
            assert app.message == "not quitting"
            await pilot.press("q")
            await pilot.pause()
            assert app.return_code is None and "q again to quit" in app.message
            await pilot.press("q")
            await pilot.pause()

    asyncio.run(asyncio.wait_for(main(), 90))
    assert app.return_code == 0
    assert app.live is None  # quitting stopped the proxy
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        pass
    with CaptureReader(recording) as reader:
        types = [r.type for r in reader.records()]
        assert reader.clean_end
    assert types.count(1) == 1 and 2 in types  # one CONNECTION, FRAMEs
    # The export is of the whole session (its backing capture), paused traffic included.
    entries = json.loads(har.read_text())["log"]["entries"]
    assert sorted(e["request"]["url"] for e in entries) == sorted(
        f"{url}/{p}" for p in ("hello", "paused", "recorded"))
