"""Hostile and broken clients: each gets the failure its protocol expects, an event says
what happened, and the proxy keeps serving a concurrent good request."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest

from proxy.events import ConnectionClosed, ProxyErrorRaised
from proxy.observe.events import Desynced, FrameObserved
from tests.helpers import procs
from tests.helpers.h1servers import one_connection_server
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread


@pytest.fixture
def good_request(proxy: ProxyThread, h2_origin: ServerThread) -> Iterator[Callable[[], None]]:
    """Starts a slow good download through the same proxy; calling it checks it succeeded."""
    result: dict[str, object] = {}

    def run() -> None:
        result["r"] = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "--cacert",
                                 str(proxy.ca_cert), "--http2",
                                 f"https://localhost:{h2_origin.port}/slow/200000"])

    thread = threading.Thread(target=run)
    thread.start()

    def check() -> None:
        thread.join(30)
        r = result["r"]
        assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
        assert r.stdout == b"s" * 200000  # type: ignore[attr-defined]

    yield check
    thread.join(30)


def connect(proxy: ProxyThread) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port()), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def errors(proxy: ProxyThread, stage: str) -> list[ProxyErrorRaised]:
    return proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                   if e.stage == stage], what=f"a {stage} error")


def test_random_bytes_instead_of_a_request_get_400(proxy: ProxyThread,
                                                   good_request: Callable[[], None]) -> None:
    noise = os.urandom(300).replace(b"\r\n\r\n", b"")
    if noise[0] in (4, 5, 0x16):  # (a SOCKS greeting or a TLS record: answered as such)
        noise = b"?" + noise[1:]
    with connect(proxy) as sock:
        sock.sendall(noise + b"\r\n\r\n")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    assert errors(proxy, "http1")
    good_request()


def test_http_to_a_tls_port_gets_a_502_that_says_to_use_https(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    """curl -x … http://host:TLSPORT/ got 'Empty reply from server', and neither side
    said TLS."""
    result = procs.run([procs.require("curl"), "-sS", "-m", "20", "-x", proxy.url,
                        f"http://localhost:{h2_origin.port}/"])
    assert result.returncode == 0, result.stderr
    body = result.stdout.decode()
    assert "closed the connection without answering (if it is a TLS port, use https://" \
        in body, body
    assert errors(proxy, "http1")


def test_a_socks5_client_on_the_http_proxy_port_fails_at_once_and_is_told(
        proxy: ProxyThread, good_request: Callable[[], None]) -> None:
    """curl -x socks5h://… at the regular listener hung until its timeout (5 minutes
    without -m): a SOCKS greeting never starts an HTTP request."""
    import time

    began = time.monotonic()
    result = procs.run([procs.require("curl"), "-sS", "-m", "20", "-x",
                        f"socks5h://127.0.0.1:{proxy.port()}", "http://example.test/"])
    assert result.returncode != 0 and result.returncode != 28, result.stderr
    assert time.monotonic() - began < 10
    err = errors(proxy, "request")[0]
    assert "the client speaks SOCKS5 to the HTTP proxy port" in err.message
    assert err.hint and "--mode socks5" in err.hint
    good_request()


def test_invalid_http11_gets_400_naming_the_problem(proxy: ProxyThread,
                                                    good_request: Callable[[], None]) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: abc\r\n\r\n")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"invalid Content-Length" in reply
    assert "invalid Content-Length" in errors(proxy, "http1")[0].message
    good_request()


def test_random_bytes_inside_a_connect_tunnel_are_reported_and_relayed(
        proxy: ProxyThread, h2_origin: ServerThread, good_request: Callable[[], None]) -> None:
    with connect(proxy) as sock:
        sock.sendall(f"CONNECT localhost:{h2_origin.port} HTTP/1.1\r\n\r\n".encode())
        assert recv_head(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"\x00\x01garbage that is neither TLS nor HTTP" * 3)
        reply = read_all(sock)
    # The TLS origin answers the garbage with an alert (or just closes).
    assert reply == b"" or reply[0] == 0x15
    assert "neither TLS nor HTTP" in errors(proxy, "detect")[0].message
    good_request()


def recv_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_tls_client_aborting_mid_handshake_is_reported(
        proxy: ProxyThread, h2_origin: ServerThread, good_request: Callable[[], None]) -> None:
    ctx = ssl.create_default_context()
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    with connect(proxy) as sock:
        sock.sendall(f"CONNECT localhost:{h2_origin.port} HTTP/1.1\r\n\r\n".encode())
        assert recv_head(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(hello[:len(hello) // 2])
    assert "in the middle of its ClientHello" in errors(proxy, "client-tls")[0].message
    good_request()


def test_tls_client_on_the_plain_proxy_port_gets_an_alert(
        proxy: ProxyThread, good_request: Callable[[], None]) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with connect(proxy) as raw, pytest.raises(ssl.SSLError, match=r"(?i)protocol.version"):
        ctx.wrap_socket(raw, server_hostname="localhost")
    err = errors(proxy, "request")[0]
    assert "started TLS on the proxy port" in err.message
    assert err.hint and "http://" in err.hint and "--mode reverse:https://" in err.hint
    good_request()


def test_malformed_http2_frames_are_forwarded_and_flagged(
        make_proxy: Callable[..., ProxyThread], good_request: Callable[[], None],
        tmp_path: object) -> None:
    origin = ServerThread()
    try:
        proxy = make_proxy(modes=["regular", f"reverse:http://127.0.0.1:{origin.port}@0"])
        with socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10) as s:
            # Preface, then a SETTINGS frame whose length (5) is not a multiple of 6.
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x05\x04\x00\x00\x00\x00\x00"
                      + b"\x00" * 5)
            reply = read_all(s)
        # The server answers with its SETTINGS and a GOAWAY(FRAME_SIZE_ERROR = 6).
        assert b"\x07\x00\x00\x00\x00\x00" in reply
        frames = proxy.wait_for(lambda: [e for e in proxy.events(FrameObserved)
                                         if e.findings], what="a frame with findings")
        assert frames[0].frame.type == 4
        goaway = proxy.wait_for(lambda: [e for e in proxy.events(FrameObserved)
                                         if e.frame.type == 7], what="GOAWAY")
        assert goaway[0].frame.error_name == "FRAME_SIZE_ERROR"  # type: ignore[attr-defined]
        proxy.wait_closed()
    finally:
        origin.close()
    assert not proxy.events(Desynced)


def test_a_broken_connection_preface_is_relayed_as_http2_and_flagged(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """'PRI * HTTP/2.0' then something else is a broken HTTP/2 preface (RFC 9113
    §3.4 reserves PRI for it), not an HTTP/1.1 request to hold back: the server
    gets the bytes and answers, and the desync names where the preface broke."""
    exe = procs.require("nghttpd")
    port = procs.free_port()
    import subprocess

    server = subprocess.Popen([exe, "--no-tls", "--address=127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        procs.wait_for_port(port, server)
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        with socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00\x00\x00\x04" + b"\x00" * 5)
            reply = read_all(s)
        proxy.wait_closed()
    finally:
        server.kill()
        server.wait(5)
    assert reply[3:4] == b"\x04"  # nghttpd's SETTINGS reached the client
    (desync,) = proxy.events(Desynced)
    assert "preface is broken at byte 18" in desync.finding.message
    assert desync.finding.rfc == "RFC 9113 §3.4"


def test_client_disconnecting_mid_download_closes_the_server_side(
        proxy: ProxyThread, h2_origin: ServerThread) -> None:
    result = procs.run([procs.require("curl"), "-sS", "-x", proxy.url, "--cacert",
                        str(proxy.ca_cert), "--http2", "--max-time", "0.5",
                        f"https://localhost:{h2_origin.port}/slow/10000000"])
    assert result.returncode == 28  # curl: operation timed out
    closed: list[ConnectionClosed] = proxy.wait_closed()
    assert closed[0].closed_by.name == "CLIENT"
    assert 0 < closed[0].bytes_s2c < 10_000_000


def test_a_request_body_with_invalid_chunk_framing_gets_400_and_frees_the_server(
        proxy: ProxyThread, good_request: Callable[[], None]) -> None:
    """The server, still waiting for the body, would never answer: the proxy answers
    the client itself and closes the server's connection (it used to hang both)."""
    with one_connection_server() as server:
        with connect(proxy) as sock:
            sock.sendall(f"POST http://127.0.0.1:{server.port}/upload HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "ZZ\r\nabc\r\n0\r\n\r\n".encode())
            reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 400 Bad Request"), reply
        assert b"invalid HTTP/1.1 request body" in reply
        assert server.done.wait(10), "the server's connection was left open"
        assert "invalid chunked framing" in errors(proxy, "http1")[0].message
        assert any(e.reason == "invalid HTTP/1.1 body framing"
                   for e in proxy.wait_closed())
    good_request()


@pytest.mark.parametrize("target", ["a\x00b:443", "\x1b[2J\x1b]0;PWNED\x07evil:443",
                                    "[zz]:443"])
def test_a_connect_target_that_is_not_a_host_gets_400(proxy: ProxyThread,
                                                      target: str) -> None:
    with connect(proxy) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1"))
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request"), reply
    (error,) = proxy.wait_for(lambda: proxy.events(ProxyErrorRaised), what="an error")
    # (control characters are refused with the request line; a bad host by the CONNECT)
    assert error.message.startswith(("invalid CONNECT target:", "invalid HTTP/1.1 request "
                                     "from the client: control character in the request"))
    assert "\x1b" not in error.message and "\x00" not in error.message


def test_control_characters_from_a_client_reach_the_log_escaped(
        proxy: ProxyThread) -> None:
    """A request line with an escape sequence is refused (a URI has none), and what
    the log prints of a peer's text never carries a control character."""
    from proxy.headless import connection_line

    with connect(proxy) as sock:
        sock.sendall(b"GET http://127.0.0.1:1/\x1b[31mRED HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    (error,) = errors(proxy, "http1")
    assert "control character in the request target" in error.message
    line = connection_line(error)
    assert line is not None and "\x1b" not in line and "\\x1b" in line


def test_a_tls_client_reset_mid_hello_on_a_reverse_port_is_reported(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    proxy = make_proxy(modes=[f"reverse:https://localhost:{h2_origin.port}"])
    sock = socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10)
    sock.sendall(b"\x16\x03\x01")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # (linger 0: a TCP reset)
    (error,) = errors(proxy, "client-tls")
    assert "in the middle of its ClientHello (3 bytes sent)" in error.message
    assert not [e for e in proxy.events(ProxyErrorRaised) if e.stage == "internal"]


def test_tls_looking_garbage_on_a_reverse_port_gets_an_alert_and_the_proxy_says_it_closed(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    """A TLS record header whose ClientHello is nonsense: the proxy refuses it with a
    decode_error alert and closes — the close is the proxy's, not the client's."""
    from proxy.events import Closer, ConnectionClosed
    proxy = make_proxy(modes=[f"reverse:https://localhost:{h2_origin.port}"])
    with socket.create_connection(("127.0.0.1", proxy.port("reverse")), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01garbage that only starts like TLS" * 3)
        reply = read_all(sock)
    assert reply[:1] == b"\x15"  # an alert record
    (closed,) = proxy.wait_for(lambda: proxy.events(ConnectionClosed), what="the close")
    assert closed.closed_by is Closer.PROXY
    assert closed.reason.startswith("refused an invalid TLS ClientHello"), closed.reason


def test_an_h2c_client_whose_upstream_is_down_gets_an_http2_502(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """Reverse mode, cleartext HTTP/2 (prior knowledge), nothing listening upstream:
    the client gets an HTTP/2 502 naming the reason, not an HTTP/1.1 page it cannot
    read ('Empty reply from server')."""
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{procs.free_port()}"])
    result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                        "-w", "\n%{http_code} %{http_version}",
                        f"http://127.0.0.1:{proxy.port('reverse')}/x"])
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.decode().rpartition("\n")
    assert status == "502 2"
    assert body.startswith("h2scope: cannot connect to 127.0.0.1:") and "refused" in body
    got = procs.run([procs.require("nghttp"), "-v",
                     f"http://127.0.0.1:{proxy.port('reverse')}/y"])
    assert b":status: 502" in got.stdout and b"GOAWAY" in got.stdout


@pytest.mark.parametrize(("body", "why"), [
    (b"5\r\nhelloXX0\r\n\r\n", "chunk data not followed by CRLF"),
    (b"5\nhello\n0\n\n", "bare LF"),
    (b"0\r\nX-T: a\x00b\r\n\r\n", "NUL in a trailer field"),
    # A body sent as it is under Transfer-Encoding: chunked: its first line is no size.
    (b'[{"hello": 1}]\n', "not a hexadecimal size"),
])
def test_a_chunked_request_body_framed_wrong_is_refused_before_it_is_passed_on(
        proxy: ProxyThread, body: bytes, why: str) -> None:
    """Framing the server might read otherwise than h2scope (a smuggling vector) gets
    the client a 400; what the server receives stops before the bad part."""
    with one_connection_server() as server:
        with connect(proxy) as sock:
            sock.sendall(f"POST http://127.0.0.1:{server.port}/up HTTP/1.1\r\nHost: x\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n".encode() + body)
            reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 400 Bad Request"), reply
        assert why in errors(proxy, "http1")[0].message
        assert server.done.wait(10), "the server's connection was left open"
        assert b"hello" + b"XX" not in server.received and b"a\x00b" not in server.received


@pytest.mark.parametrize("size", [600 * 1024, 100 * 1024])
def test_a_request_head_past_the_limit_gets_431(
        proxy: ProxyThread, good_request: Callable[[], None], size: int) -> None:
    """RFC 6585 §5: 431 Request Header Fields Too Large, not a plain 400 — also
    when the head's end came in the same read that passed the 64 KiB limit (a
    100 KiB head used to be forwarded)."""
    with connect(proxy) as sock:
        sock.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nX-Big: "
                     + b"a" * size + b"\r\n\r\n")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), reply[:80]
    (error,) = errors(proxy, "http1")
    assert "the request head is too large" in error.message
    good_request()


@pytest.mark.parametrize(("bad_sni", "placeholder"), [
    (b"a..b", b"axxb"),
    ("b\u00fccher.example".encode(), b"bxxcher.example"),
    (b"b" * 64 + b".example.com", b"x" * 32 + b"." + b"x" * 31 + b".example.com")])
def test_a_server_name_no_certificate_can_hold_gets_an_alert_before_anything_goes_upstream(
        proxy: ProxyThread, h2_origin: ServerThread, good_request: Callable[[], None],
        bad_sni: bytes, placeholder: bytes) -> None:
    """Names Python's ssl module would not send itself (its IDNA codec raised on
    them as the upstream leg's server name: an internal error, a traceback). The
    hello is made for a name of the same length, swapped in its bytes."""
    ctx = ssl.create_default_context()
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=placeholder.decode())
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read().replace(placeholder, bad_sni)
    with connect(proxy) as sock:
        sock.sendall(f"CONNECT localhost:{h2_origin.port} HTTP/1.1\r\n\r\n".encode())
        assert recv_head(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(hello)
        reply = read_all(sock)
    assert reply[:1] == b"\x15" and reply[-1] == 112  # a fatal alert: unrecognized_name
    (err,) = errors(proxy, "client-tls")
    assert err.message.startswith("no certificate for the server name "), err.message
    assert "the client sent (SNI): hostname" in err.message
    assert not [e for e in proxy.events(ProxyErrorRaised) if e.stage in ("internal",
                                                                         "server-tls")]
    good_request()


def test_a_request_for_h2scopes_own_listener_is_refused_not_looped(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """A reverse mode pointed at its own port (or a client asking the proxy for
    itself) used to open connection after connection to itself until the file
    descriptors ran out, and then nobody was served."""
    port = procs.free_port()
    proxy = make_proxy(modes=["regular@0", f"reverse:http://127.0.0.1:{port}@{port}"])
    r = procs.run([procs.require("curl"), "-sS", "-m", "10", f"http://127.0.0.1:{port}/"])
    assert b"is h2scope's own listener: relaying there would loop back" in r.stdout
    r = procs.run([procs.require("curl"), "-sS", "-m", "10", "-x", proxy.url,
                   f"http://127.0.0.1:{proxy.port('regular')}/"])
    assert b"HTTP" not in r.stdout[:4] and b"own listener" in r.stdout
    (first, *_) = errors(proxy, "connect")
    assert f"127.0.0.1:{port} is h2scope's own listener" in first.message
    # One hop each, not an avalanche: each request's connection and its looped one.
    assert len(proxy.events(ConnectionClosed)) <= 4
