"""A capture of ``Upgrade: h2c`` connections, through every command that pairs
requests with responses.

curl (``--http2`` on ``http://``) asks the Python h2 origin to upgrade, through
the proxy's reverse http:// mode, which records. Stream 1 of each connection is
the HTTP/1.1 request that asked for the upgrade, answered in HTTP/2 after the
101 (RFC 7540 §3.2) — and Java's HttpClient upgrades every ``http://`` URL so.
HAR had shown each request answered by its 101 with no body, diff compared 200
with 101, and replay and serve refused the capture as having no HTTP/2 in it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from tests.helpers import procs
from tests.helpers.h2server import ServerThread
from tests.helpers.proxy_thread import ProxyThread
from tests.integration.conftest import Served

pytestmark = pytest.mark.peer

PATHS = ("/first", "/second")


def record_upgrades(capture: Path, confdir: Path,
                    fetch: Callable[[str], int]) -> Path:
    """``fetch(url)`` (curl asking for h2c upgrades; it returns the connections it
    made) through the reverse http:// proxy to the Python h2 origin, recorded."""
    from tests.helpers.options import Options

    origin = ServerThread(upgrade=True)
    recorder = CaptureRecorder(CaptureWriter(capture))
    try:
        proxy = ProxyThread(Options(confdir=confdir,
                                    modes=[f"reverse:http://127.0.0.1:{origin.port}"]),
                            [recorder])
        try:
            proxy.wait_closed(fetch(f"http://127.0.0.1:{proxy.port('reverse')}"))
        finally:
            proxy.close()
    finally:
        origin.close()
        recorder.close()
    return capture


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Path:
    def fetch(url: str) -> int:
        for path in PATHS:  # (one connection each: curl upgrades its first request)
            result = procs.run([procs.require("curl"), "-sS", "--http2", f"{url}{path}"])
            assert result.stdout == f"hello {path}\n".encode(), result.stderr
        return len(PATHS)

    return record_upgrades(tmp_path_factory.mktemp("h2c") / "upgraded.h2scope", confdir, fetch)


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_har_has_the_http2_response_of_the_upgrade_request(upgraded: Path,
                                                            tmp_path: Path) -> None:
    har = tmp_path / "up.har"
    assert main(["export", str(upgraded), "--format", "har", "-o", str(har)]) == 0
    entries = json.loads(har.read_text())["log"]["entries"]
    assert [e["request"]["url"].split("/", 3)[3] for e in entries] == ["first", "second"]
    for e, path in zip(entries, PATHS, strict=True):
        assert e["request"]["httpVersion"] == "HTTP/1.1"
        assert (e["response"]["status"], e["response"]["httpVersion"]) == (200, "h2")
        assert e["response"]["content"]["text"] == f"hello {path}\n"
        assert e["_h2scope"]["stream_id"] == 1
        assert e["_h2scope"]["informational"][0][0] == [":status", "101"]
        assert "h2c upgrade (RFC 7540 §3.2)" in e["comment"]


def test_diff_pairs_the_upgraded_streams(upgraded: Path) -> None:
    code, out = run("diff", "--requests", str(upgraded), str(upgraded))
    assert code == 0, out
    assert "B " in out and "2 same, 0 differ" in out, out


def test_the_frame_script_sends_the_upgrade_request_as_headers(upgraded: Path,
                                                                tmp_path: Path) -> None:
    script = tmp_path / "up.yaml"
    assert main(["export", str(upgraded), "--format", "script", "--conn", "1",
                 "-o", str(script)]) == 0
    frames = yaml.safe_load(script.read_text())["frames"]
    assert frames[0]["type"] == "SETTINGS"
    first = frames[1]
    assert (first["type"], first["stream"]) == ("HEADERS", 1)
    assert first["flags"] == ["END_STREAM", "END_HEADERS"]
    names = [n for n, _ in first["headers"]]
    assert names[:4] == [":method", ":scheme", ":authority", ":path"]
    assert not {"connection", "upgrade", "http2-settings", "host"} & set(names)


@pytest.mark.parametrize("mode", ["verbatim", "reencode"])
def test_replay_sends_stream_1_with_prior_knowledge(upgraded: Path, mode: str) -> None:
    origin = ServerThread(upgrade=True)
    try:
        code, out = run("replay", str(upgraded), "--target", f"http://127.0.0.1:{origin.port}",
                        "--mode", mode, "--speed", "0", "--timeout", "5")
    finally:
        origin.close()
    assert code == 0, out
    assert "sends that request as a HEADERS frame on stream 1" in out
    # (the second connection's note is the first's: said so, not left out)
    assert out.count("note: as for connection 1 above") == 1, out
    for path in PATHS:
        assert f"same     stream 1 (GET {path}): 200" in out, out


