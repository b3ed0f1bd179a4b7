"""Chrome net logs imported: the frames of the sockets' raw bytes, the connection's
metadata from the socket's other events, and what cannot be imported said.

The logs here are written as Chrome writes them (constants first, then one
event per line) around real HTTP/2 bytes: an ``h2`` client and server talking
in-process. tests/integration/test_netlog_import.py does it with Chromium's own.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.capture.format import RecordType
from proxy.capture.netlog_import import NetlogError, import_netlog, looks_like_netlog
from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved

TYPES = ["SOCKET_ALIVE", "TCP_CONNECT", "SSL_CONNECT", "SSL_SOCKET_BYTES_SENT",
         "SSL_SOCKET_BYTES_RECEIVED", "SOCKET_BYTES_SENT", "SOCKET_BYTES_RECEIVED",
         "HTTP2_SESSION", "HTTP2_SESSION_INITIALIZED", "SSL_HANDSHAKE_MESSAGE_SENT",
         "QUIC_SESSION", "URL_REQUEST_START_JOB", "HTTP2_SESSION_SEND_SETTINGS",
         "HTTP2_SESSION_SEND_WINDOW_UPDATE", "HTTP2_SESSION_SEND_HEADERS",
         "HTTP2_SESSION_RECV_SETTINGS", "HTTP2_SESSION_SEND_SETTINGS_ACK",
         "HTTP2_SESSION_RECV_SETTING", "HTTP2_SESSION_RECV_SETTINGS_ACK",
         "HTTP2_SESSION_SEND_GREASED_FRAME", "HTTP2_SESSION_RECV_HEADERS",
         "HTTP2_SESSION_RECV_DATA", "HTTP2_SESSION_SEND_DATA",
         "HTTP2_SESSION_RECV_WINDOW_UPDATE", "HTTP2_SESSION_PING",
         "HTTP2_STREAM_SEND_PRIORITY", "HTTP2_SESSION_SEND_RST_STREAM",
         "HTTP2_SESSION_RECV_RST_STREAM", "HTTP2_SESSION_RECV_GOAWAY", "HTTP2_SESSION_CLOSE",
         "HTTP2_SESSION_UPDATE_STREAMS_SEND_WINDOW_SIZE"]
SOURCES = {"NONE": 0, "URL_REQUEST": 1, "SOCKET": 10, "HTTP2_SESSION": 11, "QUIC_SESSION": 12}
OFFSET = 1_790_000_000_000  # timeTickOffset: ms of wall clock at tick 0
REQUEST = [(":method", "GET"), (":scheme", "https"), (":authority", "example.test"),
           (":path", "/index.html"), ("user-agent", "netlog-test")]


class Log:
    """A net log being written: events as Chrome logs them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.tick = 1000

    def add(self, name: str, source: int, stype: str = "SOCKET", phase: int = 0,
            **params: Any) -> None:
        self.tick += 1
        e: dict[str, Any] = {"phase": phase, "source": {"id": source, "start_time": "1000",
                                                         "type": SOURCES[stype]},
                             "time": str(self.tick), "type": TYPES.index(name)}
        if params:
            e["params"] = params
        self.events.append(e)

    def text(self, *, mode: str = "Everything", close: bool = True) -> str:
        constants = {"logEventTypes": {n: i for i, n in enumerate(TYPES)},
                     "logSourceType": SOURCES,
                     "logEventPhase": {"PHASE_BEGIN": 1, "PHASE_END": 2, "PHASE_NONE": 0},
                     "timeTickOffset": str(OFFSET), "logCaptureMode": mode,
                     "clientInfo": {"name": "Chromium", "version": "156.0.1"}}
        lines = ['{"constants":' + json.dumps(constants) + ",", '"events": [']
        lines += [json.dumps(e) + "," for e in self.events]
        if close:
            lines[-1] = lines[-1].rstrip(",")
            lines.append('],"polledData":{}}')
        return "\n".join(lines) + "\n"


