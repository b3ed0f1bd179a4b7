"""HTTP/1.1 through the proxy: plain explicit proxying, keep-alive, chunked, Expect,
WebSocket upgrades, the CA page, proxy authentication, SOCKS5 and several modes at once."""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.events import (
    ConnectionOpened,
    Http1MessageObserved,
    ProxyErrorRaised,
    RelayStarted,
    TargetChosen,
)
from proxy.net.relay_http1 import UNRECORDED_CREDENTIALS
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from tests.helpers import procs
from tests.helpers.h1servers import (
    http_server,
    one_connection_server,
    recv_exactly,
    recv_until,
    websocket_echo_server,
    ws_frame,
    ws_upgrade,
)
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread


def curl(*args: str) -> tuple[int, bytes, str]:
    result = procs.run([procs.require("curl"), "-sS", *args])
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")


def messages(proxy: ProxyThread, direction: Direction) -> list[Http1MessageObserved]:
    return [e for e in proxy.events(Http1MessageObserved) if e.direction is direction]


def test_plain_http_keep_alive_reuses_one_connection_and_logs_each_message(
        proxy: ProxyThread) -> None:
    with http_server() as port:
        code, out, err = curl("-x", proxy.url, f"http://127.0.0.1:{port}/a",
                              f"http://127.0.0.1:{port}/b")
        proxy.wait_closed()
    assert code == 0, err
    assert out == b"h1 /ah1 /b"
    assert len(proxy.events(ConnectionOpened)) == 1
    requests = messages(proxy, Direction.C2S)
    # Logged as the client sent them (absolute form); the server got origin form.
    assert [m.start_line for m in requests] == [f"GET http://127.0.0.1:{port}/a HTTP/1.1",
                                                f"GET http://127.0.0.1:{port}/b HTTP/1.1"]
    sent = b"".join(b.data for b in proxy.chunks(1) if b.direction is Direction.C2S)
    assert sent.startswith(b"GET /a HTTP/1.1\r\n")
    responses = messages(proxy, Direction.S2C)
    assert [m.start_line for m in responses] == ["HTTP/1.1 200 OK"] * 2
    assert [m.body_size for m in responses] == [5, 5]
    assert [e.via for e in proxy.events(TargetChosen)] == ["HTTP"]


def test_a_name_under_localhost_reaches_this_machine(proxy: ProxyThread) -> None:
    """RFC 6761 §6.3: app.localhost is loopback, as browsers and curl resolve it
    themselves; through h2scope it was 'cannot resolve the name'."""
    with http_server() as port:
        code, out, err = curl("-x", proxy.url, f"http://app.localhost:{port}/x")
    assert code == 0 and out == b"h1 /x", (out, err)


def test_a_proxy_connection_kept_alive_across_hosts_counts_every_servers_bytes(
        proxy: ProxyThread) -> None:
    """Only the last server's bytes were counted in the close (← 74 B of 455)."""
    with http_server() as port, http_server() as other:
        code, out, err = curl("-x", proxy.url, f"http://127.0.0.1:{port}/first",
                              f"http://localhost:{other}/second")
        (closed,) = proxy.wait_closed()
    assert code == 0 and out == b"h1 /firsth1 /second", err
    responses = messages(proxy, Direction.S2C)
    assert len(responses) == 2
    assert closed.bytes_s2c == sum(m.head_size + m.body_size for m in responses)


def test_a_request_answered_before_its_body_is_still_logged_as_far_as_it_went(
        proxy: ProxyThread, tmp_path: Path) -> None:
    """A server that refuses an Expect: 100-continue upload with a 413 at once: the
    request's message never came (it is published at its body's end), so the log
    showed a 413 answering nothing."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def refuse() -> None:
        sock, _ = listener.accept()
        with sock:
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n"
                         b"Connection: close\r\n\r\ntoo big!\n")
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass

    threading.Thread(target=refuse, daemon=True).start()
    port = listener.getsockname()[1]
    upload = tmp_path / "big"
    upload.write_bytes(bytes(3_000_000))
    _, out, err = curl("-x", proxy.url, "--data-binary", f"@{upload}", "-w", "%{http_code}",
                          f"http://127.0.0.1:{port}/up")
    proxy.wait_closed()
    listener.close()
    assert out.endswith(b"413"), err
    (request,) = messages(proxy, Direction.C2S)
    assert request.start_line == f"POST http://127.0.0.1:{port}/up HTTP/1.1"
    assert not request.complete
    assert [m.start_line for m in messages(proxy, Direction.S2C)] == [
        "HTTP/1.1 413 Payload Too Large"]
    # Said in order: the request, then the response that answered it early.
    said = [e.start_line.split()[0] for e in proxy.events(Http1MessageObserved)]
    assert said == ["POST", "HTTP/1.1"]


def test_a_request_head_that_stops_halfway_gets_a_408_not_the_idle_timeout(
        proxy: ProxyThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half a head, then silence, held the connection for the 300 s idle timeout."""
    from proxy.net import relay_http1

    monkeypatch.setattr(relay_http1, "REQUEST_TIMEOUT", 0.3)
    with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
        sock.sendall(b"GET http://127.0.0.1:9/ HT")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"the request head did not end within" in answer
    (closed,) = proxy.wait_closed()
    assert closed.closed_by.name == "PROXY"


