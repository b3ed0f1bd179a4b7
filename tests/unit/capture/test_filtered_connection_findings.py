"""Under a filter, a connection nothing was shown of stays unsaid unless something
went wrong on it: an info-level finding at its close (a response the client hung
up on) is no such thing, and ``conn:1`` had listed every other connection that
ended so, in the text and JSON Lines exports and the headless log alike."""

from __future__ import annotations

import io
import json
from pathlib import Path

import hpack
from hyperframe.frame import HeadersFrame, SettingsFrame

from proxy.capture.export_text import write_jsonl, write_text
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.events import Batch
from proxy.filter import compile_filter
from proxy.headless import HeadlessPrinter
from proxy.observe.enums import CONNECTION_PREFACE, Direction

C2S, S2C = Direction.C2S, Direction.S2C


def _frame(f: HeadersFrame | SettingsFrame, *flags: str) -> bytes:
    for flag in flags:
        f.flags.add(flag)
    return bytes(f.serialize())


def _capture(path: Path) -> Path:
    """Two connections; on #2 the client hangs up on an unfinished response."""
    with CaptureWriter(path) as w:
        for conn in (1, 2):
            client, server = hpack.Encoder(), hpack.Encoder()
            w.connection(conn, {"protocol": "h2c", "server": {"host": "a", "port": 80}},
                         t=conn, wall=1000.0 + conn)
            w.raw(conn, C2S, CONNECTION_PREFACE, t=conn)
            request = HeadersFrame(1, data=client.encode([
                (":method", "GET"), (":scheme", "http"), (":authority", "a"),
                (":path", f"/{conn}")]))
            response = HeadersFrame(1, data=server.encode([(":status", "200")]))
            steps = [(C2S, _frame(SettingsFrame(0))), (S2C, _frame(SettingsFrame(0))),
                     (C2S, _frame(SettingsFrame(0), "ACK")), (S2C, _frame(SettingsFrame(0), "ACK")),
                     (C2S, _frame(request, "END_HEADERS", "END_STREAM")),
                     (S2C, _frame(response, "END_HEADERS", *(("END_STREAM",) if conn == 1
                                                             else ())))]
            for i, (d, data) in enumerate(steps):
                w.frame(conn, d, data, t=conn + i / 100, wall=1000.0 + conn + i / 100)
            w.close_connection(conn, t=conn + 0.5, wall=1000.5 + conn, closed_by="client")
    return path


def test_an_info_finding_does_not_bring_in_a_connection_the_filter_left_out(
        tmp_path: Path) -> None:
    path = _capture(tmp_path / "two.h2scope")
    everything = io.StringIO()
    write_text(replay(path), everything)
    assert "#2   ← ! INFO stream-unfinished" in everything.getvalue()
    for text in ("conn:1", "path:/1"):
        out = io.StringIO()
        write_text(replay(path), out, keep=compile_filter(text))
        assert "#1 " in out.getvalue() and "#2 " not in out.getvalue(), out.getvalue()
        jsonl = io.StringIO()
        write_jsonl(replay(path), jsonl, keep=compile_filter(text))
        assert {json.loads(ln)["conn"] for ln in jsonl.getvalue().splitlines()} == {1}
    # A filter with a finding: term decides which connection findings show, as for
    # frames: the one it selects, and no other.
    for text, shown in (("finding:info", True), ("finding:stream-unfinished", True),
                        ("finding:any conn:2", True), ("stream-unfinished finding:any", True),
                        ("finding:error", False), ("-finding:any", False),
                        ("finding:any conn:1", False), ("finding:any type:DATA", False)):
        asked = io.StringIO()
        write_text(replay(path), asked, keep=compile_filter(text))
        assert ("#2   ← ! INFO stream-unfinished" in asked.getvalue()) is shown, text
    shown = io.StringIO()
    write_text(replay(path), shown, keep=compile_filter("conn:2"))
    assert "#2   ← ! INFO stream-unfinished" in shown.getvalue()
    assert "#1 " not in shown.getvalue()


def test_the_headless_log_leaves_it_out_too(tmp_path: Path) -> None:
    from proxy.capture.replay import replay as replayed
    from proxy.commands.run import event_filter

    path = _capture(tmp_path / "two.h2scope")
    for text, shown in (("conn:1", False), ("finding:info", True), ("finding:error", False)):
        for jsonl in (False, True):
            out, err = io.StringIO(), io.StringIO()
            printer = HeadlessPrinter(out, filter=event_filter(text), jsonl=jsonl, err=err)
            for item in replayed(path):
                if item.events:
                    printer.handle(Batch(conn_id=item.record.conn_id, t=item.record.wall,
                                         events=item.events))
            assert ("stream-unfinished" in out.getvalue()) is shown, (text, out.getvalue())
