"""WebSockets over HTTP/2 (RFC 8441): headless Chromium opens a wss WebSocket on its
h2 connection to an origin that advertises SETTINGS_ENABLE_CONNECT_PROTOCOL,
through the proxy. The extended CONNECT passes, and h2scope reads the
WebSocket messages inside the stream's DATA frames, both ways — Chromium's
permessage-deflate included."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.headless import HeadlessPrinter
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from proxy.websocket import Deflate, is_websocket, messages
from tests.helpers.devtools import Browser
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles
from tests.integration.conftest import Served
from tests.integration.test_proxy_chromium import spki_hash
from ui.model.capture import CaptureFile, load
from ui.model.detail import decoded
from ui.model.session import Session
from ui.screens.stream import stream_text


@pytest.fixture
def ws_origin(origin_cert: CertFiles) -> Iterator[ServerThread]:
    server = ServerThread(origin_cert.cert, origin_cert.key, websocket=True)
    try:
        yield server
    finally:
        server.close()


def page_output(url: str, ca_cert: Path, proxy: ProxyThread | None = None) -> str:
    """The text the ws.html page shows once its WebSocket has had its say, from
    Chromium through ``proxy`` (or directly), trusting ``ca_cert`` by its SPKI hash.
    Polled over DevTools: the page's load event is no signal for a WebSocket. ''
    is not an answer either: the parser has made the element but not yet its text
    (seen once on a loaded machine)."""
    via = [f"--proxy-server=http://127.0.0.1:{proxy.port()}"] if proxy is not None else []
    with Browser([*via,
                  "--proxy-bypass-list=<-loopback>;*.google.com;*.googleapis.com;*.gstatic.com",
                  f"--ignore-certificate-errors-spki-list={spki_hash(ca_cert)}"]) as browser:
        page = browser.open(url)
        return str(browser.wait_for(page, "document.getElementById('out')?.textContent",
                                    lambda text: text not in (None, "", "waiting")))


def test_chromium_websocket_over_h2_is_relayed_and_its_messages_read(
        make_proxy: Callable[..., ProxyThread], ws_origin: ServerThread,
        tmp_path: Path, serve: Served, origin_cert: CertFiles,
        capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "ws.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    live, live_jsonl = io.StringIO(), io.StringIO()
    proxy = make_proxy(sinks=(recorder, HeadlessPrinter(live),
                              HeadlessPrinter(live_jsonl, jsonl=True)))
    out = page_output(f"https://localhost:{ws_origin.port}/ws.html", proxy.ca_cert, proxy)
    assert out == "echo: hello h2scope"
    frames: list[FrameObserved] = proxy.wait_for(
        lambda: [e for e in proxy.events(FrameObserved) if e.block is not None
                 and is_websocket(e.block.headers)], what="the extended CONNECT")
    connect = frames[0]
    sid = connect.frame.stream_id
    request = dict(connect.block.headers)  # type: ignore[union-attr]
    assert request[":method"] == "CONNECT" and request[":path"] == "/chat"
    assert request[":scheme"] == "https"

    def ws_frames() -> list[FrameObserved]:
        return [e for e in proxy.events(FrameObserved) if e.frame.stream_id == sid]

    stream = proxy.wait_for(lambda: (s := ws_frames()) and any(
        e.direction is Direction.S2C and e.frame.type == 0 for e in s) and s,
        what="the echo's DATA")
    response = next(dict(e.block.headers) for e in stream
                    if e.direction is Direction.S2C and e.block is not None)
    assert response[":status"] == "200"
    deflate = Deflate.from_header(response.get("sec-websocket-extensions"))
    data = [(int(e.direction), e.t, e.frame.data) for e in stream  # type: ignore[attr-defined]
            if e.frame.type == 0]
    got, notes = messages(data, deflate)
    assert notes == []
    summary = [(m.direction, m.kind, m.payload) for m in got]
    assert (0, "text", b"hello h2scope") in summary
    assert (0, "binary", b"\x01\x02\x03") in summary
    assert (1, "text", b"echo: hello h2scope") in summary
    assert all(m.problems == () for m in got), [m.problems for m in got]
    if deflate is not None:  # Chromium offers permessage-deflate; the origin accepts it
        assert any(m.compressed for m in got if m.direction == 0)
    # Chromium with an RFC 8441 origin: nothing to flag but GREASE.
    flagged = [(f.code, f.message) for e in proxy.events(FrameObserved) for f in e.findings
               if f.severity.name != "INFO"]
    assert flagged == []
    proxy.wait_closed()
    proxy.close()
    recorder.close()
    recorded_views_show_the_messages(capture)
    # The headless log prints each message under the DATA frame that completes it,
    # as the text export of the recording does.
    printed = [ln.strip() for ln in live.getvalue().splitlines() if "websocket " in ln]
    assert "websocket → text 'hello h2scope'  (deflated 15→13)" in printed
    assert "websocket ← text 'echo: hello h2scope'  (deflated 21→19)" in printed
    assert main(["export", str(capture), "--format", "text", "-o", str(tmp_path / "ws.txt")]) == 0
    exported = [ln.strip() for ln in (tmp_path / "ws.txt").read_text().splitlines()
                if "websocket " in ln]
    assert exported == printed
    # check: the WebSocket is a tunnel, not a slow stream, and breaks no RFC 6455 rule.
    capsys.readouterr()
    main(["check", str(capture), "--json", "--fail-on", "none"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["websockets"]["http2"] == 1 and summary["tunnels"]["websocket"] == 1
    assert not [s for s in summary["slowest_streams"] if s["stream"] == sid]
    assert not [f for f in summary["findings"] if f["code"].startswith("websocket-")]
    # And in JSON Lines, live and exported alike: the messages under "websocket".
    jsonl = tmp_path / "ws.jsonl"
    assert main(["export", str(capture), "--format", "jsonl", "-o", str(jsonl)]) == 0

    def ws_objects(text: str) -> list[object]:
        return [d["websocket"] for d in map(json.loads, text.splitlines()) if "websocket" in d]

    objects = ws_objects(live_jsonl.getvalue())
    assert objects == ws_objects(jsonl.read_text())
    assert [{"type": "text", "opcode": 1, "text": "hello h2scope", "wire_size": 15,
             "compressed": True}] in objects
    # Replayed as fast as possible: the extended CONNECT waits for the server's
    # SETTINGS (RFC 8441 §4), the WebSocket's frames for the 200, and Chromium's close
    # for the echo it answered (sent at once, the close had come before the echo,
    # and a proxy in front of a WebSocket server had refused the tunnel: 502).
    ws_conn = connect_conn(capture)
    from proxy.replay.source import load_capture

    (plan,) = load_capture(capture, conn=ws_conn).plans
    ws_sends = [x for x in plan.sends if x.frame_type == 0 and x.stream_id == sid]
    assert ws_sends[0].after == 0 and ws_sends[-1].after > 0  # (the close: after the echo)
    for mode in ("verbatim", "reencode"):
        capsys.readouterr()
        code = main(["replay", str(capture), "--target", f"https://localhost:{ws_origin.port}",
                     "--upstream-ca", str(origin_cert.cert), "--conn", str(ws_conn),
                     "--mode", mode, "--speed", "0", "--timeout", "5"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "(CONNECT /chat): 200" in out
    # Served back: `h2scope serve` advertises extended CONNECT for a recording that
    # has one, and a browser gets the recorded page and the recorded echo.
    url = serve(str(capture))
    port = url.rsplit(":", 1)[1]
    for _attempt in range(3):
        before = len(serve.log(url))
        out = page_output(f"https://localhost:{port}/ws.html", proxy.ca_cert)
        # Chromium opens a WebSocket over h2 only on a connection whose SETTINGS it
        # has read with ENABLE_CONNECT_PROTOCOL; when its pool offers a spare
        # connection whose SETTINGS are not read yet, it asks over HTTP/1.1 instead,
        # which serve refuses (and logs). That is the browser's choice: ask again.
        if out == "echo: hello h2scope":
            break
        try:
            serve.wait_log(url, "without HTTP/2", timeout=3, since=before)
        except AssertionError:
            break
    assert out == "echo: hello h2scope", "\n".join(serve.log(url))


def connect_conn(capture: Path) -> int:
    """The connection that carried the extended CONNECT."""
    from proxy.capture.replay import replay_observer

    return next(c for c, ev in replay_observer(capture) if isinstance(ev, FrameObserved)
                and ev.block is not None and is_websocket(ev.block.headers))


def recorded_views_show_the_messages(capture: Path) -> None:
    """The recording: the UI's stream view and the HAR export list the messages."""
    assert main(["export", str(capture), "--format", "har", "-o", str(capture) + ".har"]) == 0
    doc = json.loads(Path(str(capture) + ".har").read_text())
    entry = next(e for e in doc["log"]["entries"] if e.get("_resourceType") == "websocket")
    assert entry["request"]["method"] == "CONNECT"
    sent = [(m["type"], m["opcode"], m["data"]) for m in entry["_webSocketMessages"]]
    assert ("send", 1, "hello h2scope") in sent
    assert ("send", 2, "AQID") in sent  # bytes 1 2 3, base64
    assert ("receive", 1, "echo: hello h2scope") in sent
    cap = CaptureFile(capture)
    try:
        session = Session(cap)
        load(session, cap)
        # (the page's connection, whichever number it got: Chromium may open
        # another one through the proxy first)
        conn, stream = next((c, st) for c in session.conns.values()
                            for st in c.streams.values() if is_websocket(st.request_headers))
        text = stream_text(session, conn, stream).plain
        table = session.table
        per_frame = [line for row in stream.rows if table.type[row] == 0
                     for line in decoded(session, row, table.event(row)).plain.splitlines()
                     if line.startswith("websocket ")]
    finally:
        cap.close()
    assert "WebSocket messages (RFC 8441 extended CONNECT, RFC 6455 framing)" in text
    assert "permessage-deflate (RFC 7692)" in text
    assert "→ text 'hello h2scope'  (deflated" in text
    assert "→ binary 3 bytes 01 02 03" in text
    assert "← text 'echo: hello h2scope'" in text
    # The detail pane of each DATA frame names the messages it completes.
    assert any(line.startswith("websocket   text 'hello h2scope'") for line in per_frame)
    assert any("close 1000 normal closure 'done'" in line for line in per_frame)
