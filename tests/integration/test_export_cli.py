"""``h2scope export`` from the command line: formats, selection, output targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proxy.capture.replay import replay_observer
from proxy.capture.writer import CaptureWriter
from proxy.observe.events import FrameObserved
from tests.unit.capture.traffic import Session, record_session


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "two.h2scope"
    session = Session()
    with CaptureWriter(path) as writer:
        record_session(writer, 1, session=session)
        record_session(writer, 2, t0=2000.0, session=session)
    return path


def _run(*args: str, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "export", *args], capture_output=True,
                          text=True, timeout=60, check=check, env=env)


def _h2_exchange(w: CaptureWriter, request: list[tuple[str, str]],
                 response: list[tuple[str, str]]) -> None:
    """Connection 1 of ``w``: one request and its response between real h2 peers."""
    import h2.config
    import h2.connection

    from proxy.capture.tap import RecordingObserver
    from tests.unit.capture.traffic import META, exchange

    tap = RecordingObserver(w, 1, META, t=1.0)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding="utf-8"))
    client.initiate_connection()
    client.send_headers(1, request, end_stream=True)
    exchange(tap, client, server, 1.1)
    server.send_headers(1, response, end_stream=True)
    exchange(tap, client, server, 1.2)
    tap.close(t=1.3)


def _frames(capture: Path, conn: int | None = None,
            stream: int | None = None) -> list[FrameObserved]:
    return [ev for c, ev in replay_observer(capture) if isinstance(ev, FrameObserved)
            and (conn is None or c == conn) and (stream is None or ev.frame.stream_id == stream)]


def test_jsonl_has_one_object_per_frame_with_decoded_fields(capture: Path) -> None:
    lines = _run(str(capture), "--format", "jsonl").stdout.splitlines()
    everything = [json.loads(ln) for ln in lines]
    objs = [o for o in everything if "type" in o]
    assert len(objs) == len(_frames(capture))
    # Between the frames, the events a log shows: settings taking effect, here.
    events = [o for o in everything if "type" not in o]
    assert events and all("event" in o and o["conn"] in (1, 2) for o in events)
    assert {o["conn"] for o in objs} == {1, 2}
    headers = next(o for o in objs if o["type"] == "HEADERS")
    assert headers["block"]["headers"][0] == {"name": ":method", "value": "GET"}
    assert headers["block"]["fields"][0]["representation"] == "indexed"
    ping = next(o for o in objs if o["type"] == "PING")
    assert ping["opaque_hex"] == b"h2scope!".hex()


def test_conn_and_stream_select_frames(capture: Path) -> None:
    objs = [json.loads(ln) for ln in _run(str(capture), "--format", "jsonl", "--conn", "2",
                                          "--stream", "3").stdout.splitlines()]
    assert objs and all(o["conn"] == 2 and o["stream_id"] == 3 for o in objs)
    assert len(objs) == len(_frames(capture, conn=2, stream=3))
    text = _run(str(capture), "--format", "text", "--conn", "1", "-o", "-").stdout
    assert "#1 " in text and "#2 " not in text


def test_conn_takes_a_list_or_a_range(capture: Path, tmp_path: Path) -> None:
    """Several connections at once (one leg of a chain imported from one pcap):
    every format but script, and --format capture for diff."""
    objs = [json.loads(ln) for ln in _run(str(capture), "--format", "jsonl", "--conn",
                                          "2,1").stdout.splitlines()]
    assert {o["conn"] for o in objs} == {1, 2}
    assert len([o for o in objs if "type" in o]) == len(_frames(capture))
    text = _run(str(capture), "--format", "text", "--conn", "2-2").stdout
    assert "#2 " in text and "#1 " not in text
    # (each connection's close record too: one line per other connection had leaked)
    three = tmp_path / "three.h2scope"
    with CaptureWriter(three) as writer:
        for conn in (1, 2, 3):
            record_session(writer, conn, t0=1000.0 * conn)
    for fmt in ("text", "jsonl"):
        out = _run(str(three), "--format", fmt, "--conn", "1,2").stdout
        assert "#3 " not in out and '"conn": 3' not in out, out[-500:]
    # A filter: the connections it shows frames of, not the others' opened/closed lines.
    out = _run(str(three), "--format", "text", "--filter", "conn:2 type:HEADERS").stdout
    assert "#1 " not in out and "#3 " not in out, out
    assert "#2   * opened" in out and "#2   * closed" in out, out
    part = tmp_path / "part.h2scope"
    _run(str(capture), "--format", "capture", "--conn", "1-2", "-o", str(part))
    assert [c for c, ev in replay_observer(part) if isinstance(ev, FrameObserved)] == [
        c for c, ev in replay_observer(capture) if isinstance(ev, FrameObserved)]
    run = _run(str(capture), "--format", "capture", "--conn", "2,5-6", "-o",
               str(tmp_path / "x.h2scope"), check=False)
    assert run.returncode == 2 and "no connection 5, 6" in run.stderr
    run = _run(str(capture), "--format", "har", "--conn", "1,3", "-o", "-", check=False)
    assert run.returncode == 2 and "no connection 3; its connections are 1, 2" in run.stderr
    run = _run(str(capture), "--format", "script", "--conn", "1,2", check=False)
    assert run.returncode == 2 and "--format script takes one connection" in run.stderr
    run = _run(str(capture), "--format", "text", "--conn", "3-1", check=False)
    assert run.returncode == 2 and "'3-1' is not a range of connection ids" in run.stderr


def test_text_annotate_shows_each_fields_hpack_encoding(capture: Path) -> None:
    plain = _run(str(capture), "--format", "text", "--conn", "1").stdout
    lines = _run(str(capture), "--format", "text", "--conn", "1", "--annotate").stdout
    assert "; idx static:2" not in plain
    assert "    :method: GET    ; idx static:2 (1 B)\n" in lines
    assert "; block " in lines and "decoded (RFC 7541 size); table 0→" in lines
    # the same frames, the same lines but for the annotations
    assert [ln.split("    ; ")[0] for ln in lines.splitlines()
            if not ln.strip().startswith("; block")] == plain.splitlines()


def test_text_is_the_headless_line_format(capture: Path) -> None:
    lines = _run(str(capture), "--format", "text", "--conn", "1").stdout.splitlines()
    frame_lines = [ln for ln in lines if " len=" in ln]
    assert len(frame_lines) == len(_frames(capture, conn=1))
    assert any("HEADERS [END_STREAM,END_HEADERS] len=" in ln and "GET example.test/index.html"
               in ln for ln in frame_lines)
    assert any("RST_STREAM" in ln and "CANCEL" in ln for ln in frame_lines)
    assert "opened from 127.0.0.1:51001" in lines[0]
    assert any("closed by client" in ln for ln in lines)
    # The connection lines of the live log, from the recorded metadata.
    assert lines[1].endswith("* TLS server leg TLSv1.3 TLS_AES_128_GCM_SHA256 alpn=h2 "
                             "(offered h2,http/1.1) sni=- cert "  # (no leg SNI in META)
                             "subject=CN=example.test issuer=CN=test CA sans=- not_after=?")
    assert lines[2].endswith("* TLS client leg TLSv1.3 TLS_AES_128_GCM_SHA256 alpn=h2 "
                             "(offered h2,http/1.1) sni=example.test")


def test_output_file_and_stdout_agree(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.har"
    assert _run(str(capture), "--format", "har", "-o", str(out)).stdout == ""
    assert json.loads(out.read_text()) == json.loads(_run(str(capture), "--format",
                                                          "har").stdout)


def test_missing_or_foreign_file_is_a_usage_error(tmp_path: Path) -> None:
    run = _run(str(tmp_path / "nope.h2scope"), "--format", "text", check=False)
    assert run.returncode == 2 and "no such capture" in run.stderr
    other = tmp_path / "other.bin"
    other.write_bytes(b"\x00" * 100)
    run = _run(str(other), "--format", "text", check=False)
    assert run.returncode == 2 and "not an h2scope capture" in run.stderr


def test_damaged_capture_exports_what_is_intact_and_says_where(capture: Path,
                                                               tmp_path: Path) -> None:
    cut = tmp_path / "cut.h2scope"
    data = capture.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    run = _run(str(cut), "--format", "jsonl")
    assert run.stdout.count("\n") > 10
    assert "byte offset" in run.stderr and "torn" in run.stderr


def test_script_lists_client_frames_of_one_connection(capture: Path) -> None:
    script = yaml.safe_load(_run(str(capture), "--format", "script", "--conn", "2").stdout)
    assert script["h2scope_script"] == 1 and script["connection"] == 2
    assert script["server"]["host"] == "example.test" and script["preface"] is True
    frames = script["frames"]
    types = [f["type"] for f in frames]
    for t in ("SETTINGS", "HEADERS", "DATA", "WINDOW_UPDATE", "PING", "PRIORITY", "RST_STREAM",
              "GOAWAY"):
        assert t in types, t
    client_frames = [ev for ev in _frames(capture, conn=2) if ev.direction == 0]
    assert len(frames) == len(client_frames)
    first = next(f for f in frames if f["type"] == "HEADERS")
    assert first["headers"][:2] == [[":method", "GET"], [":scheme", "https"]]
    assert first["flags"] == ["END_STREAM", "END_HEADERS"]
    data = next(f for f in frames if f["type"] == "DATA")
    assert data["text"] == "hello world" and data["padding"] == 5
    settings = next(f for f in frames if f["type"] == "SETTINGS" and "settings" in f
                    and ["INITIAL_WINDOW_SIZE", 1 << 20] in f["settings"])
    assert settings["delay"] >= 0
    assert next(f for f in frames if f["type"] == "RST_STREAM")["error"] == "CANCEL"
    assert next(f for f in frames if f["type"] == "PRIORITY")["priority"]["weight"] == 32
    assert all(f["delay"] >= 0 for f in frames)


def test_script_of_a_missing_connection_is_a_usage_error(capture: Path) -> None:
    run = _run(str(capture), "--format", "script", "--conn", "9", check=False)
    assert run.returncode == 2 and "no connection 9" in run.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "har", "text", "pcapng"])
def test_a_missing_connection_is_a_usage_error_naming_the_ones_there(capture: Path, fmt: str,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / f"out.{fmt}"
    run = _run(str(capture), "--format", fmt, "--conn", "9", "-o", str(out), check=False)
    assert run.returncode == 2
    assert "no connection 9; its connections are 1, 2" in run.stderr
    assert not out.exists()


def test_a_stream_with_no_frames_is_a_usage_error(capture: Path) -> None:
    run = _run(str(capture), "--format", "text", "--conn", "1", "--stream", "999", check=False)
    assert run.returncode == 2 and "nothing on stream 999 of connection 1" in run.stderr
    assert "; its streams are 1, 2, 3, " in run.stderr  # what it has instead
    assert run.stdout == ""
    # Without --conn, each connection's streams.
    run = _run(str(capture), "--format", "text", "--stream", "999", check=False)
    assert run.returncode == 2 and "its streams are #1: 1, 2, 3, " in run.stderr, run.stderr
    assert "#2: " in run.stderr


def test_filter_selects_frames_with_their_stream_headers(capture: Path) -> None:
    """``status:201`` keeps every frame of the POST's stream, on both connections:
    its response and — the whole capture being known, as in the UI — its request
    HEADERS and body, which came before the status."""
    objs = [json.loads(ln) for ln in _run(str(capture), "--format", "jsonl", "--filter",
                                          "status:201").stdout.splitlines()]
    assert {o["conn"] for o in objs} == {1, 2}
    for conn in (1, 2):
        mine = [o for o in objs if o["conn"] == conn]
        assert {o["stream_id"] for o in mine} == {3}
        assert (mine[0]["type"], mine[0]["direction"]) == ("HEADERS", "c2s")
        assert {"name": ":method", "value": "POST"} in mine[0]["block"]["headers"]
        response = next(o for o in mine if o["direction"] == "s2c" and o["type"] == "HEADERS")
        assert {"name": ":status", "value": "201"} in response["block"]["headers"]
        stream = _frames(capture, conn=conn, stream=3)
        assert [o["seq"] for o in mine] == [ev.seq for ev in stream]
    # A request body alone: the stream's method and the direction.
    bodies = [json.loads(ln) for ln in _run(str(capture), "--format", "jsonl", "--filter",
                                            "method:POST type:DATA dir:c2s").stdout.splitlines()]
    assert bodies and {(o["type"], o["direction"]) for o in bodies} == {("DATA", "c2s")}


def test_filter_in_text_keeps_connection_lines(capture: Path) -> None:
    run = _run(str(capture), "--format", "text", "--filter", "type:PING host:example.test")
    lines = run.stdout.splitlines()
    frame_lines = [ln for ln in lines if " len=" in ln]
    pings = [ev for ev in _frames(capture) if ev.frame.type_name == "PING"]
    assert pings and len(frame_lines) == len(pings)
    assert all(" PING " in ln for ln in frame_lines)
    assert sum("opened from" in ln for ln in lines) == 2
    assert run.stderr == ""
    none = _run(str(capture), "--format", "jsonl", "--filter", "host:elsewhere.test")
    assert none.stdout == "" and "no frame matches --filter 'host:elsewhere.test'" in none.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--format", "text", "--filter", "tpye:DATA"), "unknown filter key 'tpye'"),
    (("--format", "har", "--filter", "type:DATA"), "applies to --format text and jsonl"),
])
def test_a_filter_that_cannot_apply_is_a_usage_error(capture: Path, args: tuple[str, ...],
                                                     message: str) -> None:
    run = _run(str(capture), *args, check=False)
    assert run.returncode == 2 and message in run.stderr and run.stdout == ""


def test_exports_are_created_private_like_their_capture(capture: Path, tmp_path: Path) -> None:
    """An export holds what the capture holds (cookies, tokens): mode 0600, also
    when it replaces a file that was readable by others."""
    import stat

    for fmt in ("har", "pcapng", "text"):
        out = tmp_path / f"out.{fmt}"
        out.write_bytes(b"old")
        out.chmod(0o644)
        _run(str(capture), "--format", fmt, "-o", str(out))
        assert stat.S_IMODE(out.stat().st_mode) == 0o600, fmt
        assert out.read_bytes() != b"old"


def test_a_failed_export_leaves_the_output_file_as_it_was(capture: Path, tmp_path: Path) -> None:
    """A usage error found after reading (no such connection or stream) writes
    nothing: a file already at -o is kept, and no temporary file is left."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for extra in (["--conn", "9"], ["--stream", "99"]):
        got = _run(str(capture), "--format", "text", *extra, "-o", str(notes), check=False)
        assert got.returncode == 2 and "has no" in got.stderr
        assert notes.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    # A successful export replaces it, private (mode 0600).
    assert _run(str(capture), "--format", "text", "-o", str(notes)).returncode == 0
    assert " len=" in notes.read_text() and notes.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_exporting_a_capture_over_itself_is_refused(capture: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c.h2scope"
    copy.write_bytes(capture.read_bytes())
    got = _run(str(copy), "--format", "text", "-o", str(copy), check=False)
    assert got.returncode == 2 and "is the capture being exported" in got.stderr
    assert copy.read_bytes() == capture.read_bytes()


def test_replay_refuses_to_record_over_its_own_capture_and_a_bad_speed(
        capture: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c.h2scope"
    copy.write_bytes(capture.read_bytes())
    base = [sys.executable, "-m", "proxy", "replay", str(copy), "--target", "http://127.0.0.1:9"]
    got = subprocess.run([*base, "--record", str(copy)], capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 2 and "is the capture being replayed" in got.stderr
    assert copy.read_bytes() == capture.read_bytes()
    # A replay that cannot run leaves a file that was at --record as it was.
    notes = tmp_path / "notes.h2scope"
    notes.write_bytes(b"my earlier replay")
    got = subprocess.run([*base, "--record", str(notes), "--timeout", "2"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 1, got.stderr
    assert notes.read_bytes() == b"my earlier replay"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h2scope", "notes.h2scope"]
    for speed in ("nan", "inf", "-1"):
        got = subprocess.run([*base, "--speed", speed], capture_output=True, text=True,
                             timeout=60)
        assert got.returncode == 2 and "--speed must be 0" in got.stderr, got.stderr
    for timeout in ("0", "-1", "nan"):  # (0 was taken, then failed: exit 1)
        got = subprocess.run([*base, "--timeout", timeout], capture_output=True, text=True,
                             timeout=60)
        assert got.returncode == 2 and "--timeout must be a positive" in got.stderr, got.stderr


def test_a_redacted_capture_keeps_everything_but_the_secrets(capture: Path,
                                                            tmp_path: Path) -> None:
    """--format capture --redact: the chosen connection, every frame, the same header
    lists and findings but for the credential values; the file holds no secret."""
    out = tmp_path / "shared.h2scope"
    got = _run(str(capture), "--format", "capture", "--conn", "2", "--redact", "-o", str(out))
    assert "1 connection" in got.stderr and "1 header value redacted" in got.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    original = _run(str(capture), "--format", "text", "--conn", "2").stdout.splitlines()
    shared = _run(str(out), "--format", "text").stdout.splitlines()
    assert len(original) == len(shared)
    differ = [(a, b) for a, b in zip(original, shared, strict=True) if a != b]
    assert ("                      set-cookie: id=42; Secure",
            "                      set-cookie: REDACTED") in differ
    for a, b in differ:  # the rest: only the re-encoded blocks' lengths
        assert a == b or a.split(" len=")[0] == b.split(" len=")[0] or "set-cookie" in a
    assert b"id=42" not in out.read_bytes()
    # Without --redact: the connection's records as they were.
    plain = tmp_path / "plain.h2scope"
    _run(str(capture), "--format", "capture", "--conn", "1", "-o", str(plain))
    assert _run(str(plain), "--format", "text").stdout == \
        _run(str(capture), "--format", "text", "--conn", "1").stdout


def test_redacting_http1_finds_a_header_line_split_across_two_reads(tmp_path: Path) -> None:
    from proxy.observe.enums import Direction

    src = tmp_path / "h1.h2scope"
    with CaptureWriter(src) as w:
        w.connection(1, {"client": {"ip": "127.0.0.1", "port": 1}, "mode": "regular",
                         "protocol": "http/1.1", "target": "a.test:80"}, t=1.0, wall=1000.0)
        w.raw(1, Direction.C2S, b"GET / HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer se",
              t=1.1, wall=1000.1)
        w.raw(1, Direction.C2S, b"krit\r\nCookie: sid=abc\r\n\r\n", t=1.2, wall=1000.2)
        w.http1(1, Direction.C2S, b"GET / HTTP/1.1\r\nAuthorization: Bearer sekrit\r\n\r\n",
                t=1.1, wall=1000.2)
        w.raw(1, Direction.S2C, b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=xyz\r\n"
              b"Content-Length: 2\r\n\r\nok", t=1.3, wall=1000.3)
        w.close_connection(1, t=1.4, wall=1000.4, closed_by="client")
    out = tmp_path / "h1-shared.h2scope"
    got = _run(str(src), "--format", "capture", "--redact", "-o", str(out))
    assert "3 header values redacted" in got.stderr, got.stderr  # (the HTTP1 record repeats one)
    data = out.read_bytes()
    for secret in (b"sekrit", b"sid=abc", b"sid=xyz", b"Bearer se"):
        assert secret not in data
    from proxy.capture.reader import CaptureReader

    with CaptureReader(out) as reader:
        raw = [r for r in reader.records() if r.type == 3]
    sent = b"".join(r.body for r in raw if r.direction is Direction.C2S)
    got_back = b"".join(r.body for r in raw if r.direction is Direction.S2C)
    assert sent == (b"GET / HTTP/1.1\r\nHost: a.test\r\nAuthorization: REDACTED\r\n"
                    b"Cookie: REDACTED\r\n\r\n")
    assert got_back == (b"HTTP/1.1 200 OK\r\nSet-Cookie: REDACTED\r\nContent-Length: 2\r\n"
                        b"\r\nok")


def test_redacting_a_websocket_keeps_its_frames_in_order_and_as_they_were(
        tmp_path: Path) -> None:
    """After the 101 the bytes are WebSocket frames, not header lines: redaction held
    each direction's bytes after their last newline back, so the server's echoes came
    out before the client's messages, at other times (and a frame's payload could
    have been 'redacted')."""
    from proxy.capture.reader import CaptureReader
    from proxy.observe.enums import Direction

    src = tmp_path / "ws.h2scope"
    chunks = [(Direction.C2S, b"GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nCookie: sid=abc\r\n\r\n"),
              (Direction.S2C, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\n\r\n"),
              (Direction.C2S, b"\x81\x85abcd" + bytes(b ^ k for b, k in zip(
                  b"hi\nyo", b"abcda", strict=True))),  # (masked 'hi\nyo': a newline in it)
              (Direction.S2C, b"\x81\x0becho: hi\nyo"),
              (Direction.C2S, b"\x88\x80abcd"), (Direction.S2C, b"\x88\x00")]
    with CaptureWriter(src) as w:
        w.connection(1, {"client": {"ip": "127.0.0.1", "port": 1}, "mode": "regular",
                         "protocol": "http/1.1", "target": "a.test:80"}, t=1.0, wall=1000.0)
        for i, (d, data) in enumerate(chunks):
            w.raw(1, d, data, t=1.1 + i / 10, wall=1000.1 + i / 10)
        w.close_connection(1, t=2.0, wall=1001.0, closed_by="client")
    out = tmp_path / "ws-shared.h2scope"
    got = _run(str(src), "--format", "capture", "--redact", "-o", str(out))
    assert "1 header value redacted (cookie)" in got.stderr, got.stderr
    with CaptureReader(out) as reader:
        raw = [(r.direction, r.body, round(r.t, 3)) for r in reader.records() if r.type == 3]
    assert b"sid=abc" not in raw[0][1]
    assert raw[1:] == [(d, data, round(1.1 + i / 10, 3))
                       for i, (d, data) in enumerate(chunks) if i]


def test_stream_and_filter_on_a_capture_of_http1_say_they_select_http2(
        tmp_path: Path, capture: Path) -> None:
    """'its streams are none (add --conn ID …)' and a bare 'no frame matches' read as
    if the requests were not there; and a misleading 'no frame matches' came before
    the real --stream error."""
    from proxy.observe.enums import Direction

    src = tmp_path / "h1.h2scope"
    with CaptureWriter(src) as w:
        w.connection(1, {"client": {"ip": "127.0.0.1", "port": 1}, "mode": "regular",
                         "protocol": "http/1.1", "target": "a.test:80"}, t=1.0, wall=1000.0)
        w.raw(1, Direction.C2S, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", t=1.1, wall=1000.1)
        w.raw(1, Direction.S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", t=1.2,
              wall=1000.2)
        w.close_connection(1, t=1.4, wall=1000.4, closed_by="client")
    got = _run(str(src), "--format", "jsonl", "--stream", "1", check=False)
    assert got.returncode == 2
    assert "the capture has no HTTP/2 streams (its connections are not HTTP/2" in got.stderr
    got = _run(str(src), "--format", "text", "--filter", "method:GET")
    assert "(the capture has no HTTP/2 frames: a filter selects HTTP/2 frames" in got.stderr
    got = _run(str(src), "--format", "jsonl", "--stream", "1", "--conn", "1", check=False)
    assert "connection 1 is not HTTP/2 (HTTP/1.x, or a tunnel): --stream selects" in got.stderr
    got = _run(str(capture), "--format", "text", "--filter", "type:DATA", "--stream", "99",
               "--conn", "2", check=False)
    assert got.returncode == 2 and "no frame matches" not in got.stderr, got.stderr


def test_redacting_removes_credential_query_parameters_from_urls(tmp_path: Path) -> None:
    """Signed URLs and OAuth redirects carry their secrets in the query: --redact
    replaces those parameters' values in :path, location and referer (HTTP/2, real
    h2 peers) and in HTTP/1.x request lines and URL header lines; other parameters,
    and the same names elsewhere in a path, stay."""
    from proxy.capture.reader import CaptureReader
    from proxy.observe.enums import Direction

    src = tmp_path / "urls.h2scope"
    with CaptureWriter(src) as w:
        _h2_exchange(w, [(":method", "GET"), (":scheme", "https"),
                         (":authority", "example.test"),
                         (":path", "/b/key=keep.txt?X-Amz-Signature=5ec2e7&page=2"
                                   "&X-Amz-Credential=AKIA1%2F2&code=c0de;token=t0k")],
                     [(":status", "302"),
                      ("location", "https://app.test/cb?state=s1&access_token=acc35"),
                      ("referer", "https://example.test/?api_key=ap1k")])
        w.connection(2, {"client": {"ip": "127.0.0.1", "port": 2}, "mode": "regular",
                         "protocol": "http/1.1", "target": "a.test:80"}, t=2.0, wall=1000.0)
        w.raw(2, Direction.C2S, b"GET /login?user=ann&password=hunter2 HTTP/1.1\r\n"
              b"Host: a.test\r\nReferer: http://a.test/?sig=5ig\r\n\r\n", t=2.1, wall=1000.1)
        w.raw(2, Direction.S2C, b"HTTP/1.1 302 Found\r\nLocation: /home?sessionid=5e55"
              b"\r\nContent-Length: 2\r\n\r\nok", t=2.2, wall=1000.2)
        w.close_connection(2, t=2.3, wall=1000.3, closed_by="client")
    out = tmp_path / "shared.h2scope"
    got = _run(str(src), "--format", "capture", "--redact", "--redact-param", "USER",
               "-o", str(out))
    assert ("0 header values redacted, 10 URL query parameters (access_token, api_key, "
            "code, password, sessionid, sig, token, user, x-amz-credential, "
            "x-amz-signature)") in got.stderr, got.stderr
    data = out.read_bytes()
    for secret in (b"5ec2e7", b"AKIA1", b"c0de", b"t0k", b"acc35", b"ap1k", b"hunter2",
                   b"5ig", b"5e55", b"ann"):
        assert secret not in data, secret
    text = _run(str(out), "--format", "text").stdout
    assert ":path: /b/key=keep.txt?X-Amz-Signature=REDACTED&page=2&X-Amz-Credential=" \
        "REDACTED&code=REDACTED;token=REDACTED" in text
    assert "location: https://app.test/cb?state=s1&access_token=REDACTED" in text
    assert "referer: https://example.test/?api_key=REDACTED" in text
    with CaptureReader(out) as reader:
        raw = b"".join(r.body for r in reader.records() if r.type == 3 and r.conn_id == 2)
    assert raw == (b"GET /login?user=REDACTED&password=REDACTED HTTP/1.1\r\nHost: a.test\r\n"
                   b"Referer: http://a.test/?sig=REDACTED\r\n\r\n"
                   b"HTTP/1.1 302 Found\r\nLocation: /home?sessionid=REDACTED\r\n"
                   b"Content-Length: 2\r\n\r\nok")
    got = _run(str(src), "--format", "capture", "--redact-param", "x", "-o",
               str(tmp_path / "x.h2scope"), check=False)
    assert got.returncode == 2 and "--redact-param needs --redact" in got.stderr


def test_every_format_exports_redacted_with_redact(capture: Path, tmp_path: Path) -> None:
    """HAR is what people attach to bug reports: --redact works with it (and text,
    jsonl, pcapng) as with --format capture, by way of a private redacted copy."""
    import os

    temp = tmp_path / "tmp"  # (a temporary directory of its own: others use /tmp too)
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    har = tmp_path / "shared.har"
    got = _run(str(capture), "--format", "har", "--redact", "-o", str(har), env=env)
    assert "h2scope export: redacted: 2 connections" in got.stderr, got.stderr
    assert "header values redacted (set-cookie)" in got.stderr
    entries = json.loads(har.read_text())["log"]["entries"]
    assert entries and b"id=42" not in har.read_bytes()
    plain = json.loads(_run(str(capture), "--format", "har", "-o", "-").stdout)["log"]["entries"]
    assert len(entries) == len(plain)  # (the same exchanges, secrets left out)
    text = _run(str(capture), "--format", "text", "--redact", "--conn", "2", env=env).stdout
    assert "set-cookie: REDACTED" in text and "id=42" not in text
    assert list(temp.iterdir()) == []  # (the redacted copy is gone)


def test_capture_format_usage_errors(capture: Path, tmp_path: Path) -> None:
    for args, said in ((["--format", "capture"], "give it with -o"),
                       (["--format", "capture", "-o", str(tmp_path / "x"), "--stream", "1"],
                        "--stream does not apply"),
                       (["--format", "text", "--redact-header", "x"],
                        "--redact-header needs --redact"),
                       (["--format", "capture", "-o", str(tmp_path / "x"), "--conn", "9"],
                        "no connection 9")):
        got = _run(str(capture), *args, check=False)
        assert got.returncode == 2 and said in got.stderr, (args, got.stderr)
    assert not (tmp_path / "x").exists()


def test_a_connection_whose_headers_do_not_all_decode_is_left_out_of_a_redaction(
        capture: Path, tmp_path: Path) -> None:
    """Its blocks cannot all be read, so not all encoded again without secrets: the
    connection is left out, and said; the others are written."""
    import struct

    from proxy.capture.reader import CaptureReader
    from proxy.observe.enums import CONNECTION_PREFACE, Direction

    def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
        return struct.pack(">L", len(payload))[1:] + bytes([ftype, flags]) + \
            struct.pack(">L", sid) + payload

    mixed = tmp_path / "mixed.h2scope"
    with CaptureReader(capture) as reader, CaptureWriter(mixed) as w:
        for rec in reader.records():
            if rec.conn_id == 1 and rec.type != 8:
                w.copy(rec.type, rec.flags, rec.conn_id, t=rec.t, wall=rec.wall, body=rec.body)
        w.connection(7, {"protocol": "h2", "mode": "regular"}, t=5.0, wall=3000.0)
        w.raw(7, Direction.C2S, CONNECTION_PREFACE, t=5.0, wall=3000.0)
        w.frame(7, Direction.C2S, frame(4, 0, 0, b""), t=5.0, wall=3000.0)
        w.frame(7, Direction.C2S, frame(1, 5, 1, b"\x82\xbe"), t=5.1, wall=3000.1)  # index 62
    out = tmp_path / "shared.h2scope"
    got = _run(str(mixed), "--format", "capture", "--redact", "-o", str(out))
    assert "connection 7 left out: a header block does not decode (hpack-error" in got.stderr
    assert "1 connection," in got.stderr
    only7 = _run(str(mixed), "--format", "capture", "--redact", "--conn", "7",
                 "-o", str(tmp_path / "none.h2scope"), check=False)
    assert only7.returncode == 2 and "nothing to write" in only7.stderr
    assert not (tmp_path / "none.h2scope").exists()


def test_a_script_of_a_cleartext_connection_says_it_is_not_tls(tmp_path: Path) -> None:
    import struct

    import hpack

    from proxy.observe.enums import CONNECTION_PREFACE, Direction

    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                    (":authority", "a.test"), (":path", "/")])
    path = tmp_path / "h2c.h2scope"
    with CaptureWriter(path) as w:
        w.connection(1, {"protocol": "h2c", "mode": "reverse:http://a.test:8080",
                         "server": {"host": "a.test", "port": 8080}}, t=0.0, wall=1000.0)
        w.raw(1, Direction.C2S, CONNECTION_PREFACE, t=0.0, wall=1000.0)
        w.frame(1, Direction.C2S, bytes(3) + b"\x04\x00" + bytes(4), t=0.0, wall=1000.0)
        w.frame(1, Direction.C2S, struct.pack(">L", len(block))[1:] + b"\x01\x05"
                + (1).to_bytes(4, "big") + block, t=0.1, wall=1000.1)
    script = yaml.safe_load(_run(str(path), "--format", "script").stdout)
    assert script["server"] == {"host": "a.test", "port": 8080, "tls": False, "sni": None,
                                "alpn": None}


def test_a_script_skips_http1_connections_and_says_when_there_is_no_http2(
        tmp_path: Path) -> None:
    """The first connection was HTTP/1.1 (its bytes recorded raw): the script is
    the first HTTP/2 one's, not an empty script of the HTTP/1.1 one claiming h2;
    asked for the HTTP/1.1 one, or given no HTTP/2 at all, a usage error says why."""
    import struct

    import hpack

    from proxy.observe.enums import CONNECTION_PREFACE, Direction

    request = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                    (":authority", "a.test"), (":path", "/h2")])
    path = tmp_path / "mixed.h2scope"
    with CaptureWriter(path) as w:
        w.connection(1, {"protocol": "http/1.1", "mode": "reverse:http://a.test:8080",
                         "server": {"host": "a.test", "port": 8080}}, t=0.0, wall=1000.0)
        w.raw(1, Direction.C2S, request, t=0.0, wall=1000.0)
        w.http1(1, Direction.C2S, request, t=0.0, wall=1000.0)
        w.connection(2, {"protocol": "h2c", "mode": "reverse:http://a.test:8080",
                         "server": {"host": "a.test", "port": 8080}}, t=0.5, wall=1000.5)
        w.raw(2, Direction.C2S, CONNECTION_PREFACE, t=0.5, wall=1000.5)
        w.frame(2, Direction.C2S, bytes(3) + b"\x04\x00" + bytes(4), t=0.5, wall=1000.5)
        w.frame(2, Direction.C2S, struct.pack(">L", len(block))[1:] + b"\x01\x05"
                + (1).to_bytes(4, "big") + block, t=0.6, wall=1000.6)
    script = yaml.safe_load(_run(str(path), "--format", "script").stdout)
    assert script["connection"] == 2 and script["server"]["tls"] is False
    assert [f["type"] for f in script["frames"]] == ["SETTINGS", "HEADERS"]
    assert [v for f in script["frames"] for n, v in f.get("headers", ())
                       if n == ":path"] == ["/h2"]
    one = _run(str(path), "--format", "script", "--conn", "1", check=False)
    assert one.returncode == 2
    assert "connection 1 has no HTTP/2 frames from the client (http/1.1)" in one.stderr
    only1 = tmp_path / "h1.h2scope"
    with CaptureWriter(only1) as w:
        w.connection(1, {"protocol": "http/1.1", "server": {"host": "a.test", "port": 80}},
                     t=0.0, wall=1000.0)
        w.raw(1, Direction.C2S, request, t=0.0, wall=1000.0)
    none = _run(str(only1), "--format", "script", check=False)
    assert none.returncode == 2 and "the capture has no HTTP/2 connection" in none.stderr


@pytest.mark.parametrize("how", ["stdout", "-o"])
def test_an_output_the_disk_refuses_is_one_line_and_exit_1(capture: Path, how: str) -> None:
    """A full disk (here /dev/full, which refuses every write) is the system's failure,
    not a usage error and not a bug: one line naming what could not be written,
    exit 1, no traceback (it was a Python traceback, exit 1)."""
    if how == "stdout":
        with open("/dev/full", "w") as full:
            run = subprocess.run([sys.executable, "-m", "proxy", "export", str(capture),
                                  "--format", "jsonl"], stdout=full, stderr=subprocess.PIPE,
                                 text=True, timeout=60)
        said = "h2scope: export (writing its output): No space left on device"
    else:
        run = _run(str(capture), "--format", "pcapng", "-o", "/dev/full", check=False)
        said = "h2scope: export: /dev/full: No space left on device"
    assert run.returncode == 1
    assert run.stderr.strip() == said, run.stderr


def test_redacting_finds_credentials_by_the_words_in_their_names(tmp_path: Path) -> None:
    """x-goog-api-key, private-token (GitLab), api-key (Azure), x-amz-security-token
    and a jwt= parameter stayed in the 'shared' file, and grep on it (HPACK-coded
    values) found nothing, so it looked clean."""
    from proxy.observe.enums import Direction

    secrets = {"x-goog-api-key": "S3CRET-GOOG", "private-token": "S3CRET-GITLAB",
               "api-key": "S3CRET-AZURE", "x-amz-security-token": "S3CRET-AMZ",
               "ocp-apim-subscription-key": "S3CRET-APIM", "x-refresh-token": "S3CRET-RT"}
    kept = {"x-goog-api-client": "gl-python/3.11", "x-request-id": "r-1",
            "accept": "*/*", "x-tokenizer": "none"}
    src = tmp_path / "words.h2scope"
    with CaptureWriter(src) as w:
        _h2_exchange(w, [(":method", "GET"), (":scheme", "https"),
                         (":authority", "example.test"),
                         (":path", "/v1?jwt=S3CRET-JWT&page=2&my_token=S3CRET-QT"),
                         *secrets.items(), *kept.items()], [(":status", "200")])
        w.connection(2, {"client": {"ip": "127.0.0.1", "port": 2}, "mode": "regular",
                         "protocol": "http/1.1", "target": "a.test:80"}, t=2.0, wall=1000.0)
        w.raw(2, Direction.C2S, b"GET /?jwt=S3CRET-J1 HTTP/1.1\r\nHost: a.test\r\n"
              b"X-Goog-Api-Key: S3CRET-H1\r\nX-Goog-Api-Client: keep\r\n\r\n",
              t=2.1, wall=1000.1)
        w.close_connection(2, t=2.3, wall=1000.3, closed_by="client")
    out = tmp_path / "shared.h2scope"
    got = _run(str(src), "--format", "capture", "--redact", "-o", str(out))
    text = _run(str(out), "--format", "text").stdout
    for secret in [*secrets.values(), "S3CRET-JWT", "S3CRET-QT", "S3CRET-J1", "S3CRET-H1"]:
        assert secret not in text and secret.encode() not in out.read_bytes(), (secret, text)
    for name, value in kept.items():
        assert f"{name}: {value}" in text, (name, text)
    assert "page=2" in text
    data = out.read_bytes()
    assert b"X-Goog-Api-Key: REDACTED\r\nX-Goog-Api-Client: keep\r\n" in data
    assert "7 header values redacted" in got.stderr, got.stderr


def test_pcapng_goes_to_a_pipe_or_a_file_but_not_to_a_terminal(capture: Path) -> None:
    """`export --format pcapng > file.pcapng` was refused (give -o) though stdout was
    no terminal; a terminal is still spared the binary."""
    import os
    import pty

    got = subprocess.run([sys.executable, "-m", "proxy", "export", str(capture), "--format",
                          "pcapng"], capture_output=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout[:4] == b"\x0a\x0d\x0d\x0a"  # (a pcapng section header block)
    parent, child = pty.openpty()
    try:
        run = subprocess.run([sys.executable, "-m", "proxy", "export", str(capture),
                              "--format", "pcapng"], stdout=child, stderr=subprocess.PIPE,
                             timeout=60)
    finally:
        os.close(child)
        os.close(parent)
    assert run.returncode == 2 and b"writes binary data: give an output file with -o" in \
        run.stderr


def test_grpc_failed_selects_a_call_reset_before_its_status(tmp_path: Path) -> None:
    """A call its client cancelled (or grpc-core refused: ENHANCE_YOUR_CALM) has no
    grpc-status to match: `--filter grpc:failed` found nothing though the client
    saw CANCELLED. The reset stands for the status gRPC gives it."""
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    enc, senc = hpack.Encoder(), hpack.Encoder()
    call = [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
            (":path", "/pkg.Svc/Say"), ("content-type", "application/grpc")]
    path = h2c_capture(tmp_path / "calls.h2scope", [
        (Direction.S2C, raw_frame(4, 0, 0, b""), 0.001),
        (Direction.C2S, raw_frame(1, 0x5, 1, enc.encode(call)), 0.002),
        (Direction.S2C, raw_frame(1, 0x5, 1, senc.encode(
            [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0")])),
         0.003),
        (Direction.C2S, raw_frame(1, 0x5, 3, enc.encode(call)), 0.004),
        (Direction.C2S, raw_frame(3, 0, 3, (8).to_bytes(4, "big")), 0.005)])
    for flt in ("grpc:failed", "grpc:CANCELLED", "grpc:1"):
        out = _run(str(path), "--format", "text", "--filter", flt).stdout
        frames = [ln for ln in out.splitlines() if "→" in ln or "←" in ln]
        assert len(frames) == 2 and all(" 3 " in ln for ln in frames), (flt, out)
    out = _run(str(path), "--format", "text", "--filter", "grpc:OK").stdout
    assert [ln for ln in out.splitlines() if "→" in ln or "←" in ln][0].split()[3] == "1"
