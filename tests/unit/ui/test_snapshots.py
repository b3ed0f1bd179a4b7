"""Snapshot tests (pytest-textual-snapshot) of the main screens on a fixed capture.

The capture is generated deterministically (fixed clock, fixed wall times) and
the theme is fixed, so the same pixels come out everywhere; the SVGs under
``__snapshots__/`` were checked by eye. After an intended change of the UI:
``pytest tests/unit/ui/test_snapshots.py --snapshot-update`` and look at them.
The Textual version is pinned in the test extra, since its rendering changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ui.app import H2ScopeApp
from ui.launch import view_app
from ui.widgets.panes import ConnectionsPane

SIZE = (150, 44)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Wall-clock times (the frame detail's) in UTC, whatever the machine's zone."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def app(capture_path: Path) -> Any:
    made: list[H2ScopeApp] = []

    def make() -> H2ScopeApp:
        a = view_app(capture_path, theme_name="dark")
        made.append(a)
        return a
    try:
        yield make
    finally:
        for a in made:
            if a.capture is not None:
                a.capture.close()


def _loaded_then(*keys: str, row: Callable[[H2ScopeApp], int] | None = None) -> Any:
    async def run_before(pilot: Any) -> None:
        app: H2ScopeApp = pilot.app
        for _ in range(1000):
            if app.session.loaded:
                break
            await pilot.pause(0.01)
        app.tick()
        await pilot.pause()
        await _tables_measured(app, pilot)  # before a view goes on top of the table
        if row is not None:
            app._select_row(row(app))
            await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.1)
        app.tick()
        await pilot.pause()
        await _tables_measured(app, pilot)
    return run_before


async def _tables_measured(app: H2ScopeApp, pilot: Any) -> None:
    """Wait until the connections table has measured its new rows and cells.

    A DataTable sizes its columns to new content when its message queue runs
    empty (its Idle handler); on a loaded machine that can come after the
    screenshot, which then shows the columns at their headers' widths."""
    pane = app.main.query_one(ConnectionsPane)

    def measured() -> bool:  # every column at least as wide as its widest cell
        return all(column.content_width >= max(
            (len(str(cell)) for cell in pane.get_column(key)), default=0)
            for key, column in pane.columns.items())

    for _ in range(1000):
        # (and laid out at the height it sized itself to, ConnectionsPane.fit_height,
        # which lays the table out again)
        height = pane.styles.height
        if not pane._require_update_dimensions and not pane._updated_cells and (
                height is None or pane.outer_size.height == height.value) and measured():
            break
        await pilot.pause(0.01)
    await pilot.pause()


def _headers_row(app: H2ScopeApp) -> int:
    t = app.session.table
    return next(r for r in range(len(t)) if t.type[r] == 1 and t.stream[r] == 3)


def test_main_screen(snap_compare: Any, app: Callable[[], H2ScopeApp]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=_loaded_then("home"))


def test_frame_detail_hpack_tab(snap_compare: Any, app: Callable[[], H2ScopeApp]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=_loaded_then("2", row=_headers_row))


def test_stream_view(snap_compare: Any, app: Callable[[], H2ScopeApp]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=_loaded_then("s", row=_headers_row))


def test_flow_control_view(snap_compare: Any, app: Callable[[], H2ScopeApp]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=_loaded_then("w"))


def test_help_screen(snap_compare: Any, app: Callable[[], H2ScopeApp]) -> None:
    assert snap_compare(app(), terminal_size=SIZE, run_before=_loaded_then("question_mark"))
