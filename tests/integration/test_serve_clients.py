"""``h2scope serve`` answers real clients with what was recorded.

nghttp fetches /index.html through the proxy from ``nghttpd -p`` (which
pushes /style.css with it); the proxy records. ``h2scope serve`` (a real
subprocess) then serves that capture: curl and nghttp get the recorded
bodies and headers, nghttp the pushed stylesheet too; an unknown path gets a
404 naming the closest recorded paths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.replay.responses import load_responses
from tests.helpers import procs
from tests.helpers.options import Options
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles
from tests.integration.conftest import Served

pytestmark = pytest.mark.peer

STYLE = b"body { color: #123456 }\n"


@pytest.fixture(scope="module")
def pushed_capture(tmp_path_factory: pytest.TempPathFactory, docroot: Path, confdir: Path,
                   origin_cert: CertFiles) -> Path:
    (docroot / "style.css").write_bytes(STYLE)
    path = tmp_path_factory.mktemp("serve") / "push.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["-p/index.html=/style.css"]) as origin:
        proxy = ProxyThread(Options(confdir=confdir, upstream_ca=origin_cert.cert,
                                    modes=[f"reverse:https://127.0.0.1:{origin}"]), [recorder])
        try:
            url = f"https://127.0.0.1:{proxy.port('reverse')}"
            result = procs.run([procs.require("nghttp"), "-n", f"{url}/index.html",
                                f"{url}/big.bin"])
            assert result.returncode == 0, result.stdout + result.stderr
            proxy.wait_closed()
        finally:
            proxy.close()
            recorder.close()
    return path


def recorded(capture: Path, path: str) -> tuple[dict[str, str], bytes]:
    """The recorded response headers (first block) and body for ``path``."""
    r = next(r for r in load_responses(capture) if r.path == path)
    headers = next(dict(a.headers) for a in r.actions if a.kind == "headers")
    body = b"".join(a.data for a in r.actions if a.kind == "data")
    return headers, body


def test_curl_gets_the_recorded_body_and_headers_over_tls(
        pushed_capture: Path, serve: Served, confdir: Path, docroot: Path) -> None:
    url = serve(str(pushed_capture))
    ca = confdir / "h2scope-ca-cert.pem"
    result = procs.run([procs.require("curl"), "-sS", "--http2", "--cacert", str(ca),
                        "-D", "-", f"{url}/index.html"])
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200")
    assert body == (docroot / "index.html").read_bytes()
    headers, recorded_body = recorded(pushed_capture, "/index.html")
    assert body == recorded_body
    got = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    for name in ("server", "content-length", "last-modified", "date"):
        assert got[name] == headers[name]
    # The stylesheet was recorded only as nghttpd's push; curl (push off) asks for it.
    result = procs.run([procs.require("curl"), "-sS", "--http2", "--cacert", str(ca),
                        "-D", "-", f"{url}/style.css"])
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200") and body == STYLE
    # A client that offers only HTTP/1.1 gets the same in HTTP/1.1 (505 before).
    result = procs.run([procs.require("curl"), "-sS", "--http1.1", "--cacert", str(ca),
                        "-D", "-", f"{url}/index.html"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 200"), result.stdout[:200]
    assert result.stdout.partition(b"\r\n\r\n")[2] == recorded_body
    assert any("without HTTP/2 (ALPN http/1.1): served over HTTP/1.1" in line
               for line in serve.wait_log(url, "without HTTP/2"))


def test_nghttp_gets_the_recorded_push_and_bodies(pushed_capture: Path, serve: Served,
                                                  docroot: Path) -> None:
    url = serve(str(pushed_capture))
    result = procs.run([procs.require("nghttp"), "-v", f"{url}/index.html"])
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert b"recv PUSH_PROMISE frame" in out
    assert b":path: /style.css" in out
    # nghttp writes every stream's body to stdout: the page and the pushed stylesheet.
    assert (docroot / "index.html").read_bytes() in out
    assert STYLE in out
    # The promise names the server nghttp reached (the recording's :authority was the
    # proxy's): nghttp takes the push and asks for /style.css no more (one request).
    authority = url.split("://", 1)[1].encode()
    assert b"(stream_id=13) :authority: " + authority in out, out.decode()[-3000:]
    assert out.count(b"send HEADERS frame") == 1, out.decode()[-3000:]
    # A client that accepts no concurrent pushed stream gets the promise, then the
    # pushed stream refused — not its response (RFC 9113 §5.1.2).
    result = procs.run([procs.require("nghttp"), "-v", "--max-concurrent-streams=0",
                        f"{url}/index.html"])
    out = result.stdout
    assert b"recv PUSH_PROMISE frame" in out
    assert b"recv RST_STREAM frame" in out and b"REFUSED_STREAM" in out, out.decode()[-3000:]
    assert STYLE not in out
    assert any("refused (REFUSED_STREAM): the client allows 0 concurrent pushed streams" in ln
               for ln in serve.wait_log(url, "REFUSED_STREAM"))
    _, big = recorded(pushed_capture, "/big.bin")
    result = procs.run([procs.require("nghttp"), f"{url}/big.bin"])
    assert result.stdout == big


def test_h2c_serve_and_a_404_naming_the_closest_recorded_paths(
        pushed_capture: Path, serve: Callable[..., str]) -> None:
    url = serve(str(pushed_capture), "--h2c", "--match", "method,path")
    assert url.startswith("http://")
    result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge", "-D", "-",
                        f"{url}/indx.html"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/2 404")
    body = result.stdout.partition(b"\r\n\r\n")[2].decode()
    assert "no recorded response for GET /indx.html" in body
    assert body.index("/index.html") < body.index("/big.bin")  # closest first
    # An HTTP/1.1 client (or one asking to upgrade: not taken) is answered in HTTP/1.1.
    for extra in ((), ("--http2",)):
        result = procs.run([procs.require("curl"), "-sS", *extra, "-D", "-",
                            f"{url}/index.html"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(b"HTTP/1.1 200"), result.stdout[:200]


def test_serve_usage_errors_exit_2(pushed_capture: Path, tmp_path: Path) -> None:
    from proxy.cli import main

    assert main(["serve", str(pushed_capture), "--match", "method,colour"]) == 2
    assert main(["serve", str(tmp_path / "missing.h2scope")]) == 2
    assert main(["serve", str(pushed_capture), "--speed", "-1"]) == 2
    assert main(["serve", str(pushed_capture), "--speed", "nan"]) == 2
    assert main(["serve", "--h2c", str(tmp_path)]) == 2  # (a directory: was a traceback)


def test_serve_conn_that_has_no_responses_lists_those_that_do(
        pushed_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.cli import main

    assert main(["serve", str(pushed_capture), "--conn", "7"]) == 2
    err = capsys.readouterr().err
    assert "no recorded responses to serve on connection 7; the connections with " \
        "some are 1" in err, err


def test_serve_keeps_to_loopback_unless_told_and_names_a_port_in_use(
        pushed_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Recorded responses hold cookies and tokens: another address needs
    --allow-remote, as for run. A port in use says so, and what to do."""
    import socket

    from proxy.cli import main

    assert main(["serve", str(pushed_capture), "--h2c", "--listen-host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0 is not a loopback address" in err and "--allow-remote" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(pushed_capture), "--h2c", "-p", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in err
    assert "choose another port with -p PORT or stop the other program" in err


def test_curl_sees_the_recorded_pace_with_speed(tmp_path: Path,
                                                serve: Callable[..., str]) -> None:
    """A response whose body was recorded 500 ms after its request: with ``--speed 1``
    curl's transfer takes that long; by default it does not wait."""
    from tests.unit.replay.test_serve_pacing import make_capture

    capture = tmp_path / "slow.h2scope"
    make_capture(capture)

    def timed(url: str) -> tuple[float, float, bytes]:
        result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                            "-w", "\n%{time_pretransfer} %{time_starttransfer} %{time_total}",
                            f"{url}/slow"])
        assert result.returncode == 0, result.stderr
        body, _, times = result.stdout.rpartition(b"\n")
        pre, first, total = map(float, times.split())
        return first - pre, total - pre, body

    first, total, body = timed(serve(str(capture), "--h2c", "--match", "path", "--speed", "1"))
    assert body == b"halfdone"
    assert first >= 0.19 and total >= 0.49, (first, total)
    first, total, body = timed(serve(str(capture), "--h2c", "--match", "path"))
    assert body == b"halfdone" and total < 0.45, total  # (recorded: 500 ms)


