"""Frame scripts turn back into the frames they describe."""

from __future__ import annotations

from pathlib import Path

import hpack
import pytest

from proxy.capture.replay import replay
from proxy.capture.script import build_script
from proxy.capture.writer import CaptureWriter
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from proxy.replay.script_frames import ScriptError, encode_entry, parse_script
from proxy.replay.source import load_capture, plan_from_script
from tests.unit.capture.traffic import record_session


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.h2scope"
    with CaptureWriter(path) as writer:
        record_session(writer)
    return path


def client_frames(frames: list[FrameObserved]) -> list[tuple[object, ...]]:
    """What a script keeps of each client frame: type, stream, flags, headers, DATA."""
    out = []
    for ev in frames:
        f = ev.frame
        if f.type == 9:  # CONTINUATION: folded into its HEADERS entry
            continue
        out.append((f.type, f.stream_id, f.flags,
                    ev.block.headers if ev.block is not None else None,
                    getattr(f, "data", None), f.payload if f.type not in (0, 1) else None))
    return out


def observe(data: list[bytes]) -> list[FrameObserved]:
    obs = ConnectionObserver()
    events = []
    for chunk in data:
        events += obs.feed(Direction.C2S, chunk, 0.0)
    return [e for e in events if isinstance(e, FrameObserved)]


def test_a_script_encodes_back_to_the_recorded_client_frames(capture: Path) -> None:
    script = parse_script(build_script(replay(capture)))
    sends = plan_from_script(script).plans[0].sends
    recorded = [ev for item in replay(capture) if item.record.direction is Direction.C2S
                for ev in item.events if isinstance(ev, FrameObserved)]
    rebuilt = observe([s.data for s in sends])
    assert client_frames(rebuilt) == client_frames(recorded)
    # Only the client side is fed here, so its SETTINGS ACKs answer nothing seen.
    assert not [f for e in rebuilt for f in e.findings
                if f.severity.name == "ERROR" and f.code != "settings-ack-unexpected"]


def test_the_verbatim_plan_of_a_capture_is_its_recorded_bytes(capture: Path) -> None:
    plan = load_capture(capture).plans[0]
    recorded = b"".join(item.record.body for item in replay(capture)
                        if item.record.direction is Direction.C2S
                        and item.record.type in (2, 3))
    assert b"".join(s.data for s in plan.sends) == recorded
    assert plan.sends[0].frame_type is None  # the preface
    data = [s for s in plan.sends if s.frame_type == 0]
    assert data and all(s.flow == len(s.data) - 9 for s in data)


def test_a_header_block_split_over_continuations_is_split_again() -> None:
    entry = {"type": "HEADERS", "stream": 1, "flags": ["END_STREAM", "END_HEADERS"],
             "continuations": 2,
             "headers": [[":method", "GET"], [":path", "/" + "x" * 300],
                         [":scheme", "https"], [":authority", "a.test"]]}
    data = encode_entry(entry, hpack.Encoder())
    frames = observe([b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + data])
    assert [e.frame.type_name for e in frames] == ["HEADERS", "CONTINUATION", "CONTINUATION"]
    assert frames[0].frame.flags == 0x1  # END_STREAM kept, END_HEADERS moved to the last
    assert frames[-1].frame.flags == 0x4
    assert frames[-1].block is not None
    assert dict(frames[-1].block.headers)[":path"] == "/" + "x" * 300


def test_truncated_data_is_padded_with_zeros_to_its_recorded_length() -> None:
    entry = {"type": "DATA", "stream": 1, "text": "abc", "length": 10, "flags": ["PADDED"],
             "padding": 4}
    data = encode_entry(entry, hpack.Encoder())
    assert data[9] == 4 and data[10:20] == b"abc" + bytes(7) and data[20:] == bytes(4)
    assert int.from_bytes(data[:3], "big") == 1 + 10 + 4


@pytest.mark.parametrize(("doc", "message"), [
    ({"frames": [{"type": "HEADRES"}]}, "frames[0].type: unknown frame type 'HEADRES'"),
    ({"frames": [{"type": "DATA", "stream": -1}]}, "frames[0].stream"),
    ({"frames": [{"type": "DATA", "flags": ["END_HEADERS"]}]},
     "frames[0].flags: DATA has no flag 'END_HEADERS'"),
    ({"frames": [{"type": "HEADERS", "stream": 1}]}, "frames[0]: a HEADERS entry needs"),
    ({"frames": [{"type": "PING", "delay": "soon"}]}, "frames[0].delay"),
    ({"frames": [{"type": "PING", "delay": float("inf")}]}, "frames[0].delay"),
    ({"frames": [{"type": "PING", "delay": float("nan")}]}, "frames[0].delay"),
    ({"h2scope_script": 9, "frames": []}, "version 9"),
    ([1, 2], "a mapping with a 'frames' list"),
])
def test_an_invalid_script_is_rejected_naming_the_entry(doc: object, message: str) -> None:
    with pytest.raises(ScriptError, match=None) as info:
        parse_script(doc)
    assert message in str(info.value)


