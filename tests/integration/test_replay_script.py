"""An edited frame script replays with the edits visible on the server side.

curl fetches a page through the proxy from nghttpd (recorded); ``h2scope
export --format script`` turns the connection into YAML; the test changes a
header value and adds a frame (a second request on a new stream), replays
the script against ``nghttpd -v`` — which logs every header it receives — and
finds both edits in nghttpd's log.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread

pytestmark = pytest.mark.peer


@pytest.fixture
def verbose_nghttpd(docroot: Path, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``nghttpd -v`` (h2c) logging received frames to a file."""
    exe = procs.require("nghttpd")
    log = tmp_path / "nghttpd.log"
    port = procs.free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "-v", "--no-tls", "-d", str(docroot),
                                 "--address=127.0.0.1", str(port)], stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            procs.wait_for_port(port, proc)
            yield port, log
        finally:
            proc.kill()
            proc.wait(5)


def script_of_a_curl_fetch(make_proxy: Callable[..., ProxyThread], docroot: Path,
                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    capture = tmp_path / "curl.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    with procs.nghttpd(docroot) as origin:
        try:
            proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin}"], sinks=(recorder,))
            result = procs.run([procs.require("curl"), "-sS", "--http2-prior-knowledge",
                                "-H", "x-edit-me: original",
                                f"http://127.0.0.1:{proxy.port('reverse')}/index.html"])
            assert result.returncode == 0, result.stderr
            proxy.wait_closed()
            proxy.close()
        finally:
            recorder.close()
    script = tmp_path / "conn.yaml"
    assert main(["export", str(capture), "--format", "script", "-o", str(script)]) == 0
    capsys.readouterr()
    return script


