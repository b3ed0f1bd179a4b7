"""The RFC 7540 §5.3 dependency tree in the state view's Priority tab."""

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
    text = priority_text(conn).plain
    tree_part = text[text.index("0 (root)"):].splitlines()
    assert tree_part == [
        "0 (root)",
        "  ├─ stream 3 weight 201",
        "  │  ├─ stream 7 weight 16",
        "  │  │  └─ stream 11 weight 8",
        "  │  └─ stream 9 weight 32",
        "  └─ stream 5 weight 101",
    ]


def test_a_tree_too_large_to_draw_says_how_many_streams_it_left_out() -> None:
    conn = ConnInfo(conn_id=1)
    for sid in range(1, 1203, 2):
        conn.priority.set(sid, 0, 16, False)
    text = priority_text(conn).plain
    assert text.count("─ stream ") == 500
    assert "… 101 more streams not shown" in text
