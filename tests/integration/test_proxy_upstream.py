"""``upstream:http://HOST:PORT``: an explicit proxy whose connections go out through
another HTTP proxy (here a second h2scope, passing everything through and asking
for credentials), with TLS still intercepted and decoded by the first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from proxy.events import ProxyErrorRaised, TargetChosen
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.h1servers import http_server
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles


def curl(proxy: ProxyThread, url: str) -> tuple[int, bytes, str]:
    result = procs.run([procs.require("curl"), "-sS", "--http2", "-x",
                        f"http://127.0.0.1:{proxy.port('upstream')}",
                        "--cacert", str(proxy.ca_cert), url])
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")


def corporate_proxy(make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> ProxyThread:
    """The upstream proxy: passes every tunnel through, wants alice:secret."""
    return make_proxy(ignore_hosts=[".*"], proxyauth="alice:secret",
                      confdir=tmp_path / "corp")


def test_https_goes_out_through_the_upstream_proxy_and_is_still_decoded(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles,
        tmp_path: Path) -> None:
    corp = corporate_proxy(make_proxy, tmp_path)
    front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port()}"],
                       upstream_auth="alice:secret")
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport:
        code, body, err = curl(front, f"https://localhost:{sport}/index.html")
    assert code == 0, err
    assert body == (docroot / "index.html").read_bytes()
    # h2scope decoded the exchange it tunnelled through the other proxy ...
    statuses = front.wait_for(lambda: [dict(e.block.headers)[":status"]
                                       for e in front.events(FrameObserved)
                                       if e.block is not None and e.direction is Direction.S2C],
                              what="the response HEADERS")
    assert statuses == ["200"]
    # ... which saw one CONNECT to the origin, and passed it through untouched.
    chosen = corp.wait_for(lambda: corp.events(TargetChosen), what="the upstream's CONNECT")
    assert [(e.target, e.via, e.intercept) for e in chosen] == [
        (f"localhost:{sport}", "CONNECT", False)]


def test_plain_http_goes_to_the_upstream_proxy_in_absolute_form(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    corp = corporate_proxy(make_proxy, tmp_path)
    front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port()}"],
                       upstream_auth="alice:secret")
    with http_server() as port:
        code, body, err = curl(front, f"http://127.0.0.1:{port}/plain")
    assert code == 0, err
    assert body == b"h1 /plain"
    chosen = corp.wait_for(lambda: corp.events(TargetChosen), what="the upstream's request")
    assert [(e.target, e.via) for e in chosen] == [(f"127.0.0.1:{port}", "HTTP")]


def test_an_upstream_proxy_that_refuses_says_why_and_what_to_do(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles,
        tmp_path: Path) -> None:
    corp = corporate_proxy(make_proxy, tmp_path)
    front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port()}"])  # no credentials
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as sport:
        code, _, err = curl(front, f"https://localhost:{sport}/index.html")
    assert code != 0 and "502" in err
    error = front.wait_for(lambda: [e for e in front.events(ProxyErrorRaised)
                                    if e.stage == "connect"], what="the connect error")[0]
    assert error.message == (
        f"cannot connect to localhost:{sport}: the upstream proxy 127.0.0.1:{corp.port()} "
        f"refused CONNECT localhost:{sport}: 407 Proxy Authentication Required (it wants "
        "credentials: --upstream-auth USER:PASS; h2scope never passes a client's own "
        "Proxy-Authorization on)")
    gone = procs.free_port()
    lost = make_proxy(modes=[f"upstream:http://127.0.0.1:{gone}"])
    code, _, err = curl(lost, "https://localhost:1/")  # a tunnel: the CONNECT gets a 502
    assert code != 0 and "502" in err
    code, body, err = curl(lost, "http://127.0.0.1:1/")  # a plain request: a 502 page
    assert code == 0 and body.startswith(b"h2scope: cannot connect to 127.0.0.1:1: cannot "
                                         b"reach the upstream proxy"), err
    errors = lost.wait_for(lambda: len(r := [e for e in lost.events(ProxyErrorRaised)
                                             if e.stage == "connect"]) == 2 and r,
                           what="two connect errors")
    for error in errors:
        assert f"cannot reach the upstream proxy 127.0.0.1:{gone}: " in error.message
