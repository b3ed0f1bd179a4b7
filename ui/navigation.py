"""The app's moves through a session: findings, search, go to, scopes, views.

What the keys that move the selection or change what is shown do (``n``,
``F``, ``ctrl+f``, ``g``, ``s``, ``S``/``C``/``A``, the state views): a mixin of
:class:`ui.app.H2ScopeApp`, as :mod:`ui.session_actions` is for files. Every
move goes through :meth:`Navigation._select_row`, which widens the view when
the row is filtered out rather than failing.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from textual.widgets import Input

from proxy.filter import Filter, compile_filter
from ui.screens.findings import FindingsScreen
from ui.screens.prompt import Prompt
from ui.screens.requests import RequestsScreen
from ui.screens.state import StateScreen
from ui.screens.stream import StreamScreen
from ui.session_actions import SessionActions
from ui.widgets.panes import ConnectionsPane

if TYPE_CHECKING:
    from textual.screen import Screen

    from ui.model.session import Session
    from ui.widgets.lanes import Lanes
    from ui.widgets.panes import DetailPane
    from ui.widgets.timeline import Timeline


class Navigation(SessionActions):
    """Findings, search, go to, scopes and the stream and state views; the app
    provides the attributes and methods declared below."""

    session: Session
    filter: Filter
    search_text: str
    _search_cache: tuple[str, int, list[int]] | None = None
    """The last search: its text, how many header blocks it has looked at, the rows
    that match."""
    _search_view: tuple[tuple[str, int, int, int], list[int]] | None = None
    """The matches the view shows, for (the text, the view, its length, the matches'
    count)."""
    select_when_filtered: int | None
    keys: dict[str, str]
    _refusal = ""
    """The last reason a key could not act (:meth:`refuse`), while it is said."""

    if TYPE_CHECKING:
        @property
        def main(self) -> Screen[Any]: ...

        @property
        def timeline(self) -> Timeline: ...

        @property
        def detail(self) -> DetailPane: ...

        @property
        def lanes(self) -> Lanes: ...

        def say(self, message: str) -> None: ...

        def set_filter(self, text: str) -> bool: ...

        def apply_filter(self) -> None: ...

    def action_next_finding(self, step: int) -> None:
        rows = self.session.table.finding_rows  # ascending
        tl = self.timeline
        current = tl.selected_row
        current = -1 if current is None else current
        view = tl.view
        # From the selected row on, in the step's direction: the first finding row
        # the view shows (binary searches: a million rows cost what ten do).
        i = bisect_right(rows, current) if step > 0 else bisect_left(rows, current) - 1
        while 0 <= i < len(rows):
            row = rows[i]
            j = tl.index_of(row)
            if view is None or (j is not None and tl.row_at(j) == row):
                self._select_row(row)
                if self.message in ("no more findings", "no findings"):
                    self.say("")  # (said of the other direction)
                return
            i += 1 if step > 0 else -1
        if rows:
            self.say("no more findings")
            return
        with self.session.lock:
            held = sum(len(c.conn_findings) for c in self.session.conns.values())
        # (a connection's own findings, such as what its close left unfinished, are
        # on no frame: the findings summary lists them)
        key = self.keys.get("findings", "F").split(",")[0]
        self.say(f"no findings on frames; {held} on connections ({key} lists them)"
                 if held else "no findings")

    def action_requests(self) -> None:
        """Every request in a table that sorts (slowest first); Enter selects its
        stream's first frame."""

        def done(row: int | None) -> None:
            if row is not None and row < 0:  # (an HTTP/1.x exchange: its connection)
                self.goto(f"#{-row}")
                self.timeline.focus()
            elif row is not None:
                self._select_row(row)
                self.timeline.focus()

        self.acted()
        self.push_screen(RequestsScreen(self.session), done)

    def action_findings(self) -> None:
        """Every finding grouped by kind; Enter filters to one, g goes to its first frame."""

        def done(choice: tuple[str, str | int] | None) -> None:
            if choice is None:
                return
            what, value = choice
            if what == "filter":
                text = f"finding:{value}"
                self.main.query_one("#filter", Input).value = text
                self.set_filter(text)
                self.timeline.focus()
            elif what == "conn":
                assert isinstance(value, str)
                conn, _, said = value.partition(" ")
                self.goto(conn)
                self.say(f"{conn} (connection): {said}")
                self.timeline.focus()
            else:
                assert isinstance(value, int)
                self._select_row(value)

        self.acted()
        self.push_screen(FindingsScreen(self.session), done)

    def _select_row(self, row: int) -> None:
        tl = self.timeline
        i = tl.index_of(row)
        if i is None or tl.row_at(i) != row:
            # Not in the view: widen to everything, then select (and say so).
            dropped = [what for what, on in (
                (f"the filter {self.filter.text.strip()!r}", self.filter.text.strip()),
                ("the scope", self.scope_conn is not None)) if on]
            if dropped:
                self.say(f"frame {row + 1} was not in the view: {' and '.join(dropped)} "
                         "cleared to show it")
            self.scope_conn = self.scope_stream = None
            self.main.query_one("#filter", Input).value = ""
            self.filter = compile_filter("")
            tl.set_view(None)
            i = row
        tl.follow = False
        tl.move_to(i)
        height = tl.scrollable_content_region.height
        tl.scroll_to(y=max(0, i - height // 2), animate=False, immediate=True)
        self.detail.show(row)

    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.search_text = text
                self.action_search_next(1)
        self.push_screen(Prompt("Search decoded headers (names and values)", self.search_text),
                         done)

    def action_search_next(self, step: int) -> None:
        """The next (``step`` 1) or previous (-1) frame whose decoded headers hold the
        search text, among the frames the view shows: a filter or scope narrows the
        search and stays (it was cleared to show a match outside it)."""
        needle = self.search_text.lower()
        if not needle:
            self.action_search()
            return
        found = self._search_matches(needle)
        view = self.timeline.view
        shown = found if view is None else self._in_view(needle, found, view)
        current = self.timeline.selected_row
        if not shown:
            outside = f" ({len(found):,} outside the filter or scope)" if found else ""
            self.say(f"{self.search_text!r} not found{outside}")
            return
        if current is None:
            k = 0 if step > 0 else len(shown) - 1
        elif step > 0:
            k = bisect_right(shown, current)
        else:
            k = bisect_left(shown, current) - 1
        wrapped = not 0 <= k < len(shown)
        k %= len(shown)  # past the last match: around to the first
        row = shown[k]
        if row == current:
            self.say(f"{self.search_text!r}: this frame is the only match")
            return
        self._select_row(row)
        around = "" if not wrapped else (" (from the top)" if step > 0 else " (from the bottom)")
        self.say(f"found {self.search_text!r}: match {k + 1:,} of {len(shown):,}{around}")

    def _search_matches(self, needle: str) -> list[int]:
        """The rows whose header block holds ``needle``, ascending. Kept between key
        presses and extended with the blocks decoded since (a press scanned and
        sorted every block: 0.7-1.9 s on the UI thread for a million frames)."""
        headers = self.session.table.block_headers
        cached = self._search_cache
        if cached is None or cached[0] != needle or cached[1] > len(headers):
            cached = (needle, 0, [])
        _, seen, found = cached
        for row, fields in islice(headers.items(), seen, None):
            if any(needle in n or needle in v.lower() for n, v in fields):
                insort(found, row)
        self._search_cache = (needle, len(headers), found)
        return found

    def _in_view(self, needle: str, found: list[int], view: Sequence[int]) -> list[int]:
        key = (needle, id(view), len(view), len(found))
        if self._search_view is not None and self._search_view[0] == key:
            return self._search_view[1]
        shown = [row for row in found
                 if (i := bisect_left(view, row)) < len(view) and view[i] == row]
        self._search_view = (key, shown)
        return shown

    def action_goto(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.goto(text)
        self.push_screen(Prompt("Go to: N a frame, sN a stream of this connection, "
                                "#N a connection"), done)

    def goto(self, text: str) -> None:
        text = text.strip()
        s = self.session
        self.say("")  # (what an earlier go-to said no longer holds)
        try:
            if text.startswith("#"):
                conn = int(text[1:])
                if conn not in s.conns:
                    raise ValueError(f"no connection #{conn}")
                self.scope_conn, self.scope_stream = conn, None
                self.main.query_one(ConnectionsPane).select_conn(conn)
                self.lanes.set_scope(conn)
                try:  # the connection's first frame, selected once the view is scoped
                    self.select_when_filtered = s.table.conn.index(conn)
                except ValueError:
                    self.select_when_filtered = None
                self.apply_filter()
            elif text[:1] in "sS":
                sid = int(text[1:])
                row = self.timeline.selected_row
                conn_id = self.scope_conn if self.scope_conn is not None else (
                    s.table.conn[row] if row is not None else next(iter(s.conns), None))
                c = s.conns.get(conn_id) if conn_id is not None else None
                st = c.streams.get(sid) if c is not None else None
                if st is None or not st.rows:
                    raise ValueError(f"no stream {sid} on connection #{conn_id}")
                self._select_row(st.rows[0])
            else:
                n = int(text)
                if not 1 <= n <= len(s.table):
                    raise ValueError(f"no frame {n} (1-{len(s.table)})")
                self._select_row(n - 1)
        except ValueError as exc:
            self.say(str(exc) if "invalid literal" not in str(exc) else
                     f"cannot go to {text!r}")
            return

    def _selected_stream(self) -> tuple[Any, Any] | None:
        row = self.timeline.selected_row
        if row is None:
            return None
        s = self.session
        c = s.conns.get(s.table.conn[row])
        st = s.stream_of_row(row)
        return (c, st) if c is not None and st is not None else None

    def action_stream_view(self) -> None:
        found = self._selected_stream()
        row = self.timeline.selected_row
        if found is None and row is not None and row >= self.session.decoded \
                and self.session.table.stream[row]:
            self.refuse(f"frame {row + 1}'s stream is not decoded yet (the capture is being "
                     "decoded in order): try again in a moment")
            return
        if found is None:
            self.refuse("select a frame of a stream (not stream 0) first")
            return
        self._push_kept("stream", lambda: StreamScreen(self.session, *found),
                        lambda screen: screen.show(*found))

    def action_scope_stream(self) -> None:
        found = self._selected_stream()
        if found is None:
            self.refuse("select a frame of a stream first")
            return
        self.scope_conn, self.scope_stream = found[0].conn_id, found[1].stream_id
        self.apply_filter()

    def action_scope_conn(self) -> None:
        row = self.timeline.selected_row
        if row is None:
            return
        self.scope_conn, self.scope_stream = self.session.table.conn[row], None
        self.main.query_one(ConnectionsPane).select_conn(self.scope_conn)
        self.lanes.set_scope(self.scope_conn)
        self.apply_filter()

    def action_scope_all(self) -> None:
        self.scope_conn = self.scope_stream = None
        self.main.query_one(ConnectionsPane).select_conn(None)
        self.lanes.set_scope(None)
        self.apply_filter()

    def action_state(self, tab: str) -> None:
        s = self.session
        conn_id = self.scope_conn
        if conn_id is None:
            row = self.timeline.selected_row
            conn_id = s.table.conn[row] if row is not None else next(iter(s.conns), None)
        c = s.conns.get(conn_id) if conn_id is not None else None
        if c is None:
            self.refuse("no connection yet")
            return
        live = self.live is not None
        row = self.timeline.selected_row
        if row is not None and s.table.conn[row] != conn_id:
            row = None
        stream = s.table.stream[row] if row is not None else None
        self._push_kept("state", lambda: StateScreen(s, c, tab, live=live, stream=stream,
                                                     row=row),
                        lambda screen: screen.show(c, tab, stream, row))

    def refuse(self, message: str) -> None:
        """Say why a key could not act; the next key that does (a view opened)
        takes the message away: 'select a frame of a stream first' stayed beside the
        stream view then opened."""
        self._refusal = message
        self.say(message)

    def acted(self) -> None:
        """A key did what it is for: a refusal said before no longer holds."""
        if self._refusal and self.message == self._refusal:
            self.say("")
        self._refusal = ""

    def _push_kept(self, name: str, make: Callable[[], Any], show: Callable[[Any], None]) -> None:
        """Show the view installed as ``name``: made and composed the first time,
        then kept when closed and shown again with ``show``. Composing it anew
        (the state view's tabs) was most of what a key press cost, and tearing
        it down most of what closing it cost under live traffic."""
        self.acted()
        if self.is_screen_installed(name):
            screen = self.get_screen(name)
            show(screen)
        else:
            screen = make()
            self.install_screen(screen, name=name)
        self.push_screen(screen)
