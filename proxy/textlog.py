"""The one-line-per-frame text log, shared by the headless printer and the text export.

A live log (``h2scope run --headless``) and an exported one (``h2scope export
--format text``) read the same and diff cleanly because both come from here::

        0.004 #1   →     1 HEADERS [END_STREAM,END_HEADERS] len=31  GET example.test/
                          :method: GET
        0.009 #1   ←     1 DATA [END_STREAM] len=13  13 bytes  window conn=65522 stream=65522

The headless printer formats every frame on the proxy's event loop, so the
parts that repeat are computed once: the line prefix (all events of one relayed
read share their time, connection and direction) and the ``TYPE [FLAGS]``
column (a handful of distinct type and flag combinations) are cached.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import TypeVar

from proxy.observe.describe import (
    SHOWN_LIST_SIZE,
    block_lines,
    block_summary,
    clip,
    event_line,
    field_lines,
    field_size,
    flags_text,
    frame_summary,
    omitted_line,
    shown,
    shown_headers,
)
from proxy.observe.enums import Direction, setting_name
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
    PingAnswered,
    PrefaceObserved,
    SettingsAcknowledged,
    StreamStateChanged,
)
from proxy.observe.findings import Finding
from proxy.observe.frames import (
    DataFrame,
    Frame,
    HeadersFrame,
    PushPromiseFrame,
    WindowUpdateFrame,
)
from proxy.observe.hpack_annotated import HeaderBlock

HEADER_INDENT = " " * 22
_ARROW = {Direction.C2S: Direction.C2S.arrow, Direction.S2C: Direction.S2C.arrow}
_TYPE_FLAGS: dict[tuple[int, int], str] = {}
"""``"HEADERS [END_STREAM,END_HEADERS]"`` by (type, flags); at most 2^16 entries."""
_DATA_FLAGS: dict[int, str] = {}
"""The same, for DATA frames, by flags alone (the per-line fast path)."""
_BLOCK_TEXT: dict[int, tuple[HeaderBlock, str, list[str]]] = {}
"""A decoded block's summary and header lines, by ``id``: the observer hands back
the same record for a repeated block (a client repeating its request), so its
text is made once. Holding the block keeps its ``id`` from being reused."""
_BLOCK_TEXT_MAX = 256


def _raw_note(name: str, value: str) -> str:
    """What a gRPC true binary value's first byte is (the UI's stream view says it
    in its own words): the bytes are the rest."""
    if name.endswith("-bin") and value[:1] == "\x00":
        return f"  ; {len(value.encode('utf-8', 'surrogateescape')) - 1} bytes sent raw " \
            "(true binary metadata: 0x00 is grpc's marker)"
    return ""


def _block_text(block: HeaderBlock) -> tuple[HeaderBlock, str, list[str]]:
    known = _BLOCK_TEXT.get(id(block))
    if known is not None and known[0] is block:
        return known
    if len(_BLOCK_TEXT) >= _BLOCK_TEXT_MAX:
        _BLOCK_TEXT.clear()
    headers, omitted, omitted_size = shown_headers(block.headers, block.decoded_size)
    if omitted:
        # (a list too long to show whole, an HPACK bomb's one field ×16,000: the same
        # field again and again is said once with its count, not 256 KiB a block)
        lines, omitted, omitted_size = _runs_text(block.headers)
    else:
        lines = field_lines(headers, HEADER_INDENT, _raw_note)
    if omitted:
        lines.append(f"{HEADER_INDENT}{omitted_line(omitted, omitted_size, block)}")
    summary = block_summary(headers).rstrip()
    if "grpc-status" in summary:  # (a gRPC call's status: its details may be said)
        for i in reversed(range(len(headers))):
            if headers[i][0] == _DETAILS:
                said = _status_details(headers[i][1])
                if said and i < len(lines):
                    lines.insert(i + 1, f"{HEADER_INDENT}  ; {said}")
    text = _BLOCK_TEXT[id(block)] = (block, summary, lines)
    return text


def _runs_text(headers: tuple[tuple[str, str], ...]) -> tuple[list[str], int, int]:
    """The lines of a long header list with each run of one field repeated
    (``x: AAAA…  ×15,983 in a row``) said once, up to
    :data:`~proxy.observe.describe.SHOWN_LIST_SIZE` of distinct text; then the
    fields left out and their RFC 7541 size."""
    lines: list[str] = []
    used = 0
    i, n = 0, len(headers)
    while i < n:
        field = headers[i]
        j = i + 1
        while j < n and headers[j] == field:
            j += 1
        size = field_size(*field)
        if used + size > SHOWN_LIST_SIZE:
            return lines, n - i, sum(field_size(*f) for f in headers[i:])
        used += size
        [line] = field_lines((field,), HEADER_INDENT, _raw_note)
        lines.append(line if j - i == 1 else f"{line}  ×{j - i:,} in a row")
        i = j
    return lines, 0, 0


_DETAILS = "grpc-status-details-bin"


def _status_details(value: str) -> str | None:
    """The google.rpc.Status a ``grpc-status-details-bin`` value carries, its
    standard details decoded (the reason a gRPC call failed, in words)."""
    from proxy.grpc_log import grpc_field_note

    note = grpc_field_note(_DETAILS, value)
    return note if note and note.startswith("google.rpc.Status") else None


def message_field_lines(headers: tuple[tuple[str, str], ...],
                        trailers: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """An HTTP/1.x message's header fields under its line, names as sent, as a
    HEADERS frame's list is shown (at most
    :data:`~proxy.observe.describe.SHOWN_LIST_SIZE` of it); then its
    trailer fields (RFC 9112 §7.1.2), which came after the body, the same way."""
    lines = _message_fields(headers)
    if trailers:
        lines.append(f"{HEADER_INDENT}; trailers, after the body:")
        lines.extend(_message_fields(trailers))
    return lines


def _message_fields(fields: tuple[tuple[str, str], ...]) -> list[str]:
    shown_list, omitted, omitted_size = shown_headers(fields)
    lines = field_lines(shown_list, HEADER_INDENT, _raw_note)
    if omitted:
        lines.append(f"{HEADER_INDENT}{omitted_line(omitted, omitted_size, None)}")
    return lines


TIME_FORMATS = ("relative", "wall", "utc")
"""The time column: seconds since the first event (``0.110``), or the wall clock,
local (``2026-12-08 00:32:27.110``) or in UTC (``2026-12-08T00:32:27.110Z``)."""


class _Clock:
    """How :func:`prefix` writes its time: one column format per process (the
    printer's or the export's, set by :func:`set_time_format`)."""

    __slots__ = ("_second", "_text", "fmt")

    def __init__(self) -> None:
        self.fmt = "relative"
        self._second = -1
        self._text = ""

    def text(self, t: float) -> str:
        second = int(t)
        if second != self._second:  # (the date and time of one second, once)
            if self.fmt == "utc":
                self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            else:
                self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        ms = min(999, int((t - second) * 1000))
        return f"{self._text}.{ms:03d}{'Z' if self.fmt == 'utc' else ''}"


_CLOCK = _Clock()


def set_time_format(fmt: str) -> None:
    """``relative`` (the default), ``wall`` or ``utc`` for the lines :func:`prefix`
    starts from now on; the callers pass the wall-clock time as ``rel`` for the
    last two (their start is 0)."""
    if fmt not in TIME_FORMATS:
        raise ValueError(f"unknown time format {fmt!r}; known: {', '.join(TIME_FORMATS)}")
    _CLOCK.fmt = fmt
    _CLOCK._second = -1
    prefix.cache_clear()


def time_format() -> str:
    return _CLOCK.fmt


@lru_cache(maxsize=64)
def prefix(conn_id: int, rel: float, arrow: str) -> str:
    """The columns every line starts with: seconds since the first event (or the
    wall clock: :func:`set_time_format`), the connection and a direction arrow
    (``*`` for connection lines)."""
    if _CLOCK.fmt == "relative":
        return f"{rel:9.3f} #{conn_id:<3} {arrow}"
    return f"{_CLOCK.text(rel)} #{conn_id:<3} {arrow}"


def _type_flags(f: Frame) -> str:
    key = (f.type, f.flags)
    text = _TYPE_FLAGS.get(key)
    if text is None:
        text = _TYPE_FLAGS[key] = f"{f.type_name} {flags_text(f) or '[]'}"
    return text


def _frame_line(head: str, ev: FrameObserved, truncated: bool) -> str:
    f = ev.frame
    windows = ev.windows
    if f.type == 0 and windows is not None and type(f) is DataFrame \
            and f.pad_length is None and f.malformed is None and not truncated \
            and windows[1] is not None and f.data_length != 1:
        # Most lines of a bulk transfer: frame_summary's DATA wording, in one
        # f-string (no dispatch, no rstrip: the line ends in a number).
        flags = f.flags
        text = _DATA_FLAGS.get(flags)
        if text is None:
            text = _DATA_FLAGS[flags] = _type_flags(f)
        return (f"{head} {f.stream_id:>5} {text} len={f.length}  {f.data_length} bytes"
                f"  window conn={windows[0]} stream={windows[1]}")
    if f.type == 8 and windows is not None and type(f) is WindowUpdateFrame \
            and not truncated:
        # The flow-control answer to every DATA frame: the same, for WINDOW_UPDATE.
        stream = "" if windows[1] is None else f" stream={windows[1]}"
        return (f"{head} {f.stream_id:>5} {_type_flags(f)} len={f.length}  +{f.increment}"
                f"  window conn={windows[0]}{stream}")
    block = ev.block
    if f.type == 1 and block is not None and type(f) is HeadersFrame and f.priority is None \
            and f.pad_length is None and f.malformed is None and not truncated:
        # A request or response: its summary is its block's, made once per block.
        return f"{head} {f.stream_id:>5} {_type_flags(f)} len={f.length}  {_block_text(block)[1]}"
    line = f"{head} {f.stream_id:>5} {_type_flags(f)} len={f.length}  {frame_summary(ev)}"
    line = line.rstrip()
    if truncated:
        line += "  (payload truncated when recorded)"
    return line


def frame_line(conn_id: int, ev: FrameObserved, rel: float, *, truncated: bool = False) -> str:
    """One frame: stream, RFC type name, flags, length and the decoded gist."""
    return _frame_line(prefix(conn_id, rel, _ARROW[ev.direction]), ev, truncated)


def event_lines(conn_id: int, ev: Event, rel: float, *, headers: bool = True,
                annotate: bool = False, quiet: bool = False,
                truncated: bool = False, requests: RequestLabels | None = None,
                repeats: RepeatedFindings | None = None) -> list[str]:
    """The log lines for one observer event (none for unremarkable ones).

    ``headers`` lists each decoded header block under its frame (``annotate``
    adds every field's HPACK representation); ``quiet`` keeps only findings;
    ``requests`` (fed every header block, shown or not) names the request a
    RST_STREAM line reset; ``repeats`` counts a finding a connection raises again
    and again instead of showing it each time.
    """
    lines: list[str] = []
    add_event_lines(lines, conn_id, ev, rel, headers=headers, annotate=annotate, quiet=quiet,
                    truncated=truncated, requests=requests, repeats=repeats)
    return lines


RST_STREAM = 3
_LABELS: dict[int, tuple[HeaderBlock, tuple[str, str] | None, str | None]] = {}
"""A block's request label (with the status "…") or final status, by ``id``, made
once per block as :data:`_BLOCK_TEXT` is (a repeated block is the same record)."""


def _block_label(block: HeaderBlock) -> tuple[HeaderBlock, tuple[str, str] | None, str | None]:
    method = path = status = None
    for name, value in block.headers:
        if name[:1] != ":":
            break
        if name == ":method":
            method = value
        elif name == ":path":
            path = value
        elif name == ":status":
            status = value
    request = None
    if method is not None:
        request = (shown(clip(f"{method} {path or ''}".rstrip(), 80)), "…")
        status = None
    elif status is not None and status[:1] == "1":
        status = None  # (an interim response: the status so far stays "…")
    elif status is not None:
        status = shown(status)
    if len(_LABELS) >= _BLOCK_TEXT_MAX:
        _LABELS.clear()
    known = _LABELS[id(block)] = (block, request, status)
    return known


class RepeatedFindings:
    """The text log's finding lines of one code on one connection: the first
    :attr:`SHOWN`, then a line saying the rest are counted, then, at the
    connection's close, how many there were. A flood of bad frames (23,043
    CONTINUATIONs after a cut header block, one error each) buried everything
    else; ``check``, the summary, the UI and JSON Lines still have each one."""

    SHOWN = 20

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str], int] = {}

    def lines(self, head: str, conn_id: int, findings: Sequence[Finding]) -> list[str]:
        out: list[str] = []
        counts = self._counts
        for finding in findings:
            key = (conn_id, finding.code)
            n = counts.get(key, 0) + 1
            counts[key] = n
            if n <= self.SHOWN:
                out.append(f"{head} ! {finding}")
            elif n == self.SHOWN + 1:
                out.append(f"{head} ! {finding.code}: {self.SHOWN} shown on #{conn_id}; the "
                           "rest are counted, and their number said when it closes")
        return out

    def closed(self, head: str, conn_id: int) -> list[str]:
        """The counts of connection ``conn_id``'s findings not shown (it closed)."""
        out: list[str] = []
        for key in [k for k in self._counts if k[0] == conn_id]:
            n = self._counts.pop(key)
            if n > self.SHOWN:
                out.append(f"{head} ! {key[1]} ×{n:,} in all on #{conn_id} ({n - self.SHOWN:,} "
                           "not shown: h2scope check and export --format jsonl list each)")
        return out


