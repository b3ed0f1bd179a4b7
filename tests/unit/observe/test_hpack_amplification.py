"""An HPACK "bomb": one large dynamic table entry referenced by thousands of
one-byte indexed fields (RFC 7541 §7.3). The observer decodes it all and says so;
what the text log and JSON show of it is bounded."""

from __future__ import annotations

import struct

from proxy.observe.describe import SHOWN_LIST_SIZE, block_lines
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from proxy.observe.jsonview import block_dict
from proxy.textlog import event_lines
from tests.unit.observe.conftest import Conversation

C2S = Direction.C2S


def _literal(data: bytes) -> bytes:
    assert len(data) < 127 or len(data) < 127 + 128 * 128
    if len(data) < 127:
        return bytes([len(data)]) + data
    rest = len(data) - 127
    return bytes([127, (rest & 127) | 128, rest >> 7]) + data


def _bomb(refs: int) -> bytes:
    block = bytes.fromhex("828684") + b"\x41" + _literal(b"localhost")
    block += b"\x40" + _literal(b"x") + _literal(b"A" * 4000)  # dynamic index 62
    block += b"\xbe" * refs  # "x: AAAA…" again and again
    return struct.pack(">I", len(block))[1:] + bytes([1, 0x5]) + struct.pack(">I", 1) + block


def test_an_amplified_header_list_is_decoded_whole_flagged_and_shown_bounded() -> None:
    conv = Conversation()
    conv.send(C2S, conv.f.settings())
    events = conv.send(C2S, _bomb(3000))
    (ev,) = [e for e in events if isinstance(e, FrameObserved)]
    block = ev.block
    assert block is not None and len(block.headers) == 3000 + 5  # decoded whole
    assert block.decoded_size > 12_000_000
    (finding,) = [f for f in ev.findings if f.code == "header-list-amplified"]
    assert finding.rfc == "RFC 7541 §7.3, RFC 9113 §10.5.1"
    assert f"a header block of {block.wire_length:,} bytes decodes to " \
        f"{block.decoded_size:,} bytes" in finding.message
    # The text log: the field repeated 3,001 times in a row, once with its count.
    lines = event_lines(1, ev, 0.0)
    text = "\n".join(lines)
    assert len(text) < 8192
    assert [ln.strip()[-18:] for ln in lines if ln.strip().startswith("x: AAAA")] == [
        "A  ×3,001 in a row"]
    assert "more fields" not in text
    # The annotated list and JSON: the first 256 KiB of fields, then what was left out.
    shown = sum(1 for ln in block_lines(block) if ln.strip().startswith("x: AAAA"))
    assert 0 < shown < 70
    for annotate in (False, True):
        out = block_lines(block, annotate=annotate)
        assert sum(len(x) for x in out) < SHOWN_LIST_SIZE + 8192
        assert "more fields" in "".join(out)
    assert block_lines(block, annotate=True)[-1].lstrip().startswith("; block ")
    d = block_dict(block)
    assert d["omitted"] == {"fields": 3001 - shown, "size": block.decoded_size - sum(
        len(n) + len(v) + 32 for n, v in block.headers[:len(d["headers"])])}
    assert len(d["headers"]) == len(block.headers) - 3001 + shown
    assert len([f for f in d["fields"] if f["representation"] != "size_update"]) == \
        len(d["headers"])


def test_a_large_list_that_is_not_amplified_is_not_flagged() -> None:
    conv = Conversation()
    conv.send(C2S, conv.f.settings())
    events = conv.send(C2S, _bomb(40))  # 160 KB of fields: below the bound
    (ev,) = [e for e in events if isinstance(e, FrameObserved)]
    assert "header-list-amplified" not in [f.code for f in ev.findings]
    assert "omitted" not in block_dict(ev.block)  # type: ignore[arg-type]
    assert "more fields" not in "\n".join(event_lines(1, ev, 0.0))


def test_the_uis_frame_detail_and_stream_view_show_such_a_list_bounded() -> None:
    from rich.text import Text

    from ui.screens.stream import _headers

    conv = Conversation()
    conv.send(C2S, conv.f.settings())
    (ev,) = [e for e in conv.send(C2S, _bomb(3000)) if isinstance(e, FrameObserved)]
    assert ev.block is not None
    out = Text()
    _headers(out, "request headers", ev.block.headers)
    assert len(out.plain) < SHOWN_LIST_SIZE + 4096
    assert "more fields (about " in out.plain and "header-list-amplified" in out.plain


def test_the_frame_detail_draws_an_amplified_list_in_a_bounded_size(tmp_path: object) -> None:
    """The timeline's blocks carry no sizes, so the detail drew all 3,000 fields of
    4 KB (seconds a selection, hundreds of MB): it draws a bounded part."""
    from pathlib import Path

    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import CONNECTION_PREFACE
    from ui.model import detail
    from ui.model.capture import CaptureFile, load
    from ui.model.session import Session

    assert isinstance(tmp_path, Path)
    path = tmp_path / "bomb.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0)
        writer.raw(1, C2S, CONNECTION_PREFACE, t=0.0)
        writer.frame(1, C2S, bytes.fromhex("000000040000000000"), t=0.0)
        writer.frame(1, C2S, _bomb(3000), t=0.001)
    capture = CaptureFile(path)
    try:
        session = Session(capture)
        load(session, capture)
        row = next(r for r in range(len(session.table)) if session.table.type[r] == 1)
        for view in (detail.decoded, detail.hpack):
            text = view(session, row, session.table.event(row)).plain
            assert len(text) < 150_000, (view.__name__, len(text))
            assert "more fields" in text
    finally:
        capture.close()
