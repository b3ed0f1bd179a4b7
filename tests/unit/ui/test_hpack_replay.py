"""Header blocks decoded again on demand equal the observer's, at any distance
from a checkpoint, over a capture and over live traffic."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import hpack

from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.events import Batch
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved
from proxy.observe.hpack_annotated import AnnotatedDecoder
from ui.model.capture import CaptureFile, load
from ui.model.hpack_replay import EVERY, restore_block
from ui.model.live import LiveFeed, ingest
from ui.model.session import Session
from ui.model.table import LiveFrames

C2S, S2C = Direction.C2S, Direction.S2C
STREAMS = 3 * EVERY + 17
"""Enough blocks in each direction for several checkpoints."""


def _frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, ftype, flags, sid) + payload


def _write(path: Path) -> None:
    """Requests whose varying headers keep evicting from a small table, a table
    size change midway, and some blocks split into CONTINUATION frames."""
    rng = random.Random(7)
    req, resp = hpack.Encoder(), hpack.Encoder()
    w = CaptureWriter(path)
    t = 100.0
    w.connection(1, {"client": {"ip": "127.0.0.1", "port": 1}, "mode": "regular",
                     "target": "h.test:443", "protocol": "h2"}, t=t)
    w.raw(1, C2S, CONNECTION_PREFACE, t=t)
    w.frame(1, C2S, _frame(4, 0, 0, b""), t=t)
    w.frame(1, S2C, _frame(4, 0, 0, b""), t=t)
    w.frame(1, S2C, _frame(4, 1, 0, b""), t=t)
    w.frame(1, C2S, _frame(4, 1, 0, b""), t=t)
    for i in range(STREAMS):
        sid = 2 * i + 1
        t += 0.001
        if i == STREAMS // 2:
            req.header_table_size = 1024  # a size update starts the next block
        block = req.encode([(":method", "GET"), (":scheme", "https"), (":path", f"/{i}"),
                            (":authority", "h.test"),
                            (f"x-{rng.randrange(40)}", "v" * rng.randrange(1, 300))])
        if i % 5 == 0:  # HEADERS + CONTINUATION + CONTINUATION
            a, b = len(block) // 3, 2 * len(block) // 3
            w.frame(1, C2S, _frame(1, 1, sid, block[:a]), t=t)
            w.frame(1, C2S, _frame(9, 0, sid, block[a:b]), t=t)
            w.frame(1, S2C, _frame(8, 0, 0, struct.pack(">L", 1)), t=t)  # in between, other way
            w.frame(1, C2S, _frame(9, 4, sid, block[b:]), t=t)
        else:
            w.frame(1, C2S, _frame(1, 5, sid, block), t=t)
        w.frame(1, S2C, _frame(1, 5, sid, resp.encode([(":status", "200"),
                                                       ("etag", f'"{rng.random()}"')])), t=t)
    w.close()


def _observer_blocks(path: Path) -> list[tuple[int, FrameObserved]]:
    return [(i, ev) for i, ev in enumerate(
        ev for item in replay(path) for ev in item.events if type(ev) is FrameObserved)
        if ev.block is not None]


def test_restore_block_rebuilds_a_table_entry_for_entry() -> None:
    entries = (("x-b", "2" * 50), ("x-a", "ü"), (":path", "/"))
    d = AnnotatedDecoder(1 << 20)
    d.decode(restore_block(entries, 2048))
    assert d.entries == entries and d.table_max == 2048


def test_every_block_of_a_capture_decodes_again_equal_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "c.h2c"
    _write(path)
    expected = _observer_blocks(path)
    assert len(expected) >= 2 * STREAMS
    capture = CaptureFile(path)
    try:
        s = Session(capture)
        load(s, capture)
        tables = s.conns[1].hpack
        # The loader left checkpoints, so no block is far from one.
        assert tables[C2S].replay.checkpoints >= STREAMS // EVERY
        rows = list(expected)
        random.Random(1).shuffle(rows)
        for row, ev in rows + rows[:20]:
            assert s.header_block(row) == ev.block, row
        for d in Direction:
            tables[d].rebuild(s.block_bytes)
            assert tables[d].in_sync
    finally:
        capture.close()


def test_live_blocks_decode_again_without_loader_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "c.h2c"
    _write(path)
    feed = LiveFeed()
    for item in replay(path):
        if item.events:
            feed.put(Batch(conn_id=1, t=0.0, events=item.events))
    store = LiveFrames(budget=1)  # every DATA-like frame forgotten; header blocks kept
    s = Session(store)
    ingest(s, store, feed)
    expected = _observer_blocks(path)
    for row, ev in reversed(expected):  # backwards: each one restores a checkpoint
        assert s.header_block(row) == ev.block, row
    assert s.conns[1].hpack[C2S].replay.checkpoints > 1
    assert store.forgotten > 0


def test_the_block_that_broke_shows_what_decoded_and_where_it_broke(tmp_path: Path) -> None:
    """The HPACK tab of a block that does not decode (an index to the entry its own
    insert evicted, the encoder bug it is there to find): the representations
    before the error, annotated, then the error at its byte; a later block of that
    direction says why it is not decoded."""
    from ui.model import detail

    def lit(name: bytes, value: bytes) -> bytes:
        return bytes([0x40, len(name)]) + name + bytes([len(value)]) + value

    path = tmp_path / "broken.h2scope"
    w = CaptureWriter(path)
    w.connection(1, {"client": {"ip": "127.0.0.1", "port": 1}, "mode": "regular",
                     "target": "h.test:443", "protocol": "h2"}, t=1.0)
    w.raw(1, C2S, CONNECTION_PREFACE, t=1.0)
    w.frame(1, C2S, _frame(4, 0, 0, b""), t=1.0)
    head = bytes([0x82, 0x87, 0x84, 0x41, 0x06]) + b"h.test"  # GET https / h.test
    w.frame(1, C2S, _frame(1, 5, 1, bytes([0x3F, 0x45]) + head + lit(b"x-a", b"a" * 40)),
            t=1.1)
    w.frame(1, C2S, _frame(1, 5, 3, head + lit(b"x-c", b"c" * 40) + bytes([0x80 | 64])),
            t=1.2)
    w.frame(1, C2S, _frame(1, 5, 5, head), t=1.3)
    w.close()
    capture = CaptureFile(path)
    try:
        s = Session(capture)
        load(s, capture)
        rows = {s.table.stream[r]: r for r in range(s.table.count) if s.table.type[r] == 1}
        events = {r: s.table.event(r) for r in rows.values()}
        text = detail.hpack(s, rows[3], events[rows[3]]).plain
        assert "header block: 58 bytes on the wire; it does NOT decode: 5 representations " \
            "before the error" in text
        assert "x-c: " + "c" * 40 in text and "✕ evicted x-a" in text
        assert "✕ at byte 57: index 64 out of range: 61 static + 1 dynamic entries; index 64 " \
            "was x-a: " in text and "(RFC 7541 §2.3.3)" in text
        later = detail.hpack(s, rows[5], events[rows[5]]).plain
        assert later.startswith("This header block was not decoded (an earlier block")
        # The tables view says where HPACK broke and shows the table as the error
        # left it: x-c, which pushed out the x-a that index 64 asked for.
        from ui.screens.state import hpack_text
        tables = hpack_text(s.conns[1], s.block_bytes).plain
        assert f"✕ HPACK broke: the block ending at frame {rows[3] + 1} (g {rows[3] + 1}, its " \
            "HPACK tab) did not decode" in tables
        assert "(at byte 57: index 64 out of range" in tables
        assert "    62  x-c: " + "c" * 40 in tables and "    63  " not in tables
        # and the summary above it counts that table (1 entry, 75 bytes), not the
        # one before the block
        assert "→ client's header blocks (the server's decoder table): 1 entries, 75/100 " \
            "bytes, 4 inserted, 3 evicted" in tables
        # The good block before it is shown as ever.
        assert "x-a: " + "a" * 40 in detail.hpack(s, rows[1], events[rows[1]]).plain
    finally:
        capture.close()
