"""A Chrome net log recorded by headless Chromium, imported.

Chromium loads a page with 20 subresources from nghttpd over TLS h2, logging
with raw bytes (``--net-log-capture-mode=Everything``). ``h2scope import``
turns the log into a capture, and what h2scope decodes from the raw bytes is
checked against what Chromium itself logged it had sent and received: every
header block, name and value, on the same stream — Chrome's HPACK and
h2scope's reading the same bytes. The frames rebuilt from the same log's
session events (as for a log without raw bytes) are checked against those
decoded from the bytes; and a log in Chrome's default mode is imported that
way.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.capture.format import RecordType
from proxy.capture.netlog_import import import_netlog
from proxy.capture.reader import CaptureReader
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.devtools import Browser
from tests.helpers.proxy_thread import ProxyThread
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


def frames_in(capture: Path) -> list[FrameObserved]:
    return [ev for item in replay(capture) for ev in item.events
            if isinstance(ev, FrameObserved)]


def frames_by_conn(capture: Path) -> dict[int, list[FrameObserved]]:
    """Each connection's frames. Chromium may open more than one connection to the
    origin (a spare one it closes unused, or one per credentials mode), so a check
    on streams is made per connection."""
    out: dict[int, list[FrameObserved]] = {}
    for item in replay(capture):
        for ev in item.events:
            if isinstance(ev, FrameObserved):
                out.setdefault(item.record.conn_id, []).append(ev)
    return out


def peak_concurrency(capture: Path) -> int:
    return max(max_concurrent_streams(fs) for fs in frames_by_conn(capture).values())


def shape(frames: list[FrameObserved]) -> collections.Counter[object]:
    """Each frame's direction, type, flags, stream, DATA length and headers."""
    return collections.Counter(
        (ev.direction, ev.frame.type, ev.frame.flags, ev.frame.stream_id,
         ev.frame.length if ev.frame.type == 0 else None,
         tuple(ev.block.headers) if ev.block is not None else None) for ev in frames)


def test_chromium_net_log_with_raw_bytes_imports_every_frame(
        tmp_path: Path, origin_cert: CertFiles) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_site(site)
    log = tmp_path / "net.json"
    load_with_net_log(site, origin_cert, log, "--net-log-capture-mode=Everything")
    capture = tmp_path / "chrome.h2scope"
    assert main(["import", str(log), "-o", str(capture)]) == 0
    frames = frames_in(capture)
    ours = [("→" if ev.direction is Direction.C2S else "←", ev.frame.stream_id,
             [tuple(h) for h in ev.block.headers]) for ev in frames if ev.block is not None]
    chrome = chrome_header_blocks(log)
    assert len(chrome) >= 42  # the page, 20 subresources (maybe a favicon): both ways
    assert sorted(ours) == sorted(chrome)
    paths = {dict(h)[":path"] for d, _, h in ours if d == "→"}
    assert {"/index.html", "/img7.png", "/style5.css", "/script5.js"} <= paths
    assert peak_concurrency(capture) > 1
    assert not [f for ev in frames for f in ev.findings if f.severity.name == "ERROR"]
    with CaptureReader(capture) as reader:
        metas = [r.json() for r in reader.records() if r.type == RecordType.CONNECTION]
    origin = [m for m in metas if m["target"].startswith("localhost:")]
    assert origin and len(origin) == len(metas)
    for meta in origin:
        tls = meta["client_tls"]
        assert tls["alpn"] == "h2" and tls["version"] == "TLSv1.3"
        assert tls["client_hello"]["grease"] and tls["client_hello"]["sni"] == "localhost"
        assert "localhost" in tls["certificate"]["sans"]
    # The same log's session events, rebuilt into frames as for a log without raw
    # bytes: the same frames (type, flags, stream, DATA size, header list).
    rebuilt = tmp_path / "rebuilt.h2scope"
    with CaptureWriter(rebuilt) as writer, log.open() as f:
        assert import_netlog(f, writer, rebuild=True).rebuilt
    assert shape(frames_in(rebuilt)) == shape(frames)