@pytest.mark.parametrize(("entry", "message"), [
    ({"type": "PING", "opaque_hex": "zz"}, "frames[1] (PING): a hex field has a character "
     "that is not a hex digit (at position 0)"),
    ({"type": "PING", "opaque_hex": "0102030"}, "frames[1] (PING): opaque_hex has an odd "
     "number of hex digits"),
    ({"type": "WINDOW_UPDATE", "stream": 1, "increment": -1},
     "frames[1] (WINDOW_UPDATE): a number does not fit its field"),
    ({"type": "WINDOW_UPDATE", "stream": 1}, "frames[1] (WINDOW_UPDATE): needs 'increment'"),
    ({"type": "GOAWAY", "last_stream_id": "x"}, "frames[1] (GOAWAY): invalid literal"),
    ({"type": "PRIORITY", "stream": 1, "priority": {"weight": 300}},
     "frames[1] (PRIORITY): priority weight 300 is not 1 to 256"),
])
def test_an_entry_that_cannot_be_encoded_is_named_not_a_traceback(
        entry: dict[str, object], message: str) -> None:
    from proxy.replay.source import plan_from_script

    script = parse_script({"frames": [{"type": "PING"}, entry]})
    with pytest.raises(ScriptError) as info:
        plan_from_script(script)
    assert message in str(info.value)


def test_a_script_rewritten_by_a_yaml_tool_is_still_a_script(capture: Path,
                                                              tmp_path: Path) -> None:
    """Keys sorted (``frames`` before ``h2scope_script``), the comment dropped: a
    script is known by what it holds, a capture or a text file by what they are."""
    import io

    import yaml

    from proxy.capture.script import write_script
    from proxy.replay.script_frames import is_script, load_script

    out = io.StringIO()
    write_script(replay(capture), out, conn=1)
    doc = yaml.safe_load(out.getvalue())
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump({"_note": "first key", **doc}, sort_keys=True))
    assert not edited.read_bytes().startswith((b"#", b"frames:"))
    assert b"h2scope_script" not in edited.read_bytes()[:256]
    assert is_script(edited)
    assert load_script(edited).frames
    assert not is_script(capture)
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n")
    assert not is_script(notes)
    markdown = tmp_path / "README.md"
    markdown.write_text("# Notes\n\nfirst\n")
    assert not is_script(markdown)


def test_an_unregistered_error_code_reads_back_as_written() -> None:
    from proxy.observe.enums import error_name
    from proxy.replay.script_frames import error_code

    assert error_name(0x99) == "0x99 (unregistered)"
    assert error_code(error_name(0x99)) == 0x99
    assert error_code("UNKNOWN_ERROR(0x99)") == 0x99  # as older scripts wrote it
    assert error_code("CANCEL") == 8


@pytest.mark.parametrize(("doc", "said"), [
    ({"frames": [{"type": "PRIORITY", "stream": 3, "priority": 5}]},
     "frames[0].priority: a number (5); see an exported script for its shape"),
    ({"frames": [{"type": "SETTINGS", "flags": 1}]},
     "frames[0].flags: a number (1); flags are a list of names"),
    ({"frames": [{"type": "SETTINGS", "flags": "ACK"}]},
     "frames[0].flags: 'ACK' is text; flags are a list: [ACK]"),
    ({"frames": [{"type": {"name": "SETTINGS"}}]},
     "frames[0].type: a mapping ({'name': 'SETTINGS'}); a type is a name"),
    ({"server": ["a"], "frames": []}, "server: a list (['a']); server is a mapping of"),
    ({"server": True, "frames": []}, "server: true/false (True); server is a mapping of"),
    ({"frames": [{"type": "HEADERS", "headers": "x: y"}]},
     "frames[0].headers: text ('x: y'); see an exported script"),
])
def test_a_value_of_the_wrong_shape_is_named_not_a_traceback(doc: dict[str, object],
                                                            said: str) -> None:
    with pytest.raises(ScriptError) as raised:
        parse_script(doc)
    assert str(raised.value).startswith(said), raised.value


