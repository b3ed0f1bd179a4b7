"""The text log's fast paths write exactly what the generic wording says."""

from __future__ import annotations

from hyperframe import frame as hf

from proxy.observe.connection import ConnectionObserver
from proxy.observe.describe import flags_text, frame_summary
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved
from proxy.textlog import HEADER_INDENT, event_lines, frame_line, prefix

C2S, S2C = Direction.C2S, Direction.S2C


def generic(conn: int, ev: FrameObserved, rel: float, truncated: bool = False) -> str:
    f = ev.frame
    line = (f"{prefix(conn, rel, ev.direction.arrow)} {f.stream_id:>5} {f.type_name} "
            f"{flags_text(f) or '[]'} len={f.length}  {frame_summary(ev)}").rstrip()
    return line + ("  (payload truncated when recorded)" if truncated else "")


def frames() -> list[FrameObserved]:
    import hpack

    obs = ConnectionObserver()
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    out = []

    def send(d: Direction, data: bytes) -> None:
        out.extend(e for e in obs.feed(d, data, 1.5) if isinstance(e, FrameObserved))

    send(C2S, CONNECTION_PREFACE + hf.SettingsFrame(0).serialize())
    send(S2C, hf.SettingsFrame(0).serialize())
    send(C2S, hf.SettingsFrame(0, flags=["ACK"]).serialize())
    send(S2C, hf.SettingsFrame(0, flags=["ACK"]).serialize())
    req = hf.HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    req.data = enc_c.encode([(":method", "GET"), (":scheme", "https"), (":authority", "a"),
                             (":path", "/")])
    send(C2S, req.serialize())
    resp = hf.HeadersFrame(1, flags=["END_HEADERS"])
    resp.data = enc_s.encode([(":status", "200")])
    send(S2C, resp.serialize())
    send(S2C, hf.DataFrame(1, data=b"x" * 100).serialize())
    padded = hf.DataFrame(1, data=b"y" * 10, flags=["PADDED"])
    padded.pad_length = 5
    send(S2C, padded.serialize())
    send(C2S, hf.WindowUpdateFrame(1, window_increment=116).serialize())
    send(C2S, hf.WindowUpdateFrame(0, window_increment=116).serialize())
    send(S2C, hf.DataFrame(1, data=b"z" * 16_000).serialize())
    send(S2C, hf.DataFrame(1, data=b"", flags=["END_STREAM"]).serialize())
    for sid in (3, 5):  # the same request again: indexed fields, the same block record
        again = hf.HeadersFrame(sid, flags=["END_HEADERS", "END_STREAM"])
        again.data = enc_c.encode([(":method", "GET"), (":scheme", "https"),
                                   (":authority", "a"), (":path", "/")])
        send(C2S, again.serialize())
    return out


def test_fast_lines_equal_the_generic_wording():
    evs = frames()
    kinds = {(e.frame.type_name, e.frame.flag_names) for e in evs}
    assert ("DATA", ()) in kinds and ("DATA", ("PADDED",)) in kinds
    assert ("DATA", ("END_STREAM",)) in kinds and ("WINDOW_UPDATE", ()) in kinds
    assert ("HEADERS", ("END_STREAM", "END_HEADERS")) in kinds
    assert evs[-1].block is evs[-2].block  # a repeated block: its text is made once
    for ev in evs:
        for rel in (0.0, 0.25, 12.5):
            assert frame_line(3, ev, rel) == generic(3, ev, rel), ev
            assert frame_line(3, ev, rel, truncated=True) == generic(3, ev, rel, True)
        if ev.block is not None:
            lines = event_lines(3, ev, 0.0)
            assert lines[1:] == [f"{HEADER_INDENT}{n}: {v}" for n, v in ev.block.headers]


def test_headless_times_start_at_the_first_batch_even_at_zero():
    import io

    from proxy.events import Batch
    from proxy.headless import HeadlessPrinter

    evs = frames()
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    first, later = evs[0], next(e for e in reversed(evs) if e.block is None)
    printer.handle(Batch(conn_id=1, t=0.0, direction=C2S, protocol="h2", data=b"",
                         events=(first,)))
    printer.handle(Batch(conn_id=1, t=1.5, direction=S2C, protocol="h2", data=b"",
                         events=(later,)))
    lines = out.getvalue().splitlines()
    assert lines[-1].lstrip().startswith("1.500 #1")


def _request_lines(fields: list[tuple[str, str]], **kw: object) -> list[str]:
    """The header lines the text log prints under a request HEADERS with ``fields``."""
    import hpack

    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE + hf.SettingsFrame(0).serialize(), 1.0)
    req = hf.HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    req.data = hpack.Encoder().encode(
        [(":method", "GET"), (":scheme", "https"), (":authority", "a"), (":path", "/"),
         *fields])
    (ev,) = [e for e in obs.feed(C2S, req.serialize(), 1.1) if isinstance(e, FrameObserved)]
    return [ln[len(HEADER_INDENT):] for ln in event_lines(1, ev, 0.1, **kw)
            if ln.startswith(HEADER_INDENT)]