def h2_socket(log: Log, source: int = 7, *, raw: bool = True, session: int = 8) -> int:
    """One TLS socket carrying an HTTP/2 exchange (a GET, a 200 with a body);
    returns how many frames went over it."""
    log.add("SOCKET_ALIVE", source, phase=1)
    log.add("TCP_CONNECT", source, phase=2, local_address="127.0.0.1:50000",
            remote_address="192.0.2.10:443")
    log.add("SSL_CONNECT", source, phase=1)
    log.add("SSL_CONNECT", source, phase=2, cipher_suite=4865, next_proto="h2",
            version="TLS 1.3", is_resumed=False)
    log.add("HTTP2_SESSION", session, "HTTP2_SESSION", phase=1, host="example.test:443",
            proxy="[direct://]")
    log.add("HTTP2_SESSION_INITIALIZED", session, "HTTP2_SESSION", protocol="h2",
            source_dependency={"id": source, "type": SOURCES["SOCKET"]})
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    frames = 0

    def bytes_event(direction: str, data: bytes) -> None:
        nonlocal frames
        if not data:
            return
        params: dict[str, Any] = {"byte_count": len(data)}
        if raw:
            params["bytes"] = base64.b64encode(data).decode()
        log.add(f"SSL_SOCKET_BYTES_{direction}", source, **params)
        pos = 24 if data.startswith(b"PRI * HTTP/2.0") else 0
        while pos < len(data):
            frames += 1
            pos += 9 + int.from_bytes(data[pos:pos + 3], "big")

    client.initiate_connection()
    server.initiate_connection()
    client.send_headers(1, REQUEST, end_stream=True)
    c2s = client.data_to_send()
    bytes_event("SENT", c2s)
    server.receive_data(c2s)
    server.send_headers(1, [(":status", "200"), ("content-type", "text/html")])
    server.send_data(1, b"<p>hello</p>", end_stream=True)
    s2c = server.data_to_send()
    bytes_event("RECEIVED", s2c)
    client.receive_data(s2c)
    bytes_event("SENT", client.data_to_send())  # the SETTINGS ACK
    log.add("HTTP2_SESSION_CLOSE", session, "HTTP2_SESSION", description="Closing all sessions.",
            net_error=-3)
    log.add("HTTP2_SESSION", session, "HTTP2_SESSION", phase=2)
    log.add("SOCKET_ALIVE", source, phase=2)
    return frames


def imported(text: str, tmp_path: Path) -> tuple[Any, Path]:
    out = tmp_path / "out.h2scope"
    with CaptureWriter(out) as writer:
        summary = import_netlog(io.StringIO(text), writer)
    return summary, out


def frames_of(path: Path) -> list[FrameObserved]:
    return [ev for item in replay(path) for ev in item.events if isinstance(ev, FrameObserved)]


BIG = "x" * 20000
"""A header value that makes its block go on in a CONTINUATION frame."""


