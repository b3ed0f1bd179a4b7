"""The state view's Priority tree and HPACK table chart, as text."""

from __future__ import annotations

from ui.model.connections import ConnInfo
from ui.screens.state import priority_text


def test_the_tree_draws_siblings_and_depth_as_a_tree() -> None:
    conn = ConnInfo(conn_id=1)
    tree = conn.priority
    tree.set(3, 0, 201, False)
    tree.set(5, 0, 101, False)
    tree.set(7, 3, 16, False)
    tree.set(9, 3, 32, False)
    tree.set(11, 7, 8, False)
    from ui.model.connections import StreamInfo

    for sid in (7, 9, 11):  # (requests; 3 and 5 are PRIORITY-only placeholders)
        conn.streams[sid] = StreamInfo(conn_id=1, stream_id=sid, request_headers=(
            (":method", "GET"), (":path", f"/{sid}")), response_headers=((":status", "200"),))
    text = priority_text(conn).plain
    tree_part = text[text.index("0 (root)"):].splitlines()
    placeholder = "  (no request: a placeholder, PRIORITY frames only)"
    assert tree_part == [
        "0 (root)",
        "  ├─ stream 3 weight 201" + placeholder,
        "  │  ├─ stream 7 weight 16  GET /7 → 200",
        "  │  │  └─ stream 11 weight 8  GET /11 → 200",
        "  │  └─ stream 9 weight 32  GET /9 → 200",
        "  └─ stream 5 weight 101" + placeholder,
    ]
    # Firefox's placeholders carry no request: no line in the RFC 9218 list either.
    conn.streams[7].urgency = 1
    listed = priority_text(conn).plain
    assert "stream     7  u=1" in listed and "stream     3  u=" not in listed


def test_a_tree_too_large_to_draw_says_how_many_streams_it_left_out() -> None:
    conn = ConnInfo(conn_id=1)
    for sid in range(1, 1203, 2):
        conn.priority.set(sid, 0, 16, False)
    text = priority_text(conn).plain
    assert text.count("─ stream ") == 500
    assert "… 101 more streams not shown" in text


def test_the_hpack_table_chart_keeps_its_scale_when_the_maximum_is_lowered() -> None:
    """A table filled to 3,770 of 4,096 bytes, then lowered to 0 and 256 by the
    peer's SETTINGS: scaled to the last maximum (256), every earlier block drew at
    full height, 625 B like 3,770 B."""
    from array import array

    from ui.model.connections import HpackTable
    from ui.screens.state import _table_chart, max_history

    tbl = HpackTable()
    tbl.sizes = array("I", [625, 1250, 1875, 2500, 3140, 3770, 0, 36])
    tbl.maxes = array("I", [4096] * 6 + [0, 256])
    lines, changed = _table_chart(tbl, 40)
    assert changed == 2
    bars, marks = lines[:4], lines[4]
    assert bars[0].endswith("  4,096") and bars[3].endswith("  0")  # the largest maximum
    assert [row[0] for row in bars[:3]] == [" ", " ", " "]  # 625 B: low
    assert bars[0][5] != " "  # 3,770 B: near the top
    assert marks.rstrip() == "      ↑↑"
    assert max_history(tbl.maxes) == "4,096 → 0 → 256"
    assert max_history(array("I", range(1, 20))) == "4,096 → 1 → 2 → 3 → 4 → … → 19"


def test_the_hpack_tab_shows_the_table_as_a_selected_header_block_left_it(
        session: object) -> None:
    """Selecting an earlier HEADERS frame showed only the table at the end: the
    entries the next blocks index (deeper than a dissector shows) were not there."""
    from proxy.observe.hpack_annotated import AnnotatedDecoder
    from ui.model.session import Session
    from ui.screens.state import hpack_text

    assert isinstance(session, Session)
    conn = session.conns[1]
    client = conn.hpack[0]
    assert len(client.block_rows) >= 3
    first = client.block_rows[0]
    text = hpack_text(conn, session.block_bytes, {}, 100, row=first).plain
    head = f"→ client's table as the selected frame left it (after 1 of {len(client.block_rows)}"
    assert head in text
    # ... with what decoding that one block gives, by index.
    expected = AnnotatedDecoder().decode(session.block_bytes(first))  # type: ignore[arg-type]
    section = text[text.index(head):text.index("→ client's header blocks")]
    assert f": {expected.table_entries} entries, {expected.table_size}/" in section
    assert section.count("\n  ") - 1 == expected.table_entries  # (+ the note line)
    # A frame that is no header block, or the last block: the end table only.
    for row in (first + 1, client.block_rows[-1]):
        if row not in client.block_rows[:-1]:
            assert "as the selected frame left it" not in \
                hpack_text(conn, session.block_bytes, {}, 100, row=row).plain.split("←")[0]


def test_streams_silent_on_priority_are_listed_at_the_default_beside_those_that_signal(
        ) -> None:
    """Chrome sends no priority header for an async script: by RFC 9218 §4 that is
    u=3, not incremental — a priority, listed as one (the list left such streams out,
    as if the client had said nothing). A connection where nothing signalled lists
    none."""
    from ui.model.connections import StreamInfo

    conn = ConnInfo(conn_id=1)
    conn.streams[1] = StreamInfo(conn_id=1, stream_id=1, urgency=0, incremental=False)
    conn.streams[3] = StreamInfo(conn_id=1, stream_id=3, request_headers=((":method", "GET"),))
    lines = priority_text(conn).plain.splitlines()
    assert lines[1].startswith("  stream     1  u=0 i=0")
    assert lines[2].startswith("  stream     3  u=3 i=0") and \
        lines[2].endswith("(default: no priority signal)")
    quiet = ConnInfo(conn_id=1)
    quiet.streams[3] = StreamInfo(conn_id=1, stream_id=3)
    assert "(no priority header or PRIORITY_UPDATE frame seen)" in priority_text(quiet).plain
    assert "stream     3" not in priority_text(quiet).plain


def test_hpack_table_entries_show_a_long_value_whole() -> None:
    """Chromium's 151-character user-agent read '…HeadlessChrome/156.0.0.0 Safa
    (151 B)': values were cut at 100 characters with no mark."""
    from rich.text import Text

    from ui.screens.state import ENTRY_CHARS, _entries

    ua = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "HeadlessChrome/156.0.0.0 Safari/537.36")
    huge = "x" * (ENTRY_CHARS + 1234)
    out = Text()
    _entries(out, [("user-agent", ua), ("cookie", huge)])
    lines = out.plain.splitlines()
    assert lines[0] == f"    62  user-agent: {ua}  ({len(ua) + 10 + 32} B)"
    assert lines[1].startswith("    63  cookie: " + "x" * ENTRY_CHARS + "… (1,234 more characters)")
