"""``h2scope run --headless --format jsonl``: one JSON object per frame, live, the
same objects ``h2scope export --format jsonl`` writes from a recording of the same
traffic (so a script written against one works on the other). Real peers: curl
and nghttp through the proxy to nghttpd."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from certs.ca import CA_CERT_FILE
from proxy.cli import main
from tests.bench.proxyproc import ProxyProcess
from tests.helpers import procs
from tests.helpers.tls_files import CertFiles

OPENING = {"ConnectionOpened", "TargetChosen", "TlsEstablished", "RelayStarted"}
"""A connection's opening objects: live, printed as they happen; in an export,
where the capture's CONNECTION record is, i.e. once the relay started
(docs/export.md)."""


def assert_same_objects(exported: list[dict], live: list[dict]) -> None:
    """The export writes the live objects: each connection's in the same order, and
    everything but the opening objects in the same order across connections too.
    (Only where a connection opened while another's frames or close went by do
    the two interleave its opening objects differently.)"""
    for conn in {o["conn"] for o in live} | {o["conn"] for o in exported}:
        assert [o for o in exported if o["conn"] == conn] == \
            [o for o in live if o["conn"] == conn], f"connection {conn}"
    assert [o for o in exported if o.get("event") not in OPENING] == \
        [o for o in live if o.get("event") not in OPENING]


@pytest.mark.parametrize("filter_text", [None, "type:HEADERS,DATA status:200"])
def test_live_jsonl_equals_the_export_of_its_recording(
        tmp_path: Path, docroot: Path, capsys: pytest.CaptureFixture[str],
        filter_text: str | None) -> None:
    live = tmp_path / "live.jsonl"
    extra = ["--format", "jsonl", "--record", "rec.h2scope"]
    if filter_text:
        extra += ["--filter", filter_text]
    with procs.nghttpd(docroot) as sport:
        proxy = ProxyProcess(confdir=tmp_path / "conf", mode=f"reverse:http://127.0.0.1:{sport}",
                             extra=extra, cwd=tmp_path, stdout=live).start()
        try:
            url = f"http://127.0.0.1:{proxy.port}"
            got = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                             f"{url}/index.html", "-o", str(tmp_path / "page")])
            assert got.returncode == 0, got.stderr
            got = procs.run([procs.require("nghttp"), "-n", "-m", "3", f"{url}/big.bin",
                             f"{url}/nothing-here"])
            assert got.returncode == 0, got.stderr
        finally:
            status = proxy.stop()
    assert status == 0, list(proxy.stderr_lines)
    objs = [json.loads(line) for line in live.read_text().splitlines()]
    assert {o["conn"] for o in objs} == {1, 2}
    statuses = {h["value"] for o in objs if o.get("type") == "HEADERS"
                for h in o["block"]["headers"] if h["name"] == ":status"}
    if filter_text is None:
        assert {"SETTINGS", "HEADERS", "DATA"} <= {o.get("type") for o in objs}
        assert statuses == {"200", "404"}
        events = [(o["conn"], o["event"]) for o in objs if "event" in o]
        assert ("SettingsAcknowledged" in {e for _, e in events})
        for conn in (1, 2):  # each connection from its open to its close
            mine = [e for c, e in events if c == conn]
            assert mine[:2] == ["ConnectionOpened", "RelayStarted"] \
                and mine[-1] == "ConnectionClosed", mine
    else:  # the filter ran live: 200 responses' HEADERS and DATA, and what they caused
        assert {o.get("type") for o in objs if "event" not in o} == {"HEADERS", "DATA"}
        # (the stalls the kept DATA caused, and their reopenings: no other event)
        assert {o["event"] for o in objs if "event" in o} <= {"FlowControlStalled",
                                                            "FlowControlResumed"}
        assert statuses == {"200"}
        assert sum(o["length"] for o in objs if o.get("type") == "DATA") \
            == 3 * len((docroot / "big.bin").read_bytes()) + len(
                (docroot / "index.html").read_bytes())
    args = ["export", str(tmp_path / "rec.h2scope"), "--format", "jsonl"]
    assert main(args + (["--filter", filter_text] if filter_text else [])) == 0
    exported = capsys.readouterr().out
    if filter_text is None:
        assert_same_objects([json.loads(ln) for ln in exported.splitlines()], objs)
        return
    # Offline every stream's status is known from the start: the export also keeps
    # the request HEADERS of the 200 streams, which live came before their status.
    lines = live.read_text().splitlines()
    extra = [json.loads(ln) for ln in exported.splitlines() if ln not in lines]
    assert [ln for ln in exported.splitlines() if ln in lines] == lines
    assert extra and {(o["type"], o["direction"]) for o in extra} == {("HEADERS", "c2s")}
    assert {(o["conn"], o["stream_id"]) for o in extra} == {
        (o["conn"], o["stream_id"]) for o in objs if "event" not in o}


def test_live_jsonl_of_an_intercepted_connection_equals_its_export(
        tmp_path: Path, docroot: Path, origin_cert: CertFiles,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Through CONNECT with TLS on both legs, the connection's objects — opened,
    CONNECT target, each TLS leg (versions, ALPN, certificate, the ClientHello),
    relay, close — are written live, and the export of the recording writes the
    same lines."""
    live = tmp_path / "live.jsonl"
    confdir = tmp_path / "conf"
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport, \
            ProxyProcess(confdir=confdir, mode="regular", upstream_ca=origin_cert.cert,
                         extra=["--format", "jsonl", "--record", "rec.h2scope"],
                         cwd=tmp_path, stdout=live) as proxy:
        got = procs.run([procs.require("curl"), "-sS", "--http2", "-x",
                         f"http://127.0.0.1:{proxy.port}",
                         "--cacert", str(confdir / CA_CERT_FILE),
                         f"https://localhost:{sport}/index.html", "-o", os.devnull])
        assert got.returncode == 0, got.stderr
        deadline = time.monotonic() + 10  # (the close, seen, before h2scope stops)
        while '"ConnectionClosed"' not in live.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.stop() == 0, list(proxy.stderr_lines)
    objs = [json.loads(line) for line in live.read_text().splitlines()]
    conn = [o for o in objs if "event" in o and o["event"] in {
        "ConnectionOpened", "TargetChosen", "TlsEstablished", "RelayStarted",
        "ConnectionClosed"}]
    assert [(o["event"], o.get("leg")) for o in conn] == [
        ("ConnectionOpened", None), ("TargetChosen", None), ("TlsEstablished", "server"),
        ("TlsEstablished", "client"), ("RelayStarted", None), ("ConnectionClosed", None)]
    opened, target, server, client, relay, closed = conn
    assert opened["mode"] == "regular" and opened["client"]["ip"] == "127.0.0.1"
    assert (target["via"], target["target"], target["intercept"]) == (
        "CONNECT", f"localhost:{sport}", True)
    assert server["alpn"] == client["alpn"] == "h2" and server["version"].startswith("TLS")
    assert "localhost" in server["certificate"]["sans"]
    assert client["client_hello"]["alpn"] == ["h2", "http/1.1"]
    assert (relay["protocol"], relay["server_ip"]) == ("h2", "127.0.0.1")
    assert closed["bytes_s2c"] > 0 and closed["closed_by"] in {"client", "server"}
    assert main(["export", str(tmp_path / "rec.h2scope"), "--format", "jsonl"]) == 0
    assert capsys.readouterr().out == live.read_text()


