"""The detail tabs' text view: long lines wrap to the view's width (a finding's
message stays readable to its end), and wrap again when the view is resized;
a view without ``wrap`` (the hex dump) scrolls sideways instead."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from ui.widgets.textview import TextView

LONG = "hpack-error: " + " ".join(f"word{i}" for i in range(40)) + " (at byte 135)"


class _Views(App[None]):
    CSS = "TextView { width: 40; height: 10; }"

    def compose(self) -> ComposeResult:
        yield TextView(id="wrapped", wrap=True)
        yield TextView(id="hex")


def test_long_lines_wrap_to_the_width_and_again_on_resize() -> None:
    async def run() -> None:
        app = _Views()
        async with app.run_test(size=(80, 24)) as pilot:
            wrapped = app.query_one("#wrapped", TextView)
            hexv = app.query_one("#hex", TextView)
            wrapped.update(f"short line\n{LONG}")
            hexv.update(f"short line\n{LONG}")
            await pilot.pause()
            lines = [t.plain for t in wrapped._lines]
            assert lines[0] == "short line" and len(lines) > 3
            assert all(len(ln) <= 40 for ln in lines)
            assert " ".join(ln.strip() for ln in lines[1:]) == LONG  # nothing lost
            assert wrapped.virtual_size.height == len(lines)
            assert len(hexv._lines) == 2 and hexv.virtual_size.width == len(LONG)
            wrapped.styles.width = 60
            await pilot.pause()
            wider = [t.plain for t in wrapped._lines]
            assert len(wider) < len(lines) and max(map(len, wider)) > 40
    asyncio.run(run())
