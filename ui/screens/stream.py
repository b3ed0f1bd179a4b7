"""One stream as a message exchange: headers, informational responses, trailers,
bodies (reassembled, decompressed, pretty), timing; copy as curl, save a body."""

from __future__ import annotations

import bisect
import re
from pathlib import Path
from typing import ClassVar

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from proxy.capture.exports import open_private
from proxy.grpc_log import GrpcTracker, grpc_field_note
from proxy.observe.describe import (
    at_deadline,
    duration_ms,
    grpc_timeout_ms,
    shown_field,
    shown_headers,
)
from proxy.observe.header_rules import grpc_call_type
from proxy.websocket import is_websocket
from ui.model import body
from ui.model.body import (
    Body,
    curl_command,
    data_frames,
    header,
    reassemble,
    render_body,
    websocket_lines,
)
from ui.model.connections import ConnInfo, Headers, StreamInfo
from ui.model.export import replaced_note
from ui.model.session import Session
from ui.widgets.jumps import JumpScroll
from ui.widgets.style import safe


def _deadline(st: StreamInfo) -> str:
    """A gRPC call the client cancelled: whether its deadline (grpc-timeout) was why —
    the question a CANCEL raises ('deadline or user cancel?')."""
    if st.reset_t is None or not (st.reset or "").startswith("by client: CANCEL"):
        return ""
    timeout = next((v for n, v in st.request_headers or () if n == "grpc-timeout"), None)
    ms = grpc_timeout_ms(timeout) if timeout is not None else None
    if ms is None:
        return ""
    if at_deadline((st.reset_t - st.first_t) * 1000, ms):
        return f", at the client's {duration_ms(ms)} deadline (grpc-timeout {timeout})"
    return f", before the client's {duration_ms(ms)} deadline (grpc-timeout {timeout}): a cancel"


