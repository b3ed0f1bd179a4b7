"""Real external peers as processes: nghttpd, curl, nghttp, h2load, chromium.

A missing program is a test failure with a clear message (tests/run installs
them), never a skip. Servers get a free loopback port, are polled until they
accept connections, and are always killed.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

#: Debian package providing each program (tests/run installs them).
PACKAGES = {"curl": "curl", "nghttpd": "nghttp2-server", "nghttp": "nghttp2-client",
            "h2load": "nghttp2-client", "chromium": "chromium", "openssl": "openssl",
            "protoc": "protobuf-compiler"}


def require(program: str) -> str:
    """The program's path; fails the test if it is not installed."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed: it is a required test peer "
                    f"(apt-get install {PACKAGES.get(program, program)}; tests/run does it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None,
                  timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening: {out}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def process(args: Sequence[str], *, port: int | None = None,
            cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=cwd)
    try:
        if port is not None:
            wait_for_port(port, proc)
        yield proc
    finally:
        proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


@contextlib.contextmanager
def nghttpd(docroot: Path, *, cert: Path | None = None, key: Path | None = None,
            extra: Sequence[str] = ()) -> Iterator[int]:
    """``nghttpd`` serving *docroot* on a free port (TLS if a cert is given, else h2c)."""
    exe = require("nghttpd")
    proc: subprocess.Popen[bytes] | None = None
    port = 0
    try:
        for _attempt in range(3):
            port = free_port()
            args = [exe, "-d", str(docroot), "--address=127.0.0.1", *extra, str(port)]
            if cert is not None and key is not None:
                args += [str(key), str(cert)]
            else:
                args.insert(1, "--no-tls")
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                wait_for_port(port, proc)
                break
            except RuntimeError as exc:
                if "Address already in use" not in str(exc):
                    raise
        else:
            raise RuntimeError("could not start nghttpd on a free port")
        yield port
    finally:
        if proc is not None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(5)
            if proc.stdout:
                proc.stdout.close()


def run(args: Sequence[str], *, timeout: float = 30.0,
        input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a client to completion (bounded), capturing its output."""
    return subprocess.run(list(args), capture_output=True, timeout=timeout, input=input,
                          check=False)
