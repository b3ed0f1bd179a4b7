"""``h2scope import``: packet captures (pcap, pcapng) of cleartext HTTP/2 into captures.

Real h2 traffic (python-hyper ``h2`` client and server, tests.unit.capture.traffic)
goes through the pcapng export (synthetic TCP) and back in; hand-built pcap
files cover what the export never writes: segments out of order, retransmitted
and overlapping, lost, IPv6, Linux cooked captures, nanosecond timestamps.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from proxy.capture.export_pcapng import write_pcapng
from proxy.capture.format import RecordType
from proxy.capture.pcap import ACK, FIN, SYN, PcapError, packets, tcp_segment
from proxy.capture.pcap_import import MAX_AHEAD, import_packets
from proxy.capture.reader import CaptureReader
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.observe.enums import Direction
from tests.unit.capture.traffic import Session, record_session

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 8080)


def _frames(path: Path) -> dict[tuple[int, int], list[bytes]]:
    """Each (connection, direction)'s FRAME record bodies, in order."""
    out: dict[tuple[int, int], list[bytes]] = {}
    with CaptureReader(path) as reader:
        for rec in reader.records():
            if rec.type == RecordType.FRAME:
                out.setdefault((rec.conn_id, int(rec.direction)), []).append(rec.body)
        assert not reader.problems
    return out


def _import(pcap: Path, out: Path) -> object:
    with open(pcap, "rb") as f, CaptureWriter(out) as writer:
        return import_packets(f, writer)


def test_a_pcapng_export_imports_back_to_the_same_frames(tmp_path: Path) -> None:
    original = tmp_path / "orig.h2scope"
    session = Session()
    with CaptureWriter(original) as writer:
        record_session(writer, 1, session=session)
        record_session(writer, 2, t0=2000.0, session=session)
    pcapng = tmp_path / "orig.pcapng"
    with CaptureReader(original) as reader, open(pcapng, "wb") as out:
        write_pcapng(reader.records(), out)
    imported = tmp_path / "imported.h2scope"
    summary = _import(pcapng, imported)
    assert summary.connections == {"h2c": 2}  # type: ignore[attr-defined]
    assert _frames(imported) == _frames(original)
    with CaptureReader(imported) as reader:
        records = list(reader.records())
    metas = [r.json() for r in records if r.type == RecordType.CONNECTION]
    assert [(m["client"]["port"], m["server"]["port"], m["mode"]) for m in metas] == [
        (51001, 80, "pcap"), (51002, 80, "pcap")]
    closes = [r.json() for r in records if r.type == RecordType.CLOSE]
    assert len(closes) == 2 and all(c["error"] is None for c in closes)
    # The text export says h2scope read these connections: it did not relay them.
    from proxy.cli import main

    out = tmp_path / "imported.txt"
    assert main(["export", str(imported), "--format", "text", "-o", str(out)]) == 0
    text = out.read_text()
    assert " read h2c to " in text and "relaying" not in text


# ----------------------------------------------------------- hand-made pcaps


def _tcp(src: tuple[str, int], dst: tuple[str, int], seq: int, flags: int,
         payload: bytes = b"", *, v6: bool = False) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, 0, 5 << 4, flags,
                      65535, 0, 0) + payload
    if v6:
        return (struct.pack(">IHBB", 6 << 28, len(tcp), 6, 64)
                + bytes(15) + bytes([int(src[0].rsplit(".", 1)[1])])
                + bytes(15) + bytes([int(dst[0].rsplit(".", 1)[1])]) + tcp)
    return (struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0)
            + bytes(int(x) for x in src[0].split(".")) + bytes(int(x) for x in dst[0].split("."))
            + tcp)


def _ethernet(ip: bytes, v6: bool = False) -> bytes:
    return bytes(12) + (b"\x86\xdd" if v6 else b"\x08\x00") + ip


def _sll2(ip: bytes) -> bytes:
    return b"\x08\x00" + bytes(18) + ip