def test_a_value_starting_or_ending_with_a_space_shows_the_space():
    """RFC 9113 §8.2.1 forbids it, and at a line's end it is invisible: ``\\x20``,
    as a tab is ``\\x09``; a space inside the value stays a space."""
    lines = _request_lines([("x-ws-req", "spaced   "), ("x-lead", " a b"), ("x-all", "  "),
                            ("x-tab", "t\t"), ("x-fine", "a b")])
    assert lines[4:] == ["x-ws-req: spaced\\x20\\x20\\x20", "x-lead: \\x20a b",
                         "x-all: \\x20\\x20", "x-tab: t\\x09", "x-fine: a b"]
    annotated = _request_lines([("x-ws-req", "spaced ")], annotate=True)
    assert annotated[4].startswith("x-ws-req: spaced\\x20    ; "), annotated


def test_a_field_name_that_is_no_token_is_quoted():
    """An empty name printed as ``: 1``; ``x:y`` with the value ``1`` read as ``x``
    with the value ``y: 1``. Both are quoted now (a token holds no quote)."""
    lines = _request_lines([("", "1"), ("x:y", "1"), ("x", "y: 1"), ('a"b\\', "2"),
                            ("x y", "3"), ("ok-name", "4")])
    assert lines[4:] == ['"": 1', '"x:y": 1', "x: y: 1", '"a\\"b\\\\": 2', '"x y": 3',
                         "ok-name: 4"]
    assert _request_lines([])[:1] == [":method: GET"]  # (a pseudo-header's colon is fine)


def test_decode_lists_fields_as_the_text_log_does():
    from proxy.observe.describe import block_lines

    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE + hf.SettingsFrame(0).serialize(), 1.0)
    import hpack
    req = hf.HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    req.data = hpack.Encoder().encode([(":method", "GET"), ("x:y", "1"), ("x-ws", "v ")])
    (ev,) = [e for e in obs.feed(C2S, req.serialize(), 1.1) if isinstance(e, FrameObserved)]
    assert ev.block is not None
    assert block_lines(ev.block, indent="") == [":method: GET", '"x:y": 1', "x-ws: v\\x20"]


def test_a_finding_raised_again_and_again_is_counted_not_printed_each_time(
        tmp_path: object) -> None:
    """A flood of bad frames (23,043 CONTINUATIONs after a cut block, an error each)
    buried the rest of the log: the first 20 of a code on a connection are shown,
    then one line says the rest are counted, and the close says how many. The live
    log and the text export say the same."""
    import io
    from pathlib import Path

    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay
    from proxy.capture.writer import CaptureWriter
    from proxy.events import Batch, Closer, ConnectionClosed
    from proxy.headless import HeadlessPrinter
    from tests.unit.capture.traffic import raw_frame

    zero = raw_frame(8, 0, 0, bytes(4))  # WINDOW_UPDATE 0: window-update-zero
    frames = [raw_frame(4, 0, 0, b"")] + [zero] * 30
    path = Path(str(tmp_path)) / "flood.h2scope"
    obs = ConnectionObserver(preface="required")
    batches = [Batch(conn_id=1, t=1000.0, events=tuple(obs.feed(
        Direction.C2S, CONNECTION_PREFACE, 1000.0)), direction=Direction.C2S,
        data=CONNECTION_PREFACE, protocol="h2c")]
    with CaptureWriter(path) as w:
        w.connection(1, {"protocol": "h2c"}, t=0.0, wall=1000.0)
        w.raw(1, Direction.C2S, CONNECTION_PREFACE, t=0.0, wall=1000.0)
        for i, data in enumerate(frames):
            w.frame(1, Direction.C2S, data, t=0.001 * i, wall=1000.0 + 0.001 * i)
            batches.append(Batch(conn_id=1, t=1000.0 + 0.001 * i, events=tuple(obs.feed(
                Direction.C2S, data, 1000.0 + 0.001 * i)), direction=Direction.C2S,
                data=data, protocol="h2c"))
        w.close_connection(1, t=1.0, wall=1001.0, closed_by="client")
    batches.append(Batch(conn_id=1, t=1001.0, events=(ConnectionClosed(
        conn_id=1, t=1001.0, closed_by=Closer.CLIENT, reason="client closed"),)))
    live = io.StringIO()
    printer = HeadlessPrinter(live)
    for b in batches:
        printer.handle(b)
    exported = io.StringIO()
    write_text(replay(path), exported)
    for text in (live.getvalue(), exported.getvalue()):
        said = [ln for ln in text.splitlines() if "window-update-zero" in ln]
        assert len([ln for ln in said if "! ERROR window-update-zero" in ln]) == 20, text
        assert said[20].endswith("! window-update-zero: 20 shown on #1; the rest are "
                                 "counted, and their number said when it closes"), said
        assert said[21].endswith("! window-update-zero ×30 in all on #1 (10 not shown: "
                                 "h2scope check and export --format jsonl list each)"), said
        assert len(said) == 22
        lines = text.splitlines()
        assert lines.index(said[21]) == len(lines) - 2  # (just before the close line)
        assert len([ln for ln in lines if "WINDOW_UPDATE" in ln]) >= 30  # every frame


