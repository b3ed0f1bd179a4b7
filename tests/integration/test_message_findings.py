"""Message-level findings on real peers' traffic through the proxy: Host against
:authority (nghttp sends both when told a Host), content where a response has
none, and DATA before a response's HEADERS (the Python h2 origin, told to)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles


def findings(proxy: ProxyThread) -> list[tuple[str, int, str]]:
    return [(f.code, e.frame.stream_id, f.message) for e in proxy.events(FrameObserved)
            for f in e.findings if f.code != "unknown-setting"]


def nghttp(port: int, *args: str) -> str:
    result = procs.run([procs.require("nghttp"), "-n", *args, f"https://127.0.0.1:{port}/"])
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    return result.stdout.decode(errors="replace")


def test_a_host_header_that_differs_from_authority_is_flagged(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles) -> None:
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
        port = proxy.port("reverse")
        nghttp(port)
        proxy.wait_closed(1)
        assert findings(proxy) == []  # nghttp's own request: :authority only
        nghttp(port, "-H", "host: internal.example")
        flagged = proxy.wait_for(lambda: findings(proxy), what="a finding")
    assert [(code, sid) for code, sid, _ in flagged] == [("host-authority-mismatch", 13)]
    assert "'internal.example'" in flagged[0][2] and f"'127.0.0.1:{port}'" in flagged[0][2]


def curl(port: int, path: str, *args: str) -> int:
    return procs.run([procs.require("curl"), "-sS", "-k", "--http2", "-o", "/dev/null", *args,
                      f"https://127.0.0.1:{port}{path}"]).returncode


def test_content_in_responses_that_have_none_is_flagged(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    proxy = make_proxy(modes=[f"reverse:https://localhost:{h2_origin.port}"])
    port = proxy.port("reverse")
    curl(port, "/no-content/204")
    proxy.wait_closed(1)
    curl(port, "/page", "-I")  # the origin answers HEAD with its body
    proxy.wait_closed(2)
    got = [(code, sid) for code, sid, _ in findings(proxy)]
    assert got == [("content-length-forbidden", 1), ("content-not-allowed", 1),
                   ("content-not-allowed", 1)]
    messages = [m for _, _, m in findings(proxy)]
    assert "a 204 response" in messages[1] and "response to a HEAD request" in messages[2]


def test_a_real_server_answering_head_raises_nothing(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles) -> None:
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport:
        proxy = make_proxy(modes=[f"reverse:https://localhost:{sport}"])
        assert curl(proxy.port("reverse"), "/index.html", "-I") == 0
        proxy.wait_closed(1)
    heads = [e for e in proxy.events(FrameObserved) if e.block is not None
             and dict(e.block.headers).get(":method") == "HEAD"]
    assert len(heads) == 1 and findings(proxy) == []


def test_data_before_the_response_headers_is_flagged(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    proxy = make_proxy(modes=[f"reverse:https://localhost:{h2_origin.port}"])
    curl(proxy.port("reverse"), "/data-first")  # curl rejects it; the proxy says why
    flagged = proxy.wait_for(lambda: findings(proxy), what="a finding")
    assert [(code, sid) for code, sid, _ in flagged] == [("data-before-headers", 1)]
