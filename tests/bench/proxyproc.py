"""The proxy as a separate process, and what /proc says about a process's memory.

Shared by the proxy benchmark (``bench_proxy.py``) and the load tests
(``tests/integration/test_proxy_load.py``): both need the proxy in its own
process so that its memory (``VmRSS``, ``VmHWM``) and CPU are its own, not
mixed with the clients' and servers'.

:class:`ProxyProcess` starts ``python -m proxy run --headless`` (the real
command, frames printed to /dev/null unless ``stdout`` is given). It
listens on a free port (``-p 0``) and learns the port from the start-up
banner on stderr, so there is no race for a port. :class:`UiProcess` is
``h2scope run`` with its UI, in a pseudo-terminal.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_LISTENING = re.compile(r"proxy listening on (?:\[(?P<h6>[^\]]+)\]|(?P<h4>[^:\s]+)):(?P<port>\d+)")


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a dict (``{"VmRSS": "12345 kB", ...}``)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _kib(value: str) -> int:
    number, _, unit = value.partition(" ")
    if unit.strip().lower() != "kb":
        raise ValueError(f"unexpected unit in {value!r}")
    return int(number)


def rss_mib(pid: int) -> float:
    """Resident set size now, MiB."""
    return _kib(proc_status(pid)["VmRSS"]) / 1024


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size since the process started (``VmHWM``), MiB."""
    return _kib(proc_status(pid)["VmHWM"]) / 1024


def children(pid: int) -> list[int]:
    """The pids of the process's children (``/proc/PID/task/*/children``)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                out.extend(int(c) for c in f.read().split())
    return out


def fd_count(pid: int) -> int:
    """Open file descriptors of the process (sockets included)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    # proc(5): utime and stime are fields 14 and 15, counted from 1 with pid first.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProxyStartFailed(RuntimeError):
    """The proxy process exited or printed no listening address in time."""


class ProxyProcess:
    """One h2scope proxy in a child process, stopped with SIGTERM (then killed).

    ``mode`` is a ``--mode`` spec; ``record`` a capture file to write.
    Use as a context manager; :attr:`port` is the first listener's port.
    """

    def __init__(self, *, confdir: Path, mode: str, upstream_ca: Path | None = None,
                 record: Path | None = None, extra: Sequence[str] = (),
                 cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 start_timeout: float = 20.0, stdout: Path | None = None) -> None:
        self.confdir = confdir
        self.stdout = stdout
        """Where the proxy's stdout (the headless output) goes; None: nowhere."""
        self.mode = mode
        self.upstream_ca = upstream_ca
        self.record = record
        self.extra = list(extra)
        self.cwd = cwd
        self.env = env
        """Extra environment variables for the proxy process."""
        self.start_timeout = start_timeout
        self.stderr_lines: collections.deque[str] = collections.deque(maxlen=200)
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = mode
        """A label for reports."""
        self.port = 0
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    # ----------------------------------------------------------------- process

    def _flags(self) -> list[str]:
        flags = ["--confdir", str(self.confdir), "--mode", self.mode, "-p", "0"]
        if self.upstream_ca is not None:
            flags += ["--upstream-ca", str(self.upstream_ca)]
        if self.record is not None:
            flags += ["--record", str(self.record)]
        return flags + self.extra

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "proxy", "run", "--headless", *self._flags()]

    def start(self) -> ProxyProcess:
        """Start the proxy; a second call (``with ProxyProcess(...).start()``) does
        nothing, so no process is started twice and one left running."""
        if self.proc is None:
            self._spawn()
        return self

    def _spawn(self) -> None:
        self.stderr_lines.clear()
        self._listening.clear()
        self.port = 0
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        with contextlib.ExitStack() as stack:
            out: Any = subprocess.DEVNULL
            if self.stdout is not None:
                out = stack.enter_context(open(self.stdout, "wb"))  # the child has its own fd
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.PIPE, cwd=self.cwd,
                                         env=env)
        self._reader = threading.Thread(target=self._read_stderr, args=(self.proc,),
                                        daemon=True, name="proxy-stderr")
        self._reader.start()
        if not self._listening.wait(self.start_timeout) or not self.port:
            text = "\n".join(self.stderr_lines)
            self.stop()
            raise ProxyStartFailed(f"the proxy did not start listening within "
                                   f"{self.start_timeout} s; its stderr:\n{text}")

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:  # ends when the process closes stderr
            line = raw.decode(errors="replace").rstrip()
            self.stderr_lines.append(line)
            m = _LISTENING.search(line)
            if m and not self.port:
                self.port = int(m["port"])
                self._listening.set()
        self._listening.set()  # exited: stop waiting

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL after *timeout*; the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(2)
        if proc.stderr is not None:
            proc.stderr.close()
        return proc.returncode

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ memory

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)

    def fd_count(self) -> int:
        return fd_count(self.pid)

    def settled_rss_mib(self, steady: float = 1.0, timeout: float = 10.0) -> float:
        """RSS once it has stopped moving for ``steady`` seconds (longer than the
        proxy's delay before it gives memory back when idle): what the proxy holds,
        not the high-water mark of the burst before."""
        deadline = time.monotonic() + timeout
        last = self.rss_mib()
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.rss_mib()
            if abs(now - last) > 0.5:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= steady:
                break
        return last

    def wait_fds_at_most(self, limit: int, timeout: float = 15.0) -> int:
        """Wait until the proxy holds at most *limit* descriptors (its connections
        closed); returns the count, which may still be above after *timeout*."""
        deadline = time.monotonic() + timeout
        count = self.fd_count()
        while count > limit and time.monotonic() < deadline:
            time.sleep(0.05)
            count = self.fd_count()
        return count


