"""Every request of the session in a table that sorts: the slowest first.

A performance question — which resource took longest, waited longest for its
first byte, was largest — had no answer but scanning the lanes by eye. One row
per stream that carried a request (pushed responses too): connection, stream,
method and path, status (a gRPC call's grpc-status by name beside it), start,
time to the final response's HEADERS, duration to
the response's end (the server's END_STREAM, not a WINDOW_UPDATE after it),
request and response body bytes, how it ended. ``d``/``w``/``b``/``t`` sort by duration,
wait, bytes, start; Enter selects the stream's first frame in the timeline
(``s`` there opens its stream view). The times are the proxy's (docs/ui.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from ui.model.connections import ConnInfo, StreamInfo
from ui.model.session import Session
from ui.widgets.lanes import shortened
from ui.widgets.rowtable import RowTable
from ui.widgets.style import safe_str

SHOWN = 1000
"""Rows the table holds (the first ones in the chosen order): a DataTable of a
million rows would take seconds to build."""


@dataclass(frozen=True, slots=True)
class RequestRow:
    conn: int
    stream: int
    label: str
    status: str
    start: float
    """Seconds since the session's first frame."""
    wait: float | None
    """Seconds from the request sent to the final response's HEADERS (a 1xx is not
    the response), as HAR's wait."""
    duration: float
    """Seconds to the response's END_STREAM, else to the stream's last frame."""
    ended: bool
    body: int
    """Response body bytes (DATA payload; HTTP/1.x: its content-length, -1 when none)."""
    sent: int
    """Request body bytes (an upload's)."""
    reset: str | None
    first_row: int
    """The stream's first timeline row; an HTTP/1.x exchange has none: minus its
    connection's id (Enter scopes the timeline to the connection)."""


def request_rows(session: Session) -> list[RequestRow]:
    """One row per stream with a request, in the order they started."""
    out = []
    with session.lock:
        for conn in session.conns.values():
            for st in conn.streams.values():
                if not st.request_headers or not st.rows:
                    continue
                status = dict(st.response_headers or ()).get(":status", "")
                grpc = st.grpc_status  # (every gRPC call is a 200: its outcome is this)
                if grpc is not None:
                    status = f"{status} {grpc}".strip()
                h = dict(st.request_headers)
                request = f"{h.get(':method', '?')} {h.get(':authority', '')}{h.get(':path', '')}"
                end = st.response_end_t if st.response_end_t is not None else st.last_t
                out.append(RequestRow(
                    conn=conn.conn_id, stream=st.stream_id, label=request, status=status,
                    start=session.relative(st.first_t),
                    wait=_wait(st),
                    duration=end - st.first_t, ended=st.response_end_t is not None,
                    body=st.data_s2c, sent=st.data_c2s, reset=st.reset,
                    first_row=st.rows[0]))
            out.extend(_http1_rows(session, conn))
    out.sort(key=lambda r: r.start)
    return out


def _wait(st: StreamInfo) -> float | None:
    """Seconds from the request sent (its END_STREAM: an upload's last byte) to its
    response, as HAR's wait; from the stream's start while the request was still
    being sent when the response came (a bidirectional call)."""
    if st.first_response_t is None:
        return None
    sent = st.request_end_t
    if sent is None or sent > st.first_response_t:
        sent = st.first_t
    return st.first_response_t - sent


def _http1_rows(session: Session, conn: ConnInfo) -> list[RequestRow]:
    """A connection's HTTP/1.x exchanges (from its message heads: the n-th request
    with the n-th final response, 1xx aside — a request answered before its body
    ended is recorded after its response) as rows; they have no frame, so Enter
    scopes the timeline to their connection. The wait is not known (a response's
    record says when its exchange began and when it ended)."""
    requests: list[tuple[float, str, int]] = []
    responses: list[tuple[float, str, int]] = []
    for (end, direction, head), started in zip(conn.http1, conn.http1_started, strict=True):
        if head.startswith("websocket "):
            continue
        first, _, fields = head.partition("\r\n")
        length = next((v.strip() for n, _, v in (f.partition(":") for f in fields.split("\r\n"))
                       if n.strip().lower() == "content-length" and v.strip().isdigit()), "-1")
        if direction == 0:
            method, _, rest = first.partition(" ")
            requests.append((started, f"{method} {rest.rsplit(' ', 1)[0]}", max(0, int(length))))
            continue
        parts = first.split(" ", 2)
        status = parts[1] if len(parts) > 1 else ""
        if not (status.startswith("1") and status != "101"):
            responses.append((end, status, int(length)))
    rows = []
    for n, (t0, label, sent) in enumerate(requests):
        end, status, body = responses[n] if n < len(responses) else (t0, "", -1)
        rows.append(RequestRow(
            conn=conn.conn_id, stream=0, label=f"{label} (HTTP/1.x)", status=status,
            start=session.relative(t0), wait=None, duration=max(0.0, end - t0),
            ended=n < len(responses), body=body, sent=sent, reset=None,
            first_row=-conn.conn_id))
    return rows


