"""``upstream:`` mode behind a corporate proxy that asks for credentials, speaks only
NTLM, or never answers: credentials stay out of the recording and its exports, and
every failure is said, with what to do."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.events import ConnectionClosed, ProxyErrorRaised
from proxy.net import upstream_proxy
from tests.helpers import procs
from tests.helpers.h1servers import http_server
from tests.helpers.proxy_thread import ProxyThread


def b64(userpass: str) -> bytes:
    return base64.b64encode(userpass.encode())


def curl(proxy: ProxyThread, url: str, *extra: str,
         timeout: float = 30.0) -> tuple[int, bytes, str]:
    result = procs.run([procs.require("curl"), "-sS", "-x",
                        f"http://127.0.0.1:{proxy.port('upstream')}", *extra, url],
                       timeout=timeout)
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")


def connect_errors(proxy: ProxyThread, count: int = 1) -> list[ProxyErrorRaised]:
    return proxy.wait_for(lambda: len(r := [e for e in proxy.events(ProxyErrorRaised)
                                            if e.stage == "connect"]) >= count and r,
                          what="the connect error")


@dataclass
class FakeProxy:
    """A corporate proxy that answers every request head with ``answer`` (or, None,
    never answers); it keeps the heads it got and counts the connections still open."""

    answer: bytes | None
    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    open_connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            with self.lock:
                self.heads.append(data)
            if self.answer is not None:
                conn.sendall(self.answer)
            while conn.recv(4096):  # (until h2scope closes)
                pass
        with self.lock:
            self.open_connections -= 1


@contextlib.contextmanager
def fake_proxy(answer: bytes | None) -> Iterator[FakeProxy]:
    proxy = FakeProxy(answer)
    listener = socket.create_server(("127.0.0.1", 0))
    proxy.port = listener.getsockname()[1]
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with proxy.lock:
                proxy.open_connections += 1
            threading.Thread(target=proxy.serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def corporate_proxy(make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> ProxyThread:
    """A second h2scope as the corporate proxy: passes everything through, wants
    alice:secret."""
    return make_proxy(ignore_hosts=[".*"], proxyauth="alice:secret", confdir=tmp_path / "corp")


# ---------------------------------------------------------------- B1: credentials


def test_upstream_auth_reaches_the_proxy_but_not_the_recording_har_or_pcapng(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    corp = corporate_proxy(make_proxy, tmp_path)
    capture = tmp_path / "up.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port()}"],
                       upstream_auth="alice:secret", sinks=(recorder,))
    with http_server() as port:
        # (the client's own credentials for the corporate proxy: never passed on either)
        code, body, err = curl(front, f"http://127.0.0.1:{port}/plain",
                               "--proxy-user", "bob:hunter2")
        front.wait_closed()
        front.close()
    recorder.close()
    assert code == 0 and body == b"h1 /plain", err  # the corporate proxy took alice's
    secrets = (b64("alice:secret"), b64("bob:hunter2"))
    data = capture.read_bytes()
    assert b"Proxy-Authorization: Basic (credentials not recorded" in data
    for secret in secrets:
        assert secret not in data
    har, pcap = tmp_path / "up.har", tmp_path / "up.pcapng"
    assert main(["export", str(capture), "--format", "har", "-o", str(har)]) == 0
    assert main(["export", str(capture), "--format", "pcapng", "-o", str(pcap)]) == 0
    for secret in secrets:
        assert secret not in har.read_bytes() and secret not in pcap.read_bytes()
    entry = json.loads(har.read_text())["log"]["entries"][0]
    assert {"name": "Proxy-Authorization", "value": "Basic (credentials not recorded: they "
            "are for a proxy, never passed on)"} in entry["request"]["headers"]


def test_a_clients_own_proxy_credentials_are_never_passed_to_the_upstream_proxy(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    corp = corporate_proxy(make_proxy, tmp_path)
    front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port()}"])
    with http_server() as port:
        code, body, err = curl(front, f"http://127.0.0.1:{port}/plain", "-i",
                               "--proxy-user", "alice:secret")
    # B4: the corporate proxy's 407, which the client cannot answer, is said as a 502.
    assert code == 0 and body.startswith(b"HTTP/1.1 502 Bad Gateway"), err
    message = (f"the upstream proxy 127.0.0.1:{corp.port()} refused GET "
               f"http://127.0.0.1:{port}/plain: 407 Proxy Authentication Required (it wants "
               "credentials: --upstream-auth USER:PASS; h2scope never passes a client's own "
               "Proxy-Authorization on)")
    assert b"h2scope: " + message.encode() in body
    assert connect_errors(front)[0].message == message


# ------------------------------------------------------------ B4: a plain-HTTP 407


def test_a_plain_http_407_from_the_upstream_proxy_is_an_error_and_a_502_with_proxyauth(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    corp = corporate_proxy(make_proxy, tmp_path)
    front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port()}"],
                       upstream_auth="alice:wrong", proxyauth="team:pw")
    with http_server() as port:
        code, body, err = curl(front, f"http://127.0.0.1:{port}/x?token=t0", "-i",
                               "--proxy-user", "team:pw")
    assert code == 0 and body.startswith(b"HTTP/1.1 502 Bad Gateway"), err
    assert b"Proxy-Authenticate" not in body  # (the client cannot answer that challenge)
    assert connect_errors(front)[0].message == (
        f"the upstream proxy 127.0.0.1:{corp.port()} refused GET http://127.0.0.1:{port}/x: "
        "407 Proxy Authentication Required (it refused the credentials of --upstream-auth)")


# --------------------------------------------- B6: a proxy that wants NTLM/Negotiate

NTLM_407 = (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM\r\n"
            b"Proxy-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n")


def test_a_proxy_that_offers_no_basic_gets_the_relay_hint(
        make_proxy: Callable[..., ProxyThread]) -> None:
    with fake_proxy(NTLM_407) as corp:
        front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port}"],
                           upstream_auth="alice:secret")
        code, _, err = curl(front, "https://origin.test:443/")
        assert code != 0 and "502" in err
        code, body, _ = curl(front, "http://origin.test/")
        assert body.startswith(b"h2scope: the upstream proxy")
        hint = ("407 Proxy Authentication Required (it wants NTLM/Negotiate, which h2scope "
                "does not speak: --upstream-auth is Basic only; chain through a local relay "
                "that does, such as cntlm or px, and point upstream: at it)")
        first, second = connect_errors(front, 2)
        assert first.message == (f"cannot connect to origin.test:443: the upstream proxy "
                                 f"127.0.0.1:{corp.port} refused CONNECT origin.test:443: {hint}")
        assert second.message == (f"the upstream proxy 127.0.0.1:{corp.port} refused GET "
                                  f"http://origin.test/: {hint}")
        # --upstream-auth's header went on the wire, to the proxy
        assert all(f"Proxy-Authorization: Basic {b64('alice:secret').decode()}".encode() in h
                   for h in corp.heads)


# ------------------------------------------------- B2: a proxy that never answers


def test_a_proxy_that_never_answers_gets_a_504_within_the_timeout(
        make_proxy: Callable[..., ProxyThread], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_proxy, "REPLY_TIMEOUT", 0.5)
    with fake_proxy(None) as corp:
        front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port}"])
        code, _, err = curl(front, "https://origin.test:443/", timeout=10)
        assert code != 0 and "504" in err
        code, body, err = curl(front, "http://origin.test/", "-i", timeout=10)
        assert body.startswith(b"HTTP/1.1 504 Gateway Timeout"), err
        first, second = connect_errors(front, 2)
        assert first.message == (
            f"cannot connect to origin.test:443: the upstream proxy 127.0.0.1:{corp.port} did "
            "not answer CONNECT origin.test:443 within 0.5 s")
        assert second.message == (f"the upstream proxy 127.0.0.1:{corp.port} did not answer "
                                  "GET http://origin.test/ within 0.5 s")
        front.wait_for(lambda: corp.open_connections == 0, what="the proxy connections closed")


def test_a_client_that_leaves_while_the_proxy_is_silent_is_let_go(
        make_proxy: Callable[..., ProxyThread]) -> None:
    with fake_proxy(None) as corp:
        front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port}"])
        with socket.create_connection(("127.0.0.1", front.port("upstream"))) as client:
            client.sendall(b"CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n")
            front.wait_for(lambda: corp.heads, what="the CONNECT at the proxy")
        closed = front.wait_closed()[0]  # (long before REPLY_TIMEOUT)
        assert (closed.reason, closed.error) == (
            "client went away", f"before the upstream proxy 127.0.0.1:{corp.port} answered "
            "CONNECT origin.test:443")
        front.wait_for(lambda: corp.open_connections == 0, what="the proxy connection closed")
        assert not front.events(ProxyErrorRaised)


# ---------------------------------------------------- B5: nothing at the proxy's port


def test_a_refused_connection_to_the_upstream_proxy_is_said_in_words(
        make_proxy: Callable[..., ProxyThread]) -> None:
    gone = procs.free_port()
    front = make_proxy(modes=[f"upstream:http://127.0.0.1:{gone}"])
    _, body, err = curl(front, "http://origin.test/")
    assert body == (f"h2scope: cannot connect to origin.test:80: cannot reach the upstream "
                    f"proxy 127.0.0.1:{gone}: connection refused\n").encode(), err
    curl(front, "https://origin.test/")
    for error in connect_errors(front, 2):
        assert error.message.endswith(f"cannot reach the upstream proxy 127.0.0.1:{gone}: "
                                      "connection refused")


# ------------------------------------------ Suggestion 1: $HTTPS_PROXY is not used


def test_a_failed_direct_connection_says_https_proxy_is_not_used(
        make_proxy: Callable[..., ProxyThread], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = make_proxy()
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    # (pointing at h2scope itself, for its clients: no hint)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port()}")
    # (a name that never resolves, RFC 6761 §6.4: a loopback target gets no hint, clients
    # go there directly whatever the variables say)
    procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "http://intranet.invalid/"])
    monkeypatch.setenv("HTTPS_PROXY", "http://corpproxy.example:3128")
    procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "https://intranet.invalid/"])
    errors = proxy.wait_for(lambda: len(r := proxy.events(ProxyErrorRaised)) >= 2 and r,
                            what="two errors")
    assert [e.hint for e in errors] == [None, (
        "h2scope does not use $HTTPS_PROXY for its own connections: to go through that proxy, "
        "use --mode upstream:http://HOST:PORT")]


def test_a_connect_given_up_on_is_answered_504_and_closed(
        make_proxy: Callable[..., ProxyThread], monkeypatch: pytest.MonkeyPatch) -> None:
    """The CONNECT wait given up on also closes the client's socket (no CLOSE-WAIT)."""
    monkeypatch.setattr(upstream_proxy, "REPLY_TIMEOUT", 0.3)
    with fake_proxy(None) as corp:
        front = make_proxy(modes=[f"upstream:http://127.0.0.1:{corp.port}"])
        with socket.create_connection(("127.0.0.1", front.port("upstream"))) as client:
            client.settimeout(10)
            client.sendall(b"CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n")
            started = time.monotonic()
            data = b""
            while chunk := client.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 504 Gateway Timeout")
            assert time.monotonic() - started < 5
        front.wait_for(lambda: front.events(ConnectionClosed), what="the close")
