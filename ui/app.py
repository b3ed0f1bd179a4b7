"""The h2scope Textual app: live (``h2scope run``) or on a capture (``h2scope view``).

Layout (top to bottom): the filter bar, the connections pane, the timeline
with the frame detail tabs beside it, the stream lanes, the status bar and the
footer. Work that grows with the number of frames — reading a capture,
filtering — runs in thread workers; the UI wakes on a timer ("tick", 10 Hz)
and takes whatever arrived since, so a million frames cost one refresh per
tick, not a million messages.

The entry points (``h2scope view``, ``h2scope run``) are in :mod:`ui.launch`;
the terminal's theme and signals in :mod:`ui.terminal`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from proxy.filter import Filter, FilterError, compile_filter
from ui import keymap
from ui.model import heap
from ui.model.capture import CaptureFile, load
from ui.model.filtering import needs_decoding, run_filter, scope_rows
from ui.model.follow import ChildProxy, FileFollow
from ui.model.live import FrameSource, LiveFeed, ingest, rate
from ui.model.session import Session
from ui.navigation import Navigation
from ui.screens.help import HelpScreen
from ui.terminal import PlainContent, TerminationGuard, pick_theme, termination_signals
from ui.widgets.lanes import LEGEND, Lanes, lanes_title
from ui.widgets.panes import ConnectionsPane, DetailPane, StatusBar
from ui.widgets.rowlist import RowList
from ui.widgets.timeline import Timeline

TICK = 0.1
UI_CPU_SHARE = 0.10
"""Live: the share of one core the UI thread may spend (ingest and repaint)
before repaints are spaced out (see :meth:`H2ScopeApp._refresh_due`)."""
MAX_REPAINT_GAP = 1.0
QUIT_AGAIN = 3.0
"""Live, unsaved: seconds within which a second quit key quits."""
MESSAGE_LIFE = 30.0
"""Seconds a status-bar message stays (work in progress stays until it is done)."""
MEMORY_WARN = 1 << 30
"""Resident bytes past which a live view says what it holds and how to free it
(about 400 bytes a frame: 1 GiB is some 2.5 million frames)."""
INGEST_TICK = 0.025
INGEST_IDLE = 2.0
"""Seconds without a batch after which the ingest timer sleeps until the tick finds
one (the first batch after a pause then waits up to TICK, not INGEST_TICK)."""
WAITING_EVERY = 0.5
"""Seconds between two counts of the frames waiting while the view is paused."""
"""Live: how often the UI takes batches off the feed (each holds frame bytes
until then: at 300 MiB/s a 100 ms tick would hold 30 MiB)."""
BEHIND_SHOWN = 1 << 20
"""Live: capture bytes the view has not read yet from which the status bar says so."""


_PANES = frozenset({"lanes", "connections", "detail"})
"""Panes other than the timeline, by widget id: the status bar says when the keys go
to one (its background alone told it from the timeline)."""

COMPACT_HEIGHT = 30
NARROW_WIDTH = 110


class FilterInput(Input):
    """The filter bar: Enter applies what is typed, Escape leaves without applying."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Leave the filter as it was", show=False)]

    class Cancelled(Message):
        def __init__(self, input: FilterInput) -> None:
            super().__init__()
            self.input = input

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled(self))