class RequestLabels:
    """Each stream's request and its status so far, per connection, from the header
    blocks: a RST_STREAM line names what it reset (``CANCEL  GET /big → 200``), as
    the UI's timeline row does, so a reset among many streams needs no search for
    its HEADERS (which a filter such as ``type:RST_STREAM`` may have hidden).

    Feed it every decoded block (:meth:`block`), shown or not; forget a closed
    connection (:meth:`closed`). At most :attr:`MAX_STREAMS` streams are kept per
    connection, the oldest forgotten first.
    """

    MAX_STREAMS = 4096

    def __init__(self) -> None:
        self.conns: dict[int, dict[int, tuple[str, str]]] = {}
        """conn id → stream id → (method and path, status: "…" until the final
        response)."""

    def block(self, conn_id: int, ev: FrameObserved) -> None:
        block = ev.block
        if block is None:
            return
        known = _LABELS.get(id(block))
        if known is None or known[0] is not block:
            known = _block_label(block)
        request = known[1]
        streams = self.conns.get(conn_id)
        f = ev.frame
        if request is not None:
            if streams is None:
                streams = self.conns[conn_id] = {}
            elif len(streams) >= self.MAX_STREAMS:
                del streams[next(iter(streams))]
            streams[f.promised_stream_id if type(f) is PushPromiseFrame else f.stream_id] = request
        elif known[2] is not None and streams is not None:
            said = streams.get(f.stream_id)
            if said is not None:
                streams[f.stream_id] = (said[0], known[2])

    def reset(self, conn_id: int, stream_id: int) -> str:
        """What to add to the RST_STREAM line of ``stream_id``: its request, or ""."""
        said = self.conns.get(conn_id, {}).get(stream_id)
        return f"  {said[0]} → {said[1]}" if said is not None else ""

    def closed(self, conn_id: int) -> None:
        self.conns.pop(conn_id, None)


