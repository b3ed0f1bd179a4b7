"""``h2scope import --keylog-file`` without external tools: real h2 traffic
(python-hyper ``h2``, tests.unit.capture.traffic) carried over TLS 1.3 and 1.2
between two of Python's own ``ssl`` endpoints (OpenSSL) that log their keys,
cut into TCP packets in the order the bytes were sent. The import must give
back exactly the frames of the plaintext conversation; damaged bytes anywhere
must never make it raise. (tests/integration/test_pcap_import.py does the same
against curl, nghttpd, dumpcap and tshark.)"""

from __future__ import annotations

import io
import random
import ssl
from pathlib import Path

import pytest

from proxy.capture.pcap import ACK, FIN, SYN, PcapError
from proxy.capture.pcap_import import import_packets
from proxy.capture.tls_decrypt import KeyLog
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import Direction
from tests.helpers.tls_files import make_self_signed
from tests.unit.capture.test_pcap_import import (
    CLIENT,
    SERVER,
    _ethernet,
    _expected,
    _frames,
    _NullWriter,
    _pcap,
    _tcp,
)
from tests.unit.capture.traffic import record_session


def _pump(src: ssl.MemoryBIO, dst_in: ssl.MemoryBIO) -> bytes:
    data = src.read()
    if data:
        dst_in.write(data)
    return data


def _tls_conversation(tmp_path: Path, version: ssl.TLSVersion
                      ) -> tuple[list[tuple[Direction, bytes]], Path]:
    """The ciphertext each side sent, in order, for the h2 conversation over TLS,
    and the client's key log."""
    cert = make_self_signed(tmp_path)
    keys = tmp_path / f"keys-{version.name}.log"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert.cert, cert.key)
    server_ctx.set_alpn_protocols(["h2"])
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert.cert)
    client_ctx.set_alpn_protocols(["h2"])
    client_ctx.minimum_version = client_ctx.maximum_version = version
    client_ctx.keylog_filename = str(keys)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    wire: list[tuple[Direction, bytes]] = []

    def flow() -> None:
        for _ in range(4):
            sent = _pump(c_out, s_in)
            if sent:
                wire.append((Direction.C2S, sent))
            back = _pump(s_out, c_in)
            if back:
                wire.append((Direction.S2C, back))

    done: set[int] = set()
    for _ in range(10):  # the handshake, both sides stepping until both are done
        for i, end in enumerate((client, server)):
            try:
                end.do_handshake()
                done.add(i)
            except ssl.SSLWantReadError:
                pass
        flow()
        if len(done) == 2:
            break
    assert client.selected_alpn_protocol() == "h2" and client.version() == {
        ssl.TLSVersion.TLSv1_3: "TLSv1.3", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version]
    plain = record_session(_NullWriter(), 1).chunks  # type: ignore[arg-type]
    for direction, data in plain:
        sender, receiver = (client, server) if direction is Direction.C2S else (server, client)
        sender.write(data)
        flow()
        got = b""
        while len(got) < len(data):
            got += receiver.read(len(data) - len(got))
        assert got == data
        flow()  # (TLS 1.3 session tickets and the like, after the first read)
    return wire, keys


def _packets(wire: list[tuple[Direction, bytes]], size: int = 700) -> list[bytes]:
    seq = {Direction.C2S: 1001, Direction.S2C: 5001}
    pkts = [_tcp(CLIENT, SERVER, 1000, SYN), _tcp(SERVER, CLIENT, 5000, SYN | ACK)]
    for direction, data in wire:
        src, dst = (CLIENT, SERVER) if direction is Direction.C2S else (SERVER, CLIENT)
        for i in range(0, len(data), size):
            pkts.append(_tcp(src, dst, seq[direction], ACK, data[i:i + size]))
            seq[direction] += len(data[i:i + size])
    return [*pkts, _tcp(CLIENT, SERVER, seq[Direction.C2S], FIN | ACK),
            _tcp(SERVER, CLIENT, seq[Direction.S2C], FIN | ACK)]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_tls_decrypts_to_the_plaintext_conversations_frames(tmp_path: Path,
                                                           version: ssl.TLSVersion) -> None:
    wire, keys = _tls_conversation(tmp_path, version)
    pcap = _pcap(tmp_path / "tls.pcap", [(1.0 + i / 100, _ethernet(ip))
                                         for i, ip in enumerate(_packets(wire))])
    out = tmp_path / "tls.h2scope"
    with open(pcap, "rb") as f, CaptureWriter(out) as writer:
        summary = import_packets(f, writer, keylog=KeyLog.load(keys))
    assert summary.connections == {"h2": 1} and not summary.problems
    assert _frames(out) == _expected(tmp_path)
    # Without the secrets: counted, nothing decoded.
    with open(pcap, "rb") as f, CaptureWriter(tmp_path / "no.h2scope") as writer:
        summary = import_packets(f, writer)
    assert summary.connections == {"tls": 1}


def test_damaged_tls_captures_never_crash_the_import(tmp_path: Path) -> None:
    wire, keys = _tls_conversation(tmp_path, ssl.TLSVersion.TLSv1_3)
    good = _pcap(tmp_path / "tls.pcap", [(1.0 + i / 100, _ethernet(ip))
                                         for i, ip in enumerate(_packets(wire))]).read_bytes()
    keylog = KeyLog.load(keys)
    rng = random.Random(2026)
    for _ in range(100):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(24, len(data))] = rng.randrange(256)
        try:
            with CaptureWriter(tmp_path / "bad.h2scope") as writer:
                import_packets(io.BytesIO(bytes(data)), writer, keylog=keylog)
        except PcapError:
            pass
