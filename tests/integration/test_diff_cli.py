"""``h2scope diff``: two recordings of the same requests through the proxy to nghttpd,
the server told to answer differently (no content-length, another trailer value):
the differences are named, the same recording twice agrees, exit 3 and 0."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread
from tests.integration.replay_peers import fetch


def recording(make_proxy: Callable[..., ProxyThread], docroot: Path, path: Path,
              nghttpd: list[str], paths: list[str]) -> Path:
    recorder = CaptureRecorder(CaptureWriter(path))
    with procs.nghttpd(docroot, extra=nghttpd) as sport:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{sport}"], sinks=(recorder,))
        for p in paths:
            result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                "-o", "/dev/null", f"http://127.0.0.1:{proxy.port('reverse')}{p}"])
            assert result.returncode == 0, result.stderr
        proxy.wait_closed(len(paths))
        proxy.close()
    recorder.close()
    return path


Fields = Sequence[tuple[str, str]]


def h2_fetch(port: int, requests: Sequence[Fields]) -> None:
    """A python-h2 client on one h2c connection sends each request's fields exactly as
    given (an edge's outbound request: ``host`` instead of ``:authority``, cookie
    crumbs, fields it added) and reads each response to its end."""
    fetch(port, [(list(fields), b"") for fields in requests])


def h2_recording(make_proxy: Callable[..., ProxyThread], docroot: Path, path: Path,
                 requests: Sequence[Fields]) -> Path:
    """``requests`` sent by :func:`h2_fetch` through the proxy (reverse) to nghttpd,
    recorded to ``path``."""
    recorder = CaptureRecorder(CaptureWriter(path))
    with procs.nghttpd(docroot) as sport:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{sport}"], sinks=(recorder,))
        h2_fetch(proxy.port("reverse"), requests)
        proxy.wait_closed()
        proxy.close()
    recorder.close()
    return path


def get(path: str, *fields: tuple[str, str], authority: str | None = "cdn.example",
        ) -> list[tuple[str, str]]:
    """A GET for ``path`` with ``:authority`` (None: none, the fields say ``host``)."""
    head = [(":method", "GET"), (":scheme", "http")]
    if authority is not None:
        head.append((":authority", authority))
    return [*head, (":path", path), *fields]


def test_diff_names_what_the_server_changed(make_proxy: Callable[..., ProxyThread],
                                            docroot: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (docroot / "page.txt").write_text("the same body\n")
    paths = ["/index.html", "/page.txt"]
    a = recording(make_proxy, docroot, tmp_path / "a.h2scope", ["--trailer=x-served: a"], paths)
    same = recording(make_proxy, docroot, tmp_path / "same.h2scope",  # + a volatile name
                     ["--trailer=x-served: a", "--trailer=etag: \"v2\""], paths)
    b = recording(make_proxy, docroot, tmp_path / "b.h2scope",
                  ["--trailer=x-served: b", "--no-content-length"], [*paths, "/missing"])

    assert main(["diff", str(a), str(same)]) == 0  # etag (and date) are left out
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("2 same, 0 differ (left out: ")

    assert main(["diff", str(a), str(b)]) == 3
    out = capsys.readouterr().out
    assert out.count("response header names: missing content-length") == 2
    assert "GET 127.0.0.1:" in out and "/page.txt" in out
    assert "only in B  #3 stream 1 GET" in out and "/missing: 404" in out
    assert out.splitlines()[-1].startswith("0 same, 2 differ, 1 only in B (left out: ")
    # A request in one recording only is a difference for CI, said as what it is.
    assert main(["diff", str(b), str(a)]) == 3
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "0 same, 2 differ, 1 only in A (left out: ")
    assert "x-served: " not in out  # values are compared only when asked

    assert main(["diff", str(a), str(b), "--values", "--ignore", "content-length"]) == 3
    out = capsys.readouterr().out
    assert out.count("trailer x-served: 'a' → 'b'") == 2  # (sent as a trailer by both)
    assert "content-length" not in out.split("(left out:")[0]

    assert main(["diff", str(a), str(same), "--strict"]) == 3  # now etag counts
    out = capsys.readouterr().out
    assert out.count("response trailer names: new etag") == 2  # (sent as a trailer)
    assert out.splitlines()[-1] == "0 same, 2 differ (nothing left out)"


def test_diff_compares_http11_exchanges_too(make_proxy: Callable[..., ProxyThread],
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Two recordings of plain HTTP/1.1 through the proxy were '0 streams, 0 same, 0
    differ', exit 0: an HTTP/1.1 origin was never compared. Its exchanges pair by
    request like HTTP/2 streams (a chunked body compared without its chunking)."""
    from tests.helpers.h1servers import http_server

    def record(path: Path, urls: list[str]) -> Path:
        return _curl_recorded(make_proxy, path, [x for u in urls for x in ("-o", "/dev/null", u)])

    with http_server() as port:
        base = f"http://127.0.0.1:{port}"
        a = record(tmp_path / "a.h2scope", [f"{base}/chunked", f"{base}/b"])
        b = record(tmp_path / "b.h2scope", [f"{base}/chunked", f"{base}/c"])
    assert main(["diff", str(a), str(a)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == [f"A {a}: 2 streams", f"A {a}: 2 streams".replace("A", "B", 1)]
    assert out.splitlines()[-1].startswith("2 same, 0 differ (left out: ")
    assert main(["diff", str(a), str(b)]) == 3
    out = capsys.readouterr().out
    assert "only in A  #1 stream 2 GET 127.0.0.1:" in out and "/b: 200" in out
    assert "only in B  #1 stream 2 GET 127.0.0.1:" in out and "/c: 200" in out
    assert out.splitlines()[-1].startswith("1 same, 0 differ, 1 only in A, 1 only in B (")


def test_a_request_with_host_instead_of_authority_pairs_by_its_host(
        make_proxy: Callable[..., ProxyThread], docroot: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An edge forwarded the client's requests with ``host`` and no ``:authority``
    (RFC 9113 §8.3.1 allows it): they were 'only in A' and 'only in B', exit 3,
    though the same requests got the same responses."""
    a = h2_recording(make_proxy, docroot, tmp_path / "a.h2scope",
                     [get("/index.html"), get("/index.html", authority="other.example")])
    b = h2_recording(make_proxy, docroot, tmp_path / "b.h2scope",
                     [get("/index.html", ("host", "cdn.example"), authority=None),
                      get("/index.html", ("host", "other.example"), authority=None)])
    assert main(["diff", str(a), str(b)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "only in" not in out
    assert out.splitlines()[-1].startswith("2 same, 0 differ (left out: ")
    assert main(["diff", str(a), str(b), "--all"]) == 0
    assert "same     #1 stream 3 GET other.example/index.html: 200" in capsys.readouterr().out


def test_diff_requests_names_what_an_edge_changed_in_the_requests(
        make_proxy: Callable[..., ProxyThread], docroot: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A client's requests recorded in front of an edge, and what the edge sent on
    (host instead of :authority, the cookie in crumbs, a field added), recorded
    behind it: the responses agree; --requests names the added field only."""
    cookie = ("cookie", "session=abc; theme=dark")
    front = h2_recording(make_proxy, docroot, tmp_path / "front.h2scope",
                         [get("/index.html", cookie, ("user-agent", "client/1"),
                              ("grpc-timeout", "10S"))])
    # (grpc-timeout is the time the call had left: it changes on every call)
    behind = h2_recording(make_proxy, docroot, tmp_path / "behind.h2scope", [
        get("/index.html", ("host", "cdn.example"), ("cookie", "session=abc"),
            ("cookie", "theme=dark"), ("user-agent", "client/1"), ("via", "2 edge"),
            ("x-forwarded-for", "192.0.2.1"), ("grpc-timeout", "9950m"), authority=None)])
    assert main(["diff", str(front), str(behind)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert main(["diff", str(front), str(behind), "--requests"]) == 3
    out = capsys.readouterr().out
    assert out.splitlines()[2:-1] == [
        "  DIFFERS  #1 stream 1 GET cdn.example/index.html (B: #1 stream 1):",
        "             request header x-forwarded-for: none → '192.0.2.1'"]
    assert out.splitlines()[-1].startswith("0 same, 1 differ (left out: ")


def test_diff_requests_names_a_field_the_clients_connection_header_named(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """curl asks (HTTP/1.1, through the proxy) with ``Connection: x-hop``; the next
    hop's request still carries x-hop (RFC 9110 §7.6.1: it was for one hop only)."""
    from tests.helpers.h1servers import http_server

    def record(path: Path, url: str, *headers: str) -> Path:
        return _curl_recorded(make_proxy, path, ["-o", "/dev/null",
                                                 *(x for h in headers for x in ("-H", h)), url])

    with http_server() as port:
        url = f"http://127.0.0.1:{port}/page"
        front = record(tmp_path / "front.h2scope", url, "Connection: x-hop", "X-Hop: 1")
        behind = record(tmp_path / "behind.h2scope", url, "X-Hop: 1")
    assert main(["diff", str(front), str(behind), "--requests"]) == 3
    out = capsys.readouterr().out
    assert out.splitlines()[3:-1] == [
        "             request: forwarded x-hop although the client's Connection header "
        "named it"]
    assert main(["diff", str(behind), str(front), "--requests"]) == 0  # (dropped: right)


def _curl_recorded(make_proxy: Callable[..., ProxyThread], path: Path, args: list[str]) -> Path:
    """curl ``args`` through a proxy recording to ``path`` (closed when done)."""
    recorder = CaptureRecorder(CaptureWriter(path))
    proxy = make_proxy(sinks=(recorder,))
    result = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, *args])
    assert result.returncode == 0, result.stderr
    proxy.wait_closed()
    proxy.close()
    recorder.close()
    return path



def test_a_recording_compares_with_its_redacted_copy(
        make_proxy: Callable[..., ProxyThread], docroot: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The request with ?access_token=… was 'only in A' and its redacted twin 'only in
    B' (exit 3): a shared, redacted capture could not be compared with one's own."""
    a = h2_recording(make_proxy, docroot, tmp_path / "a.h2scope", [
        get("/index.html?access_token=TOK1&x=1", ("authorization", "Bearer SECRET")),
        get("/index.html?x=2")])
    shared = tmp_path / "shared.h2scope"
    assert main(["export", str(a), "--format", "capture", "--redact", "-o", str(shared)]) == 0
    capsys.readouterr()
    assert main(["diff", "--requests", str(a), str(shared)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "only in" not in out and out.splitlines()[-1].startswith("2 same, 0 differ")
    # A later session's fresh token pairs too; another value of another parameter not.
    b = h2_recording(make_proxy, docroot, tmp_path / "b.h2scope", [
        get("/index.html?access_token=TOK2&x=1", ("authorization", "Bearer SECRET")),
        get("/index.html?x=3")])
    assert main(["diff", "--requests", str(a), str(b)]) == 3
    out = capsys.readouterr().out
    assert "only in A  #1 stream 3 GET cdn.example/index.html?x=2" in out, out
    assert "access_token" not in out.split("only in")[0], out