class UiProcess:
    """``h2scope run`` with its Textual UI, in a pseudo-terminal nobody looks at.

    The UI only starts on a terminal, so the process gets a pty of
    ``columns`` × ``rows`` whose output is read and thrown away (a full pty
    would stall the UI). It listens on a port chosen here (the UI prints no
    banner) and logs to ``log_file``; :attr:`stderr_lines` holds that log's
    lines once :meth:`problems` has read it.
    """

    def __init__(self, *, confdir: Path, mode: str, port: int, log_file: Path,
                 upstream_ca: Path | None = None, columns: int = 160, rows: int = 48,
                 start_timeout: float = 30.0) -> None:
        self.confdir = confdir
        self.mode = mode
        self.port = port
        self.log_file = log_file
        self.upstream_ca = upstream_ca
        self.size = (rows, columns)
        self.start_timeout = start_timeout
        self.name = "UI"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_lines: collections.deque[str] = collections.deque(maxlen=200)
        self._master = -1
        self._drain: threading.Thread | None = None

    def start(self) -> UiProcess:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *self.size, 0, 0))
        args = [sys.executable, "-m", "proxy", "run", "--confdir", str(self.confdir),
                "--mode", self.mode, "-p", str(self.port), "--log-file", str(self.log_file)]
        if self.upstream_ca is not None:
            args += ["--upstream-ca", str(self.upstream_ca)]
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(self.size[1]),
                   LINES=str(self.size[0]))
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self._master = master
        self._drain = threading.Thread(target=self._discard, daemon=True, name="ui-pty")
        self._drain.start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise ProxyStartFailed(f"h2scope run (UI) exited with {self.proc.returncode}"
                                       if self.proc else "h2scope run (UI) exited")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                        0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise ProxyStartFailed(f"the UI proxy did not listen on {self.port} within "
                               f"{self.start_timeout} s")

    def _discard(self) -> None:
        while True:
            try:
                if not os.read(self._master, 65536):
                    return
            except OSError:
                return

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def proxy_pid(self) -> int:
        """The proxy's own process: the UI runs it as its child (``proxy.child``)."""
        kids = children(self.pid)
        if len(kids) != 1:
            raise ProxyStartFailed(f"expected the UI to run one proxy process, found {kids}")
        return kids[0]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def problems(self) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks of the log so far."""
        with contextlib.suppress(OSError):
            text = self.log_file.read_text(errors="replace")
            self.stderr_lines.clear()
            self.stderr_lines.extend(text.splitlines()[-200:])
        return [line for line in self.stderr_lines
                if "Traceback" in line or " ERROR " in line or " CRITICAL " in line]

    def stop(self, timeout: float = 10.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._master >= 0:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1
        if self._drain is not None:
            self._drain.join(2)
        return proc.returncode if proc is not None else None

    def __enter__(self) -> UiProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)
