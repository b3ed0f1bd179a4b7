"""Headless Chromium driven over the DevTools protocol on a pipe.

``chromium --dump-dom`` dumps the page at its load event, which is a race for
anything a page does after it (a WebSocket's echo, say). This helper starts
Chromium with ``--remote-debugging-pipe`` (commands on fd 3, replies on fd 4,
each a JSON text ended by NUL), attaches to the page and polls a JavaScript
expression until it has the wanted value or a deadline passes: a wait for
readiness, not a sleep.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import procs


class DevToolsError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with a DevTools pipe; use as a context manager."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="h2scope-chromium-"))
        (self.profile / "Default").mkdir()
        (self.profile / "Default" / "Preferences").write_text(
            json.dumps({"net": {"network_prediction_options": 2}}))
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads fd 3 and writes fd 4: put our pipe ends there in the child.
        # (moved above 9 first, so neither dup2 below overwrites the other's source)
        r3 = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        w4 = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def fds() -> None:
            os.dup2(r3, 3)
            os.dup2(w4, 4)
            os.close(r3)
            os.close(w4)

        self.proc = subprocess.Popen(
            [procs.require("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync",
             f"--user-data-dir={self.profile}", "--remote-debugging-pipe", *args,
             "about:blank"],
            # (close_fds would close 3 and 4 after preexec_fn; Python's own
            # descriptors are not inheritable anyway)
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=fds,
            close_fds=False)
        os.close(r3)
        os.close(w4)
        self.stderr = b""
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        self._buffer = b""
        self._next_id = 0

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr = (self.stderr + line)[-20_000:]

    def call(self, method: str, session: str | None = None, timeout: float = 30.0,
             **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events are read past)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                    raise DevToolsError(f"no reply to {method} in {timeout} s")
                chunk = os.read(self._from_chrome, 65536)
                if not chunk:
                    raise DevToolsError(f"Chromium closed its DevTools pipe during {method}: "
                                        + self.stderr.decode(errors="replace")[-2000:])
                self._buffer += chunk
            text, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(text)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def open(self, url: str) -> str:
        """Open ``url`` in a new page; the attached session's id."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        return str(self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"])

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression,
                           returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, session: str, expression: str, done: Callable[[Any], bool],
                 timeout: float = 30.0) -> Any:
        """Poll ``expression`` until ``done(value)``; the value (or a DevToolsError
        that quotes the last one)."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(session, expression)
            except DevToolsError as exc:
                # (a page between two documents has no context to evaluate in for a
                # moment: "Cannot find default execution context"; asked again)
                if "Cannot find default execution context" not in str(exc):
                    raise
                value = None
            if done(value):
                return value
            time.sleep(0.05)
        raise DevToolsError(f"{expression} was still {value!r} after {timeout} s; Chromium said: "
                            + self.stderr.decode(errors="replace")[-2000:])

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except (DevToolsError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
