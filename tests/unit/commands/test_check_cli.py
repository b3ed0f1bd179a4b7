"""``h2scope check``: a capture's summary, and exit status 3 on findings at or above
--fail-on (for scripts and CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from tests.unit.capture.traffic import Session, record_session
from tests.unit.ui.traffic import record


def test_a_clean_capture_exits_0_with_its_summary(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clean.h2scope"
    with CaptureWriter(path) as writer:
        record_session(writer, 1, session=Session())
    assert main(["check", str(path), "--fail-on", "info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(path)
    assert lines[1].startswith("  1 connection (1 h2), ") and "HTTP/2 frames" in lines[1]
    assert "  findings: none" in lines


def test_findings_make_the_exit_status_3_from_the_severity_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = record(tmp_path / "traffic.h2c")  # holds a WINDOW_UPDATE with an increment of 0
    assert main(["check", str(path)]) == 3
    out = capsys.readouterr().out
    assert "  findings: 1 error" in out
    assert ("    error   window-update-zero (RFC 9113 §6.9) ×1 by the client, first #1: "
            "WINDOW_UPDATE with an increment of 0: a connection error") in out
    assert out.rstrip().endswith("exit status 3: error findings (--fail-on error)")
    assert main(["check", str(path), "--fail-on", "none"]) == 0


def test_a_file_that_is_not_a_capture_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture\n")
    assert main(["check", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing.h2scope")]) == 2


def test_json_says_the_same_as_the_text(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    path = record(tmp_path / "traffic.h2c")  # a finding, a stall that resumes, a reset
    assert main(["check", str(path)]) == 3
    text = capsys.readouterr().out
    assert main(["check", str(path), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["file"] == str(path) and doc["exit_status"] == 3
    assert doc["connections"] == 1 and doc["protocols"] == {"h2": 1}
    assert f"HTTP/2 frames ({doc['frames']['c2s']} → / {doc['frames']['s2c']} ←)" in text
    (finding,) = doc["findings"]
    assert (finding["severity"], finding["code"], finding["rfc"], finding["count"]) == (
        "error", "window-update-zero", "RFC 9113 §6.9", 1)
    assert doc["stalls"]["count"] >= 1 and doc["stalls"]["longest"]["blocked"] == "server"
    assert f"flow control: {doc['stalls']['count']} stall" in text
    slowest = doc["slowest_streams"][0]
    assert f"#{slowest['conn']} stream {slowest['stream']}  {slowest['request']}" in text
    assert main(["check", str(path), "--json", "--fail-on", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["exit_status"] == 0


def test_check_reads_a_capture_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """For CI pipes: ``... | h2scope check -`` (gzip too); no temporary file is left."""
    import gzip
    import io
    import tempfile

    path = tmp_path / "s.h2scope"
    with CaptureWriter(path) as writer:
        record_session(writer, 1)
    before = set(Path(tempfile.gettempdir()).glob("h2scope-check-*"))
    for data in (path.read_bytes(), gzip.compress(path.read_bytes())):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert main(["check", "-"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("(stdin)\n  1 connection (1 h2), 32 HTTP/2 frames")
    assert set(Path(tempfile.gettempdir()).glob("h2scope-check-*")) == before


def test_check_counts_an_upgraded_connection_as_what_it_became(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An HTTP/1.1 connection upgraded to a WebSocket: the live summary counts it as
    websocket; check of its recording counted it http/1.1 (its CONNECTION record's
    protocol). The CLOSE record now says what it became."""
    from proxy.capture.recorder import CaptureRecorder
    from proxy.events import Batch, Closer, ConnectionClosed, ConnectionOpened, RelayStarted
    from proxy.observe.enums import Direction
    from proxy.summary import RunSummary

    events = [
        Batch(conn_id=4, t=1.0, events=(ConnectionOpened(
            conn_id=4, t=1.0, client=("127.0.0.1", 40000), mode="regular", target=None),)),
        Batch(conn_id=4, t=1.1, events=(RelayStarted(conn_id=4, t=1.1, protocol="http/1.1",
                                                     target="a.test:80"),)),
        Batch(conn_id=4, t=1.2, events=(), direction=Direction.C2S,
              data=b"GET /ws HTTP/1.1\r\nhost: a.test\r\n\r\n", protocol="http/1.1"),
        Batch(conn_id=4, t=1.3, events=(RelayStarted(conn_id=4, t=1.3, protocol="websocket",
                                                     target="a.test:80"),)),
        Batch(conn_id=4, t=2.0, events=(ConnectionClosed(
            conn_id=4, t=2.0, closed_by=Closer.CLIENT, reason="client closed"),)),
    ]
    live = RunSummary()
    path = tmp_path / "ws.h2scope"
    with CaptureWriter(path, autoflush=False) as writer:
        recorder = CaptureRecorder(writer)
        for batch in events:
            live.handle(batch)
            recorder.consume(batch)
    assert live.lines()[0].startswith("1 connection (1 websocket)")
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("  1 connection (1 websocket)")
