"""Connection-level events and the bus that carries every event to the sinks.

The relay publishes :class:`Batch` es: one per read (the chunk of bytes it
forwarded and the events the observer made of it, architecture principle 7) or
one per connection-level fact (opened, TLS up, closed, an error). Every batch
is tagged with the connection id, so observer events (which know nothing of
connections) need no wrapping one by one.

:class:`EventBus` gives every sink its own bounded queue. A normal sink makes
``publish`` wait while its queue is full — back-pressure reaches the relay,
which then stops reading from the sockets (principle 5). A *lossy* sink (a
UI that would rather skip than slow the traffic down) never blocks: batches
it has no room for are counted in :attr:`Subscription.dropped`, never lost
silently.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol, TypeAlias, cast

from proxy.observe.enums import Direction
from proxy.observe.events import Event

if TYPE_CHECKING:
    from proxy.net.clienthello import ClientHello

log = logging.getLogger("h2scope.bus")


class Leg(IntEnum):
    """Which side of the proxy a TLS session or an error belongs to."""

    CLIENT = 0
    """Between the client and h2scope."""
    SERVER = 1
    """Between h2scope and the upstream server."""


class Closer(IntEnum):
    """Who ended a connection."""

    CLIENT = 0
    SERVER = 1
    PROXY = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionEvent:
    conn_id: int
    """The proxy's id for the client connection, from 1, unique per run."""
    t: float
    """Wall-clock time (``time.time()``) when it happened."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(ConnectionEvent):
    """A client connected to one of the listeners."""

    client: tuple[str, int]
    """The client's address and port."""
    mode: str
    """The listener's mode spec, e.g. ``regular``, ``socks5``, ``reverse:https://a:443``."""
    target: str | None
    """``host:port`` the client wants, once known (the reverse target is known at once)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetChosen(ConnectionEvent):
    """The client named where it wants to go (CONNECT, SOCKS5, an absolute-form request)."""

    target: str
    """``host:port``."""
    via: str
    """``CONNECT``, ``SOCKS5``, ``HTTP`` (an absolute-form request) or ``reverse``."""
    intercept: bool
    """False if the target matches ``ignore_hosts``: its bytes are passed through untouched."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertSummary:
    """The parts of a certificate a user checks first."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_after: str
    """ISO 8601, UTC."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsEstablished(ConnectionEvent):
    """A TLS handshake completed on one leg."""

    leg: Leg
    version: str
    """As :mod:`ssl` names it: ``TLSv1.3``."""
    cipher: str
    alpn_offered: tuple[str, ...]
    """What the client offered (on the server leg: what h2scope offered, the same list)."""
    alpn: str | None
    """The protocol chosen, or None if ALPN was not negotiated."""
    sni: str | None
    """The server name sent (client leg: the client's SNI; server leg: h2scope's)."""
    cert: CertSummary | None
    """The certificate presented: upstream's on the server leg, h2scope's leaf on the client leg."""
    client_hello: ClientHello | None = None
    """On the client leg, everything the client's ClientHello offered."""
    client_cert: ClientCert | None = None
    """On the server leg, the client certificate h2scope presents if the server asks
    (``upstream.client_certs``)."""


def tls_leg_meta(ev: TlsEstablished) -> dict[str, object]:
    """A TLS leg as the capture's CONNECTION metadata and the JSON Lines keep it
    (``client_tls``/``server_tls`` in docs/capture-format.md): ``at`` is when its
    handshake completed."""
    leg: dict[str, object] = {"version": ev.version, "cipher": ev.cipher,
                              "alpn_offered": list(ev.alpn_offered), "alpn": ev.alpn,
                              "sni": ev.sni, "at": ev.t}
    if ev.cert is not None:
        leg["certificate"] = {"subject": ev.cert.subject, "issuer": ev.cert.issuer,
                              "sans": list(ev.cert.sans), "not_after": ev.cert.not_after}
    if ev.client_hello is not None:
        leg["client_hello"] = ev.client_hello.as_json()
    if ev.client_cert is not None:
        leg["client_certificate"] = {
            "file": ev.client_cert.file, "subject": ev.client_cert.subject,
            "issuer": ev.client_cert.issuer, "not_after": ev.client_cert.not_after}
    return leg


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCert:
    """A client certificate h2scope holds for a server: its file and whose it is."""

    file: str
    subject: str
    issuer: str
    not_after: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayStarted(ConnectionEvent):
    """Bytes start flowing between client and server with this protocol."""

    protocol: str
    """``h2``, ``h2c``, ``http/1.1``, ``tcp`` (opaque) or ``passthrough`` (ignored host)."""
    target: str
    server_ip: str | None = None
    """The address the proxy connected to for ``target`` (None through an upstream
    proxy, or before an explicit proxy's first request chose a server)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class H2cUpgraded(ConnectionEvent):
    """An HTTP/1.1 ``Upgrade: h2c`` was accepted (101): frames follow (RFC 7540 §3.2).

    Carries what the observer was primed with, so a recording can prime a
    replaying observer the same way."""

    http2_settings: bytes
    """The decoded HTTP2-Settings header: the client's initial SETTINGS payload."""
    request_headers: tuple[tuple[str, str], ...]
    """The upgraded HTTP/1.1 request as HTTP/2 fields: stream 1's request."""


