"""The stream view's search (/, n, N) and its keys that jump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from tests.unit.ui.conftest import drive
from ui.app import H2ScopeApp
from ui.screens.stream import StreamScreen


async def _open(app: H2ScopeApp, pilot: Any, stream: int) -> StreamScreen:
    t = app.session.table
    app._select_row(next(r for r in range(len(t)) if t.stream[r] == stream))
    await pilot.press("s")
    await pilot.pause()
    assert isinstance(app.screen, StreamScreen)
    return app.screen


def _note(screen: StreamScreen) -> str:
    return str(screen.query_one("#stream-note", Static).content)


def test_slash_searches_the_stream_view_and_n_goes_from_match_to_match(
        capture_path: Path) -> None:
    """'/' in the stream view did nothing there: the filter bar behind it (a
    priority key) was where a search went, and the keys typed after it with it."""
    seen: dict[str, Any] = {}

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = await _open(app, pilot, 5)  # /big.bin: a long body
        await pilot.press("slash")
        await pilot.pause()
        box = screen.query_one("#stream-search", Input)
        seen["focused"] = app.focused is box and not box.has_class("hidden")
        await pilot.press(*"CDEF", "enter")  # (any case)
        await pilot.pause()
        seen["filter"] = app.main.query_one("#filter", Input).value
        seen["first"] = _note(screen)
        body = screen.query_one("#stream-body", Static).content
        seen["marked"] = [body.plain[s.start:s.end] for s in body.spans  # type: ignore[union-attr]
                          if "reverse" in str(s.style)][:2]
        view = screen.query_one("#stream-view", VerticalScroll)
        tops = [view.scroll_y]
        for _ in range(20):  # (16 characters apart: several matches a line)
            await pilot.press("n")
            await pilot.pause()
            tops.append(view.scroll_y)
        seen["tops"] = tops
        seen["third"] = _note(screen)
        await pilot.press("N")
        await pilot.pause()
        seen["back"] = _note(screen)
        await pilot.press("slash", *"no such text", "enter")
        await pilot.pause()
        seen["none"] = _note(screen)
        await pilot.press("escape")
        await pilot.pause()
        seen["closed"] = not isinstance(app.screen, StreamScreen)

    # (each press draws the long body again, its marks moved: about a second on a
    # loaded 2-core machine, so this scenario gets more than the usual minute)
    drive(capture_path, scenario, timeout=180)
    assert seen["focused"] and seen["filter"] == ""
    assert seen["first"].startswith("match 1 of ") and "for 'CDEF'" in seen["first"]
    assert seen["marked"] == ["cdef", "cdef"]
    tops = seen["tops"]
    assert tops == sorted(tops) and tops[-1] > tops[0], tops  # (down the body)
    assert seen["third"].startswith("match 21 of ") and seen["back"].startswith("match 20 of ")
    assert seen["none"] == "no match for 'no such text' in the stream's text"
    assert seen["closed"]


def test_n_without_a_search_says_how_to_search(capture_path: Path) -> None:
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = await _open(app, pilot, 1)
        await pilot.press("n")
        await pilot.pause()
        seen.append(_note(screen))

    drive(capture_path, scenario)
    assert seen[0].startswith("press / to search the stream's text")


def test_page_and_end_keys_jump_at_once_in_the_stream_view(capture_path: Path) -> None:
    """PgDn, PgUp, Home and End animated for about 0.7 s (a test run animates
    nothing, so what is checked is that no scroll asks for an animation)."""
    seen: list[tuple[float, float]] = []
    animated: list[object] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = await _open(app, pilot, 5)
        view = screen.query_one("#stream-view", VerticalScroll)
        scroll_to = view.scroll_to

        def spy(*args: Any, **kwargs: Any) -> Any:
            animated.append(kwargs.get("animate", True))
            return scroll_to(*args, **kwargs)

        view.scroll_to = spy  # type: ignore[method-assign]
        page = view.scrollable_content_region.height
        for key, target in (("pagedown", page), ("pagedown", 2 * page),
                            ("pageup", page), ("end", view.max_scroll_y), ("home", 0)):
            await pilot.press(key)
            await pilot.pause()
            seen.append((view.scroll_y, target))

    drive(capture_path, scenario, size=(100, 30))
    for y, target in seen:
        assert y == target, seen
    assert animated and not any(animated), animated


def test_a_refusal_goes_once_the_stream_view_opens(capture_path: Path) -> None:
    """'select a frame of a stream (not stream 0) first' stayed in the status bar
    after the stream view had then been opened."""
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        t = app.session.table
        app._select_row(next(r for r in range(len(t)) if t.stream[r] == 0))
        await pilot.press("s")
        await pilot.pause()
        seen.append(app.message)
        await _open(app, pilot, 1)
        await pilot.press("q")
        await pilot.pause()
        seen.append(app.message)

    drive(capture_path, scenario)
    assert seen == ["select a frame of a stream (not stream 0) first", ""]


def test_the_save_box_says_what_it_saves_and_the_result_where(
        capture_path: Path, tmp_path: Path, monkeypatch: Any) -> None:
    """The b prompt had no label (a file name, pre-filled, and nothing saying what
    Enter would do), and the result named the file as typed, relative."""
    from tests.unit.ui.conftest import screen_text

    monkeypatch.chdir(tmp_path)
    seen: list[str] = []

    async def scenario(app: H2ScopeApp, pilot: Any) -> None:
        screen = await _open(app, pilot, 1)
        await pilot.press("slash", *"users", "enter")  # (its "match 1 of …" then goes)
        await pilot.pause()
        await pilot.press("b")
        await pilot.pause()
        seen.append(screen_text(app))
        seen.append(_note(screen))
        screen.query_one("#save-path", Input).value = "users.json.gz"
        await pilot.press("enter")
        await pilot.pause()
        seen.append(_note(screen))

    drive(capture_path, scenario)
    assert "save the response body to: (Enter saves, Esc cancels)" in seen[0]
    assert seen[1] == ""
    saved = tmp_path / "users.json.gz"
    assert seen[2] == (f"saved {saved.stat().st_size:,} bytes (as received: still "
                       f"gzip-encoded) to {saved}")


def test_the_line_index_finds_each_offsets_wrapped_line() -> None:
    """The line of a match was found by splitting and wrapping the whole body from
    its start for each match: a one-character search near the end of a 3 MB hex dump
    froze the UI for minutes. The index gives the same lines, by bisection."""
    import random

    from rich.console import Console
    from rich.text import Text

    from ui.screens.stream import LineIndex

    rng = random.Random(5)
    # (no spaces: a long line folds at the width, no blank is dropped where it breaks)
    lines = ["".join(rng.choice("abcd") for _ in range(rng.choice((0, 5, 30, 95, 200))))
             for _ in range(300)]
    text = Text("\n".join(lines))
    console = Console(width=200)
    for width in (40, 80):
        index = LineIndex(text, width, console)
        y = 0
        offset = 0
        for line in lines:  # (what the body shows: each line wrapped at the width)
            pieces = Text(line).wrap(console, width) if len(line) > width else [Text(line)]
            for piece in pieces:
                if piece.plain:
                    assert index.line_of(offset) == y, (width, offset)
                offset += len(piece.plain)
                y += 1
            offset += 1  # (the newline)


def test_a_match_after_a_dotted_capital_i_is_marked_where_it_is() -> None:
    """Matches were found in a lowercased copy, where 'İ' is two characters: each one
    before a match moved its mark a character to the right."""
    from ui.screens.stream import find_matches

    text = "İ" * 10 + ' "NEEDLE" and needle'
    starts = find_matches(text, "needle")
    assert [text[i:i + 6] for i in starts] == ["NEEDLE", "needle"]
    assert find_matches("aaaa", "aa") == [0, 2] and find_matches("x", "") == []
