"""The proxy as the UI's child process (proxy/child.py, ui/model/follow.py):
start-up errors reach the UI, and the child never outlives its parent."""

from __future__ import annotations

import resource
import signal
import socket
import time
from pathlib import Path

import pytest

from certs.store import CertStore
from proxy.capture.reader import CaptureReader
from proxy.config import Config, ListenConfig, RecordConfig, UpstreamConfig
from proxy.server import ProxyStartError
from ui.model.follow import ChildProxy
from ui.model.live import LiveFeed


def test_a_port_in_use_is_reported_and_no_child_is_left(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        child = ChildProxy(Config(listen=ListenConfig(port=port), confdir=tmp_path),
                           feed=LiveFeed())
        with pytest.raises(ProxyStartError, match=f"cannot listen on 127.0.0.1:{port}: the "
                                                  "address is already in use"):
            child.start()
    assert child.proc is not None and child.proc.poll() is not None
    assert child._temp_dir is not None and not child._temp_dir.exists()


def test_the_child_stops_and_closes_the_capture_when_its_parent_goes(tmp_path: Path) -> None:
    record = tmp_path / "session.h2scope"
    config = Config(listen=ListenConfig(port=0), confdir=tmp_path,
                    record=RecordConfig(file=record))
    child = ChildProxy(config, feed=LiveFeed(), record=record)
    addresses = child.start()
    try:
        host, _, port = addresses[0][1].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass  # it listens
        # (what the status bar asks)
        assert child._command("status") == {"disk_wait": 0.0, "unrecorded": None}
        assert child.proc is not None and child.proc.stdin is not None
        child.proc.stdin.close()  # what the kernel does when the UI is killed
        deadline = time.monotonic() + 20
        while child.proc.poll() is None:
            assert time.monotonic() < deadline, "the child outlived its parent's pipe"
            time.sleep(0.05)
        assert child.proc.returncode == 0
    finally:
        child.stop()
    with CaptureReader(record) as reader:
        list(reader.records())
        assert reader.clean_end and not reader.problems


def test_a_capture_that_cannot_be_written_leaves_the_proxy_relaying_and_says_why(
        tmp_path: Path) -> None:
    """The UI sees traffic only through the capture: when it cannot be written (here
    a file size limit, as a full disk would), the UI is told, and the proxy goes on
    serving its clients, as a headless run does (it used to stop: every download in
    flight cut, every client after refused)."""
    store = CertStore(tmp_path)
    config = Config(listen=ListenConfig(port=0), confdir=tmp_path,
                    upstream=UpstreamConfig(ca_file=store.ca_cert_path))
    child = ChildProxy(config, feed=LiveFeed(), demo=(None, 0.05))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, hard))  # inherited by the child
    try:
        child.start()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    try:
        deadline = time.monotonic() + 60
        while child.unrecorded is None:
            assert time.monotonic() < deadline, "the UI was never told"
            assert child.problem() is None, child.problem()
            time.sleep(0.05)
        assert child.unrecorded.startswith("writing the session's capture failed: ")
        assert "File too large" in child.unrecorded
        assert "the proxy goes on relaying, unrecorded and unseen" in child.unrecorded
        (_, address), *_ = child.addresses
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET http://h2scope/ HTTP/1.1\r\nHost: h2scope\r\n"
                         b"Connection: close\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
        assert child.problem() is None
    finally:
        child.stop()
    assert child.proc is not None and child.proc.returncode == 3


def test_a_child_that_dies_is_reported_with_how(tmp_path: Path) -> None:
    child = ChildProxy(Config(listen=ListenConfig(port=0), confdir=tmp_path), feed=LiveFeed(),
                       log_file=tmp_path / "h2scope.log")
    child.start()
    try:
        assert child.problem() is None
        assert child.proc is not None
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait(10)
        assert child.problem() == (f"the proxy process was killed by SIGKILL "
                                   f"(see {tmp_path / 'h2scope.log'})")
    finally:
        child.stop()
    assert child._temp_dir is not None and not child._temp_dir.exists()


@pytest.mark.parametrize("dead_first", [False, True])
@pytest.mark.parametrize("with_log", [False, True])
def test_a_child_that_dies_before_answering_says_its_last_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_log: bool,
        dead_first: bool) -> None:
    """A broken install (the child cannot import the proxy) is not just 'exited
    with status 1': the error carries the last line the child wrote, whether the
    child is gone before its start is written to it (a broken pipe) or after."""
    import subprocess
    import sys

    if dead_first:
        class Exited(subprocess.Popen):  # type: ignore[type-arg]
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, **kwargs)  # type: ignore[arg-type]
                self.wait(10)

        monkeypatch.setattr(subprocess, "Popen", Exited)

    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                      "echo \"ModuleNotFoundError: No module named 'proxy'\" >&2\nexit 1\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    log = tmp_path / "h2scope.log"
    if with_log:
        log.write_text("an earlier run's last line\n")
    child = ChildProxy(Config(listen=ListenConfig(port=0), confdir=tmp_path), feed=LiveFeed(),
                       log_file=log if with_log else None)
    with pytest.raises(ProxyStartError) as raised:
        child.start()
    said = str(raised.value)
    assert said.startswith("the proxy process did not start: the proxy process exited with "
                           "status 1: ModuleNotFoundError: No module named 'proxy'"), said
    assert said.endswith(f" (see {log})") == with_log
    if with_log:  # (the traceback is in the log, after what was there)
        assert log.read_text().splitlines()[0] == "an earlier run's last line"
