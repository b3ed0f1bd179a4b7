"""Recorded responses for the mock server: what each server stream sent, in order.

:func:`load_responses` re-runs the observer over a capture (architecture
principle 6) and keeps, per client stream that carried a request, the
server's frame sequence as :class:`Action` s — response HEADERS (1xx
included), DATA in its recorded chunks and padding, trailers, PUSH_PROMISE
(with the pushed stream's own actions), RST_STREAM. :class:`ResponseBook`
finds the recorded response for an incoming request by the configured fields
(method, authority, path) — a pushed response too, for a client that asks for
the resource itself — and names the closest recorded paths when none matches.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from proxy.capture.exchanges import stored_data
from proxy.capture.format import RecordType
from proxy.capture.reader import BadRecord
from proxy.capture.replay import replay, upgrade_request
from proxy.observe.describe import grpc_code_name
from proxy.observe.enums import Direction, error_name
from proxy.observe.events import FrameObserved
from proxy.observe.frames import (
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)

Headers = tuple[tuple[str, str], ...]
MATCH_FIELDS = ("method", "authority", "path")
"""The default request identity of ``serve --match``."""
MATCH_CHOICES = (*MATCH_FIELDS, "route", "body")
"""What ``--match`` may name: ``route`` is the path without its query string (a
client that adds ``?cachebust=N`` still gets the recorded response); ``body`` the
request body, byte for byte (every gRPC call of a method has one path: its message
tells the calls apart)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One thing the recorded server did on a stream."""

    kind: str
    """``headers``, ``data``, ``push`` or ``reset``."""
    headers: Headers = ()
    """headers: the block; push: the promised request."""
    data: bytes = b""
    end_stream: bool = False
    pad: int | None = None
    error_code: int = 0
    pushed: tuple[Action, ...] = ()
    """push: the pushed stream's own actions."""
    at: float = 0.0
    """When the recorded server sent it: seconds after the request had arrived
    whole (its END_STREAM; a CONNECT's HEADERS) — for a pushed stream's actions,
    after its parent's request. ``serve --speed`` waits for it."""
    seq: int = -1
    """The recorded frame's number on its connection: the order of a response's
    frames and its pushed streams' (serve keeps it across those streams)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedResponse:
    conn_id: int
    stream_id: int
    method: str
    authority: str
    path: str
    actions: tuple[Action, ...]
    truncated: bool = False
    """Some DATA was cut when recorded: the mock sends zeros in its place."""
    pushed_on: int | None = None
    """Recorded as a server push promised on this stream (``stream_id`` is the
    promised one): served to a client that asks for it itself — a client with
    push off, or one that refused the push."""
    cut: str | None = None
    """Why the recorded response has no end (no END_STREAM, no reset from the
    server): ``the client reset it (CANCEL)``, or the capture ends first."""
    server_settings: tuple[tuple[int, int], ...] | None = None
    """The recorded server's first SETTINGS on this connection, in wire order."""
    later_settings: tuple[tuple[int, int], ...] = ()
    """The values of the server's later SETTINGS frames on this connection that came
    before its first response, in wire order: a python-hyper h2 server sends its
    defaults (ENABLE_CONNECT_PROTOCOL=0) first and what it calls
    ``update_settings()`` with right after, and the values in force are both."""
    protocol: str = ""
    """The ``:protocol`` of an extended CONNECT (RFC 8441: ``websocket``)."""
    http_version: str = "h2"
    """``h2``, or ``HTTP/1.1`` for an exchange recorded on an HTTP/1.x connection
    (``stream_id`` is then its number on the connection, from 1)."""
    request_digest: bytes = b""
    """SHA-256 of the request body as recorded (``--match body``; of what the
    recording kept of it: a body cut by record.max_data_bytes matches no request)."""
    goaway_after: tuple[int, bytes] | None = None
    """(error code, debug data) of the GOAWAY with an error that the recorded server
    sent next on this connection, when this response was the last it sent before
    it (a gRPC server's too_many_pings): serve sends it after this response."""

    @property
    def status(self) -> str:
        """``200``; for a gRPC call that failed, its code too: ``200 NOT_FOUND``."""
        status, grpc = "-", None
        for a in self.actions:
            if a.kind == "headers":
                fields = dict(a.headers)
                grpc = fields.get("grpc-status", grpc)
                if status == "-" and not fields.get(":status", "1").startswith("1"):
                    status = fields[":status"]
        if grpc is not None and grpc != "0":
            status += f" {grpc_code_name(grpc) or 'grpc-status ' + grpc}"
        return status


