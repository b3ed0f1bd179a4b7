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