def test_a_net_log_in_the_default_mode_is_imported_from_its_events(
        tmp_path: Path, origin_cert: CertFiles, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_site(site)
    log = tmp_path / "net.json"
    load_with_net_log(site, origin_cert, log)  # Chromium's default capture mode
    capture = tmp_path / "default.h2scope"
    assert main(["import", str(log), "-o", str(capture)]) == 0
    said = capsys.readouterr().out
    assert "frames rebuilt from Chrome's HTTP/2 events" in said and "Include raw bytes" in said
    conns = frames_by_conn(capture)
    ours = [(conn, "→" if ev.direction is Direction.C2S else "←", ev.frame.stream_id,
             [tuple(h) for h in ev.block.headers])
            for conn, frames in conns.items() for ev in frames if ev.block is not None]
    assert sorted(o[1:] for o in ours) == sorted(chrome_header_blocks(log))
    # Each response's DATA adds up to its content-length; the page's is the file's.
    sizes: collections.Counter[tuple[int, int]] = collections.Counter()
    for conn, frames in conns.items():
        for ev in frames:
            if ev.frame.type == 0:
                sizes[conn, ev.frame.stream_id] += ev.frame.length
    declared = {(conn, sid): int(dict(h)["content-length"]) for conn, d, sid, h in ours
                if d == "←" and "content-length" in dict(h)}
    assert declared and all(sizes[key] == n for key, n in declared.items())
    page = next((conn, sid) for conn, d, sid, h in ours
                if d == "→" and dict(h)[":path"] == "/index.html")
    assert sizes[page] == (site / "index.html").stat().st_size
    assert peak_concurrency(capture) > 1


def test_chromium_through_h2scope_logs_the_frames_h2scope_relayed(
        tmp_path: Path, origin_cert: CertFiles, make_proxy: Callable[..., ProxyThread]) -> None:
    """Two observation points of one connection: Chromium's net log (with raw bytes)
    of a page loaded through the proxy, and the proxy's own recording. The socket
    carried the HTTP CONNECT first, then TLS; the import finds the HTTP/2 inside
    and names the proxy, and each direction's frames are the same bytes in the
    same order as the ones h2scope relayed."""
    site = tmp_path / "site"
    site.mkdir()
    make_site(site)
    recorded = tmp_path / "proxy.h2scope"
    recorder = CaptureRecorder(CaptureWriter(recorded))
    proxy = make_proxy(sinks=(recorder,))
    log = tmp_path / "net.json"
    with procs.nghttpd(site, cert=origin_cert.cert, key=origin_cert.key) as port, \
            Browser([f"--proxy-server=http://127.0.0.1:{proxy.port()}",
                     "--proxy-bypass-list=<-loopback>",
                     f"--ignore-certificate-errors-spki-list={spki_hash(proxy.ca_cert)}",
                     f"--log-net-log={log}", "--net-log-capture-mode=Everything"]) as browser:
        page = browser.open(f"https://localhost:{port}/index.html")
        browser.wait_for(page, "document.getElementById('out')?.textContent",
                         lambda text: text == MARKER)
        origin = f"localhost:{port}"
    proxy.wait_closed()
    proxy.close()
    recorder.close()
    imported = tmp_path / "chrome.h2scope"
    assert main(["import", str(log), "-o", str(imported)]) == 0

    def by_direction(capture: Path) -> dict[int, tuple[list[bytes], list[bytes]]]:
        out: dict[int, tuple[list[bytes], list[bytes]]] = {}
        for item in replay(capture):
            for ev in item.events:
                if isinstance(ev, FrameObserved):
                    out.setdefault(item.record.conn_id, ([], []))[ev.direction].append(
                        ev.frame.raw)
        return out

    with CaptureReader(imported) as reader:
        metas = {r.conn_id: r.json() for r in reader.records()
                 if r.type == RecordType.CONNECTION}
    # (Chromium may open a spare connection to the origin and close it unused: the
    # page's is the one with frames, in both files.)
    frames_of = by_direction(imported)
    ((chrome, meta),) = [(frames_of[c], m) for c, m in metas.items()
                         if m["target"] == origin and c in frames_of]
    assert meta["upstream_proxy"] == f"127.0.0.1:{proxy.port()}"
    assert meta["server"] == {"host": "localhost", "port": port}
    with CaptureReader(recorded) as reader:
        relayed_conns = [r.conn_id for r in reader.records() if r.type == RecordType.CONNECTION
                         and r.json().get("target") == origin]
    relayed_frames = by_direction(recorded)
    relayed = [relayed_frames[c] for c in relayed_conns if c in relayed_frames]
    assert chrome in relayed, "no connection h2scope relayed has the frames Chrome logged"
    assert len(chrome[0]) > 20 and len(chrome[1]) > 40