@dataclass(slots=True)
class _Stream:
    request: Headers | None = None
    actions: list[Action] = field(default_factory=list)
    truncated: bool = False
    headers_end: bool = False
    """END_STREAM of the last HEADERS frame (its block may end in a CONTINUATION)."""
    requested: float | None = None
    """When the request's header block arrived."""
    start: float | None = None
    """When the request had arrived whole (see :attr:`Action.at`)."""
    client_reset: str | None = None
    """The error name of the client's RST_STREAM on it, if it sent one."""
    lost_at: int | None = None
    """How many of its actions came before part of its connection went missing
    from the capture (a LOST record, damaged bytes): only those are served."""
    body: Any = field(default_factory=hashlib.sha256)
    """The request body's SHA-256, as its DATA came."""

    def ended(self) -> bool:
        return any(a.end_stream or a.kind == "reset" for a in self.actions)


def load_responses(path: str | os.PathLike[str], *, conn: int | None = None,
                   on_problem: Callable[[BadRecord], None] | None = None,
                   ) -> list[RecordedResponse]:
    """Every recorded request/response of the capture (or of connection ``conn``).

    A response that was open where part of its connection is missing (a LOST
    record; damaged bytes, reported to ``on_problem`` too) keeps only what came
    before the gap, and is cut there (:attr:`RecordedResponse.cut`): served with a
    hole in its body it would be a lie, and a client would fail on it unsaid."""
    streams: dict[tuple[int, int], _Stream] = {}
    pushes: list[tuple[tuple[int, int], int, int]] = []
    """(parent key, index of the push action, promised stream id)."""
    order: list[tuple[int, int]] = []

    def get(key: tuple[int, int]) -> _Stream:
        s = streams.get(key)
        if s is None:
            s = streams[key] = _Stream()
            order.append(key)
        return s

    settings: dict[int, tuple[tuple[int, int], ...]] = {}
    later: dict[int, list[tuple[int, int]]] = {}
    answered: set[int] = set()
    """Connections whose server has sent a frame on a stream (its settings from then
    on are changes while serving, not what a client finds on connecting)."""
    goaways: dict[int, tuple[int, int, bytes]] = {}
    """Per connection, the server's first GOAWAY with an error: (seq, code, debug)."""
    closed: set[int] = set()
    http1 = False
    for item in replay(path, on_problem=on_problem):
        rec = item.record
        c = rec.conn_id
        http1 = http1 or (rec.type == RecordType.HTTP1 and conn in (None, c))
        if rec.type == RecordType.CLOSE:
            closed.add(c)
        elif rec.type == RecordType.LOST:  # (connection 0: damaged bytes, any connection)
            for (sc, _), s in streams.items():
                if s.lost_at is None and (sc == c or (c == 0 and sc not in closed)) \
                        and not s.ended():
                    s.lost_at = len(s.actions)
        if conn is not None and c != conn:
            continue
        if rec.type == RecordType.H2C_UPGRADE:  # stream 1: the request that asked for it
            s = get((c, 1))
            s.request = upgrade_request(rec.json())
            s.requested = s.start = rec.t
            continue
        for ev in item.events:
            if not isinstance(ev, FrameObserved):
                continue
            if ev.frame.stream_id == 0:
                if isinstance(ev.frame, GoAwayFrame) and ev.frame.error_code and \
                        ev.direction is Direction.S2C and c not in goaways:
                    goaways[c] = (ev.seq, ev.frame.error_code, bytes(ev.frame.debug_data))
                if isinstance(ev.frame, SettingsFrame) and not ev.frame.ack and \
                        ev.direction is Direction.S2C:
                    if c not in settings:
                        settings[c] = ev.frame.settings
                    elif c not in answered:
                        later.setdefault(c, []).extend(ev.frame.settings)
                continue
            if ev.direction is Direction.S2C:
                answered.add(c)
            f = ev.frame
            if f.malformed is not None:
                continue
            s = get((c, f.stream_id))
            if ev.direction is Direction.C2S:
                if ev.block is not None and s.request is None:
                    s.request = ev.block.headers
                    s.requested = ev.t
                    if (":method", "CONNECT") in s.request:  # the response comes first
                        s.start = ev.t
                if s.start is None and isinstance(f, (DataFrame, HeadersFrame)) \
                        and f.end_stream:
                    s.start = ev.t
                if isinstance(f, RstStreamFrame) and s.client_reset is None:
                    s.client_reset = f.error_name
                elif isinstance(f, DataFrame):
                    s.body.update(stored_data(rec, f))
                continue
            if isinstance(f, PushPromiseFrame) or ev.block_stream_id is not None:
                if ev.block is not None and ev.block_stream_id is not None:
                    get((c, ev.block_stream_id)).request = ev.block.headers
                    pushes.append(((c, f.stream_id), len(s.actions), ev.block_stream_id))
                    s.actions.append(Action(kind="push", headers=ev.block.headers, at=ev.t,
                                            seq=ev.seq))
            elif isinstance(f, DataFrame):
                data = stored_data(rec, f)
                if len(data) < f.data_length:
                    data += bytes(f.data_length - len(data))
                    s.truncated = True
                s.actions.append(Action(kind="data", data=data, end_stream=f.end_stream,
                                        pad=f.pad_length, at=ev.t, seq=ev.seq))
            elif isinstance(f, HeadersFrame) or ev.block is not None:
                if isinstance(f, HeadersFrame):
                    s.headers_end = f.end_stream  # a CONTINUATION may complete the block
                if ev.block is not None:
                    s.actions.append(Action(kind="headers", headers=ev.block.headers,
                                            end_stream=s.headers_end, at=ev.t, seq=ev.seq))
            elif isinstance(f, RstStreamFrame):
                s.actions.append(Action(kind="reset", error_code=f.error_code, at=ev.t,
                                        seq=ev.seq))
    # Times become offsets from the request's arrival (a pushed stream's: from its
    # parent's); a request that never ended counts from its HEADERS.
    for s in streams.values():
        if s.start is None:
            s.start = s.requested if s.requested is not None else \
                min((a.at for a in s.actions), default=0.0)
    for parent, _, promised in pushes:
        streams.setdefault((parent[0], promised), _Stream()).start = streams[parent].start
    for s in streams.values():
        t0 = s.start or 0.0
        s.actions = [replace(a, at=max(0.0, a.at - t0)) for a in s.actions]
    # Attach each pushed stream's actions to its PUSH_PROMISE, innermost first.
    for parent, index, promised in reversed(pushes):
        p = streams[parent]
        pushed = streams.get((parent[0], promised), _Stream())
        p.actions[index] = replace(p.actions[index], pushed=tuple(pushed.actions))
    pushed_on = {(parent[0], promised): parent[1] for parent, _, promised in pushes}
    out = []
    for key in order:
        s = streams[key]
        if s.request is None or not s.actions:
            continue
        actions = tuple(s.actions if s.lost_at is None else s.actions[:s.lost_at])
        pusher = pushed_on.get(key)
        if pusher is not None:  # its times counted from the parent's request: from its own
            t0 = actions[0].at
            actions = tuple(replace(a, at=a.at - t0) for a in actions)
        req = dict(s.request)
        ended = any(a.end_stream or a.kind == "reset" for a in actions)
        cut = None if ended else "part of it is missing from the capture (damaged or " \
            "lost records)" if s.lost_at is not None else \
            f"the client reset it ({s.client_reset})" if s.client_reset else \
            "the capture ends before it does"
        out.append(RecordedResponse(conn_id=key[0], stream_id=key[1],
                                    method=req.get(":method", ""),
                                    authority=req.get(":authority", req.get("host", "")),
                                    path=req.get(":path", ""), actions=actions,
                                    truncated=s.truncated, pushed_on=pusher, cut=cut,
                                    server_settings=settings.get(key[0]),
                                    later_settings=tuple(later.get(key[0], ())),
                                    protocol=req.get(":protocol", ""),
                                    request_digest=s.body.digest()))
    if http1:
        out += _http1_responses(path, conn)
    for c, (seq, code, debug) in goaways.items():
        before = [(max((a.seq for a in r.actions if a.seq < seq), default=-1), i)
                  for i, r in enumerate(out) if r.conn_id == c and r.pushed_on is None]
        last, i = max(before, default=(-1, -1))
        if last >= 0:
            out[i] = replace(out[i], goaway_after=(code, debug))
    return out


