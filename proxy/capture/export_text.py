"""Text and JSON Lines exports: one line per frame.

:func:`frame_line` is the headless log format (``h2scope run --headless``):
seconds since the first event, connection, arrow, stream, type, flags, length
and the decoded gist (:func:`proxy.observe.describe.frame_summary`), so a live
log and an exported one read the same and diff cleanly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from proxy.capture.format import RecordType
from proxy.capture.replay import Replayed
from proxy.filter import Filter
from proxy.filter_context import FrameMatcher, StreamHeaders, meta_host
from proxy.grpc_log import GrpcTracker
from proxy.net.clienthello import hello_summary
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FrameObserved,
)
from proxy.observe.jsonview import event_dict, frame_dict, json_line
from proxy.protoset import Protoset
from proxy.textlog import (
    HEADER_INDENT,
    closed_text,
    event_lines,
    frame_line,
    in_log_order,
    prefix,
    tls_leg_text,
)
from proxy.websocket import WsTracker, message_dict

__all__ = ["event_lines", "frame_line", "jsonl_dict", "prefix", "write_text"]


def _selected(item: Replayed, conn: int | None) -> bool:
    return conn is None or item.record.conn_id == conn


def _stream_ok(ev: Event, stream: int | None) -> bool:
    if stream is None:
        return True
    if isinstance(ev, FrameObserved):
        return ev.frame.stream_id == stream or ev.block_stream_id == stream
    return getattr(ev, "stream_id", None) == stream


def _record_line(item: Replayed, rel: float) -> str | None:
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
        where = f" to {host}:{server.get('port', '?')}" if host else ""
        protocol = meta.get("protocol")
        lines = [f"{at(meta.get('opened'))} opened from {client.get('ip', '?')}:"
                 f"{client.get('port', '?')} ({meta.get('mode', '?')}){where}"
                 f"{' ' + protocol if protocol else ''}"]
        for leg in ("server", "client"):  # (the live order: upstream first)
            tls = meta.get(f"{leg}_tls")
            if isinstance(tls, dict) and tls.get("version"):
                hello = tls.get("client_hello")
                seen = f" hello: {hello_summary(hello)}" if isinstance(hello, dict) else ""
                lines.append(f"{at(tls.get('at'))} {_tls_line(leg, tls, meta)}{seen}")
        if meta.get("target") and protocol:
            lines.append(f"{head} relaying {protocol} to {meta['target']}")
        return "\n".join(lines)
    if rec.type == RecordType.CLOSE:
        info = rec.json()
        errors = [f"{head} ! {e.get('stage')}: {e.get('message')}"
                  + (f" — hint: {e['hint']}" if e.get("hint") else "")
                  for e in info.get("errors") or () if isinstance(e, dict)]
        closed = closed_text(info.get("closed_by"), info.get("reason"), info.get("error"),
                             int(info.get("bytes_c2s") or 0), int(info.get("bytes_s2c") or 0))
        return "\n".join([*errors, f"{head} {closed}"])
    if rec.type == RecordType.HTTP1:
        start, body = rec.http1()
        first = start.split(b"\r\n", 1)[0].decode("latin-1")
        kept = f"  (body {len(body)} B)" if body else ""  # the proxy keeps bodies as RAW bytes
        # (the flag marks a message cut short, as the live line's INCOMPLETE does)
        cut = " INCOMPLETE" if rec.truncated else ""
        return f"{prefix(rec.conn_id, rel, rec.direction.arrow)} {first}{kept}{cut}"
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


class _Kept:
    """``--filter`` over a replayed capture: each frame with its connection's host
    (from its CONNECTION record), as the headless printer matches it live."""

    def __init__(self, flt: Filter, known: Mapping[tuple[int, int], StreamHeaders] | None,
                 ) -> None:
        self.match = FrameMatcher(flt, known)
        self.hosts: dict[int, str | None] = {}

    def record(self, item: Replayed) -> None:
        rec = item.record
        if rec.type == RecordType.CONNECTION:
            self.hosts[rec.conn_id] = meta_host(rec.json())

    def frame(self, conn_id: int, ev: FrameObserved) -> bool:
        return self.match(conn_id, self.hosts.get(conn_id), ev)


def _event_kept(kept: _Kept | None, conn_id: int, ev: Event) -> bool:
    """Without a filter every event; with one, the frames it keeps, and desyncs and
    connection-level findings (never hidden, as in the headless log)."""
    if kept is None:
        return True
    if type(ev) is FrameObserved:
        return kept.frame(conn_id, ev)
    return isinstance(ev, (Desynced, ConnectionFindingRaised))


def write_text(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None,
               stream: int | None = None, headers: bool = True,
               keep: Filter | None = None, protoset: Protoset | None = None,
               stream_headers: Mapping[tuple[int, int], StreamHeaders] | None = None) -> int:
    """Write the log; return the number of frames written. With ``keep`` (a
    compiled ``--filter``), only the frames it matches, connection lines, desyncs
    and connection-level findings; ``stream_headers``, when given, is each
    stream's whole header lists for it (see :class:`FrameMatcher`)."""
    frames = 0
    start: float | None = None
    kept = _Kept(keep, stream_headers) if keep is not None else None
    websockets = WsTracker()
    grpc = GrpcTracker(protoset) if protoset is not None else None
    for item in replayed:
        if not _selected(item, conn):
            continue
        rec = item.record
        if kept is not None:
            kept.record(item)
        if start is None:
            start = rec.wall
            if rec.type == RecordType.CONNECTION:  # time 0 is when it opened, as live
                opened = rec.json().get("opened")
                if isinstance(opened, (int, float)) and 0 < rec.wall - opened < 3600:
                    start = opened
        rel = rec.wall - start
        # (a CLOSE record's line comes after what the close raised, as live)
        closing = rec.type == RecordType.CLOSE
        record_line = _record_line(item, rel) \
            if stream is None and (kept is None or rec.type != RecordType.HTTP1) else None
        if record_line and not closing:
            out.write(record_line + "\n")
        for ev in in_log_order(item.events):
            extra = websockets.lines(rec.conn_id, ev, HEADER_INDENT, rec.truncated) \
                if type(ev) is FrameObserved else []
            if grpc is not None and type(ev) is FrameObserved:
                extra = [*extra, *grpc.lines(rec.conn_id, ev, HEADER_INDENT, rec.truncated)]
            if not _stream_ok(ev, stream) or not _event_kept(kept, rec.conn_id, ev):
                continue
            for line in event_lines(rec.conn_id, ev, rel, headers=headers,
                                    truncated=rec.truncated):
                out.write(line + "\n")
            if headers:
                for line in extra:
                    out.write(line + "\n")
            frames += isinstance(ev, FrameObserved)
        if record_line and closing:
            out.write(record_line + "\n")
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


