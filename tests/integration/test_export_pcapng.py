"""pcapng export, checked by Wireshark itself: plain ``tshark -r OUT -Y http2``
shows every frame with the same types and header fields h2scope decoded."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.capture.replay import replay_observer
from proxy.capture.writer import CaptureWriter
from proxy.observe.events import FrameObserved
from tests.unit.capture.traffic import Session, record_session

pytestmark = pytest.mark.peer


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed (Debian package tshark); bash tests/run installs it")
    return path


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "two.h2scope"
    session = Session()
    with CaptureWriter(path, max_data_bytes=20_000) as writer:
        record_session(writer, 1, session=session)
        record_session(writer, 2, t0=2000.0, session=session)
    return path


def _export(capture: Path, out: Path, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "proxy", "export", str(capture), "--format",
                    "pcapng", "-o", str(out), *extra], check=True, timeout=60)


def _tshark_frames(pcap: Path) -> list[tuple[str, str, str]]:
    fields = subprocess.run(
        [_tshark(), "-r", str(pcap), "-Y", "http2", "-T", "fields", "-E", "occurrence=a",
         "-e", "tcp.srcport", "-e", "http2.type", "-e", "http2.header.name",
         "-e", "http2.header.value"],
        check=True, capture_output=True, text=True, timeout=120).stdout
    frames = []
    for line in fields.splitlines():
        _port, types, names, values = ([*line.split("\t"), "", "", ""])[:4]
        for t in filter(None, types.split(",")):
            frames.append((t, "", ""))
        if names:
            # One packet per frame here, so a packet's header fields are its frame's.
            frames[-1] = (frames[-1][0], names, values)
    return frames


def _h2scope_frames(capture: Path, conn: int | None = None) -> list[tuple[str, str, str]]:
    frames = []
    for c, ev in replay_observer(capture):
        if isinstance(ev, FrameObserved) and (conn is None or c == conn):
            headers = ev.block.headers if ev.block is not None else ()
            frames.append((str(ev.frame.type), ",".join(n for n, _ in headers),
                           ",".join(v for _, v in headers)))
    return frames


def test_tshark_sees_every_frame_and_header_h2scope_decoded(capture: Path,
                                                            tmp_path: Path) -> None:
    pcap = tmp_path / "out.pcapng"
    _export(capture, pcap)
    mine = _h2scope_frames(capture)
    theirs = _tshark_frames(pcap)
    assert len(mine) > 60
    assert theirs == mine


def test_tcp_flows_are_clean_for_wireshark(capture: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "out.pcapng"
    _export(capture, pcap)
    run = subprocess.run(
        [_tshark(), "-r", str(pcap), "-Y", "tcp.analysis.flags or _ws.malformed or _ws.expert",
         "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"],
        check=True, capture_output=True, text=True, timeout=120)
    problems = [ln for ln in run.stdout.splitlines()
                if ln.strip() and "Connection establish" not in ln and "Connection finish" not in ln
                and "Magic" not in ln]
    assert problems == []
    convs = subprocess.run([_tshark(), "-r", str(pcap), "-q", "-z", "conv,tcp"],
                           check=True, capture_output=True, text=True, timeout=60).stdout
    assert "127.0.0.1:51001" in convs and "127.0.0.1:51002" in convs
    assert "127.0.0.1:80" in convs or "127.0.0.1:http" in convs


def test_conn_option_exports_one_flow(capture: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "one.pcapng"
    _export(capture, pcap, "--conn", "2")
    assert _tshark_frames(pcap) == _h2scope_frames(capture, conn=2)
    comments = subprocess.run([_tshark(), "-r", str(pcap), "-Y", "frame.comment",
                               "-T", "fields", "-e", "frame.comment"],
                              check=True, capture_output=True, text=True, timeout=60).stdout
    assert "h2scope connection 2" in comments and ":8443" in comments


def test_a_server_that_speaks_first_is_still_dissected(tmp_path: Path) -> None:
    """An h2c server may send its SETTINGS as soon as it accepts (nghttpd does): in
    the export the client's preface still comes first in the flow, or Wireshark's
    HTTP dissector never hands the connection to HTTP/2."""
    import hpack
    from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame

    from proxy.observe.enums import Direction

    def settings(ack: bool = False) -> bytes:
        f = SettingsFrame(0)
        if ack:
            f.flags.add("ACK")
        return bytes(f.serialize())

    request = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    request.data = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                           (":authority", "example.test"), (":path", "/")])
    response = HeadersFrame(1, flags=["END_HEADERS"])
    response.data = hpack.Encoder().encode([(":status", "200")])
    body = DataFrame(1, data=b"hello", flags=["END_STREAM"])
    c2s, s2c = Direction.C2S, Direction.S2C
    path = tmp_path / "server-first.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2", "client": {"ip": "127.0.0.1", "port": 50001},
                              "server": {"ip": "127.0.0.1", "port": 8080}}, t=0.0)
        writer.frame(1, s2c, settings(), t=0.001)
        writer.raw(1, c2s, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", t=0.002)
        writer.frame(1, c2s, settings(), t=0.002)
        writer.frame(1, c2s, settings(ack=True), t=0.003)
        writer.frame(1, c2s, bytes(request.serialize()), t=0.003)
        writer.frame(1, s2c, settings(ack=True), t=0.004)
        writer.frame(1, s2c, bytes(response.serialize()), t=0.004)
        writer.frame(1, s2c, bytes(body.serialize()), t=0.005)
        writer.close_connection(1, t=0.006, closed_by="client")
    pcap = tmp_path / "server-first.pcapng"
    _export(path, pcap)
    mine = _h2scope_frames(path)
    theirs = _tshark_frames(pcap)
    assert len(mine) == 7
    assert sorted(theirs) == sorted(mine)
    comments = subprocess.run([_tshark(), "-r", str(pcap), "-Y", "frame.comment",
                               "-T", "fields", "-e", "frame.comment"],
                              check=True, capture_output=True, text=True, timeout=60).stdout
    assert "before the client's first bytes" in comments


@pytest.mark.parametrize(("error", "expected"), [
    ("connection reset", [("80", "1", "0")]),  # the server's RST, and nothing after it
    (None, [("80", "0", "1"), ("51003", "0", "1"), ("80", "0", "0")]),  # FIN, FIN, ACK
])
def test_a_reset_connection_ends_with_an_rst_not_a_clean_close(
        tmp_path: Path, error: str | None, expected: list[tuple[str, str, str]]) -> None:
    """A server that reset the TCP connection (h2scope's log says so) must not look,
    in Wireshark, as if it had closed it cleanly."""
    from hyperframe.frame import SettingsFrame

    from proxy.events import CONNECTION_RESET
    from proxy.observe.enums import Direction

    assert error in (None, CONNECTION_RESET)
    path = tmp_path / "reset.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2", "client": {"ip": "127.0.0.1", "port": 51003},
                              "server": {"ip": "127.0.0.1", "port": 8080}}, t=0.0)
        writer.raw(1, Direction.C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", t=0.001)
        writer.frame(1, Direction.C2S, bytes(SettingsFrame(0).serialize()), t=0.001)
        writer.frame(1, Direction.S2C, bytes(SettingsFrame(0).serialize()), t=0.002)
        writer.close_connection(1, t=0.003, closed_by="server", error=error)
    pcap = tmp_path / "reset.pcapng"
    _export(path, pcap)
    rows = subprocess.run([_tshark(), "-r", str(pcap), "-Y", "tcp.flags.reset == 1 or "
                           "tcp.flags.fin == 1 or (tcp.len == 0 and frame.number > 3)",
                           "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.flags.reset",
                           "-e", "tcp.flags.fin"],
                          check=True, capture_output=True, text=True, timeout=60).stdout
    got = [tuple(ln.split("\t")) for ln in rows.splitlines()]
    # (tshark writes flags as 1/0, or True/False in newer releases)
    norm = [(p, "1" if r in ("1", "True") else "0", "1" if f in ("1", "True") else "0")
            for p, r, f in got]
    assert norm == expected