def test_a_response_the_client_cancelled_in_the_recording_ends_with_a_reset(
        tmp_path: Path, serve: Served) -> None:
    """The recorded client reset /slow after its response HEADERS: served, curl gets
    those headers and then a reset (it waited forever for the rest), and the log
    says the response was recorded only in part."""
    from tests.unit.capture.traffic import record_session

    capture = tmp_path / "cancel.h2scope"
    with CaptureWriter(capture) as writer:
        record_session(writer, 1)
    url = serve(str(capture), "--h2c", "--match", "path")
    result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge", "-m", "20",
                        "-o", "/dev/null", "-w", "%{http_code}", f"{url}/slow"])
    assert result.returncode != 28, "curl timed out: the stream was left open"
    assert result.returncode == 92 and b"CANCEL" in result.stderr, result.stderr
    assert any("GET" in line and "/slow → 200" in line and "recorded only in part, the "
               "client reset it (CANCEL): the stream is reset (CANCEL) after it" in line
               for line in serve.wait_log(url, "recorded only in part"))


def test_a_pushed_stream_is_served_in_the_recorded_order_with_its_parent(
        pushed_capture: Path, serve: Callable[..., str]) -> None:
    """nghttpd sent the pushed stream's HEADERS between the page's HEADERS and its
    DATA: served, nghttp receives the frames of both streams in that same order
    (the page used to be sent whole first: a client may act on the order)."""
    import re

    page = next(r for r in load_responses(pushed_capture) if r.path == "/index.html")
    push = next(a for a in page.actions if a.kind == "push")
    recorded_order = [(0 if a in page.actions else 1, a.kind) for a in sorted(
        [*page.actions, *push.pushed], key=lambda a: a.seq) if a.kind in ("headers", "data")]
    url = serve(str(pushed_capture))
    out = procs.run([procs.require("nghttp"), "-v", f"{url}/index.html"]).stdout.decode()
    got = []
    for m in re.finditer(r"recv (HEADERS|DATA) frame <length=\d+, flags=0x[0-9a-f]+, "
                         r"stream_id=(\d+)>", out):
        got.append((0 if int(m.group(2)) % 2 else 1, m.group(1).lower()))  # (pushed: even)
    assert {slot for slot, _ in got} == {0, 1}, out
    assert got == recorded_order, (got, recorded_order)


