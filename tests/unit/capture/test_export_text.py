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


def test_a_reset_line_names_the_request_it_reset(recorded) -> None:  # type: ignore[no-untyped-def]
    """Each connection's client cancels GET /slow after its 200: the RST_STREAM
    line says so, with every frame shown and with a filter that hides the
    request's HEADERS; a second connection's stream 7 is its own request."""
    import io

    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay
    from proxy.filter import compile_filter

    path, _ = recorded
    for keep in (None, compile_filter("type:RST_STREAM")):
        out = io.StringIO()
        write_text(replay(path), out, keep=keep)
        resets = [ln for ln in out.getvalue().splitlines() if "RST_STREAM" in ln]
        assert len(resets) == 2, resets
        assert all(ln.endswith("CANCEL  GET /slow → 200") for ln in resets), resets
        assert {ln.split()[1] for ln in resets} == {"#1", "#2"}