_PROBLEMS = (Desynced, ConnectionFindingRaised)
"""Events a filter never hides (as in the headless log)."""


def jsonl_event(conn_id: int, ev: Event) -> dict[str, Any] | None:
    """An event other than a frame (:func:`~proxy.observe.jsonview.event_dict`) with
    the connection and the wall clock (the event's own time: a finding raised at
    the close has the close's, live and exported alike), as the JSON Lines export
    and the live printer write it; None for events they leave out."""
    d = event_dict(ev)
    if d is None:
        return None
    return {"conn": conn_id, "wall": ev.t, **d}


def write_jsonl(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None,
                stream: int | None = None, keep: Filter | None = None,
                protoset: Protoset | None = None,
                stream_headers: Mapping[tuple[int, int], StreamHeaders] | None = None) -> int:
    """One JSON object per frame (that ``keep`` matches, with ``stream_headers`` as in
    :func:`write_text`), and one per event a log shows (:func:`jsonl_event`; with
    ``keep``, only connection-level findings and desyncs); return the number of
    frames written."""
    n = 0
    kept = _Kept(keep, stream_headers) if keep is not None else None
    websockets = WsTracker()
    grpc = GrpcTracker(protoset) if protoset is not None else None
    for item in replayed:
        if not _selected(item, conn):
            continue
        rec = item.record
        if kept is not None:
            kept.record(item)
        for ev in in_log_order(item.events):
            if type(ev) is not FrameObserved:
                if (kept is None or isinstance(ev, _PROBLEMS)) and _stream_ok(ev, stream):
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
    return n
