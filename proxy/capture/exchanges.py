"""Request/response exchanges rebuilt from replayed frames (for HAR and friends).

One :class:`Exchange` per stream that carried a request: its header lists,
bodies, trailers, timings (wall clock of the frames), frame counts, resets and
findings. Built purely from :class:`~proxy.capture.replay.Replayed` items, so
it works the same for any source of records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from proxy.capture.format import RecordType
from proxy.capture.reader import Record
from proxy.capture.replay import Replayed
from proxy.observe.enums import Direction, error_name
from proxy.observe.events import ConnectionFindingRaised, FrameObserved
from proxy.observe.findings import Finding
from proxy.observe.frames import DataFrame, PushPromiseFrame, RstStreamFrame
from proxy.websocket import is_websocket

Headers = tuple[tuple[str, str], ...]


def stored_data(rec: Record, frame: DataFrame) -> bytes:
    """The DATA bytes the capture actually holds (a capped payload is shorter)."""
    if not rec.truncated:
        return frame.data
    start = 9 if frame.pad_length is None else 10
    return rec.body[start:start + frame.data_length]


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
    response_end: float | None = None
    frames: dict[str, int] = field(default_factory=dict)
    resets: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    websocket: bool = False
    """An RFC 8441 WebSocket: its DATA carries WebSocket frames (kept in ws_data)."""
    ws_data: list[tuple[int, float, bytes]] = field(default_factory=list)
    """(direction, wall clock, payload) of a WebSocket stream's DATA frames."""

    @property
    def frame_count(self) -> int:
        return sum(self.frames.values())

    def header(self, name: str, response: bool = False) -> str | None:
        headers = self.response_headers if response else self.request_headers
        for n, v in headers or ():
            if n == name:
                return v
        return None


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

    def get(c: int, sid: int) -> Exchange:
        ex = by_key.get((c, sid))
        if ex is None:
            ex = by_key[(c, sid)] = Exchange(c, sid)
            out.items.append(ex)
        return ex

    for item in replayed:
        rec = item.record
        c = rec.conn_id
        if conn is not None and c != conn:
            continue
        if rec.type == RecordType.CONNECTION:
            out.connections[c] = rec.json()
            continue
        for ev in item.events:
            if isinstance(ev, ConnectionFindingRaised) and ev.finding.stream_id:
                get(c, ev.finding.stream_id).findings.append(ev.finding)
            if not isinstance(ev, FrameObserved):
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
            if c2s:
                if ex.started is None:
                    ex.started = wall
                ex.request_end = wall
            else:
                if ex.response_start is None:
                    ex.response_start = wall
                ex.response_end = wall
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
                continue
            if ev.block is None:
                continue
            headers = ev.block.headers
            if c2s:
                if ex.request_headers is None:
                    ex.request_headers = headers
                    ex.websocket = is_websocket(headers)
                else:
                    ex.request_trailers = headers
            else:
                status = next((v for n, v in headers if n == ":status"), None)
                if status is not None and status[:1] == "1":
                    ex.informational.append(headers)
                elif ex.response_headers is None:
                    ex.response_headers = headers
                else:
                    ex.response_trailers = headers
    if stream is not None:
        out.items = [ex for ex in out.items if ex.stream_id == stream]
    return out