def stream_text(session: Session, conn: ConnInfo, st: StreamInfo) -> Text:
    out = Text()
    out.append(f"connection #{conn.conn_id} {conn.client} → {conn.target}   stream "
               f"{st.stream_id}   state {st.state}", "bold")
    if st.pushed_by is not None:
        out.append(f"   pushed (PUSH_PROMISE on stream {st.pushed_by})", "magenta")
    if st.reset:
        out.append(f"   reset {st.reset}", "bold red")
    out.append("\n")
    t0 = st.first_t
    rel = session.relative
    timing = [f"started {rel(t0):.6f} s"]
    moments: list[tuple[float, str]] = []  # (said in the order they happened)
    if st.request_end_t is not None and st.request_end_t > t0 and st.data_c2s:
        moments.append((st.request_end_t,
                        f"request sent +{(st.request_end_t - t0) * 1000:.3f} ms"))
    if st.interim_t is not None:
        interim = dict(st.informational[0]).get(":status", "1xx") if st.informational \
            else "1xx"
        moments.append((st.interim_t, f"interim {interim} +{(st.interim_t - t0) * 1000:.3f} ms"))
    if st.first_response_t is not None:
        moments.append((st.first_response_t,
                        f"response headers +{(st.first_response_t - t0) * 1000:.3f} ms"))
    if st.response_end_t is not None:
        done = f"response complete +{(st.response_end_t - t0) * 1000:.3f} ms"
        if st.first_response_t is not None:
            done += f" (receiving {(st.response_end_t - st.first_response_t) * 1000:.3f} ms)"
        moments.append((st.response_end_t, done))
    if st.reset_t is not None:
        moments.append((st.reset_t, f"reset +{(st.reset_t - t0) * 1000:.3f} ms{_deadline(st)}"))
    if st.last_t != st.response_end_t and st.last_t != st.reset_t:
        moments.append((st.last_t, f"last frame +{(st.last_t - t0) * 1000:.3f} ms"))
    timing.extend(text for _, text in sorted(moments, key=lambda m: m[0]))
    if st.stalls:
        total = sum((end - start) for start, end in st.stalls if end is not None)
        timing.append(f"{len(st.stalls)} flow-control stall(s), {total * 1000:.1f} ms")
    if st.urgency is not None or st.incremental is not None:
        # RFC 9218 §4: urgency defaults to 3, incremental to false.
        urgency = 3 if st.urgency is None else st.urgency
        incremental = ", incremental" if st.incremental else ""
        timing.append(f"priority urgency {urgency}{incremental} (RFC 9218)")
    out.append("timing: " + ", ".join(timing) + " (when the frames crossed h2scope: the "
               "client's own times differ by its side of the trip)\n", "dim")
    if st.dependency:
        said = [f"{kind}{'' if t == t0 else f' at +{(t - t0) * 1000:.3f} ms'}: depends on "
                f"{dep}{' exclusively' if excl else ''}, weight {weight}"
                for t, kind, dep, weight, excl in st.dependency]
        out.append("RFC 7540 priority: " + "; then ".join(said) + "\n", "dim")
    _headers(out, "request headers", st.request_headers)
    websocket = is_websocket(st.request_headers)
    req = reassemble(session, st, 0)
    # (no more data can come: its sender ended the stream, or the capture ends here)
    ended = session.loaded or st.state == "closed"
    if req.frames and not websocket:
        _body(out, "request body", req, st.request_headers, st.request_headers, request=True,
              ended=ended or st.state == "half-closed (client)")
    _headers(out, "request trailers", st.request_trailers)
    for info in st.informational:
        _headers(out, "informational response", info)
    _headers(out, "response headers", st.response_headers)
    resp = reassemble(session, st, 1)
    if websocket:
        out.append("\nWebSocket messages (RFC 8441 extended CONNECT, RFC 6455 framing)\n",
                   "bold underline")
        lines = websocket_lines(session, st)
        for line in lines[:MAX_LINES]:
            out.append("  " + line + "\n", "yellow" if line.lstrip().startswith("!") else "")
        _more(out, len(lines), "messages: export the stream (x) to read them all")
    elif resp.frames:
        _body(out, "response body", resp, st.response_headers, st.request_headers,
              request=False, ended=ended or st.state == "half-closed (server)")
    _headers(out, "response trailers", st.response_trailers)
    if not websocket:
        _conversation(out, session, st)
    return out


def _conversation(out: Text, session: Session, st: StreamInfo) -> None:
    """A streaming gRPC call's messages in the order they came, both directions
    interleaved, with when (the bodies above list each direction on its own: a
    bidirectional stream's back and forth is lost there)."""
    request = st.request_headers or ()
    if not any(n == "content-type" and grpc_call_type(v) for n, v in request):
        return
    frames, _ = data_frames(session, st)
    msgs = GrpcTracker(body.SCHEMA).call_messages(
        request, st.response_headers, ((d, t, payload) for _row, d, t, payload in frames))
    if len(msgs) <= 2 or all(m.direction == msgs[0][1].direction for _, m in msgs):
        return  # (unary, or one direction only: the body above says it all)
    out.append("\ngRPC messages in order (both directions)\n", "bold underline")
    t0 = st.first_t
    for t, m in msgs[:MAX_LINES]:
        arrow = "→" if m.direction == 0 else "←"
        out.append(f"  +{(t - t0) * 1000:10.3f} ms  {arrow} {m.summary()}\n")
    _more(out, len(msgs), "messages: export the stream (x) to read them all")


MAX_LINES = 3000
"""Lines of a body (or of WebSocket messages) the view renders; the rest is said."""


def _headers(out: Text, title: str, headers: Headers | None) -> None:
    if headers is None:
        return
    out.append(f"\n{title}\n", "bold underline")
    shown, omitted, left = shown_headers(tuple(headers))
    for n, v in shown:  # as sent: pseudo-headers first (RFC 9113 §8.3)
        name, _, value = shown_field(n, v).partition(": ")
        out.append(f"  {name}", "bold cyan" if n.startswith(":") else "bold")
        out.append(f": {value}")
        note = grpc_field_note(n, v)
        if note:
            out.append(f"    ({note})", "dim")
        out.append("\n")
    if omitted:
        out.append(f"  … {omitted:,} more fields (about {left:,} bytes) not shown: an HPACK "
                   "amplification (header-list-amplified)\n", "yellow")


