"""``h2scope export``: what it says when a filter keeps nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.observe.enums import Direction


def test_export_names_the_finding_code_meant_when_a_typo_matches_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0)
        writer.frame(1, Direction.C2S, bytes.fromhex("000008060000000000") + b"pingpong",
                     t=0.0)
    assert main(["export", str(path), "-f", "text", "-o", str(tmp_path / "out.txt"),
                 "--filter", "finding:flow-control-exeeded"]) == 0
    assert "no frame matches --filter 'finding:flow-control-exeeded' (no finding has the " \
        "code flow-control-exeeded; did you mean flow-control-exceeded?)" in \
        capsys.readouterr().err


def _capture(path: Path) -> Path:
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0)
        writer.frame(1, Direction.C2S, bytes.fromhex("000008060000000000") + b"pingpong",
                     t=0.0)
    return path


def test_the_file_written_before_the_rename_has_a_name_no_one_can_plant_a_link_under(
        tmp_path: Path) -> None:
    from proxy.capture.exports import ReplacedFile

    source = _capture(tmp_path / "one.h2scope")
    a = ReplacedFile(tmp_path / "out.har", source)
    b = ReplacedFile(tmp_path / "out.har", source)
    try:
        assert a.temp != b.temp and a.temp.parent == tmp_path
        assert a.temp.name.startswith(".out.har.") and a.temp.name.endswith(".part")
        assert not a.temp.is_symlink() and a.temp.stat().st_mode & 0o777 == 0o600
    finally:
        a.discard()
        b.discard()
    assert not a.temp.exists() and not b.temp.exists()


def test_an_output_that_cannot_be_replaced_is_a_message_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    source = _capture(tmp_path / "one.h2scope")
    out = tmp_path / "out.txt"
    out.write_text("the user's earlier export\n")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))
    monkeypatch.setattr(os, "replace", refuse)
    assert main(["export", str(source), "-f", "text", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot replace {out}: Operation not permitted" in err and "Traceback" not in err
    assert out.read_text() == "the user's earlier export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    # A directory that is not there: said before anything is read.
    assert main(["export", str(source), "-f", "text", "-o", str(tmp_path / "no" / "x")]) == 2
    assert f"create the directory {tmp_path / 'no'} first" in capsys.readouterr().err


def test_an_export_to_dev_stdout_goes_to_the_redirect_and_leaves_the_link_alone(
        tmp_path: Path) -> None:
    """`-o /dev/stdout > file` renamed the export over /dev/stdout itself (as root),
    leaving the redirect empty; `>> file` must append, not overwrite."""
    import os
    import subprocess
    import sys

    source = _capture(tmp_path / "one.h2scope")
    repo = Path(__file__).resolve().parents[3]
    out = tmp_path / "out.txt"
    out.write_text("kept\n")
    for mode in ("wb", "ab"):
        with out.open(mode) as f:
            r = subprocess.run([sys.executable, "-m", "proxy", "export", str(source), "-f",
                                "text", "-o", "/dev/stdout"], stdout=f, stderr=subprocess.PIPE,
                               cwd=repo)
        assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert not text.startswith("kept") and text.count("opened from") == 2  # (then appended)
    assert os.path.islink("/dev/stdout")
