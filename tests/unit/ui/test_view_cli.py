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


def test_an_invalid_filter_is_a_usage_error(capture_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(capture_path), "--filter", "type:DATUM"]) == 2
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
