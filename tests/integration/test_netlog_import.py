"""A Chrome net log recorded by headless Chromium, imported.

Chromium loads a page with 20 subresources from nghttpd over TLS h2, logging
with raw bytes (``--net-log-capture-mode=Everything``). ``h2scope import``
turns the log into a capture, and what h2scope decodes from the raw bytes is
checked against what Chromium itself logged it had sent and received: every
header block, name and value, on the same stream — Chrome's HPACK and
h2scope's reading the same bytes. The same page logged in the default mode
(no raw bytes) is refused with the way to record it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.capture.format import RecordType
from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay
from proxy.cli import main
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.devtools import Browser
from tests.helpers.tls_files import CertFiles
from tests.integration.test_proxy_chromium import (
    MARKER,
    make_site,
    max_concurrent_streams,
    spki_hash,
)

pytestmark = pytest.mark.peer


def load_with_net_log(site: Path, cert: CertFiles, log: Path, *mode: str) -> None:
    with procs.nghttpd(site, cert=cert.cert, key=cert.key) as port, \
            Browser([f"--ignore-certificate-errors-spki-list={spki_hash(cert.cert)}",
                     f"--log-net-log={log}", *mode]) as browser:
        page = browser.open(f"https://localhost:{port}/index.html")
        browser.wait_for(page, "document.getElementById('out')?.textContent",
                         lambda text: text == MARKER)
    # Browser.close lets Chromium finish the log (its closing brackets).


def chrome_header_blocks(log: Path) -> list[tuple[str, int, list[tuple[str, str]]]]:
    """(direction, stream, headers) of every HEADERS Chromium logged sending or receiving."""
    doc = json.loads(log.read_text())
    names = {v: k for k, v in doc["constants"]["logEventTypes"].items()}
    out = []
    for e in doc["events"]:
        name = names[e["type"]]
        if name in ("HTTP2_SESSION_SEND_HEADERS", "HTTP2_SESSION_RECV_HEADERS"):
            fields = [(h[:h.index(": ", 1)], h[h.index(": ", 1) + 2:])
                      for h in e["params"]["headers"]]
            out.append(("→" if "SEND" in name else "←", int(e["params"]["stream_id"]), fields))
    return out


def test_chromium_net_log_with_raw_bytes_imports_every_frame(
        tmp_path: Path, origin_cert: CertFiles) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_site(site)
    log = tmp_path / "net.json"
    load_with_net_log(site, origin_cert, log, "--net-log-capture-mode=Everything")
    capture = tmp_path / "chrome.h2scope"
    assert main(["import", str(log), "-o", str(capture)]) == 0
    frames = [ev for item in replay(capture) for ev in item.events
              if isinstance(ev, FrameObserved)]
    ours = [("→" if ev.direction is Direction.C2S else "←", ev.frame.stream_id,
             [tuple(h) for h in ev.block.headers]) for ev in frames if ev.block is not None]
    chrome = chrome_header_blocks(log)
    assert len(chrome) >= 42  # the page, 20 subresources (maybe a favicon): both ways
    assert sorted(ours) == sorted(chrome)
    paths = {dict(h)[":path"] for d, _, h in ours if d == "→"}
    assert {"/index.html", "/img7.png", "/style5.css", "/script5.js"} <= paths
    assert max_concurrent_streams(frames) > 1
    assert not [f for ev in frames for f in ev.findings if f.severity.name == "ERROR"]
    with CaptureReader(capture) as reader:
        metas = [r.json() for r in reader.records() if r.type == RecordType.CONNECTION]
    (meta,) = [m for m in metas if m["target"].startswith("localhost:")]
    tls = meta["client_tls"]
    assert tls["alpn"] == "h2" and tls["version"] == "TLSv1.3"
    assert tls["client_hello"]["grease"] and tls["client_hello"]["sni"] == "localhost"
    assert "localhost" in tls["certificate"]["sans"]


def test_a_net_log_without_raw_bytes_is_refused_with_the_way_to_record_it(
        tmp_path: Path, origin_cert: CertFiles, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_site(site)
    log = tmp_path / "net.json"
    load_with_net_log(site, origin_cert, log)  # Chromium's default capture mode
    assert main(["import", str(log), "-o", str(tmp_path / "x.h2scope")]) == 1
    err = capsys.readouterr().err
    assert "no HTTP/2 connection with its bytes in the net log of Chromium" in err
    assert "--net-log-capture-mode=Everything" in err
