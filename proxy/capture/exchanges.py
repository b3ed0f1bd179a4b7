"""Request/response exchanges rebuilt from replayed frames (for HAR and friends).

One :class:`Exchange` per stream that carried a request: its header lists,
bodies, trailers, timings (wall clock of the frames), frame counts, resets and
findings. Built purely from :class:`~proxy.capture.replay.Replayed` items, so
it works the same for any source of records.

An HTTP/1.x connection's exchanges come from its RAW bytes, split into
messages again (:mod:`proxy.capture.http1_split`): its requests in order,
each paired with its final response (1xx ones before it are informational).
Their header lists start with the pseudo-header fields HTTP/2 would carry
(``:method``, ``:scheme``, ``:authority``, ``:path``; ``:status``), then the
fields as sent, names in their case.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from proxy.capture.format import RecordType
from proxy.capture.http1_split import Http1Splitter, Message
from proxy.capture.reader import Record
from proxy.capture.replay import Replayed
from proxy.net.http1 import (
    Http1Error,
    RequestHead,
    ResponseHead,
    absolute_target,
    parse_request_head,
    parse_response_head,
)
from proxy.observe.enums import Direction, error_name
from proxy.observe.events import (
    ConnectionFindingRaised,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
)
from proxy.observe.findings import Finding
from proxy.observe.frames import (
    DataFrame,
    HeadersFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
)
from proxy.websocket import is_websocket, upgrade_of

Headers = tuple[tuple[str, str], ...]


def stored_data(rec: Record, frame: DataFrame) -> bytes:
    """The DATA bytes the capture actually holds (a capped payload is shorter)."""
    if not rec.truncated:
        return frame.data
    start = 9 if frame.pad_length is None else 10
    return rec.body[start:start + frame.data_length]


_MESSAGE_FRAMES = frozenset({0, 1, 5, 9})
"""DATA, HEADERS, PUSH_PROMISE, CONTINUATION: the frames that carry a message
(RST_STREAM, WINDOW_UPDATE and PRIORITY on a stream time nothing of it)."""


@dataclass(slots=True)
class Exchange:
    conn_id: int
    stream_id: int
    request_headers: Headers | None = None
    response_headers: Headers | None = None
    informational: list[Headers] = field(default_factory=list)
    request_trailers: Headers | None = None
    response_trailers: Headers | None = None
    request_body: bytearray = field(default_factory=bytearray)
    response_body: bytearray = field(default_factory=bytearray)
    request_body_truncated: bool = False
    response_body_truncated: bool = False
    request_sent: int = 0
    response_sent: int = 0
    """The body bytes the DATA frames carried (padding excluded), kept or not."""
    pushed: bool = False
    promised_by: int | None = None
    started: float | None = None
    """Wall clock of the first frame of the request (the PUSH_PROMISE for a push)."""
    request_end: float | None = None
    response_start: float | None = None
    """Wall clock of the final response's first frame (an informational 1xx before
    it is no start of the response: HAR's wait lasts until the final one)."""
    response_end: float | None = None
    frames: dict[str, int] = field(default_factory=dict)
    resets: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    stalls: list[dict[str, Any]] = field(default_factory=list)
    """Flow-control stalls of the stream's window: ``blocked`` (the sender that
    waited), ``started`` (wall clock), ``seconds`` (None: it never resumed)."""
    reset_at: float | None = None
    """Wall clock of the first RST_STREAM on it (a cancelled call ends there)."""
    response_ended: bool = False
    """The server's END_STREAM came (the response is whole)."""
    missing: bool = False
    """Part of the connection is not in the capture while this stream was open (a
    LOST record, damaged bytes, a capture that stops short)."""
    websocket: bool = False
    """An RFC 8441 WebSocket: its DATA carries WebSocket frames (kept in ws_data)."""
    ws_data: list[tuple[int, float, bytes]] = field(default_factory=list)
    """(direction, wall clock, payload) of a WebSocket stream's DATA frames."""
    http_version: str = "h2"
    """``h2``, or an HTTP/1.x connection's version (``HTTP/1.1``)."""
    upgraded_from: str | None = None
    """Stream 1 of an h2c upgrade: the HTTP/1.x version its request went in."""
    status_text: str = ""
    """HTTP/1.x: the response's reason phrase."""
    request_weight: int | None = None
    """The RFC 7540 weight (1–256) the request's HEADERS frame carried, if it had one."""
    weight_now: int | None = None
    """The weight the client's last PRIORITY frame for the stream gave it (a browser
    raises a request that became urgent), else ``request_weight``."""
    head_sizes: list[int] = field(default_factory=lambda: [-1, -1])
    """The request's and the response's head, bytes as sent: HTTP/1.x, the start line
    and header lines; HTTP/2, the HPACK header block (-1: not seen)."""

    @property
    def frame_count(self) -> int:
        return sum(self.frames.values())

    def header(self, name: str, response: bool = False) -> str | None:
        headers = self.response_headers if response else self.request_headers
        # (HTTP/1.x names keep their case: an h2c upgrade's request is one of those)
        folded = self.http_version != "h2" or (self.upgraded_from is not None and not response)
        for n, v in headers or ():
            if n == name or (folded and n.lower() == name):
                return v
        return None

    def authority(self) -> str | None:
        """The request's authority (:func:`request_authority`)."""
        return request_authority(self.request_headers)