def _pcap(path: Path, frames: Sequence[tuple[float, bytes]], *, linktype: int = 1,
          nanoseconds: bool = False, big_endian: bool = False) -> Path:
    o = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for t, data in frames:
        sec = int(t)
        frac = round((t - sec) * (1e9 if nanoseconds else 1e6))
        out.append(struct.pack(o + "IIII", sec, frac, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def _conversation(requests: int = 3) -> tuple[bytes, bytes]:
    """A client's and a server's whole byte streams (real h2), to cut into segments."""
    session = record_session(_NullWriter(), 1)  # type: ignore[arg-type]
    c2s = b"".join(d for direction, d in session.chunks if direction is Direction.C2S)
    s2c = b"".join(d for direction, d in session.chunks if direction is Direction.S2C)
    return c2s, s2c


class _NullWriter:
    def __getattr__(self, name: str) -> object:
        return lambda *a, **k: None


def _segments(data: bytes, size: int, isn: int) -> Iterator[tuple[int, bytes]]:
    for i in range(0, len(data), size):
        yield isn + 1 + i, data[i:i + size]


def _flow(c2s: bytes, s2c: bytes, *, size: int = 500, wrap: bool = False,
          shuffle: bool = False, v6: bool = False,
          drop: int | None = None) -> list[bytes]:
    """The IP packets of one connection: handshake, the client's bytes, the
    server's, FINs. ``shuffle`` swaps neighbouring segments and sends some twice
    (a retransmission, then an overlap); ``drop`` loses one of the server's."""
    c_isn = 0xFFFFFF00 if wrap else 1000  # wrap: sequence numbers pass 2^32
    s_isn = 5000
    pkts = [_tcp(CLIENT, SERVER, c_isn, SYN, v6=v6),
            _tcp(SERVER, CLIENT, s_isn, SYN | ACK, v6=v6),
            _tcp(CLIENT, SERVER, c_isn + 1, ACK, v6=v6)]
    c_segs = list(_segments(c2s, size, c_isn))
    s_segs = list(_segments(s2c, size, s_isn))
    if drop is not None:
        del s_segs[drop]
    if shuffle:
        for segs in (c_segs, s_segs):
            for i in range(0, len(segs) - 1, 3):
                segs[i], segs[i + 1] = segs[i + 1], segs[i]
            seq, data = segs[0]
            segs.insert(2, (seq, data))  # a retransmission
            seq, data = segs[-1]
            segs.append((seq - 7, b"\x00" * 7 + data))  # an overlap starting earlier
    pkts += [_tcp(CLIENT, SERVER, seq, ACK, data, v6=v6) for seq, data in c_segs]
    pkts += [_tcp(SERVER, CLIENT, seq, ACK, data, v6=v6) for seq, data in s_segs]
    pkts += [_tcp(CLIENT, SERVER, c_isn + 1 + len(c2s), FIN | ACK, v6=v6),
             _tcp(SERVER, CLIENT, s_isn + 1 + len(s2c), FIN | ACK, v6=v6)]
    return pkts


def _expected(tmp_path: Path) -> dict[tuple[int, int], list[bytes]]:
    ref = tmp_path / "ref.h2scope"
    with CaptureWriter(ref) as writer:
        record_session(writer, 1)
    return _frames(ref)


@pytest.mark.parametrize("shape", ["plain", "shuffled", "wrapped", "ipv6", "sll2", "nanosecond",
                                   "big-endian"])
def test_segments_are_put_back_in_order(tmp_path: Path, shape: str) -> None:
    c2s, s2c = _conversation()
    v6 = shape == "ipv6"
    ips = _flow(c2s, s2c, shuffle=shape == "shuffled", wrap=shape == "wrapped", v6=v6)
    if shape == "sll2":
        frames = [(1000.0 + i / 100, _sll2(ip)) for i, ip in enumerate(ips)]
        pcap = _pcap(tmp_path / "in.pcap", frames, linktype=276)
    else:
        frames = [(1000.0 + i / 100, _ethernet(ip, v6)) for i, ip in enumerate(ips)]
        pcap = _pcap(tmp_path / "in.pcap", frames, nanoseconds=shape == "nanosecond",
                     big_endian=shape == "big-endian")
    out = tmp_path / "out.h2scope"
    summary = _import(pcap, out)
    assert summary.connections == {"h2c": 1} and not summary.gaps  # type: ignore[attr-defined]
    assert _frames(out) == _expected(tmp_path)
    with CaptureReader(out) as reader:
        first = next(r for r in reader.records() if r.type == RecordType.FRAME)
    assert 1000.0 < first.wall < 1000.0 + len(ips) / 100


def _flow_in_time_order(size: int, drop_server: int | None = None,
                        dropped: list[tuple[int, int]] | None = None) -> list[bytes]:
    """The IP packets of one real h2 connection in the order its bytes were sent
    (each chunk cut into ``size``-byte segments); ``drop_server`` loses that
    server segment, as a capture that missed a packet (its stream offset and
    length go to ``dropped``)."""
    session = record_session(_NullWriter(), 1)  # type: ignore[arg-type]
    seq = {Direction.C2S: 1001, Direction.S2C: 5001}
    pkts = [_tcp(CLIENT, SERVER, 1000, SYN), _tcp(SERVER, CLIENT, 5000, SYN | ACK)]
    server_segments = 0
    for direction, data in session.chunks:
        src, dst = (CLIENT, SERVER) if direction is Direction.C2S else (SERVER, CLIENT)
        for i in range(0, len(data), size):
            piece = data[i:i + size]
            if direction is Direction.S2C:
                server_segments += 1
            if direction is Direction.S2C and server_segments - 1 == drop_server:
                if dropped is not None:
                    dropped.append((seq[direction] - 5001, len(piece)))
            else:
                pkts.append(_tcp(src, dst, seq[direction], ACK, piece))
            seq[direction] += len(piece)
    pkts += [_tcp(CLIENT, SERVER, seq[Direction.C2S], FIN | ACK),
             _tcp(SERVER, CLIENT, seq[Direction.S2C], FIN | ACK)]
    return pkts


def test_a_capture_in_time_order_imports_without_a_finding(tmp_path: Path) -> None:
    pcap = _pcap(tmp_path / "ordered.pcap", [(1.0 + i / 100, _ethernet(ip)) for i, ip in
                                             enumerate(_flow_in_time_order(300))])
    out = tmp_path / "ordered.h2scope"
    _import(pcap, out)
    assert _frames(out) == _expected(tmp_path)
    assert main(["check", str(out), "--fail-on", "info"]) == 0


def test_a_lost_settings_frame_is_not_blamed_on_the_client_that_acknowledges_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The server's first segment (its SETTINGS) is missing: the client's ACK of it,
    later in the capture, is not 'an ACK with no SETTINGS waiting' (the observer
    reads the connection as an excerpt from the hole on, known from a first
    reading of the file)."""
    ips = _flow_in_time_order(200, drop_server=0)
    pcap = _pcap(tmp_path / "nosettings.pcap", [(1.0 + i / 100, _ethernet(ip))
                                                for i, ip in enumerate(ips)])
    out = tmp_path / "nosettings.h2scope"
    summary = _import(pcap, out)
    assert len(summary.gaps) == 1  # type: ignore[attr-defined]
    assert "of the server's stream are not in the capture after byte 0" in summary.gaps[0]  # type: ignore[attr-defined]
    assert main(["check", str(out), "--fail-on", "warning"]) == 0
    said = capsys.readouterr().out
    assert "settings-ack" not in said and "incomplete: #1" in said


def test_lost_packets_stop_that_direction_and_say_where(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dropped: list[tuple[int, int]] = []
    ips = _flow_in_time_order(200, drop_server=3, dropped=dropped)
    (at, size), = dropped
    pcap = _pcap(tmp_path / "lost.pcap", [(1000.0 + i / 100, _ethernet(ip))
                                          for i, ip in enumerate(ips)])
    out = tmp_path / "lost.h2scope"
    summary = _import(pcap, out)
    gaps = summary.gaps  # type: ignore[attr-defined]
    where = f"{size} bytes of the server's stream are not in the capture after byte {at}"
    assert len(gaps) == 1 and where in gaps[0]
    got, want = _frames(out), _expected(tmp_path)
    assert got[(1, 0)] == want[(1, 0)]  # the client's direction is whole
    server = got[(1, 1)]
    assert server == want[(1, 1)][:len(server)] and len(server) < len(want[(1, 1)])
    assert sum(map(len, server)) <= at
    with CaptureReader(out) as reader:
        lost = [r.json() for r in reader.records() if r.type == RecordType.LOST]
    assert [(x["count"], x["unit"]) for x in lost] == [(size, "bytes")]

    # Every reader says the capture is incomplete, and where; what the client says
    # after the hole about what it held (SETTINGS ACKs) is not called a violation.
    assert main(["check", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"incomplete: #1: 10.0.0.1:40000 → 10.0.0.2:8080: {where}" in said
    assert "settings-ack-unexpected" not in said
    assert main(["export", str(out), "--format", "text"]) == 0
    assert f"! LOST {size} bytes: 10.0.0.1:40000 → 10.0.0.2:8080" in capsys.readouterr().out
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    capture = CaptureFile(out)
    session = Session(capture)
    try:
        load(session, capture)
    finally:
        capture.close()
    conn = session.conns[1]
    assert conn.state == "failed" and conn.note.startswith("capture incomplete: 10.0.0.1")


def test_a_hole_that_never_fills_is_given_up_after_max_ahead(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr("proxy.capture.pcap_import.MAX_AHEAD", 1000)
    assert MAX_AHEAD > 1000  # (the real bound is larger; the test makes it small)
    c2s, s2c = _conversation()
    ips = _flow(c2s, s2c, size=100, drop=2)
    pcap = _pcap(tmp_path / "hole.pcap", [(1.0 + i, _ethernet(ip)) for i, ip in enumerate(ips)])
    summary = _import(pcap, tmp_path / "hole.h2scope")
    assert len(summary.gaps) == 1 and "100 bytes of the server's" in summary.gaps[0]  # type: ignore[attr-defined]


def test_tls_and_late_connections_are_counted_and_http1_recorded(tmp_path: Path) -> None:
    tls = [_tcp(("10.0.0.3", 1), SERVER, 0, SYN),
           _tcp(("10.0.0.3", 1), SERVER, 1, ACK, b"\x16\x03\x01\x00\x05hello")]
    http1 = [_tcp(("10.0.0.4", 2), SERVER, 0, SYN),
             _tcp(("10.0.0.4", 2), SERVER, 1, ACK, b"GET / HTTP/1.1\r\n\r\n")]
    late = [_tcp(("10.0.0.5", 3), SERVER, 77, ACK, b"\x00\x00\x04\x08\x00\x00\x00\x00\x00")]
    udp = struct.pack(">BBHHHBBH", 0x45, 0, 28, 0, 0, 64, 17, 0) + bytes(8) + bytes(8)
    pcap = _pcap(tmp_path / "mix.pcap", [(1.0, _ethernet(p)) for p in [*tls, *http1, *late, udp]])
    out = tmp_path / "mix.h2scope"
    summary = _import(pcap, out)
    assert summary.connections == {"tls": 1, "http1": 1, "late": 1}  # type: ignore[attr-defined]
    assert summary.skipped_packets == 1  # type: ignore[attr-defined]
    # The HTTP/1.1 connection is recorded as the proxy records one: its bytes and
    # its message heads (here a request that got no answer: cut short at the end).
    with CaptureReader(out) as reader:
        records = list(reader.records())
    (meta,) = [r.json() for r in records if r.type == RecordType.CONNECTION]
    assert meta["protocol"] == "http/1.1" and meta["client"]["ip"] == "10.0.0.4"
    (message,) = [r for r in records if r.type == RecordType.HTTP1]
    assert message.http1()[0] == b"GET / HTTP/1.1\r\n\r\n" and not message.truncated
    # Nothing but encrypted TLS and a connection begun before the capture: exit 1.
    only = _pcap(tmp_path / "only.pcap", [(1.0, _ethernet(p)) for p in [*tls, *late]])
    assert main(["import", str(only), "-o", str(tmp_path / "none.h2scope")]) == 1
    assert not (tmp_path / "none.h2scope").exists()


def test_a_connect_tunnels_bytes_are_said_to_be_kept_undecoded(tmp_path: Path) -> None:
    """A capture on a proxy's port: the TLS inside its CONNECT tunnels was dropped
    from the report without a word, though tshark with the key log decodes it."""
    from proxy.commands.pcap import report

    client = ("10.0.0.6", 4)
    connect = b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"
    ok = b"HTTP/1.1 200 Connection established\r\n\r\n"
    hello = b"\x16\x03\x01\x00\x05hello"
    flow = [_tcp(client, SERVER, 0, SYN), _tcp(SERVER, client, 0, SYN | ACK),
            _tcp(client, SERVER, 1, ACK, connect), _tcp(SERVER, client, 1, ACK, ok),
            _tcp(client, SERVER, 1 + len(connect), ACK, hello)]
    pcap = _pcap(tmp_path / "proxy.pcap", [(1.0, _ethernet(p)) for p in flow])
    out = tmp_path / "proxy.h2scope"
    summary = _import(pcap, out)
    (said,) = summary.tunnels  # type: ignore[attr-defined]
    assert said.startswith(f"10.0.0.6:4 → {SERVER[0]}:{SERVER[1]}: the bytes after its "
                           "CONNECT's 2xx")
    assert "TLS inside a proxy's tunnel is not decrypted" in said
    assert any(line.startswith("tunnel: ") for line in report(summary, pcap, out, False))


def test_the_readers_refuse_what_is_not_a_packet_capture(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"GIF89a not a pcap")
    with open(bad, "rb") as f, pytest.raises(PcapError, match="not a pcap or pcapng"):
        list(packets(f))
    assert main(["import", str(bad)]) == 2


def test_a_torn_last_packet_is_dropped_not_fatal(tmp_path: Path) -> None:
    ips = _flow(*_conversation())
    pcap = _pcap(tmp_path / "torn.pcap", [(1.0, _ethernet(ip)) for ip in ips])
    pcap.write_bytes(pcap.read_bytes()[:-5])
    torn: list[str] = []
    with open(pcap, "rb") as f:
        got = [tcp_segment(p) for p in packets(f, torn=torn)]
    assert len(got) == len(ips) - 1 and all(s is not None for s in got)
    assert len(torn) == 1 and "the file ends inside a packet at byte" in torn[0]
    # The import says so, as tshark does ("cut short in the middle of a packet").
    import contextlib
    import io

    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["import", str(pcap), "-o", str(tmp_path / "torn.h2scope")]) == 0
    assert "cut: the file ends inside a packet at byte" in said.getvalue()


def test_commands_that_read_captures_point_a_packet_capture_to_import(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = _pcap(tmp_path / "dump.pcap", [(1.0, _ethernet(ip)) for ip in _flow(
        *_conversation())])
    # (``view`` imports it itself: tests/unit/ui/test_view_cli.py)
    for command in (["check"], ["export", "--format", "text"], ["replay", "--target",
                                                                "http://127.0.0.1:9"]):
        assert main([*command, str(pcap)]) == 2
        assert f"packet capture (pcap/pcapng): `h2scope import {pcap}`" in \
            capsys.readouterr().err


def test_a_server_that_speaks_first_is_replayed_in_capture_order(tmp_path: Path) -> None:
    """An h2c server sends its SETTINGS on accept; the client's first segment can
    carry its preface, SETTINGS and already the ACK of the server's. Fed in the
    order of the capture, nothing is out of place (no finding)."""
    settings, ack = bytes.fromhex("000000040000000000"), bytes.fromhex("000000040100000000")
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    ips = [_tcp(CLIENT, SERVER, 100, SYN), _tcp(SERVER, CLIENT, 500, SYN | ACK),
           _tcp(SERVER, CLIENT, 501, ACK, settings),
           _tcp(CLIENT, SERVER, 101, ACK, preface + settings + ack),
           _tcp(SERVER, CLIENT, 510, ACK, ack)]
    pcap = _pcap(tmp_path / "first.pcap", [(1.0 + i, _ethernet(ip)) for i, ip in enumerate(ips)])
    out = tmp_path / "first.h2scope"
    _import(pcap, out)
    assert main(["check", str(out), "--fail-on", "info"]) == 0
    with CaptureReader(out) as reader:
        frames = [(int(r.direction), r.body) for r in reader.records()
                  if r.type == RecordType.FRAME]
    assert frames == [(1, settings), (0, settings), (0, ack), (1, ack)]


def test_damaged_packet_captures_never_crash_the_import(tmp_path: Path) -> None:
    """Bytes flipped anywhere in a pcap: the import reports (PcapError for a broken
    file structure) or imports what it can; it never raises anything else."""
    import random

    ips = _flow(*_conversation(), size=300)
    good = _pcap(tmp_path / "good.pcap", [(1.0 + i, _ethernet(ip))
                                           for i, ip in enumerate(ips)]).read_bytes()
    rng = random.Random(2026)
    bad = tmp_path / "bad.pcap"
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(24, len(data))] = rng.randrange(256)
        bad.write_bytes(bytes(data))
        try:
            _import(bad, tmp_path / "bad.h2scope")
        except PcapError:
            pass


def test_a_gzip_packet_capture_is_read_as_is(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    pcap = _pcap(tmp_path / "dump.pcap", [(1.0 + i / 100, _ethernet(ip)) for i, ip in
                                          enumerate(_flow_in_time_order(300))])
    packed = tmp_path / "dump.pcap.gz"
    packed.write_bytes(gzip.compress(pcap.read_bytes()))
    out = tmp_path / "dump.h2scope"
    assert main(["import", str(packed), "-o", str(out)]) == 0
    assert _frames(out) == _expected(tmp_path)
    packed.write_bytes(gzip.compress(pcap.read_bytes())[:-300])  # cut short
    assert main(["import", str(packed), "-o", str(out)]) == 0  # what is whole is imported
    got = _frames(out)[(1, 1)]
    assert got == _expected(tmp_path)[(1, 1)][:len(got)]


def test_a_packet_capture_can_come_on_stdin(tmp_path: Path) -> None:
    """``tcpdump -U -w - | h2scope import - -o OUT``: read once, as it comes."""
    import subprocess
    import sys

    pcap = _pcap(tmp_path / "dump.pcap", [(1.0 + i / 100, _ethernet(ip)) for i, ip in
                                          enumerate(_flow_in_time_order(300))])
    out = tmp_path / "piped.h2scope"
    with open(pcap, "rb") as f:
        cat = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)  # a pipe, not a file
        run = subprocess.run([sys.executable, "-m", "proxy", "import", "-", "-o", str(out)],
                             stdin=cat.stdout, capture_output=True, text=True, timeout=60)
        cat.wait(10)
    assert run.returncode == 0, run.stderr
    assert _frames(out) == _expected(tmp_path)
    assert main(["import", "-"]) == 2  # (where would it go?)


def test_a_packet_the_snap_length_cut_is_said_as_such_not_as_lost(tmp_path: Path) -> None:
    """dumpcap -s 200: the packet is there, cut; nothing was lost on the wire."""
    import contextlib
    import io

    pkts = [_ethernet(ip) for ip in _flow_in_time_order(500)]
    server = [i for i, p in enumerate(pkts) if len(p) > 400][len(pkts) // 4]
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 200, 1)]
    for i, data in enumerate(pkts):
        kept = data[:200] if i == server else data
        out.append(struct.pack("<IIII", 1, i, len(kept), len(data)) + kept)
    pcap = tmp_path / "snap.pcap"
    pcap.write_bytes(b"".join(out))
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["import", str(pcap), "-o", str(tmp_path / "snap.h2scope")]) == 0
    gaps = [ln for ln in said.getvalue().splitlines() if ln.startswith("gap:")]
    assert gaps and all("(the capture's snap length cut a packet)" in g for g in gaps), gaps


def test_without_the_handshake_a_server_that_speaks_first_is_still_the_server(
        tmp_path: Path) -> None:
    """A capture started after the SYNs of an h2c connection whose server sent its
    SETTINGS before the client's preface (nghttpd does): the side that sends the
    preface is the client, and every frame is imported."""
    from proxy.capture.replay import replay_observer
    from proxy.observe.events import FrameObserved

    c2s, s2c = _conversation()
    first = 9 + int.from_bytes(s2c[:3], "big")  # the server's first frame: its SETTINGS
    assert s2c[3] == 4
    pkts = [_tcp(SERVER, CLIENT, 5001, ACK, s2c[:first])]
    pkts += [_tcp(CLIENT, SERVER, seq, ACK, part) for seq, part in _segments(c2s, 500, 1000)]
    pkts += [_tcp(SERVER, CLIENT, 5001 + first + i, ACK, s2c[first + i:first + i + 500])
             for i in range(0, len(s2c) - first, 500)]
    pcap = _pcap(tmp_path / "late.pcap", [(1.0 + i / 1000, _ethernet(p))
                                          for i, p in enumerate(pkts)])
    summary = _import(pcap, tmp_path / "late.h2scope")
    assert summary.connections == {"h2c": 1}  # type: ignore[attr-defined]
    got = [ev for _, ev in replay_observer(tmp_path / "late.h2scope")
           if isinstance(ev, FrameObserved)]
    whole = tmp_path / "whole.pcap"
    _pcap(whole, [(1.0, _ethernet(p)) for p in _flow(c2s, s2c)])
    _import(whole, tmp_path / "whole.h2scope")
    expected = [ev for _, ev in replay_observer(tmp_path / "whole.h2scope")
                if isinstance(ev, FrameObserved)]
    assert sorted((e.direction, e.frame.raw) for e in got) == \
        sorted((e.direction, e.frame.raw) for e in expected)
    assert len(got) > 20
