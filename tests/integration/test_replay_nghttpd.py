"""``h2scope replay`` against real servers, with captures recorded through the real proxy.

nghttp fetches two resources through the proxy (reverse mode) from nghttpd;
the proxy's CaptureRecorder writes the capture. Replaying it against the same
nghttpd must reproduce every stream (exit 0) in both modes; against another
server (the python-hyper h2 origin, which answers ``hello <path>``) the
replay exits 3 and says what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def nghttpd_tls(docroot: Path, origin_cert: CertFiles) -> Iterator[int]:
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key) as port:
        yield port


def fetch_through(proxy: ProxyThread) -> None:
    """nghttp fetches /index.html and /big.bin (one connection) through the proxy."""
    url = f"https://127.0.0.1:{proxy.port('reverse')}"
    result = procs.run([procs.require("nghttp"), "-n", f"{url}/index.html", f"{url}/big.bin"])
    assert result.returncode == 0, result.stdout + result.stderr
    proxy.wait_closed()


def record(make_proxy: Callable[..., ProxyThread], origin_port: int, path: Path,
           *, max_data_bytes: int | None = None) -> Path:
    """Record :func:`fetch_through` to ``path`` with the proxy's CaptureRecorder."""
    recorder = CaptureRecorder(CaptureWriter(path, max_data_bytes=max_data_bytes))
    try:
        proxy = make_proxy(modes=[f"reverse:https://127.0.0.1:{origin_port}"],
                           sinks=(recorder,))
        fetch_through(proxy)
        proxy.close()
    finally:
        recorder.close()
    return path


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory, confdir: Path, origin_cert: CertFiles,
            nghttpd_tls: int) -> Iterator[Path]:
    from tests.helpers.options import Options

    path = tmp_path_factory.mktemp("replay") / "nghttp.h2scope"
    recorder = CaptureRecorder(CaptureWriter(path))
    proxy = ProxyThread(Options(confdir=confdir, upstream_ca=origin_cert.cert,
                                modes=[f"reverse:https://127.0.0.1:{nghttpd_tls}"]),
                        [recorder])
    try:
        fetch_through(proxy)
    finally:
        proxy.close()
        recorder.close()
    yield path


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["replay", *args, "--speed", "0", "--timeout", "5"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("mode", ["verbatim", "reencode"])
def test_replay_against_the_same_server_matches_every_stream_and_exits_0(
        capture: Path, nghttpd_tls: int, origin_cert: CertFiles, mode: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = replay(capsys, str(capture), "--target",
                            f"https://127.0.0.1:{nghttpd_tls}", "--upstream-ca",
                            str(origin_cert.cert), "--mode", mode)
    assert code == 0, out + err
    assert "2 streams compared: all match" in out
    assert "same     stream 13 (GET /index.html): 200, 45 bytes" in out
    assert "(GET /big.bin): 200, 1048576 bytes" in out


def test_replay_of_a_recording_made_through_the_proxy_records_itself(
        capture: Path, nghttpd_tls: int, origin_cert: CertFiles, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.capture.replay import replay as replay_capture
    from proxy.replay.compare import outcomes

    out_file = tmp_path / "replayed.h2scope"
    code, out, err = replay(capsys, str(capture), "--target",
                            f"https://127.0.0.1:{nghttpd_tls}", "--upstream-ca",
                            str(origin_cert.cert), "--record", str(out_file), "-v")
    assert code == 0, out + err
    assert (out_file.stat().st_mode & 0o777) == 0o600
    # -v prints both directions like the headless proxy: the server's DATA too.
    assert "← " in out and "DATA" in out
    streams = outcomes(list(replay_capture(out_file)))
    assert [(s.path, s.status) for s in streams if s.method] == \
        [("/index.html", "200"), ("/big.bin", "200")]
    # The recorded SETTINGS ACK waited for the replayed server's SETTINGS (RFC 9113
    # §6.5.3): the replay's own recording has no protocol error to report.
    capsys.readouterr()
    assert main(["check", str(out_file)]) == 0, capsys.readouterr().out


def test_replay_verifies_the_server_certificate_unless_insecure(
        capture: Path, nghttpd_tls: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = replay(capsys, str(capture), "--target",
                            f"https://127.0.0.1:{nghttpd_tls}")
    assert code == 1
    assert "certificate did not verify" in err and "--insecure" in err
    code, out, err = replay(capsys, str(capture), "--target",
                            f"https://127.0.0.1:{nghttpd_tls}", "--insecure")
    assert code == 0, out + err


@pytest.mark.parametrize("mode", ["verbatim", "reencode"])
def test_replay_against_a_server_that_answers_differently_exits_3_with_a_readable_diff(
        capture: Path, origin_cert: CertFiles, mode: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = ServerThread(origin_cert.cert, origin_cert.key)
    try:
        code, out, err = replay(capsys, str(capture), "--target",
                                f"https://127.0.0.1:{other.port}", "--upstream-ca",
                                str(origin_cert.cert), "--mode", mode)
    finally:
        other.close()
    assert code == 3, out + err
    assert "DIFFERS  stream 13 (GET /index.html):" in out
    # The h2 origin answers "hello /index.html\n" (18 bytes) instead of the file.
    assert "body: 45 bytes, sha256 " in out and "→ 18 bytes, sha256 " in out
    assert "response header names: missing " in out  # nghttpd's server, last-modified...
    assert "2 streams compared: 2 differ" in out


def test_replay_against_a_server_that_drops_a_trailer_names_the_trailer(
        make_proxy: Callable[..., ProxyThread], docroot: Path, nghttpd_tls: int,
        origin_cert: CertFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Recorded from an nghttpd that sends a ``server`` trailer after its ``server``
    header, replayed against one that sends none: the names of the response were
    the same set, so only the announcing ``trailer`` header was seen to go."""
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["--trailer=server: edge"]) as port:
        path = record(make_proxy, port, tmp_path / "trailer.h2scope")
    code, out, err = replay(capsys, str(path), "--target", f"https://127.0.0.1:{nghttpd_tls}",
                            "--upstream-ca", str(origin_cert.cert))
    assert code == 3, out + err
    assert out.count("response header names: missing trailer\n") == 2
    assert out.count("response trailer names: missing server\n") == 2


def test_replay_of_a_capture_with_truncated_data_says_what_it_cannot_reproduce(
        make_proxy: Callable[..., ProxyThread], nghttpd_tls: int, origin_cert: CertFiles,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = record(make_proxy, nghttpd_tls, tmp_path / "cut.h2scope", max_data_bytes=100)
    code, out, err = replay(capsys, str(path), "--target", f"https://127.0.0.1:{nghttpd_tls}",
                            "--upstream-ca", str(origin_cert.cert))
    # Lengths still compare (the frame headers say them); SHA-256 cannot.
    assert code == 0, out + err
    assert "(GET /big.bin): the recorded response body was truncated" in out
    assert "only its length (1048576 bytes) is compared" in out
    assert "1048576 bytes, sha256 not recorded in full" in out


def test_replay_against_h2c_with_prior_knowledge(capture: Path, docroot: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with procs.nghttpd(docroot) as port:
        code, out, err = replay(capsys, str(capture), "--target", f"http://127.0.0.1:{port}",
                                "--mode", "reencode", "--authority", f"127.0.0.1:{port}")
    assert code == 0, out + err
    assert "all match" in out


def test_replay_usage_errors_exit_2(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(capture), "--target", "ftp://x"]) == 2
    assert "http:// or https://" in capsys.readouterr().err
    assert main(["replay", str(capture), "--target", "https://x", "--authority", "y"]) == 2
    assert "--mode reencode" in capsys.readouterr().err
    assert main(["replay", str(capture), "--target", "https://x", "--conn", "99"]) == 2
    assert "no HTTP/2 connection 99" in capsys.readouterr().err


def test_replay_presents_a_client_certificate_to_a_server_that_asks(
        capture: Path, docroot: Path, origin_cert: CertFiles, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.test_proxy_client_certs import client_pem

    pem = client_pem(tmp_path)
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["--verify-client"]) as port:
        target = ["--target", f"https://127.0.0.1:{port}", "--upstream-ca",
                  str(origin_cert.cert)]
        code, out, err = replay(capsys, str(capture), *target)
        assert code != 0  # no certificate: nghttpd ends the connection
        code, out, err = replay(capsys, str(capture), *target, "--client-certs", str(pem))
        assert code == 0, out + err
        assert "2 streams compared: all match" in out
    code, out, err = replay(capsys, str(capture), *target, "--client-certs",
                            str(origin_cert.cert))  # a certificate without its key
    assert code == 2 and "--client-certs:" in err and "private key" in err


def test_the_recording_names_the_servers_address_for_har(capture: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """The proxy records the address it connected to (HAR's serverIPAddress)."""
    import json

    har = tmp_path / "out.har"
    assert main(["export", str(capture), "--format", "har", "-o", str(har)]) == 0
    entries = json.loads(har.read_text())["log"]["entries"]
    assert entries and {e.get("serverIPAddress") for e in entries} == {"127.0.0.1"}


def test_a_target_that_gives_no_http2_answer_is_a_failed_replay_not_a_difference(
        capture: Path, nghttpd_tls: int, capsys: pytest.CaptureFixture[str]) -> None:
    """h2c to a TLS port: the server hangs up without a byte of HTTP/2. That is a
    replay that could not run (exit 1, with a hint), not responses that differ."""
    code, out, err = replay(capsys, str(capture), "--target", f"http://127.0.0.1:{nghttpd_tls}")
    assert code == 1, (out, err)
    assert "closed the connection without an HTTP/2 answer" in err
    assert "it may want TLS: try https://" in err
    assert "DIFFERS" not in out


def test_a_target_that_is_not_http2_or_says_nothing_is_a_replay_that_could_not_run(
        capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An HTTP/1.1 server answers the preface with a 400 page; another accepts and
    says nothing: neither is a server whose answers differ (exit 3, and a finding
    about h2scope's own SETTINGS ACK), but a replay that could not run (exit 1)."""
    import contextlib
    import socket
    import threading

    # An HTTP/1.1 server as Python's http.server answers the preface (400, Bad
    # request version), but one that then reads on until the client closes: a
    # server that closes with bytes unread makes the kernel reset the connection,
    # and the reset may drop the page before the client reads it.
    body = b"<p>Bad request version ('HTTP/2.0')</p>"
    page = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    h1 = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = h1.accept()
        with conn:
            conn.settimeout(10)
            got = b""
            while b"\r\n\r\n" not in got and (chunk := conn.recv(65536)):
                got += chunk
            conn.sendall(page)
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                while conn.recv(65536):
                    pass
    serving = threading.Thread(target=answer, daemon=True)
    serving.start()
    try:
        code, out, err = replay(capsys, str(capture), "--target",
                                f"http://127.0.0.1:{h1.getsockname()[1]}")
    finally:
        serving.join(10)
        h1.close()
    assert code == 1, (out, err)
    assert "does not speak HTTP/2" in err and "not a SETTINGS frame" in err
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    try:
        capsys.readouterr()
        code = main(["replay", str(capture), "--target",
                     f"http://127.0.0.1:{listener.getsockname()[1]}", "--speed", "0",
                     "--timeout", "1"])
        err = capsys.readouterr().err
    finally:
        for s in held:
            s.close()
        listener.close()
    assert code == 1 and "accepted the connection and sent nothing for 1 s" in err, err


def test_replay_values_finds_a_changed_trailer_value_the_names_miss(
        capture: Path, docroot: Path, origin_cert: CertFiles,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A server sending a wrong x-checksum passed: replay compared names only. With
    --values (as diff's) the value counts; --ignore leaves a name out again."""
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["--trailer=x-checksum: WRONG"]) as port:
        target = ["--target", f"https://127.0.0.1:{port}", "--upstream-ca",
                  str(origin_cert.cert)]
        recorded = capture.parent / "with-trailer.h2scope"
        if not recorded.exists():
            with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                               extra=["--trailer=x-checksum: abc123"]) as first:
                code, out, err = replay(capsys, str(capture), "--target",
                                        f"https://127.0.0.1:{first}", "--upstream-ca",
                                        str(origin_cert.cert), "--record", str(recorded))
                assert code == 3, out + err  # (the original had no trailer: new x-checksum)
        code, out, err = replay(capsys, str(recorded), *target)
        assert code == 0, out + err  # names only: the same
        code, out, err = replay(capsys, str(recorded), *target, "--values")
        assert code == 3, out + err
        assert "trailer x-checksum: 'abc123' → 'WRONG'" in out, out
        code, out, err = replay(capsys, str(recorded), *target, "--values",
                                "--ignore", "x-checksum")
        assert code == 0, out + err


@pytest.mark.parametrize("mode", ["verbatim", "reencode"])
def test_a_fast_replay_keeps_within_the_servers_concurrent_streams(
        make_proxy: Callable[..., ProxyThread], docroot: Path, origin_cert: CertFiles,
        tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    """h2load kept 4 streams open at a time, as the server allows; replayed as fast as
    possible every request went out at once, and the same server refused them all
    (8,810 'differences' on a real capture, and thousands of asyncio warnings)."""
    capture = tmp_path / "h2load.h2scope"
    with procs.nghttpd(docroot, cert=origin_cert.cert, key=origin_cert.key,
                       extra=["--max-concurrent-streams=4"]) as port:
        recorder = CaptureRecorder(CaptureWriter(capture))
        try:
            proxy = make_proxy(modes=[f"reverse:https://127.0.0.1:{port}"], sinks=(recorder,))
            result = procs.run([procs.require("h2load"), "-n", "300", "-c", "1", "-m", "4",
                                f"https://127.0.0.1:{proxy.port('reverse')}/index.html"])
            assert "300 succeeded" in result.stdout.decode(), result.stdout
            proxy.wait_closed()
            proxy.close()
        finally:
            recorder.close()
        code, out, err = replay(capsys, str(capture), "--target", f"https://127.0.0.1:{port}",
                                "--upstream-ca", str(origin_cert.cert), "--mode", mode)
    assert code == 0, out[-2000:] + err[-2000:]
    assert "300 streams compared: all match" in out
    assert "socket.send" not in out + err
