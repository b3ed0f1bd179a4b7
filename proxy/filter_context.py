"""What a filter sees besides the frame: its connection and its stream's headers.

A :class:`proxy.filter.Filter` matches a frame with two optional pieces of
context: the frame's connection (:class:`ConnMeta`: its id and target host,
for ``conn:`` and ``host:``) and the request and response headers of the
frame's stream (for ``status:``, ``method:`` and ``path:`` on DATA frames).
Callers build them here: :class:`ConnRef` and :func:`meta_host` from what the
proxy or a capture knows of a connection, :class:`StreamHeadersTracker` from
the frames as they pass.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from proxy.observe.enums import Direction
from proxy.observe.events import Event, FrameObserved
from proxy.observe.findings import Finding
from proxy.observe.frames import RstStreamFrame

if TYPE_CHECKING:
    from proxy.filter import Filter

__all__ = ["ConnMeta", "ConnRef", "FindingStandIn", "FrameMatcher", "StreamHeaders",
           "StreamHeadersTracker",
           "all_stream_headers", "meta_host", "reset_grpc_status"]


class ConnMeta(Protocol):
    """What a filter needs to know about the frame's connection."""

    @property
    def conn_id(self) -> int: ...

    @property
    def host(self) -> str | None:
        """The target host (CONNECT authority, SNI or reverse target), if known."""
        ...


@dataclass(frozen=True, slots=True)
class ConnRef:
    """A plain :class:`ConnMeta`: a connection's id and target host."""

    conn_id: int
    host: str | None


def meta_host(meta: Mapping[str, Any]) -> str | None:
    """The host ``host:`` matches for a recorded connection (its CONNECTION
    record's metadata): the server's name, else the SNI, else the target's host."""
    server = meta.get("server") or {}
    host = server.get("host") or meta.get("sni")
    if host:
        return str(host)
    target = meta.get("target")
    if not target:
        return None
    return (str(target).rpartition(":")[0] or str(target)).strip("[]") or None


StreamHeaders = Sequence[tuple[str, str]]


def reset_grpc_status(headers: StreamHeaders, error_code: int) -> tuple[str, str] | None:
    """A gRPC call reset before any grpc-status ends with the status gRPC gives that
    reset (CANCEL: CANCELLED): as a ``grpc-status`` field for the stream's filter
    context, so ``grpc:failed`` and ``grpc:CANCELLED`` select the call; None when the
    stream is no gRPC call or already has its status."""
    if not any(n == "content-type" and v.startswith("application/grpc") for n, v in headers) \
            or any(n == "grpc-status" for n, v in headers):
        return None
    from proxy.observe.describe import GRPC_STATUS, grpc_reset_status

    return ("grpc-status", str(GRPC_STATUS.index(grpc_reset_status(error_code))))


def _informational(headers: tuple[tuple[str, str], ...]) -> bool:
    """An interim response's header list (RFC 9110 §15.2: a 1xx status)."""
    return bool(headers) and headers[0][0] == ":status" and headers[0][1][:1] == "1"


class StreamHeadersTracker:
    """The ``stream_headers`` argument for a live view: each stream's request and
    response header lists, folded in frame by frame.

    Bounded: the least recently seen streams are forgotten beyond ``max_streams``
    (their later frames then match as if no context were given).
    """

    def __init__(self, *, max_streams: int = 4096) -> None:
        self.max_streams = max_streams
        self._streams: OrderedDict[tuple[int, int], tuple[tuple[str, str], ...]] = \
            OrderedDict()

    def update(self, conn_id: int, ev: FrameObserved) -> StreamHeaders | None:
        """Fold ``ev`` in; return the headers known for its stream (``None``: none yet).
        A gRPC call's reset before its status adds the status it stands for
        (:func:`reset_grpc_status`)."""
        streams = self._streams
        block = ev.block
        if type(ev.frame) is RstStreamFrame:
            key = (conn_id, ev.frame.stream_id)
            known = streams.get(key)
            status = reset_grpc_status(known, ev.frame.error_code) if known else None
            if status is not None:
                streams[key] = (*known, status)  # type: ignore[misc]
        elif block is not None and not _informational(block.headers):
            # A PUSH_PROMISE's block is the promised stream's request (RFC 9113 §8.4).
            # (A 1xx is no answer: the stream's status is its final response's, as in
            # the UI; the 1xx's own frame matches by its own block.)
            sid = ev.block_stream_id if ev.block_stream_id is not None else ev.frame.stream_id
            key = (conn_id, sid)
            streams[key] = streams.get(key, ()) + block.headers
            streams.move_to_end(key)
            if len(streams) > self.max_streams:
                streams.popitem(last=False)
        return streams.get((conn_id, ev.frame.stream_id))

    def known(self, conn_id: int, stream_id: int) -> StreamHeaders | None:
        """The headers known for a stream, without folding anything in."""
        return self._streams.get((conn_id, stream_id))

    def forget(self, conn_id: int) -> None:
        """Drop a closed connection's streams."""
        for key in [k for k in self._streams if k[0] == conn_id]:
            del self._streams[key]

    def __len__(self) -> int:
        return len(self._streams)