def test_an_hpack_bomb_prints_its_repeated_field_once_with_its_count() -> None:
    """A 15 KB block that references one 4,000-byte entry 12,000 times decodes to
    48 MB; the log printed 256 KiB of it a block (300 such blocks: 77 MB of log).
    A run of one field is one line with its count; a distinct field still its own."""
    import hpack

    from tests.unit.capture.traffic import raw_frame

    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                        (":authority", "a"), ("x", "A" * 4000)])
    block += bytes([0xBE]) * 12_000 + enc.encode([("y", "1")])  # (0xbe: entry 62, x)
    obs = ConnectionObserver(preface="required")
    obs.feed(Direction.C2S, CONNECTION_PREFACE + raw_frame(4, 0, 0, b""), 0.0)
    [ev] = [e for e in obs.feed(Direction.C2S, raw_frame(1, 5, 1, block), 0.0)
            if type(e) is FrameObserved]
    lines = event_lines(1, ev, 0.0)
    assert lines[5] == f"{HEADER_INDENT}x: {'A' * 4000}  ×12,001 in a row"
    assert lines[6] == f"{HEADER_INDENT}y: 1"
    assert sum(map(len, lines)) < 6000
    assert any("header-list-amplified" in line for line in lines)


def test_byte_counts_use_the_unit_that_reads() -> None:
    """'9157.0 KiB' on a close line and '5120.0 KiB were there': MiB from 1 MiB on."""
    from proxy.textlog import byte_count

    assert [byte_count(n) for n in (189, 12_595, 1_048_575, 5 << 20, 9_376_768, 3 << 30)] \
        == ["189 B", "12.3 KiB", "1024.0 KiB", "5.0 MiB", "8.9 MiB", "3.0 GiB"]


def test_the_time_column_can_be_the_wall_clock(tmp_path: object) -> None:
    """After two days a relative time reads 172800.110: an operator could not line a
    frame up with a server's log. --time wall (or utc) writes the date and time,
    live and in the export alike; relative stays the default."""
    import io
    import os
    import time
    from pathlib import Path

    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay
    from proxy.capture.writer import CaptureWriter
    from proxy.config import TIME_FORMATS as CONFIG_TIME_FORMATS
    from proxy.events import Batch
    from proxy.headless import HeadlessPrinter
    from proxy.textlog import TIME_FORMATS, set_time_format
    from tests.unit.capture.traffic import raw_frame

    assert CONFIG_TIME_FORMATS == TIME_FORMATS
    wall = 1_796_688_747.25  # 2026-12-08 00:12:27.250 UTC
    settings = raw_frame(4, 0, 0, b"")
    path = Path(str(tmp_path)) / "t.h2scope"
    with CaptureWriter(path) as w:
        w.connection(1, {"protocol": "h2c"}, t=0.0, wall=wall)
        w.raw(1, Direction.C2S, CONNECTION_PREFACE, t=0.0, wall=wall)
        w.frame(1, Direction.C2S, settings, t=0.5, wall=wall + 0.5)
    obs = ConnectionObserver(preface="required")
    batches = [Batch(conn_id=1, t=t, events=tuple(obs.feed(Direction.C2S, data, t)),
                     direction=Direction.C2S, data=data, protocol="h2c")
               for t, data in ((wall, CONNECTION_PREFACE), (wall + 0.5, settings))]
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        for fmt, stamp in (("utc", "2026-12-08T00:12:27.750Z"),
                           ("wall", "2026-12-08 00:12:27.750"), ("relative", "    0.500")):
            live = io.StringIO()
            printer = HeadlessPrinter(live, time=fmt)
            for b in batches:
                printer.handle(b)
            exported = io.StringIO()
            write_text(replay(path), exported, time=fmt)
            for text in (live.getvalue(), exported.getvalue()):
                [line] = [ln for ln in text.splitlines() if " SETTINGS " in ln]
                assert line.startswith(f"{stamp} #1   →     0 SETTINGS"), (fmt, line)
    finally:
        set_time_format("relative")
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
