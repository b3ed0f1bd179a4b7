"""The detail tabs' text view: long lines wrap to the view's width (a finding's
message stays readable to its end), and wrap again when the view is resized;
a view without ``wrap`` (the hex dump) scrolls sideways instead."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult

from ui.widgets.rowlist import RowList
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


def test_the_empty_live_timeline_says_how_to_send_traffic(tmp_path: Path) -> None:
    """Headless prints a curl line to try the proxy; the UI covers the terminal, so
    its empty timeline says the same (until a frame arrives)."""
    from proxy.cli import build_parser
    from proxy.commands.run import build_config
    from ui.launch import _empty_hint

    args = build_parser().parse_args(["--confdir", str(tmp_path), "run", "-p", "0"])
    config = build_config(args)
    ca = tmp_path / "ca.pem"
    hint = _empty_hint(config, [("regular", "127.0.0.1:8080")], ca)
    assert hint[0] == "No frames yet. Send traffic through the proxy, for example:"
    assert hint[1] == f"  curl --cacert {ca} -x http://127.0.0.1:8080 https://example.com/"
    assert _empty_hint(config, [("regular", "127.0.0.1:8080")], None) == []

    class Rows(RowList):
        n = 0

        def row_count(self) -> int:
            return self.n

        def render_row(self, index: int) -> Text:
            return Text(f"row {index}")

    class _App(App[None]):
        def compose(self) -> ComposeResult:
            yield Rows(id="rows")

    async def run() -> None:
        app = _App()
        async with app.run_test(size=(120, 10)) as pilot:
            rows = app.query_one(Rows)
            rows.empty_lines = hint
            rows.refresh()
            await pilot.pause()
            assert rows.render_line(0).text.startswith("No frames yet.")
            assert rows.render_line(1).text.strip().startswith("curl --cacert")
    asyncio.run(run())


def test_a_peers_control_characters_never_reach_the_terminal() -> None:
    """A header value with an escape sequence (a window title, a screen clear), a C1
    control and bytes that are not UTF-8: each is drawn as a symbol, one for one, so
    the styles around it stay in place."""
    from ui.widgets.style import safe, safe_str

    hostile = "x-a: \x1b]0;title\x07\x1b[2J\x9b31m\udcff ok"
    text = Text("name ", "bold") + Text(hostile, "red")
    shown = safe(text)
    # (rich itself drops a few controls — BEL, BS, CR —, not ESC nor C1)
    assert shown.plain == "name x-a: ␛]0;title␛[2J�31m� ok"
    assert len(shown.plain) == len(text.plain) and shown.spans == text.spans
    assert safe_str("tab\tand\nnewline") == "tab\tand\nnewline"

    async def run() -> None:
        app = _Views()
        async with app.run_test(size=(80, 24)) as pilot:
            view = app.query_one("#wrapped", TextView)
            view.update(text)
            await pilot.pause()
            drawn = "".join(seg.text for seg in view.render_line(0))
            assert "\x1b" not in drawn and "\x9b" not in drawn and "␛]0;title" in drawn
    asyncio.run(run())


def test_continuation_lines_hang_under_the_value_they_continue() -> None:
    """A long ``summary`` or header value went on at the left edge, among the
    field names; now under its own first character (styles kept, nothing lost)."""
    from rich.console import Console

    from ui.widgets.textview import hang, wrap_hanging

    console = Console(width=200)
    path = "/static/" + "/".join(f"part{i}" for i in range(12)) + "?v=1"
    summary = Text(f"summary     GET {path}")
    summary.stylize("bold", 0, 7)
    header = Text("  user-agent: " + " ".join(f"token{i}/1.0" for i in range(10)))
    finding = Text("warning " + " ".join(f"word{i}" for i in range(12)))
    assert (hang(summary.plain), hang(header.plain), hang(finding.plain)) == (12, 4, 2)
    for line, indent in ((summary, 12), (header, 4), (finding, 2)):
        pieces = wrap_hanging(line, 40, console)
        assert len(pieces) > 2 and all(p.cell_len <= 40 for p in pieces)
        assert all(p.plain.startswith(" " * indent) and p.plain[indent] != " "
                   for p in pieces[1:])
        assert "".join(p.plain for p in pieces).replace(" ", "") == line.plain.replace(" ", "")
    assert wrap_hanging(summary, 40, console)[0].spans[0].style == "bold"
    # No room for the hang: wrapped at the left edge as before.
    assert all(not p.plain.startswith(" ") for p in wrap_hanging(summary, 20, console)[1:])