def request_authority(headers: Iterable[tuple[str, str]] | None) -> str | None:
    """A request's authority: its ``:authority``, else its ``host`` — RFC 9113 §8.3.1
    lets a request carry ``host`` instead, as one an edge forwards from an HTTP/1.1
    client often does; None when it has neither (or only empty ones)."""
    authority = host = None
    for n, v in headers or ():
        name = n.lower()
        if name == ":authority" and authority is None:
            authority = v or None
        elif name == "host" and host is None:
            host = v or None
    return authority or host


@dataclass(slots=True)
class Exchanges:
    """Every exchange of a capture, plus each connection's metadata."""

    items: list[Exchange] = field(default_factory=list)
    connections: dict[int, dict[str, Any]] = field(default_factory=dict)


def collect(replayed: Iterable[Replayed], *, conn: int | None = None,
            stream: int | None = None) -> Exchanges:
    """Group replayed frames into exchanges, optionally one connection or stream."""
    out = Exchanges()
    by_key: dict[tuple[int, int], Exchange] = {}
    http1: dict[int, _Http1Exchanges] = {}

    def get(c: int, sid: int) -> Exchange:
        ex = by_key.get((c, sid))
        if ex is None:
            ex = by_key[(c, sid)] = Exchange(c, sid)
            out.items.append(ex)
        return ex

    for item in replayed:
        rec = item.record
        c = rec.conn_id
        if rec.type == RecordType.LOST:  # (connection 0: damaged bytes, any connection)
            for ex in out.items:
                if c in (0, ex.conn_id) and not ex.response_ended and not ex.resets:
                    ex.missing = True
            continue
        if conn is not None and c != conn:
            continue
        if rec.type == RecordType.CONNECTION:
            meta = out.connections[c] = rec.json()
            if str(meta.get("protocol", "h2")).startswith("http/1"):
                http1[c] = _Http1Exchanges(c, meta, out)
            continue
        h1 = http1.get(c)
        if h1 is not None and rec.type == RecordType.H2C_UPGRADE:
            # RFC 7540 §3.2: the request that asked for the upgrade is stream 1, answered
            # in HTTP/2 after the 101; the connection's records are frames from here.
            del http1[c]
            first = h1.upgraded()
            if first is not None:
                by_key[(c, 1)] = first
            continue
        if h1 is not None:
            if rec.type == RecordType.RAW:
                h1.feed(rec.direction, rec.body, rec.wall)
            elif rec.type == RecordType.CLOSE:
                h1.close(rec.wall)
                del http1[c]
            continue
        for ev in item.events:
            if isinstance(ev, ConnectionFindingRaised) and ev.finding.stream_id:
                get(c, ev.finding.stream_id).findings.append(ev.finding)
            if not isinstance(ev, FrameObserved):
                if isinstance(ev, FlowControlStalled) and ev.stream_id:
                    get(c, ev.stream_id).stalls.append(
                        {"blocked": ev.direction.sender, "started": rec.wall, "seconds": None})
                elif isinstance(ev, FlowControlResumed) and ev.stream_id:
                    open_ = [st for st in get(c, ev.stream_id).stalls if st["seconds"] is None]
                    if open_:
                        open_[-1]["seconds"] = round(ev.stalled_for, 6)
                continue
            f = ev.frame
            sid = f.stream_id
            if sid == 0:
                continue
            ex = get(c, sid)
            ex.frames[f.type_name] = ex.frames.get(f.type_name, 0) + 1
            ex.findings.extend(x for x in ev.findings if x.stream_id in (None, sid))
            wall = rec.wall
            c2s = ev.direction is Direction.C2S
            if f.type in _MESSAGE_FRAMES:  # (not a reset, a window or a priority)
                if not c2s and f.flags & 0x1 and f.type in (0, 1) and not ex.resets:
                    ex.response_ended = True
                if c2s:
                    if ex.started is None:
                        ex.started = wall
                    ex.request_end = wall
                else:
                    if ex.response_start is None:
                        ex.response_start = wall
                    ex.response_end = wall
            if c2s and isinstance(f, HeadersFrame) and f.priority is not None and \
                    ex.request_headers is None and ex.request_weight is None:
                ex.request_weight = ex.weight_now = f.priority.weight
            elif c2s and isinstance(f, PriorityFrame) and ex.request_weight is not None:
                ex.weight_now = f.priority.weight
            if isinstance(f, DataFrame) and f.malformed is None:
                data = stored_data(rec, f)
                cut = ex.request_body_truncated if c2s else ex.response_body_truncated
                if ex.websocket and not (cut or rec.truncated):
                    # (what follows a payload the capture cut cannot be framed)
                    ex.ws_data.append((int(ev.direction), wall, data))
                if c2s:
                    ex.request_body += data
                    ex.request_body_truncated |= rec.truncated
                    ex.request_sent += f.data_length
                else:
                    ex.response_body += data
                    ex.response_body_truncated |= rec.truncated
                    ex.response_sent += f.data_length
            elif isinstance(f, RstStreamFrame):
                ex.resets.append({"by": ev.direction.sender, "error_code": f.error_code,
                                  "error": error_name(f.error_code)})
                if ex.reset_at is None:
                    ex.reset_at = wall
            if isinstance(f, PushPromiseFrame) or ev.block_stream_id is not None:
                promised = ev.block_stream_id if ev.block_stream_id is not None else \
                    getattr(f, "promised_stream_id", None)
                if promised is not None:
                    pushed = get(c, promised)
                    pushed.pushed = True
                    pushed.promised_by = sid
                    if pushed.started is None:
                        pushed.started = wall
                        pushed.request_end = wall
                    if ev.block is not None:
                        pushed.request_headers = ev.block.headers
                        pushed.head_sizes[0] = ev.block.wire_length
                continue
            if ev.block is None:
                continue
            headers = ev.block.headers
            if c2s:
                if ex.request_headers is None:
                    ex.request_headers = headers
                    ex.head_sizes[0] = ev.block.wire_length
                    ex.websocket = is_websocket(headers)
                else:
                    ex.request_trailers = headers
            else:
                status = next((v for n, v in headers if n == ":status"), None)
                if status is not None and status[:1] == "1":
                    ex.informational.append(headers)
                elif ex.response_headers is None:
                    ex.response_headers = headers
                    ex.head_sizes[1] = ev.block.wire_length
                    if ex.informational:  # (the response is the final one: after a 100
                        ex.response_start = wall  # Continue the body went up, then the wait)
                else:
                    ex.response_trailers = headers
    for h1 in http1.values():  # (connections the capture did not see end)
        h1.close(None)
    if stream is not None:  # (an HTTP/1.x connection has no streams)
        out.items = [ex for ex in out.items if ex.stream_id == stream and ex.http_version == "h2"]
    return out