class FrameMatcher:
    """A compiled filter applied to the frames of a stream of events, in order: each
    frame matched with its connection and, when the filter uses ``status:``,
    ``method:`` or ``path:``, its stream's headers (the headless printer live,
    the text and JSON Lines exports offline).

    Live, a stream's headers are those seen so far (a request HEADERS cannot know
    its response's status yet); offline, ``known`` holds every stream's whole
    header lists (:func:`all_stream_headers`), so ``status:404`` keeps the
    request HEADERS too, as the UI shows it.
    """

    def __init__(self, flt: Filter, known: Mapping[tuple[int, int], StreamHeaders] | None = None,
                 ) -> None:
        self.predicate = flt.predicate
        needed = flt.needs_stream_headers
        self.known = known if needed else None
        self.streams = StreamHeadersTracker() if needed and known is None else None

    def finding(self, conn_id: int, host: str | None, finding: Finding,
                direction: Direction) -> bool:
        """Whether the filter selects a connection-level finding (read as a frame that
        is only that finding: :class:`FindingStandIn`)."""
        ev = FindingStandIn(finding, direction)
        sid = ev.frame.stream_id
        sh = self.known.get((conn_id, sid)) if self.known is not None else \
            self.streams.known(conn_id, sid) if self.streams is not None else None
        return self.predicate(ev, ConnRef(conn_id, host), sh)  # type: ignore[arg-type]

    def __call__(self, conn_id: int, host: str | None, ev: FrameObserved) -> bool:
        if self.known is not None:
            return self.predicate(ev, ConnRef(conn_id, host),
                                  self.known.get((conn_id, ev.frame.stream_id)))
        streams = self.streams
        return self.predicate(ev, ConnRef(conn_id, host),
                              streams.update(conn_id, ev) if streams is not None else None)


class _NoFrame:
    """The frame of :class:`FindingStandIn`: no type, flags or length a term matches."""

    __slots__ = ("flags", "length", "stream_id", "type", "type_name")

    def __init__(self, stream_id: int) -> None:
        self.type = -1
        self.type_name = ""
        self.flags = 0
        self.length = -1
        self.stream_id = stream_id


class FindingStandIn:
    """A connection-level finding (one on no frame: a stream a closing connection left
    unfinished, SETTINGS never acknowledged) as a filter reads a frame: its finding
    and direction, its stream; no type, flags, length or headers; bare words search
    its message."""

    __slots__ = ("block", "block_stream_id", "direction", "findings", "frame", "summary_lower",
                 "windows")

    def __init__(self, finding: Finding, direction: Direction) -> None:
        self.frame = _NoFrame(finding.stream_id or 0)
        self.block_stream_id = None
        self.direction = direction
        self.findings = (finding,)
        self.block = None
        self.windows = None
        self.summary_lower = f"{finding.code} {finding.message}".lower()


def all_stream_headers(events: Iterable[tuple[int, Event]],
                       ) -> dict[tuple[int, int], StreamHeaders]:
    """Every stream's request, response and trailer fields, from ``(conn_id, event)``
    pairs (a capture replayed): the context a filter gets when the whole capture
    is known."""
    tracker = StreamHeadersTracker(max_streams=1 << 62)
    for conn_id, ev in events:
        if type(ev) is FrameObserved and (ev.block is not None
                                          or type(ev.frame) is RstStreamFrame):
            tracker.update(conn_id, ev)
    return dict(tracker._streams)