def test_live_jsonl_of_http11_and_a_websocket_upgrade_equals_its_export(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Plain HTTP/1.1 through the explicit proxy, then a WebSocket upgrade on another
    connection: the live objects (relay, messages, the WebSocket's messages) are the
    export's, line for line."""
    import socket

    from tests.helpers.h1servers import (
        http_server,
        recv_exactly,
        recv_until,
        websocket_echo_server,
        ws_frame,
        ws_upgrade,
    )

    live = tmp_path / "live.jsonl"
    with http_server() as hport, websocket_echo_server() as wport, \
            ProxyProcess(confdir=tmp_path / "conf", mode="regular",
                         extra=["--format", "jsonl", "--record", "rec.h2scope"],
                         cwd=tmp_path, stdout=live) as proxy:
        got = procs.run([procs.require("curl"), "-sS", "-x", f"http://127.0.0.1:{proxy.port}",
                         f"http://127.0.0.1:{hport}/a"])
        assert got.returncode == 0, got.stderr
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(ws_upgrade(wport))
            recv_until(sock, b"\r\n\r\n")
            sock.sendall(ws_frame(b"hi"))
            recv_exactly(sock, len(ws_frame(b"hi")))
        deadline = time.monotonic() + 10
        while live.read_text().count('"ConnectionClosed"') < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.stop() == 0, list(proxy.stderr_lines)
    objs = [json.loads(line) for line in live.read_text().splitlines()]
    events = [(o["conn"], o["event"], o.get("protocol")) for o in objs]
    assert (1, "RelayStarted", "http/1.1") in events and (2, "RelayStarted", "http/1.1") in events
    assert [e for e in events if e[1] == "RelayStarted"] == [
        (1, "RelayStarted", "http/1.1"), (2, "RelayStarted", "http/1.1")]  # (once each)
    assert [(o["direction"], o["websocket"][0]["text"]) for o in objs
            if o.get("event") == "WebSocketMessage"] == [("c2s", "hi"), ("s2c", "hi")]
    assert not [o for o in objs if "event" in o and "type" in o]  # (select(.type): frames)
    assert main(["export", str(tmp_path / "rec.h2scope"), "--format", "jsonl"]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for o in objs:  # (what only the live relay knows, documented as live only)
        if o.get("event") == "Http1MessageObserved":
            for key in ("head_size", "body_size", "duration"):
                del o[key]
    assert_same_objects(exported, objs)
