"""Text and JSON Lines exports: one line per frame.

:func:`frame_line` is the headless log format (``h2scope run --headless``):
seconds since the first event, connection, arrow, stream, type, flags, length
and the decoded gist (:func:`proxy.observe.describe.frame_summary`), so a live
log and an exported one read the same and diff cleanly.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from proxy.capture.format import HTTP1_HEAD_LENGTH, RecordType
from proxy.capture.http1_split import Http1Splitter, Message
from proxy.capture.reader import Record
from proxy.capture.replay import Replayed
from proxy.events import (
    ConnectionClosed,
    ConnectionEvent,
    ConnectionOpened,
    H2cUpgraded,
    Http1MessageObserved,
    Leg,
    ProxyErrorRaised,
    RelayStarted,
    TargetChosen,
    TlsEstablished,
    tls_leg_meta,
)
from proxy.filter import Filter
from proxy.filter_context import FrameMatcher, StreamHeaders, meta_host
from proxy.grpc_log import GrpcTracker
from proxy.net.clienthello import hello_summary
from proxy.net.streams import hostport
from proxy.observe.describe import shown
from proxy.observe.enums import Direction
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FrameObserved,
)
from proxy.observe.findings import Severity
from proxy.observe.jsonview import event_dict, frame_dict, json_line
from proxy.protoset import Protoset
from proxy.textlog import (
    AFTER_ITS_FRAME,
    HEADER_INDENT,
    CausedShown,
    HeldLines,
    RepeatedFindings,
    RequestLabels,
    closed_text,
    event_lines,
    frame_line,
    in_log_order,
    message_field_lines,
    prefix,
    set_time_format,
    tls_leg_text,
    upgrade_text,
)
from proxy.websocket import (
    UpgradedWebSockets,
    WsMessage,
    WsTracker,
    message_dict,
    said,
    websocket_object,
)

__all__ = ["event_lines", "frame_line", "jsonl_dict", "prefix", "write_text"]

_IMPORTED = frozenset({"pcap", "netlog"})
"""Connection modes of imports (``h2scope import``): read, not relayed."""


def _selected(item: Replayed, conn: int | None) -> bool:
    return conn is None or item.record.conn_id == conn


def _stream_ok(ev: Event, stream: int | None) -> bool:
    if stream is None:
        return True
    if isinstance(ev, FrameObserved):
        return ev.frame.stream_id == stream or ev.block_stream_id == stream
    if isinstance(ev, (ConnectionFindingRaised, Desynced)):  # (about a stream: its own)
        return ev.finding.stream_id == stream
    return getattr(ev, "stream_id", None) == stream


def _record_line(item: Replayed, rel: float, trailers: tuple[tuple[str, str], ...] = (),
                 *, fields: bool = True) -> str | None:
    """The log lines of a record that is not a frame (control characters from a peer
    written ``\\xNN``, as live); an HTTP1 record's message has ``trailers``, and
    its fields are listed under it with ``fields`` (as a HEADERS frame's are)."""
    text = _record_text(item, rel, trailers, fields)
    return None if text is None else "\n".join(shown(line) for line in text.split("\n"))


def _record_text(item: Replayed, rel: float, trailers: tuple[tuple[str, str], ...] = (),
                 listed: bool = True) -> str | None:
    rec = item.record
    head = prefix(rec.conn_id, rel, "*")
    if rec.type == RecordType.CONNECTION:
        meta = rec.json()
        client = meta.get("client") or {}
        server = meta.get("server") or {}

        def at(wall: object) -> str:
            """The line prefix at wall-clock time ``wall`` (when the metadata says when
            it happened: the record is written once the relay starts)."""
            if not isinstance(wall, (int, float)) or not rec.wall or wall > rec.wall:
                return head
            return prefix(rec.conn_id, max(0.0, rel - (rec.wall - wall)), "*")

        # (a connection that failed before relaying has no server or protocol yet)
        host = server.get("host") or server.get("ip")
        where = f" to {hostport(str(host), server.get('port', '?'))}" if host else ""
        protocol = meta.get("protocol")
        lines = [f"{at(meta.get('opened'))} opened from "
                 f"{hostport(str(client.get('ip', '?')), client.get('port', '?'))} "
                 f"({meta.get('mode', '?')}){where}"
                 f"{' ' + protocol if protocol else ''}"]
        for leg in ("server", "client"):  # (the live order: upstream first)
            tls = meta.get(f"{leg}_tls")
            if isinstance(tls, dict) and tls.get("version"):
                hello = tls.get("client_hello")
                seen = f" hello: {hello_summary(hello)}" if isinstance(hello, dict) else ""
                lines.append(f"{at(tls.get('at'))} {_tls_line(leg, tls, meta)}{seen}")
        if meta.get("target") and protocol:
            # (a packet capture or a net log: h2scope read this connection, it did
            # not relay it)
            verb = "read" if meta.get("mode") in _IMPORTED else "relaying"
            lines.append(f"{head} {verb} {protocol} to {meta['target']}")
        return "\n".join(lines)
    if rec.type == RecordType.CLOSE:
        info = rec.json()
        def when(e: dict[str, Any]) -> str:
            """The line prefix at the error's own time (captures before it was kept:
            the close's)."""
            wall = e.get("at")
            if not isinstance(wall, (int, float)) or wall > rec.wall:
                return head
            return prefix(rec.conn_id, max(0.0, rel - (rec.wall - wall)), "*")

        errors = [f"{when(e)} ! {e.get('stage')}: {e.get('message')}"
                  + (f" — hint: {e['hint']}" if e.get("hint") else "")
                  for e in info.get("errors") or () if isinstance(e, dict)]
        closed = closed_text(info.get("closed_by"), info.get("reason"), info.get("error"),
                             int(info.get("bytes_c2s") or 0), int(info.get("bytes_s2c") or 0))
        return "\n".join([*errors, f"{head} {closed}"])
    if rec.type == RecordType.HTTP1:
        first, head_fields = rec.http1_head()
        _, body = rec.http1()
        kept = f"  (body {len(body)} B)" if body else ""  # the proxy keeps bodies as RAW bytes
        # (the flag marks a message cut short, as the live line's INCOMPLETE does)
        cut = " INCOMPLETE" if rec.truncated else ""
        # (its fields as the live log lists them; the lines are shown() already)
        line = f"{prefix(rec.conn_id, rel, rec.direction.arrow)} {first}{kept}{cut}"
        if not listed:
            return line
        return "\n".join([line, *message_field_lines(tuple(head_fields), trailers)])
    if rec.type == RecordType.H2C_UPGRADE:
        info = rec.json()
        fields = dict(f for f in info.get("request_headers") or () if len(f) == 2)
        try:
            settings = bytes.fromhex(info.get("http2_settings") or "")
        except ValueError:
            settings = b""
        return f"{head} {upgrade_text(fields, settings)}"
    if rec.type == RecordType.LOST:
        info = rec.json()
        count = info.get("count")  # (0: how much is not known, e.g. the rest of a stream)
        amount = f" {count} {info.get('unit') or 'records'}" if count else ""
        return f"{head} ! LOST{amount}: {info.get('reason')}"
    return None


def _tls_line(leg: str, tls: dict[str, Any], meta: dict[str, Any]) -> str:
    """A TLS leg as the headless log says it, from a CONNECTION record's metadata."""
    cert = tls.get("certificate") if leg == "server" else None
    own = tls.get("client_certificate")
    return tls_leg_text(
        leg, tls.get("version"), tls.get("cipher"), tls.get("alpn"),
        # (the server leg's SNI is what h2scope sent: none to an IP address, whatever
        # the client sent; captures before "sni" was kept per leg fall back to it)
        tls.get("alpn_offered") or (),
        tls["sni"] if "sni" in tls else meta.get("sni") if leg == "client" else None,
        (str(cert.get("subject")), str(cert.get("issuer")), list(cert.get("sans") or ()),
         str(cert.get("not_after") or "?")) if isinstance(cert, dict) else None,
        (str(own.get("subject")), str(own.get("file"))) if isinstance(own, dict) else None)


_PROBLEMS = (Desynced, ConnectionFindingRaised)
"""Events a filter never hides (as in the headless log)."""


class _Kept:
    """``--filter`` over a replayed capture: each frame with its connection's host
    (from its CONNECTION record), as the headless printer matches it live."""

    def __init__(self, flt: Filter, known: Mapping[tuple[int, int], StreamHeaders] | None,
                 ) -> None:
        self.match = FrameMatcher(flt, known)
        self.hosts: dict[int, str | None] = {}
        self.caused = CausedShown()
        """What kept frames caused (in log order, after them) goes with them."""
        self.shown: set[int] = set()
        """Connections a kept frame is of."""
        self.asks_findings = asks_findings(flt.text)

    def record(self, item: Replayed) -> None:
        rec = item.record
        if rec.type == RecordType.CONNECTION:
            self.hosts[rec.conn_id] = meta_host(rec.json())

    def frame(self, conn_id: int, ev: FrameObserved) -> bool:
        ok = self.match(conn_id, self.hosts.get(conn_id), ev)
        self.caused.frame(conn_id, ev.frame.stream_id, ok)
        if ok:
            self.shown.add(conn_id)
        return ok


def _event_kept(kept: _Kept | None, conn_id: int, ev: Event) -> bool:
    """Without a filter every event; with one, the frames it keeps, what those
    frames caused (a stall, settings in force: as in the headless log), and
    desyncs and connection-level findings (never hidden; an info one only on a
    connection the filter shows frames of: :func:`filtered_problem`)."""
    if kept is None:
        return True
    if type(ev) is FrameObserved:
        return kept.frame(conn_id, ev)
    if isinstance(ev, AFTER_ITS_FRAME):
        return kept.caused.shown(conn_id, ev, kept.caused.last.get(conn_id, False))
    if type(ev) is ConnectionFindingRaised and kept.asks_findings:
        return kept.match.finding(conn_id, kept.hosts.get(conn_id), ev.finding, ev.direction)
    return filtered_problem(ev, conn_id in kept.shown)


def asks_findings(text: str) -> bool:
    """Whether a filter has a ``finding:`` term: it decides then which connection-level
    findings (on no frame) show, as it does for frames (``finding:error``,
    ``-finding:any``, ``finding:any conn:3``)."""
    from proxy.filter import term_keys

    return any(key == "finding" for key, _ in term_keys(text))


def filtered_problem(ev: Event, shown: bool) -> bool:
    """Under a filter: whether ``ev``, not a frame, is shown — a desync or a
    connection-level finding always, but an info one (a stream a closing
    connection left unfinished, as a client that hangs up does) only on a
    connection something was shown of (``shown``): ``conn:3`` had listed every other
    connection that ended so. (A filter with a ``finding:`` term decides itself:
    :func:`asks_findings`.)"""
    if type(ev) is ConnectionFindingRaised:
        return shown or ev.finding.severity >= Severity.WARNING
    return isinstance(ev, _PROBLEMS)


def write_text(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None,
               stream: int | None = None, headers: bool = True,
               keep: Filter | None = None, protoset: Protoset | None = None,
               stream_headers: Mapping[tuple[int, int], StreamHeaders] | None = None,
               annotate: bool = False, time: str = "relative") -> int:
    """Write the log; return the number of frames written. With ``keep`` (a
    compiled ``--filter``), only the frames it matches, connection lines, desyncs
    and connection-level findings; ``stream_headers``, when given, is each
    stream's whole header lists for it (see :class:`FrameMatcher`); ``time``: the
    time column (:data:`~proxy.textlog.TIME_FORMATS`)."""
    frames = 0
    set_time_format(time)
    start: float | None = None if time == "relative" else 0.0
    kept = _Kept(keep, stream_headers) if keep is not None else None
    websockets = WsTracker()
    upgrades = _Upgrades()
    grpc = GrpcTracker(protoset)
    trailers = _Trailers() if stream is None and kept is None else _NO_TRAILERS
    held = HeldLines()
    """With a filter: the connections' own lines, until something of one is written."""
    requests = RequestLabels()
    repeats = RepeatedFindings()
    for item in replayed:
        if not _selected(item, conn):
            continue
        rec = item.record
        if kept is not None:
            kept.record(item)
        trailers.record(rec)
        msgs, lost = upgrades.record(rec)
        if start is None:
            start = rec.wall
            if rec.type == RecordType.CONNECTION:  # time 0 is when it opened, as live
                opened = rec.json().get("opened")
                if isinstance(opened, (int, float)) and 0 < rec.wall - opened < 3600:
                    start = opened
        rel = rec.wall - start
        if (msgs or lost) and kept is None and stream is None:  # (not frames: as live)
            head = prefix(rec.conn_id, rel, rec.direction.arrow)
            for line in said(msgs, lost, f"{head} websocket ", f"{head}   ! "):
                out.write(shown(line) + "\n")
        # (a CLOSE record's line comes after what the close raised, as live)
        closing = rec.type == RecordType.CLOSE
        record_line = _record_line(item, rel, trailers.of(rec), fields=headers) \
            if stream is None and (kept is None or rec.type != RecordType.HTTP1) else None
        if record_line and not closing:
            for line in [record_line] if kept is None or not rec.conn_id else \
                    held.hold(rec.conn_id, [record_line]):
                out.write(line + "\n")
        for ev in in_log_order(item.events):
            extra = websockets.lines(rec.conn_id, ev, HEADER_INDENT, rec.truncated) \
                if type(ev) is FrameObserved else []
            if type(ev) is FrameObserved and ev.block is not None:
                requests.block(rec.conn_id, ev)
            if grpc is not None and type(ev) is FrameObserved:
                extra = [*extra, *grpc.lines(rec.conn_id, ev, HEADER_INDENT, rec.truncated)]
            if not _stream_ok(ev, stream) or not _event_kept(kept, rec.conn_id, ev):
                continue
            for line in event_lines(rec.conn_id, ev, rel, headers=headers,
                                    annotate=annotate, truncated=rec.truncated,
                                    requests=requests, repeats=repeats):
                if kept is not None:
                    for first in held.show(rec.conn_id):
                        out.write(first + "\n")
                out.write(line + "\n")
            if headers:
                for line in extra:
                    out.write(line + "\n")
            frames += isinstance(ev, FrameObserved)
        counted: list[str] = []
        if closing:
            requests.closed(rec.conn_id)
            counted = repeats.closed(prefix(rec.conn_id, rel, "*"), rec.conn_id)
        if record_line and closing:
            before = [] if kept is None else \
                held.close(rec.conn_id, failed=bool(rec.json().get("errors")))
            if before is not None:
                for line in (*before, *counted, record_line):
                    out.write(line + "\n")
    return frames


def jsonl_dict(conn_id: int, ev: FrameObserved, wall: float, *,
               stored_length: int | None = None,
               websockets: WsTracker | None = None,
               grpc: GrpcTracker | None = None) -> dict[str, Any]:
    """``frame_dict`` plus the capture's fields: connection, wall clock, truncation;
    with ``websockets`` (fed every frame in order), the WebSocket messages a DATA
    frame of an RFC 8441 stream completes."""
    d = {"conn": conn_id, "wall": wall, **frame_dict(ev)}
    if stored_length is not None:
        d["truncated"] = {"stored_payload_length": stored_length,
                          "note": "DATA payload cut by max_data_bytes; data_hex is zero-padded"}
    if websockets is not None and (websockets.streams or ev.block is not None):
        msgs, lost = websockets.feed(conn_id, ev, stored_length is not None)
        if msgs:
            d["websocket"] = [message_dict(m) for m in msgs]
        if lost is not None:
            d["websocket_lost"] = lost
    if grpc is not None and (grpc.streams or ev.block is not None):
        gmsgs, glost = grpc.feed(conn_id, ev, stored_length is not None)
        if gmsgs:
            d["grpc"] = [m.as_dict() for m in gmsgs]
        if glost is not None:
            d["grpc_lost"] = glost
    return d


def jsonl_event(conn_id: int, ev: Event) -> dict[str, Any] | None:
    """An event other than a frame (:func:`~proxy.observe.jsonview.event_dict`) with
    the connection and the wall clock (the event's own time: a finding raised at
    the close has the close's, live and exported alike), as the JSON Lines export
    and the live printer write it; None for events they leave out."""
    d = event_dict(ev)
    if d is None:
        return None
    return {"conn": conn_id, "wall": ev.t, **d}


CONNECTION_PROBLEMS = frozenset({"ProxyErrorRaised", "Lost"})
"""Connection objects a ``--filter`` never hides (what went wrong, as desyncs):
the rest describe the connection, not the frames it asks for."""


def jsonl_connection(conn_id: int, ev: ConnectionEvent) -> dict[str, Any] | None:
    """A live connection event as a JSON Lines object: the objects
    :func:`record_objects` makes of the capture's records, with what only the live
    relay knows (an HTTP/1.x message's sizes and duration) added."""
    d: dict[str, Any]
    match ev:
        case ConnectionOpened():
            d = {"event": "ConnectionOpened", "client": {"ip": ev.client[0],
                                                          "port": ev.client[1]},
                 "mode": ev.mode}
        case TargetChosen():
            d = {"event": "TargetChosen", "target": ev.target, "via": ev.via,
                 "intercept": ev.intercept}
        case TlsEstablished():
            leg = tls_leg_meta(ev)
            leg.pop("at", None)
            d = {"event": "TlsEstablished", "leg": "client" if ev.leg is Leg.CLIENT else "server",
                 **leg}
        case RelayStarted():
            d = {"event": "RelayStarted", "protocol": ev.protocol, "target": ev.target,
                 "server_ip": ev.server_ip}
        case H2cUpgraded():
            d = _h2c_object(ev.http2_settings.hex(), ev.request_headers)
        case Http1MessageObserved():
            d = _http1_object(ev.direction, ev.start_line, ev.headers, ev.complete)
            d.update(head_size=ev.head_size, body_size=ev.body_size, duration=ev.duration)
            if ev.trailers:
                d["trailers"] = [list(f) for f in ev.trailers]
        case ProxyErrorRaised():
            d = {"event": "ProxyErrorRaised", "stage": ev.stage, "message": ev.message,
                 "hint": ev.hint}
        case ConnectionClosed():
            d = {"event": "ConnectionClosed", "closed_by": ev.closed_by.name.lower(),
                 "reason": ev.reason, "error": ev.error, "bytes_c2s": ev.bytes_c2s,
                 "bytes_s2c": ev.bytes_s2c}
        case _:
            return None
    return {"conn": conn_id, "wall": ev.t, **d}


def _h2c_object(settings_hex: object, request_headers: Iterable[Any]) -> dict[str, Any]:
    return {"event": "H2cUpgraded", "http2_settings_hex": settings_hex,
            "request_headers": [list(f) for f in request_headers]}


def _http1_object(direction: Direction, start_line: str,
                  headers: Iterable[tuple[str, str]], complete: bool) -> dict[str, Any]:
    return {"event": "Http1MessageObserved", "direction": direction.name.lower(),
            "start_line": start_line, "headers": [list(f) for f in headers],
            "complete": complete}


class _Trailers:
    """An export's HTTP/1.x trailer fields (RFC 9112 §7.1.2), which the live log
    lists under their message: a capture keeps a message's head in its HTTP1
    record and its body, trailers included, in the RAW records before it, so an
    HTTP/1.x connection's bytes are read again (as the HAR export reads them)."""

    WAITING = 64
    """Messages read from the bytes and not yet matched, per direction, at most."""

    def __init__(self) -> None:
        self.conns: dict[int, tuple[Http1Splitter, tuple[deque[Message], deque[Message]]]] = {}

    def record(self, rec: Record) -> None:
        if rec.type == RecordType.RAW:
            conn = self.conns.get(rec.conn_id)
            if conn is not None:
                d = rec.direction
                conn[1][int(d)].extend(conn[0].feed(d, rec.body, rec.wall))
        elif rec.type == RecordType.CONNECTION:
            with contextlib.suppress(ValueError):
                if str(rec.json().get("protocol")).startswith("http/1"):
                    self.conns[rec.conn_id] = (Http1Splitter(), (
                        deque(maxlen=self.WAITING), deque(maxlen=self.WAITING)))
        elif rec.type == RecordType.CLOSE:
            self.conns.pop(rec.conn_id, None)

    def of(self, rec: Record) -> tuple[tuple[str, str], ...]:
        """The trailer fields of an HTTP1 record's message (none for other records)."""
        conn = self.conns.get(rec.conn_id) if rec.type == RecordType.HTTP1 else None
        if conn is None:
            return ()
        waiting = conn[1][int(rec.direction)]
        first = rec.body[HTTP1_HEAD_LENGTH.size:].split(b"\r\n", 1)[0]
        while waiting:  # (the message the record logs, after any the relay did not log)
            m = waiting.popleft()
            if m.head.split(b"\r\n", 1)[0] == first:
                return m.trailers
        return ()


class _NoTrailers(_Trailers):
    """Without message lines (``--stream``, ``--filter``): nothing to read."""

    def record(self, rec: Record) -> None:
        pass


_NO_TRAILERS = _NoTrailers()


class _Upgrades:
    """An export's WebSockets over HTTP/1.1 Upgrade: after a ``101`` HTTP1 record,
    the connection's RAW records are WebSocket frames (as live)."""

    def __init__(self) -> None:
        self.ws = UpgradedWebSockets()

    def record(self, rec: Record) -> tuple[list[WsMessage], str | None]:
        """The messages this record (of its direction) completes, and why its
        direction stopped being read if it just did."""
        if rec.type == RecordType.HTTP1:
            if rec.direction is Direction.S2C:
                with contextlib.suppress(ValueError, IndexError):
                    self.ws.upgraded(rec.conn_id, *rec.http1_head())
        elif rec.type == RecordType.CLOSE:
            self.ws.closed(rec.conn_id)
        elif rec.type == RecordType.RAW and rec.conn_id in self.ws.conns:
            return self.ws.feed(rec.conn_id, int(rec.direction), rec.body, rec.wall)
        return [], None


def record_objects(rec: Record) -> list[dict[str, Any]]:
    """The JSON Lines objects of a capture record that is not a frame: what the
    live printer writes for the connection events the record keeps (a CONNECTION
    record: opened, target, TLS on each leg, relay; a CLOSE record: the errors and
    the close), and ``Lost`` for a LOST record. Each ``wall`` is when it happened
    when the record says so."""
    cid = rec.conn_id
    head = {"conn": cid, "wall": rec.wall}

    def at(wall: object) -> dict[str, Any]:
        ok = isinstance(wall, (int, float)) and (not rec.wall or wall <= rec.wall)
        return {"conn": cid, "wall": wall} if ok else head

    try:
        if rec.type == RecordType.HTTP1:
            first, fields = rec.http1_head()
            return [{**head, **_http1_object(rec.direction, first, fields,
                                             not rec.truncated)}]
        meta = rec.json() if rec.type in _JSON_RECORDS else None
    except ValueError:
        return []  # (the reader reports a record it cannot parse)
    if meta is None:
        return []
    if rec.type == RecordType.CONNECTION:
        client = meta.get("client") or {}
        out = [{**at(meta.get("opened")), "event": "ConnectionOpened",
                "client": {"ip": client.get("ip"), "port": client.get("port")},
                "mode": meta.get("mode")}]
        if meta.get("via"):
            out.append({**at(meta.get("target_at", meta.get("opened"))), "event": "TargetChosen",
                        "target": meta.get("target"), "via": meta.get("via"),
                        "intercept": meta.get("intercept", True)})
        for leg in ("server", "client"):  # (the live order: upstream first)
            tls = meta.get(f"{leg}_tls")
            if isinstance(tls, dict) and tls.get("version"):
                out.append({**at(tls.get("at")), "event": "TlsEstablished", "leg": leg,
                            **{k: v for k, v in tls.items() if k != "at"}})
        if meta.get("protocol"):
            server = meta.get("server") or {}
            out.append({**head, "event": "RelayStarted", "protocol": meta["protocol"],
                        "target": meta.get("target"), "server_ip": server.get("ip")})
        return out
    if rec.type == RecordType.H2C_UPGRADE:
        return [{**head, **_h2c_object(meta.get("http2_settings"),
                                       meta.get("request_headers") or ())}]
    if rec.type == RecordType.CLOSE:
        errors = [{**at(e.get("at")), "event": "ProxyErrorRaised", "stage": e.get("stage"),
                   "message": e.get("message"), "hint": e.get("hint")}
                  for e in meta.get("errors") or () if isinstance(e, dict)]
        return [*errors, {**head, "event": "ConnectionClosed", "closed_by": meta.get("closed_by"),
                          "reason": meta.get("reason"), "error": meta.get("error"),
                          "bytes_c2s": int(meta.get("bytes_c2s") or 0),
                          "bytes_s2c": int(meta.get("bytes_s2c") or 0)}]
    if rec.type == RecordType.LOST:
        return [{**head, "event": "Lost", "count": meta.get("count"),
                 "unit": meta.get("unit") or "records", "reason": meta.get("reason")}]
    return []


_JSON_RECORDS = frozenset({RecordType.CONNECTION, RecordType.H2C_UPGRADE, RecordType.CLOSE,
                           RecordType.LOST})


def write_jsonl(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None,
                stream: int | None = None, keep: Filter | None = None,
                protoset: Protoset | None = None,
                stream_headers: Mapping[tuple[int, int], StreamHeaders] | None = None) -> int:
    """One JSON object per frame (that ``keep`` matches, with ``stream_headers`` as in
    :func:`write_text`), one per event a log shows (:func:`jsonl_event`) and one per
    connection event a record keeps (:func:`record_objects`); with ``keep``, only
    connection-level findings, desyncs, proxy errors and losses;
    with ``stream``, no connection objects. Return the number of frames written."""
    n = 0
    kept = _Kept(keep, stream_headers) if keep is not None else None
    websockets = WsTracker()
    upgrades = _Upgrades()
    grpc = GrpcTracker(protoset)
    for item in replayed:
        if not _selected(item, conn):
            continue
        rec = item.record
        if kept is not None:
            kept.record(item)
        if kept is None and stream is None:
            for msg in upgrades.record(rec)[0]:
                out.write(json_line(websocket_object(rec.conn_id, int(rec.direction), rec.wall,
                                                     msg)) + "\n")
        else:
            upgrades.record(rec)
        # (with --stream, none; but stream 1's request from an h2c upgrade)
        objs = [json_line(obj) + "\n" for obj in record_objects(rec)
                if kept is None or obj["event"] in CONNECTION_PROBLEMS] \
            if rec.type != RecordType.FRAME and (stream is None or (
                stream == 1 and rec.type == RecordType.H2C_UPGRADE)) else ()
        # (a CLOSE record's objects come after what the close raised, as live)
        closing = rec.type == RecordType.CLOSE
        if objs and not closing:
            out.writelines(objs)
        for ev in in_log_order(item.events):
            if type(ev) is not FrameObserved:
                if _stream_ok(ev, stream) and _event_kept(kept, rec.conn_id, ev):
                    obj = jsonl_event(rec.conn_id, ev)
                    if obj is not None:
                        out.write(json_line(obj) + "\n")
                continue
            stored = len(rec.body) - 9 if rec.truncated else None
            if _stream_ok(ev, stream) and (kept is None or kept.frame(rec.conn_id, ev)):
                out.write(json_line(jsonl_dict(rec.conn_id, ev, rec.wall,
                                               stored_length=stored, websockets=websockets,
                                               grpc=grpc)) + "\n")
                n += 1
            elif websockets.streams or ev.block is not None or (grpc and grpc.streams):
                websockets.feed(rec.conn_id, ev, stored is not None)  # kept in step
                if grpc is not None:
                    grpc.feed(rec.conn_id, ev, stored is not None)
        if objs and closing:
            out.writelines(objs)
    return n