def test_a_yaml_file_that_does_not_parse_is_reported_as_yaml(tmp_path) -> None:
    """A .yaml that is not valid YAML was called 'not an h2scope capture (the file
    does not start with the H2SCOPE magic)'; it is a script with a YAML error."""
    from proxy.cli import main

    bad = tmp_path / "edited.yaml"
    bad.write_text(": : :\n")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["replay", str(bad), "--target", "http://127.0.0.1:9"]) == 2
    assert f"h2scope: {bad}:1: not valid YAML: " in err.getvalue(), err.getvalue()
    assert "<unicode string>" not in err.getvalue()



SCRIPT = """\
h2scope_script: 1
frames:
- {type: SETTINGS, settings: []}
- type: HEADERS
  stream: 1
  flags: [END_HEADERS]
  headers: [[':method', GET], [':path', /]]
- {type: DATA, stream: 1, flags: [END_STREEM], text: hi}
- {type: RST_STREAM, stream: 1, error: CANCELLED}
"""


@pytest.mark.parametrize(("fix", "said"), [
    ({}, "x.yaml:8: frames[2].flags: DATA has no flag 'END_STREEM'; did you mean "
         "'END_STREAM'? (DATA's flags: END_STREAM, PADDED)"),
    ({"END_STREEM": "END_STREAM"}, "x.yaml:9: frames[3] (RST_STREAM): unknown error code "
                                   "'CANCELLED'; did you mean 'CANCEL'?"),
    ({"END_STREEM": "END_STREAM", "RST_STREAM,": "RST_STRAEM,"},
     "x.yaml:9: frames[3].type: unknown frame type 'RST_STRAEM'; did you mean 'RST_STREAM'?"),
])
def test_a_script_error_gives_the_line_and_the_name_meant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], fix: dict[str, str],
        said: str) -> None:
    """Entries are found by their line, not by counting them from 0; a misspelt flag,
    error code or type gets the name meant, as a misspelt key did."""
    from proxy.cli import main

    text = SCRIPT
    for old, new in fix.items():
        text = text.replace(old, new)
    (tmp_path / "x.yaml").write_text(text)
    assert main(["replay", str(tmp_path / "x.yaml"), "--target", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert f"h2scope: {tmp_path}/{said}" in err, err


def test_a_gzip_compressed_script_is_a_script(tmp_path: Path) -> None:
    """As a capture may be: it was refused with 'this is a frame script ... replay
    FILE sends it', the command just run."""
    import gzip

    from proxy.replay.script_frames import is_script, load_script

    text = SCRIPT.replace("END_STREEM", "END_STREAM").replace("CANCELLED", "CANCEL")
    for name in ("s.yaml.gz", "s.gz"):
        (tmp_path / name).write_bytes(gzip.compress(text.encode()))
        assert is_script(tmp_path / name)
        assert len(load_script(tmp_path / name).frames) == 4
    (tmp_path / "c.gz").write_bytes(gzip.compress(b"H2SCOPE\0 not a script"))
    assert not is_script(tmp_path / "c.gz")


def test_a_headers_entry_counts_its_continuations_as_frames_sent() -> None:
    """'4 frames sent' for a script that sent 6: a HEADERS entry with continuations: 2
    is three frames."""
    script = parse_script({"frames": [
        {"type": "HEADERS", "stream": 1, "flags": ["END_STREAM", "END_HEADERS"],
         "continuations": 2, "headers": [[":method", "GET"], [":path", "/"],
                                         [":scheme", "http"], [":authority", "a"],
                                         ["x-long", "a" * 60]]},
        {"type": "PING", "opaque_hex": "0102030405060708"}]})
    plan = plan_from_script(script).plans[0]
    assert [s.frames for s in plan.sends if s.frame_type is not None] == [3, 1]


def test_a_body_of_several_lines_is_written_as_a_literal_block(tmp_path: Path) -> None:
    """A DATA text ending in a newline was a folded single-quoted scalar with each
    line break doubled: correct, and hard to edit. It is a `|` block, read back
    exactly."""
    import io

    import yaml

    from proxy.capture.script import write_script
    from proxy.replay.script_frames import data_of
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    body = b"body{color:red}\n\np {margin: 0}\n"
    block = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"),
                                    (":authority", "a"), (":path", "/css")])
    path = h2c_capture(tmp_path / "lines.h2scope", [
        (Direction.C2S, raw_frame(1, 4, 1, block), 0.01),
        (Direction.C2S, raw_frame(0, 1, 1, body), 0.02)])
    out = io.StringIO()
    write_script(replay(path), out)
    text = out.getvalue()
    assert "  text: |\n    body{color:red}\n\n    p {margin: 0}\n" in text, text
    (data,) = [e for e in parse_script(yaml.safe_load(text)).frames if e["type"] == "DATA"]
    assert data_of(data) == body
