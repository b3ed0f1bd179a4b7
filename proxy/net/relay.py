"""Byte relays: HTTP/2 frame mode (observed) and opaque TCP.

Each direction is one pump: read what is available, write it to the other
side unchanged, wait for the write to drain, then feed the same bytes to the
observer and publish the batch (architecture principles 1, 5, 7). The observer
never stops the relay: if it ever raised (a bug), the connection goes on
unobserved and the error is logged and published (principle 4).

A direction that reaches end of stream half-closes the other side and the
opposite direction goes on until it ends too (bounded by
:data:`HALF_CLOSE_GRACE` of silence). A reset or a failed write ends both
at once. Either way one :class:`~proxy.events.ConnectionClosed` says who
closed and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from enum import IntEnum

from proxy.events import CONNECTION_RESET, Closer
from proxy.net.client_certs import explain_alert
from proxy.net.context import Conn, Observer
from proxy.net.streams import CHUNK_SIZE, Stream
from proxy.observe.enums import Direction
from proxy.observe.events import Event

log = logging.getLogger("h2scope.relay")

HALF_CLOSE_GRACE = 10.0
"""Seconds the still-open direction may stay silent after the other one ended."""
CAUSE_GRACE = 0.5
"""Seconds a failed write waits for the other direction's read to say why."""
TURN = 0.02
"""Seconds of observing one connection's bytes before the others get a turn: a
read of 256 KiB of 13-byte frames (a rapid-reset or CONTINUATION flood) took most
of a second to observe, and every other connection through h2scope waited for it
(docs/performance.md, "Fairness")."""
MIN_TURN_BYTES = 4096
FIRST_TURN_BYTES = 16384
"""Where a connection starts (its cost per byte unknown): at 1,200 frames of a flood."""


class Outcome(IntEnum):
    EOF = 0
    """The source closed its sending side cleanly."""
    SOURCE_FAILED = 1
    """Reading from the source failed (reset, TLS error)."""
    SINK_FAILED = 2
    """Writing to the other side failed: it went away."""
    IDLE = 3
    """Silent past the grace period after the other direction ended."""


@dataclass(frozen=True, slots=True)
class PumpResult:
    direction: Direction
    outcome: Outcome
    error: str | None = None
    exc: BaseException | None = None


class _Pumps:
    """What a relay's two pumps share: where the first end came, and whether the relay
    is stopping (no pump starts another read)."""

    __slots__ = ("ends", "stopping")

    def __init__(self) -> None:
        self.stopping = False
        self.ends: dict[Direction, int] = {}
        """The first direction whose sender ended its bytes (EOF) → how many of the
        other direction's bytes had been read by then (Observer.close's ``ends``);
        the other's end, after it, tells nothing more."""


def _side(direction: Direction, *, source: bool) -> Closer:
    c2s = direction is Direction.C2S
    return Closer.CLIENT if c2s == source else Closer.SERVER


class Observed:
    """The observer of one connection, guarded so that a bug in it never stops bytes."""

    def __init__(self, conn: Conn, observer: Observer | None) -> None:
        self.conn = conn
        self.observer = observer
        self.failed: str | None = None

    def feed(self, direction: Direction, data: bytes, t: float) -> list[Event]:
        if self.observer is None or self.failed:
            return []
        try:
            return self.observer.feed(direction, data, t)
        except Exception as exc:
            log.exception("[conn %d] observer failed; relaying unobserved", self.conn.id)
            self.failed = f"{type(exc).__name__}: {exc}"
            return []

    def close(self, t: float, closed_by: str | None = None,
              ends: dict[Direction, int] | None = None) -> list[Event]:
        if self.observer is None or self.failed:
            return []
        try:
            return self.observer.close(t, closed_by, ends or None)
        except Exception:
            log.exception("[conn %d] observer failed at close", self.conn.id)
            return []