_E = TypeVar("_E")
AFTER_ITS_FRAME = (SettingsAcknowledged, FlowControlStalled, FlowControlResumed, PingAnswered)
"""Events a frame causes, which the observer reports before that frame's own event:
a log shows them after the frame (the ACK, then the settings now in force; the
DATA that spent the window, then the stall)."""
AFTER_ITS_FRAME_TYPES = frozenset(AFTER_ITS_FRAME)
"""The same, for ``type(ev) in …`` on a per-event path."""


class CausedShown:
    """With a filter: which of what frames caused (:data:`AFTER_ITS_FRAME`) a log
    shows — what a kept frame caused, and a stream's stall or reopening when the
    filter has kept frames of that stream (a SETTINGS ACK on stream 0 can stall
    stream 1, and ``stream:1`` follows stream 1)."""

    MAX_STREAMS = 4096
    """Streams remembered per connection (the most recently shown)."""

    def __init__(self) -> None:
        self.last: dict[int, bool] = {}
        """Per connection: whether its latest frame was kept."""
        self._streams: dict[int, dict[int, None]] = {}

    def frame(self, conn_id: int, stream_id: int, kept: bool) -> None:
        self.last[conn_id] = kept
        if kept and stream_id:
            streams = self._streams.setdefault(conn_id, {})
            streams.pop(stream_id, None)
            streams[stream_id] = None
            if len(streams) > self.MAX_STREAMS:
                del streams[next(iter(streams))]

    def shown(self, conn_id: int, ev: object, frame_kept: bool) -> bool:
        """Whether ``ev`` (one of AFTER_ITS_FRAME) is shown, its frame kept or not."""
        if frame_kept:
            return True
        sid = getattr(ev, "stream_id", 0)
        return bool(sid) and sid in self._streams.get(conn_id, ())

    def closed(self, conn_id: int) -> None:
        self.last.pop(conn_id, None)
        self._streams.pop(conn_id, None)