def wait_for_text(path: Path, *needles: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if all(n in text for n in needles):
            return text
        time.sleep(0.05)
    return text


@pytest.mark.parametrize("mode", ["verbatim", "reencode"])
def test_an_edited_script_replays_with_the_changed_header_and_the_added_frame(
        make_proxy: Callable[..., ProxyThread], docroot: Path, tmp_path: Path,
        verbose_nghttpd: tuple[int, Path], capsys: pytest.CaptureFixture[str],
        mode: str) -> None:
    script = script_of_a_curl_fetch(make_proxy, docroot, tmp_path, capsys)
    doc = yaml.safe_load(script.read_text())
    frames = doc["frames"]
    request = next(f for f in frames if f["type"] == "HEADERS")
    assert ["x-edit-me", "original"] in request["headers"]
    request["headers"] = [[n, "edited by the test" if n == "x-edit-me" else v]
                          for n, v in request["headers"]]
    added = {"delay": 0.0, "type": "HEADERS", "stream": request["stream"] + 2,
             "flags": ["END_STREAM", "END_HEADERS"],
             "headers": [[":method", "GET"], [":scheme", "http"],
                         [":authority", "127.0.0.1"], [":path", "/added-by-the-test"]]}
    frames.insert(frames.index(request) + 1, added)
    script.write_text(yaml.safe_dump(doc, sort_keys=False))

    port, log = verbose_nghttpd
    capsys.readouterr()
    code = main(["replay", str(script), "--target", f"http://127.0.0.1:{port}", "--mode", mode,
                 "--speed", "0", "--timeout", "5"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    text = wait_for_text(log, "x-edit-me: edited by the test", ":path: /added-by-the-test")
    assert "x-edit-me: edited by the test" in text, text
    assert "x-edit-me: original" not in text
    assert ":path: /added-by-the-test" in text, text
    # Without an original to compare with, the replay lists what came back.
    assert "(GET /index.html): 200" in out
    assert "(GET /added-by-the-test): 404" in out


def test_a_script_with_an_unknown_frame_type_is_a_usage_error_naming_the_entry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text("h2scope_script: 1\npreface: true\nframes:\n"
                      "- {type: SETTINGS, settings: []}\n- {type: HEADRES, stream: 1}\n")
    assert main(["replay", str(script), "--target", "http://127.0.0.1:1"]) == 2
    assert "frames[1].type: unknown frame type 'HEADRES'" in capsys.readouterr().err


def test_an_unknown_key_in_a_script_entry_is_a_usage_error_with_a_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "typo.yaml"
    script.write_text("h2scope_script: 1\npreface: true\nframes:\n"
                      "- {type: DATA, stream: 1, data_hex: '00ff'}\n")
    assert main(["replay", str(script), "--target", "http://127.0.0.1:1"]) == 2
    assert "frames[0].data_hex: unknown key; did you mean 'hex'?" in capsys.readouterr().err
    # ... and at the top level (a misspelt preface would send the preface unasked)
    script.write_text("h2scope_script: 1\nprefase: false\nframes: []\n")
    assert main(["replay", str(script), "--target", "http://127.0.0.1:1"]) == 2
    assert "prefase: unknown key; did you mean 'preface'?" in capsys.readouterr().err
    # --conn chooses among a capture's connections; a script has one: said, not ignored
    script.write_text("h2scope_script: 1\npreface: true\nframes: []\n")
    assert main(["replay", str(script), "--target", "http://127.0.0.1:1", "--conn", "9"]) == 2
    assert "--conn chooses a connection of a capture" in capsys.readouterr().err


def test_a_script_the_server_rejects_with_goaway_exits_3_and_says_why(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A client may not open an even-numbered stream (RFC 9113 §5.1.1): nghttpd
    answers with GOAWAY PROTOCOL_ERROR, and the replay must not look like a success."""
    port, _ = verbose_nghttpd
    script = tmp_path / "even.yaml"
    script.write_text(
        "h2scope_script: 1\npreface: true\nframes:\n"
        "- {type: SETTINGS, settings: []}\n"
        "- {type: HEADERS, stream: 2, flags: [END_HEADERS, END_STREAM], headers: "
        "[[':method', GET], [':scheme', http], [':authority', localhost], [':path', /]]}\n")
    code = main(["replay", str(script), "--target", f"http://127.0.0.1:{port}",
                 "--speed", "0", "--timeout", "5"])
    out, err = capsys.readouterr()
    assert code == 3, out + err
    assert "error: the server ended the connection: GOAWAY PROTOCOL_ERROR" in out
    assert "exit status 3: the server ended a connection with a GOAWAY error" in err
    # and what h2scope's observer saw wrong, without -v: the cause, not only the effect
    assert "  ! ERROR stream-id-parity (RFC 9113 §5.1.1) (stream 2): the client opened " \
        "even-numbered stream 2" in out


def test_a_script_that_cannot_be_sent_in_full_is_a_failed_replay(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A DATA frame larger than any window the server grants stays unsent: the
    replay says so with an ``error:`` line and exits 1 — not 0, as if it passed."""
    port, _ = verbose_nghttpd
    script = tmp_path / "big.yaml"
    script.write_text(
        "h2scope_script: 1\npreface: true\nframes:\n"
        "- {type: SETTINGS, settings: []}\n"
        "- {type: HEADERS, stream: 1, flags: [END_HEADERS], headers: "
        "[[':method', POST], [':scheme', http], [':authority', localhost], [':path', /]]}\n"
        f"- {{type: DATA, stream: 1, flags: [END_STREAM], hex: '{'00' * 70000}'}}\n")
    code = main(["replay", str(script), "--target", f"http://127.0.0.1:{port}",
                 "--speed", "0", "--timeout", "1"])
    out, err = capsys.readouterr()
    assert "error: stream 1: the server's flow-control window stayed too small" in out, out
    assert code == 1, out + err
    assert "the replay did not complete" in err


def test_a_server_that_hangs_up_is_said_to_have_closed_the_connection(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A DATA frame above the server's SETTINGS_MAX_FRAME_SIZE: nghttpd answers
    GOAWAY FRAME_SIZE_ERROR and closes. The replay's own log (-v) says the server
    closed the connection, not the client, and the exit status is not 0."""
    port, _ = verbose_nghttpd
    script = tmp_path / "big-frame.yaml"
    script.write_text(
        "h2scope_script: 1\npreface: true\nframes:\n"
        "- {type: SETTINGS, settings: []}\n"
        "- {type: HEADERS, stream: 1, flags: [END_HEADERS], headers: "
        "[[':method', POST], [':scheme', http], [':authority', localhost], [':path', /]]}\n"
        f"- {{type: DATA, stream: 1, hex: '{'00' * 20000}'}}\n")
    code = main(["replay", str(script), "--target", f"http://127.0.0.1:{port}",
                 "--speed", "0", "--timeout", "2", "-v"])
    out, err = capsys.readouterr()
    assert code in (1, 3), out + err  # (3 when the GOAWAY is read before the reset)
    assert "the connection ended (the server closed it)" in out, out
    assert "(the client closed it)" not in out


def test_reencode_notes_a_header_block_it_cannot_encode_again_and_goes_on(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A block the script keeps as bytes (``header_block_hex``: export could not
    decode it) and an empty header list have nothing to re-encode: each is a note,
    the next request still goes out (reencode died with h2's IndexError)."""
    port, log = verbose_nghttpd
    request = ("[[':method', GET], [':scheme', http], [':authority', localhost], "
               "[':path', /index.html]]")
    script = tmp_path / "blocks.yaml"
    script.write_text(
        "h2scope_script: 1\npreface: true\nframes:\n"
        "- {type: SETTINGS, settings: []}\n"
        "- {type: HEADERS, stream: 1, flags: [END_STREAM, END_HEADERS], "
        "header_block_hex: '828684'}\n"
        "- {type: HEADERS, stream: 3, flags: [END_STREAM, END_HEADERS], headers: []}\n"
        f"- {{type: HEADERS, stream: 5, flags: [END_STREAM, END_HEADERS], headers: {request}}}\n")
    code = main(["replay", str(script), "--target", f"http://127.0.0.1:{port}",
                 "--speed", "0", "--timeout", "5", "--mode", "reencode"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "note: frames[1] (HEADERS on stream 1) not sent: its header block is recorded " \
        "as bytes only" in out
    assert "note: frames[2] (HEADERS on stream 3) not sent: its header list is empty" in out
    assert "200" in out and "Traceback" not in out + err
    assert "/index.html" in wait_for_text(log, "/index.html")


def test_reencode_says_once_why_a_run_of_resets_was_not_sent(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A recorded client answering each DATA in flight after its own reset with
    RST_STREAM: h2 refuses to send them again. One note, naming the replay's own
    reset as the reason (it said "the server ended it first", once per frame)."""
    port, _ = verbose_nghttpd
    script = tmp_path / "resets.yaml"
    script.write_text(
        "h2scope_script: 1\npreface: true\nframes:\n"
        "- {type: SETTINGS, settings: []}\n"
        "- {type: HEADERS, stream: 1, flags: [END_HEADERS], headers: "
        "[[':method', POST], [':scheme', http], [':authority', localhost], [':path', /]]}\n"
        "- {type: RST_STREAM, stream: 1, error: CANCEL}\n"
        + "- {type: RST_STREAM, stream: 1, error: STREAM_CLOSED}\n" * 5)
    code = main(["replay", str(script), "--target", f"http://127.0.0.1:{port}",
                 "--speed", "0", "--timeout", "5", "--mode", "reencode"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    notes = [line for line in out.splitlines() if "not sent" in line]
    assert notes == ["  note: frames[3] to frames[7] (5 RST_STREAM frames on stream 1) not "
                     "sent: the stream is already closed (the replay reset it: frames[2])"], out


def test_replay_builds_the_huffman_tables_before_it_sends_anything(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The replay observes each block it sends before the next frame: built lazily,
    the tables (tens of ms) delayed the frame after the first Huffman-coded block,
    where a script said no delay."""
    import proxy.replay.session as session
    from proxy.observe import huffman

    monkeypatch.setattr(huffman, "_next", [])  # (as in a fresh process)
    built_first = []
    real = session.run_replay

    def spy(*args: object, **kwargs: object) -> object:
        built_first.append(bool(huffman._next))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(session, "run_replay", spy)
    port, _ = verbose_nghttpd
    script = tmp_path / "one.yaml"
    script.write_text(
        "h2scope_script: 1\npreface: true\nframes:\n"
        "- {type: SETTINGS, settings: []}\n"
        "- {type: HEADERS, stream: 1, flags: [END_STREAM, END_HEADERS], headers: "
        "[[':method', GET], [':scheme', http], [':authority', localhost], [':path', /]]}\n")
    assert main(["replay", str(script), "--target", f"http://127.0.0.1:{port}",
                 "--speed", "0", "--timeout", "5"]) in (0, 3), capsys.readouterr()
    assert built_first == [True]


def test_a_block_the_server_cannot_decode_gets_a_hint_to_reencode(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Recorded HPACK bytes that refer to a dynamic table entry the new server does
    not have (a server with a smaller table, or other settings): it ends with
    COMPRESSION_ERROR, and the report says reencode is the mode for it, as the docs
    do. (Index 62, the first dynamic entry, in an empty table.)"""
    port, _ = verbose_nghttpd
    script = tmp_path / "stale.yaml"
    script.write_text(
        "h2scope_script: 1\npreface: true\nframes:\n- {type: SETTINGS, settings: []}\n"
        "- {type: HEADERS, stream: 1, flags: [END_STREAM, END_HEADERS], "
        "header_block_hex: '828684be'}\n")
    code = main(["replay", str(script), "--target", f"http://127.0.0.1:{port}",
                 "--speed", "0", "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "GOAWAY COMPRESSION_ERROR" in out and "hint: the server could not decode the " \
        "recorded HPACK blocks" in out and "--mode reencode" in out, out


def test_the_verdict_of_a_replay_of_a_capture_cut_short_says_so(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A CI log showed 'all match' for a capture that was cut short (or damaged): the
    damage was in stderr notes only. The verdict line says what was compared."""
    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    port, _ = verbose_nghttpd
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                    (":authority", "a"), (":path", "/index.html")])
    path = h2c_capture(tmp_path / "cut.h2scope", [
        (Direction.C2S, raw_frame(1, 5, 1, block), 0.01),
        (Direction.S2C, raw_frame(0, 0, 1, b"x" * 500), 0.02)])
    data = path.read_bytes()
    path.write_bytes(data[:data.rindex(b"x" * 500) + 100])
    main(["replay", str(path), "--target", f"http://127.0.0.1:{port}", "--speed", "0",
          "--timeout", "5"])
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == ("1 stream compared: it matches (of a capture cut short: "
                                    "its torn last record skipped)"), out


def test_a_replay_that_compared_nothing_does_not_pass(
        verbose_nghttpd: tuple[int, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged capture whose every request block failed to decode: reencode skips
    them all (one grouped note), nothing is compared — it exited 0 with no verdict."""
    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    port, _ = verbose_nghttpd
    # (0xbe: dynamic table entry 62 of an empty table: the block does not decode)
    path = h2c_capture(tmp_path / "undecodable.h2scope", [
        (Direction.C2S, raw_frame(1, 5, sid, b"\xbe"), 0.01) for sid in (1, 3, 5)])
    code = main(["replay", str(path), "--target", f"http://127.0.0.1:{port}", "--speed", "0",
                 "--timeout", "5", "--mode", "reencode"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "(3 HEADERS frames on streams 1, 3, 5) not sent: its header block is recorded " \
        "as bytes only" in out, out
    assert "no stream compared: none of the recording's requests was sent" in out
    assert "no stream was compared: exit status 1" in err
