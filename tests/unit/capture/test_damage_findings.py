"""What a damaged or cut capture does not say: a record lost to damaged bytes, or
the rest of a recording that was killed, is not evidence of a protocol error.

A connection open where bytes of the file were skipped is judged as an excerpt
from there on (as after an import's LOST record): its response declaring
``content-length: 30000`` is not a ``content-length-mismatch`` for missing a
DATA frame the file lost, and the replay comparison calls the stream
incomplete instead of blaming the server. A capture without its END record
does not report SETTINGS "never acknowledged" when the ACK may lie past the
cut.
"""

from __future__ import annotations

from pathlib import Path

import hpack
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame

from proxy.capture.format import RECORD_HEADER_SIZE, RecordType
from proxy.capture.reader import CaptureReader, Record
from proxy.capture.replay import replay, replay_observer
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.observe.enums import Direction
from proxy.observe.events import ConnectionFindingRaised, FrameObserved
from proxy.replay.compare import outcomes
from proxy.replay.source import load_capture

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
C2S, S2C = Direction.C2S, Direction.S2C


def _headers(encoder: hpack.Encoder, fields: list[tuple[str, str]], end: bool) -> bytes:
    f = HeadersFrame(1)
    f.data = encoder.encode(fields)
    f.flags.add("END_HEADERS")
    if end:
        f.flags.add("END_STREAM")
    return bytes(f.serialize())


def _data(payload: bytes, end: bool) -> bytes:
    f = DataFrame(1)
    f.data = payload
    if end:
        f.flags.add("END_STREAM")
    return bytes(f.serialize())


def _settings(ack: bool = False) -> bytes:
    f = SettingsFrame(0)
    if ack:
        f.flags.add("ACK")
    return bytes(f.serialize())


def write_download(path: Path, *, end: bool = True) -> None:
    """One connection: a GET answered with 30000 bytes in three DATA frames."""
    client, server = hpack.Encoder(), hpack.Encoder()
    request = [(":method", "GET"), (":scheme", "https"), (":authority", "example.test"),
               (":path", "/big.bin")]
    steps = [(C2S, PREFACE + _settings()), (S2C, _settings()), (C2S, _settings(ack=True)),
             (S2C, _settings(ack=True)), (C2S, _headers(client, request, end=True)),
             (S2C, _headers(server, [(":status", "200"), ("content-length", "30000")],
                            end=False)),
             (S2C, _data(b"a" * 10000, end=False)), (S2C, _data(b"b" * 10000, end=False)),
             (S2C, _data(b"c" * 10000, end=True))]
    writer = CaptureWriter(path)
    writer.connection(1, {"protocol": "h2", "server": {"host": "example.test", "port": 443}},
                      t=0.0)
    t = 0.0
    for direction, data in steps:
        t += 0.001
        if data.startswith(PREFACE):
            writer.raw(1, direction, PREFACE, t=t)
            data = data[len(PREFACE):]
        writer.frame(1, direction, data, t=t)
    if end:
        writer.close_connection(1, closed_by="client", t=t + 0.001)
        writer.close()
    else:
        writer.flush()  # (and never closed: no END record, as after a kill -9)


def _records(path: Path) -> list[Record]:
    with CaptureReader(path) as reader:
        return list(reader.records())


def _errors(path: Path) -> list[str]:
    return [ev.finding.code for _, ev in replay_observer(path, close_open=True)
            if isinstance(ev, ConnectionFindingRaised)] + [
        f.code for _, ev in replay_observer(path, close_open=True)
        if isinstance(ev, FrameObserved) for f in ev.findings]


def damage_second_data_frame(path: Path, out: Path) -> int:
    frames = [r for r in _records(path) if r.type == RecordType.FRAME
              and r.body[3] == 0 and r.body[8] == 1]
    victim = frames[1]
    data = bytearray(path.read_bytes())
    data[victim.offset + RECORD_HEADER_SIZE + 100] ^= 0xFF
    out.write_bytes(bytes(data))
    return victim.offset


def test_the_intact_capture_is_clean_and_a_short_body_would_be_flagged(tmp_path: Path) -> None:
    path = tmp_path / "ok.h2scope"
    write_download(path)
    assert _errors(path) == []
    # (the check the damage must not trip: a body really short of its content-length)
    short = tmp_path / "short.h2scope"
    data = bytearray(path.read_bytes())
    frames = [r for r in _records(path) if r.type == RecordType.FRAME and r.body[3] == 0]
    cut = frames[1]
    end = cut.offset + RECORD_HEADER_SIZE + len(cut.body)
    short.write_bytes(bytes(data[:cut.offset] + data[end:]))
    assert "content-length-mismatch" in _errors(short)