class HeldLines:
    """With a filter: a connection's own lines (opened, target, TLS, relaying) held
    until something of it is shown, then written before that — not for every
    connection (``path:/a.css`` had 51 connection lines around 6 frames). A
    connection nothing was shown of goes unsaid, its close too."""

    MAX_HELD = 64
    """Lines held per connection (a connection's own lines are a handful)."""

    def __init__(self) -> None:
        self.shown: set[int] = set()
        """Open connections something was shown of."""
        self.held: dict[int, list[str]] = {}

    def hold(self, conn_id: int, lines: list[str]) -> list[str]:
        """``lines`` of the connection: what to write now (all of them once it is
        shown; else none, and they wait)."""
        if conn_id in self.shown:
            return lines
        held = self.held.setdefault(conn_id, [])
        if len(held) < self.MAX_HELD:
            held.extend(lines)
        return []

    def show(self, conn_id: int) -> list[str]:
        """Something of the connection is shown: its held lines, to write first."""
        if conn_id in self.shown:
            return []
        self.shown.add(conn_id)
        return self.held.pop(conn_id, [])

    def close(self, conn_id: int, *, failed: bool = False) -> list[str] | None:
        """The connection closed: the held lines to write before its close line, or
        None when nothing of it was shown (its close goes unsaid too); ``failed``:
        said all the same (it may be why the frames looked for are not there)."""
        held = self.held.pop(conn_id, [])
        shown = conn_id in self.shown
        self.shown.discard(conn_id)
        return held if shown or failed else None