def h2_session(log: Log, source: int = 7, session: int = 8) -> None:
    """A session as Chrome logs it without raw bytes: its events only."""
    log.add("SOCKET_ALIVE", source, phase=1)
    log.add("TCP_CONNECT", source, phase=2, local_address="[::1]:50001",
            remote_address="[::1]:8443")
    log.add("SSL_CONNECT", source, phase=1)
    log.add("SSL_CONNECT", source, phase=2, cipher_suite="4866", next_proto="h2",
            version="TLS 1.3")
    s = {"stype": "HTTP2_SESSION"}
    log.add("HTTP2_SESSION", session, phase=1, host="localhost:8443", proxy="[direct://]",
            **s)
    log.add("HTTP2_SESSION_INITIALIZED", session, protocol="h2", **s,
            source_dependency={"id": source, "type": SOURCES["SOCKET"]})
    log.add("HTTP2_SESSION_SEND_SETTINGS", session, **s, settings=[
        "[id:1 (SETTINGS_HEADER_TABLE_SIZE) value:65536]",
        "[id:4 (SETTINGS_INITIAL_WINDOW_SIZE) value:6291456]"])
    log.add("HTTP2_SESSION_SEND_WINDOW_UPDATE", session, **s, delta="15663105", stream_id="0")
    log.add("HTTP2_SESSION_SEND_HEADERS", session, **s, fin="True", has_priority="True",
            exclusive="True", parent_stream_id="0", weight="256", stream_id="1",
            headers=[":method: GET", ":authority: localhost:8443", ":scheme: https",
                     ":path: /a", "cookie: [20 bytes were stripped]"])
    log.add("HTTP2_SESSION_RECV_SETTINGS", session, **s)
    log.add("HTTP2_SESSION_SEND_SETTINGS_ACK", session, **s)  # (logged before the values)
    log.add("HTTP2_SESSION_RECV_SETTING", session, **s,
            id="3 (SETTINGS_MAX_CONCURRENT_STREAMS)", value="100")
    # (logged as the new window is applied, before the values that follow)
    log.add("HTTP2_SESSION_UPDATE_STREAMS_SEND_WINDOW_SIZE", session, **s,
            delta_window_size=983041)
    log.add("HTTP2_SESSION_RECV_SETTING", session, **s, id="4 (SETTINGS_INITIAL_WINDOW_SIZE)",
            value=1048576)
    log.add("HTTP2_SESSION_RECV_SETTINGS_ACK", session, **s)
    log.add("HTTP2_SESSION_SEND_GREASED_FRAME", session, **s, stream_id=1, type=0xB,
            flags=0, length=0)
    log.add("HTTP2_SESSION_RECV_HEADERS", session, **s, fin=False, stream_id=1,
            headers=[":status: 200", f"x-big: {BIG}", "content-length: 1000"])
    log.add("HTTP2_SESSION_RECV_DATA", session, **s, fin=True, size=1000, stream_id=1)
    log.add("HTTP2_SESSION_SEND_HEADERS", session, **s, fin=False, has_priority=False,
            stream_id=3, headers=[":method: POST", ":authority: localhost:8443",
                                  ":scheme: https", ":path: /upload"])
    log.add("HTTP2_SESSION_SEND_DATA", session, **s, fin=False, size=300, stream_id=3)
    log.add("HTTP2_STREAM_SEND_PRIORITY", session, **s, stream_id=3, parent_stream_id=1,
            weight=32, exclusive=False)
    log.add("HTTP2_SESSION_RECV_WINDOW_UPDATE", session, **s, delta=300, stream_id=3)
    log.add("HTTP2_SESSION_PING", session, **s, unique_id=7, type="sent", is_ack=False)
    log.add("HTTP2_SESSION_PING", session, **s, unique_id=7, type="received", is_ack=True)
    log.add("HTTP2_SESSION_SEND_RST_STREAM", session, **s, stream_id=3,
            error_code="8 (CANCEL)", description="")
    log.add("HTTP2_SESSION_RECV_GOAWAY", session, **s, last_accepted_stream_id=3,
            active_streams=0, unclaimed_streams=0, error_code="0 (NO_ERROR)",
            debug_data="bye")
    log.add("HTTP2_SESSION_CLOSE", session, **s, description="Finished going away",
            net_error=0)
    log.add("HTTP2_SESSION", session, phase=2, **s)
    log.add("SOCKET_ALIVE", source, phase=2)