CONNECTION_FIELDS = frozenset({"connection", "keep-alive", "proxy-connection",
                               "transfer-encoding", "upgrade", "te", "http2-settings"})
"""RFC 9110 §7.6.1, RFC 9113 §8.2.2: fields of one HTTP/1.x hop, no response's own."""


def end_to_end(headers: Headers) -> Headers:
    """An HTTP/1.x message's fields as HTTP/2 has them: names in lower case, the
    connection's own fields (and those its ``Connection`` names) left out."""
    named = {t.strip().lower() for n, v in headers if n.lower() == "connection"
             for t in v.split(",")}
    return tuple((n.lower(), v) for n, v in headers
                 if n.lower() not in CONNECTION_FIELDS and n.lower() not in named)


def _http1_responses(path: str | os.PathLike[str], conn: int | None) -> list[RecordedResponse]:
    """The responses of the capture's HTTP/1.x exchanges (a WebSocket's 101 left out:
    serve has no way to play its frames back over HTTP/1.1)."""
    from proxy.capture.exchanges import collect

    out = []
    for ex in collect(replay(path), conn=conn).items:
        if ex.http_version == "h2" or ex.websocket or ex.request_headers is None \
                or ex.response_headers is None:
            continue
        t0 = ex.request_end or ex.started or 0.0

        def at(t: float | None, t0: float = t0) -> float:
            return max(0.0, (t or t0) - t0)

        body, trailers = bytes(ex.response_body), ex.response_trailers
        actions = [Action(kind="headers", headers=end_to_end(h), at=at(ex.response_start))
                   for h in ex.informational]
        actions.append(Action(kind="headers", headers=end_to_end(ex.response_headers),
                              end_stream=not body and not trailers and
                              not ex.response_body_truncated, at=at(ex.response_start)))
        if body:
            actions.append(Action(kind="data", data=body, at=at(ex.response_end),
                                  end_stream=not trailers and not ex.response_body_truncated))
        if trailers and not ex.response_body_truncated:
            actions.append(Action(kind="headers", headers=end_to_end(trailers),
                                  end_stream=True, at=at(ex.response_end)))
        req = dict(ex.request_headers)
        out.append(RecordedResponse(
            conn_id=ex.conn_id, stream_id=ex.stream_id, method=req.get(":method", ""),
            authority=req.get(":authority", ""), path=req.get(":path", ""),
            actions=tuple(actions), http_version=ex.http_version,
            cut="the recording has only part of its body"
            if ex.response_body_truncated else None,
            request_digest=hashlib.sha256(ex.request_body).digest()))
    return out


