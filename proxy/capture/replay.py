"""Re-running the observer over a capture (architecture principle 6).

Captures store raw bytes, never decoded views, so every view of a capture —
the UI, exports, ``h2scope view`` — comes from :func:`replay`: one
:class:`~proxy.observe.connection.ConnectionObserver` per connection, fed the
recorded bytes in recorded order with the recorded times. Because the observer
is deterministic and the records are the same bytes in the same order, the
events equal the ones the live observer produced.

A DATA payload capped by ``max_data_bytes`` is zero-padded back to the length
its frame header states before it is fed (see :meth:`Record.frame_bytes`), so
flow-control windows, stream states and everything after it stay exact; only
the DATA bytes themselves are unknown, and :attr:`Replayed.record` says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from proxy.capture.format import RecordType
from proxy.capture.reader import BadRecord, CaptureReader, Record
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import Event
from proxy.observe.records import positional, record

_FRAME, _RAW = int(RecordType.FRAME), int(RecordType.RAW)
_NO_OBSERVER = ("http/1.1", "http/1.0", "http/1", "tcp", "websocket")


@record
class Replayed:
    """One record and the observer events it produced (possibly none)."""

    record: Record
    events: tuple[Event, ...] = ()


_replayed = positional(Replayed)


def observer_for(meta: dict[str, object]) -> ConnectionObserver | None:
    """The observer a connection's metadata calls for; None for non-h2 connections.

    ``meta["observer"]`` holds the keyword arguments the live observer was built
    with (``preface``, ``max_table_size``, ``partial``); the default is a real
    connection (``preface="required"``).
    """
    protocol = str(meta.get("protocol") or "h2").lower()
    if protocol in _NO_OBSERVER:
        return None
    kwargs = meta.get("observer")
    opts = dict(kwargs) if isinstance(kwargs, dict) else {}
    table = opts.get("max_table_size")
    return ConnectionObserver(preface=str(opts.get("preface", "required")),
                              max_table_size=int(table) if table is not None else None,
                              partial=bool(opts.get("partial", False)))


def lost_everywhere(observers: Mapping[int, ConnectionObserver | None]) -> None:
    """Damaged bytes of the file, of no one connection (a LOST record of connection
    0, or damage the reader skipped): every connection open there is an excerpt
    from here on (:func:`lost_part`)."""
    for obs in observers.values():
        lost_part(obs)


def lost_part(observer: ConnectionObserver | None) -> None:
    """A LOST record: part of this connection is not in the capture (an import's
    lost packets). What the other direction says about the missing part — a
    SETTINGS ACK for settings sent after the gap — is not a violation: from
    here the observer judges the connection as an excerpt, as the importer's did."""
    if observer is not None:
        observer.partial = True
        client = observer.sides[Direction.C2S]
        if client.preface == "required" and not client.buffer:
            client.preface = "optional"  # (the lost part may have held the preface)
        for side in observer.sides:
            if side.lost_above is None:  # (the first loss: later ones are above it)
                side.lost_above = side.highest_stream_id
        for stream in observer.streams.values():
            # In flight across the gap: some of its DATA may be in the missing part.
            stream.content_length = [-1, -1]


