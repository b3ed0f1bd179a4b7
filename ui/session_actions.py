"""The app's actions on files: save the session, record, export.

A live session is always backed by a capture (:class:`ui.model.backing.SessionCapture`:
the ``--record`` file or a private temporary one), so

* **save** (``ctrl+s``) copies the whole session so far to a file the user
  names — after the fact, nothing has to be started beforehand;
* **export** (``x``) converts the session's capture (live) or the capture
  being viewed, scoped to the selected connection/stream;
* **record** (``r``) starts/stops a *separate* recording of the connections
  opened from then on (with ``--record FILE`` the session already records
  everything there: ``r`` says so).

:class:`SessionActions` is a base class of :class:`ui.app.H2ScopeApp`; the
file work runs in thread workers, and the outcome is the status bar message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.worker import get_current_worker

from ui.model.export import (
    EXTENSIONS,
    FILTERED_FORMATS,
    ExportCancelled,
    export,
    replaced_note,
)
from ui.screens.prompt import ExportPrompt, Prompt

if TYPE_CHECKING:
    from proxy.filter import Filter
    from ui.model.capture import CaptureFile
    from ui.model.follow import ChildProxy, FileFollow
    from ui.model.session import Session

SAVE_NAME = "h2scope-%Y%m%d-%H%M%S.h2scope"
"""The default file name of a saved session (``time.strftime``), in the current directory."""


class SessionActions(App[int]):
    """Save, record and export; the app provides the attributes below."""

    live: ChildProxy | FileFollow | None
    capture: CaptureFile | None
    message: str
    scope_conn: int | None
    scope_stream: int | None
    filter: Filter
    session: Session
    frames_saved: int
    recorded_conns: list[tuple[int, int | None]]
    exporting: str | None = None
    """The export running, said as "har to FILE" (one at a time; quitting abandons it)."""
    last_export_format: str = "har"

    # ----------------------------------------------------------------- save

    def _named(self, text: str | None, nothing: str, action: str, key: str) -> bool:
        """Whether a file-name prompt was answered with a name; if not, the status line
        says nothing happened (an empty Enter closed the prompt without a word)."""
        if text is None:
            self.message = f"{nothing}: cancelled"
            return False
        if not text.strip():
            again = getattr(self, "keys", {}).get(action, key)
            self.message = f"{nothing}: the file name was empty ({again} and type one)"
            return False
        return True

    def action_save_session(self) -> None:
        live = self.live
        if live is None or live.backing is None:
            self.message = ("save applies to a live session (this capture is a file "
                            "already: x exports it)")
            return

        def done(text: str | None) -> None:
            if self._named(text, "nothing saved", "save_session", "ctrl+s"):
                assert text is not None
                self.message = "saving the session…"
                self._save(Path(text.strip()).expanduser())
        self.push_screen(Prompt("Save the whole session so far to file",
                                time.strftime(SAVE_NAME),
                                hint=f"Enter saves · Esc cancels · mode 0600 · a relative "
                                     f"name goes in {Path.cwd()}"), done)

    @work(thread=True, group="save")
    def _save(self, dest: Path) -> None:
        live = self.live
        if live is None or live.backing is None:
            return
        replaced = replaced_note(dest)
        frames = len(self.session.table)  # (the save copies at least these)
        try:
            records = live.backing.save(dest)
        except (OSError, ValueError) as exc:
            msg = f"cannot save: {getattr(exc, 'strerror', None) or exc}"
        else:
            msg = f"saved the session ({records:,} records) to {dest.resolve()}{replaced}"
            self.frames_saved = frames
        self.call_from_thread(setattr, self, "message", msg)

    # --------------------------------------------------------------- record

    def action_toggle_record(self) -> None:
        from ui.model.follow import FileFollow

        live = self.live
        if live is None:
            self.message = "recording applies to live capture (this is a capture already)"
            return
        if isinstance(live, FileFollow):
            self.message = (f"{live.path} is recorded by the program writing it; ctrl+s "
                            "saves a copy of what it holds so far")
            return
        if live.record_file is not None and (live.tap is None or not live.tap.active):
            self.message = (f"recording every connection to {live.record_file} (--record); "
                            f"ctrl+s saves a copy of the session so far")
            return
        if live.tap is not None and live.tap.active:
            path = live.stop_recording()
            self.message = f"recording stopped: {path}"
            if self.recorded_conns and self.recorded_conns[-1][1] is None:
                if live.recorded_ids:  # (the proxy said which: exact, even when behind)
                    self.recorded_conns.pop()
                else:
                    self.recorded_conns[-1] = (self.recorded_conns[-1][0],
                                               max(self.session.conns, default=0) + 1)
            return

        def done(text: str | None) -> None:
            if self._named(text, "not recording", "record", "r") and self.live is not None:
                assert text is not None
                text = text.strip()
                try:
                    self.live.start_recording(Path(text).expanduser())
                except OSError as exc:
                    self.message = f"cannot record: {exc.strerror or exc}"
                else:
                    self.message = f"recording new connections to {text}"
                    self.recorded_conns.append((max(self.session.conns, default=0) + 1, None))
        default = time.strftime("h2scope-%Y%m%d-%H%M%S.h2scope")
        self.push_screen(Prompt("Record new connections to file (ctrl+s saves the session "
                                "so far instead)", default), done)

    # --------------------------------------------------------------- export

    def action_export(self) -> None:
        source: Path | None = None
        if self.capture is not None:
            source = self.capture.path
        elif self.live is not None and self.live.backing is not None:
            source = self.live.backing.path
        if source is None:
            self.message = "nothing to export"
            return
        scope = "everything" if self.scope_conn is None else f"connection #{self.scope_conn}"
        if self.scope_stream is not None:
            scope += f" stream {self.scope_stream}"
        keep = None if self.filter.matches_everything else self.filter
        if keep is not None:
            scope += f" (text and jsonl: the frames of filter {keep.text.strip()!r})"
        stem = source.stem if self.capture is not None or self.live is None or \
            self.live.record_file is not None else time.strftime("h2scope-%Y%m%d-%H%M%S")

        if self.exporting is not None:
            self.message = f"an export is running ({self.exporting}): one at a time"
            return

        def done(answer: tuple[str, str] | None) -> None:
            if self._named(None if answer is None else answer[1], "nothing exported",
                           "export", "x"):
                assert answer is not None
                fmt, out = answer[0], Path(answer[1].strip()).expanduser()
                self.last_export_format = fmt
                self.exporting = f"{fmt} to {out}"
                self.message = f"exporting {fmt} to {out}…"
                self._export(source, fmt, out, keep)
        fmt = self.last_export_format
        self.push_screen(ExportPrompt(scope, f"{stem}.{EXTENSIONS[fmt]}", fmt), done)

    @work(thread=True, group="export")
    def _export(self, source: Path, fmt: str, out: Path, keep: Filter | None = None) -> None:
        worker = get_current_worker()
        live = self.live
        if self.capture is None and live is not None:
            live.flush_recording()
        replaced = replaced_note(out)
        try:
            export(source, fmt, out, conn=self.scope_conn,
                   stream=self.scope_stream if fmt not in ("pcapng", "script") else None,
                   keep=keep if fmt in FILTERED_FORMATS else None,
                   cancelled=lambda: worker.is_cancelled)
        except ExportCancelled:
            return  # (quitting: nobody reads a message now)
        except (OSError, ValueError, LookupError) as exc:
            msg = f"export failed: {exc}"
        else:
            msg = f"exported {fmt} to {out}{replaced}"
        self.call_from_thread(self._exported, msg)

    def _exported(self, msg: str) -> None:
        self.exporting = None
        self.message = msg