def goaway_text(code: int, debug: bytes) -> str:
    """A recorded GOAWAY as serve says it: ``ENHANCE_YOUR_CALM 'too_many_pings'``."""
    return error_name(code) + (f" {debug.decode('utf-8', 'replace')!r}" if debug else "")


def host_of(authority: str) -> str:
    if authority.startswith("["):
        return authority.split("]")[0] + "]"
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _route(path: str) -> str:
    return path.partition("?")[0]


class ResponseBook:
    """Finds the recorded response for a request.

    ``fields`` is a subset of :data:`MATCH_FIELDS`. The authority matches when
    equal, or when the hosts are equal (the mock listens on another port than
    the original server). Several recorded responses for the same request are
    served in recorded order, the last one again once all were used; those the
    recording has whole come before one it has only the start of.
    """

    def __init__(self, responses: Sequence[RecordedResponse],
                 fields: Sequence[str] = MATCH_FIELDS) -> None:
        unknown = set(fields) - set(MATCH_CHOICES)
        if unknown or not fields or len(set(fields)) != len(fields) \
                or {"path", "route"} <= set(fields):
            raise ValueError(f"--match takes a comma-separated subset of "
                             f"{','.join(MATCH_CHOICES)} (path or route, not both), not "
                             f"{','.join(fields) or 'nothing'}")
        self.responses = list(responses)
        self.fields = tuple(fields)
        self._used: dict[tuple[str, ...], int] = {}
        self.goaway = True
        """Send a recorded server's error GOAWAY after the response it followed
        (``serve --no-goaway``: not)."""

    def _matches(self, r: RecordedResponse, method: str, authority: str, path: str,
                 digest: bytes | None = None) -> bool:
        if "method" in self.fields and r.method != method:
            return False
        if "body" in self.fields and digest is not None and r.request_digest != digest:
            return False
        if "path" in self.fields and r.path != path:
            return False
        if "route" in self.fields and _route(r.path) != _route(path):
            return False
        return "authority" not in self.fields or r.authority == authority \
            or host_of(r.authority) == host_of(authority)

    def find(self, method: str, authority: str, path: str,
             digest: bytes | None = None, *, peek: bool = False) -> RecordedResponse | None:
        """The recorded response to this request (``digest``: its body's SHA-256, for
        ``--match body``; None: the body is not compared); a pushed response only
        when no requested one matches; a HEAD that nothing recorded matches gets
        the GET's. ``peek``: the one it would be, not counted as served (a ``100
        Continue`` is chosen before the body has come)."""
        matching = [r for r in self.responses
                    if self._matches(r, method, authority, path, digest)]
        if not matching and method == "HEAD" and "method" in self.fields:
            # (RFC 9110 §9.3.2: a HEAD is answered with the head a GET would get;
            # the caller sends it without the body)
            return self.find("GET", authority, path, digest, peek=peek)
        found = [r for r in matching if r.pushed_on is None] or matching
        # A response recorded whole before one the recording cut short (a client that
        # cancelled a download, a capture that stops in the middle).
        found = [r for r in found if r.cut is None] or found
        if not found:
            return None
        key = (method if "method" in self.fields else "",
               host_of(authority) if "authority" in self.fields else "",
               path if "path" in self.fields else
               _route(path) if "route" in self.fields else "",
               digest.hex() if "body" in self.fields and digest is not None else "")
        n = self._used.get(key, 0)
        if not peek:
            self._used[key] = n + 1
        return found[min(n, len(found) - 1)]

    def other_bodies(self, method: str, authority: str, path: str) -> int:
        """With ``--match body``: how many recorded requests match but for their
        body (a call with another message)."""
        if "body" not in self.fields:
            return 0
        return sum(1 for r in self.responses if self._matches(r, method, authority, path))

    def authorities_for(self, method: str, path: str) -> list[str]:
        """Recorded authorities of requests that match but for the authority."""
        if "authority" not in self.fields:
            return []
        rest = tuple(f for f in self.fields if f != "authority")
        probe = ResponseBook(self.responses, rest) if rest else None
        return list(dict.fromkeys(
            r.authority for r in self.responses
            if probe is None or probe._matches(r, method, "", path)))

    def closest_paths(self, path: str, n: int = 5) -> list[str]:
        paths = list(dict.fromkeys(r.path for r in self.responses))
        return difflib.get_close_matches(path, paths, n=n, cutoff=0.0)
