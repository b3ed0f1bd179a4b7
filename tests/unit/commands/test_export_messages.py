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