def test_serve_answers_the_upgrade_request(upgraded: Path, serve: Served) -> None:
    url = serve(str(upgraded), "--h2c")
    for path in PATHS:
        result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                            f"{url}{path}"])
        assert result.stdout == f"hello {path}\n".encode(), result.stderr


def test_logs_summaries_and_the_viewer_name_the_upgrade_request(upgraded: Path) -> None:
    """Stream 1 had no request in the slowest-streams list nor in the viewer's lanes,
    the viewer called the connection http/1.1 while check said h2c, and the text log
    gave the HTTP2-Settings header's length, not its settings."""
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    code, out = run("check", str(upgraded))
    assert code == 0, out
    assert "2 connections (2 h2c)" in out
    slowest = out.split("slowest streams:")[1]
    for path in PATHS:
        assert "stream 1  GET 127.0.0.1:" in slowest and f"{path}\n" in slowest, slowest
    code, text = run("export", str(upgraded), "--format", "text")
    assert code == 0
    lines = [ln for ln in text.splitlines() if "upgraded to h2c" in ln]
    assert len(lines) == 2 and all("HTTP2-Settings: " in ln and "=" in ln for ln in lines)
    assert "stream 1 carries GET /first" in lines[0]
    capture = CaptureFile(upgraded)
    session = Session(capture)
    try:
        load(session, capture)
        for conn in session.conns.values():
            assert conn.meta["protocol"] == "h2c"
            request = dict(conn.stream(1).request_headers or ())
            assert request[":method"] == "GET" and request[":path"] in PATHS
    finally:
        capture.close()


@pytest.fixture(scope="module")
def upgraded_post(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Path:
    """curl --http2 -d: an upgrade request with a body, then a GET on stream 3."""
    def fetch(url: str) -> int:
        result = procs.run([procs.require("curl"), "-sS", "--http2", "-d", "hello=world",
                            f"{url}/echo", "--next", "--http2", f"{url}/after"])
        assert result.stdout.startswith(b"hello /echo\n"), result.stderr
        assert result.stdout.endswith(b"hello /after\n"), result.stderr
        return 1

    return record_upgrades(tmp_path_factory.mktemp("h2c-post") / "post.h2scope", confdir,
                           fetch)


def test_an_upgrade_request_with_a_body_is_neither_replayed_nor_compared(
        upgraded_post: Path, tmp_path: Path) -> None:
    """Its body is in the HTTP/1.1 bytes only, so it is not sent; it had then been
    compared all the same — stream 1 paired with the replay's stream 3, stream 3 'no
    such stream': exit 3. And its HAR postData had no mimeType (the HTTP/1.1 name
    'Content-Type' looked up as HTTP/2's)."""
    origin = ServerThread(upgrade=True)
    try:
        code, out = run("replay", str(upgraded_post), "--target",
                        f"http://127.0.0.1:{origin.port}", "--speed", "0", "--timeout", "5")
    finally:
        origin.close()
    assert code == 0, out
    assert "so stream 1 is neither sent nor compared (its request had a body" in out
    assert "same     stream 3 (GET /after): 200" in out and "stream 1 (POST" not in out
    # Its only stream that one: nothing compared, said, and no pass (it had been a
    # blank line and exit 0).
    only = tmp_path / "only.h2scope"
    assert main(["export", str(upgraded_post), "--format", "capture", "-o", str(only)]) == 0
    from proxy.capture.format import RecordType
    from proxy.capture.reader import CaptureReader

    with CaptureReader(only) as reader, CaptureWriter(tmp_path / "first.h2scope") as w:
        for rec in reader.records():  # (up to the client's request on stream 3)
            if rec.type == RecordType.FRAME and rec.direction == 0 and rec.body[3] == 1 \
                    and rec.body[8] == 3:
                break
            if rec.type != RecordType.END:
                w.copy(rec.type, rec.flags, rec.conn_id, t=rec.t, wall=rec.wall, body=rec.body)
    origin = ServerThread(upgrade=True)
    try:
        code, out = run("replay", str(tmp_path / "first.h2scope"), "--target",
                        f"http://127.0.0.1:{origin.port}", "--speed", "0", "--timeout", "2")
    finally:
        origin.close()
    assert code == 1 and "\n\n" not in out, out
    assert "no stream compared" in out
    har = tmp_path / "post.har"
    assert main(["export", str(upgraded_post), "--format", "har", "-o", str(har)]) == 0
    post = json.loads(har.read_text())["log"]["entries"][0]["request"]["postData"]
    assert post == {"mimeType": "application/x-www-form-urlencoded", "text": "hello=world"}
