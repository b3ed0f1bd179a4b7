"""The console printer: every frame of every connection, one line each, like ``nghttp -v``.

A sink for the event bus (``h2scope run --headless``). Each line starts with
the time since the first event, the connection id and the direction arrow
(``→`` client to server, ``←`` server to client); frame lines go on with the
stream id, the frame type by its RFC name, flags, length and the decoded
summary, and a HEADERS or PUSH_PROMISE is followed by its header list.
Connection lines (opened, target, TLS on each leg, relay protocol, closed)
and findings (marked ``!``) are always shown; ``quiet`` shows only those.
With ``jsonl`` it writes one JSON object per frame, event and connection event
instead (the objects of ``h2scope export --format jsonl``, for ``jq`` and
scripts), and nothing else.

The wording comes from :mod:`proxy.observe.describe`, shared with
``h2scope decode``, the text export and the UI.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, TextIO

from proxy.capture.export_text import (
    filtered_problem,
    jsonl_connection,
    jsonl_dict,
    jsonl_event,
)
from proxy.events import (
    Batch,
    ConnectionClosed,
    ConnectionEvent,
    ConnectionInfo,
    ConnectionOpened,
    ConnectionTracker,
    H2cUpgraded,
    Http1MessageObserved,
    Leg,
    ProxyErrorRaised,
    ProxyEvent,
    RelayStarted,
    TargetChosen,
    TlsEstablished,
)
from proxy.grpc_log import GrpcTracker
from proxy.net.streams import hostport
from proxy.observe.describe import event_line, shown
from proxy.observe.enums import Direction
from proxy.observe.events import ConnectionFindingRaised, Desynced, FrameObserved
from proxy.observe.jsonview import json_line
from proxy.protoset import Protoset
from proxy.textlog import (
    AFTER_ITS_FRAME,
    AFTER_ITS_FRAME_TYPES,
    HEADER_INDENT,
    RST_STREAM,
    CausedShown,
    HeldLines,
    RepeatedFindings,
    RequestLabels,
    add_event_lines,
    byte_count,
    closed_text,
    frame_line,
    in_log_order,
    message_field_lines,
    prefix,
    set_time_format,
    tls_leg_text,
    upgrade_text,
)
from proxy.websocket import CONNECT_FIELD, UpgradedWebSockets, WsTracker, websocket_object

log = logging.getLogger("h2scope.headless")

EventFilter = Callable[[ProxyEvent, ConnectionInfo], bool]
"""A predicate over an event and what is known of its connection; False hides it."""

_ALWAYS = (ConnectionOpened, ConnectionClosed, ProxyErrorRaised)


class HeadlessPrinter:
    """Writes batches as text lines to *out*, flushing after every batch.

    The event bus hands it every batch already queued at once
    (:meth:`handle_many`): their lines go out in one write and one flush.
    """

    def __init__(self, out: TextIO, *, filter: EventFilter | None = None,
                 quiet: bool = False, annotate: bool = False, jsonl: bool = False,
                 err: TextIO | None = None, protoset: Protoset | None = None,
                 time: str = "relative") -> None:
        self.out = out
        self.err = err if err is not None else sys.stderr
        """With ``jsonl``: where what went wrong goes (proxy errors, desyncs,
        connection-level findings), as text: stdout holds only frame objects."""
        self.filter = filter
        self.quiet = quiet
        self.annotate = annotate
        """Show each header field's HPACK representation too."""
        self.jsonl = jsonl
        """One JSON object per frame instead of text: ``export --format jsonl``'s objects."""
        self.tracker = ConnectionTracker()
        self.websockets = WsTracker()
        """WebSocket-over-HTTP/2 streams, whose messages print under their DATA."""
        self.upgraded = UpgradedWebSockets()
        """WebSockets over an HTTP/1.1 Upgrade: their messages print as they complete."""
        self.grpc = GrpcTracker(protoset)
        """With a protoset: gRPC streams, whose messages print under their DATA (off
        otherwise: nothing on the printer's path to pay for)."""
        set_time_format(time)
        self.start: float | None = None if time == "relative" else 0.0
        """When the first event came (times are seconds since); 0 for a wall clock."""
        self.caused = CausedShown()
        """With a filter: which stalls, reopenings and the like to show."""
        self.requests = RequestLabels()
        """Each stream's request, named on its RST_STREAM line."""
        self.repeats = RepeatedFindings()
        """Findings a connection raises again and again: counted, not each shown."""
        self.held = HeldLines()
        self._kept_conns: set[int] = set()
        """JSON Lines under a filter: connections a frame was printed of."""
        """With a filter: the connections' own lines, until something of one is shown."""
        self._relayed: set[int] = set()
        """JSON Lines: connections whose RelayStarted was written (once, as the
        recording's metadata keeps it)."""
        self.lines = 0
        self.broken = False
        self.lost: str | None = None
        """Why the log could not be written (a full disk under stdout), if it could
        not: the run says so and exits 1. A reader that went away (``| head``) is
        no failure: ``broken`` only."""

    def handle(self, batch: Batch) -> None:
        self.handle_many((batch,))

    def handle_many(self, batches: Sequence[Batch]) -> None:
        """Write the lines of several batches, in order, with one write and flush."""
        if self.broken:
            return
        lines: list[str] = []
        for batch in batches:
            self._add(batch, lines)
        if lines:
            lines.append("")
            try:
                self.out.write("\n".join(lines))
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:
                self._failed(exc)
            self.lines += len(lines) - 1

    def finish(self) -> None:
        """At the stop: what is still queued for stdout goes out (a
        :class:`~proxy.background_output.BackgroundOutput` waits for its reader a
        bounded time, then counts the rest in :attr:`not_printed`)."""
        if self.broken:
            return
        close = getattr(self.out, "close", None) if hasattr(self.out, "dropped_lines") \
            else None
        try:
            if close is not None:
                close()
            else:
                self.out.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            self._failed(exc)

    @property
    def not_printed(self) -> int:
        """Lines dropped because stdout was not read fast enough."""
        return int(getattr(self.out, "dropped_lines", 0))

    def _failed(self, exc: Exception) -> None:
        """stdout refused the log: the proxy keeps running, and says so once, on stderr."""
        self.broken = True
        if isinstance(exc, BrokenPipeError):
            said = "stdout was closed (its reader went away)"
        else:
            self.lost = getattr(exc, "strerror", None) or str(exc)
            said = f"cannot write to stdout: {self.lost}"
        with contextlib.suppress(OSError, ValueError):
            self.err.write(f"h2scope: {said}: the frame log stops here; the proxy "
                           "goes on relaying (SIGINT or SIGTERM stops it)\n")
            self.err.flush()

    def _add(self, batch: Batch, lines: list[str]) -> None:
        if batch.protocol == "websocket" and self.upgraded.conns:
            self._websocket(batch, lines)
        if self.jsonl:
            self._add_jsonl(batch, lines)
            return
        start = self.start
        if start is None:
            start = self.start = batch.t
        conn_id = batch.conn_id
        tracker = self.tracker
        keep = self.filter
        quiet = self.quiet
        ws = self.websockets
        ws_streams = ws.streams
        grpc = self.grpc
        grpc_streams = grpc.streams
        # AFTER_ITS_FRAME events and their lines, for after their frame
        held: list[tuple[ProxyEvent, list[str]]] = []
        for ev in batch.events:
            if type(ev) is FrameObserved and keep is None and not quiet \
                    and ev.block is None and not ev.findings:
                # Most events of a transfer (DATA, WINDOW_UPDATE): one line each.
                lines.append(frame_line(conn_id, ev, ev.t - start))
                if ev.frame.type == RST_STREAM:
                    lines[-1] += self.requests.reset(conn_id, ev.frame.stream_id)
                if held:
                    for _, said in held:
                        lines.extend(said)
                    held.clear()
                if ws_streams:
                    lines.extend(ws.lines(conn_id, ev, HEADER_INDENT))
                if grpc_streams:
                    lines.extend(grpc.lines(conn_id, ev, HEADER_INDENT))
                continue
            if type(ev) is FrameObserved:
                block = ev.block
                if block is not None:
                    self.requests.block(conn_id, ev)
            else:
                block = None
            extra = ws.lines(conn_id, ev, HEADER_INDENT) if type(ev) is FrameObserved and (
                ws_streams or (block is not None and CONNECT_FIELD in block.headers)) else None
            if type(ev) is FrameObserved and (grpc_streams or (
                    block is not None and not ev.direction and grpc.is_call(block))):
                more = grpc.lines(conn_id, ev, HEADER_INDENT)
                if more:
                    extra = [*(extra or ()), *more]
            if isinstance(ev, ConnectionEvent):
                self._upgrades(conn_id, ev)
                info = tracker.update(ev) or tracker.get(conn_id)
                if keep is not None and not isinstance(ev, _ALWAYS) \
                        and not self._kept(keep, ev, info):
                    continue
                if quiet and type(ev) is Http1MessageObserved:
                    continue  # (a message line, like a frame's: -q prints neither)
                text = connection_line(ev)
                said = [f"{prefix(conn_id, ev.t - start, '*')} {text}"] if text else []
                if type(ev) is ConnectionClosed:  # (what was counted, before the close)
                    said[:0] = self.repeats.closed(prefix(conn_id, ev.t - start, "*"),
                                                   conn_id)
                if text and type(ev) is Http1MessageObserved:
                    said.extend(message_field_lines(ev.headers, ev.trailers))
                if keep is None:
                    lines.extend(said)
                else:
                    self._connection_lines(conn_id, ev, said, lines)
                continue
            if keep is not None and not self._kept(keep, ev, tracker.get(conn_id)):
                if type(ev) is FrameObserved:
                    # (what the frame caused goes with it, but for a stall or a
                    # reopening of a stream whose frames the filter shows)
                    self.caused.frame(conn_id, ev.frame.stream_id, False)
                    for caused, said in held:
                        if self.caused.shown(conn_id, caused, False):
                            lines.extend(said)
                    held.clear()
                continue
            if type(ev) is FrameObserved:
                if keep is not None:
                    lines.extend(self.held.show(conn_id))
                add_event_lines(lines, conn_id, ev, ev.t - start, annotate=self.annotate,
                                quiet=quiet, requests=self.requests, repeats=self.repeats)
                if keep is not None:
                    self.caused.frame(conn_id, ev.frame.stream_id, True)
                if held:
                    for _, said in held:
                        lines.extend(said)
                    held.clear()
            elif type(ev) in AFTER_ITS_FRAME_TYPES:
                caused_lines: list[str] = []
                add_event_lines(caused_lines, conn_id, ev, ev.t - start, quiet=quiet)
                held.append((ev, caused_lines))
                continue
            elif keep is not None:  # (said with the connection's lines before it)
                if type(ev) is ConnectionFindingRaised and not self._finding_kept(
                        keep, ev, conn_id, conn_id in self.held.shown):
                    continue
                said_now: list[str] = []
                add_event_lines(said_now, conn_id, ev, ev.t - start, quiet=quiet)
                if said_now:
                    lines.extend(self.held.show(conn_id))
                    lines.extend(said_now)
            else:
                add_event_lines(lines, conn_id, ev, ev.t - start, quiet=quiet)
            if extra and not quiet:
                lines.extend(extra)
        for _, said in held:
            lines.extend(said)

    def _add_jsonl(self, batch: Batch, lines: list[str]) -> None:
        """The frames of ``batch`` (that the filter keeps) as JSON objects; the batch's
        time is the wall clock a recording of it would hold."""
        conn_id = batch.conn_id
        tracker = self.tracker
        keep = self.filter
        if self.start is None:
            self.start = batch.t
        websockets = self.websockets
        grpc = self.grpc
        for ev in in_log_order(batch.events):
            if type(ev) is FrameObserved:
                hidden = keep is not None and not self._kept(keep, ev, tracker.get(conn_id))
                if keep is not None:
                    self.caused.frame(conn_id, ev.frame.stream_id, not hidden)
                if hidden or (self.quiet and not ev.findings):  # (-q keeps the problems)
                    if websockets.streams or ev.block is not None:
                        websockets.feed(conn_id, ev)  # kept in step
                    if grpc.streams or ev.block is not None:
                        grpc.feed(conn_id, ev)
                    continue
                self._kept_conns.add(conn_id)
                lines.append(json_line(jsonl_dict(conn_id, ev, batch.t, websockets=websockets,
                                                  grpc=grpc)))
            elif isinstance(ev, ConnectionEvent):
                self._upgrades(conn_id, ev)
                tracker.update(ev)
                if type(ev) is ProxyErrorRaised:
                    self._problem(conn_id, ev.t, connection_line(ev))
                elif type(ev) is ConnectionClosed:  # (its closing findings came before)
                    self._kept_conns.discard(conn_id)
                if keep is not None and type(ev) is not ProxyErrorRaised:
                    continue  # (as the export: a filter keeps frames, and problems)
                if type(ev) is RelayStarted:
                    if conn_id in self._relayed:
                        continue  # (an upgrade says itself: H2cUpgraded, the 101 message)
                    self._relayed.add(conn_id)
                elif type(ev) is ConnectionClosed:
                    self._relayed.discard(conn_id)
                obj = jsonl_connection(conn_id, ev)
                if obj is not None:
                    lines.append(json_line(obj))
            else:
                problem = isinstance(ev, (Desynced, ConnectionFindingRaised)) and (
                    keep is None or self._finding_kept(keep, ev, conn_id,
                                                       conn_id in self._kept_conns))
                if problem:  # (for a human, on stderr; as JSON on stdout too)
                    self._problem(conn_id, ev.t, f"! {event_line(ev)}")
                if problem or (not self.quiet and (keep is None or (
                        isinstance(ev, AFTER_ITS_FRAME) and self.caused.shown(
                            conn_id, ev, self.caused.last.get(conn_id, False))))):
                    obj = jsonl_event(conn_id, ev)
                    if obj is not None:
                        lines.append(json_line(obj))

    def _finding_kept(self, keep: Any, ev: Any, conn_id: int, shown: bool) -> bool:
        """Under a filter: a desync or connection finding, as the export shows it
        (:func:`proxy.capture.export_text.filtered_problem`; a filter with a
        ``finding:`` term decides itself)."""
        if type(ev) is ConnectionFindingRaised and getattr(keep, "asks_findings", False):
            info = self.tracker.get(conn_id) or SimpleNamespace(conn_id=conn_id, target=None,
                                                                sni=None)
            return bool(keep.finding(ev, info))
        return filtered_problem(ev, shown)

    def _upgrades(self, conn_id: int, ev: ConnectionEvent) -> None:
        """A 101 to a WebSocket starts reading its messages; a close forgets them."""
        if type(ev) is Http1MessageObserved and ev.direction is Direction.S2C:
            self.upgraded.upgraded(conn_id, ev.start_line, ev.headers)
        elif type(ev) is ConnectionClosed:
            self.upgraded.closed(conn_id)
            self.caused.closed(conn_id)
            self.requests.closed(conn_id)

    def _websocket(self, batch: Batch, lines: list[str]) -> None:
        """The WebSocket messages (HTTP/1.1 Upgrade) this relayed chunk completes: a
        line each, or a JSON object each (hidden, like frames, by -q and --filter)."""
        d = batch.direction
        if d is None or not batch.data:
            return
        if self.start is None:
            self.start = batch.t
        shown = not self.quiet and self.filter is None
        if not self.jsonl:
            found = self.upgraded.lines(batch.conn_id, int(d), batch.data, batch.t,
                                        prefix(batch.conn_id, batch.t - self.start, d.arrow))
            if shown:
                lines.extend(found)
            return
        msgs, lost = self.upgraded.feed(batch.conn_id, int(d), batch.data, batch.t)
        if shown:
            lines.extend(json_line(websocket_object(batch.conn_id, int(d), batch.t, msg))
                         for msg in msgs)
        if lost is not None:
            self._problem(batch.conn_id, batch.t, f"websocket framing lost: {lost}")

    def _problem(self, conn_id: int, t: float, text: str | None) -> None:
        """With ``jsonl``, one line of what went wrong, on ``err`` (a human reads it)."""
        if text:
            start = self.start if self.start is not None else t
            with contextlib.suppress(OSError, ValueError):
                self.err.write(f"h2scope: {prefix(conn_id, t - start, '*').strip()} {text}\n")
                self.err.flush()

    def _connection_lines(self, conn_id: int, ev: ConnectionEvent, said: list[str],
                          lines: list[str]) -> None:
        """With a filter: a connection's lines go out with its first frame the filter
        keeps, or with a proxy error or an HTTP/1.x message it keeps (:class:`HeldLines`)."""
        kind = type(ev)
        if kind is ProxyErrorRaised or kind is Http1MessageObserved:
            lines.extend(self.held.show(conn_id))
            lines.extend(said)
        elif kind is ConnectionClosed:
            before = self.held.close(conn_id)
            if before is not None:
                lines.extend(before)
                lines.extend(said)
        else:
            lines.extend(self.held.hold(conn_id, said))

    @staticmethod
    def _kept(keep: EventFilter, ev: ProxyEvent, info: ConnectionInfo) -> bool:
        try:
            return keep(ev, info)
        except Exception:
            log.exception("the filter failed on %r; showing the event", ev)
            return True


