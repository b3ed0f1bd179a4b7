"""Reverse modes (https and http), h2c (prior knowledge and Upgrade), push and load."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.events import Leg, RelayStarted, TlsEstablished
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles


def frames(proxy: ProxyThread, ftype: int, direction: Direction | None = None
           ) -> list[FrameObserved]:
    return [e for e in proxy.events(FrameObserved)
            if e.frame.type == ftype and (direction is None or e.direction is direction)]


def test_nghttp_receives_a_server_push_through_reverse_https(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles) -> None:
    (docroot / "style.css").write_text("body { color: red }\n")
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["-p/index.html=/style.css"]) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
        port = proxy.port("reverse")
        result = procs.run([procs.require("nghttp"), "-nv", f"https://127.0.0.1:{port}/index.html"])
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode()
    assert "recv PUSH_PROMISE frame" in out
    promises = proxy.wait_for(lambda: frames(proxy, 5, Direction.S2C), what="PUSH_PROMISE")
    assert promises[0].block is not None
    assert dict(promises[0].block.headers)[":path"] == "/style.css"
    promised = promises[0].frame.promised_stream_id  # type: ignore[attr-defined]
    pushed = proxy.wait_for(lambda: [e for e in frames(proxy, 0, Direction.S2C)
                                     if e.frame.stream_id == promised], what="pushed DATA")
    assert sum(e.frame.length for e in pushed) == len("body { color: red }\n")
    legs = {e.leg: e for e in proxy.events(TlsEstablished)}
    assert legs[Leg.CLIENT].alpn == "h2"
    assert legs[Leg.CLIENT].cert is not None


def test_h2load_10000_requests_over_10_connections_all_succeed(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles) -> None:
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
        port = proxy.port("reverse")
        start = time.monotonic()
        result = procs.run([procs.require("h2load"), "-n", "10000", "-c", "10", "-m", "10",
                            f"https://127.0.0.1:{port}/index.html"], timeout=120)
        elapsed = time.monotonic() - start
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out
    assert re.search(r"requests: 10000 total, 10000 started, 10000 done, 10000 succeeded", out), out
    assert "status codes: 10000 2xx" in out
    closed = proxy.wait_closed(10, timeout=20)
    assert len(closed) == 10
    responses = proxy.wait_for(
        lambda: len(r := [e for e in frames(proxy, 1, Direction.S2C) if e.block is not None])
        >= 10000 and r, what="10000 response HEADERS")
    assert len(responses) == 10000
    print(f"h2load through the proxy: {elapsed:.1f} s")
    # 10,000 real exchanges between h2load and nghttpd: no false alarms.
    flagged = {(f.code, f.message) for e in proxy.events(FrameObserved) for f in e.findings
               if f.severity.name != "INFO"}
    assert flagged == set()


def test_h2c_prior_knowledge_through_reverse_http(
        make_proxy: Callable[..., ProxyThread], docroot: Path) -> None:
    with procs.nghttpd(docroot) as sport:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{sport}"])
        result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                            f"http://127.0.0.1:{proxy.port('reverse')}/index.html"])
    assert result.returncode == 0, result.stderr
    assert b"hello from nghttpd" in result.stdout
    assert [e.protocol for e in proxy.events(RelayStarted)] == ["h2c"]
    # curl can have its answer before the proxy's sinks have the events for it.
    proxy.wait_closed()
    statuses = [dict(e.block.headers)[":status"] for e in frames(proxy, 1, Direction.S2C)
                if e.block is not None]
    assert statuses == ["200"]


def test_h2c_upgrade_switches_the_relay_to_frames(
        make_proxy: Callable[..., ProxyThread]) -> None:
    # nghttpd 1.52 does not implement Upgrade: h2c, the Python h2 origin does.
    origin = ServerThread(upgrade=True)
    try:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin.port}"])
        result = procs.run([procs.require("curl"), "-sS", "--http2", "-w", " %{http_version}",
                            f"http://127.0.0.1:{proxy.port('reverse')}/upgraded"])
        proxy.wait_closed()
    finally:
        origin.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello /upgraded\n 2"
    assert [e.protocol for e in proxy.events(RelayStarted)] == ["http/1.1", "h2c"]
    # The response to the upgraded request comes on stream 1 as HTTP/2 frames.
    responses = [e for e in frames(proxy, 1, Direction.S2C) if e.block is not None]
    assert responses and responses[0].frame.stream_id == 1
    assert dict(responses[0].block.headers)[":status"] == "200"
    errors = [f for e in proxy.events(FrameObserved) for f in e.findings
              if f.severity.name == "ERROR"]
    assert errors == []


@pytest.mark.parametrize("decode", [True, False], ids=["decoding", "only-recording"])
def test_h2c_upgrade_is_recorded_so_the_capture_replays_it(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path, decode: bool) -> None:
    """Also by the live UI's proxy process (``decode=False``: frames only cut)."""
    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.replay import replay_observer
    from proxy.capture.writer import CaptureWriter

    origin = ServerThread(upgrade=True)
    capture = tmp_path / "h2c.cap"
    recorder = CaptureRecorder(CaptureWriter(capture))
    try:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin.port}"], sinks=(recorder,),
                           decode=decode)
        result = procs.run([procs.require("curl"), "-sS", "--http2",
                            f"http://127.0.0.1:{proxy.port('reverse')}/up"])
        proxy.wait_closed()
        proxy.close()
    finally:
        origin.close()
        recorder.close()
    assert result.returncode == 0, result.stderr
    replayed = [ev for _, ev in replay_observer(capture) if isinstance(ev, FrameObserved)]
    if decode:
        live = proxy.events(FrameObserved)
        assert [(e.direction, e.frame.raw) for e in replayed] == \
            [(e.direction, e.frame.raw) for e in live]
    else:
        assert proxy.events(FrameObserved) == [] and len(replayed) >= 4
    response = next(e for e in replayed if e.block is not None and e.frame.stream_id == 1)
    assert dict(response.block.headers)[":status"] == "200"
    assert not [f for e in replayed for f in e.findings if f.severity.name == "ERROR"]
