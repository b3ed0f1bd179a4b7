"""``h2scope decode`` with nothing to decode says so instead of printing nothing and exiting 0."""

from __future__ import annotations

import io
import sys

import pytest

from proxy.cli import main


@pytest.mark.parametrize("argv", [["decode", ""], ["decode", "--hpack", "   "]])
def test_empty_argument_is_a_usage_error(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nothing to decode" in err and "-f FILE" in err


def test_comment_only_file_names_the_file(tmp_path, capsys):
    p = tmp_path / "only-comments.hex"
    p.write_text("# nothing here\n\n")
    assert main(["decode", "-f", str(p)]) == 2
    assert f"{p} holds no hex" in capsys.readouterr().err


def test_empty_stdin_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["decode", "-"]) == 2
    assert "nothing to decode" in capsys.readouterr().err