CONNECTION_RESET = "connection reset"
"""``ConnectionClosed.error`` of a side that reset its TCP connection (an abortive
close: the pcapng export writes it as an RST, not a FIN exchange)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(ConnectionEvent):
    """The connection ended; both sides are closed."""

    closed_by: Closer
    reason: str
    """Plain words: ``client closed``, ``server reset the connection``, ..."""
    error: str | None = None
    """The error behind it, if one (an OSError's text, a TLS alert;
    :data:`CONNECTION_RESET` for a TCP reset)."""
    bytes_c2s: int = 0
    """Bytes forwarded client → server (after TLS)."""
    bytes_s2c: int = 0
    ends: tuple[tuple[str, int], ...] = ()
    """For a direction whose sender ended its bytes (EOF) while the other still sent:
    ``("s2c", n)``, the other direction's bytes read by then (what the observer's
    ``close(ends=...)`` takes; recorded in the CLOSE record)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyErrorRaised(ConnectionEvent):
    """Something failed at a stage of setting up or relaying the connection."""

    stage: str
    """``request``, ``auth``, ``connect``, ``client-tls``, ``server-tls``, ``socks5``,
    ``http1``, ``detect``, ``relay`` or ``internal``."""
    message: str
    hint: str | None = None
    """What the user can do about it, if anything."""
    client_hello: ClientHello | None = None
    """For a client handshake that failed (``client-tls``): what the client offered —
    which client it was, when it rejects h2scope's certificate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Http1MessageObserved(ConnectionEvent):
    """One HTTP/1.x message went through (logged when complete, or cut short)."""

    direction: Direction
    start_line: str
    """``GET /path HTTP/1.1`` or ``HTTP/1.1 200 OK`` as sent."""
    headers: tuple[tuple[str, str], ...]
    """As sent, names in their original case."""
    head_size: int
    body_size: int
    """Body bytes on the wire (chunked framing included)."""
    started: float
    """Time the first byte of the head was seen."""
    duration: float
    """Seconds from the first head byte to the last body byte."""
    complete: bool = True
    """False if the connection ended before the body did."""
    trailers: tuple[tuple[str, str], ...] = ()
    """A chunked body's trailer fields (RFC 9112 §7.1.2), as sent."""


ProxyEvent: TypeAlias = ConnectionEvent | Event
"""Anything a sink receives: connection events and observer events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """The unit the bus delivers: one read's worth of events on one connection."""

    conn_id: int
    t: float
    events: tuple[ProxyEvent, ...]
    direction: Direction | None = None
    """For a relayed chunk: its direction; None for connection-level batches."""
    data: bytes = b""
    """The relayed bytes (after TLS) the events were decoded from; b"" if none.
    A recorder stores these: the capture is raw truth (architecture principle 6)."""
    protocol: str | None = None
    """For a relayed chunk: ``h2``, ``h2c``, ``http/1.1`` or ``tcp``."""


class Sink(Protocol):
    """A consumer of batches: the printer, the recorder, the UI.

    ``handle`` may be a plain function or a coroutine; it runs in the sink's
    own task, never on the relay's path. A sink may also offer
    ``handle_many(batches)`` (same rules): it then receives, in order, every
    batch already waiting in its queue at once (see :class:`Subscription`).
    """

    def handle(self, batch: Batch) -> Awaitable[None] | None: ...


SinkCallable: TypeAlias = Callable[[Batch], "Awaitable[None] | None"]
ManyCallable: TypeAlias = Callable[[list[Batch]], "Awaitable[None] | None"]

MAX_GROUP = 256
"""Most batches one ``handle_many`` call receives."""
MAX_QUEUED_BYTES = 16 << 20
"""Relayed bytes (``Batch.data``) one sink may hold queued or in hand: a batch
count alone would let 1024 reads of 256 KiB (256 MiB) pile up behind a slow sink."""