class _Http1Exchanges:
    """An HTTP/1.x connection's exchanges, from its bytes."""

    def __init__(self, conn_id: int, meta: dict[str, Any], out: Exchanges) -> None:
        self.conn_id = conn_id
        self.scheme = "https" if meta.get("client_tls") else "http"
        self.out = out
        self.splitter = Http1Splitter(keep_bodies=True)
        self.waiting: deque[Exchange] = deque()
        self.early: list[tuple[Message, ResponseHead]] = []
        """Responses complete before their request (a 100 Continue comes before the
        body it asks for): given to the next request."""
        self.count = 0
        self.websocket: Exchange | None = None
        """The exchange whose 101 made the rest of the connection a WebSocket."""

    def feed(self, direction: Direction, data: bytes, wall: float | None) -> None:
        if self.websocket is not None:
            self.websocket.ws_data.append((int(direction), wall or 0.0, data))
            return
        for m in self.splitter.feed(direction, data, wall or 0.0):
            self._message(m)
        if self.websocket is not None:  # just upgraded: what followed the heads is frames
            for side in self.splitter.sides:
                if side.buf:
                    self.websocket.ws_data.append((int(side.direction), wall or 0.0,
                                                   bytes(side.buf)))
                    side.buf.clear()

    def close(self, wall: float | None) -> None:
        for m in self.splitter.close(wall or 0.0):
            self._message(m)

    def upgraded(self) -> Exchange | None:
        """The exchange whose 101 switched the connection to h2c, made stream 1 of
        the HTTP/2 connection: the 101 an informational response, the response to
        come in frames (None when no 101 was seen)."""
        ex = next((e for e in reversed(self.out.items) if e.conn_id == self.conn_id
                   and e.response_headers and e.response_headers[0] == (":status", "101")),
                  None)
        if ex is None or ex.response_headers is None:
            return None
        ex.informational.append(ex.response_headers)
        ex.response_headers = None
        ex.stream_id = 1
        ex.upgraded_from = ex.http_version
        ex.http_version = "h2"
        ex.status_text = ""
        ex.head_sizes[1] = -1
        ex.response_start = ex.response_end = None
        ex.response_body = bytearray()
        ex.response_body_truncated = False
        ex.response_sent = 0
        ex.response_trailers = None
        return ex

    def _message(self, m: Message) -> None:
        try:
            if m.direction is Direction.C2S:
                self._request(m, parse_request_head(m.head))
            else:
                self._response(m, parse_response_head(m.head))
        except Http1Error:
            return

    def _request(self, m: Message, head: RequestHead) -> None:
        self.count += 1
        target = head.target
        authority = head.get("host") or ""
        scheme = self.scheme
        if target.startswith(("http://", "https://")):
            with contextlib.suppress(Http1Error):
                scheme, host, port, target = absolute_target(target)
                default = 80 if scheme == "http" else 443
                authority = host if port == default else f"{host}:{port}"
        pseudo = ((":method", head.method), (":scheme", scheme), (":authority", authority),
                  (":path", target))
        ex = Exchange(self.conn_id, self.count, request_headers=pseudo + head.headers,
                      http_version=head.version or "HTTP/1.1", started=m.started,
                      request_end=m.ended, request_body=bytearray(m.body),
                      request_body_truncated=not m.complete, request_sent=len(m.body),
                      head_sizes=[len(m.head), -1], request_trailers=m.trailers or None)
        self.out.items.append(ex)
        self.waiting.append(ex)
        early, self.early = self.early, []
        for response in early:
            self._response(*response)

    def _response(self, m: Message, head: ResponseHead) -> None:
        if not self.waiting:
            self.early.append((m, head))
            return
        ex = self.waiting[0]
        headers = ((":status", str(head.status)), *head.headers)
        if 100 <= head.status < 200 and head.status != 101:
            ex.informational.append(headers)
            return
        self.waiting.popleft()
        ex.response_headers = headers
        if upgrade_of(head.start_line, head.headers)[0]:
            ex.websocket = True  # (RFC 6455: its messages go to the HAR as DevTools has them)
            self.websocket = ex
        ex.status_text = head.reason
        ex.head_sizes[1] = len(m.head)
        ex.response_start = m.started
        ex.response_end = m.ended
        ex.response_body = bytearray(m.body)
        ex.response_body_truncated = not m.complete
        ex.response_sent = len(m.body)
        ex.response_trailers = m.trailers or None
