"""The recorder: an event-bus sink that writes every batch to a capture file.

It subscribes to :class:`proxy.events.EventBus` as a *normal* (non-lossy)
sink, so when the disk is slow the bus waits and the relay stops reading
(architecture principle 5): :meth:`CaptureRecorder.handle` awaits
:meth:`CaptureWriter.drain` whenever the writer's bounded buffer is full.

What it writes, per batch:

* connection events fold into the connection's metadata (addresses, mode,
  target, TLS on each leg, certificate summary); the CONNECTION record is
  written when relaying starts (or at the first bytes, or at close for a
  connection that never relayed);
* h2/h2c chunks: a FRAME record per ``FrameObserved`` (its raw bytes and the
  observer's ``t``) or per frame of a ``FramesCut`` (from a proxy that only
  records, :mod:`proxy.observe.framer`), a RAW record for the preface, and RAW records for bytes
  the observer could not frame (from a ``Desynced`` on). The recorder keeps a
  copy of each direction's bytes only while a frame is incomplete;
* other protocols' chunks (``http/1.1``, ``tcp``): RAW records, plus an HTTP1
  record per ``Http1MessageObserved`` (its head, rebuilt from the start line
  and fields; the body bytes are in the RAW records);
* the observer's closing batch (no bytes, events) and ``ConnectionClosed``:
  any incomplete frame as RAW, then the CLOSE record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from proxy.capture.writer import CaptureWriter
from proxy.events import (
    Batch,
    ConnectionClosed,
    ConnectionOpened,
    Http1MessageObserved,
    Leg,
    ProxyErrorRaised,
    RelayStarted,
    TargetChosen,
    TlsEstablished,
    tls_leg_meta,
)
from proxy.net.http1 import wire
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import Desynced, FrameObserved, PrefaceObserved
from proxy.observe.framer import FramesCut

log = logging.getLogger("h2scope.capture")
SLOW_DISK_REPORT = 0.5
"""Seconds of waiting for the disk worth a warning (the console says so)."""
SLOW_DISK_EVERY = 10.0
"""Seconds between two such warnings."""
_H2 = ("h2", "h2c")
_MAX_PENDING = (1 << 24) + 9 + len(CONNECTION_PREFACE)
"""More unframed bytes than the largest possible frame: the observer has stopped
(failed, or the relay publishes without it). Keep them as RAW instead of growing."""


def _split_target(target: str) -> tuple[str, int | None]:
    host, _, port = target.rpartition(":")
    if not host:
        return target, None
    return host.strip("[]"), int(port) if port.isdigit() else None


@dataclass(slots=True)
class _Conn:
    meta: dict[str, Any] = field(default_factory=dict)
    written: bool = False
    close_t: float | None = None
    """The ``t`` the observer was closed with (its closing batch), once it was."""
    pending: tuple[bytearray, bytearray] = field(default_factory=lambda: (bytearray(),
                                                                          bytearray()))
    raw_only: list[bool] = field(default_factory=lambda: [False, False])
    errors: list[dict[str, Any]] = field(default_factory=list)


class CaptureRecorder:
    """Bus sink writing a capture. ``handle`` is the bus entry point; ``consume``
    does the work synchronously (and is what tests drive)."""

    def __init__(self, writer: CaptureWriter) -> None:
        self.writer = writer
        self.conns: dict[int, _Conn] = {}
        self._reported = 0.0
        self._reported_at = 0.0

    async def handle(self, batch: Batch) -> None:
        await self.handle_many((batch,))

    async def handle_many(self, batches: Sequence[Batch]) -> None:
        """Everything the bus queued since the last call: one wake-up of the sink's
        task for the group (under load, many relayed reads), not one per batch."""
        consume = self.consume
        for batch in batches:
            consume(batch)
        writer = self.writer
        if writer.full:
            await writer.drain()
        if writer.waited - self._reported >= SLOW_DISK_REPORT \
                and time.monotonic() - self._reported_at >= SLOW_DISK_EVERY:
            log.warning("recording slows the proxy down: it waited %.1f s for the disk to "
                        "take the capture %s (nothing is lost; a faster disk, or "
                        "record.max_data_bytes, would help)", writer.waited - self._reported,
                        writer.path)
            self._reported, self._reported_at = writer.waited, time.monotonic()

    def close(self) -> None:
        """Close the writer (connections still open stay open in the capture).
        Raises OSError when the file could not be written to the end."""
        self.writer.close()

    def failed_with(self, exc: Exception) -> None:
        """The bus stopped this sink (:meth:`failure_message` said why): a write error
        lets the file go, so deleting it frees the disk while h2scope runs on."""
        if isinstance(exc, OSError):
            try:
                self.writer.abandon(exc)
            except OSError:  # (closing a file whose disk is full: nothing more to do)
                pass

    def failure_message(self, exc: Exception) -> str | None:
        """The line the bus logs when this sink fails: for a write error, what
        happened to the recording (None: a bug, logged with its traceback)."""
        if not isinstance(exc, OSError):
            return None
        path = self.writer.path
        return (f"recording stopped: cannot write {path}: {exc.strerror or exc}; the proxy "
                f"goes on relaying, unrecorded. The capture holds what was written before "
                f"(h2scope check {path} reads it); free space, or record elsewhere "
                f"(--record FILE) or less (record.max_data_bytes)")

    # ----------------------------------------------------------------- batches

    def consume(self, batch: Batch) -> None:
        conn = self.conns.get(batch.conn_id)
        if conn is None:
            conn = self.conns[batch.conn_id] = _Conn()
        if batch.direction is not None:
            if batch.protocol and "protocol" not in conn.meta:
                conn.meta["protocol"] = batch.protocol
            if batch.data or not any(isinstance(ev, (FrameObserved, FramesCut))
                                     for ev in batch.events):
                self._chunk(batch, conn)
            return
        for ev in batch.events:
            self._connection_event(batch, conn, ev)

    def _ensure_written(self, conn_id: int, conn: _Conn, t: float) -> None:
        if not conn.written:
            conn.written = True
            meta = dict(conn.meta)
            if str(meta.get("protocol", "h2")) in _H2:
                meta.setdefault("observer", {"preface": "required"})
            self.writer.connection(conn_id, meta, t=t, wall=t)

    def _chunk(self, batch: Batch, conn: _Conn) -> None:
        cid = batch.conn_id
        direction = batch.direction
        assert direction is not None
        self._ensure_written(cid, conn, batch.t)
        writer = self.writer
        for ev in batch.events:
            if hasattr(ev, "http2_settings") and hasattr(ev, "request_headers"):
                writer.h2c_upgrade(cid, http2_settings=ev.http2_settings,
                                   request_headers=ev.request_headers, t=batch.t, wall=batch.t)
        if (batch.protocol or conn.meta.get("protocol")) not in _H2:
            if batch.data:
                writer.raw(cid, direction, batch.data, t=batch.t, wall=batch.t)
            for ev in batch.events:  # the relay publishes a message with its last bytes
                if type(ev) is Http1MessageObserved:
                    self._http1(cid, ev)
            return
        if not batch.data:
            if batch.events and not any(hasattr(ev, "http2_settings") for ev in batch.events):
                self._finish(cid, conn, batch.t)  # the observer's closing events
            return
        d = int(direction)
        data = batch.data
        if conn.raw_only[d]:
            writer.raw(cid, direction, data, t=batch.t, wall=batch.t)
            return
        pending = conn.pending[d]
        held = len(pending)  # an incomplete frame's start, before ``data``
        consumed = 0  # bytes of pending + data written as records, from the start
        frames: list[tuple[bytes, float]] = []
        for ev in batch.events:
            kind = type(ev)
            if kind is FrameObserved:
                raw = cast(FrameObserved, ev).frame.raw
                consumed += len(raw)
                frames.append((raw, ev.t))
                continue
            if kind is FramesCut:  # a proxy that only records: frames, not decoded
                t = ev.t
                for raw in cast(FramesCut, ev).frames:
                    consumed += len(raw)
                    frames.append((raw, t))
                continue
            if frames:  # keep the records in wire order
                writer.frames(cid, direction, frames, wall=batch.t)
                frames = []
            if kind is PrefaceObserved:
                consumed += len(CONNECTION_PREFACE)
                writer.raw(cid, direction, CONNECTION_PREFACE, t=ev.t, wall=batch.t)
            elif kind is Desynced:
                whole = bytes(pending) + data if held else data  # (once per connection)
                if len(whole) > consumed:
                    writer.raw(cid, direction, bytes(whole[consumed:]), t=ev.t, wall=batch.t)
                consumed = held + len(data)
                conn.raw_only[d] = True
        if frames:
            writer.frames(cid, direction, frames, wall=batch.t)
        # Keep only what is not consumed (the start of a frame not complete yet): a
        # large read is never copied whole to carry its last few bytes over.
        if consumed >= held:
            if held:
                pending.clear()
            if consumed - held < len(data):
                pending += memoryview(data)[consumed - held:]
        else:
            del pending[:consumed]
            pending += data
        if len(pending) > _MAX_PENDING:
            writer.raw(cid, direction, bytes(pending), t=batch.t, wall=batch.t)
            pending.clear()
            conn.raw_only[d] = True

    def _finish(self, cid: int, conn: _Conn, t: float) -> None:
        """The observer was closed at ``t``: keep incomplete frames as RAW now, so a
        reader's observer ends the same way; the CLOSE record (with this ``t``)
        follows with ``ConnectionClosed``."""
        for d in (Direction.C2S, Direction.S2C):
            pending = conn.pending[d]
            if pending and not conn.raw_only[d]:
                self.writer.raw(cid, d, bytes(pending), t=t, wall=t)
            pending.clear()
        conn.close_t = t

    # ------------------------------------------------------- connection events

    def _connection_event(self, batch: Batch, conn: _Conn, ev: Any) -> None:
        meta = conn.meta
        match ev:
            case ConnectionOpened():
                meta["client"] = {"ip": ev.client[0], "port": ev.client[1]}
                meta["mode"] = ev.mode
                if ev.target:
                    self._target(meta, ev.target)
                meta["opened"] = ev.t
            case TargetChosen():
                self._target(meta, ev.target)
                meta["via"] = ev.via
                meta["intercept"] = ev.intercept
                meta["target_at"] = ev.t
            case TlsEstablished():
                leg = tls_leg_meta(ev)
                meta["client_tls" if ev.leg is Leg.CLIENT else "server_tls"] = leg
                if ev.leg is Leg.CLIENT and ev.sni:
                    meta["sni"] = ev.sni
            case RelayStarted():
                meta["protocol"] = ev.protocol
                self._target(meta, ev.target)
                if ev.server_ip:
                    meta.setdefault("server", {})["ip"] = ev.server_ip
                self._ensure_written(batch.conn_id, conn, ev.t)
            case ProxyErrorRaised():
                conn.errors.append({"stage": ev.stage, "message": ev.message, "hint": ev.hint,
                                    "at": ev.t})
                if ev.client_hello is not None:  # a failed handshake: who it was
                    meta.setdefault("client_tls", {})["client_hello"] = ev.client_hello.as_json()
            case Http1MessageObserved():
                self._ensure_written(batch.conn_id, conn, ev.t)
                self._http1(batch.conn_id, ev)
            case ConnectionClosed():
                self._closed(batch.conn_id, conn, ev)

    def _http1(self, cid: int, ev: Http1MessageObserved) -> None:
        """An HTTP1 record: the message's head, rebuilt from its start line and
        fields (the body's bytes are in the RAW records)."""
        head = "\r\n".join([ev.start_line, *(f"{n}: {v}" for n, v in ev.headers)])
        self.writer.http1(cid, ev.direction, wire(head + "\r\n\r\n"),
                          t=ev.started, wall=ev.t, body_truncated=not ev.complete)

    @staticmethod
    def _target(meta: dict[str, Any], target: str) -> None:
        if not target or target == "?":
            return
        host, port = _split_target(target)
        server = meta.setdefault("server", {})
        server["host"] = host
        if port is not None:
            server["port"] = port
        meta["target"] = target

    def _closed(self, cid: int, conn: _Conn, ev: ConnectionClosed) -> None:
        self._ensure_written(cid, conn, ev.t)
        if conn.close_t is None:
            self._finish(cid, conn, ev.t)
        t = conn.close_t if conn.close_t is not None else ev.t
        details: dict[str, Any] = {"reason": ev.reason, "bytes_c2s": ev.bytes_c2s,
                                   "bytes_s2c": ev.bytes_s2c}
        if conn.meta.get("protocol"):  # (what it became: http/1.1, then websocket or h2c)
            details["protocol"] = conn.meta["protocol"]
        if ev.ends:  # (a side that ended its bytes first, and what the other had sent)
            details["ends"] = dict(ev.ends)
        if conn.errors:
            details["errors"] = conn.errors
        self.writer.close_connection(cid, t=t, wall=ev.t, closed_by=ev.closed_by.name.lower(),
                                     error=ev.error, details=details)
        self.conns.pop(cid, None)
