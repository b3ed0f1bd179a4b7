"""Small modal prompts: go to, search, export, record file."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select

from ui.model.export import FORMATS


class Prompt(ModalScreen[str | None]):
    """One line of input; dismisses with the text (None on Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "",
                 hint: str = "Enter confirms · Esc cancels") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt"):
            yield Label(self.title_text)
            yield Label(self.hint, classes="hint")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportPrompt(ModalScreen[tuple[str, str] | None]):
    """Format and output file; dismisses with (format, path)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#export-path"
    """The file name has the focus from the first key on (x, then Enter exports),
    not the format list above it."""

    def __init__(self, scope: str, default_path: str, fmt: str = "har") -> None:
        super().__init__()
        self.scope = scope
        self.default_path = default_path
        self.fmt = fmt
        """The format first selected: the last one used (x, Enter does it again)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt"):
            yield Label(f"Export {self.scope}")
            yield Label("format: shift+Tab, ↑/↓ · file name: Enter writes it · Esc cancels",
                        classes="hint")
            yield Select([(f, f) for f in FORMATS], value=self.fmt, allow_blank=False,
                         id="export-format")
            yield Input(value=self.default_path, id="export-path")

    def on_select_changed(self, event: Select.Changed) -> None:
        box = self.query_one("#export-path", Input)
        stem = box.value.rsplit(".", 1)[0]
        from ui.model.export import EXTENSIONS

        box.value = f"{stem}.{EXTENSIONS.get(str(event.value), str(event.value))}"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        fmt = self.query_one("#export-format", Select).value
        self.dismiss((str(fmt), event.value))

    def action_cancel(self) -> None:
        self.dismiss(None)