def in_log_order(events: Iterable[_E]) -> Iterator[_E]:
    """``events`` with each of :data:`AFTER_ITS_FRAME` moved after the frame that
    caused it (the next frame event)."""
    held: list[_E] = []
    for ev in events:
        if isinstance(ev, AFTER_ITS_FRAME):
            held.append(ev)
            continue
        yield ev
        if held and type(ev) is FrameObserved:
            yield from held
            held.clear()
    yield from held


def add_event_lines(lines: list[str], conn_id: int, ev: Event, rel: float, *,
                    headers: bool = True, annotate: bool = False, quiet: bool = False,
                    truncated: bool = False, requests: RequestLabels | None = None,
                    repeats: RepeatedFindings | None = None) -> None:
    """:func:`event_lines`, appended to ``lines`` (no list per event)."""
    if type(ev) is FrameObserved:
        head = prefix(conn_id, rel, _ARROW[ev.direction])
        if not quiet:
            line = _frame_line(head, ev, truncated)
            if requests is not None and ev.frame.type == RST_STREAM:
                line += requests.reset(conn_id, ev.frame.stream_id)
            lines.append(line)
            block = ev.block
            if headers and block is not None:
                if annotate:
                    lines.extend(block_lines(block, annotate=True, indent=HEADER_INDENT))
                else:
                    lines.extend(_block_text(block)[2])
        if ev.findings:
            if repeats is not None:
                lines.extend(repeats.lines(head, conn_id, ev.findings))
            else:
                lines.extend([f"{head} ! {finding}" for finding in ev.findings])
        return
    if isinstance(ev, (Desynced, ConnectionFindingRaised)):
        lines.append(f"{prefix(conn_id, rel, _ARROW[ev.direction])} ! {event_line(ev)}")
        return
    if quiet or isinstance(ev, (StreamStateChanged, PrefaceObserved)):
        return
    text = event_line(ev)
    if text:
        lines.append(f"{prefix(conn_id, rel, _ARROW[ev.direction])} {text}")