def test_credentials_for_a_proxy_never_reach_an_origin_server(proxy: ProxyThread) -> None:
    """A client set up with another proxy's credentials (http_proxy=user:pass@...) and
    pointed at h2scope: without --proxyauth h2scope checks none, and still must not
    hand them to the origin (RFC 9110 §11.7.2)."""
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    with one_connection_server(reply) as origin:
        code, out, err = curl("-x", f"http://corpuser:corpPW@127.0.0.1:{proxy.port()}",
                              f"http://127.0.0.1:{origin.port}/x")
        assert origin.done.wait(10)
    assert code == 0 and out == b"ok", err
    head = bytes(origin.received).split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"get /x http/1.1\r\n")
    assert b"proxy-authorization" not in head
    # Nor are they recorded: the message event (capture, UI, exports) keeps the scheme.
    (request,) = messages(proxy, Direction.C2S)
    assert ("Proxy-Authorization", f"Basic {UNRECORDED_CREDENTIALS}") in request.headers
    assert "corpPW" not in repr(proxy.events()) and "Y29ycHVzZXI6Y29ycFBX" not in repr(
        proxy.events())


def test_options_for_the_whole_server_is_forwarded_in_asterisk_form(
        proxy: ProxyThread) -> None:
    """RFC 9112 §3.2.4: OPTIONS http://host:port (an empty path) reaches the server
    as OPTIONS *; it went as OPTIONS /."""
    import socket

    with http_server() as port:
        for target, path in ((f"http://127.0.0.1:{port}", "*"),
                             (f"http://127.0.0.1:{port}/", "/")):
            with socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
                sock.sendall(f"OPTIONS {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                             "Connection: close\r\n\r\n".encode())
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(f"h1 {path}".encode())


def test_plain_http_to_an_ignored_host_is_relayed_unseen(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """ignore_hosts (and allow_hosts) pass plain http:// requests through too: relayed,
    with neither their bytes nor their messages published (so not printed or
    recorded: a token to a host the user excluded stays out of the capture); a
    request on the same connection to another host is seen again."""
    with http_server() as port, http_server() as other:
        proxy = make_proxy(ignore_hosts=[rf"^127\.0\.0\.1:{port}$"])
        code, out, err = curl("-x", proxy.url, "-H", "Authorization: Bearer SECRET",
                              f"http://127.0.0.1:{port}/secret?token=abc",
                              f"http://127.0.0.1:{other}/seen")
        proxy.wait_closed()
    assert code == 0, err
    assert out == b"h1 /secret?token=abch1 /seen"
    targets = [(e.target, e.intercept) for e in proxy.events(TargetChosen)]
    assert targets == [(f"127.0.0.1:{port}", False), (f"127.0.0.1:{other}", True)]
    assert [m.start_line for m in messages(proxy, Direction.C2S)] == [
        f"GET http://127.0.0.1:{other}/seen HTTP/1.1"]
    published = b"".join(b.data for b in proxy.chunks(1))
    assert b"/secret" not in published and b"token=abc" not in published
    assert published.count(b"Bearer SECRET") == 1  # (curl sends it to /seen too)
    assert b"GET /seen HTTP/1.1" in published


def test_chunked_response_and_expect_100_continue_upload_pass_through(
        proxy: ProxyThread, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"u" * 200_000)
    with http_server() as port:
        code, out, err = curl("-x", proxy.url, f"http://127.0.0.1:{port}/chunked")
        assert code == 0, err
        assert out == b"first second third"
        code, out, err = curl("-x", proxy.url, "-H", "Expect: 100-continue",
                              "--data-binary", f"@{upload}", f"http://127.0.0.1:{port}/up")
        assert code == 0, err
        assert out == upload.read_bytes()
        proxy.wait_closed(2)
    responses = messages(proxy, Direction.S2C)
    starts = [m.start_line for m in responses]
    assert "HTTP/1.1 100 Continue" in starts
    chunked = responses[0]
    assert chunked.body_size == len(b"6\r\nfirst \r\n7\r\nsecond \r\n5\r\nthird\r\n0\r\n\r\n")
    post = [m for m in messages(proxy, Direction.C2S) if m.start_line.startswith("POST")]
    assert post[0].body_size == 200_000
    # The log says the upload, then the 100 Continue that answered its head, then the
    # final response (the 100 came first, before the body it let through ended).
    lines = [m.start_line for m in proxy.events(Http1MessageObserved, conn_id=2)]
    assert lines[0].startswith("POST ") and lines[1:] == ["HTTP/1.1 100 Continue",
                                                           "HTTP/1.1 200 OK"], lines


def test_a_chunked_bodys_trailers_are_in_the_message_event_line_and_json(
        proxy: ProxyThread) -> None:
    """RFC 9112 §7.1.2 trailer fields after the last chunk: relayed as sent, and
    listed in the message event, under the headless line (which counts them) and
    in the live JSON object."""
    from proxy.capture.export_text import jsonl_connection
    from proxy.headless import connection_line
    from proxy.textlog import HEADER_INDENT, message_field_lines
    with http_server() as port:
        code, out, err = curl("-x", proxy.url, "--raw",
                              f"http://127.0.0.1:{port}/chunked-trailers")
        proxy.wait_closed()
    assert code == 0, err
    assert out.endswith(b"0\r\nX-Checksum: abc123\r\nServer-Timing:  db;dur=53\r\n\r\n")
    response = messages(proxy, Direction.S2C)[0]
    assert response.trailers == (("X-Checksum", "abc123"), ("Server-Timing", "db;dur=53"))
    assert messages(proxy, Direction.C2S)[0].trailers == ()
    line = connection_line(response)
    assert line is not None and "2 trailer fields" in line, line
    assert message_field_lines(response.headers, response.trailers)[-3:] == [
        f"{HEADER_INDENT}; trailers, after the body:", f"{HEADER_INDENT}X-Checksum: abc123",
        f"{HEADER_INDENT}Server-Timing: db;dur=53"]
    obj = jsonl_connection(1, response)
    assert obj is not None and obj["trailers"] == [["X-Checksum", "abc123"],
                                                   ["Server-Timing", "db;dur=53"]]


def test_http11_only_server_through_reverse_http(make_proxy: Callable[..., ProxyThread]) -> None:
    with http_server() as port:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        code, out, err = curl(f"http://127.0.0.1:{proxy.port('reverse')}/rev")
    assert code == 0, err
    assert out == b"h1 /rev"
    assert [e.protocol for e in proxy.events(RelayStarted)] == ["http/1.1"]


def test_websocket_upgrade_then_bytes_are_piped_both_ways(proxy: ProxyThread) -> None:
    with websocket_echo_server() as port, socket.create_connection(
            ("127.0.0.1", proxy.port()), timeout=10) as sock:
        sock.sendall(ws_upgrade(port))
        head = recv_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        for text in (b"hello", b"again, over the same tunnel"):
            frame = ws_frame(text)
            sock.sendall(frame)
            assert recv_exactly(sock, len(frame)) == frame
    proxy.wait_closed()
    # (plain HTTP through the proxy relays http/1.1; after the 101, a WebSocket)
    assert [e.protocol for e in proxy.events(RelayStarted)] == ["http/1.1", "websocket"]


def test_ca_page_is_served_for_http_h2scope(proxy: ProxyThread) -> None:
    code, out, err = curl("-x", proxy.url, "http://h2scope/")
    assert code == 0, err
    assert b"h2scope CA certificate" in out
    code, out, err = curl("-x", proxy.url, "http://h2scope/cert/pem")
    assert code == 0, err
    assert out == proxy.ca_cert.read_bytes()


def test_unreachable_plain_http_target_gets_502_naming_host_and_reason(
        proxy: ProxyThread) -> None:
    port = procs.free_port()
    code, out, err = curl("-x", proxy.url, "-w", "%{http_code}", f"http://127.0.0.1:{port}/")
    assert code == 0, err
    assert out.endswith(b"502")
    assert f"cannot connect to 127.0.0.1:{port}: connection refused".encode() in out
    assert b"Errno" not in out


def test_proxyauth_is_required_for_http_connect_and_socks5(
        make_proxy: Callable[..., ProxyThread], origin_cert: object,
        caplog: pytest.LogCaptureFixture) -> None:
    proxy = make_proxy(proxyauth="alice:s3cret", modes=["regular", "socks5@0"])
    with http_server() as port, caplog.at_level("WARNING", logger="h2scope"):
        url = f"http://127.0.0.1:{port}/auth"
        code, out, _ = curl("-x", proxy.url, "-w", "%{http_code}", url)
        assert out.endswith(b"407")
        code, out, err = curl("-x", proxy.url, "-U", "alice:s3cret", url)
        assert code == 0 and out == b"h1 /auth", err
        code, out, err = curl("-x", proxy.url, "-U", "alice:wrong", "-w", "%{http_code}", url)
        assert out.endswith(b"407")
        # CONNECT without credentials: curl reports the 407 on the tunnel.
        code, out, err = curl("-x", proxy.url, "-p", url)
        assert code != 0 and "407" in err
        socks = proxy.port("socks5")
        code, out, err = curl("-x", f"socks5h://127.0.0.1:{socks}", url)
        assert code != 0
        code, out, err = curl("-x", f"socks5h://alice:s3cret@127.0.0.1:{socks}", url)
        assert code == 0 and out == b"h1 /auth", err
        code, out, err = curl("-x", f"socks5h://mallory:guess@127.0.0.1:{socks}", url)
        assert code != 0
    stages = [e.stage for e in proxy.events(ProxyErrorRaised)]
    assert stages.count("auth") >= 4
    # Wrong credentials (not the first try without any, which a browser always makes)
    # are warnings in the log, with the client's address: guessing shows there.
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warned if "authentication failed" in w]) == 2, warned
    assert any("127.0.0.1:" in w and "wrong credentials (Proxy-Authorization)" in w
               for w in warned), warned
    assert any("SOCKS5 authentication failed: wrong username or password (user 'mallory')"
               in w for w in warned), warned


