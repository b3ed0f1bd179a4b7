"""The text and JSON Lines exports of one stream keep what is said about it."""

from __future__ import annotations

from pathlib import Path


def test_stream_keeps_the_connection_findings_about_that_stream(tmp_path: Path) -> None:
    """--stream 1 of a hung download: the close's flow-control-stalled and
    stream-unfinished are about stream 1, so they stay (they were dropped, and
    with them the reason check --fail-on warning fails)."""
    import io
    import json

    from proxy.capture.export_text import write_jsonl, write_text
    from proxy.capture.replay import replay
    from tests.unit.capture.traffic import hung_download

    path = hung_download(tmp_path / "hung.h2scope")
    out = io.StringIO()
    write_jsonl(replay(path), out, stream=1)
    codes = [o["finding"]["code"] for o in map(json.loads, out.getvalue().splitlines())
             if o.get("event") == "ConnectionFindingRaised"]
    assert sorted(codes) == ["flow-control-stalled", "stream-unfinished"]
    text = io.StringIO()
    write_text(replay(path), text, stream=1)
    assert "! WARNING flow-control-stalled" in text.getvalue()
    out = io.StringIO()
    write_jsonl(replay(path), out, stream=3)
    assert "ConnectionFindingRaised" not in out.getvalue()