async def _pump(conn: Conn, src: Stream, dst: Stream, direction: Direction,
                observed: Observed, protocol: str, publish: bool,
                idle: asyncio.Event, pumps: _Pumps) -> PumpResult:
    turn = FIRST_TURN_BYTES
    """Most bytes observed in one turn of the loop: smaller while this direction's
    bytes cost more than :data:`TURN` to observe (a flood of tiny frames), so the
    other connections are served meanwhile; doubled up to a whole read while they
    cost less than a quarter of it."""
    while not pumps.stopping:
        try:
            if idle.is_set():
                async with asyncio.timeout(HALF_CLOSE_GRACE):
                    data = await src.read_some()
            else:
                data = await src.read_some()
        except TimeoutError:
            return PumpResult(direction, Outcome.IDLE)
        except Exception as exc:
            return PumpResult(direction, Outcome.SOURCE_FAILED, _err(exc), exc)
        if not data:
            if not pumps.ends:
                pumps.ends[direction] = dst.bytes_in  # (what the other side had sent)
            dst.write_eof()
            with contextlib.suppress(Exception):
                await dst.drain()
            return PumpResult(direction, Outcome.EOF)
        while True:
            piece = data if len(data) <= turn else data[:turn]
            if publish:
                # Back-pressure from the sinks first: from the write to the hand-over
                # there is no await, so the other direction's pump cannot observe (or
                # record) a response to these bytes before they are observed
                # themselves. (Observed after the drain, a request was recorded after
                # its response, under load: the server "opened" the stream, on a clock
                # that ran backwards.)
                await conn.room()
            try:
                dst.write(piece)
            except Exception as exc:
                return PumpResult(direction, Outcome.SINK_FAILED, _err(exc), exc)
            if publish:
                t = time.time()
                began = time.perf_counter()
                conn.put_chunk(direction, piece, t, observed.feed(direction, piece, t),
                               protocol)
                took = time.perf_counter() - began
                if took > TURN:
                    turn = max(MIN_TURN_BYTES, int(len(piece) * TURN / took))
                elif turn < CHUNK_SIZE and took < TURN / 4 and len(piece) == turn:
                    turn *= 2
            if len(piece) == len(data):
                break
            data = data[len(piece):]
            # (the rest of the read after the other connections' turn)
            await asyncio.sleep(0)
        try:
            await dst.drain()
        except Exception as exc:
            return PumpResult(direction, Outcome.SINK_FAILED, _err(exc), exc)
    return PumpResult(direction, Outcome.IDLE)  # (stopping: the relay ends it)


def _cause(results: list[PumpResult]) -> PumpResult:
    """Of pumps that ended together, the one that says most about why: a failed read
    (the peer's own error), then a failed write, then the rest."""
    order = (Outcome.SOURCE_FAILED, Outcome.SINK_FAILED, Outcome.IDLE, Outcome.EOF)
    return min(results, key=lambda r: order.index(r.outcome))