def upgrade_request(info: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """An H2C_UPGRADE record's request (stream 1 of the connection, RFC 7540 §3.2):
    the HTTP/1.1 request that asked for the upgrade, as the observer was given it."""
    return tuple((str(n), str(v)) for n, v in info.get("request_headers", ()))


def recorded_ends(info: dict[str, Any]) -> dict[Direction, int] | None:
    """A CLOSE record's ``ends`` (``{"s2c": n}``) as ConnectionObserver.close takes it."""
    ends = info.get("ends")
    if not isinstance(ends, dict):
        return None
    out = {Direction[str(k).upper()]: v for k, v in ends.items()
           if str(k).upper() in Direction.__members__ and isinstance(v, int)}
    return out or None


class Observers(dict[int, ConnectionObserver | None]):
    """The per-connection observers of a capture being read (connection id → its
    observer; None for a connection that is not HTTP/2).

    Pass :meth:`damaged` to the reader as its ``on_problem``: a damaged stretch of
    the file may have held a record of any connection open at that point, so each
    is judged as an excerpt from there on, as after a LOST record.
    """

    def __init__(self) -> None:
        super().__init__()
        self.damage: list[BadRecord] = []
        """Damage reported but not yet yielded as a LOST item by :func:`replay_records`."""

    def damaged(self, problem: BadRecord) -> None:
        lost_everywhere(self)
        self.damage.append(problem)

    def reporter(self, then: Callable[[BadRecord], object] | None = None,
                 ) -> Callable[[BadRecord], None]:
        """A reader's ``on_problem``: :meth:`damaged`, then ``then`` (the caller's own
        reporting: a list's ``append``, a message)."""
        def report(problem: BadRecord) -> None:
            self.damaged(problem)
            if then is not None:
                then(problem)
        return report

    def lost_items(self, at: Record | None) -> Iterator[Replayed]:
        """A LOST item (connection 0: any connection) per damaged stretch reported, at
        its byte offset and the time of the record ``at`` that follows it."""
        for p in self.damage:
            body = json.dumps({"count": p.skipped, "unit": "bytes", "reason": (
                f"damaged bytes skipped at byte offset {p.offset} ({p.reason}); the "
                "connections open here are judged as excerpts from here on")}).encode()
            yield Replayed(record=Record(
                offset=p.offset, type=RecordType.LOST, flags=0, conn_id=0,
                seq=at.seq if at else 0, t=at.t if at else 0.0, wall=at.wall if at else 0.0,
                body=body))
        self.damage.clear()


_OPEN_AT_END = json.dumps({"count": 0, "reason": (
    "the capture ends here with this connection open (no END record: the recording was "
    "killed, or the file cut short): what it did next is not in the capture")}).encode()


def replay_records(records: Iterator[Record], *, close_open: bool = False,
                   observers: Observers | None = None) -> Iterator[Replayed]:
    """Feed ``records`` through per-connection observers (``observers``, when the
    caller's reader reports damage to them).

    A connection whose CONNECTION record is missing (the capture was cut and
    resumed, or the record damaged) gets an observer on its first h2 record that
    judges it as an excerpt, whether or not its preface is there. With
    ``close_open``, connections still open at the end are closed (as if the
    capture ended them), so their unfinished business is reported — except
    what the missing rest could have settled, when the capture has no END
    record (the recording was killed, or the file cut short).
    """
    if observers is None:
        observers = Observers()
    last: Record | None = None
    for rec in records:
        if observers.damage:
            yield from observers.lost_items(rec)
        rtype = rec.type
        conn = rec.conn_id
        if rtype in (_FRAME, _RAW):
            if conn not in observers:
                # No CONNECTION record seen (the reading began after it, or it was
                # damaged): an h2 connection of which this is an excerpt.
                observers[conn] = ConnectionObserver(preface="optional", partial=True)
            obs = observers[conn]
            if obs is None:  # HTTP/1.1 or opaque bytes (before any h2c upgrade)
                yield Replayed(record=rec)
                last = rec
                continue
            data = rec.frame_bytes() if rtype == _FRAME else rec.body
            yield _replayed(rec, tuple(obs.feed(rec.direction, data, rec.t,
                                                cut=rtype == _FRAME and rec.truncated)))
        elif rtype == RecordType.CONNECTION:
            observers[conn] = observer_for(rec.json())
            yield Replayed(record=rec)
        elif rtype == RecordType.H2C_UPGRADE:
            info = rec.json()
            obs = observers.get(conn)
            if obs is None:
                obs = observers[conn] = ConnectionObserver()
            events = obs.upgrade_h2c(http2_settings=bytes.fromhex(info.get("http2_settings", "")),
                                     request_headers=upgrade_request(info), t=rec.t)
            yield Replayed(record=rec, events=tuple(events))
        elif rtype == RecordType.CLOSE:
            obs = observers.pop(conn, None)
            info = rec.json()
            if info.get("cut"):  # (the source ended, not the connection: see tap.close)
                lost_part(obs)
            events = obs.close(rec.t, info.get("closed_by"), recorded_ends(info)) \
                if obs is not None else []
            yield Replayed(record=rec, events=tuple(events))
        else:
            if rtype == RecordType.LOST:
                # (connection 0: damaged bytes of no one connection — every connection
                # open then lost part, as when the reader reports the damage itself)
                if conn:
                    lost_part(observers.get(conn))
                else:
                    lost_everywhere(observers)
            yield Replayed(record=rec)
        last = rec
    if observers.damage:
        yield from observers.lost_items(last)
    cut = last is not None and last.type != RecordType.END
    if cut:
        assert last is not None
        for conn, obs in observers.items():
            # Open when the capture stops short (a killed recording, a cut file): what
            # it did next is not here, so its open streams are excerpts, not answers.
            lost_part(obs)
            yield Replayed(record=Record(
                offset=last.offset, type=RecordType.LOST, flags=0, conn_id=conn,
                seq=last.seq, t=last.t, wall=last.wall, body=_OPEN_AT_END))
    if close_open and last is not None:
        for conn, obs in observers.items():
            if obs is not None:
                end = Record(offset=last.offset, type=RecordType.CLOSE, flags=0, conn_id=conn,
                             seq=last.seq, t=last.t, wall=last.wall,
                             body=b'{"closed_by":null,"error":"capture ended","cut":true}')
                yield Replayed(record=end, events=tuple(obs.close(last.t)))


def replay(path: str | os.PathLike[str], *, close_open: bool = False,
           on_problem: Callable[[BadRecord], None] | None = None) -> Iterator[Replayed]:
    """Every record of the capture at ``path`` with the events it produced."""
    observers = Observers()
    with CaptureReader(path, on_problem=observers.reporter(on_problem)) as reader:
        yield from replay_records(reader.records(), close_open=close_open, observers=observers)


def replay_observer(path: str | os.PathLike[str], *, close_open: bool = False,
                    on_problem: Callable[[BadRecord], None] | None = None,
                    ) -> Iterator[tuple[int, Event]]:
    """``(conn_id, event)`` for every observer event of the capture, in order."""
    for item in replay(path, close_open=close_open, on_problem=on_problem):
        conn = item.record.conn_id
        for ev in item.events:
            yield conn, ev