def _body(out: Text, title: str, body: Body, headers: Headers | None,
          request_headers: Headers | None, *, request: bool, ended: bool = True) -> None:
    """The body under its title; one shorter than its content-length says so
    (``ended``: incomplete; else, so far)."""
    raw = body.raw
    if body.truncated and body.sent > len(raw):
        out.append(f"\n{title}: {body.sent:,} bytes in {body.frames:,} DATA frame(s), "
                   f"{len(raw):,} of them kept", "bold underline")
        out.append("  (the capture did not keep the rest: record.max_data_bytes, or "
                   "imported without the bytes)", "yellow")
    else:
        out.append(f"\n{title}: {len(raw):,} bytes in {body.frames:,} DATA frame(s)",
                   "bold underline")
        if body.truncated:
            out.append("  (some payloads were not kept)", "yellow")
    length = header(headers, "content-length")
    if length is not None and length.strip().isdigit() and body.sent < int(length):
        short = f"{body.sent:,} of content-length {int(length):,}"
        out.append(f"  (incomplete: {short})" if ended else f"  ({short} so far)", "yellow")
    out.append("\n")
    save = "B" if request else "b"
    # A hex dump stops within MAX_LINES (a content-encoding's note may come first),
    # its last line saying how many bytes it left out.
    lines = render_body(raw, header(headers, "content-type"),
                        header(headers, "content-encoding"), header(headers, "grpc-encoding"),
                        grpc_path=header(request_headers, ":path"), request=request,
                        hex_limit=(MAX_LINES - 2) * 16, more=f" ({save} saves the whole body)")
    for line in lines[:MAX_LINES]:
        out.append("  " + line + "\n")
    if len(lines) > MAX_LINES:
        # (not a count of lines: the rendering itself stops early on a large body)
        out.append(f"  … the body goes on past the {MAX_LINES:,} lines shown here: save it "
                   f"with {save} to read all {len(raw):,} bytes\n", "yellow")


def _more(out: Text, total: int, how: str) -> None:
    """Say what the view left out past :data:`MAX_LINES`, and how to see it."""
    if total > MAX_LINES:
        out.append(f"  … {total - MAX_LINES:,} more lines of the {how}\n", "yellow")


def find_matches(text: str, term: str) -> list[int]:
    """Where ``term`` starts in ``text``, any case, in order, not overlapping."""
    if not term:
        return []
    return [m.start() for m in re.finditer(re.escape(term), text, re.IGNORECASE)]


MARKED = 400
"""Matches of a search marked at once, around the current one."""


class LineIndex:
    """Where each line of a text starts once wrapped to a width: the line a
    character offset is on, by bisection (a search's ``n`` split and wrapped the
    whole body at each press: seconds on a long one)."""

    def __init__(self, text: Text, width: int, console: Console) -> None:
        self.width = max(1, width)
        self.starts: list[int] = []
        """Each logical line's first character offset."""
        self.ys: list[int] = []
        """The wrapped line each logical line begins on."""
        self._lines = text.plain.split("\n")
        self._console = console
        y = start = 0
        for line in self._lines:
            self.starts.append(start)
            self.ys.append(y)
            y += self._wrapped(line) if cell_len(line) > self.width else 1
            start += len(line) + 1

    def _wrapped(self, line: str) -> int:
        return len(Text(line).wrap(self._console, self.width))

    def line_of(self, offset: int) -> int:
        i = max(0, bisect.bisect_right(self.starts, offset) - 1)
        line = self._lines[i]
        col = offset - self.starts[i]
        if cell_len(line) <= self.width:
            return self.ys[i]
        y = self.ys[i]
        for piece in Text(line).wrap(self._console, self.width):
            col -= len(piece.plain)
            if col < 0:
                return y
            y += 1
        return max(self.ys[i], y - 1)