def _err(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ConnectionResetError):
        return CONNECTION_RESET
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def relay(conn: Conn, client: Stream, server: Stream, *, protocol: str,
                observer: Observer | None = None, publish: bool = True) -> None:
    """Relay until both directions end; publishes ConnectionClosed and closes both streams.

    ``observer`` decodes HTTP/2 (``protocol`` ``h2``/``h2c``); ``publish=False``
    relays without publishing the bytes (ignored hosts are passed through unseen).
    """
    observed = Observed(conn, observer)
    conn.byte_counts = lambda: (client.bytes_in, server.bytes_in)
    idle = asyncio.Event()
    pumps = _Pumps()
    tasks = {
        asyncio.create_task(_pump(conn, client, server, Direction.C2S, observed, protocol,
                                  publish, idle, pumps)),
        asyncio.create_task(_pump(conn, server, client, Direction.S2C, observed, protocol,
                                  publish, idle, pumps)),
    }
    first: PumpResult | None = None
    lingered = False
    """The other side stayed silent for HALF_CLOSE_GRACE after the first end."""
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        first = _cause([t.result() for t in done])
        if first.outcome is Outcome.SINK_FAILED and pending:
            # A side we could not write to may say why it went away on the other pump's
            # read (a TLS alert, such as a server's certificate_required): wait for it.
            more, pending = await asyncio.wait(pending, timeout=CAUSE_GRACE)
            first = _cause([t.result() for t in done | more])
        if first.outcome is Outcome.EOF and pending:
            idle.set()
            # The other pump may be waiting in a read it began before this end: its
            # own timeout does not cover it, so silence is watched here as well
            # (a server that keeps its half open after the client left held the
            # connection until h2scope stopped).
            other = server if first.direction is Direction.C2S else client
            gone = client if other is server else server
            while pending:
                heard = other.bytes_in
                ended, pending = await asyncio.wait(pending, timeout=HALF_CLOSE_GRACE)
                lingered |= any(t.result().outcome is Outcome.IDLE for t in ended)
                # (silent: nothing read, and not waiting for the side that ended to
                # read what it was sent — a slow download after the client's half-close
                # goes on)
                if pending and other.bytes_in == heard and not gone.writing_paused:
                    lingered = True
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
        else:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    except asyncio.CancelledError:
        # h2scope is stopping: the connection ends here, and what it leaves unfinished
        # is said as a recording of it says it (check, the UI): the same findings.
        # The pumps stop first: one still running would feed the observer after its
        # close (the summary would count less than the capture holds). A pump hands
        # what it fed the observer to the sinks without awaiting in between, so a
        # cancelled one leaves the observer no bytes the recording never gets.
        pumps.stopping = True
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        t = time.time()
        with contextlib.suppress(Exception):
            closing = observed.close(t, "proxy")
            if closing:
                await conn.publish_chunk(Direction.C2S, b"", t, closing, protocol)
            await conn.closed(Closer.PROXY, "closed because h2scope is stopping")
        raise
    finally:
        for task in tasks:
            task.cancel()
        if first is None or first.outcome is not Outcome.EOF:
            # A reset or a vanished peer: the other side learns at once (RST), not by a
            # clean close that could pass for a complete response.
            client.abort()
            server.abort()
        await _close(client, server)
    assert first is not None
    explained = None
    if (first.outcome is Outcome.SOURCE_FAILED and first.direction is Direction.S2C
            and isinstance(first.exc, ssl.SSLError)):  # the server's read: its TLS alert
        explained = explain_alert(first.exc.reason or str(first.exc), conn.target or "the server",
                                  getattr(server, "client_cert", None))
        if explained:
            await conn.error("server-tls", *explained)
    t = time.time()
    by, reason = _describe(first)
    error = first.error or observed.failed
    if explained:  # (said once, in words, not twice as the SSL library's text)
        reason, error = "the server refused the TLS connection", explained[0]
    if lingered:
        still = _side(first.direction, source=False).name.lower()
        reason += (f"; the {still} kept its side open, silent for {HALF_CLOSE_GRACE:g} s: "
                   "h2scope closed it")
    ends = pumps.ends
    closing = observed.close(t, by.name.lower(), ends)
    if closing:
        await conn.publish_chunk(Direction.C2S, b"", t, closing, protocol)
    await conn.closed(by, reason, error, ends=ends if publish else None)


def _describe(result: PumpResult) -> tuple[Closer, str]:
    src = _side(result.direction, source=True)
    dst = _side(result.direction, source=False)
    match result.outcome:
        case Outcome.EOF:
            return src, f"{src.name.lower()} closed the connection"
        case Outcome.SOURCE_FAILED:
            return src, f"{src.name.lower()} connection failed ({result.error})"
        case Outcome.SINK_FAILED:
            return dst, f"{dst.name.lower()} went away while data was sent to it ({result.error})"
        case _:
            return Closer.PROXY, (f"{src.name.lower()} idle for {HALF_CLOSE_GRACE:.0f} s after "
                                  "the other side closed")


async def _close(*streams: Stream) -> None:
    await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
