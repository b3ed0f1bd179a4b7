"""``h2scope import`` on real packet captures: dumpcap (Wireshark's capture engine)
records curl and nghttp talking h2c to nghttpd on the loopback interface, in pcapng
and in classic pcap; the import must hold the frames tshark dissects from the
same file — every frame type counted alike, the same statuses, the same DATA
bytes — and its frames must decode without a finding."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.cli import main
from tests.helpers import procs


class Dumpcap:
    """dumpcap on the loopback interface for TCP ``port``, writing ``out``.

    It says "Capturing on" before its filter is in place, and writes packets in
    batches; what it has written is read from the packet count it reports on
    stderr. :meth:`settle` knocks on a closed port the filter also takes (a SYN,
    then the kernel's RST) and waits until dumpcap has counted both packets:
    everything sent before them is then in the file (loopback delivers in
    order). No sleeping for a guessed time, and no probe in the traffic."""

    def __init__(self, out: Path, port: int, *, pcap: bool) -> None:
        self.probe = procs.free_port()
        args = [procs.require("dumpcap"), "-i", "lo", "-f",
                f"tcp port {port} or tcp port {self.probe}", "-w", str(out)]
        if pcap:
            args.append("-P")
        self.count = 0
        self.said: list[str] = []
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        text = ""
        while chunk := os.read(fd, 4096):  # its counts end in \r, not in a new line
            text += chunk.decode(errors="replace")
            *parts, text = re.split(r"[\r\n]", text)
            for part in parts:
                self.said.append(part)
                m = re.match(r"Packets(?: captured)?: (\d+)", part.strip())
                if m:
                    self.count = int(m[1])

    def settle(self, timeout: float = 20.0) -> None:
        before = self.count
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(ConnectionRefusedError), \
                    socket.create_connection(("127.0.0.1", self.probe), timeout=5):
                pass
            wait_until = min(deadline, time.monotonic() + 1.0)
            while self.count < before + 2 and time.monotonic() < wait_until:
                time.sleep(0.01)
            if self.count >= before + 2:
                return
            if time.monotonic() >= deadline or self.proc.poll() is not None:
                raise RuntimeError("dumpcap did not count the probe's packets: "
                                   + " | ".join(self.said[-5:]))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@contextlib.contextmanager
def dumpcap(out: Path, port: int, *, pcap: bool) -> Iterator[Dumpcap]:
    cap = Dumpcap(out, port, pcap=pcap)
    try:
        cap.settle()  # its filter is in place
        yield cap
        cap.settle()  # everything sent so far is in the file
    finally:
        cap.stop()


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_a_loopback_capture_of_h2c_imports_the_frames_tshark_sees(
        tmp_path: Path, docroot: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = tmp_path / f"lo.{fmt}"
    with procs.nghttpd(docroot) as port, dumpcap(pcap, port, pcap=fmt == "pcap"):
        url = f"http://127.0.0.1:{port}"
        got = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge", "-o",
                         str(tmp_path / "page"), f"{url}/index.html"])
        assert got.returncode == 0, got.stderr
        got = procs.run([procs.require("nghttp"), "-n", "-m", "2", f"{url}/big.bin",
                         f"{url}/missing"])
        assert got.returncode == 0, got.stderr
    out = tmp_path / "lo.h2scope"
    assert main(["import", str(pcap), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "imported 2 HTTP/2 connections (h2c)" in said and f"h2scope view {out}" in said

    # What tshark dissects from the same file (nghttpd's port is not HTTP/2's by
    # default: -d tells it), frame by frame.
    tshark = procs.run([procs.require("tshark"), "-r", str(pcap), "-d",
                        f"tcp.port=={port},http2", "-Y", "http2", "-T", "fields",
                        "-E", "separator=;", "-e", "http2.type", "-e", "http2.length",
                        "-e", "http2.headers.status"], timeout=60)
    assert tshark.returncode == 0, tshark.stderr
    types: collections.Counter[int] = collections.Counter()
    data_bytes = 0
    statuses: set[str] = set()
    for line in tshark.stdout.decode().splitlines():
        ftypes, lengths, status = line.split(";")
        pairs = list(zip(map(int, ftypes.split(",")), map(int, lengths.split(",")),
                         strict=True))
        types.update(t for t, _ in pairs)
        data_bytes += sum(n for t, n in pairs if t == 0)
        statuses.update(s for s in status.split(",") if s)

    export = procs.run(["h2scope", "export", str(out), "--format", "jsonl"], timeout=60)
    objs = [json.loads(line) for line in export.stdout.decode().splitlines()]
    assert collections.Counter(o["type_id"] for o in objs) == types
    assert sum(o["length"] for o in objs if o["type_id"] == 0) == data_bytes
    ours = {h["value"] for o in objs if o["type"] == "HEADERS"
            for h in o["block"]["headers"] if h["name"] == ":status"}
    assert ours == statuses == {"200", "404"}
    assert data_bytes >= 2 * (docroot / "big.bin").stat().st_size
    assert not any(o["findings"] for o in objs)
    assert main(["check", str(out)]) == 0
