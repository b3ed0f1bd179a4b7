"""What a replay sends: one :class:`ConnectionPlan` per recorded connection.

A plan holds the client side of one connection twice over:

* ``sends``, the exact client bytes in recorded order with the recorded gaps
  (preface, every client frame's raw bytes) — for ``--mode verbatim``;
* ``entries``, the same frames as frame-script entries (header lists, DATA,
  flags by name) — for ``--mode reencode``, which builds new HPACK blocks;

plus the original per-stream outcomes to compare the replay with, and notes
on what the capture cannot reproduce (DATA truncated by ``max_data_bytes``,
HTTP/1.1 connections, an ``Upgrade: h2c`` first request).

A YAML frame script gives a plan too: its ``sends`` are the entries encoded
frame by frame (:func:`~proxy.replay.script_frames.encode_entry`) and it has
no original outcomes.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hpack

from proxy.capture.format import RecordType
from proxy.capture.reader import BadRecord, CaptureReader
from proxy.capture.replay import Observers, Replayed, replay_records
from proxy.capture.script import build_script, upgrade_entry
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved
from proxy.observe.frames import DataFrame, GoAwayFrame, parse_header
from proxy.replay.compare import StreamOutcome, outcomes
from proxy.replay.script_frames import Script, ScriptError, encode_entry

_HTTP1 = ("http/1.1", "http/1.0", "http/1", "tcp", "websocket", "passthrough")


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Bytes the client sent at once (one frame, or the preface)."""

    delay: float
    """Seconds after the previous send, as recorded."""
    data: bytes
    stream_id: int = 0
    frame_type: int | None = None
    """None for the preface."""
    flow: int = 0
    """Flow-controlled length (RFC 9113 §6.9.1: a DATA frame's whole payload)."""
    frames: int = 1
    """Frames in ``data``: a script's HEADERS entry goes with its CONTINUATIONs."""
    after: int = 0
    """DATA: the bytes of its stream's response body the recorded client had received
    when it sent this (a message of a bidirectional stream — a WebSocket's, a gRPC
    stream's — that answered the server's)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionPlan:
    conn_id: int | None
    """The recorded connection id (None for a script without one)."""
    meta: dict[str, Any]
    sends: tuple[Send, ...]
    entries: tuple[dict[str, Any], ...]
    original: tuple[StreamOutcome, ...] | None
    """The recorded streams; None when there is nothing to compare with (a script)."""
    notes: tuple[str, ...] = ()
    """What the replay cannot reproduce, in plain words."""
    server_goaway: str | None = None
    """The error code name of the recorded server's first GOAWAY with an error (None:
    it sent none, or this is a script)."""
    server_goaway_text: str = ""
    """That GOAWAY as said to the user (``ENHANCE_YOUR_CALM, last stream 1:
    too_many_pings``)."""
    unsent: int = 0
    """Recorded requests the replay cannot send (an upgrade's with a body)."""
    overran_streams: bool = False
    """The recorded client opened more streams at once than its server allowed: a
    verbatim replay does so too (else it keeps within the new server's limit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySource:
    plans: tuple[ConnectionPlan, ...]
    notes: tuple[str, ...] = ()
    """Notes about the source as a whole (skipped connections, damaged records)."""


def load_capture(path: str | os.PathLike[str], *, conn: int | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 fields: bool = False) -> ReplaySource:
    """The plans of every HTTP/2 connection (or only ``conn``) in a capture; with
    ``fields``, the recorded outcomes keep their response fields (for ``--values``).

    Raises :class:`~proxy.capture.reader.CaptureFormatError` for a file that is
    not a capture and :class:`LookupError` when no connection qualifies.
    """
    problems: list[BadRecord] = []
    items: dict[int, list[Replayed]] = {}
    metas: dict[int, dict[str, Any]] = {}
    seen: list[int] = []  # every connection id, to name them when --conn misses
    closed: set[int] = set()
    observers = Observers()
    with CaptureReader(path, on_problem=observers.reporter(problems.append)) as reader:
        for n, item in enumerate(replay_records(reader.records(), observers=observers), 1):
            rec = item.record
            if n % 4096 == 0 and progress is not None:
                progress(reader.position, n)
            if rec.type == RecordType.CONNECTION:
                seen.append(rec.conn_id)
            elif rec.type == RecordType.CLOSE:
                closed.add(rec.conn_id)
            if rec.type == RecordType.LOST:  # for the comparison: a stream open there is
                for cid, kept in items.items():  # incomplete (connection 0: damaged bytes
                    if rec.conn_id == cid or (rec.conn_id == 0 and cid not in closed):  # there)
                        kept.append(item)
                continue
            if rec.type == RecordType.END or (conn is not None and rec.conn_id != conn):
                continue
            if rec.type == RecordType.CONNECTION:
                metas[rec.conn_id] = rec.json()
            items.setdefault(rec.conn_id, []).append(item)
    notes = [f"damaged record at {p}" for p in problems]
    plans = []
    for cid, conn_items in items.items():
        meta = metas.get(cid, {})
        protocol = str(meta.get("protocol") or "h2").lower()
        upgraded = any(i.record.type == RecordType.H2C_UPGRADE for i in conn_items)
        if protocol in _HTTP1 and not upgraded:
            notes.append(f"connection {cid} is {protocol}, not HTTP/2: not replayed")
            continue
        plan = _plan(cid, meta, conn_items, fields=fields)
        if plan is not None:
            plans.append(plan)
    if not plans:
        if conn is None:
            raise LookupError("the capture has no HTTP/2 connection to replay")
        ids = ", ".join(map(str, sorted(set(seen) - {conn}))) or "none"
        raise LookupError(f"the capture has no HTTP/2 connection {conn} "
                          f"(its connections: {ids}; pick one with --conn ID)")
    return ReplaySource(plans=tuple(plans), notes=tuple(notes))


def _plan(cid: int, meta: dict[str, Any], items: list[Replayed], *,
          fields: bool = False) -> ConnectionPlan | None:
    sends: list[Send] = []
    notes: list[str] = []
    last_t: float | None = None
    http1 = any(i.record.type == RecordType.H2C_UPGRADE for i in items)
    """Still in the HTTP/1.1 part of a connection upgraded to h2c."""
    upgrade: dict[str, Any] | None = None
    unsent_first = False
    """Stream 1 of an upgrade whose request had a body: not sent, not compared."""
    received: dict[int, int] = {}
    """Per stream, the response body bytes recorded so far."""
    for item in items:
        rec = item.record
        if rec.direction is Direction.S2C and rec.type == RecordType.FRAME:
            for ev in item.events:
                if isinstance(ev, FrameObserved) and isinstance(ev.frame, DataFrame):
                    sid = ev.frame.stream_id
                    received[sid] = received.get(sid, 0) + ev.frame.data_length
        if rec.type == RecordType.H2C_UPGRADE:
            http1 = False
            upgrade = upgrade_entry(rec.json())
            unsent_first = upgrade is None
            notes.append(
                "the connection began with an HTTP/1.1 Upgrade: h2c request (stream 1): "
                "replay uses prior knowledge, " + (
                    "and sends that request as a HEADERS frame on stream 1" if upgrade else
                    "so stream 1 is neither sent nor compared (its request had a body, "
                    "which the capture keeps in its HTTP/1.1 bytes only)"))
            continue
        if rec.direction is not Direction.C2S or rec.type not in (RecordType.FRAME,
                                                                  RecordType.RAW) or http1:
            continue
        delay = 0.0 if last_t is None else max(rec.t - last_t, 0.0)
        last_t = rec.t
        if rec.type == RecordType.RAW:
            if rec.body == CONNECTION_PREFACE:
                sends.append(Send(delay=delay, data=rec.body))
            else:
                notes.append(f"{len(rec.body)} client bytes that were not frames (after a "
                             "framing error, or cut at close) are not sent")
            continue
        data = rec.frame_bytes()
        length, ftype, _flags, word = parse_header(data)
        sid = word & 0x7FFF_FFFF
        flow = length if ftype == 0 else 0
        if rec.truncated:
            f = next((ev.frame for ev in item.events if isinstance(ev, FrameObserved)), None)
            total = f.data_length if isinstance(f, DataFrame) else length
            kept = len(rec.body) - 9
            notes.append(f"stream {sid}: a request DATA frame was truncated when recorded "
                         f"(about {max(kept, 0)} of {total} bytes kept): replay sends zeros "
                         "for the rest, so the request body differs from the original")
        sends.append(Send(delay=delay, data=data, stream_id=sid, frame_type=ftype, flow=flow,
                          after=received.get(sid, 0) if ftype == 0 else 0))
        if upgrade is not None and ftype == 4:  # (after the client's SETTINGS: RFC 9113 §3.4)
            sends.append(Send(delay=0.0, data=_upgrade_headers(upgrade), stream_id=1,
                              frame_type=1))
            upgrade = None
    if not sends:
        return None
    try:
        script = build_script(iter(items), cid)
    except LookupError:
        return None
    original = [o for o in outcomes(items, cid, fields=fields)
                if not (unsent_first and o.stream_id == 1)]
    recorded_goaway = next((ev.frame for item in items
                            if item.record.direction is Direction.S2C for ev in item.events
                            if isinstance(ev, FrameObserved)
                            and isinstance(ev.frame, GoAwayFrame) and ev.frame.error_code),
                           None)
    server_goaway = recorded_goaway.error_name if recorded_goaway is not None else None
    goaway_text = goaway_said(recorded_goaway) if recorded_goaway is not None else ""
    missing = [s.label for s in original
               if not (s.cancelled and not s.pushed) and s.incomplete and s.method is not None]
    if len(missing) > 3:  # (a capture cut short: one note, not one per open stream)
        notes.append(f"{len(missing)} streams ({', '.join(missing[:3])}, …): part of each is "
                     "missing from the capture (lost or damaged records, or a capture that "
                     "stops while they were open): their bodies are not compared")
    for s in original:
        if s.cancelled and not s.pushed:
            notes.append(f"{s.label}: the client reset it ({s.reset}) before the response "
                         "ended: how much of the response comes first, and whether the "
                         "server resets it too, is timing, so its body and a server reset "
                         "are not compared (nor a status that did not come)")
        elif s.client_left and left_open(s):
            notes.append(f"{s.label}: the recorded client closed the connection before the "
                         "response ended: the replay waits for as much of it as was "
                         f"recorded ({s.body_length} bytes), not for its end")
        elif s.incomplete and s.method is not None:  # (not a PRIORITY-only stream)
            if len(missing) > 3:
                continue
            notes.append(f"{s.label}: part of it is missing from the capture (lost or damaged "
                         "records, or a capture that stops while it was open): its body is "
                         "not compared")
        elif s.body_sha256 is None:
            notes.append(f"{s.label}: the recorded response body was truncated (max_data_bytes"
                         f"): only its length ({s.body_length} bytes) is compared, not its "
                         "SHA-256")
    overran = any(f.code == "max-concurrent-streams-exceeded" for item in items
                  for ev in item.events if isinstance(ev, FrameObserved)
                  and ev.direction is Direction.C2S for f in ev.findings)
    return ConnectionPlan(conn_id=cid, meta=meta, sends=tuple(sends),
                          entries=tuple(script["frames"]), original=tuple(original),
                          notes=tuple(notes), server_goaway=server_goaway,
                          server_goaway_text=goaway_text, overran_streams=overran,
                          unsent=int(unsent_first))


def left_open(o: StreamOutcome) -> bool:
    """The recorded client left the stream before its response ended without resetting
    it: it closed the connection, or the capture stops while the stream was open."""
    return not o.answered and o.reset is None and o.method is not None and (
        o.client_left or (o.incomplete and o.closed is None))


def _upgrade_headers(entry: dict[str, Any]) -> bytes:
    """The HEADERS frame of an upgrade's stream 1 for a verbatim replay: every field a
    literal never indexed (RFC 7541 §6.2.3), so that the recorded header blocks after
    it find the dynamic table as they left it."""
    fields = [hpack.NeverIndexedHeaderTuple(n, v) for n, v in entry["headers"]]
    block = hpack.Encoder().encode(fields)
    return len(block).to_bytes(3, "big") + b"\x01\x05" + (1).to_bytes(4, "big") + block


def goaway_said(f: GoAwayFrame) -> str:
    """A GOAWAY as the replay's report says it: ``ENHANCE_YOUR_CALM, last stream 1:
    too_many_pings``."""
    debug = f.debug_data.decode("utf-8", "replace")[:200]
    return f"{f.error_name}, last stream {f.last_stream_id}" + (f": {debug}" if debug else "")


def _encoded(i: int, entry: dict[str, Any], encoder: hpack.Encoder) -> bytes:
    """:func:`encode_entry`, its problems said as the script's entry ``i``'s."""
    what = f"frames[{i}] ({entry.get('type') or entry.get('type_id')})"
    try:
        return encode_entry(entry, encoder)
    except ScriptError as exc:
        raise ScriptError(f"{what}: {exc}") from None
    except KeyError as exc:
        raise ScriptError(f"{what}: needs {exc.args[0]!r}") from None
    except (struct.error, OverflowError) as exc:
        raise ScriptError(f"{what}: a number does not fit its field ({exc})") from None
    except (ValueError, TypeError) as exc:
        text = str(exc)
        at = re.search(r"fromhex\(\) arg at position (\d+)", text)
        odd = [k for k, v in entry.items() if k.endswith("hex") and isinstance(v, str)
               and len(v.replace(" ", "")) % 2]
        if at is not None and odd:  # (Python says "non-hexadecimal" for that too)
            text = (f"{odd[0]} has an odd number of hex digits: each byte is two, 0-9a-f "
                    "(spaces allowed)")
        elif at is not None:  # (Python's words for a bad hex string)
            text = (f"a hex field has a character that is not a hex digit (at position "
                    f"{at.group(1)}); write pairs of 0-9a-f, spaces allowed")
        raise ScriptError(f"{what}: {text}") from None


def _frame_count(data: bytes) -> int:
    n = pos = 0
    while pos + 9 <= len(data):
        pos += 9 + int.from_bytes(data[pos:pos + 3], "big")
        n += 1
    return max(n, 1)


def plan_from_script(script: Script) -> ReplaySource:
    """A plan from a YAML frame script: its entries, encoded frame by frame."""
    encoder = hpack.Encoder()
    sends = []
    if script.preface:
        sends.append(Send(delay=0.0, data=CONNECTION_PREFACE))
    for i, entry in enumerate(script.frames):
        data = _encoded(i, entry, encoder)
        length, ftype, _flags, word = parse_header(data)
        sid = word & 0x7FFF_FFFF
        sends.append(Send(delay=float(entry.get("delay", 0.0)), data=data, stream_id=sid,
                          frame_type=ftype, flow=length if ftype == 0 else 0,
                          frames=_frame_count(data)))
    notes = [f"frames[{i}]: DATA padded with zeros to its recorded length ({e['length']} "
             "bytes): it was truncated when recorded"
             for i, e in enumerate(script.frames) if "length" in e and e.get("type") == "DATA"]
    meta = {"server": script.server, "script": True}
    plan = ConnectionPlan(conn_id=script.connection, meta=meta, sends=tuple(sends),
                          entries=script.frames, original=None, notes=tuple(notes))
    return ReplaySource(plans=(plan,))
