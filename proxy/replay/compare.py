"""Per-stream comparison of an original capture with its replay.

:func:`outcomes` folds one connection's replayed records into a
:class:`StreamOutcome` per stream: the request line, the response status,
the 1xx informational responses before it (a 103's Early Hints), response header
names (and apart, the trailer section's names), body length and
SHA-256, and whether the stream was reset. :func:`compare` pairs the original's
streams with the replay's (client streams by the order they were opened — stream
ids may differ after re-encoding — and pushed streams by their promised request)
and lists what differs.

Header *values* are never compared — but a gRPC call's ``grpc-status`` code,
which is its outcome —, and names in :data:`VOLATILE_HEADERS`
(which come and go with time or per request) are left out of the name
comparison. A response body whose DATA was truncated when recorded
(``record.max_data_bytes``) has no SHA-256: only its length is compared. A
stream that was open where part of its connection is missing from the
capture (a LOST record, damaged bytes) is *incomplete*: its body is not
compared, nor its status if none was recorded.

``h2scope diff`` compares two recordings with the same code, and may add the
values of the response fields (:func:`value_differences`) and the requests'
fields (:func:`request_differences`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from proxy.capture.exchanges import request_authority, stored_data
from proxy.capture.format import RecordType
from proxy.capture.redact import REDACTED, redacted_url
from proxy.capture.replay import Replayed, upgrade_request
from proxy.events import CONNECTION_RESET
from proxy.observe.describe import grpc_status_text
from proxy.observe.enums import Direction, error_name
from proxy.observe.events import FrameObserved
from proxy.observe.frames import DataFrame, GoAwayFrame, PushPromiseFrame, RstStreamFrame
from proxy.observe.header_rules import HOP_BY_HOP, connection_named, connection_specific
from proxy.replay.body_diff import (
    DETAIL_KEPT,
    Body,
    body_differences,
    make_body,
    readable,
)
from proxy.replay.responses import host_of

VOLATILE_HEADERS = frozenset({
    "date", "age", "expires", "last-modified", "etag", "server-timing", "set-cookie",
    "x-request-id", "x-amzn-trace-id", "cf-ray", "x-cache", "via", "alt-svc", "report-to",
    "nel", "traceparent", "tracestate", "grpc-timeout",
    # CDNs' per-request and per-cache fields (Fastly, Cloudflare, CloudFront, RFC 9211)
    "x-served-by", "x-cache-hits", "x-timer", "x-fastly-request-id", "cf-cache-status",
    "cache-status", "x-amz-cf-id", "x-amz-cf-pop",
})
"""Header names excluded from the name comparison of responses, and from the
request comparison of ``diff --requests`` (docs/replay.md): ``grpc-timeout`` is
the time a call had left, different on every call; ``traceparent`` a new trace;
a CDN's ``x-served-by``/``x-timer``/``cf-cache-status`` name the cache node, the
time and whether it hit, which differ from one request to the next."""


def volatile_names(strict: bool, ignore: str) -> frozenset[str]:
    """The names a comparison leaves out: :data:`VOLATILE_HEADERS` (none with
    ``strict``) and the comma-separated ``ignore`` (``--strict``, ``--ignore``)."""
    return (frozenset() if strict else VOLATILE_HEADERS) | {
        n.strip().lower() for n in ignore.split(",") if n.strip()}


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOutcome:
    """What happened on one stream, as far as the comparison cares."""

    stream_id: int
    pushed: bool
    method: str | None
    authority: str | None
    path: str | None
    status: str | None
    """The final (non-1xx) response status; None when no response came."""
    header_names: tuple[str, ...]
    """The response's header section's names (pseudo-headers excluded), sorted,
    without repeats; the trailers' are :attr:`trailer_names`."""
    body_length: int
    """Response DATA bytes (padding excluded), as the frame headers state them."""
    body_sha256: str | None
    """None when part of the body was not recorded (truncated DATA)."""
    decoded_sha256: str | None = None
    """For a body with a ``content-encoding``: the SHA-256 of its decoded content
    (None when it does not decode, or is larger than :data:`DECODED_KEPT`). Two
    bodies whose bytes differ but whose content is the same (gzip writes its time
    into its header; servers pick compression levels) do not differ."""
    reset: str | None
    """``CANCEL by client`` when a RST_STREAM ended the stream, else None."""
    conn_id: int = 0
    response_headers: tuple[tuple[str, str], ...] = ()
    """The final response's header fields and its trailers, in order (pseudo-headers
    excluded): what ``h2scope diff --values`` compares."""
    incomplete: bool = False
    """The stream was open where part of its connection is missing from the capture
    (a LOST record, damaged bytes): some of its frames may be missing."""
    server_reset: str | None = None
    """The first RST_STREAM the server sent on it (``NO_ERROR by server``), if any."""
    grpc_status: str | None = None
    """A gRPC call's outcome, ``grpc-status 5 NOT_FOUND 'no such thing'`` (from its
    trailers or trailers-only response); None for other streams. Compared by code."""
    answered: bool = False
    """The server ended its response (END_STREAM) before any reset."""
    trailer_names: tuple[str, ...] = ()
    """The names of the response's trailer section (the fields after its body), sorted,
    without repeats: compared apart from ``header_names``, so a trailer that moved
    into the header section is a new header and a missing trailer, and one that
    vanished is said once, as a trailer."""
    request_headers: tuple[tuple[str, str], ...] = ()
    """The request's header fields, pseudo-headers included, in order (HTTP/1.x: names
    in lower case, after the pseudo-headers its request line and Host make); kept by
    ``outcomes(requests=True)``: what ``h2scope diff --requests`` compares."""
    request_left_out: frozenset[str] = frozenset()
    """An HTTP/1.x request's names that belong to its connection
    (:func:`connection_specific`), left out of the request comparison on both sides."""
    started: float | None = None
    """Wall clock of the stream's first recorded frame (an HTTP/1.x request's start):
    orders HTTP/2 streams and HTTP/1.x exchanges of one capture among each other."""
    closed: str | None = None
    """``connection closed by server`` when its connection ended while the stream
    still waited for the server (no END_STREAM, no reset); None otherwise, and when
    only the capture ended."""
    left_out: frozenset[str] = frozenset()
    """An HTTP/1.x response's names that belong to its connection
    (:func:`connection_specific`): left out of the comparison on both sides, so a
    field both sides carry never differs."""
    informational: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    """The 1xx responses before the final one, in order: each its status and fields
    (``103`` and its ``link`` fields: Early Hints, RFC 8297)."""
    request_body: Body | None = None
    """The request's body, kept by ``outcomes(requests=True)`` (``diff --requests``)."""
    response_body: Body | None = None
    """The response's body with its bytes (up to :data:`~proxy.replay.body_diff.
    DETAIL_KEPT`), kept by ``outcomes(bodies=True)``: ``diff`` shows what changed in it."""

    @property
    def cancelled(self) -> bool:
        """The client reset the stream (its reset came first) before the server's
        response ended: how much of the response had come by then, and whether the
        server reset it too, is timing, not the server's answer."""
        return self.reset is not None and self.reset != self.server_reset \
            and not self.answered

    @property
    def client_left(self) -> bool:
        """The client closed the connection while the response still came: as with
        a cancel, how much of it had come by then is timing."""
        return self.closed in ("connection closed by client", "connection reset by client") \
            and not self.answered

    @property
    def label(self) -> str:
        what = f"{self.method or '?'} {self.path or '?'}"
        return f"{'push ' if self.pushed else ''}stream {self.stream_id} ({what})"