def test_serve_sends_the_recorded_servers_settings(pushed_capture: Path,
                                                    serve: Served) -> None:
    """A client may behave by the server's SETTINGS: the mock sends the recorded
    server's own (nghttpd: MAX_CONCURRENT_STREAMS 100 and nothing else), not h2's
    seven defaults."""
    import re

    page = next(r for r in load_responses(pushed_capture) if r.path == "/index.html")
    assert page.server_settings is not None
    recorded = [(k, v) for k, v in page.server_settings if k != 0x2]
    url = serve(str(pushed_capture))
    out = procs.run([procs.require("nghttp"), "-v", f"{url}/index.html"]).stdout.decode()
    first = re.search(r"recv SETTINGS frame <length=(\d+), flags=0x00, stream_id=0>\n"
                      r"((?:\s+\(niv=\d+\)\n)?(?:\s+\[SETTINGS_\w+\(0x([0-9a-f]+)\):(\d+)\]\n)*)",
                      out)
    assert first is not None, out
    got = [(int(k, 16), int(v)) for k, v in re.findall(r"\(0x([0-9a-f]+)\):(\d+)\]",
                                                       first.group(2))]
    assert got == recorded and int(first.group(1)) == 6 * len(recorded)
    assert any("SETTINGS as the recorded server sent them: " in line
               for line in serve.wait_log(url, "SETTINGS as the recorded"))