class Subscription:
    """One sink's queue and the task that feeds it; see :meth:`EventBus.subscribe`.

    A sink with ``handle_many`` is woken once for everything queued: under load
    the relay publishes many batches per wake-up of the sink's task, and the
    sink pays its per-call costs (a write, a flush) once per group. The group
    leaves the queue before the sink sees it, so while a *coroutine*
    ``handle_many`` runs, up to twice the queue size is held — still bounded.

    Besides the count of batches, the relayed bytes they carry are bounded
    (``max_bytes``, counted until the sink has handled them): past it, a normal
    sink makes ``publish`` wait and a lossy one drops (and counts) the batch.
    """

    def __init__(self, sink: Sink | SinkCallable, *, maxsize: int, lossy: bool,
                 max_bytes: int = MAX_QUEUED_BYTES) -> None:
        handle = getattr(sink, "handle", None)
        self.handler = cast(SinkCallable, handle if callable(handle) else sink)
        many = getattr(sink, "handle_many", None)
        self.many_handler = cast(ManyCallable, many) if callable(many) else None
        self.lossy = lossy
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        """Batches a lossy sink had no room for."""
        self.delivered = 0
        self.failed = False
        """True once the sink raised: it gets nothing more (and never blocks the relay)."""
        self.task: asyncio.Task[None] | None = None
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        """Bytes of ``Batch.data`` published to this sink and not yet handled."""
        self._room = asyncio.Event()

    def _handled(self, n: int) -> None:
        self.queued_bytes -= n
        if self.failed or (self.queued_bytes < self.max_bytes and not self.queue.full()):
            self._room.set()

    def full(self) -> bool:
        """Whether a batch would have to wait: ``max_bytes`` held, or the queue full."""
        return not self.failed and (self.queued_bytes >= self.max_bytes or self.queue.full())

    async def wait_room(self) -> None:
        """Wait until the sink can take a batch (or has failed)."""
        while self.full():
            self._room.clear()
            await self._room.wait()

    def _fail(self, handler: object, exc: Exception) -> None:
        """The sink raised: it gets no more events. A sink that can say what went
        wrong in a user's words (``failure_message``: a recorder whose disk is full)
        is logged with that line; anything else with its traceback (a bug)."""
        self.failed = True
        owner = getattr(handler, "__self__", None)
        explain = getattr(owner, "failure_message", None)
        said = explain(exc) if explain is not None else None
        if said:
            log.error("%s", said)
        else:
            log.exception("sink %r failed; it receives no more events", handler)
        release = getattr(owner, "failed_with", None)
        if release is not None:  # (a recorder lets its file go: deleting it frees space)
            release(exc)

    async def _run(self) -> None:
        if self.many_handler is not None:
            await self._run_many(self.many_handler)
            return
        while True:
            batch = await self.queue.get()
            if batch is None:
                return
            if not self.full():  # (a slot freed: a publisher waiting on the count goes on)
                self._room.set()
            if not self.failed:
                try:
                    result = self.handler(batch)
                    if inspect.isawaitable(result):
                        await result
                    self.delivered += 1
                except Exception as exc:
                    self._fail(self.handler, exc)
            self._handled(len(batch.data))

    async def _run_many(self, handler: ManyCallable) -> None:
        queue = self.queue
        while True:
            first = await queue.get()
            group: list[Batch] = []
            last: Batch | None = first
            while last is not None:
                group.append(last)
                if len(group) >= MAX_GROUP or queue.empty():
                    break
                last = queue.get_nowait()
            if not self.full():  # (slots freed: a publisher waiting on the count goes on)
                self._room.set()
            if group and not self.failed:
                try:
                    result = handler(group)
                    if inspect.isawaitable(result):
                        await result
                    self.delivered += len(group)
                except Exception as exc:
                    self._fail(handler, exc)
            self._handled(sum(len(b.data) for b in group))
            if last is None:
                return  # close() puts None last: nothing follows it