def test_without_raw_bytes_the_frames_are_rebuilt_from_the_session_events(
        tmp_path: Path) -> None:
    log = Log()
    h2_session(log)
    summary, out = imported(log.text(mode="Default"), tmp_path)
    assert summary.rebuilt and summary.connections == {"h2": 1}
    frames = frames_of(out)
    shape = [(f.direction.name, f.frame.type, f.frame.flags, f.frame.stream_id) for f in frames]
    assert shape == [
        ("C2S", 4, 0, 0), ("C2S", 8, 0, 0), ("C2S", 1, 0x25, 1),
        ("S2C", 4, 0, 0), ("C2S", 4, 1, 0),  # the server's SETTINGS, then Chrome's ACK
        ("S2C", 4, 1, 0), ("C2S", 0xB, 0, 1),
        ("S2C", 1, 0, 1), ("S2C", 9, 4, 1),  # a 20 kB block: HEADERS + CONTINUATION
        ("S2C", 0, 1, 1), ("C2S", 1, 4, 3), ("C2S", 0, 0, 3), ("C2S", 2, 0, 3),
        ("S2C", 8, 0, 3), ("C2S", 6, 0, 0), ("S2C", 6, 1, 0), ("C2S", 3, 0, 3),
        ("S2C", 7, 0, 0)]
    assert summary.frames == len(frames)
    server_settings = frames[3].frame
    assert dict(server_settings.settings) == {3: 100, 4: 1048576}  # (both: one frame)
    by_type: dict[tuple[str, int], FrameObserved] = {}
    for f in frames:
        by_type.setdefault((f.direction.name, f.frame.type), f)
    assert by_type[("C2S", 4)].frame.settings == ((1, 65536), (4, 6291456))  # type: ignore[attr-defined]
    assert by_type[("S2C", 4)].frame.settings == ((3, 100), (4, 1048576))  # type: ignore[attr-defined]
    first = frames[2]
    assert first.frame.priority.weight == 256 and first.frame.priority.exclusive  # type: ignore[attr-defined]
    assert first.block is not None and dict(first.block.headers)["cookie"] == \
        "[20 bytes were stripped]"
    big = frames[8]
    assert big.block is not None and dict(big.block.headers)["x-big"] == BIG
    data = frames[9].frame
    assert data.data_length == 1000  # type: ignore[attr-defined]
    prio = frames[12].frame
    assert (prio.priority.depends_on, prio.priority.weight) == (1, 32)  # type: ignore[attr-defined]
    assert frames[14].frame.opaque == (7).to_bytes(8, "big")  # type: ignore[attr-defined]
    assert frames[16].frame.error_code == 8  # type: ignore[attr-defined]
    goaway = frames[17].frame
    assert (goaway.last_stream_id, goaway.error_code, goaway.debug_data) == (3, 0, b"bye")  # type: ignore[attr-defined]
    with CaptureReader(out) as reader:
        records = list(reader.records())
    (meta,) = [r.json() for r in records if r.type == RecordType.CONNECTION]
    assert "no raw bytes" in meta["rebuilt"] and "rebuilt" in meta["via"]
    assert meta["target"] == "localhost:8443" and meta["server"]["ip"] == "::1"
    # DATA is zeros standing for the logged size: not kept, marked as cut.
    data_records = [r for r in records if r.type == RecordType.FRAME and r.frame_bytes()[3] == 0]
    assert data_records and all(r.truncated for r in data_records)
    (close,) = [r.json() for r in records if r.type == RecordType.CLOSE]
    assert close.get("closed_by") == "client"
    assert not [f for ev in frames for f in ev.findings if f.severity.name == "ERROR"]


def test_a_sockets_raw_bytes_become_its_frames_with_the_connection_described(
        tmp_path: Path) -> None:
    log = Log()
    sent = h2_socket(log)
    summary, out = imported(log.text(), tmp_path)
    assert summary.connections == {"h2": 1} and summary.frames == sent
    assert summary.chrome == "Chromium 156.0.1" and not summary.truncated
    frames = frames_of(out)
    assert len(frames) == sent
    request = next(f for f in frames if f.block is not None and f.direction is Direction.C2S)
    assert request.block is not None and list(request.block.headers) == REQUEST
    response = next(f for f in frames if f.block is not None and f.direction is Direction.S2C)
    assert response.block is not None and dict(response.block.headers)[":status"] == "200"
    assert b"<p>hello</p>" in b"".join(f.frame.raw for f in frames if f.frame.type == 0)
    # Times are the events' ticks on the log's wall clock.
    assert all(OFFSET / 1000 < f.t < OFFSET / 1000 + 10 for f in frames)
    with CaptureReader(out) as reader:
        (meta,) = [r.json() for r in reader.records() if r.type == RecordType.CONNECTION]
    assert meta["mode"] == "netlog" and meta["via"] == "Chrome net log"
    assert meta["target"] == "example.test:443" and meta["server"]["host"] == "example.test"
    assert meta["client"] == {"ip": "127.0.0.1", "port": 50000}
    assert meta["server"]["ip"] == "192.0.2.10"
    tls = meta["client_tls"]
    assert (tls["version"], tls["cipher"], tls["alpn"]) == \
        ("TLSv1.3", "TLS_AES_128_GCM_SHA256", "h2")
    # Chrome's reason for closing its session, and the bytes each way, as the proxy
    # records them (they were null and 0 when the log had the bytes).
    with CaptureReader(out) as reader:
        (close,) = [r.json() for r in reader.records() if r.type == RecordType.CLOSE]
    assert (close["closed_by"], close["reason"], close["error"]) == (
        "client", "Closing all sessions.", "net error -3")
    assert close["bytes_c2s"] > 24 and close["bytes_s2c"] > 12


