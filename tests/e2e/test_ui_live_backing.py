"""The capture behind a live session: real curl through the real proxy to a real h2 origin.

The UI keeps no frame bytes in memory: every row refers to its record in the
session's capture — a private temporary one, or the ``--record`` file — and
the views read the frames back from it: the hex tab, the stream view's
reassembled bodies. ``ctrl+s`` saves the session
so far; ``h2scope export`` reads the copy with every frame. Quitting removes
the temporary capture and its directory — so does SIGTERM or SIGHUP to the
real ``h2scope run`` in a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static

from proxy.capture.format import RecordFlag, RecordType
from proxy.capture.index import CaptureIndex
from proxy.capture.reader import CaptureReader
from proxy.config import Config, ListenConfig, RecordConfig, UpstreamConfig
from proxy.observe.enums import type_name
from tests.e2e.conftest import until
from tests.helpers.procs import free_port, require, wait_for_port
from ui.app import H2ScopeApp
from ui.launch import live_app
from ui.model.backing import CaptureFrames
from ui.model.body import reassemble
from ui.model.detail import hex_view
from ui.model.follow import ChildProxy
from ui.screens.prompt import Prompt
from ui.screens.stream import StreamScreen

_DATA = 0
_FRAME_LINE = re.compile(r"^\s*[\d.]+ #(\d+)\s+[→←]\s+(\d+) (\S+) \[")


def _upload(tag: str) -> bytes:
    """About 150 KiB of distinct lines: a frame read from the wrong place shows."""
    return "".join(f"{tag} line {i:06d}\n" for i in range(10_000)).encode()


def _post(proxy_port: int, ca: Path, url: str, body: Path) -> bytes:
    out = subprocess.run([require("curl"), "-sS", "--http2", "--cacert", str(ca), "-x",
                          f"http://127.0.0.1:{proxy_port}", "--data-binary", f"@{body}",
                          "-H", "content-type: text/plain", url],
                         capture_output=True, timeout=30, check=True)
    return out.stdout


def _start(config: Config) -> tuple[H2ScopeApp, int, Path]:
    app = live_app(config)
    assert isinstance(app.live, ChildProxy) and app.live.ca_cert_path is not None
    port = int(app.listen.rsplit(":", 1)[1])
    return app, port, app.live.ca_cert_path


def test_frames_come_from_the_private_capture_and_the_session_saves(
        origin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, cert = origin
    monkeypatch.chdir(tmp_path)  # the save prompt's default file goes here
    config = Config(listen=ListenConfig(port=0), confdir=tmp_path / "conf",
                    upstream=UpstreamConfig(ca_file=cert.cert))
    app, port, ca = _start(config)
    assert app.live is not None
    backing = app.live.backing
    assert backing is not None and backing.temporary and backing.temp_dir is not None
    temp_dir = backing.temp_dir
    assert stat.S_IMODE(os.stat(temp_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(backing.path).st_mode) == 0o600
    assert isinstance(app.live_frames, CaptureFrames)  # rows are read back from the file
    uploads = {}
    for tag in ("alpha", "beta"):
        uploads[tag] = _upload(tag)
        (tmp_path / tag).write_bytes(uploads[tag])
    url = f"https://localhost:{server.port}"
    saved_body = tmp_path / "response.body"
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            loop = asyncio.get_running_loop()
            assert "unsaved session (ctrl+s saves)" in app.status.plain
            with ThreadPoolExecutor(2) as pool:  # two connections, interleaved
                replies = await asyncio.gather(*(
                    loop.run_in_executor(pool, _post, port, ca, f"{url}/{tag}", tmp_path / tag)
                    for tag in uploads))
            for tag, reply in zip(uploads, replies, strict=True):
                assert reply == f"hello /{tag}\n".encode() + uploads[tag]
            s = app.session
            await until(pilot, lambda: sum(1 for c in s.conns.values() if c.closed) >= 2,
                         "both connections to close")
            t = s.table
            data_rows = [r for r in range(len(t)) if t.type[r] == _DATA and t.length[r]]
            assert len(data_rows) > 10
            # Each row's ref is its FRAME record's offset in the session's capture.
            with CaptureReader(backing.path) as reader:
                at = {r.offset: r.frame_bytes() for r in reader.records()}
            assert all(at[t.ref[r]] == t.source.frame_bytes(t.ref[r]) for r in data_rows)

            # The stream view reassembles both bodies from frames read back from disk.
            for c in s.conns.values():
                st = c.streams[1]
                path = dict(st.request_headers or ())[":path"]
                tag = path.strip("/")
                req, resp = reassemble(s, st, 0), reassemble(s, st, 1)
                assert not req.truncated and not resp.truncated
                assert req.raw == uploads[tag]
                assert resp.raw == f"hello /{tag}\n".encode() + uploads[tag]
            # The hex tab of an old DATA frame, picked with "g" like a user would.
            row = next(r for r in data_rows if t.direction[r] == 1)
            await until(pilot, lambda: app.timeline.cursor == len(t) - 1,
                         "the timeline to follow to its last row (repaints are paced)")
            await pilot.press("g")
            await pilot.pause()
            app.screen.query_one("#prompt-input", Input).value = str(row + 1)
            await pilot.press("enter")
            await pilot.pause()
            assert app.timeline.selected_row == row
            await pilot.press("3")
            await pilot.pause()
            seen["hex"] = app.detail.text("hex")
            seen["hex_width"] = app.detail.query_one(
                "#hex-body").scrollable_content_region.width
            seen["row"] = (t.conn[row], t.seq[row])
            assert "not available" not in seen["hex"]
            # ... and its stream's view, with the response body saved to a file (b).
            await pilot.press("s")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, StreamScreen)
            text = screen.query_one("#stream-body", Static).content.plain  # type: ignore[union-attr]
            tag = dict(screen.stream.request_headers or ())[":path"].strip("/")
            seen["body"] = f"hello /{tag}\n".encode() + uploads[tag]
            assert f"response body: {len(seen['body']):,} bytes" in text
            assert "not kept" not in text and f"{tag} line 002998" in text
            await pilot.press("b")
            await pilot.pause()
            screen.query_one("#save-path", Input).value = str(saved_body)
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()

            # An empty name saves nothing, and says so (the prompt closed without a word).
            await pilot.press("ctrl+s")
            await pilot.pause()
            app.screen.query_one("#prompt-input", Input).value = ""
            await pilot.press("enter")
            await pilot.pause()
            assert app.message == ("nothing saved: the file name was empty (ctrl+s and type "
                                   "one)"), app.message
            # Save the session after the fact: ctrl+s, the default name, Enter.
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, Prompt)
            default = app.screen.query_one("#prompt-input", Input).value
            assert re.fullmatch(r"h2scope-\d{8}-\d{6}\.h2scope", default), default
            seen["saved"] = tmp_path / default
            await pilot.press("enter")
            await until(pilot, lambda: "saved the session" in app.message
                         or "cannot save" in app.message, "the save")
            assert str(seen["saved"]) in app.message
            app.tick()
            assert f"saved to {default}" in app.status.plain  # no new traffic since
            seen["frames"] = [(t.conn[r], t.stream[r], type_name(t.type[r]))
                              for r in range(len(t))]
            await pilot.press("q")
            await pilot.pause()

    asyncio.run(asyncio.wait_for(main(), 90))
    assert app.return_code == 0 and app.live is None
    assert not temp_dir.exists()  # the private capture went with h2scope

    saved: Path = seen["saved"]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert saved_body.read_bytes() == seen["body"]
    with CaptureReader(saved) as reader:
        records = list(reader.records())
        assert reader.clean_end and not reader.problems
    # The scratch capture left its large bodies unchecked; the copy checksums them.
    assert not any(r.flags & RecordFlag.UNCHECKED for r in records)
    assert any(r.type == RecordType.FRAME and len(r.body) >= 4096 for r in records)
    index = CaptureIndex.build(saved)
    try:
        conn, seq = seen["row"]
        mine = [i for i in range(len(index.offset)) if index.conn[i] == conn]
        assert seen["hex"] == hex_view(index.frame(mine[seq]), seen["hex_width"]).plain
    finally:
        index.close()
    out = subprocess.run([sys.executable, "-m", "proxy", "export", str(saved), "--format",
                          "text"], capture_output=True, text=True, timeout=60, check=True)
    lines = [m.groups() for m in map(_FRAME_LINE.match, out.stdout.splitlines()) if m]
    assert [(int(c), int(sid), name) for c, sid, name in lines] == seen["frames"]


def test_record_file_backs_the_session_instead_of_a_temporary_capture(
        origin: Any, tmp_path: Path) -> None:
    server, cert = origin
    rec = tmp_path / "session.h2scope"
    config = Config(listen=ListenConfig(port=0), confdir=tmp_path / "conf",
                    upstream=UpstreamConfig(ca_file=cert.cert), record=RecordConfig(file=rec))
    app, port, ca = _start(config)
    assert app.live is not None and app.live.backing is not None
    assert not app.live.backing.temporary and app.live.backing.path == rec
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    assert isinstance(app.live_frames, CaptureFrames)
    body = tmp_path / "up"
    body.write_bytes(_upload("gamma"))
    url = f"https://localhost:{server.port}"

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            loop = asyncio.get_running_loop()
            assert f"● REC {rec}" in app.status.plain
            await loop.run_in_executor(None, _post, port, ca, f"{url}/gamma", body)
            s = app.session
            await until(pilot, lambda: any(c.closed for c in s.conns.values()),
                         "the connection to close")
            st = next(iter(s.conns.values())).streams[1]
            assert reassemble(s, st, 0).raw == body.read_bytes()
            await pilot.press("r")  # already recording everything: it says so
            await pilot.pause()
            assert f"recording every connection to {rec} (--record)" in app.message
            assert not isinstance(app.screen, Prompt)
            await pilot.press("q")
            await pilot.pause()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert app.return_code == 0
    with CaptureReader(rec) as reader:
        frames = sum(1 for r in reader.records() if r.type == 2)
        assert reader.clean_end
    assert frames == len(app.session.table)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_termination_signal_quits_and_removes_the_private_capture(signame: str,
                                                                  tmp_path: Path) -> None:
    """``h2scope run`` in a real pty: the private capture exists while it runs and
    is gone after ``kill -TERM`` / a hang-up, like after ``q``."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    master, slave = pty.openpty()
    env = dict(os.environ, TMPDIR=str(tmp), TERM="xterm-256color")
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "run", "--confdir",
                             str(tmp_path / "conf"), "-p", str(port), "--log-file",
                             str(tmp_path / "log")], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)

    def drain() -> None:  # a full pty would stall the UI
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            return
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_for_port(port, timeout=30)
        dirs = list(tmp.glob("h2scope-*"))
        assert len(dirs) == 1 and (dirs[0] / "session.h2scope").is_file(), dirs
        assert stat.S_IMODE(dirs[0].stat().st_mode) == 0o700
        proc.send_signal(getattr(signal, signame))
        assert proc.wait(30) == 0
        deadline = time.monotonic() + 5
        while dirs[0].exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not dirs[0].exists(), "the private capture was left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)
        reader.join(5)