def test_serve_takes_the_frame_size_it_advertises(tmp_path: Path, serve: Served) -> None:
    """The recorded server allowed 1 MiB frames and serve said so, but h2 kept
    refusing frames over 16 KiB: a client that believed it (grpc-core sends a 20 KB
    message in one DATA frame) got GOAWAY FRAME_SIZE_ERROR, and the log blamed it."""
    import socket

    import h2.config
    import h2.connection
    import h2.events
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    enc = hpack.Encoder()
    request = enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "a"),
                          (":path", "/pkg.Svc/Big"), ("content-type", "application/grpc")])
    senc = hpack.Encoder()
    response = senc.encode([(":status", "200"), ("content-type", "application/grpc")])
    capture = h2c_capture(tmp_path / "big-frames.h2scope", [
        (Direction.S2C, raw_frame(4, 0, 0, (5).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big")),
         0.001),
        (Direction.C2S, raw_frame(1, 0x4, 1, request), 0.002),
        (Direction.C2S, raw_frame(0, 0x1, 1, b"\x00\x00\x00\x00\x01x"), 0.003),
        (Direction.S2C, raw_frame(1, 0x4, 1, response), 0.004),
        (Direction.S2C, raw_frame(0, 0x1, 1, b"\x00\x00\x00\x00\x02ok"), 0.005)])
    url = serve(str(capture), "--h2c")
    host, port = url.split("//")[1].rsplit(":", 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    body = b"\x00" + (40000).to_bytes(4, "big") + b"y" * 40000
    got: list[h2.events.Event] = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        while conn.remote_settings.max_frame_size == 16384:  # (the server's SETTINGS)
            data = sock.recv(65536)
            assert data, "serve closed the connection before its SETTINGS"
            got.extend(conn.receive_data(data))
        conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
                              (":path", "/pkg.Svc/Big"), ("content-type", "application/grpc")])
        conn.send_data(1, body, end_stream=True)  # (one DATA frame of 40,005 bytes)
        sock.sendall(conn.data_to_send())
        while not any(isinstance(e, (h2.events.StreamEnded, h2.events.ConnectionTerminated,
                                     h2.events.StreamReset)) for e in got):
            data = sock.recv(65536)
            assert data, "serve closed the connection"
            got.extend(conn.receive_data(data))
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in got), got
    assert b"".join(e.data for e in got if isinstance(e, h2.events.DataReceived)) == \
        b"\x00\x00\x00\x00\x02ok"