def connection_line(ev: ConnectionEvent) -> str | None:
    """The one-line description of a connection event: what came from a peer (a
    CONNECT or SOCKS5 target, a request line, a certificate name) with its control
    characters written ``\\xNN``, so no peer writes escape sequences to a terminal."""
    text = _connection_text(ev)
    return None if text is None else shown(text)


def _connection_text(ev: ConnectionEvent) -> str | None:
    match ev:
        case ConnectionOpened():
            return f"opened from {hostport(ev.client[0], ev.client[1])} ({ev.mode})"
        case TargetChosen():
            how = "intercept" if ev.intercept else "pass through (ignore_hosts/allow_hosts)"
            return f"{ev.via} {ev.target} → {how}"
        case TlsEstablished():
            leg = "client" if ev.leg is Leg.CLIENT else "server"
            cert = ev.cert if ev.leg is Leg.SERVER else None
            text = tls_leg_text(
                leg, ev.version, ev.cipher, ev.alpn, ev.alpn_offered, ev.sni,
                None if cert is None else (cert.subject, cert.issuer, cert.sans,
                                           cert.not_after),
                None if ev.client_cert is None else (ev.client_cert.subject,
                                                     ev.client_cert.file))
            if ev.client_hello is not None:
                text += f" hello: {ev.client_hello.summary()}"
            return text
        case RelayStarted():
            return f"relaying {ev.protocol} to {ev.target}"
        case H2cUpgraded():
            return upgrade_text(ev.request_headers, ev.http2_settings)
        case Http1MessageObserved():
            arrow = ev.direction.arrow
            cut = "" if ev.complete else " INCOMPLETE"
            n = len(ev.trailers)  # (listed under the line, after the header fields)
            trailers = f", {n} trailer field{'s' if n != 1 else ''}" if n else ""
            return (f"{arrow} {ev.start_line}  (head {byte_count(ev.head_size)}, body "
                    f"{byte_count(ev.body_size)}{trailers}, {ev.duration * 1000:.1f} ms){cut}")
        case ProxyErrorRaised():
            hint = f" — hint: {ev.hint}" if ev.hint else ""
            hello = f" (hello: {ev.client_hello.summary()})" if ev.client_hello else ""
            return f"! {ev.stage}: {ev.message}{hint}{hello}"
        case ConnectionClosed():
            return closed_text(ev.closed_by.name.lower(), ev.reason, ev.error, ev.bytes_c2s,
                               ev.bytes_s2c)
    return None