class EventBus:
    """Bounded fan-out of batches to sinks, with back-pressure.

    Use from one event loop. ``publish`` waits while a non-lossy sink's queue
    is full; call :meth:`close` to let the sinks drain and stop.
    """

    def __init__(self, *, maxsize: int = 1024, max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        """Relayed bytes each sink may hold (see :class:`Subscription`)."""
        self.subscriptions: list[Subscription] = []
        self.published = 0
        self._closed = False

    def subscribe(self, sink: Sink | SinkCallable, *, lossy: bool = False,
                  maxsize: int | None = None) -> Subscription:
        """Add a sink; it receives every batch published from now on, in order."""
        sub = Subscription(sink, maxsize=maxsize or self.maxsize, lossy=lossy,
                           max_bytes=self.max_bytes)
        sub.task = asyncio.get_running_loop().create_task(sub._run(), name="h2scope-sink")
        self.subscriptions.append(sub)
        return sub

    @property
    def dropped(self) -> int:
        """Batches lossy sinks had no room for, summed."""
        return sum(s.dropped for s in self.subscriptions)

    async def publish(self, batch: Batch) -> None:
        """Hand *batch* to every sink; waits while a non-lossy sink is behind."""
        await self.room()
        self.put(batch)

    async def room(self) -> None:
        """Wait until every blocking sink has room for a batch.

        Wait here, then :meth:`put` without awaiting in between: a publisher cancelled
        while it waits (a connection closed at shutdown) delivers the batch to no
        sink, never to some (the summary would count frames the recording does not
        hold); and what happens between the two — a relay observing the chunk it just
        forwarded — happens in the order the chunks crossed the proxy."""
        if self._closed:
            return
        subs = self.subscriptions
        while True:
            for sub in subs:
                if not sub.lossy and sub.full():
                    await sub.wait_room()
                    break
            else:
                return

    def put(self, batch: Batch) -> None:
        """Hand *batch* to every sink now (a lossy sink that is full counts it lost; a
        blocking one takes it even when full: call :meth:`room` first)."""
        if self._closed:
            return
        self.published += 1
        size = len(batch.data)
        subs = self.subscriptions
        for sub in subs:
            if sub.lossy or sub.failed:
                if sub.queued_bytes >= sub.max_bytes and size:
                    sub.dropped += 1
                    continue
                try:
                    sub.queue.put_nowait(batch)
                except asyncio.QueueFull:
                    sub.dropped += 1
                    continue
            else:
                sub.queue.put_nowait(batch)
            sub.queued_bytes += size

    async def emit(self, *events: ConnectionEvent) -> None:
        """Publish connection events as one batch (tagged with the first one's id)."""
        if events:
            await self.publish(Batch(conn_id=events[0].conn_id, t=events[0].t, events=events))

    async def close(self, *, timeout: float = 5.0) -> None:
        """Stop accepting batches, let every sink finish its queue (bounded by *timeout*)."""
        self._closed = True
        tasks: Sequence[asyncio.Task[None]] = [s.task for s in self.subscriptions if s.task]
        for sub in self.subscriptions:
            if sub.lossy or sub.failed:
                while True:
                    try:
                        sub.queue.put_nowait(None)
                        break
                    except asyncio.QueueFull:
                        dropped = sub.queue.get_nowait()
                        sub.queued_bytes -= len(dropped.data) if dropped is not None else 0
                        sub.dropped += 1
            else:
                try:
                    await asyncio.wait_for(sub.queue.put(None), timeout)
                except TimeoutError:
                    pass
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionInfo:
    """What is known about a connection so far, for filters and views."""

    conn_id: int
    client: tuple[str, int]
    mode: str
    target: str | None = None
    """``host:port`` once known."""
    sni: str | None = None
    alpn: str | None = None
    """The protocol negotiated with the client, if TLS."""
    protocol: str | None = None
    """What is being relayed: ``h2``, ``h2c``, ``http/1.1``, ``tcp``, ``passthrough``."""
    opened: float = 0.0
    closed: bool = False


class ConnectionTracker:
    """Keeps a :class:`ConnectionInfo` per connection up to date from batches.

    Closed connections are forgotten after :attr:`keep_closed` newer ones
    closed, so memory stays bounded on long runs.
    """

    def __init__(self, *, keep_closed: int = 1024) -> None:
        self.connections: dict[int, ConnectionInfo] = {}
        self.keep_closed = keep_closed
        self._closed: list[int] = []

    def get(self, conn_id: int) -> ConnectionInfo:
        info = self.connections.get(conn_id)
        if info is None:
            info = ConnectionInfo(conn_id=conn_id, client=("?", 0), mode="?")
            self.connections[conn_id] = info
        return info

    def update(self, event: ProxyEvent) -> ConnectionInfo | None:
        """Fold a connection event in; returns the connection's info (None for others)."""
        if not isinstance(event, ConnectionEvent):
            return None
        info = self.get(event.conn_id)
        match event:
            case ConnectionOpened():
                info = replace(info, client=event.client, mode=event.mode,
                               target=event.target, opened=event.t)
            case TargetChosen():
                info = replace(info, target=event.target)
            case TlsEstablished() if event.leg is Leg.CLIENT:
                info = replace(info, sni=event.sni, alpn=event.alpn)
            case RelayStarted():
                info = replace(info, protocol=event.protocol)
            case ConnectionClosed():
                info = replace(info, closed=True)
                self._closed.append(event.conn_id)
                if len(self._closed) > self.keep_closed:
                    self.connections.pop(self._closed.pop(0), None)
        self.connections[event.conn_id] = info
        return info
