"""``h2scope view`` on the command line: errors are one line and exit 2, before any UI."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path / "nope.h2c")]) == 2
    assert "no such capture file" in capsys.readouterr().err


def test_a_file_that_is_not_a_capture_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    assert main(["view", str(bad)]) == 2
    assert "not an h2scope capture" in capsys.readouterr().err


def test_a_har_file_is_named_as_one_not_as_a_broken_net_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The file a newcomer most likely tries, having just exported one: 'no constants
    and no events: not a Chrome net log' sent them looking for the wrong thing."""
    import json

    har = tmp_path / "session.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": []}}, indent=2))
    assert main(["view", str(har)]) == 2
    assert "this is a HAR file: it holds requests and responses, not HTTP/2 frames" in \
        capsys.readouterr().err
    assert main(["export", str(har), "--format", "text"]) == 2
    assert "not an h2scope capture but a HAR file" in capsys.readouterr().err


def test_without_a_terminal_the_viewer_says_so_and_how_to_get_text(
        capture_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``h2scope view FILE > out`` (pytest's output is not a terminal either): exit
    2 and the export that gives text, instead of escape codes into the file."""
    assert main(["view", str(capture_path)]) == 2
    err = capsys.readouterr().err
    assert "the viewer needs a terminal" in err
    assert f"h2scope export {capture_path} --format text" in err


def test_an_invalid_filter_is_a_usage_error(capture_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(capture_path), "--filter", "type:DATUM"]) == 2
    assert "unknown frame type 'DATUM'" in capsys.readouterr().err


def test_a_filter_may_begin_with_its_negation_after_a_space(
        capture_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--filter -type:SETTINGS`` (the docs' own negation) was refused by argparse:
    'argument --filter: expected one argument'."""
    args = ["export", str(capture_path), "--format", "text"]
    assert main([*args, "--filter=-type:DATA"]) == 0
    glued = capsys.readouterr().out
    assert main([*args, "--filter", "-type:DATA"]) == 0
    spaced = capsys.readouterr().out
    assert spaced == glued and " DATA " not in spaced and " HEADERS " in spaced
    assert main(["view", str(capture_path), "--filter", "-type:DATUM"]) == 2
    assert "unknown frame type 'DATUM'" in capsys.readouterr().err


def test_following_a_gzip_capture_is_a_usage_error(capture_path: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    packed = tmp_path / "c.h2c.gz"
    packed.write_bytes(gzip.compress(capture_path.read_bytes()))
    assert main(["view", "--follow", str(packed)]) == 2
    assert "a gzip capture cannot be followed" in capsys.readouterr().err
    assert main(["view", "--follow", str(tmp_path / "nope.h2c")]) == 2
    assert "no such capture file" in capsys.readouterr().err


def test_a_packet_capture_is_imported_to_a_private_temporary_capture_and_viewed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.capture.reader import CaptureReader
    from tests.unit.capture.test_pcap_import import _conversation, _ethernet, _flow, _pcap

    pcap = _pcap(tmp_path / "dump.pcap", [(1.0 + i, _ethernet(ip))
                                          for i, ip in enumerate(_flow(*_conversation()))])
    seen: dict[str, object] = {}

    def fake_run_view(path: Path, **kw: object) -> int:
        from ui.launch import view_app

        with CaptureReader(path) as reader:
            seen["frames"] = sum(1 for r in reader.records() if r.type == 2)
        seen["path"], seen["mode"] = Path(path), Path(path).stat().st_mode & 0o777
        app = view_app(path, label=kw.get("label"))  # type: ignore[arg-type]
        seen["title"] = app.session.title
        assert app.capture is not None
        app.capture.close()
        return 0

    monkeypatch.setattr("ui.launch.run_view", fake_run_view)
    assert main(["view", str(pcap)]) == 0
    assert seen["frames"] and seen["mode"] == 0o600
    assert seen["title"] == "dump.pcap"  # (not its temporary import's name)
    assert not Path(str(seen["path"])).exists()  # removed when the view closed
    assert main(["view", "--follow", str(pcap)]) == 2
    assert "packet capture: it cannot be followed" in capsys.readouterr().err


def test_a_key_log_is_for_packet_captures_only(capture_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(capture_path), "--keylog-file", str(capture_path)]) == 2
    assert "--keylog-file applies to a packet capture" in capsys.readouterr().err


def test_a_protoset_is_loaded_for_the_view_and_a_bad_one_is_a_usage_error(
        capture_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ui.model import body

    missing = tmp_path / "api.pb"
    assert main(["view", str(capture_path), "--protoset", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--protoset: cannot read {missing}: No such file or directory (make one" in err
    bad = tmp_path / "api.proto"
    bad.write_text('syntax = "proto3";\n')
    assert main(["view", str(capture_path), "--protoset", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"--protoset: {bad}: not a FileDescriptorSet" in err
    # An empty FileDescriptorSet is a valid one: the view gets it.
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    seen: dict[str, object] = {}
    monkeypatch.setattr("ui.launch.run_view",
                        lambda path, **kw: (seen.__setitem__("schema", body.SCHEMA), 0)[1])
    monkeypatch.setattr(body, "SCHEMA", None)
    assert main(["view", str(capture_path), "--protoset", str(empty)]) == 0
    assert seen["schema"] is not None


def test_protosets_from_the_config_file_are_loaded_too(
        capture_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.model import body

    confdir = tmp_path / "conf"
    confdir.mkdir()
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    (confdir / "config.yaml").write_text(f"ui:\n  protosets: [{str(empty)!r}]\n")
    seen: dict[str, object] = {}
    monkeypatch.setattr("ui.launch.run_view",
                        lambda path, **kw: (seen.__setitem__("schema", body.SCHEMA), 0)[1])
    monkeypatch.setattr(body, "SCHEMA", None)
    assert main(["view", str(capture_path), "--confdir", str(confdir)]) == 0
    assert seen["schema"] is not None
    # Without either, nothing is loaded.
    seen.clear()
    monkeypatch.setattr(body, "SCHEMA", None)
    assert main(["view", str(capture_path), "--confdir", str(tmp_path)]) == 0
    assert seen["schema"] is None