class H2ScopeApp(Navigation, inherit_bindings=False):
    """The UI over one :class:`Session` (a capture being read, or live traffic)."""

    CSS_PATH = "app.tcss"
    TITLE = "h2scope"
    # Textual's own ctrl+q binding is not inherited: listed before ours, it put
    # "^q Quit" in the footer while the docs and dialogs say q (the keymap has
    # ctrl+q too). Its ctrl+c is kept.
    BINDINGS = [*keymap.bindings(),
                Binding("escape", "cancel_quit", "Keep running", show=False),
                Binding("ctrl+c", "help_quit", show=False, system=True)]

    def __init__(self, session: Session, *, capture: CaptureFile | None = None,
                 live: ChildProxy | FileFollow | None = None, feed: LiveFeed | None = None,
                 frames: FrameSource | None = None, keys: Mapping[str, str] | None = None,
                 listen: str = "", theme_name: str = "auto",
                 initial_filter: str = "", confirm_quit: bool = True,
                 empty_hint: Sequence[str] = ()) -> None:
        super().__init__()
        self.empty_hint = list(empty_hint)
        """Live: what the empty timeline says (how to send traffic through the proxy)."""
        self.initial_filter = initial_filter
        self.confirm_quit = confirm_quit
        """Live: ask for a second quit key while the session holds unsaved frames
        (the private capture goes with the app)."""
        self._quit_asked = -QUIT_AGAIN
        self._quit_prompt = ""
        self._no_match = ""
        """The last "no frame matches" said (cleared when a scope or filter has some)."""
        self._problem_shown = False
        self._unrecorded_shown = False
        self._quit_key = ""
        """The key that asked to quit when it was not the quit binding (ctrl+c)."""
        self.discarded: str | None = None
        """Live, when a signal ended the app with unsaved frames: what went."""
        self.insecure = False
        """Live: upstream certificates are not verified (--insecure): the status bar
        says so for as long as it runs (the start-up warning is behind the screen)."""
        self.start_notes: list[str] = []
        """Said once the screen is up (a capture an earlier session left behind)."""
        self.stopped_why: str | None = None
        """Live, once quit: why the proxy had stopped or stopped recording by itself
        (``h2scope run`` then exits 1, saying it), else None."""
        self.termination: TerminationGuard | None = None
        """Live, from :func:`run_live`: termination signals noted before the app ran."""
        self.session = session
        self.capture = capture
        self.live = live
        self.feed = feed
        self.live_frames = frames
        self.keys = dict(keys or {})
        self.listen = listen
        self.filter: Filter = compile_filter("")
        self.filter_error: str | None = None
        self.scope_conn: int | None = None
        self.scope_stream: int | None = None
        self.paused = False
        self._waiting = (-WAITING_EVERY, 0)
        """(when, FRAME records in the file) for the PAUSED count, made at most every
        WAITING_EVERY seconds: the count scans what the proxy appended meanwhile."""
        self.select_when_filtered: int | None = None
        self.frames_saved = 0
        """Live: frames the last ctrl+s copied (the quit question counts the rest)."""
        self.recorded_conns: list[tuple[int, int | None]] = []
        """Live: the connection ids ``r`` recorded, [first, last+1) (None: still on)."""
        """A row to select once the filter worker has made the new view (go to #N)."""
        self._message = ""
        self._message_at = 0.0
        self._detail_waits = False
        """The detail pane is hidden until the first frame (the empty hint's room)."""
        self._memory = (-1.0, 0)
        """(when read, resident bytes) of this process: a live view warns past
        MEMORY_WARN."""
        self.search_text = ""
        self._scanned = 0
        """Rows the active filter has looked at (new rows are filtered on each tick)."""
        self._filter_gen = 0
        self._filtering = False
        self._stop = threading.Event()
        self._rates: deque[tuple[float, int]] = deque()
        self._last_arrival = 0.0
        self._ingest_timer: Timer | None = None
        """Live: when batches were last waiting for the UI (repaints are spaced out
        only while traffic keeps coming; once it stops, the views catch up)."""
        self._freezer = heap.Freezer()
        """Live: full collections would stall the relay more and more."""
        self.collector = heap.IdleCollector()
        """Full collections while no key is being answered."""
        self._last_count: tuple[int, int] = (-1, -1)
        self.first_rows_at: float | None = None
        self.loaded_at: float | None = None
        self.started = time.monotonic()
        self._repaint_mark = (self.started, time.thread_time())
        self.theme = pick_theme(theme_name)
        if self.no_color:  # (Textual's own monochrome made coloured content grey on grey)
            self._filters.insert(0, PlainContent())
        if self.keys:
            self.set_keymap(self.keys)
        if self.live is None:  # a capture: its live-only keys stay (they say so) but
            self._hide_from_footer(keymap.LIVE_ONLY)  # the footer has no room for them

    def _hide_from_footer(self, ids: frozenset[str]) -> None:
        """Leave the bindings ``ids`` out of the footer (they still act, and still
        show on the help screen)."""
        for key, found in self._bindings.key_to_bindings.items():
            self._bindings.key_to_bindings[key] = [
                dataclasses.replace(b, show=False) if b.id in ids else b for b in found]

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield FilterInput(placeholder="no filter: press / and type one, e.g. type:HEADERS "
                          "stream:5 dir:s2c finding:any header:content-type=json  (Enter "
                          "applies it, Escape leaves it as it was)", id="filter")
        yield Static("", id="filter-error", markup=False)
        yield ConnectionsPane(self.session, id="connections")
        with Horizontal(id="main"):
            yield Timeline(self.session, id="timeline")
            yield DetailPane(self.session, id="detail")
        yield Static(f"{LEGEND}   │ x: frame order (t: time)", id="lanes-title", markup=False)
        yield Lanes(self.session, id="lanes")
        yield StatusBar(id="status")
        yield Footer()

    # The main views live on the first screen; modal screens (help, stream, ...)
    # go on top of it, so look there rather than on the active screen.
    @property
    def main(self) -> Screen[Any]:
        return self.screen_stack[0]

    @property
    def timeline(self) -> Timeline:
        return self.main.query_one("#timeline", Timeline)

    @property
    def detail(self) -> DetailPane:
        return self.main.query_one("#detail", DetailPane)

    @property
    def lanes(self) -> Lanes:
        return self.main.query_one("#lanes", Lanes)

    @property
    def status(self) -> StatusBar:
        return self.main.query_one("#status", StatusBar)

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width, event.size.height)

    def fit(self, width: int, height: int) -> None:
        """Give the timeline the room in a small terminal: below :data:`COMPACT_HEIGHT`
        rows the filter bar, connections and lanes shrink; below
        :data:`NARROW_WIDTH` columns the detail pane starts hidden (``d`` shows it)."""
        main = self.main
        compact = height < COMPACT_HEIGHT
        main.set_class(compact, "compact")
        pane = main.query_one(ConnectionsPane)
        pane.room = max(5, height // 5) if compact else max(7, height // 4)
        pane.fit_height()
        # (a tall terminal gives the lanes more rows: a page of 40 streams had 8)
        self.lanes.styles.height = None if compact else max(8, height // 6)
        narrow = width < NARROW_WIDTH
        if narrow != main.has_class("narrow"):
            main.set_class(narrow, "narrow")
            self.detail.display = not narrow
            self.timeline.set_class(narrow, "alone")

    def on_mount(self) -> None:
        self.fit(self.size.width, self.size.height)
        self.timeline.focus()
        self.timeline.empty_lines = self.empty_hint
        if self.empty_hint and self.detail.display:
            # (the hint's curl command, cut where the empty detail pane began, could
            # not be copied: the pane comes back with the first frame)
            self._show_detail(False)
            self._detail_waits = True
        if self.live is not None:
            self.timeline.follow = True
        if self.capture is not None and not self.session.loaded:
            self._load()
        if self.initial_filter:
            self.main.query_one("#filter", Input).value = self.initial_filter
            self.set_filter(self.initial_filter)
        for note in self.start_notes:
            self.notify(note, title="left behind", severity="warning", timeout=30)
        self.collector.start()
        self.set_interval(TICK, self.tick)
        self._repaint_mark = (0.0, time.thread_time())  # start-up is not traffic: repaint now
        if self.live is not None:
            self._catch_termination()
        if self.feed is not None:
            self._ingest_timer = self.set_interval(INGEST_TICK, self._ingest)
        self.tick()

    def _ingest(self) -> None:
        """Live: take what the proxy published (between repaints too, so that
        batches — and the frame bytes they hold — wait at most INGEST_TICK)."""
        if self.feed is not None and self.live_frames is not None:
            if self.paused:
                return  # the view holds still; the proxy records on (see pause)
            now = time.monotonic()
            if self.feed.batches:
                self._last_arrival = now
            elif now - self._last_arrival > INGEST_IDLE and self._ingest_timer is not None:
                # Idle: the tick (every TICK) wakes this timer when batches come, so an
                # idle session is not woken 40 times a second for nothing.
                self._ingest_timer.pause()
                return
            ingest(self.session, self.live_frames, self.feed)
            self._freezer.note(len(self.session.table))

    @work(thread=True, exclusive=True, group="load")
    def _load(self) -> None:
        assert self.capture is not None
        load(self.session, self.capture, stop=self._stop)

    # ----------------------------------------------------------------- tick

    def tick(self) -> None:
        """Take what arrived since the last tick and refresh the views once."""
        if not self.screen_stack or not self.main.query("#status"):
            return  # starting up or shutting down
        if (self.timeline.empty_lines and (len(self.session.table) or self.session.conns)) \
                or (not len(self.session.table) and self.session.conns):
            # (also a capture of HTTP/1.x only opened with view: its timeline was blank)
            # Traffic came — frames, or HTTP/1.x and failed connections, which have
            # none: "no frames yet, send traffic" would mislead.
            n = len(self.session.conns)
            key = self.keys.get("connections", "c").split(",")[0]
            if len(self.session.table) and self._detail_waits:
                self._detail_waits = False
                self._show_detail(True)
            info = self.keys.get("connection_info", "i").split(",")[0]
            why = ", and why one failed" if self.session.failed else \
                f"; {info} shows an HTTP/1.x connection's messages"
            lines = [] if len(self.session.table) else [
                f"No HTTP/2 frames, but {n} connection{'s' * (n != 1)}: {key} lists "
                f"them{why}"]
            if lines != self.timeline.empty_lines:
                self.timeline.empty_lines = lines
                self.timeline.refresh()
        self.collector.tick()
        self._expire_message()
        if self._quit_prompt and time.monotonic() - self._quit_asked > QUIT_AGAIN:
            if self.message == self._quit_prompt:
                self.message = ""  # the question has lapsed: a quit key asks again
            self._quit_prompt = ""
        if self.live is not None and not self._problem_shown:
            problem = self.live.problem()
            if problem:  # said once; the toast holds all of it (the bar may cut it)
                self._problem_shown = True
                self.say(f"live capture stopped: {problem}")
                self.notify(problem, title="live capture stopped", severity="error",
                            timeout=60)
            elif self.live.unrecorded and not self._unrecorded_shown:
                self._unrecorded_shown = True
                self.say(self.live.unrecorded)
                self.notify(self.live.unrecorded, title="not recording", severity="error",
                            timeout=60)
        s = self.session
        if self.feed is not None:
            if self.feed.batches and self._ingest_timer is not None:
                self._ingest_timer.resume()  # (paused while idle: see _ingest)
            self._ingest()
            busy = time.monotonic() - self._last_arrival < TICK
            if busy and not self._refresh_due():
                self._status()  # one line, repainted only if it changed
                return
        count = len(s.table)
        decoded = s.decoded
        if count and self.first_rows_at is None:
            self.first_rows_at = time.monotonic() - self.started
        if s.loaded and self.loaded_at is None:
            self.loaded_at = time.monotonic() - self.started
            self._extend_view(len(s.table))  # (all searched: a filter matching none says so)
        if (count, decoded) != self._last_count:
            newly_decoded = count == self._last_count[0]
            self._last_count = (count, decoded)
            self._extend_view(count)
            self.timeline.refresh_rows()
            if newly_decoded:  # (the rows on screen may have been "decoding…": repaint)
                self.timeline.refresh()
            if self.lanes.display:
                self.lanes.rebuild()
            if self.detail.row is None and count:
                self.detail.show(self.timeline.selected_row)
        # Connections change without frames too (one closes, one opens while paused):
        # the pane checks the session's version, so this costs nothing when idle.
        self.main.query_one(ConnectionsPane).sync()
        self._status()

    def _refresh_due(self) -> bool:
        """Live: whether to repaint on this tick.

        The UI process shares the machine's cores with the proxy's process (and,
        on a laptop, with the client and server being debugged), and its follower
        thread needs the GIL to decode what the proxy records. Repainting costs
        the same whatever the traffic, so under load the views are repainted less
        often: only once the
        UI thread's CPU time since the last repaint is at most
        :data:`UI_CPU_SHARE` of the time passed (and at least every
        :data:`MAX_REPAINT_GAP` seconds). Idle, that is every tick.
        """
        now, cpu = time.monotonic(), time.thread_time()
        wall0, cpu0 = self._repaint_mark
        elapsed = now - wall0
        if cpu - cpu0 > UI_CPU_SHARE * elapsed and elapsed < MAX_REPAINT_GAP:
            return False
        self._repaint_mark = (now, cpu)
        return True

    def _extend_view(self, count: int) -> None:
        """Filter rows that arrived since the filter ran (bounded work per tick)."""
        tl = self.timeline
        if needs_decoding(self.filter.text):
            count = min(count, self.session.decoded)
        if tl.view is None or self._filtering:
            return
        if self._scanned < count:
            stop = min(count, self._scanned + 200_000)
            matched = run_filter(self.session, self.filter, start=self._scanned, stop=stop)
            if matched is not None:
                t = self.session.table
                for row in matched:
                    if self._in_scope(t.conn[row], t.stream[row]):
                        tl.view.append(row)
            self._scanned = stop
        if not tl.view and not self._no_match and self.session.loaded and self._scanned \
                and self._scanned >= len(self.session.table) \
                and not self.filter.matches_everything:
            # (a filter given on the command line ran before the capture had loaded:
            # said once the whole of it has been searched)
            self._say_no_match(self._scanned)
        if self._no_match and tl.view and self.message == self._no_match:
            # (live: a frame that matches came after all; "no frame matches … so far"
            # stayed beside '1 of 46 frames')
            self.message = ""
            self._no_match = ""
            self._status()

    def _in_scope(self, conn: int, stream: int) -> bool:
        if self.scope_conn is not None and conn != self.scope_conn:
            return False
        return self.scope_stream is None or stream == self.scope_stream

    def _status(self) -> None:
        """The status bar, most urgent first: what a narrow terminal cuts off is the
        least of it (a pause, a recording, the frame count come before the rest)."""
        s = self.session
        parts: list[tuple[str, str]] = []
        live = self.live
        if live is not None and self._problem_shown:  # (the message said why)
            parts.append(("STOPPED: no live traffic", "bold red"))
        elif live is not None and live.unrecorded:
            parts.append(("NOT RECORDING, NOT SEEN: the disk refused the capture", "bold red"))
        if live is not None and self.insecure:
            parts.append(("upstream NOT verified (--insecure)", "bold yellow"))
        if live is not None and self.paused:
            now = time.monotonic()
            if now - self._waiting[0] >= WAITING_EVERY:  # (a scan of the file's new part)
                self._waiting = (now, live.frames_in_file())
            waiting = max(0, self._waiting[1] - len(s.table))
            parts.append((f"PAUSED ({waiting:,} new frame{'' if waiting == 1 else 's'} "
                           f"waiting)", "bold yellow"))
        if live is not None and not isinstance(live, FileFollow) and live.recording:
            parts.append((f"● REC {live.recording}", "bold red"))
        if self.exporting:  # (said apart: another message may take the message's place)
            parts.append((f"exporting {self.exporting}…", "bold yellow"))
        if live is None:
            state = ("loaded" if s.loaded else f"decoding {s.progress * 100:.0f}%"
                     if s.indexed else "indexing…")
            parts.append((f"{s.title} ({state})", "bold"))
        elif isinstance(live, FileFollow):  # view --follow: the file is the writer's
            parts.append((self.listen, "bold"))
        total = len(s.table)
        shown = self.timeline.row_count()
        if self._filtering:  # (the rows shown are the previous filter's until it is done)
            parts.append((f"filtering {total:,} frames…", "bold cyan"))
        else:
            parts.append((f"{shown:,} of {total:,} frames" if shown != total
                          else f"{total:,} frames", ""))
        if self.filter.text.strip():
            parts.append((f"filter {self.filter.text}" + (" …" if self._filtering else ""),
                          "bold cyan"))
        pane = self._focused_pane()
        if pane is not None:  # (the keys go there: ↑/Enter on the lanes scope a stream)
            parts.append((f"keys → {pane} (Esc: timeline)", "bold magenta"))
        scope = "all" if self.scope_conn is None else f"conn #{self.scope_conn}"
        if self.scope_stream is not None:
            scope += f" stream {self.scope_stream}"
        parts.append((f"scope {scope}", ""))
        n = len(s.conns)
        parts.append((f"{n:,} connection{'' if n == 1 else 's'}", ""))
        if s.failed:  # (a browser's one refused certificate among dozens: said here)
            key = self.keys.get("connections", "c").split(",")[0]
            parts.append((f"{len(s.failed):,} failed ({key}: why)", "bold red"))
        if self.timeline.follow:
            parts.append(("FOLLOW", "bold green"))
        if live is not None:
            behind = live.behind()
            if behind >= BEHIND_SHOWN:  # the proxy is never slowed for the UI: say so
                parts.append((f"view {behind / 1048576:.1f} MiB behind the "
                              f"{'file' if isinstance(live, FileFollow) else 'proxy'}",
                              "yellow"))
            if live.disk_slows():  # back-pressure from the recording: say so
                parts.append(("the disk slows the proxy down (recording)", "bold yellow"))
            # (the view's intake: while it is behind, less than the proxy relays)
            taken = " shown" if behind >= BEHIND_SHOWN else ""
            parts.append((f"{rate(self._rates, len(s.table)):,.0f} frames/s{taken}", ""))
        if live is not None and not isinstance(live, FileFollow):
            save = self.keys.get("save_session", "ctrl+s")
            backing = live.backing
            if live.recording:
                pass
            elif backing is not None and backing.saved and not backing.unsaved:
                parts.append((f"saved to {backing.saved[-1].name}", "dim"))
            elif backing is not None and backing.saved:
                parts.append((f"new traffic since saved to {backing.saved[-1].name} ({save} "
                              "saves)", "dim"))
            else:
                parts.append((f"unsaved session ({save} saves)", "dim"))
            held = self._memory_held()
            if held >= MEMORY_WARN:  # (the session grows as long as traffic comes)
                parts.append((f"the view holds {held / 1073741824:.1f} GiB: {save} saves, "
                              "a new session frees it", "bold yellow"))
            if not self._problem_shown:  # (a proxy that stopped listens no more)
                parts.append((f"listening {self.listen}", "bold"))
        if self.live_frames is not None and self.live_frames.forgotten:
            parts.append((f"{self.live_frames.forgotten:,} old payloads freed", "yellow"))
        if s.problems:
            parts.append((f"{len(s.problems):,} damaged records skipped", "yellow"))
        self.status.set_parts(parts, self.message)

    # -------------------------------------------------------------- selection

    @on(RowList.Highlighted, "#timeline")
    def _frame_highlighted(self, event: RowList.Highlighted) -> None:
        if not self.screen_stack:  # (a highlight still queued while the app closes)
            return
        self.detail.show(self.timeline.row_at(event.index))

    @on(RowList.Chosen, "#timeline")
    def _frame_chosen(self, event: RowList.Chosen) -> None:
        self.action_stream_view()

    @on(RowList.Chosen, "#lanes")
    @on(RowList.Highlighted, "#lanes")
    def _lane_selected(self, event: RowList.Highlighted | RowList.Chosen) -> None:
        if isinstance(event, RowList.Highlighted) and not self.lanes.has_focus:
            return
        lane = self.lanes.lane_at(event.index)
        if lane is not None:
            self.scope_conn, self.scope_stream = lane.conn_id, lane.stream_id
            self.apply_filter()

    def on_data_table_row_highlighted(self, event: Any) -> None:
        pane = self.main.query_one(ConnectionsPane)
        if event.data_table is not pane or not pane.has_focus:
            return
        conn = pane.selected_conn()
        info = self.session.conns.get(conn) if conn is not None else None
        if info is not None and info.note:
            self.say(f"#{conn} {info.state}: {info.note}")  # the row's note, whole
        elif self.message.startswith("#"):  # (another row's note: not this row's)
            self.say("")
        if conn != self.scope_conn or self.scope_stream is not None:
            self.scope_conn, self.scope_stream = conn, None
            self.lanes.set_scope(conn)
            self.apply_filter()

    # ---------------------------------------------------------------- filter

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self.set_filter(event.value):
            self.timeline.focus()
        # (an invalid filter keeps the bar: fix it, or Escape to leave it as it was)

    def on_filter_input_cancelled(self, event: FilterInput.Cancelled) -> None:
        """Escape in the filter bar: back to the timeline, the filter in force kept
        (and the text it was typed as)."""
        event.input.value = self.filter.text
        self.main.query_one("#filter-error", Static).remove_class("shown")
        self.timeline.focus()

    def set_filter(self, text: str) -> bool:
        """Compile and apply ``text``; an invalid filter leaves the view as it was."""
        err = self.main.query_one("#filter-error", Static)
        try:
            flt = compile_filter(text)
        except FilterError as exc:
            self.filter_error = exc.message
            err.update(f"✗ {exc.message}")
            err.add_class("shown")
            return False
        self.filter_error = None
        err.update("")
        err.remove_class("shown")
        self.filter = flt
        self.message = ""  # (an earlier message is about another view)
        self.apply_filter()
        return True

    def apply_filter(self) -> None:
        """Recompute the view for the filter and scope (in a worker if it is big).
        The status bar is repainted at once: the new filter or scope beside the
        old one's count would misread."""
        self._filter_gen += 1
        tl = self.timeline
        if self.filter.matches_everything and self.scope_conn is None:
            tl.set_view(None)
            self._filtering = False
        else:
            self._filtering = True
            self._filter_worker(self._filter_gen, self.filter, self.scope_conn,
                                self.scope_stream)
        self.say(self.message)

    @work(thread=True, exclusive=True, group="filter")
    def _filter_worker(self, gen: int, flt: Filter, conn: int | None,
                       stream: int | None) -> None:
        s = self.session
        count = s.decoded if needs_decoding(flt.text) else len(s.table)
        rows = scope_rows(s, conn, stream)
        if rows is not None:
            rows = array("I", (r for r in rows if r < count))
        if flt.matches_everything:
            view: array[int] | None = rows if rows is not None else None
        else:
            view = run_filter(s, flt, rows=rows, stop=count)
        if view is None:
            view = array("I")
        self.call_from_thread(self._filter_done, gen, view, count)

    def _say_no_match(self, scanned: int) -> None:
        """Nothing matches the filter (not a blank timeline and "No frame selected.",
        which read as broken): said, with the typo hints."""
        where = "" if self.scope_conn is None else f" on connection #{self.scope_conn}"
        from proxy.filter import no_match_hint

        held = self.session.conn_findings_matching(self.filter, self.scope_conn)
        key = self.keys.get("findings", "F").split(",")[0]
        on_conns = (f"; {held:,} connection-level finding{'s' if held != 1 else ''} "
                    f"(on no frame) match{'es' if held == 1 else ''}: {key} lists them"
                    if held else "")
        self._no_match = (f"no frame{where} matches {self.filter.text.strip()!r}"
                          f"{' so far' if self.live is not None else ''} ({scanned:,} "
                          f"frames searched){no_match_hint(self.filter.text)}{on_conns}; "
                          "/ edits the filter")
        self.say(self._no_match)

    def _filter_done(self, gen: int, view: array[int], scanned: int) -> None:
        if gen != self._filter_gen:
            return  # a newer filter superseded this one
        self._filtering = False
        self._scanned = scanned
        self.timeline.set_view(view)
        self._extend_view(len(self.session.table))
        self.timeline.refresh_rows()
        if not self.timeline.row_count() and scanned and not self.filter.matches_everything:
            self._say_no_match(scanned)
        elif self._no_match and self.message == self._no_match:
            self.message = ""  # (another scope has frames that match: it no longer holds)
            self._no_match = ""
            self._status()
        row, self.select_when_filtered = self.select_when_filtered, None
        if row is not None and self.timeline.index_of(row) is not None:
            self._select_row(row)
        self.detail.show(self.timeline.selected_row)

    # --------------------------------------------------------------- actions

    def action_focus_timeline(self) -> None:
        """Escape in the connections pane: back to the timeline (its scope stays)."""
        self.timeline.focus()

    def action_focus_connections(self) -> None:
        """The connections pane takes the arrows: moving its cursor scopes the views
        and says what went wrong with the connection, if anything did."""
        pane = self.main.query_one(ConnectionsPane)
        pane.focus()
        c = self.session.conns.get(pane.selected_conn() or -1)
        if c is not None and c.note:
            self.say(f"#{c.conn_id} {c.state}: {c.note}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_filter":  # (a priority binding: not while text is typed)
            return len(self.screen_stack) == 1 and not isinstance(self.focused, Input)
        return True

    def action_focus_filter(self) -> None:
        # Focused now, not after the queued events (Widget.focus defers it): keys
        # typed or pasted in the same burst as "/" go into the filter, not to the
        # timeline's bindings.
        self.screen.set_focus(self.main.query_one("#filter", Input))

    def action_help(self) -> None:
        self.acted()
        self.push_screen(HelpScreen(self.keys))

    def action_toggle_follow(self) -> None:
        tl = self.timeline
        tl.follow = not tl.follow
        if tl.follow:
            tl.refresh_rows()
            tl.action_last()

    def action_toggle_pause(self) -> None:
        if self.live is None:
            self.refuse("pause applies to live capture")
            return
        self.paused = not self.paused
        self.live.pause(self.paused)
        self.say("paused: the view holds still, the proxy records on; "
                 f"{self.keys.get('pause', 'space')} shows what came meanwhile"
                 if self.paused else "resumed")

    def action_toggle_lanes(self) -> None:
        lanes = self.lanes
        lanes.display = not lanes.display
        self.main.query_one("#lanes-title").display = lanes.display
        if lanes.display:
            lanes.set_scope(self.scope_conn)

    def action_lanes_time(self) -> None:
        self.lanes.by_time = not self.lanes.by_time
        self.lanes.refresh_rows(reset=True)
        self.main.query_one("#lanes-title", Static).update(lanes_title(self.lanes))

    def action_toggle_detail(self) -> None:
        self._detail_waits = False  # (the user decides from now on)
        self._show_detail(not self.detail.display)

    def _show_detail(self, shown: bool) -> None:
        self.detail.display = shown
        self.timeline.set_class(not shown, "alone")

    def action_detail_tab(self, tab: str) -> None:
        self.detail.active = tab

    def _memory_held(self) -> int:
        """The process's resident bytes, read at most once a second (/proc)."""
        now = time.monotonic()
        if now - self._memory[0] >= 1.0:
            try:
                with open("/proc/self/statm", "rb") as f:
                    pages = int(f.read().split()[1])
                self._memory = (now, pages * os.sysconf("SC_PAGE_SIZE"))
            except (OSError, ValueError, IndexError):
                self._memory = (now, 0)
        return self._memory[1]

    @property
    def message(self) -> str:
        """What the status bar says last (a result, a question, an error)."""
        return self._message

    @message.setter
    def message(self, text: str) -> None:
        self._message = text
        self._message_at = time.monotonic()

    def _expire_message(self) -> None:
        # A message said minutes ago (about another connection, a save long done)
        # took the room of the live parts (rate, listening address): it goes after a
        # while. Work in progress ("exporting …", "saving …") stays until its result.
        if self._message and not self._message.endswith("…") and \
                time.monotonic() - self._message_at > MESSAGE_LIFE:
            self._message = ""

    def say(self, message: str) -> None:
        """Show ``message`` in the status bar now (not at the next tick)."""
        self.message = message
        if self.screen_stack and self.main.query("#status"):
            self._status()

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        yield from super().get_system_commands(screen)
        keys = {bid: shown for shown, _, bid in keymap.help_rows(self.keys)}
        for bid, _, action, desc, _ in keymap.KEYS:
            if bid in ("quit", "help"):
                continue
            # (the key that does it, so that the palette teaches it; the id keymap takes)
            yield SystemCommand(desc, f"key: {keys.get(bid, '-')}   keymap id: {bid}",
                                lambda a=action: self.run_action(a))

    def unsaved_frames(self) -> int:
        """Live: frames only the private capture holds (it is removed on quitting)."""
        live = self.live
        backing = live.backing if live is not None else None
        if backing is None or not backing.temporary or not backing.unsaved:
            return 0
        spans = self.recorded_conns
        assert live is not None
        ids = live.recorded_ids
        total = max(0, len(self.session.table) - self.frames_saved)
        if not (spans or ids) or not total:
            return total
        # (frames of connections r recorded are in its file; counted per connection,
        # in C: a loop over every unsaved row took 1.4 s at 7 M frames)
        counts = Counter(self.session.table.conn[self.frames_saved:])
        recorded = sum(n for c, n in counts.items() if c in ids or any(
            a <= c < (b if b is not None else 1 << 62) for a, b in spans))
        return total - recorded

    def action_help_quit(self) -> None:
        """Ctrl+C: quit as ``q`` does (asking first while frames are unsaved), not
        Textual's toast that covered that question."""
        self._quit_key = "ctrl+c"  # (the question names the key that asked it)
        self.call_next(self.action_quit)

    def _focused_pane(self) -> str | None:
        """The pane other than the timeline that holds the focus, if one does."""
        node = self.focused
        while node is not None and node is not self.screen:
            if getattr(node, "id", None) in _PANES:
                return node.id
            node = node.parent  # type: ignore[assignment]
        return None

    def on_descendant_focus(self) -> None:
        if self.screen_stack and self.main.query("#status"):
            self._status()

    def action_cancel_quit(self) -> None:
        """Escape: while the quit question stands, the answer is no; in the lanes or
        the detail pane, back to the timeline (the status bar says so)."""
        if self._quit_prompt:
            if self.message == self._quit_prompt:
                self.message = ""
            self._quit_prompt = ""
            self._quit_asked = -QUIT_AGAIN
            self.say("not quitting")
        elif self._focused_pane() is not None:
            self.timeline.focus()

    async def action_quit(self) -> None:
        quit_key, self._quit_key = self._quit_key, ""
        now = time.monotonic()
        asked = now - self._quit_asked <= QUIT_AGAIN
        unsaved = self.unsaved_frames() if self.confirm_quit and not asked else 0
        if (unsaved or self.exporting) and not asked:
            self._quit_asked = now
            quit_key = quit_key or self.keys.get("quit", "q").split(",")[0]
            save = self.keys.get("save_session", "ctrl+s")
            since = " since the last save" if self.frames_saved else ""
            live = self.live
            behind = live.behind() if live is not None and not live.recording else 0
            more = f", and {behind / 1048576:.1f} MiB of traffic the view has not shown " \
                "yet" if unsaved and behind >= BEHIND_SHOWN else ""  # (r records that)
            lost = [f"{unsaved:,} frames not saved{since}{more} will be lost ({save} saves)"] \
                if unsaved else []
            if self.exporting:
                lost.append(f"the export ({self.exporting}) is given up")
            self._quit_prompt = f"{quit_key} again to quit: {'; '.join(lost)}"
            self.say(self._quit_prompt)
            return
        # (an export's thread would hold the process for minutes: it stops at its next
        # records and removes its half-written file)
        self.workers.cancel_group(self, "export")
        self._stop.set()
        if self.live is not None:
            self.message = "stopping the proxy…"
            live = self.live
            self.stopped_why = live.problem() or live.unrecorded
            self.live = None
            await self._shutdown_live(live)
        self.exit(0)

    async def _shutdown_live(self, live: ChildProxy | FileFollow) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, live.stop)

    def _catch_termination(self) -> None:
        """Live: SIGTERM (a service manager, ``kill``) and SIGHUP (the terminal
        closed) quit like ``q`` does, so the proxy stops, the capture is closed and
        a temporary one removed — their default action would leave it behind.
        One noted by :class:`TerminationGuard` before the app ran quits at once."""
        import asyncio
        import contextlib

        loop = asyncio.get_running_loop()
        for sig in termination_signals():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._terminated, sig)
        if self.termination is not None and self.termination.pending:
            self._terminated(None)

    def _terminated(self, sig: int | None) -> None:
        """Quit on a termination signal; what it discarded is said once the screen
        is gone (nobody answered the quit question)."""
        import signal

        unsaved = self.unsaved_frames() if self.confirm_quit else 0
        if unsaved:
            name = signal.Signals(sig).name if sig is not None else "a termination signal"
            self.discarded = (f"{name}: quit; {unsaved:,} frames not saved were discarded "
                              "with the session's capture")
        self.exit(0)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.collector.input_seen()
            if self.live is not None:
                self.live.input_seen()
        await super().on_event(event)

    def on_unmount(self) -> None:
        import asyncio
        import contextlib

        self._stop.set()
        self.collector.stop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            for sig in termination_signals():
                loop.remove_signal_handler(sig)
        if self.live is not None:
            self.live.stop()