NUMERIC = frozenset({"stream", "start s", "wait ms", "total ms", "sent bytes",
                     "received bytes"})
"""Columns right-aligned, so that digits of one magnitude line up."""


def _right(cell: str) -> Text:
    return Text(cell, justify="right")


SORTS = {
    "duration": (lambda r: -r.duration, "slowest first"),
    "wait": (lambda r: -(r.wait if r.wait is not None else float("inf")),
             "longest wait for the response first"),
    "bytes": (lambda r: -(max(0, r.body) + r.sent), "largest first (sent and received)"),
    "start": (lambda r: r.start, "in the order they started"),
}


class RequestsScreen(ModalScreen[int | None]):
    """Dismissed with the timeline row to select, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "dismiss", "Back"),
        Binding("d", "sort('duration')", "By duration"),
        Binding("w", "sort('wait')", "By wait"),
        Binding("b", "sort('bytes')", "By size"),
        Binding("t", "sort('start')", "By start"),
        Binding("g", "first_row", "First row", show=False),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.rows = request_rows(session)
        self.order = "duration"
        self.shown: list[RequestRow] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="requests-box"):
            yield Static("", id="requests-title")
            yield RowTable(id="requests-table", cursor_type="row", zebra_stripes=True)
            if not self.rows:
                yield Static("No request yet: the streams that carry one are listed here.",
                             id="requests-none")

    def on_mount(self) -> None:
        table = self.query_one("#requests-table", DataTable)
        for col in ("conn", "stream", "request", "status", "start s", "wait ms", "total ms",
                    "sent bytes", "received bytes", "ended"):
            table.add_column(Text(col, justify="right") if col in NUMERIC else col, key=col)
        self._fill()
        table.focus()

    def action_first_row(self) -> None:
        self.query_one("#requests-table", DataTable).action_scroll_top()

    def action_sort(self, order: str) -> None:
        self.order = order
        self._fill()

    def _fill(self) -> None:
        key, said = SORTS[self.order]
        self.shown = sorted(self.rows, key=key)[:SHOWN]
        n = len(self.rows)
        more = f", the first {SHOWN:,} of {n:,}" if n > SHOWN else ""
        self.query_one("#requests-title", Static).update(Text(
            f"Requests: {n:,}, {said}{more}  (d duration, w wait, b size, t start; Enter: "
            "its first frame; Esc: back; times as the frames crossed h2scope)",
            style="bold"))
        table = self.query_one("#requests-table", DataTable)
        table.clear()
        for i, r in enumerate(self.shown):
            ended = "reset " + r.reset if r.reset else "complete" if r.ended else "open"
            table.add_row(f"#{r.conn}", _right(str(r.stream)), _request(safe_str(r.label)),
                          r.status or "…", _right(f"{r.start:.3f}"),
                          _right("" if r.wait is None else f"{r.wait * 1000:,.1f}"),
                          _right(f"{r.duration * 1000:,.1f}"),
                          _right(f"{r.sent:,}" if r.sent else ""),
                          _right(f"{r.body:,}" if r.body >= 0 else "?"), ended, key=str(i))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        table = self.query_one("#requests-table", DataTable)
        if self.shown and table.cursor_row < len(self.shown):
            self.dismiss(self.shown[table.cursor_row].first_row)


REQUEST_WIDTH = 72
"""Most characters of a request's column: one long URL (a signed URL, tracking
parameters) made it as wide as itself and pushed the status, times and sizes of
every row off the screen. Enter opens the request whole."""


def _request(label: str) -> str:
    """``GET host/path?query`` in at most :data:`REQUEST_WIDTH` characters, cut as a
    lane's label is (:func:`~ui.widgets.lanes.shortened`)."""
    if len(label) <= REQUEST_WIDTH:
        return label
    method, _, target = label.partition(" ")
    return f"{method} {shortened(target, REQUEST_WIDTH - len(method) - 1)}"