def test_a_log_that_ends_early_is_read_to_its_last_whole_event(tmp_path: Path) -> None:
    log = Log()
    sent = h2_socket(log)
    text = log.text(close=False)  # Chrome killed: no closing brackets
    whole, _ = imported(text, tmp_path)
    assert whole.frames == sent and "ends early" in whole.truncated
    # Cut inside the server's bytes event: the client's frames are kept.
    cut = text[:text.index('"type": 4') + 5]  # 4: SSL_SOCKET_BYTES_RECEIVED
    part, out = imported(cut, tmp_path)
    assert 0 < part.frames < sent and "ends early" in part.truncated
    assert all(f.direction is Direction.C2S for f in frames_of(out))


@pytest.mark.parametrize("text, message", [
    ('{"foo": 1}', "no constants"),
    ("[1, 2]", "does not start with a JSON object"),
    ('{"events": [], "constants": {}}', "events come before its constants"),
    ('{"constants": {"x": 1}, "events": []}', "no logEventTypes"),
    ('{"constants": {"logEventTypes": {"A": 1},', "ends before its constants"),
    ('{"constants": {"logEventTypes": nope},\n"events": []}', "malformed JSON"),
    ('{"constants": {"logEventTypes": {"A": "one"}},\n"events": []}', "constants are damaged"),
    ('{"constants": {"logEventTypes": {}, "logSourceType": [1]},\n"events": []}',
     "constants are damaged"),
])
def test_what_is_not_a_net_log_is_refused_by_name(text: str, message: str,
                                                   tmp_path: Path) -> None:
    with pytest.raises(NetlogError, match=message), \
            CaptureWriter(tmp_path / "x.h2scope") as writer:
        import_netlog(io.StringIO(text), writer)


def test_a_damaged_event_is_skipped_and_said(tmp_path: Path) -> None:
    log = Log()
    sent = h2_socket(log)
    lines = log.text().split("\n")
    lines.insert(4, '{"phase": 0, "source": {"id": 99, "type": 10}, "time": broken},')
    summary, out = imported("\n".join(lines), tmp_path)
    assert summary.frames == sent and len(frames_of(out)) == sent
    (problem,) = summary.problems
    assert "a damaged event after event 2 was skipped" in problem
    assert "Expecting value" in problem and not summary.truncated


def test_http1_and_quic_are_counted_not_imported(tmp_path: Path) -> None:
    log = Log()
    h2_socket(log, 7, raw=False)
    log.add("SOCKET_ALIVE", 20, phase=1)
    log.add("SSL_CONNECT", 20, phase=1)
    log.add("SSL_CONNECT", 20, phase=2, cipher_suite=4865, next_proto="http/1.1",
            version="TLS 1.3")
    log.add("SSL_SOCKET_BYTES_SENT", 20, byte_count=18,
            bytes=base64.b64encode(b"GET / HTTP/1.1\r\n\r\n").decode())
    log.add("SOCKET_ALIVE", 20, phase=2)
    log.add("QUIC_SESSION", 30, "QUIC_SESSION", phase=1)
    summary, _ = imported(log.text(mode="IncludeSensitive"), tmp_path)
    # (the HTTP/2 session is rebuilt from its events: it logged none but its start;
    # without bytes, HTTP/1.1 is known by its ALPN only)
    assert summary.connections == {"h2": 1, "other": 1, "quic": 1}
    assert summary.frames == 0