def test_socks5_by_name_and_by_address_gets_tls_interception(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    proxy = make_proxy(modes=["socks5"])
    port = proxy.port("socks5")
    ca = str(proxy.ca_cert)
    code, out, err = curl("--socks5-hostname", f"127.0.0.1:{port}", "--cacert", ca, "--http2",
                          f"https://localhost:{h2_origin.port}/byname")
    assert code == 0, err
    assert out == b"hello /byname\n"
    code, out, err = curl("--socks5", f"127.0.0.1:{port}", "--cacert", ca, "--http2",
                          f"https://127.0.0.1:{h2_origin.port}/byaddr")
    assert code == 0, err
    assert out == b"hello /byaddr\n"
    targets = [e.target for e in proxy.events(TargetChosen)]
    assert targets == [f"localhost:{h2_origin.port}", f"127.0.0.1:{h2_origin.port}"]
    assert all(e.via == "SOCKS5" for e in proxy.events(TargetChosen))
    paths = [dict(e.block.headers)[":path"] for e in proxy.events(FrameObserved)
             if e.direction is Direction.C2S and e.block is not None]
    assert paths == ["/byname", "/byaddr"]
    # An HTTP proxy client at the SOCKS5 port: told which listener it wants.
    code, out, err = curl("-x", f"http://127.0.0.1:{port}", "http://example.test/")
    assert code != 0
    said = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                   if "speaks HTTP to the SOCKS5 port" in e.message],
                          what="the socks5 error")
    assert "--mode regular" in said[0].message, said[0].message


