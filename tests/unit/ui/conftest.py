"""Fixtures for the UI tests: a recorded capture and a way to drive the app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.ui.traffic import record
from ui.app import H2ScopeApp
from ui.launch import view_app
from ui.model.capture import CaptureFile, load
from ui.model.session import Session


@pytest.fixture(scope="session")
def capture_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("ui") / "traffic.h2c")


@pytest.fixture
def session(capture_path: Path) -> Iterator[Session]:
    """The capture read into a Session (no screen)."""
    capture = CaptureFile(capture_path)
    s = Session(capture)
    load(s, capture)
    try:
        yield s
    finally:
        capture.close()


def screen_text(app: H2ScopeApp) -> str:
    """The terminal's content as plain text, the way export_screenshot renders it."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system=None, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text()


async def loaded(app: H2ScopeApp, pilot: Any, timeout: float = 20.0) -> None:
    """Wait (bounded) until the capture is read and the first tick showed it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not app.session.loaded:
        if loop.time() > deadline:
            raise AssertionError("the capture did not finish loading")
        await pilot.pause(0.02)
    app.tick()
    await pilot.pause()


def drive(path: Path, scenario: Callable[[H2ScopeApp, Any], Awaitable[None]],
          size: tuple[int, int] = (160, 48), timeout: float = 60, **kwargs: Any
          ) -> H2ScopeApp:
    """Run ``scenario(app, pilot)`` against ``h2scope view path`` in a headless terminal
    (at most ``timeout`` seconds)."""
    app = view_app(path, **kwargs)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await loaded(app, pilot)
            await scenario(app, pilot)

    try:
        asyncio.run(asyncio.wait_for(main(), timeout))
    finally:
        if app.capture is not None:
            app.capture.close()
    return app
