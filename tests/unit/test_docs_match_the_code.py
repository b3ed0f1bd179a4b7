"""Samples and quotations in docs/ say what the code really prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy import cli

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def test_the_script_sample_writes_a_connection_level_window_update_as_export_does() -> None:
    """export --format script omits ``stream`` on a WINDOW_UPDATE of stream 0 (the
    rule under the sample says when it is written): the sample must too."""
    text = (DOCS / "export.md").read_text()
    updates = re.findall(r"^- \{.*type: WINDOW_UPDATE.*\}$", text, flags=re.MULTILINE)
    assert updates and all("stream: 0" not in line for line in updates), updates


def test_the_script_export_omits_stream_zero_on_a_window_update(tmp_path: Path) -> None:
    """The sample's line, as the export writes it."""
    import io

    from proxy.capture.replay import replay
    from proxy.capture.script import write_script
    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import Direction

    path = tmp_path / "w.h2scope"
    w = CaptureWriter(path)
    w.connection(1, {"protocol": "h2"}, t=0.0)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    w.frame(1, Direction.C2S, preface + bytes.fromhex("000000040000000000"), t=0.0)
    w.frame(1, Direction.C2S, bytes.fromhex("000004080000000000") + (35941).to_bytes(4, "big"),
            t=0.0)
    w.close()
    out = io.StringIO()
    write_script(replay(path), out, conn=1)
    assert "- {delay: 0.0, type: WINDOW_UPDATE, increment: 35941}" in out.getvalue()


def test_the_client_tls_hint_is_quoted_as_the_proxy_gives_it() -> None:
    from proxy.net.tls import CA_HINT

    text = " ".join((DOCS / "proxy.md").read_text().split())
    assert f"with the hint ``{CA_HINT}``" in text


def test_import_md_points_at_where_the_rebuilt_header_blocks_are_described() -> None:
    text = (DOCS / "import.md").read_text()
    described = text.index("header blocks are encoded again by h2scope without a dynamic table")
    reference = text.index("Rebuilding header blocks without a dynamic table (see ")
    assert described < reference
    assert text[reference:].startswith(
        "Rebuilding header blocks without a dynamic table (see above)")


def test_run_help_lists_config_with_confdir_not_under_output(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    options = out.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    assert "--confdir DIR" in options and "--config FILE" in options
    output = out.split("\noutput:\n", 1)[1].split("\n\n", 1)[0]
    assert "--config" not in output


def test_benchmarks_lead_with_the_latest_full_runs_figures_copied_from_it() -> None:
    """Results starts with the current figures, not the first session's; they are
    the latest session's table, row for row (copied, never retyped)."""
    text = (DOCS / "benchmarks.md").read_text()
    results = text.split("\n## Results\n", 1)[1]
    assert results.index("### Current figures") < results.index("\n## History\n")
    sessions = [int(n) for n in re.findall(r"^### Session (\d+) \(\d{4}-\d\d-\d\d\):", text,
                                            flags=re.MULTILINE)]
    latest = text.split(f"\n### Session {max(sessions)} (", 1)[1].split("\n## ", 1)[0]
    current = results.split("### Current figures", 1)[1].split("\n## History\n", 1)[0]
    assert f"Session {max(sessions)}" in current

    def rows(section: str) -> list[str]:
        return [line for line in section.splitlines() if line.startswith("| ")]

    assert rows(current)[0] == "| measure | run | target |"
    assert len(rows(current)) > 7
    assert set(rows(current)) <= set(rows(latest))
