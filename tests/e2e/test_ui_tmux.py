"""``h2scope view`` in a real terminal: tmux runs it, send-keys types, capture-pane reads.

This is the UI as a user gets it — a real pty, the real command line, the
real Textual driver — not the headless test driver. Each test has its own
tmux server (``-L``), killed at the end whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.procs import require
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


@pytest.fixture
def tmux_view(tmp_path: Path) -> Iterator[tuple[Tmux, Path]]:
    tmux = require("tmux")
    capture = record(tmp_path / "t.h2c")
    t = Tmux(tmux, f"h2scope-test-{uuid.uuid4().hex[:8]}")
    status = tmp_path / "exit-status"
    env = {**os.environ, "H2SCOPE_HOME": str(tmp_path / "home"), "TERM": "xterm-256color"}
    command = (f"{sys.executable} -m proxy view {capture}; echo exited $? > {status}; "
               f"sleep 30")
    subprocess.run([tmux, "-L", t.socket, "new-session", "-d", "-s", "ui", "-x", "160",
                    "-y", "48", command], env=env, cwd=Path(__file__).resolve().parents[2],
                   check=True, timeout=20)
    try:
        yield t, status
    finally:
        subprocess.run([tmux, "-L", t.socket, "kill-server"], capture_output=True, timeout=20)


def test_view_in_a_real_terminal_shows_frames_filters_and_quits(
        tmux_view: tuple[Tmux, Path]) -> None:
    t, status = tmux_view
    screen = t.wait_for(lambda s: "(loaded)" in s, "the capture to load")
    assert "api.example.test:443" in screen
    assert "PUSH_PROMISE" in screen and "WINDOW_UPDATE" in screen
    assert "GET api.example.test/api/users" in screen

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
    deadline = time.monotonic() + 20
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.read_text().strip() == "exited 0"
