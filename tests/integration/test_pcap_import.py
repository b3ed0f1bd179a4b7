"""``h2scope import`` on real packet captures: dumpcap (Wireshark's capture engine)
records curl and nghttp talking to nghttpd on the loopback interface — h2c, in
pcapng and in classic pcap, and HTTP/2 over TLS 1.3 and 1.2 with every AEAD
family, decrypted with the key log curl wrote (SSLKEYLOGFILE). The import must
hold the frames tshark dissects from the same file (given the same key log) —
every frame type counted alike, the same statuses, the same DATA bytes — and
its frames must decode without a finding."""

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
from typing import Any

import pytest

from proxy.capture.format import RecordType
from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay_observer
from proxy.cli import main
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.tls_files import CertFiles


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
        # A bigger kernel buffer than the default 2 MiB: a burst on loopback must
        # not be dropped before dumpcap reads it (the import would report a gap).
        args = [procs.require("dumpcap"), "-i", "lo", "-B", "64", "-f",
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


def _tshark_frames(pcap: Path, *options: str) -> tuple[collections.Counter[int], int, set[str]]:
    """(frames by type, DATA payload bytes, :status values) as tshark dissects them."""
    tshark = procs.run([procs.require("tshark"), "-r", str(pcap), *options, "-Y", "http2",
                        "-T", "fields", "-E", "separator=;", "-e", "http2.type", "-e",
                        "http2.length", "-e", "http2.headers.status"], timeout=60)
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
    return types, data_bytes, statuses


def _ours(capture: Path) -> tuple[collections.Counter[int], int, set[str], list[dict[str, Any]]]:
    export = procs.run(["h2scope", "export", str(capture), "--format", "jsonl"], timeout=60)
    assert export.returncode == 0, export.stderr
    objs = [o for o in map(json.loads, export.stdout.decode().splitlines())
            if "type" in o]  # the frames (not the events between them)
    statuses = {h["value"] for o in objs if o["type"] == "HEADERS"
                for h in o["block"]["headers"] if h["name"] == ":status"}
    return (collections.Counter(o["type_id"] for o in objs),
            sum(o["length"] for o in objs if o["type_id"] == 0), statuses, objs)


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
    assert "imported 2 HTTP/2 connections (2 h2c)" in said and f"h2scope view {out}" in said
    assert "gap:" not in said  # (dumpcap kept every packet)

    # What tshark dissects from the same file (nghttpd's port is not HTTP/2's by
    # default: -d tells it), frame by frame.
    types, data_bytes, statuses = _tshark_frames(pcap, "-d", f"tcp.port=={port},http2")
    our_types, our_bytes, our_statuses, objs = _ours(out)
    assert our_types == types and our_bytes == data_bytes
    assert our_statuses == statuses == {"200", "404"}
    assert data_bytes >= 2 * (docroot / "big.bin").stat().st_size
    assert not any(o["findings"] for o in objs)
    assert main(["check", str(out)]) == 0


# curl options that pick each record protection h2scope decrypts.
_TLS_CLIENTS = {
    "TLS 1.3 AES-256-GCM": ["--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"],
    "TLS 1.3 AES-128-GCM": ["--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"],
    "TLS 1.3 ChaCha20": ["--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"],
    "TLS 1.2 AES-256-GCM": ["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    "TLS 1.2 AES-128-GCM": ["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    "TLS 1.2 ChaCha20": ["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305"],
}


def test_tls_connections_decrypt_with_the_clients_key_log(
        tmp_path: Path, origin_cert: CertFiles, capsys: pytest.CaptureFixture[str]) -> None:
    docroot = tmp_path / "www"
    docroot.mkdir()
    (docroot / "big.bin").write_bytes(bytes(range(256)) * 600)  # 150 KiB: 10 DATA frames
    pcap = tmp_path / "tls.pcapng"
    keys = tmp_path / "keys.log"
    env = dict(os.environ, SSLKEYLOGFILE=str(keys))
    curl = procs.require("curl")
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as port, \
            dumpcap(pcap, port, pcap=False):
        base = [curl, "-sS", "--cacert", str(origin_cert.cert), "-o", os.devnull]
        for options in _TLS_CLIENTS.values():
            got = subprocess.run([*base, "--http2", *options,
                                  f"https://localhost:{port}/big.bin"],
                                 capture_output=True, env=env, timeout=30, check=False)
            assert got.returncode == 0, (options, got.stderr)
        # HTTP/1.1 inside TLS (nghttpd then closes: it speaks only HTTP/2).
        subprocess.run([*base, "--http1.1", f"https://localhost:{port}/index.html"],
                       capture_output=True, env=env, timeout=30, check=False)

    # Without the key log: nothing to import, and the report says what would help.
    assert main(["import", str(pcap), "-o", str(tmp_path / "none.h2scope")]) == 1
    assert "7 TLS (encrypted: give --keylog-file" in capsys.readouterr().err

    out = tmp_path / "tls.h2scope"
    assert main(["import", str(pcap), "--keylog-file", str(keys), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"imported {len(_TLS_CLIENTS)} HTTP/2 connections ({len(_TLS_CLIENTS)} TLS " \
        "decrypted)" in said
    assert "and 1 HTTP/1.x connection" in said  # the HTTP/1.1 one, recorded as messages
    with CaptureReader(out) as reader:
        h1_heads = [r.http1()[0] for r in reader.records() if r.type == RecordType.HTTP1]
    assert any(h.startswith(b"GET /index.html HTTP/1.1\r\n") for h in h1_heads), h1_heads
    assert "gap:" not in said  # (dumpcap kept every packet)
    types, data_bytes, statuses = _tshark_frames(pcap, "-o", f"tls.keylog_file:{keys}")
    our_types, our_bytes, our_statuses, objs = _ours(out)
    assert our_types == types and our_bytes == data_bytes
    assert our_bytes == len(_TLS_CLIENTS) * (docroot / "big.bin").stat().st_size
    assert our_statuses == statuses == {"200"}
    assert not any(o["findings"] for o in objs)
    with CaptureReader(out) as reader:
        metas = [r.json() for r in reader.records() if r.type == RecordType.CONNECTION]
    legs = [m["client_tls"] for m in metas if m["protocol"] == "h2"]
    (h1_leg,) = [m["client_tls"] for m in metas if m["protocol"] == "http/1.1"]
    # (curl --http1.1 offers only http/1.1, which nghttpd does not choose: no ALPN)
    assert h1_leg["alpn_offered"] == ["http/1.1"] and h1_leg["alpn"] is None
    assert sorted((leg["version"], leg["cipher"]) for leg in legs) == sorted([
        ("TLSv1.3", "TLS_AES_256_GCM_SHA384"), ("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
        ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"),
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256")])
    assert all(leg["sni"] == "localhost" and leg["alpn"] == "h2" for leg in legs)

    # The same secrets inside the pcapng (a Decryption Secrets Block, as Wireshark's
    # editcap writes it): no --keylog-file needed, the same frames.
    embedded = tmp_path / "with-secrets.pcapng"
    got = procs.run([procs.require("editcap"), "--inject-secrets", f"tls,{keys}", str(pcap),
                     str(embedded)])
    assert got.returncode == 0, got.stderr
    again = tmp_path / "again.h2scope"
    assert main(["import", str(embedded), "-o", str(again)]) == 0
    assert "TLS secrets carried by the file itself: " in capsys.readouterr().out
    assert _ours(again)[:3] == (our_types, our_bytes, our_statuses)


def test_an_h2c_upgrade_is_followed_from_its_101(tmp_path: Path) -> None:
    """curl --http2 on http:// asks for Upgrade: h2c (RFC 7540 §3.2); once the
    server's 101 is in the capture, stream 1 is that request and what follows
    is HTTP/2. A plain HTTP/1.1 exchange beside it is recorded as its messages.
    (nghttpd does not implement the upgrade; the Python h2 origin does.)"""
    origin = ServerThread(upgrade=True)
    pcap = tmp_path / "upgrade.pcapng"
    try:
        with dumpcap(pcap, origin.port, pcap=False):
            got = procs.run([procs.require("curl"), "-sS", "--http2",
                             f"http://127.0.0.1:{origin.port}/upgraded"])
            assert got.returncode == 0 and got.stdout == b"hello /upgraded\n", got.stderr
            got = procs.run([procs.require("curl"), "-sS", "--http1.1",
                             f"http://127.0.0.1:{origin.port}/plain"])
            assert got.stdout == b"hello /plain over HTTP/1.1\n", got.stderr
    finally:
        origin.close()
    out = tmp_path / "upgrade.h2scope"
    summary = _import_file(pcap, out)
    assert summary.connections == {"h2c": 1, "http1": 1}
    with CaptureReader(out) as reader:
        records = list(reader.records())
    heads = [r.http1()[0].split(b"\r\n", 1)[0] for r in records if r.type == RecordType.HTTP1]
    assert heads == [b"GET /plain HTTP/1.1", b"HTTP/1.1 200 OK"], heads
    upgrade = next(r.json() for r in records if r.type == RecordType.H2C_UPGRADE)
    assert dict(upgrade["request_headers"])[":path"] == "/upgraded"
    events = [ev for _, ev in replay_observer(out)]
    heads = [ev for ev in events if isinstance(ev, FrameObserved) and ev.block is not None]
    assert [(ev.frame.stream_id, dict(ev.block.headers).get(":status")) for ev in heads] \
        == [(1, "200")]
    body = b"".join(ev.frame.data for ev in events
                    if isinstance(ev, FrameObserved) and ev.frame.type == 0)
    assert body == b"hello /upgraded\n"
    assert not any(ev.findings for ev in events if isinstance(ev, FrameObserved))
    assert main(["check", str(out), "--fail-on", "warning"]) == 0


def _import_file(pcap: Path, out: Path) -> Any:
    from proxy.capture.pcap_import import import_packets
    from proxy.capture.writer import CaptureWriter

    with open(pcap, "rb") as f, CaptureWriter(out) as writer:
        return import_packets(f, writer)
