"""A WebSocket over HTTP/2 (RFC 8441) in the HAR export: Chromium's
_webSocketMessages, valid HAR 1.2; and a capture that cut a payload
(record.max_data_bytes) keeps the messages before the cut and says so."""

from __future__ import annotations

import io
import json
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import jsonschema
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage

from proxy.capture.export_har import write_har
from proxy.capture.replay import replay
from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import Direction

SCHEMA = json.loads((Path(__file__).parent / "har12.schema.json").read_text())
META = {"client": {"ip": "127.0.0.1", "port": 50000}, "target": "chat.example.test:443",
        "server": {"host": "chat.example.test", "ip": "127.0.0.1", "port": 443},
        "mode": "regular", "protocol": "h2"}


def record(path: Path, max_data_bytes: int | None = None) -> None:
    """An h2 client and server (python-hyper), a WebSocket between them (wsproto)."""
    writer = CaptureWriter(path, autoflush=False, max_data_bytes=max_data_bytes)
    tap = RecordingObserver(writer, 1, META, t=1.0)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.local_settings = h2.settings.Settings(client=False, initial_values={
        h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
    ws_client, ws_server = Connection(ConnectionType.CLIENT), Connection(ConnectionType.SERVER)
    clock = [1.0]

    def pump() -> None:
        for _ in range(10):
            c2s, s2c = client.data_to_send(), server.data_to_send()
            if not c2s and not s2c:
                return
            clock[0] += 0.01
            if c2s:
                tap.feed(Direction.C2S, c2s, clock[0])
                for ev in server.receive_data(c2s):
                    if isinstance(ev, h2.events.DataReceived):
                        server.acknowledge_received_data(ev.flow_controlled_length, 1)
            if s2c:
                tap.feed(Direction.S2C, s2c, clock[0])
                client.receive_data(s2c)

    client.initiate_connection()
    server.initiate_connection()
    pump()
    client.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"),
                            (":scheme", "https"), (":path", "/chat"),
                            (":authority", "chat.example.test"), ("sec-websocket-version", "13")])
    pump()
    server.send_headers(1, [(":status", "200")])
    for text in ("first", "second " * 20, "third"):
        client.send_data(1, ws_client.send(TextMessage(data=text)))
        pump()
    server.send_data(1, ws_server.send(BytesMessage(data=b"\x00\xff")))
    pump()
    tap.close(clock[0] + 1, closed_by="client")
    writer.close(fsync=False)


def har(path: Path) -> dict[str, object]:
    out = io.StringIO()
    write_har(replay(path), out)
    doc = json.loads(out.getvalue())
    jsonschema.Draft7Validator(SCHEMA).validate(doc)
    return doc


def test_websocket_messages_are_exported_as_chromium_does(tmp_path: Path) -> None:
    record(tmp_path / "ws.h2scope")
    (entry,) = har(tmp_path / "ws.h2scope")["log"]["entries"]  # type: ignore[index]
    assert entry["_resourceType"] == "websocket"
    assert entry["request"]["method"] == "CONNECT"
    # (by its wss URL, as DevTools names a WebSocket; the :protocol that made the
    # CONNECT an extended one kept among the headers: no pseudo-header is, else)
    assert entry["request"]["url"] == "wss://chat.example.test/chat"
    names = [h["name"] for h in entry["request"]["headers"]]
    assert ":protocol" in names and not [n for n in names if n.startswith(":")
                                         and n != ":protocol"], names
    assert entry["response"]["content"]["size"] == 0
    msgs = entry["_webSocketMessages"]
    assert [(m["type"], m["opcode"], m["data"]) for m in msgs] == [
        ("send", 1, "first"), ("send", 1, "second " * 20), ("send", 1, "third"),
        ("receive", 2, "AP8=")]
    assert msgs[0]["time"] < msgs[1]["time"] < msgs[2]["time"]
    assert "websocket_problems" not in entry["_h2scope"]


def test_a_cut_payload_keeps_the_messages_before_it_and_says_so(tmp_path: Path) -> None:
    record(tmp_path / "cut.h2scope", max_data_bytes=64)  # the second message is longer
    (entry,) = har(tmp_path / "cut.h2scope")["log"]["entries"]  # type: ignore[index]
    msgs = [(m["type"], m["data"]) for m in entry["_webSocketMessages"]]
    assert msgs == [("send", "first"), ("receive", "AP8=")]  # not a garbled "third"
    assert any("not kept" in p for p in entry["_h2scope"]["websocket_problems"])


def test_only_an_extended_connect_is_named_by_a_ws_url() -> None:
    """A malformed GET that carries :protocol websocket is no WebSocket (RFC 8441 §4:
    :protocol belongs to CONNECT): its URL stays https."""
    from types import SimpleNamespace

    from proxy.capture.export_har import _url

    def ex(method: str) -> object:
        fields = {":method": method, ":protocol": "websocket", ":scheme": "https",
                  ":authority": "chat.test", ":path": "/chat"}
        return SimpleNamespace(header=fields.get, authority=lambda: "chat.test",
                               request_headers=tuple(fields.items()))

    assert _url(ex("CONNECT"), {}) == "wss://chat.test/chat"  # type: ignore[arg-type]
    assert _url(ex("GET"), {}) == "https://chat.test/chat"  # type: ignore[arg-type]
