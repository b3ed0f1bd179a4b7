"""``h2scope view`` in a real terminal: tmux runs it, send-keys types, capture-pane reads.

This is the UI as a user gets it — a real pty, the real command line, the
real Textual driver — not the headless test driver. Each test has its own
tmux server (``-L``), killed at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.procs import free_port, require
from tests.unit.ui.traffic import record


class Tmux:
    def __init__(self, tmux: str, socket: str) -> None:
        self.tmux = tmux
        self.socket = socket

    def run(self, *args: str) -> str:
        out = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True,
                             timeout=20, check=True)
        return out.stdout.decode(errors="replace")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "ui")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "ui", *keys)

    def wait_for(self, cond: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if cond(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{screen}")


    def exit_status(self, status: Path, timeout: float) -> str:
        """What ``h2scope_in_tmux`` wrote when the command ended (waits for it)."""
        deadline = time.monotonic() + timeout
        while not status.exists():
            assert time.monotonic() < deadline, "h2scope did not quit"
            time.sleep(0.1)
        return status.read_text().strip()


@contextlib.contextmanager
def h2scope_in_tmux(tmp_path: Path, args: str,
                    env: dict[str, str] | None = None) -> Iterator[tuple[Tmux, Path]]:
    """``python -m proxy ARGS`` in its own tmux server (160 x 48); yields the tmux and
    the file its exit status goes to. The server is killed at the end."""
    tmux = require("tmux")
    t = Tmux(tmux, f"h2scope-test-{uuid.uuid4().hex[:8]}")
    status = tmp_path / "exit-status"
    env = {**os.environ, "H2SCOPE_HOME": str(tmp_path / "home"), "TERM": "xterm-256color",
           **(env or {})}
    command = f"{sys.executable} -m proxy {args}; echo exited $? > {status}; sleep 30"
    subprocess.run([tmux, "-L", t.socket, "new-session", "-d", "-s", "ui", "-x", "160",
                    "-y", "48", command], env=env, cwd=Path(__file__).resolve().parents[2],
                   check=True, timeout=20)
    try:
        yield t, status
    finally:
        subprocess.run([tmux, "-L", t.socket, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def tmux_view(tmp_path: Path) -> Iterator[tuple[Tmux, Path]]:
    with h2scope_in_tmux(tmp_path, f"view {record(tmp_path / 't.h2c')}") as running:
        yield running


def test_view_in_a_real_terminal_shows_frames_filters_and_quits(
        tmux_view: tuple[Tmux, Path]) -> None:
    t, status = tmux_view
    screen = t.wait_for(lambda s: "(loaded)" in s, "the capture to load")
    assert "api.example.test:443" in screen
    assert "PUSH_PROMISE" in screen and "WINDOW_UPDATE" in screen
    assert "GET /api/users" in screen  # (its host is the connection's: said there)

    # Keys typed while Textual is still starting up (negotiating with the
    # terminal) can be lost: first make sure it answers a key (follow on, off).
    deadline = time.monotonic() + 20
    while "FOLLOW" not in t.screen():
        assert time.monotonic() < deadline, "the viewer never answered the f key"
        t.keys("f")
        t.wait_for(lambda s: True, "")
        time.sleep(0.2)
    t.keys("f")
    t.wait_for(lambda s: "FOLLOW" not in s, "follow mode to end")

    t.keys("/")
    t.keys("-l", "type:RST_STREAM")
    t.keys("Enter")
    screen = t.wait_for(lambda s: "of " in s and "filter type:RST_STREAM" in s, "the filter")
    assert "CANCEL" in screen
    assert "PUSH_PROMISE" not in screen.split("│")[0]

    t.keys("?")
    screen = t.wait_for(lambda s: "h2scope keys" in s, "the help screen")
    assert "Next finding" in screen
    t.keys("Escape")
    t.wait_for(lambda s: "h2scope keys" not in s, "the help screen to close")

    t.keys("q")
    assert t.exit_status(status, 20) == "exited 0"


def test_run_with_the_ui_in_a_real_terminal_shows_live_traffic_and_cleans_up(
        tmp_path: Path, origin: Any) -> None:
    """``h2scope run`` as a user starts it: the UI in a pty, the proxy its child
    process. curl's exchange shows up; q asks once (unsaved frames), q again
    quits; the child is gone and the private capture with it."""
    server, cert = origin
    port = free_port()
    home = tmp_path / "home"
    temp = tmp_path / "tmp"
    temp.mkdir()
    with h2scope_in_tmux(tmp_path, f"run -p {port} --upstream-ca {cert.cert}",
                         {"TMPDIR": str(temp)}) as (t, status):
        t.wait_for(lambda s: f"listening regular 127.0.0.1:{port}" in s, "the proxy to listen")
        ui = [p for p in _processes() if f"run\0-p\0{port}\0".encode() in _cmdline(p)]
        assert len(ui) == 1, "one UI process"
        children = [p for p in _processes() if _parent(p) == int(ui[0].name)]
        assert len(children) == 1 and b"proxy.child" in _cmdline(children[0]), \
            "the UI runs the proxy as its one child process"
        out = subprocess.run([require("curl"), "-sS", "--http2", "--cacert",
                              str(home / "h2scope-ca-cert.pem"), "-x",
                              f"http://127.0.0.1:{port}", f"https://localhost:{server.port}/tty"],
                             capture_output=True, timeout=30, check=True)
        assert out.stdout.startswith(b"hello /tty")
        screen = t.wait_for(lambda s: "GET /tty" in s and ":status 200" in s
                            and "1 connection" in s, "curl's exchange on the timeline")
        assert f"localhost:{server.port}" in screen and "TLSv1.3 h2" in screen
        assert len(list(temp.glob("h2scope-*/session.h2scope"))) == 1

        t.keys("q")
        t.wait_for(lambda s: "q again to quit" in s, "the question about unsaved frames")
        t.keys("q")
        assert t.exit_status(status, 30) == "exited 0"
        assert not children[0].exists(), "the proxy's process outlived the UI"
        assert not list(temp.glob("h2scope-*")), "the private capture was left behind"


def _processes() -> list[Path]:
    return [p for p in Path("/proc").iterdir() if p.name.isdigit()]


def _parent(proc: Path) -> int:
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