def test_a_damaged_record_makes_its_connection_an_excerpt_not_a_violation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, bad = tmp_path / "ok.h2scope", tmp_path / "bad.h2scope"
    write_download(path)
    offset = damage_second_data_frame(path, bad)
    assert _errors(bad) == []
    assert main(["check", str(bad)]) == 0
    out = capsys.readouterr().out
    assert f"damaged record skipped: byte offset {offset}: CRC mismatch" in out
    assert "content-length" not in out
    # The text export marks the place.
    assert main(["export", str(bad), "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert f"! LOST {10009 + RECORD_HEADER_SIZE} bytes: damaged bytes skipped at byte " \
        f"offset {offset}" in text
    lines = text.splitlines()
    lost = next(i for i, line in enumerate(lines) if "! LOST" in line)
    assert "DATA" in lines[lost - 1] and "DATA" in lines[lost + 1]


def test_the_replay_comparison_calls_a_damaged_stream_incomplete(tmp_path: Path) -> None:
    path, bad = tmp_path / "ok.h2scope", tmp_path / "bad.h2scope"
    write_download(path)
    damage_second_data_frame(path, bad)
    (whole,) = outcomes(replay(path))
    assert not whole.incomplete and whole.body_length == 30000 and whole.body_sha256
    (damaged,) = outcomes(replay(bad))
    assert damaged.incomplete and damaged.body_length == 20000
    assert damaged.body_sha256 is None
    (plan,) = load_capture(bad).plans
    assert plan.original is not None and plan.original[0].incomplete
    assert any("part of it is missing from the capture" in n for n in plan.notes)


def test_a_capture_cut_before_the_settings_ack_does_not_report_it_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "whole.h2scope"
    write_download(path)
    records = _records(path)
    # Cut right after the server's SETTINGS: the client's ACK is past the cut.
    server_settings = next(r for r in records if r.type == RecordType.FRAME
                           and r.direction is S2C and r.body[3] == 4)
    cut = tmp_path / "cut.h2scope"
    cut.write_bytes(path.read_bytes()[:server_settings.offset + RECORD_HEADER_SIZE
                                      + len(server_settings.body)])
    assert _errors(cut) == []
    assert main(["check", str(cut)]) == 0
    out = capsys.readouterr().out
    assert "settings-not-acknowledged" not in out
    assert "no END record" in out


def test_a_recording_that_ended_cleanly_still_reports_a_missing_ack(tmp_path: Path) -> None:
    """The other side of the rule: with its END record, the capture is whole."""
    path = tmp_path / "noack.h2scope"
    writer = CaptureWriter(path)
    writer.connection(1, {"protocol": "h2"}, t=0.0)
    writer.raw(1, C2S, PREFACE, t=0.001)
    writer.frame(1, C2S, _settings(), t=0.001)
    writer.frame(1, S2C, _settings(), t=0.002)
    writer.close()
    assert "settings-not-acknowledged" in _errors(path)


def test_a_connection_the_source_ended_is_an_excerpt_for_every_reader(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A packet capture or net log that stops while a download is in flight: the
    importer closes the connection with cut=True; neither the import nor check
    nor the UI's reading then reports a short body, an unfinished stream or a
    frame cut at the end."""
    from proxy.capture.tap import RecordingObserver
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    client, server = hpack.Encoder(), hpack.Encoder()
    request = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/b")]
    path = tmp_path / "imported.h2scope"
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, {"protocol": "h2c"}, t=0.0)
        tap.feed(C2S, PREFACE + _settings(), 0.1)
        tap.feed(S2C, _settings() + _settings(ack=True), 0.2)
        tap.feed(C2S, _settings(ack=True) + _headers(client, request, end=True), 0.3)
        tap.feed(S2C, _headers(server, [(":status", "200"), ("content-length", "30000")],
                               end=False) + _data(b"a" * 10000, end=False)
                 + _data(b"b" * 10000, end=False)[:5000], 0.4)
        closing = tap.close(0.5, error="still open when the capture ended", cut=True)
    # Only the frame the capture cut, as information.
    said = [(ev.finding.code, ev.finding.severity.name) for ev in closing]
    assert said == [("frame-truncated", "INFO")]
    assert _errors(path) == ["frame-truncated"]
    assert main(["check", "--fail-on", "warning", str(path)]) == 0
    out = capsys.readouterr().out
    assert "content-length" not in out and "unfinished" not in out
    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        assert [(f.code, f.severity.name) for f in session.conns[1].conn_findings] == \
            [("frame-truncated", "INFO")]
    finally:
        capture.close()


def test_a_request_lost_to_damage_does_not_make_its_answer_a_violation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Requests on streams 1 and 3, then both answers (as a client with several
    streams in flight sends them). The record holding stream 1's request is
    damaged: the answer on stream 1 comes after stream 3 was opened, so a plain
    reading says 'HEADERS on a closed stream' (RFC 9113 §5.1) and check exits 3.
    Stream 1 may have been opened in the lost part: no finding."""
    client, server = hpack.Encoder(), hpack.Encoder()

    def request(sid: int) -> bytes:
        f = HeadersFrame(sid)
        f.data = client.encode([(":method", "GET"), (":scheme", "https"),
                                (":authority", "example.test"), (":path", f"/{sid}")])
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        return bytes(f.serialize())

    def answer(sid: int) -> bytes:
        f = HeadersFrame(sid)
        f.data = server.encode([(":status", "204")])
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        return bytes(f.serialize())

    path, bad = tmp_path / "two.h2scope", tmp_path / "bad.h2scope"
    steps = [(C2S, _settings()), (S2C, _settings()), (C2S, _settings(ack=True)),
             (S2C, _settings(ack=True)), (C2S, request(1)), (C2S, request(3)),
             (S2C, answer(1)), (S2C, answer(3))]
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0)
        writer.raw(1, C2S, PREFACE, t=0.0)
        for i, (direction, frame) in enumerate(steps):
            writer.frame(1, direction, frame, t=0.001 * (i + 1))
        writer.close_connection(1, closed_by="client", t=0.1)
    assert _errors(path) == []
    victim = next(r for r in _records(path) if r.type == RecordType.FRAME
                  and r.body[3] == 1 and r.direction is C2S)  # stream 1's request
    data = bytearray(path.read_bytes())
    data[victim.offset + RECORD_HEADER_SIZE + 12] ^= 0xFF
    bad.write_bytes(bytes(data))
    # The request on stream 3 refers to HPACK entries the lost block inserted: it
    # cannot be decoded, and says why — as information, not a protocol error.
    assert _errors(bad) == ["hpack-error"]
    assert main(["check", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "damaged record skipped" in out and "frame-on-closed-stream" not in out
    assert "findings: 1 info" in out


def test_a_damaged_preface_record_loses_the_preface_not_the_clients_frames(
        tmp_path: Path) -> None:
    """Its connection became an excerpt, but its observer still required the
    preface: every intact client frame after it was lost to a false 'desynced'
    (an error: check exited 3)."""
    path, damaged = tmp_path / "ok.h2scope", tmp_path / "damaged.h2scope"
    write_download(path)
    (preface,) = [r for r in _records(path) if r.type == RecordType.RAW]
    data = bytearray(path.read_bytes())
    data[preface.offset + RECORD_HEADER_SIZE + 3] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert _errors(damaged) == []
    client_frames = [ev for conn, ev in replay_observer(damaged)
                     if isinstance(ev, FrameObserved) and ev.direction is C2S]
    assert [ev.frame.type_name for ev in client_frames] == ["SETTINGS", "SETTINGS", "HEADERS"]
    assert main(["check", str(damaged)]) == 0


@pytest.mark.parametrize(("body", "said"), [
    (b"", "CONNECTION record: its JSON does not parse"),
    (b"\xff\xfe\x00", "CONNECTION record: its JSON does not parse"),
    (b"[1, 2]", "CONNECTION record: its JSON is list [1, 2], not an object"),
    (b'{"observer": {"preface": 7}}', "its 'observer' is dict"),
    (b'{"client": "127.0.0.1"}', 'its \'client\' is str "127.0.0.1"'),
])
def test_a_json_record_the_format_does_not_allow_is_skipped_as_damaged(
        tmp_path: Path, body: bytes, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Its CRC is right (another writer, a hand edit): every reader used to crash on
    it with a traceback. Now it is a damaged record, said by its offset and
    skipped, and the connection's frames are read as an excerpt."""
    path = tmp_path / "odd.h2scope"
    writer = CaptureWriter(path)
    writer._append(int(RecordType.CONNECTION), 0, 1, 0.0, None, body)
    writer.raw(1, C2S, PREFACE, t=0.001)
    writer.frame(1, C2S, _settings(), t=0.001)
    writer.close_connection(1, closed_by="client", t=0.002)
    writer.close()
    problems: list[object] = []
    with CaptureReader(path, on_problem=problems.append) as reader:
        types = [r.type for r in reader.records()]
    assert RecordType.CONNECTION not in types and RecordType.FRAME in types
    (problem,) = problems
    assert said in str(problem), problem
    for fmt in ("text", "jsonl", "har", "script"):
        assert main(["export", str(path), "--format", fmt, "-o", str(tmp_path / "x")]) == 0
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "skipped" in err


def test_an_h2c_upgrade_record_with_null_headers_is_skipped_not_a_crash(
        tmp_path: Path) -> None:
    path = tmp_path / "odd.h2scope"
    writer = CaptureWriter(path)
    writer.connection(1, {"protocol": "h2c"}, t=0.0)
    writer._append(int(RecordType.H2C_UPGRADE), 0, 1, 0.001, None,
                   b'{"http2_settings": "zz", "request_headers": null}')
    writer.close()
    problems: list[object] = []
    with CaptureReader(path, on_problem=problems.append) as reader:
        assert [r.type for r in reader.records()] == [RecordType.CONNECTION, RecordType.END]
    assert "its 'http2_settings' is str \"zz\"" in str(problems[0])


def test_a_copy_of_a_damaged_capture_keeps_its_damage_said_not_a_violation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``export --format capture`` of a damaged capture said nothing of the damage, and
    ``check`` on the copy reported a content-length-mismatch (exit 3) that the
    original did not: the LOST record the copy keeps (connection 0: damaged bytes)
    did not make the open connections excerpts, as the damage itself does. And the
    HAR entry of the stream with a hole was a whole 200 without a word."""
    import json

    path, bad, copy = tmp_path / "ok.h2scope", tmp_path / "bad.h2scope", tmp_path / "cp.h2scope"
    write_download(path)
    offset = damage_second_data_frame(path, bad)
    capsys.readouterr()
    assert main(["export", str(bad), "--format", "capture", "-o", str(copy)]) == 0
    err = capsys.readouterr().err
    assert f"byte offset {offset}: CRC mismatch: the record's bytes are damaged (a LOST " \
        f"record in {copy} says where)" in err
    assert _errors(copy) == []
    assert main(["check", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "content-length" not in out
    assert f"incomplete: damaged bytes skipped at byte offset {offset}" in out
    for source in (bad, copy):
        har = tmp_path / "x.har"
        assert main(["export", str(source), "--format", "har", "-o", str(har)]) == 0
        (entry,) = json.loads(har.read_text())["log"]["entries"]
        assert entry["comment"] == ("INCOMPLETE: part of the stream is not in the capture "
                                    "(lost or damaged records while it was open): of its "
                                    "body, 20000 bytes are here")


def test_the_viewer_judges_a_damaged_capture_as_check_does(tmp_path: Path) -> None:
    """``view`` of a damaged capture showed the content-length-mismatch ``check`` did
    not report: its loader skipped the damaged record without telling the
    connections open there."""
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    path, bad, copy = tmp_path / "ok.h2scope", tmp_path / "bad.h2scope", tmp_path / "cp.h2scope"
    write_download(path)
    damage_second_data_frame(path, bad)
    assert main(["export", str(bad), "--format", "capture", "-o", str(copy)]) == 0
    short = tmp_path / "short.h2scope"  # (the same without the damage: a real violation)
    data = bytearray(path.read_bytes())
    frames = [r for r in _records(path) if r.type == RecordType.FRAME and r.body[3] == 0]
    end = frames[1].offset + RECORD_HEADER_SIZE + len(frames[1].body)
    short.write_bytes(bytes(data[:frames[1].offset] + data[end:]))
    counts = {}
    for name, source in (("bad", bad), ("copy", copy), ("short", short)):
        capture = CaptureFile(source)
        session = Session(capture)
        try:
            load(session, capture)
            counts[name] = sum(c.findings for c in session.conns.values())
        finally:
            capture.close()
    assert counts == {"bad": 0, "copy": 0, "short": 1}


def test_a_one_connection_copy_of_a_damaged_capture_keeps_the_damage_said(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--conn N`` left out the LOST records of damaged bytes (connection 0) that the
    whole copy keeps, though it said the copy had them: check failed the copy again."""
    path, bad, copy = tmp_path / "ok.h2scope", tmp_path / "bad.h2scope", tmp_path / "c1.h2scope"
    write_download(path)
    offset = damage_second_data_frame(path, bad)
    assert main(["export", str(bad), "--format", "capture", "--conn", "1", "-o", str(copy)]) == 0
    capsys.readouterr()
    assert main(["check", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "content-length" not in out
    assert f"incomplete: damaged bytes skipped at byte offset {offset}" in out
