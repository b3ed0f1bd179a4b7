"""Recording one connection as the observer sees it: the relay-side tap.

:class:`RecordingObserver` wraps a :class:`ConnectionObserver`. The relay
calls :meth:`feed` with each chunk it forwards (instead of calling the
observer directly) and gets the same events back; the tap writes what the
capture needs to reproduce them:

* a FRAME record per ``FrameObserved`` (``frame.raw``, the relayed bytes);
* a RAW record for the client preface, and for bytes the observer could not
  frame — after a direction desynced, the bytes from the desync point on;
* at :meth:`close`, a RAW record for an incomplete frame left in a buffer,
  then the CLOSE record.

Desynced bytes are the one thing events do not carry, which is why this runs
next to the observer rather than behind the event bus: the tap keeps a copy
of a direction's unframed tail only while a frame is incomplete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proxy.capture.replay import lost_part
from proxy.capture.writer import CaptureWriter
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import Desynced, Event, FrameObserved, PrefaceObserved


class RecordingObserver:
    """A :class:`ConnectionObserver` whose input is also written to a capture.

    ``meta`` is the connection's JSON-able metadata (docs/capture-format.md);
    the observer's construction options are added to it under ``"observer"``
    so a reader rebuilds the same observer.
    """

    def __init__(self, writer: CaptureWriter, conn_id: int, meta: Mapping[str, Any], *,
                 t: float, preface: str = "required", max_table_size: int | None = None,
                 partial: bool = False, wall_clock: bool = False) -> None:
        self.writer = writer
        self.conn_id = conn_id
        self.wall_clock = wall_clock
        """The ``t`` given is wall-clock time (a packet's): records keep it as their
        wall clock too, instead of the time they are written."""
        self.observer = ConnectionObserver(preface=preface, max_table_size=max_table_size,
                                           partial=partial)
        options: dict[str, Any] = {"preface": preface}
        if max_table_size is not None:
            options["max_table_size"] = max_table_size
        if partial:
            options["partial"] = True
        writer.connection(conn_id, {**meta, "observer": options}, t=t, wall=self._wall(t))
        self._closed = False
        self.bytes = [0, 0]
        """Bytes fed each way (index: Direction), said in the CLOSE record as the relay's are."""

    def _wall(self, t: float) -> float | None:
        return t if self.wall_clock else None

    def feed(self, direction: Direction, data: bytes, t: float) -> list[Event]:
        """Observe and record ``data`` sent in ``direction`` at ``t``; return the events."""
        side = self.observer.sides[direction]
        writer = self.writer
        conn = self.conn_id
        wall = self._wall(t)
        self.bytes[direction] += len(data)
        if side.desynced:
            events = self.observer.feed(direction, data, t)
            if data:
                writer.raw(conn, direction, bytes(data), t=t, wall=wall)
            return events
        held = bytes(side.buffer) if side.buffer else b""
        events = self.observer.feed(direction, data, t)
        consumed = 0
        frame = writer.frame
        for ev in events:
            if type(ev) is FrameObserved:
                raw = ev.frame.raw
                consumed += len(raw)
                frame(conn, direction, raw, t=t, wall=wall)
            elif type(ev) is PrefaceObserved:
                consumed += len(CONNECTION_PREFACE)
                writer.raw(conn, direction, CONNECTION_PREFACE, t=t, wall=wall)
            elif type(ev) is Desynced:
                rest = (held + bytes(data))[consumed:]
                if rest:
                    writer.raw(conn, direction, rest, t=t, wall=wall)
        return events

    def upgrade_h2c(self, *, http2_settings: bytes, request_headers: Sequence[tuple[str, str]],
                    t: float) -> list[Event]:
        self.writer.h2c_upgrade(self.conn_id, http2_settings=http2_settings,
                                request_headers=request_headers, t=t, wall=self._wall(t))
        return self.observer.upgrade_h2c(http2_settings=http2_settings,
                                         request_headers=tuple(request_headers), t=t)

    def close(self, t: float, *, closed_by: str | None = None,
              error: str | None = None, cut: bool = False,
              reason: str | None = None) -> list[Event]:
        """Record the end of the connection and return the observer's closing events.

        ``cut``: the connection did not end, the source did (a packet capture or a
        net log that stops while it is open): what followed is unknown, so the
        observer judges it as an excerpt (no 'unfinished' or 'never acknowledged'
        verdicts), and the CLOSE record says so for every later reader."""
        if self._closed:
            return []
        self._closed = True
        if cut:
            lost_part(self.observer)
        for side in self.observer.sides:
            if side.buffer and not side.desynced:
                # An incomplete frame (or preface): keep it so the reader sees the same end.
                self.writer.raw(self.conn_id, side.direction, bytes(side.buffer), t=t,
                                wall=self._wall(t))
        details: dict[str, Any] = {"bytes_c2s": self.bytes[0], "bytes_s2c": self.bytes[1]}
        if cut:
            details["cut"] = True
        if reason is not None:
            details["reason"] = reason
        self.writer.close_connection(self.conn_id, t=t, closed_by=closed_by, error=error,
                                     wall=self._wall(t), details=details)
        return self.observer.close(t, closed_by)