def test_a_reverse_listener_used_as_a_proxy_says_which_listener_is_wanted(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """curl -x at a reverse listener: its CONNECT to that very server was relayed to
    the server as a request, which closed without a word."""
    with http_server() as port:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        code, _, _ = curl("-x", f"http://127.0.0.1:{proxy.port('reverse')}",
                              f"https://localhost:{port}/")
        assert code != 0
        said = proxy.wait_for(lambda: [e for e in proxy.events(ProxyErrorRaised)
                                       if e.stage == "request"], what="the request error")
        assert said[0].message == f"a CONNECT at the reverse proxy to 127.0.0.1:{port}"
        assert said[0].hint and "--mode regular" in said[0].hint
        # A request sent to it directly still goes through.
        assert curl(f"http://127.0.0.1:{proxy.port('reverse')}/r")[1] == b"h1 /r"


def test_several_modes_listen_at_once_on_their_own_ports(
        make_proxy: Callable[..., ProxyThread], h2_origin: ServerThread) -> None:
    with http_server() as port:
        proxy = make_proxy(modes=["regular@0", "socks5@0", f"reverse:http://127.0.0.1:{port}@0"])
        ports = {spec.split(":")[0].split("@")[0]: addr[1]
                 for spec, addr in proxy.server.addresses.items()}
        assert len(set(ports.values())) == 3
        assert curl(f"http://127.0.0.1:{ports['reverse']}/r")[1] == b"h1 /r"
        assert curl("-x", f"socks5h://127.0.0.1:{ports['socks5']}",
                    f"http://127.0.0.1:{port}/s")[1] == b"h1 /s"
        assert curl("-x", f"http://127.0.0.1:{ports['regular']}",
                    f"http://127.0.0.1:{port}/x")[1] == b"h1 /x"
    modes = sorted(e.mode.split(":")[0].split("@")[0] for e in proxy.events(ConnectionOpened))
    assert modes == ["regular", "reverse", "socks5"]


def test_socks5_to_a_closed_port_replies_connection_refused_and_says_why(
        make_proxy: Callable[..., ProxyThread]) -> None:
    proxy = make_proxy(modes=["socks5"])
    closed = procs.free_port()
    with socket.create_connection(("127.0.0.1", proxy.port("socks5")), timeout=10) as s:
        s.sendall(b"\x05\x01\x00")  # RFC 1928 §3: version 5, one method, no authentication
        assert recv_exactly(s, 2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + closed.to_bytes(2, "big"))
        answer = recv_exactly(s, 10)
    assert answer[:2] == b"\x05\x05"  # §6: REP 5, connection refused
    proxy.wait_closed()
    errors = [e.message for e in proxy.events(ProxyErrorRaised) if e.stage == "connect"]
    assert errors == [f"cannot connect to 127.0.0.1:{closed}: connection refused"]
    assert [e.via for e in proxy.events(TargetChosen)] == ["SOCKS5"]


def test_recorded_http1_exchanges_export_to_har(make_proxy: Callable[..., ProxyThread],
                                                tmp_path: Path) -> None:
    """The recording of plain HTTP/1.1 through the proxy holds the bytes and the
    heads; the HAR export finds the exchanges in the bytes again: a chunked
    response without its framing, an upload answered 100 Continue then 200."""
    import base64
    import json

    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.writer import CaptureWriter
    from proxy.cli import main

    capture = tmp_path / "h1.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    proxy = make_proxy(sinks=(recorder,))
    with http_server() as port:
        code, out, err = curl("-x", proxy.url, f"http://127.0.0.1:{port}/chunked")
        assert code == 0 and out == b"first second third", err
        code, out, err = curl("-x", proxy.url, "-H", "Expect: 100-continue",
                              "--data-binary", "x" * 5000, f"http://127.0.0.1:{port}/up")
        assert code == 0, err
        proxy.wait_closed(2)
    proxy.close()
    recorder.close()
    har_path = tmp_path / "h1.har"
    assert main(["export", str(capture), "--format", "har", "-o", str(har_path)]) == 0
    entries = json.loads(har_path.read_text())["log"]["entries"]
    got = [(e["request"]["method"], e["request"]["url"], e["request"]["httpVersion"],
            e["response"]["status"]) for e in entries]
    assert got == [("GET", f"http://127.0.0.1:{port}/chunked", "HTTP/1.1", 200),
                   ("POST", f"http://127.0.0.1:{port}/up", "HTTP/1.1", 200)]
    content = entries[0]["response"]["content"]  # (no content-type: base64)
    assert content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == b"first second third"
    upload = entries[1]
    assert upload["request"]["bodySize"] == 5000
    assert upload["_h2scope"]["informational"][0][0] == [":status", "100"]


def test_a_server_reply_that_is_not_http_reaches_the_client_as_it_was(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """An HTTP/0.9-style reply (or an h2c-only server's SETTINGS) then a close: the
    relay never drops what a server said; the UI is told what it was."""
    reply = b"NOT-HTTP garbage reply\n"
    with one_connection_server(reply) as server:
        port = server.port
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        code, out, err = curl("--http0.9", f"http://127.0.0.1:{proxy.port('reverse')}/")
        proxy.wait_closed()
    assert out == reply, (code, err)
    (error,) = proxy.events(ProxyErrorRaised)
    assert "not an HTTP/1.1 response head: b'NOT-HTTP garbage reply\\n'" in error.message
    assert error.hint is None


def test_an_h2c_only_server_answering_an_upgrade_with_settings_gets_a_hint(
        make_proxy: Callable[..., ProxyThread], docroot: Path) -> None:
    """curl --http2 (Upgrade: h2c) to nghttpd --no-tls: the server ignores the
    upgrade and sends its SETTINGS; the log says what those bytes are and what to do."""
    with procs.nghttpd(docroot) as port:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        curl("--http2", f"http://127.0.0.1:{proxy.port('reverse')}/index.html", "-m", "10")
        error = proxy.wait_for(lambda: proxy.events(ProxyErrorRaised), what="an error")[0]
    assert "not an HTTP/1.1 response head" in error.message
    assert error.hint is not None and "HTTP/2 SETTINGS frame" in error.hint \
        and "--http2-prior-knowledge" in error.hint


def test_a_chunked_body_cut_mid_chunk_counts_what_got_through(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """The live log said 'body 0 B' for a chunked response whose server closed
    inside its second chunk, after 23 bytes of body had been forwarded."""
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    body = b"5\r\nhello\r\n10\r\nonly-half"
    with one_connection_server(head + body) as server:
        port = server.port
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        curl(f"http://127.0.0.1:{proxy.port('reverse')}/")
        proxy.wait_closed()
    (response,) = [e for e in proxy.events(Http1MessageObserved)
                   if e.direction is Direction.S2C]
    assert not response.complete and response.body_size == len(body)


def test_the_text_export_marks_an_incomplete_http1_message(tmp_path: Path) -> None:
    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay
    from proxy.capture.writer import CaptureWriter
    from tests.unit.capture.traffic import META

    path = tmp_path / "h1.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {**META, "protocol": "http/1.1"}, t=1.0, wall=1.0)
        writer.http1(1, Direction.C2S, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", t=1.1, wall=1.1)
        writer.http1(1, Direction.S2C, b"HTTP/1.1 200 OK\r\n\r\n", t=1.2, wall=1.2,
                     body_truncated=True)
    out = io.StringIO()
    write_text(replay(path), out)
    lines = out.getvalue().splitlines()
    assert any(ln.endswith("← HTTP/1.1 200 OK INCOMPLETE") for ln in lines), lines
    assert any(ln.endswith("→ GET / HTTP/1.1") for ln in lines), lines


def test_websocket_messages_over_an_http11_upgrade_are_read_live_and_exported(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path) -> None:
    """After the 101, the relayed bytes are WebSocket frames (RFC 6455): the log
    shows each message as it completes, both ways, and the export of the recording
    shows the same lines (and JSON objects); the echo server's frames come back
    masked, which a server must not do — said under the message."""
    import json

    from proxy.capture.export_text import write_jsonl, write_text
    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.replay import replay
    from proxy.capture.writer import CaptureWriter
    from proxy.headless import HeadlessPrinter

    live = io.StringIO()
    path = tmp_path / "ws.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    proxy = make_proxy(sinks=(HeadlessPrinter(live), recorder))
    with websocket_echo_server() as port, socket.create_connection(
            ("127.0.0.1", proxy.port()), timeout=10) as sock:
        sock.sendall(ws_upgrade(port))
        recv_until(sock, b"\r\n\r\n")
        for text in (b"hello", b"again, over the same tunnel"):
            frame = ws_frame(text)
            sock.sendall(frame)
            recv_exactly(sock, len(frame))
    proxy.close()
    recorder.close()
    said = [ln.split(" websocket ", 1)[1] for ln in live.getvalue().splitlines()
            if " websocket " in ln and "relaying" not in ln]
    assert said == ["text 'hello'", "text 'hello'", "text 'again, over the same tunnel'",
                    "text 'again, over the same tunnel'"], live.getvalue()
    assert "←   ! a server frame must not be masked" in live.getvalue()
    out = io.StringIO()
    write_text(replay(path), out)
    exported = [ln for ln in out.getvalue().splitlines() if " websocket " in ln]
    assert exported == [ln for ln in live.getvalue().splitlines()
                        if " websocket " in ln and "relaying" not in ln]
    out = io.StringIO()
    write_jsonl(replay(path), out)
    objs = [json.loads(ln) for ln in out.getvalue().splitlines()]
    ws = [(o["direction"], o["websocket"][0]["text"]) for o in objs
          if o.get("event") == "WebSocketMessage"]
    assert ws == [("c2s", "hello"), ("s2c", "hello"), ("c2s", "again, over the same tunnel"),
                  ("s2c", "again, over the same tunnel")]
    # The HAR has them as DevTools exports a WebSocket.
    from proxy.capture.export_har import write_har

    out = io.StringIO()
    write_har(replay(path), out)
    (entry,) = json.loads(out.getvalue())["log"]["entries"]
    assert entry["response"]["status"] == 101 and entry["_resourceType"] == "websocket"
    assert [(m["type"], m["data"]) for m in entry["_webSocketMessages"]] == [
        ("send", "hello"), ("receive", "hello"), ("send", "again, over the same tunnel"),
        ("receive", "again, over the same tunnel")]
    # The UI's connection view lists them with the connection's HTTP/1.1 messages.
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        heads = [(d, h) for _, d, h in session.conns[1].http1 if h.startswith("websocket")]
        relayed = session.conns[1].bytes  # (no frames to count them: the close's counts)
    finally:
        capture.close()
    assert relayed[0] > 0 and relayed[1] > 0
    masked = "\r\n! a server frame must not be masked (RFC 6455 §5.1)"
    assert heads == [(0, "websocket text 'hello'"), (1, "websocket text 'hello'" + masked),
                     (0, "websocket text 'again, over the same tunnel'"),
                     (1, "websocket text 'again, over the same tunnel'" + masked)]


def test_http11_header_values_are_read_as_utf8_and_relayed_byte_for_byte(
        proxy: ProxyThread) -> None:
    """A UTF-8 value shows as written ('café', not 'cafÃ©'); a byte that is not UTF-8
    is written \\xNN; the server gets exactly the bytes the client sent."""
    from proxy.headless import connection_line

    with one_connection_server(b"HTTP/1.1 200 OK\r\nX-Reply: na\xc3\xafve\r\n"
                               b"Content-Length: 0\r\nConnection: close\r\n\r\n") as server, \
            socket.create_connection(("127.0.0.1", proxy.port()), timeout=10) as sock:
        sock.sendall(f"GET http://127.0.0.1:{server.port}/ HTTP/1.1\r\nHost: x\r\n".encode()
                     + b"X-Name: caf\xc3\xa9\r\nX-Raw: a\xffb\r\nConnection: close\r\n\r\n")
        recv_until(sock, b"\r\n\r\n")
        assert server.done.wait(10)
    assert b"X-Name: caf\xc3\xa9\r\nX-Raw: a\xffb\r\n" in server.received
    request, response = proxy.wait_for(
        lambda: messages(proxy, Direction.C2S) + messages(proxy, Direction.S2C)
        if messages(proxy, Direction.S2C) else None, what="both messages")
    assert ("X-Name", "café") in request.headers
    assert ("X-Reply", "naïve") in response.headers
    line = connection_line(request)
    assert line is not None and "\\xff" not in line  # (the log line is the start line)


def test_a_response_framed_wrong_is_shown_as_far_as_it_went(proxy: ProxyThread) -> None:
    """A body sent as it is under Transfer-Encoding: chunked: the client got the head
    (the 200 was passed on), so the log shows it — start line, fields, cut short —
    before the framing error (it showed only the error)."""
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n[{\"a\": 1}]\n")
    with one_connection_server(reply) as origin:
        code, _out, _err = curl("-x", proxy.url, f"http://127.0.0.1:{origin.port}/j")
        proxy.wait_closed()
    assert code != 0  # (curl sees the cut)
    (response,) = messages(proxy, Direction.S2C)
    assert response.start_line == "HTTP/1.1 200 OK" and not response.complete
    assert ("Transfer-Encoding", "chunked") in response.headers
    (error,) = [e for e in proxy.events(ProxyErrorRaised) if e.stage == "http1"]
    assert "not a hexadecimal size" in error.message