class StreamScreen(ModalScreen[None]):
    matches: list[int]
    """Where the search's ``term`` starts in :attr:`text` (character offsets), in order."""
    _lines: LineIndex | None
    """Where :attr:`text`'s lines fall at the view's width (made on a search)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "dismiss", "Back"),
        Binding("slash", "search", "Search"),
        Binding("n", "search_next(1)", "Next match", show=False),
        Binding("N", "search_next(-1)", "Previous match", show=False),
        Binding("c", "copy_curl", "Copy as curl"),
        Binding("b", "save_body", "Save response body"),
        Binding("B", "save_body(0)", "Save request body"),
        Binding("home", "jump(0)", "Top", show=False),
        Binding("end", "jump(1)", "Bottom", show=False),
    ]

    def action_jump(self, end: int) -> None:
        """Home/End at once (the scroll view animates them: a second on a long body)."""
        view = self.query_one("#stream-view", VerticalScroll)
        if end:
            view.scroll_end(animate=False)
        else:
            view.scroll_home(animate=False)

    def action_search(self) -> None:
        box = self.query_one("#stream-search", Input)
        self.query_one("#save-path", Input).add_class("hidden")
        box.border_title = "search the stream's text: (Enter searches, Esc cancels)"
        self._note("")
        box.remove_class("hidden")
        box.focus()

    def _search(self, term: str) -> None:
        """Mark every match of ``term`` (any case) and go to the first one after the
        top of the view."""
        self.term = term
        # (found in the text itself, any case: in a lowercased copy an 'İ' becomes two
        # characters, and every mark after it fell one character to the right)
        self.matches = find_matches(self.text.plain, term)
        view = self.query_one("#stream-view", VerticalScroll)
        top = view.scroll_y
        self.current = 0
        for n, offset in enumerate(self.matches):
            if self._line_of(offset) >= top:
                self.current = n
                break
        self._show_match()

    def action_search_next(self, step: int) -> None:
        if not self.term:
            self._note("press / to search the stream's text; n and N then go from match "
                       "to match")
            return
        if self.matches:
            self.current = (self.current + step) % len(self.matches)
        self._show_match()

    def _line_of(self, offset: int) -> int:
        body = self.query_one("#stream-body", Static)
        width = max(1, body.content_region.width or self.size.width)
        if self._lines is None or self._lines.width != width:
            self._lines = LineIndex(self.text, width, self.app.console)
        return self._lines.line_of(offset)

    def _show_match(self) -> None:
        body = self.query_one("#stream-body", Static)
        if not self.matches:
            body.update(self.text)
            cut = " (the lines shown: a long body is cut, b or B saves it whole)" \
                if any(said in self.text.plain[-400:]
                       for said in ("lines shown here", "more lines of the")) else ""
            self._note(f"no match for {self.term!r} in the stream's text{cut}"
                       if self.term else "")
            return
        marked = self.text.copy()
        size = len(self.term)
        # The matches around the current one are marked (a one-character term in a
        # hex dump has 20,000: marking them all took seconds at each n).
        low = max(0, self.current - MARKED // 2)
        for n in range(low, min(len(self.matches), low + MARKED)):
            offset = self.matches[n]
            marked.stylize("bold reverse" if n == self.current else "reverse",
                           offset, offset + size)
        # (styles only: the text and its wrapping are the same, so its layout too —
        # laying a long body out again took a second a press)
        body.update(marked, layout=False)
        y = self._line_of(self.matches[self.current])
        view = self.query_one("#stream-view", VerticalScroll)
        view.scroll_to(y=max(0, y - 2), animate=False)
        self._note(f"match {self.current + 1:,} of {len(self.matches):,} for {self.term!r} "
                   "(n next, N previous, / another search)")

    def _note(self, text: str) -> None:
        self.query_one("#stream-note", Static).update(Text(text))

    def __init__(self, session: Session, conn: ConnInfo, stream: StreamInfo) -> None:
        super().__init__()
        self.session = session
        self.conn = conn
        self.stream = stream
        self.curl = ""
        self._save_direction = 1
        self.text = safe(stream_text(session, conn, stream))
        """The stream's text as drawn, without the search's marks."""
        self.term = ""
        self.matches = []
        self.current = 0
        self._lines = None

    def compose(self) -> ComposeResult:
        with JumpScroll(id="stream-view"):
            yield Static(self.text, id="stream-body", markup=False)
        yield Input(placeholder="save to file…", id="save-path", classes="hidden")
        yield Input(placeholder="search the stream's text…", id="stream-search",
                    classes="hidden")
        yield Static("", id="stream-note")
        yield Footer()

    def show(self, conn: ConnInfo, stream: StreamInfo) -> None:
        """Show ``stream``. The screen is kept between showings (installed), so
        closing it does not tear its widgets down: with live traffic, that
        teardown was most of what closing the view cost."""
        self.conn = conn
        self.stream = stream
        self.curl = ""
        self._save_direction = 1
        self.text = safe(stream_text(self.session, conn, stream))
        self.term, self.matches, self.current = "", [], 0
        self.query_one("#stream-body", Static).update(self.text)
        self.query_one("#stream-note", Static).update("")
        self.query_one("#save-path", Input).add_class("hidden")
        self.query_one("#stream-search", Input).add_class("hidden")
        self.query_one("#stream-view", VerticalScroll).scroll_home(animate=False)

    def action_copy_curl(self) -> None:
        req = reassemble(self.session, self.stream, 0)
        self.curl = curl_command(self.conn, self.stream, req.raw)
        self.app.copy_to_clipboard(self.curl)
        self.query_one("#stream-note", Static).update(Text(f"copied: {self.curl}"))

    def _open_save_box(self, direction: int) -> None:
        self._save_direction = direction
        box = self.query_one("#save-path", Input)
        path = self.stream.request_headers and dict(self.stream.request_headers).get(":path")
        name = Path((path or "/body").split("?")[0]).name or "body"
        box.value = f"{name}.stream{self.stream.stream_id}.{'resp' if direction else 'req'}"
        box.border_title = (f"save the {'response' if direction else 'request'} body to: "
                            "(Enter saves, Esc cancels)")
        self.query_one("#stream-search", Input).add_class("hidden")
        self._note("")  # (a search's "match 1 of 2" is not about the box)
        box.remove_class("hidden")
        box.focus()

    async def action_dismiss(self, result: None = None) -> None:
        """Escape closes the save or search box first, the view only when no box is
        open."""
        for box in self.query(Input):
            if not box.has_class("hidden"):
                box.add_class("hidden")
                self._note("")
                self.query_one("#stream-view", VerticalScroll).focus()
                return
        await super().action_dismiss(result)

    def action_save_body(self, direction: int = 1) -> None:
        body = reassemble(self.session, self.stream, direction).raw
        if not body:
            what = "response" if direction else "request"
            self.query_one("#stream-note", Static).update(
                Text(f"stream {self.stream.stream_id} has no {what} body to save"))
            return
        self._open_save_box(direction)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "stream-search":
            event.input.add_class("hidden")
            self.query_one("#stream-view", VerticalScroll).focus()
            self._search(event.value)
            return
        body = reassemble(self.session, self.stream, self._save_direction).raw
        path = Path(event.value).expanduser()
        note = self.query_one("#stream-note", Static)
        replaced = replaced_note(path)
        headers = self.stream.response_headers if self._save_direction \
            else self.stream.request_headers
        encoding = header(headers, "content-encoding")
        try:
            with open_private(path, binary=True) as out:  # bodies carry tokens too
                out.write(body)
        except OSError as exc:
            note.update(Text(f"cannot save: {exc.strerror or exc}", "bold red"))
        else:
            how = f" (as received: still {encoding}-encoded)" if encoding else ""
            note.update(Text(f"saved {len(body):,} bytes{how} to {path.absolute()}{replaced}"))
        event.input.add_class("hidden")
        self.query_one("#stream-view", VerticalScroll).focus()
