"""Headless Chromium through the proxy: a page with 20 subresources from a TLS h2 origin
loads, and the proxy sees them multiplexed as concurrent streams on one connection."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxy.capture.export_har import write_har
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.events import Leg, TlsEstablished
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles

MARKER = "all-subresources-loaded"


def make_site(root: Path) -> None:
    tags = []
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
                           "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    for i in range(8):
        (root / f"img{i}.png").write_bytes(png)
        tags.append(f'<img src="/img{i}.png">')
    for i in range(6):
        (root / f"style{i}.css").write_text(f".c{i} {{ color: red }}\n")
        tags.append(f'<link rel="stylesheet" href="/style{i}.css">')
    for i in range(6):
        (root / f"script{i}.js").write_text(f"window.s{i} = {i};\n")
        tags.append(f'<script src="/script{i}.js"></script>')
    (root / "index.html").write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body>" + "".join(tags)
        + f"<div id=out></div><script>document.getElementById('out').textContent = "
        f"(window.s5 === 5 ? '{MARKER}' : 'missing');</script></body></html>\n")


def spki_hash(pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def max_concurrent_streams(frames: list[FrameObserved]) -> int:
    open_streams: set[int] = set()
    peak = 0
    for ev in frames:
        f = ev.frame
        if ev.direction is Direction.C2S and f.type == 1:
            open_streams.add(f.stream_id)
            peak = max(peak, len(open_streams))
        elif ev.direction is Direction.S2C and f.type in (0, 1) and f.flags & 0x1:
            open_streams.discard(f.stream_id)
    return peak


def test_chromium_loads_a_page_with_20_subresources_multiplexed_on_one_connection(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path, origin_cert: CertFiles) -> None:
    chromium = procs.require("chromium")
    site = tmp_path / "site"
    site.mkdir()
    make_site(site)
    profile = Path(tempfile.mkdtemp(prefix="h2scope-chromium-"))
    recorder = CaptureRecorder(CaptureWriter(tmp_path / "chromium.h2scope"))
    try:
        (profile / "Default").mkdir()
        # No navigation preconnects: exactly one tunnel to the origin.
        (profile / "Default" / "Preferences").write_text(
            json.dumps({"net": {"network_prediction_options": 2}}))
        with procs.nghttpd(site, cert=origin_cert.cert, key=origin_cert.key) as sport:
            proxy = make_proxy(sinks=(recorder,))
            result = procs.run([
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                f"--proxy-server=http://127.0.0.1:{proxy.port()}",
                "--proxy-bypass-list=<-loopback>;*.google.com;*.googleapis.com;*.gstatic.com",
                f"--ignore-certificate-errors-spki-list={spki_hash(proxy.ca_cert)}",
                "--dump-dom", f"https://localhost:{sport}/index.html"], timeout=60)
            dom = result.stdout.decode(errors="replace")
            assert MARKER in dom, result.stderr.decode(errors="replace")[-3000:]
            proxy.wait_for(lambda: len([e for e in proxy.events(FrameObserved)
                                        if e.direction is Direction.S2C and e.block]) >= 21,
                           what="21 responses")
            proxy.close()
    finally:
        recorder.close()
        shutil.rmtree(profile, ignore_errors=True)
    client_legs = [e for e in proxy.events(TlsEstablished) if e.leg is Leg.CLIENT]
    assert client_legs and {e.alpn for e in client_legs} == {"h2"}
    # Every request on one connection. (On a loaded machine Chromium may race a
    # spare connection to the origin; it carries no request.)
    carrying = {leg.conn_id for leg in client_legs
                if any(e.direction is Direction.C2S and e.block is not None
                       for e in proxy.events(FrameObserved, conn_id=leg.conn_id))}
    assert len(carrying) == 1, f"requests spread over connections {sorted(carrying)}"
    (conn_id,) = carrying
    frames = [e for e in proxy.events(FrameObserved, conn_id=conn_id)]
    requests = [e for e in frames if e.direction is Direction.C2S and e.block is not None]
    paths = {dict(e.block.headers)[":path"] for e in requests}  # type: ignore[union-attr]
    assert {"/index.html", "/img7.png", "/style5.css", "/script5.js"} <= paths
    assert len(requests) >= 21
    assert max_concurrent_streams(frames) >= 5
    # A real browser against a real server: nothing to flag but Chromium's
    # GREASE (unknown settings and frame types, which are INFO).
    flagged = [(e.seq, f.code, f.message) for e in proxy.events(FrameObserved)
               for f in e.findings if f.severity.name != "INFO"]
    assert flagged == []
    # The HAR says what DevTools' Type and Priority columns would: from the request's
    # sec-fetch-dest and the weight Chromium gave each request.
    out = io.StringIO()
    write_har(replay(tmp_path / "chromium.h2scope"), out, conn=conn_id)
    entries = {e["request"]["url"].rsplit("/", 1)[1]: e
               for e in json.loads(out.getvalue())["log"]["entries"]}
    kinds = {name: e["_resourceType"] for name, e in entries.items()}
    assert (kinds["index.html"], kinds["img0.png"], kinds["style0.css"],
            kinds["script0.js"]) == ("document", "image", "stylesheet", "script"), kinds
    priorities = {name: e.get("_priority") for name, e in entries.items()}
    assert priorities["index.html"] == "VeryHigh", priorities
    # (the others' depend on Chromium's scheduling: a first stylesheet may be raised)
    assert set(priorities.values()) <= {"VeryHigh", "High", "Medium", "Low", "VeryLow"}, \
        priorities
