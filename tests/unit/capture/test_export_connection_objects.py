"""The JSON Lines export writes each connection's records as objects (opened, the
target, TLS legs, an h2c upgrade, HTTP/1.x messages, errors, losses, the close),
and the text export says the h2c upgrade as the live log does."""

from __future__ import annotations

import io
import json
from pathlib import Path

from proxy.capture.export_text import write_jsonl, write_text
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.filter import compile_filter
from proxy.observe.enums import Direction

_OPENED = 1000.0


def _capture(path: Path) -> Path:
    with CaptureWriter(path, autoflush=False) as w:
        w.connection(1, {"client": {"ip": "127.0.0.1", "port": 5001}, "mode": "regular",
                         "target": "h1.test:80", "via": "HTTP", "intercept": True,
                         "target_at": _OPENED + 0.001, "server": {"host": "h1.test",
                                                                    "ip": "10.0.0.1"},
                         "protocol": "http/1.1", "opened": _OPENED}, t=1.0,
                     wall=_OPENED + 0.002)
        w.http1(1, Direction.C2S, b"GET /a HTTP/1.1\r\nHost: h1.test\r\n\r\n", t=1.1,
                wall=_OPENED + 0.003)
        w.http1(1, Direction.S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", t=1.2,
                wall=_OPENED + 0.004, body_truncated=True)
        w.lost(1, count=3, reason="packets missing", t=1.25, wall=_OPENED + 0.0045)
        w.close_connection(1, t=1.3, closed_by="server", wall=_OPENED + 0.005,
                           details={"reason": "server closed the connection",
                                    "bytes_c2s": 35, "bytes_s2c": 40,
                                    "errors": [{"stage": "http1", "message": "cut short",
                                                "hint": None}]})
        w.connection(2, {"client": {"ip": "127.0.0.1", "port": 5002},
                         "mode": "reverse:http://127.0.0.1:8080", "target": "127.0.0.1:8080",
                         "protocol": "h2c", "opened": _OPENED + 0.01}, t=2.0,
                     wall=_OPENED + 0.01)
        w.h2c_upgrade(2, http2_settings=b"\x00\x03\x00\x00\x00\x64",
                      request_headers=[(":method", "GET"), (":path", "/up")], t=2.1,
                      wall=_OPENED + 0.011)
    return path


def test_jsonl_export_writes_every_connection_record_as_objects(tmp_path: Path) -> None:
    out = io.StringIO()
    write_jsonl(replay(_capture(tmp_path / "c.h2scope")), out)
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(o["conn"], o["event"]) for o in objs] == [
        (1, "ConnectionOpened"), (1, "TargetChosen"), (1, "RelayStarted"),
        (1, "Http1MessageObserved"), (1, "Http1MessageObserved"), (1, "Lost"),
        (1, "ProxyErrorRaised"), (1, "ConnectionClosed"),
        (2, "ConnectionOpened"), (2, "RelayStarted"), (2, "H2cUpgraded")]
    opened, target, relay, request, response, lost, error, closed = objs[:8]
    # each at its own time: opened and target from the metadata, the rest their records'
    assert [o["wall"] for o in (opened, target, relay)] == [
        _OPENED, _OPENED + 0.001, _OPENED + 0.002]
    assert opened == {"conn": 1, "wall": _OPENED, "event": "ConnectionOpened",
                      "client": {"ip": "127.0.0.1", "port": 5001}, "mode": "regular"}
    assert (target["target"], target["via"], target["intercept"]) == ("h1.test:80", "HTTP",
                                                                      True)
    assert (relay["protocol"], relay["server_ip"]) == ("http/1.1", "10.0.0.1")
    assert (request["direction"], request["start_line"], request["headers"],
            request["complete"]) == ("c2s", "GET /a HTTP/1.1", [["Host", "h1.test"]], True)
    assert (response["direction"], response["complete"]) == ("s2c", False)
    assert (lost["count"], lost["unit"], lost["reason"]) == (3, "records", "packets missing")
    assert (error["stage"], error["message"]) == ("http1", "cut short")
    assert (closed["closed_by"], closed["bytes_c2s"], closed["bytes_s2c"]) == ("server", 35, 40)
    upgraded = objs[-1]
    assert (upgraded["request_headers"], upgraded["http2_settings_hex"]) == (
        [[":method", "GET"], [":path", "/up"]], "000300000064")


def test_a_filter_or_a_stream_keeps_only_the_problems(tmp_path: Path) -> None:
    path = _capture(tmp_path / "c.h2scope")
    out = io.StringIO()
    write_jsonl(replay(path), out, keep=compile_filter("type:DATA"))
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == [
        "Lost", "ProxyErrorRaised"]
    out = io.StringIO()
    write_jsonl(replay(path), out, stream=1)  # (stream 1's request from the h2c upgrade)
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == [
        "H2cUpgraded"]
    out = io.StringIO()
    write_jsonl(replay(path), out, stream=3)
    assert out.getvalue() == ""


def test_text_export_says_the_h2c_upgrade(tmp_path: Path) -> None:
    out = io.StringIO()
    write_text(replay(_capture(tmp_path / "c.h2scope")), out)
    assert "#2   * upgraded to h2c: stream 1 carries GET /up, HTTP2-Settings: " \
        "MAX_CONCURRENT_STREAMS=100" in out.getvalue()