def byte_count(n: int) -> str:
    """``189 B``, ``12.3 KiB``, ``4.5 MiB``, ``1.2 GiB`` (``9157.0 KiB`` read badly)."""
    return f"{n} B" if n < 10_000 else f"{n / 1024:.1f} KiB" if n < 1_048_576 \
        else f"{n / 1048576:.1f} MiB" if n < 1 << 30 else f"{n / (1 << 30):.1f} GiB"


def tls_leg_text(leg: str, version: str | None, cipher: str | None, alpn: str | None,
                 offered: Sequence[str], sni: str | None,
                 cert: tuple[str, str, Sequence[str], str] | None = None,
                 client_cert: tuple[str, str] | None = None) -> str:
    """``TLS server leg TLSv1.3 ... alpn=h2 (offered h2,http/1.1) sni=...`` with the
    server's certificate (subject, issuer, SANs, not after) and the client
    certificate h2scope would present (subject, file): live from TlsEstablished,
    offline from a CONNECTION record's metadata."""
    text = (f"TLS {leg} leg {version or '?'} {cipher or '?'} alpn={alpn or '-'} "
            f"(offered {','.join(offered) or 'none'}) sni={sni or '-'}")
    if cert is not None:
        subject, issuer, sans, not_after = cert
        text += (f" cert subject={subject} issuer={issuer} sans={','.join(sans[:4]) or '-'}"
                 f"{f' (+{len(sans) - 4} more)' if len(sans) > 4 else ''} not_after={not_after}")
    if client_cert is not None:
        text += f" client_cert={client_cert[0]} ({client_cert[1]}, sent if asked)"
    return text


def upgrade_text(request: tuple[tuple[str, str], ...] | dict[str, str],
                 http2_settings: bytes) -> str:
    """``upgraded to h2c: stream 1 carries GET /path, HTTP2-Settings: MAX_…=100, …``:
    the request stream 1 is, and the client's settings its HTTP2-Settings header
    carried (RFC 7540 §3.2.1: its first SETTINGS, applied with the 101)."""
    fields = dict(request)
    settings = ", ".join(
        f"{setting_name(int.from_bytes(http2_settings[i:i + 2], 'big'))}="
        f"{int.from_bytes(http2_settings[i + 2:i + 6], 'big')}"
        for i in range(0, len(http2_settings) - 5, 6)) or "none"
    return (f"upgraded to h2c: stream 1 carries {fields.get(':method', '?')} "
            f"{fields.get(':path')}, HTTP2-Settings: {settings}")


def closed_text(closed_by: str | None, reason: str | None, error: str | None,
                bytes_c2s: int, bytes_s2c: int) -> str:
    """``closed by client: client closed the connection (→ 189 B, ← 279 B)``; the
    error in brackets unless the reason already says it."""
    err = f" [{error}]" if error and (not reason or error not in reason) else ""
    counts = (f" (→ {byte_count(bytes_c2s)}, ← {byte_count(bytes_s2c)})"
              if bytes_c2s or bytes_s2c else "")
    who = f" by {closed_by}" if closed_by else ""
    return f"closed{who}{': ' + reason if reason else ''}{err}{counts}"