def test_http1_with_its_bytes_is_recorded_as_messages(tmp_path: Path) -> None:
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    log = Log()
    log.add("SOCKET_ALIVE", 20, phase=1)
    log.add("TCP_CONNECT", 20, phase=2, local_address="10.0.0.2:40000",
            remote_address="192.0.2.7:443")
    log.add("SSL_CONNECT", 20, phase=1)
    log.add("SSL_CONNECT", 20, phase=2, cipher_suite=4865, next_proto="http/1.1",
            version="TLS 1.3")
    for name, data in (
            ("SENT", b"GET /old HTTP/1.1\r\nHost: legacy.test\r\n\r\n"),
            ("RECEIVED", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc"),
            ("RECEIVED", b"\r\n0\r\n\r\n"),
            ("SENT", b"GET /next HTTP/1.1\r\nHost: legacy.test\r\n\r\n"),
            ("RECEIVED", b"HTTP/1.1 304 Not Modified\r\n\r\n")):
        log.add(f"SSL_SOCKET_BYTES_{name}", 20, byte_count=len(data),
                bytes=base64.b64encode(data).decode())
    log.add("SOCKET_ALIVE", 20, phase=2)
    summary, out = imported(log.text(), tmp_path)
    assert summary.connections == {"http1": 1} and summary.http1_messages == 4
    with CaptureReader(out) as reader:
        records = list(reader.records())
    (meta,) = [r.json() for r in records if r.type == RecordType.CONNECTION]
    assert meta["protocol"] == "http/1.1" and meta["target"] == "legacy.test:443"
    assert meta["client_tls"]["alpn"] == "http/1.1"
    raw = b"".join(r.body for r in records if r.type == RecordType.RAW and not r.direction)
    assert raw.startswith(b"GET /old") and raw.endswith(b"legacy.test\r\n\r\n")
    cap = CaptureFile(out)
    try:
        session = Session(cap)
        load(session, cap)
        heads = [h.split("\r\n", 1)[0] for _, _, h in session.conns[1].http1]
    finally:
        cap.close()
    assert heads == ["GET /old HTTP/1.1", "HTTP/1.1 200 OK", "GET /next HTTP/1.1",
                     "HTTP/1.1 304 Not Modified"]
    # HAR has them as HTTP/1.1 entries, bodies without their chunked framing.
    import jsonschema

    har_path = tmp_path / "h1.har"
    assert main(["export", str(out), "--format", "har", "-o", str(har_path)]) == 0
    har = json.loads(har_path.read_text())
    schema = json.loads((Path(__file__).parent / "har12.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(har)
    got = [(e["request"]["method"], e["request"]["url"], e["request"]["httpVersion"],
            e["response"]["status"], e["response"]["statusText"],
            e["response"]["content"].get("text"), e["_h2scope"]["request_number"])
           for e in har["log"]["entries"]]
    assert got == [("GET", "https://legacy.test/old", "HTTP/1.1", 200, "OK", "abc", 1),
                   ("GET", "https://legacy.test/next", "HTTP/1.1", 304, "Not Modified", None, 2)]
    first = har["log"]["entries"][0]
    assert first["request"]["headers"] == [{"name": "Host", "value": "legacy.test"}]
    assert first["response"]["headersSize"] == len(b"HTTP/1.1 200 OK\r\nContent-Type: "
                                                   b"text/plain\r\nTransfer-Encoding: "
                                                   b"chunked\r\n\r\n")


def test_the_import_command_reads_a_gzipped_net_log_and_reports(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = Log()
    sent = h2_socket(log)
    src = tmp_path / "net-export.json.gz"
    src.write_bytes(gzip.compress(log.text().encode()))
    out = tmp_path / "chrome.h2scope"
    assert main(["import", str(src), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"imported 1 HTTP/2 connection, {sent} frames, from the net log of Chromium " \
        "156.0.1" in said
    assert out.stat().st_mode & 0o777 == 0o600
    assert len(frames_of(out)) == sent
    # Without raw bytes: rebuilt, and the report says what that means and how to
    # record the frames as sent.
    bare = Log()
    h2_session(bare)
    src2 = tmp_path / "bare.json"
    src2.write_text(bare.text(mode="IncludeSensitive"))
    assert main(["import", str(src2), "-o", str(tmp_path / "bare.h2scope")]) == 0
    said = capsys.readouterr().out
    assert "18 frames" in said and "frames rebuilt from Chrome's HTTP/2 events" in said
    assert "capture mode IncludeSensitive" in said and "Include raw bytes" in said
    # A log with nothing HTTP/2 in it: exit 1, nothing written.
    empty = tmp_path / "empty.json"
    empty.write_text(Log().text())
    assert main(["import", str(empty), "-o", str(tmp_path / "empty.h2scope")]) == 1
    assert "no HTTP/2 connection in the net log" in capsys.readouterr().err
    assert not (tmp_path / "empty.h2scope").exists()
    # A key log makes no sense for a net log; a broken one names the problem.
    assert main(["import", str(src), "--keylog-file", str(src2), "-o",
                 str(tmp_path / "k.h2scope")]) == 2
    # The commands that read captures name the import for a net log.
    assert main(["check", str(src2)]) == 2
    assert f"`h2scope import {src2}`" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"events": []}')
    assert main(["import", str(broken), "-o", str(tmp_path / "b.h2scope")]) == 2
    assert "events come before its constants" in capsys.readouterr().err
    assert not (tmp_path / "b.h2scope").exists()


def test_view_imports_a_net_log_first(tmp_path: Path) -> None:
    import contextlib

    from proxy.commands.view import _capture_of

    log = Log()
    h2_socket(log)
    src = tmp_path / "net.json"
    src.write_text(log.text())
    assert looks_like_netlog(src.read_bytes()[:16])
    args = argparse.Namespace(keylog_file=None, follow=False)
    with contextlib.ExitStack() as stack:
        path = _capture_of(src, args, stack)
        assert path != src and len(frames_of(path)) > 0


def test_rebuilt_header_blocks_need_no_dynamic_table() -> None:
    import hpack

    from proxy.capture.netlog_frames import encode_block

    fields = [(":method", "GET"), (":path", "/"), (":authority", "example.test"),
              ("x-long-name-" + "n" * 200, "v" * 300), ("accept-encoding", "gzip, deflate"),
              ("user-agent", "é ünïcode")]
    block = encode_block(fields)
    decoder = hpack.Decoder()
    assert decoder.decode(block) == fields
    assert len(decoder.header_table.dynamic_entries) == 0  # nothing inserted
    assert block[:2] == bytes((0x82, 0x84))  # :method GET and :path / by static index


def test_the_ui_says_what_a_rebuilt_connection_does_not_have(tmp_path: Path) -> None:
    from ui.model.capture import CaptureFile, load
    from ui.model.detail import hpack as hpack_tab
    from ui.model.session import Session
    from ui.screens.stream import stream_text

    log = Log()
    h2_session(log)
    _, out = imported(log.text(mode="Default"), tmp_path)
    cap = CaptureFile(out)
    try:
        session = Session(cap)
        load(session, cap)
        conn = session.conns[1]
        text = stream_text(session, conn, conn.streams[1]).plain
        table = session.table
        row = next(r for r in range(len(table.type)) if table.type[r] == 1)
        tab = hpack_tab(session, row, table.event(row)).plain
    finally:
        cap.close()
    assert "response body: 1,000 bytes in 1 DATA frame(s), 0 of them kept" in text
    assert "imported without the bytes" in text
    assert tab.startswith("Rebuilt, not as sent") and ":method: GET" in tab


def test_view_follows_a_net_log_as_it_is_written(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import time

    from proxy.cli import UsageError
    from proxy.commands import view
    from proxy.commands.view import _capture_of

    log = Log()
    sent = h2_socket(log)
    lines = log.text(close=False).splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"type": 4,' in line
               or line.rstrip(",\n").endswith('"type": 4}'))  # the server's bytes
    src = tmp_path / "net.json"
    src.write_text("".join(lines[:cut]))
    args = argparse.Namespace(keylog_file=None, follow=True)

    def wait_for(out: Path, what: Callable[[list[FrameObserved]], bool]) -> list[FrameObserved]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            frames = frames_of(out) if out.stat().st_size else []
            if what(frames):
                return frames
            time.sleep(0.05)
        raise AssertionError(f"the followed capture has {len(frames_of(out))} frames")

    with contextlib.ExitStack() as stack:
        out = _capture_of(src, args, stack)
        first = wait_for(out, lambda fs: any(f.direction is Direction.C2S for f in fs))
        assert all(f.direction is Direction.C2S for f in first)
        with src.open("a") as f:  # Chrome writes on
            f.write("".join(lines[cut:]))
        assert len(wait_for(out, lambda fs: len(fs) == sent)) == sent
    # Not a net log, or never a whole one: said, not waited for forever.
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    with contextlib.ExitStack() as stack, pytest.raises(UsageError, match="no constants"):
        _capture_of(bad, args, stack)
    stuck = tmp_path / "stuck.json"
    stuck.write_text('{"constants": {"logEventTypes"')
    monkeypatch.setattr(view, "READY_TIMEOUT", 0.3)
    with contextlib.ExitStack() as stack, pytest.raises(UsageError, match="being written"):
        _capture_of(stuck, args, stack)


def test_har_of_a_rebuilt_session_gives_body_sizes_without_bodies(tmp_path: Path) -> None:
    import jsonschema

    log = Log()
    h2_session(log)
    _, out = imported(log.text(mode="Default"), tmp_path)
    har_path = tmp_path / "out.har"
    assert main(["export", str(out), "--format", "har", "-o", str(har_path)]) == 0
    har = json.loads(har_path.read_text())
    schema = json.loads((Path(__file__).parent / "har12.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(har)
    entries = {e["request"]["url"].rsplit("/", 1)[1]: e for e in har["log"]["entries"]}
    response = entries["a"]["response"]
    assert response["bodySize"] == 1000 and response["content"]["size"] == 1000
    assert "only 0 of the body's 1000 bytes were kept" in response["content"]["comment"]
    assert entries["upload"]["request"]["bodySize"] == 300


_ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20)
    | st.sampled_from(["True", "8 (CANCEL)", "[::1]:443", "AAAABAEAAAAA", "h2", "1",
                       "UFJJICogSFRUUC8yLjANCg0KU00NCg0K", "TLS 1.3"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)
_PARAM_NAMES = ["bytes", "byte_count", "headers", "stream_id", "fin", "size", "delta",
                "settings", "id", "value", "source_dependency", "host", "proxy",
                "local_address", "remote_address", "next_proto", "cipher_suite", "version",
                "certificates", "type", "unique_id", "is_ack", "error_code", "has_priority",
                "weight", "parent_stream_id", "exclusive", "length", "flags", "net_error",
                "description", "promised_stream_id", "last_accepted_stream_id", "debug_data"]
_EVENTS = st.lists(st.fixed_dictionaries({
    "type": st.integers(0, len(TYPES) - 1) | _ANY_VALUE,
    "phase": st.sampled_from([0, 1, 2]) | _ANY_VALUE,
    "source": st.fixed_dictionaries({"id": st.integers(1, 4) | _ANY_VALUE,
                                     "type": st.sampled_from([10, 11, 12]) | _ANY_VALUE}),
    "time": st.integers(0, 10**6).map(str) | _ANY_VALUE,
    "params": st.dictionaries(st.sampled_from(_PARAM_NAMES), _ANY_VALUE, max_size=5),
}), max_size=25)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=_EVENTS, mode=st.sampled_from(["Everything", "Default"]))
def test_any_events_import_without_a_crash(events: list[dict[str, Any]], mode: str,
                                           tmp_path: Path) -> None:
    """Whatever a (damaged, hand-edited, other-version) log's events hold, the
    import reads them to the end: no exception but NetlogError escapes."""
    log = Log()
    log.events = events
    with CaptureWriter(tmp_path / "fuzz.h2scope") as writer:
        try:
            import_netlog(io.StringIO(log.text(mode=mode)), writer)
        except NetlogError:
            pass


@pytest.mark.parametrize("odd", [123, None, [1, "x"], {"id": "x"}, "x", True, -1, 2**70])
def test_every_event_with_odd_params_imports_without_a_crash(odd: object,
                                                             tmp_path: Path) -> None:
    """Each event type, each of its parameters set to a value of the wrong type or
    range, in the middle of a real session — both with and without raw bytes."""
    for mode in ("Everything", "Default"):
        for name in TYPES:
            log = Log()
            h2_socket(log) if mode == "Everything" else h2_session(log)
            source, stype = (7, "SOCKET") if "SESSION" not in name else (8, "HTTP2_SESSION")
            for phase in (0, 1, 2):
                for params in (dict.fromkeys(_PARAM_NAMES, odd),
                               {**dict.fromkeys(_PARAM_NAMES, odd), "type": "1"}):
                    log.events.insert(len(log.events) // 2, {
                        "phase": phase, "source": {"id": source, "type": SOURCES[stype]},
                        "time": "1500", "type": TYPES.index(name), "params": params})
            with CaptureWriter(tmp_path / f"{name}.h2scope") as writer:
                import_netlog(io.StringIO(log.text(mode=mode)), writer)


def test_check_says_a_rebuilt_connections_hpack_figures_are_not_the_wires(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rebuilt block is h2scope's encoding: 'HPACK: 19,748 B on the wire (1.1:1)' read
    as Chrome's compression (12.6:1 in fact). check says so; --json lists them."""
    log = Log()
    h2_session(log)
    _, out = imported(log.text(mode="Default"), tmp_path)
    main(["check", str(out)])
    text = capsys.readouterr().out
    assert "note: every connection rebuilt from a net log without bytes: HPACK sizes and " \
        "frame lengths are of h2scope's own encoding, not the wire's" in text, text
    main(["check", str(out), "--json"])
    assert json.loads(capsys.readouterr().out)["rebuilt_connections"] == [1]