@dataclass(slots=True)
class _Acc:
    stream_id: int
    pushed: bool = False
    request: tuple[tuple[str, str], ...] | None = None
    status: str | None = None
    names: set[str] = field(default_factory=set)
    trailers: set[str] = field(default_factory=set)
    length: int = 0
    sha: hashlib._Hash = field(default_factory=hashlib.sha256)
    truncated: bool = False
    reset: str | None = None
    conn_id: int = 0
    fields: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    incomplete: bool = False
    grpc: str | None = None
    server_reset: str | None = None
    answered: bool = False
    started: float | None = None
    upgraded: bool = False
    """Stream 1 of an h2c upgrade: its request went in HTTP/1.1."""
    informational: list[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    req_length: int = 0
    req_sha: hashlib._Hash = field(default_factory=hashlib.sha256)
    req_truncated: bool = False
    req_data: bytearray | None = None
    """The request body's bytes, kept (up to ``DETAIL_KEPT``) for ``diff --requests``."""
    data: bytearray | None = None
    """The response body's bytes, kept likewise with ``bodies``."""
    response: tuple[tuple[str, str], ...] = ()
    """The final response's header fields (content-type, the encodings)."""
    encoding: str | None = None
    """The response's content-encoding, when it has one."""
    coded: bytearray | None = None
    """The encoded body, kept (up to :data:`DECODED_KEPT`) to compare its content."""


def outcomes(replayed: Iterable[Replayed], conn: int | None = None, *,
             fields: bool = False, requests: bool = False,
             bodies: bool = False) -> list[StreamOutcome]:
    """Every stream of connection ``conn`` (default: all records) in opening order.

    Streams are told apart by connection and id, so with ``conn=None`` the
    streams of every connection are there, in the order they were opened.
    ``fields`` keeps each response's header fields (``response_headers``), which
    only a comparison of values needs: without it a large capture's outcomes stay
    small; ``requests`` keeps each request's (``request_headers``, ``request_body``)
    likewise, and ``bodies`` the response bodies' bytes (``response_body``)."""
    accs: dict[tuple[int, int], _Acc] = {}
    closes: dict[int, str] = {}
    goaways: dict[int, int] = {}
    """Per connection: the last-stream-id of the server's latest GOAWAY."""
    c = 0
    wall = 0.0

    def get(sid: int) -> _Acc:
        acc = accs.get((c, sid))
        if acc is None:
            acc = accs[(c, sid)] = _Acc(sid, conn_id=c, started=wall,
                                        req_data=bytearray() if requests else None,
                                        data=bytearray() if bodies else None)
        return acc

    for item in replayed:
        rec = item.record
        if rec.type == RecordType.LOST:  # (connection 0: damaged bytes, any connection)
            for acc in accs.values():
                if not acc.ended and rec.conn_id in (0, acc.conn_id):
                    acc.incomplete = True
            continue
        if conn is not None and rec.conn_id != conn:
            continue
        c, wall = rec.conn_id, rec.wall
        if rec.type == RecordType.H2C_UPGRADE:  # stream 1: the request that asked for it
            acc = get(1)
            acc.request, acc.upgraded = upgrade_request(rec.json()), True
        elif rec.type == RecordType.CLOSE:
            info = rec.json()
            if not info.get("cut"):  # (the capture ended, not the connection)
                by = info.get("closed_by")
                how = "reset" if info.get("error") == CONNECTION_RESET else "closed"
                closes[c] = f"connection {how} by {by}" if by else f"connection {how}"
        for ev in item.events:
            if not isinstance(ev, FrameObserved):
                continue
            f = ev.frame
            sid = f.stream_id
            if type(f) is GoAwayFrame and ev.direction is Direction.S2C:
                goaways[c] = f.last_stream_id
            if sid == 0 or f.malformed is not None:
                continue
            s2c = ev.direction is Direction.S2C
            if isinstance(f, PushPromiseFrame) or ev.block_stream_id is not None:
                promised = ev.block_stream_id
                if promised is not None and ev.block is not None:
                    p = get(promised)
                    p.pushed = True
                    p.request = ev.block.headers
                continue
            acc = get(sid)
            if s2c and f.flags & 0x1 and f.type in (0, 1):  # END_STREAM
                acc.ended = True
                acc.answered |= acc.reset is None
            if isinstance(f, DataFrame) and not s2c:
                acc.req_length += f.data_length
                data = stored_data(rec, f)
                acc.req_sha.update(data)
                acc.req_truncated |= rec.truncated
                acc.req_data = _kept(acc.req_data, data)
            elif isinstance(f, DataFrame) and s2c:
                acc.length += f.data_length
                data = stored_data(rec, f)
                acc.sha.update(data)
                acc.truncated |= rec.truncated
                acc.data = _kept(acc.data, data)
                if acc.coded is not None:
                    acc.coded += data
                    if len(acc.coded) > DECODED_KEPT:
                        acc.coded = None
            elif isinstance(f, RstStreamFrame):
                acc.ended = True
                said = f"{error_name(f.error_code)} by {ev.direction.sender}"
                if acc.reset is None:
                    acc.reset = said
                if s2c and acc.server_reset is None:
                    acc.server_reset = said
            elif ev.block is not None:
                if not s2c:
                    if acc.request is None:
                        acc.request = ev.block.headers
                        if not readable(acc.request):  # (its bytes would only be hashed)
                            acc.req_data = None
                    continue
                status = next((v for n, v in ev.block.headers if n == ":status"), None)
                if status is not None and status.startswith("1"):
                    acc.informational.append((status, tuple(
                        h for h in ev.block.headers if not h[0].startswith(":"))))
                    continue
                # (a block without :status after the final response's is its trailers)
                trailers = status is None and acc.status is not None
                if status is not None and acc.status is None:
                    acc.status = status
                    acc.response = ev.block.headers
                    if not readable(acc.response):
                        acc.data = None
                    encoding = next((v for n, v in ev.block.headers
                                     if n == "content-encoding"), None)
                    if encoding and encoding.strip().lower() != "identity":
                        acc.encoding, acc.coded = encoding, bytearray()
                grpc = grpc_status_text(dict(ev.block.headers))
                if grpc is not None:
                    acc.grpc = grpc
                if trailers:
                    acc.trailers.update(n for n, _ in ev.block.headers)
                else:
                    acc.names.update(n for n, _ in ev.block.headers if not n.startswith(":"))
                if fields:
                    acc.fields.extend(h for h in ev.block.headers if not h[0].startswith(":"))
    out = []
    for acc in accs.values():
        req = dict(acc.request or ())
        out.append(StreamOutcome(
            stream_id=acc.stream_id, pushed=acc.pushed, method=req.get(":method"),
            authority=request_authority(acc.request), path=req.get(":path"),
            status=acc.status,
            header_names=tuple(sorted(acc.names)), trailer_names=tuple(sorted(acc.trailers)),
            body_length=acc.length,
            body_sha256=None if acc.truncated or acc.incomplete else acc.sha.hexdigest(),
            decoded_sha256=None if acc.truncated or acc.incomplete or acc.coded is None
            else _decoded_sha256(acc.coded, acc.encoding),
            reset=acc.reset, conn_id=acc.conn_id, response_headers=tuple(acc.fields),
            request_headers=tuple(acc.request or ()) if requests else (),
            request_left_out=connection_specific(acc.request or ()) if acc.upgraded
            else frozenset(),
            incomplete=acc.incomplete, grpc_status=acc.grpc, server_reset=acc.server_reset,
            answered=acc.answered, closed=None if acc.ended else _why_closed(
                acc, closes.get(acc.conn_id), goaways.get(acc.conn_id)),
            started=acc.started, informational=tuple(acc.informational),
            request_body=make_body(
                acc.req_data, acc.req_length, None if acc.req_truncated or acc.incomplete
                else acc.req_sha.hexdigest(), acc.request) if requests else None,
            response_body=make_body(
                acc.data, acc.length, None if acc.truncated or acc.incomplete
                else acc.sha.hexdigest(), acc.response) if bodies else None))
    return out


def _kept(kept: bytearray | None, data: bytes) -> bytearray | None:
    """``kept`` with ``data`` added, or None once it is larger than ``DETAIL_KEPT``."""
    if kept is None or len(kept) + len(data) > DETAIL_KEPT:
        return None
    kept += data
    return kept


DECODED_KEPT = 16 * 1024 * 1024
"""Encoded body bytes a comparison keeps to compare decoded content (larger bodies are
compared by their bytes only)."""


def _decoded_sha256(coded: bytes | bytearray, encoding: str | None) -> str | None:
    """The SHA-256 of a body's decoded content, or None when it does not decode."""
    from proxy.content import decode_content

    decoded, note = decode_content(bytes(coded), encoding)
    return hashlib.sha256(decoded).hexdigest() if note.endswith(" decoded") else None


def _why_closed(acc: _Acc, closed: str | None, goaway: int | None) -> str | None:
    """Why a stream that did not end has no (whole) response: a server's GOAWAY that
    left it unprocessed (RFC 9113 §6.8), or how its connection ended."""
    if goaway is not None and acc.stream_id > goaway and acc.stream_id % 2 and \
            acc.status is None:
        return (f"not processed: above the server's GOAWAY last-stream-id {goaway}, safe "
                "to retry")
    return closed


def http1_outcomes(exchanges: Iterable[Any], *, requests: bool = False,
                   ) -> list[StreamOutcome]:
    """The HTTP/1.x exchanges among ``exchanges`` (:func:`proxy.capture.exchanges.collect`)
    as outcomes to compare with HTTP/2 streams' or each other's: header names lower
    case, the connection-specific ones named in ``left_out``; the body as the message
    carried it, its transfer coding undone. ``requests`` keeps each request's fields
    (``request_headers``), as :func:`outcomes` does."""
    out = []
    for ex in exchanges:
        if ex.http_version == "h2" or ex.request_headers is None:
            continue
        req = dict(ex.request_headers)
        fields = tuple((n.lower(), v) for n, v in (*(ex.response_headers or ()),
                                                    *(ex.response_trailers or ()))
                       if not n.startswith(":"))
        status = dict(ex.response_headers or ()).get(":status")
        request = tuple((n.lower(), v) for n, v in ex.request_headers) if requests else ()
        body = bytes(ex.response_body)
        whole = status is not None and not ex.response_body_truncated
        encoding = next((v for n, v in fields if n == "content-encoding"), None)
        out.append(StreamOutcome(
            stream_id=ex.stream_id, pushed=False, method=req.get(":method"),
            authority=request_authority(ex.request_headers), path=req.get(":path"),
            status=status,
            header_names=tuple(sorted({n.lower() for n, _ in ex.response_headers or ()
                                       if not n.startswith(":")})),
            body_length=len(body),
            trailer_names=tuple(sorted({n.lower() for n, _ in ex.response_trailers or ()})),
            body_sha256=hashlib.sha256(body).hexdigest() if whole else None,
            decoded_sha256=_decoded_sha256(body, encoding) if whole and encoding and
            len(body) <= DECODED_KEPT else None,
            reset=None, conn_id=ex.conn_id, response_headers=fields,
            incomplete=not whole, answered=whole, request_headers=request, started=ex.started,
            request_left_out=connection_specific(request), left_out=connection_specific(fields),
            informational=tuple(
                (dict(h).get(":status", "1xx"), tuple((n.lower(), v) for n, v in h
                                                      if not n.startswith(":")))
                for h in ex.informational),
            request_body=make_body(ex.request_body, len(ex.request_body), None
                                   if ex.request_body_truncated else
                                   hashlib.sha256(ex.request_body).hexdigest(),
                                   request) if requests else None,
            response_body=make_body(body, len(body), hashlib.sha256(body).hexdigest()
                                    if whole else None, fields)))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamDiff:
    """One original stream and its replay counterpart, with what differs."""

    original: StreamOutcome | None
    replayed: StreamOutcome | None
    differences: tuple[str, ...]

    @property
    def matches(self) -> bool:
        return not self.differences


def _pairs(original: list[StreamOutcome], replayed: list[StreamOutcome],
           ) -> list[tuple[StreamOutcome | None, StreamOutcome | None]]:
    pairs: list[tuple[StreamOutcome | None, StreamOutcome | None]] = []
    client_o = [s for s in original if not s.pushed and s.method is not None]
    client_r = [s for s in replayed if not s.pushed and s.method is not None]
    for i in range(max(len(client_o), len(client_r))):
        pairs.append((client_o[i] if i < len(client_o) else None,
                      client_r[i] if i < len(client_r) else None))
    pushes_r = [s for s in replayed if s.pushed]
    for o in (s for s in original if s.pushed):
        match = next((r for r in pushes_r if (r.authority, r.path) == (o.authority, o.path)),
                     None)
        if match is None:  # (the replay may have rewritten :authority: reencode --authority)
            match = next((r for r in pushes_r if r.path == o.path), None)
        if match is not None:
            pushes_r.remove(match)
        pairs.append((o, match))
    pairs.extend((None, r) for r in pushes_r)
    return pairs


def _body(s: StreamOutcome) -> str:
    if s.incomplete:
        return f"{s.body_length} bytes in the capture, which misses part of the stream"
    sha = s.body_sha256[:16] + "…" if s.body_sha256 else "not recorded in full"
    return f"{s.body_length} bytes, sha256 {sha}"


def diff_streams(o: StreamOutcome, r: StreamOutcome,
                 volatile: frozenset[str] = VOLATILE_HEADERS, *,
                 replayed: bool = False) -> tuple[str, ...]:
    """What differs between two outcomes of a stream. ``replayed``: ``r`` is a replay
    of ``o``, whose client frames — resets included — are the recorded ones, so only
    the server's resets are compared (which side's came first is timing)."""
    out = []
    if o.method != r.method or not _alike(":path", None if o.path is None else [o.path],
                                          None if r.path is None else [r.path]):
        out.append(f"request: {o.method} {o.path} → {r.method} {r.path}")
    # A stream the recorded client cancelled is cancelled again by the replay: what
    # had come of the response by then is timing, so it is compared as an excerpt;
    # so is one whose client closed the connection in the middle of the response.
    gap = o.incomplete or r.incomplete or (replayed and (o.cancelled or o.client_left))
    if o.status != r.status and not (gap and None in (o.status, r.status)):
        if replayed:
            out.append(f"status: {o.status or 'no response'} → {r.status or 'no response'}")
        else:
            out.append(f"status: {response_text(o)} → {response_text(r)}")
    if _grpc_code(o) != _grpc_code(r) and not (gap and None in (o.grpc_status,
                                                                 r.grpc_status)):
        out.append(f"{o.grpc_status or 'no grpc-status'} → {r.grpc_status or 'no grpc-status'}")
    volatile = volatile | o.left_out | r.left_out
    names_o = set(o.header_names) - volatile
    names_r = set(r.header_names) - volatile
    if names_o != names_r and not (gap and None in (o.status, r.status)):
        # (a side with no response yet, in an excerpt: nothing to compare names with)
        out.append(f"response header names: {_name_changes(names_o, names_r)}")
    hints_o, hints_r = _hints(o, volatile), _hints(r, volatile)
    if [(st, set(c)) for st, c in hints_o] != [(st, set(c)) for st, c in hints_r] and not (
            gap and None in (o.status, r.status)):
        out.append(f"informational: {_hints_text(hints_o)} → {_hints_text(hints_r)}")
    trailers_o = set(o.trailer_names) - volatile
    trailers_r = set(r.trailer_names) - volatile
    if trailers_o != trailers_r and not gap:  # (an excerpt ends before its trailers)
        out.append(f"response trailer names: {_name_changes(trailers_o, trailers_r)}")
    # (a side with no response at all: the status line says so, a body line is noise)
    unanswered = any(s.status is None and not s.body_length for s in (o, r))
    same_content = o.decoded_sha256 is not None and o.decoded_sha256 == r.decoded_sha256
    if not gap and not unanswered and not same_content and (
            o.body_length != r.body_length or (
                o.body_sha256 is not None and r.body_sha256 is not None
                and o.body_sha256 != r.body_sha256)):
        out.append(f"body: {_body(o)} → {_body(r)}")
    # A side the capture has only part of may have been reset after its end: its
    # "none" is no evidence (missing parts never are). Nor is a server's reset of a
    # stream the recorded client had reset first (a call cancelled at its deadline):
    # whether the server's came before it read the client's is timing.
    if replayed:
        if o.server_reset != r.server_reset and not o.cancelled and not _unknown_end(
                o, o.server_reset, r, r.server_reset):
            out.append(f"server reset: {o.server_reset or 'none'} → "
                       f"{r.server_reset or 'none'}")
    elif o.reset != r.reset and not _unknown_end(o, o.reset, r, r.reset):
        out.append(f"reset: {o.reset or _closed('none', o)} → {r.reset or _closed('none', r)}")
    return tuple(out)


UNCOMPARED_1XX = ("100", "101")
"""Informational statuses left out: whether a ``100 Continue`` comes depends on the
client's ``Expect: 100-continue`` and the server's choice (RFC 9110 §10.1.1), and
``101`` is an HTTP/1.1 upgrade's, of the connection (RFC 9113 §8.6)."""


def _hints(s: StreamOutcome, volatile: frozenset[str]) -> list[tuple[str, Counter[str]]]:
    """The compared 1xx responses (a 103's Early Hints): status and field names counted,
    volatile names left out."""
    return [(status, Counter(n for n, _ in fields if n not in volatile))
            for status, fields in s.informational if status not in UNCOMPARED_1XX]


def _hints_text(hints: list[tuple[str, Counter[str]]]) -> str:
    """``103 (2 link)``, ``103 (link, x-hint), 103``, ``none``."""
    if not hints:
        return "none"
    return ", ".join(status + (" (" + ", ".join(
        f"{n} {name}" if n > 1 else name for name, n in sorted(names.items())) + ")"
        if names else "") for status, names in hints)


def _unknown_end(o: StreamOutcome, o_reset: str | None, r: StreamOutcome,
                 r_reset: str | None) -> bool:
    """Whether a reset seen on one side only is unknowable on the other: that side is
    incomplete in its capture, its end not recorded."""
    return (o_reset is None and o.incomplete) or (r_reset is None and r.incomplete)


def response_text(s: StreamOutcome) -> str:
    """The status, or why there is none: ``no response (connection closed by server)``."""
    return s.status or _closed("no response", s)


def _closed(text: str, s: StreamOutcome) -> str:
    return f"{text} ({s.closed})" if s.closed else text


def _name_changes(a: set[str], b: set[str]) -> str:
    missing = ", ".join(sorted(a - b))
    added = ", ".join(sorted(b - a))
    return "; ".join(([f"missing {missing}"] if missing else [])
                     + ([f"new {added}"] if added else []))


def _grpc_code(s: StreamOutcome) -> str | None:
    return s.grpc_status.split()[1] if s.grpc_status else None


def compare(original: list[StreamOutcome], replayed: list[StreamOutcome],
            volatile: frozenset[str] = VOLATILE_HEADERS, *,
            values: bool = False) -> list[StreamDiff]:
    """Pair the streams and say, for each pair, what differs (``values``: the
    response fields' values too, :func:`value_differences`)."""
    result = []
    for o, r in _pairs(original, replayed):
        if o is None:
            assert r is not None
            diffs: tuple[str, ...] = (f"not in the original: {r.label}",)
        elif r is None:
            diffs = ("no such stream in the replay",)
        else:
            diffs = diff_streams(o, r, volatile, replayed=True)
            if values and not (o.incomplete or r.incomplete or o.cancelled or o.client_left):
                diffs += tuple(value_differences(o, r, volatile))
        result.append(StreamDiff(original=o, replayed=r, differences=diffs))
    return result


def report_lines(diffs: list[StreamDiff]) -> list[str]:
    """A readable summary: one line per matching stream, details for the others."""
    lines = []
    for d in diffs:
        s = d.original or d.replayed
        assert s is not None
        target = f" → replay stream {d.replayed.stream_id}" if (
            d.original is not None and d.replayed is not None
            and d.replayed.stream_id != d.original.stream_id) else ""
        if d.matches:
            status = s.status or "no response"
            grpc = ", " + " ".join(s.grpc_status.split(" ", 3)[:3]) if s.grpc_status else ""
            o = d.original
            body = f"{s.body_length} bytes before the client's reset (not compared)" \
                if o is not None and o.cancelled else \
                f"{s.body_length} bytes before the client closed the connection (not " \
                "compared)" if o is not None and o.client_left else _body(s)
            # (the server's reset was compared too: a same line says it, as it said none;
            # after the client's reset it was not)
            reset = "" if not s.server_reset else \
                f", reset {s.server_reset} (not compared)" if o is not None and o.cancelled \
                else f", reset {s.server_reset}"
            lines.append(f"  same     {s.label}{target}: {status}{grpc}, {body}{reset}")
            continue
        lines.append(f"  DIFFERS  {s.label}{target}:")
        lines.extend(f"             {text}" for text in d.differences)
    return lines


def pair_by_request(a: list[StreamOutcome], b: list[StreamOutcome], *, hosts: bool = True,
                    ) -> list[tuple[StreamOutcome | None, StreamOutcome | None]]:
    """Pair two recordings' streams by request — method, host (unless ``hosts`` is
    False) and path — the n-th of a request in one with its n-th in the other, in
    the order they were opened; what only one has is paired with None."""
    def key(s: StreamOutcome) -> tuple[str | None, str, str | None, bool]:
        # (a credential in the query — a token, a signature — does not tell requests
        # apart: a recording pairs with its redacted copy, or a later session's)
        return (s.method, host_of((s.authority or "").lower()) if hosts else "",
                redacted_url(s.path) if s.path else s.path, s.pushed)

    pending: dict[tuple[str | None, str, str | None, bool], list[StreamOutcome]] = {}
    for s in b:
        pending.setdefault(key(s), []).append(s)
    pairs: list[tuple[StreamOutcome | None, StreamOutcome | None]] = []
    for s in a:
        match = pending.get(key(s))
        pairs.append((s, match.pop(0) if match else None))
    pairs.extend((None, s) for rest in pending.values() for s in rest)
    return pairs


def value_differences(a: StreamOutcome, b: StreamOutcome,
                      volatile: frozenset[str] = VOLATILE_HEADERS) -> list[str]:
    """Response fields present in both whose values differ (volatile names excluded),
    as ``header name: a → b`` (:func:`shown_values`), ``trailer name: ...`` for a
    field both carry in their trailers only; then the fields of the compared 1xx
    responses (``informational 103 link: ...``), paired in order while their statuses
    agree."""
    skip = volatile | a.left_out | b.left_out

    def values(s: StreamOutcome) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n, v in s.response_headers:
            if n not in skip:
                out.setdefault(n, []).append(v)
        return out

    def where(n: str) -> str:
        trailer = all(n in s.trailer_names and n not in s.header_names for s in (a, b))
        return "trailer" if trailer else "header"

    va, vb = values(a), values(b)
    out = [f"{where(n)} {n}: {shown_values(va[n])} → {shown_values(vb[n])}"
           for n in sorted(va.keys() & vb.keys()) if va[n] != vb[n]]
    # The 1xx responses of the same status, in order: their fields' values (a 103's
    # link targets).
    hints_a = [h for h in a.informational if h[0] not in UNCOMPARED_1XX]
    hints_b = [h for h in b.informational if h[0] not in UNCOMPARED_1XX]
    for (status_a, fields_a), (status_b, fields_b) in zip(hints_a, hints_b, strict=False):
        if status_a != status_b:
            break
        ia: dict[str, list[str]] = {}
        ib: dict[str, list[str]] = {}
        for got, fields in ((ia, fields_a), (ib, fields_b)):
            for n, v in fields:
                if n not in skip:
                    got.setdefault(n, []).append(v)
        out += [f"informational {status_a} {n}: {shown_values(ia[n])} → {shown_values(ib[n])}"
                for n in sorted(ia.keys() & ib.keys()) if ia[n] != ib[n]]
    return out


def shown_values(values: list[str] | None) -> str:
    """A field's values as the comparison shows them: ``'v'``, or a list for a field
    repeated — never joined with commas, which would be wrong for ``set-cookie``
    (RFC 9110 §5.3) and would hide a split or merged field line; ``none``."""
    if not values:
        return "none"
    return repr(values[0]) if len(values) == 1 else repr(values)


_PSEUDO_ORDER = (":method", ":scheme", ":authority", ":path", ":protocol")


def request_differences(a: StreamOutcome, b: StreamOutcome,
                        volatile: frozenset[str] = VOLATILE_HEADERS, *,
                        protoset: Any = None) -> list[str]:
    """What differs between the requests of two legs of the same request (kept by
    ``outcomes(requests=True)``), ``a`` the leg nearer the client: each field added,
    removed or with other values, as ``request header name: a → b``
    (:func:`shown_values`; ``none`` for a field a leg does not carry), pseudo-headers
    first. Left out: ``volatile`` and each HTTP/1.x leg's connection-specific names.
    The authority is ``:authority``, else ``host`` (a ``host`` that repeats it is not
    compared again); ``cookie`` crumbs are compared as one value, since an
    intermediary may split or merge them (RFC 9113 §8.2.3). Then each field ``a``'s
    Connection header named (RFC 9110 §7.6.1: for that hop only) that ``b`` carries
    still. Then the request bodies, when both were kept
    (:func:`~proxy.replay.body_diff.body_differences`; ``protoset`` names a gRPC
    message's fields)."""
    skip = volatile | a.request_left_out | b.request_left_out
    va, vb = _request_values(a, skip), _request_values(b, skip)
    names = sorted(va.keys() | vb.keys(), key=lambda n: (
        _PSEUDO_ORDER.index(n) if n in _PSEUDO_ORDER else len(_PSEUDO_ORDER), n))
    out = [f"request header {n}: {shown_values(va.get(n))} → {shown_values(vb.get(n))}"
           for n in names if not _alike(n, va.get(n), vb.get(n))]
    # (a field b's own Connection header names is for b's hop again, not forwarded)
    carried = {n for n, _ in b.request_headers} - b.request_left_out
    out += [f"request: forwarded {n} although the client's Connection header named it"
            for n in sorted((connection_named(a.request_headers) - HOP_BY_HOP - volatile)
                            & carried)]
    if a.request_body is not None and b.request_body is not None:
        out += body_differences("request", a.request_body, b.request_body, path=a.path,
                                request=True, protoset=protoset)
    return out


def _alike(name: str, a: list[str] | None, b: list[str] | None) -> bool:
    """The same values, or one side redacted (``export --redact``: a value it replaced
    says nothing of the other's)."""
    if a == b:
        return True
    if a is None or b is None:
        return False
    if a == [REDACTED] or b == [REDACTED]:
        return True
    return name == ":path" and list(map(redacted_url, a)) == list(map(redacted_url, b))


def _request_values(s: StreamOutcome, skip: frozenset[str]) -> dict[str, list[str]]:
    authority = request_authority(s.request_headers)
    out: dict[str, list[str]] = {}
    if authority is not None:
        out[":authority"] = [authority]
    for n, v in s.request_headers:
        if n == ":authority" or (n == "host" and v == authority):
            continue
        out.setdefault(n, []).append(v)
    if "cookie" in out:  # (RFC 9113 §8.2.3: crumbs joined with "; " are the same field)
        crumbs = (c.strip() for v in out["cookie"] for c in v.split(";"))
        out["cookie"] = ["; ".join(c for c in crumbs if c)]
    return {n: v for n, v in out.items() if n not in skip}