def test_match_body_tells_calls_of_one_method_apart(tmp_path: Path, serve: Served) -> None:
    """Every gRPC call of a method has the same path: a second client's call got the
    response recorded for another message (in recorded order across clients)."""
    import socket

    import h2.config
    import h2.connection
    import h2.events
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    request = [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
               (":path", "/pkg.Svc/Say"), ("content-type", "application/grpc")]
    enc, senc = hpack.Encoder(), hpack.Encoder()
    frames: list[tuple[Direction, bytes, float]] = [(Direction.S2C, raw_frame(4, 0, 0, b""),
                                                     0.001)]
    for sid, said, answer in ((1, b"\x00\x00\x00\x00\x03ann", b"hi ann"),
                              (3, b"\x00\x00\x00\x00\x03bob", b"hi bob")):
        t = sid / 100
        frames += [
            (Direction.C2S, raw_frame(1, 0x4, sid, enc.encode(request)), t),
            (Direction.C2S, raw_frame(0, 0x1, sid, said), t),
            (Direction.S2C, raw_frame(1, 0x4, sid, senc.encode(
                [(":status", "200"), ("content-type", "application/grpc")])), t),
            (Direction.S2C, raw_frame(0, 0x1, sid, answer), t)]
    capture = h2c_capture(tmp_path / "calls.h2scope", frames)
    url = serve(str(capture), "--h2c", "--match", "method,path,body")
    host, port = url.split("//")[1].rsplit(":", 1)

    def call(message: bytes) -> tuple[str, bytes]:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        got: list[h2.events.Event] = []
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            conn.initiate_connection()
            conn.send_headers(1, request)
            conn.send_data(1, message, end_stream=True)
            sock.sendall(conn.data_to_send())
            while not any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                          for e in got):
                data = sock.recv(65536)
                assert data, got
                got.extend(conn.receive_data(data))
                sock.sendall(conn.data_to_send())
        head = next(dict(e.headers) for e in got if isinstance(e, h2.events.ResponseReceived))
        said.append(head)
        return head[b":status"].decode(), b"".join(e.data for e in got
                                                   if isinstance(e, h2.events.DataReceived))

    said: list[dict[bytes, bytes]] = []

    assert call(b"\x00\x00\x00\x00\x03bob") == ("200", b"hi bob")
    assert call(b"\x00\x00\x00\x00\x03ann") == ("200", b"hi ann")
    assert call(b"\x00\x00\x00\x00\x03bob") == ("200", b"hi bob")  # (again: not the next)
    # (a gRPC call nothing matches: UNIMPLEMENTED, the reason in grpc-message)
    assert call(b"\x00\x00\x00\x00\x03eve") == ("200", b"")
    assert said[-1][b"grpc-status"] == b"12"
    assert b"was recorded 2 times, each with another request body" in \
        said[-1][b"grpc-message"].replace(b"%20", b" "), said[-1]


def test_serve_plays_the_recorded_goaway_after_the_response_it_followed(
        tmp_path: Path, serve: Served) -> None:
    """A gRPC server's GOAWAY ENHANCE_YOUR_CALM 'too_many_pings' was not played back:
    a client's handling of it — the bug to reproduce — could not be."""
    import socket

    import h2.config
    import h2.connection
    import h2.events
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    enc, senc = hpack.Encoder(), hpack.Encoder()
    request = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/x")]
    capture = h2c_capture(tmp_path / "calm.h2scope", [
        (Direction.S2C, raw_frame(4, 0, 0, b""), 0.001),
        (Direction.C2S, raw_frame(1, 0x5, 1, enc.encode(request)), 0.002),
        (Direction.S2C, raw_frame(1, 0x4, 1, senc.encode([(":status", "200")])), 0.003),
        (Direction.S2C, raw_frame(0, 0x1, 1, b"ok"), 0.004),
        (Direction.S2C, raw_frame(7, 0, 0, (1).to_bytes(4, "big") + (0xB).to_bytes(4, "big")
                                  + b"too_many_pings"), 0.005)])

    def fetch(url: str) -> list[h2.events.Event]:
        host, port = url.split("//")[1].rsplit(":", 1)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        got: list[h2.events.Event] = []
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            conn.initiate_connection()
            conn.send_headers(1, request, end_stream=True)
            sock.sendall(conn.data_to_send())
            sock.settimeout(1.0)
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    got.extend(conn.receive_data(data))
                    sock.sendall(conn.data_to_send())
            except TimeoutError:
                pass  # (no GOAWAY: the connection stays open)
        return got

    url = serve(str(capture), "--h2c")
    got = fetch(url)
    assert b"".join(e.data for e in got if isinstance(e, h2.events.DataReceived)) == b"ok"
    (gone,) = [e for e in got if isinstance(e, h2.events.ConnectionTerminated)]
    assert gone.error_code == 0xB and gone.additional_data == b"too_many_pings"
    assert any("GOAWAY ENHANCE_YOUR_CALM 'too_many_pings', as the recorded server sent it "
               "after this response" in line for line in serve.wait_log(url, "GOAWAY"))
    quiet = serve(str(capture), "--h2c", "--no-goaway")
    got = fetch(quiet)
    assert not [e for e in got if isinstance(e, h2.events.ConnectionTerminated)], got
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)
