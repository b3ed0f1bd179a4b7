"""The headless printer on real traffic: one line per frame, both directions, headers
under HEADERS, connection lines; quiet mode and the filter predicate."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.capture.export_text import write_text
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.events import ConnectionInfo, ProxyEvent
from proxy.headless import HeadlessPrinter
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread


def fetch(proxy: ProxyThread, port: int, path: str = "/hello") -> None:
    result = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "--cacert",
                        str(proxy.ca_cert), "--http2", f"https://localhost:{port}{path}"])
    assert result.returncode == 0, result.stderr
    proxy.wait_closed()


def test_printer_shows_every_frame_both_ways_with_headers_and_connection_lines(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    out = io.StringIO()
    proxy = make_proxy(sinks=(HeadlessPrinter(out),))
    fetch(proxy, h2_origin.port)
    proxy.close()
    text = out.getvalue()
    lines = text.splitlines()
    assert re.match(r"^\s+0\.000 #1\s+\* opened from 127\.0\.0\.1:\d+ \(regular\)$", lines[0])
    assert any("CONNECT localhost:" in ln and "intercept" in ln for ln in lines)
    assert any("TLS server leg" in ln and "alpn=h2" in ln for ln in lines)
    assert any("TLS client leg" in ln and "hello: sni=localhost" in ln for ln in lines)
    assert re.search(r"#1\s+→\s+1 HEADERS \[END_STREAM,END_HEADERS\] len=\d+  GET "
                     r"localhost:\d+/hello", text)
    assert re.search(r"#1\s+←\s+1 HEADERS \[END_HEADERS\] len=\d+  :status 200", text)
    assert re.search(r"#1\s+←\s+1 DATA \[\] len=13  13 bytes", text)
    assert re.search(r"#1\s+←\s+1 DATA \[END_STREAM\] len=0", text)
    assert re.search(r"^\s+:status: 200$", text, re.M)
    assert re.search(r"^\s+:path: /hello$", text, re.M)
    assert "←     0 SETTINGS" in text and "→     0 SETTINGS" in text
    assert "closed by client" in lines[-1]
    frames = len(proxy.events(FrameObserved))
    assert len([ln for ln in lines if re.search(r"[→←]\s+\d+ [A-Z_]+ \[", ln)]) == frames


def test_quiet_printer_shows_only_connection_lines_and_findings(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    out = io.StringIO()
    proxy = make_proxy(sinks=(HeadlessPrinter(out, quiet=True),))
    fetch(proxy, h2_origin.port)
    proxy.close()
    lines = out.getvalue().splitlines()
    assert lines and all(" * " in ln or " ! " in ln for ln in lines)
    assert not any("HEADERS" in ln for ln in lines)


def test_filter_predicate_hides_what_it_rejects(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    out = io.StringIO()
    seen: list[ConnectionInfo] = []

    def only_headers(ev: ProxyEvent, info: ConnectionInfo) -> bool:
        seen.append(info)
        return isinstance(ev, FrameObserved) and ev.frame.type == 1

    proxy = make_proxy(sinks=(HeadlessPrinter(out, filter=only_headers),))
    fetch(proxy, h2_origin.port)
    proxy.close()
    text = out.getvalue()
    assert " HEADERS " in text and " SETTINGS " not in text and " DATA " not in text
    assert "opened from" in text and "closed by" in text  # always shown
    assert any(i.target and i.target.startswith("localhost:") and i.alpn == "h2" for i in seen)


def test_the_text_export_of_a_recording_gives_the_live_tls_lines(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread,
        tmp_path: Path) -> None:
    """Reverse mode to an IP address: the client sends SNI localhost, h2scope sends
    none upstream. The export says so as the live log did (it used to show the
    client's SNI on the server leg), at the time the handshake happened (it used
    to put every connection line at the record's time)."""
    capture = tmp_path / "tls.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    out = io.StringIO()
    proxy = make_proxy(sinks=(HeadlessPrinter(out), recorder),
                       modes=[f"reverse:https://127.0.0.1:{h2_origin.port}"])
    port = proxy.port("reverse")
    result = procs.run([procs.require("curl"), "-sS", "--cacert", str(proxy.ca_cert),
                        "--http2", "--resolve", f"localhost:{port}:127.0.0.1",
                        f"https://localhost:{port}/hello"])
    assert result.returncode == 0, result.stderr
    proxy.wait_closed()
    proxy.close()
    recorder.close()
    exported = io.StringIO()
    write_text(replay(capture), exported)

    def tls_lines(text: str) -> list[tuple[float, str]]:
        return [(float(ln.split()[0]), ln.split("* ", 1)[1]) for ln in text.splitlines()
                if "* TLS " in ln]

    live, offline = tls_lines(out.getvalue()), tls_lines(exported.getvalue())
    assert [text for _, text in live] == [text for _, text in offline]
    server_leg = next(text for _, text in offline if text.startswith("TLS server leg"))
    assert " sni=- " in server_leg
    assert " sni=localhost" in next(text for _, text in offline
                                    if text.startswith("TLS client leg"))
    for (t_live, _), (t_offline, _) in zip(live, offline, strict=True):
        assert abs(t_live - t_offline) < 0.01, (live, offline)


def test_the_text_export_of_a_failed_connection_says_what_the_live_log_said(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    """An upstream that refuses: the export used to claim 'relaying h2 to …' and left
    out the '! connect:' line."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    capture = tmp_path / "refused.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    out = io.StringIO()
    proxy = make_proxy(sinks=(HeadlessPrinter(out), recorder))
    result = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "--cacert",
                        str(proxy.ca_cert), "--http2", f"https://localhost:{port}/"])
    assert result.returncode != 0
    proxy.wait_closed()
    proxy.close()
    recorder.close()
    exported = io.StringIO()
    write_text(replay(capture), exported)
    text = exported.getvalue()
    live_errors = [ln.split("* ", 1)[1] for ln in out.getvalue().splitlines() if "* ! " in ln]
    assert live_errors and live_errors[0].startswith("! connect: ")
    assert [ln.split("* ", 1)[1] for ln in text.splitlines() if "* ! " in ln] == live_errors
    assert "relaying" not in text and " h2\n" not in text, text


def test_a_full_disk_under_the_leaves_is_a_client_tls_error_that_names_it(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A leaf is written under <confdir>/leaves before its host can be intercepted;
    with the disk full the client got a bare close and the log said only
    'connection failed [[Errno 28] No space left on device]'. Now a client-tls
    error names the host, the directory and what to do, and the client gets an
    alert; once there is room again the host is intercepted."""
    import errno

    import certs.store

    out = io.StringIO()
    proxy = make_proxy(sinks=(HeadlessPrinter(out),))
    write = certs.store.write_atomic

    def full(*args: object, **kwargs: object) -> bool:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(certs.store, "write_atomic", full)
    result = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "--cacert",
                        str(proxy.ca_cert), "--http2", f"https://localhost:{h2_origin.port}/"])
    assert result.returncode != 0
    proxy.wait_closed()
    text = out.getvalue()
    leaves = Path(proxy.ca_cert).parent / "leaves"
    assert f"! client-tls: cannot write the certificate for localhost to {leaves}: No space " \
           "left on device — hint: Python's ssl module loads a certificate only from a file: " \
           "free some space there" in text, text
    assert "Errno 28" not in text
    monkeypatch.setattr(certs.store, "write_atomic", write)
    fetch(proxy, h2_origin.port)
