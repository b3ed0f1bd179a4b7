"""Text and JSON Lines exports: one line per frame.

:func:`frame_line` is the headless log format — time, connection, arrow,
frame number, type, the common header fields and the decoded gist
(:func:`proxy.observe.describe.frame_summary`). The headless console printer
should call it too, so a live log and an exported one read the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, TextIO

from proxy.capture.format import RecordType
from proxy.capture.replay import Replayed
from proxy.observe.describe import block_lines, event_line, flags_text, frame_summary
from proxy.observe.events import Event, FrameObserved, StreamStateChanged
from proxy.observe.jsonview import frame_dict


def clock(wall: float) -> str:
    """``HH:MM:SS.mmm`` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"


def frame_line(conn_id: int, ev: FrameObserved, wall: float, *, truncated: bool = False) -> str:
    """One frame: ``12:00:01.234 c3 → #17 HEADERS <length=42, flags=[END_HEADERS], stream=5>
    GET example.com/``."""
    f = ev.frame
    line = (f"{clock(wall)} c{conn_id} {ev.direction.arrow} #{ev.seq} {f.type_name} "
            f"<length={f.length}, flags={flags_text(f) or '[]'}, stream={f.stream_id}>  "
            f"{frame_summary(ev)}")
    if truncated:
        line += "  (payload truncated when recorded)"
    return line.rstrip()


def event_lines(conn_id: int, ev: Event, wall: float, *, headers: bool = True,
                truncated: bool = False) -> list[str]:
    """The log lines for one observer event (none for unremarkable ones)."""
    if isinstance(ev, FrameObserved):
        lines = [frame_line(conn_id, ev, wall, truncated=truncated)]
        if headers and ev.block is not None:
            lines.extend(block_lines(ev.block, indent="      "))
        lines.extend(f"      ! {finding}" for finding in ev.findings)
        return lines
    if isinstance(ev, StreamStateChanged):
        return []
    text = event_line(ev)
    return [f"{clock(wall)} c{conn_id}   {text}"] if text else []


def _selected(item: Replayed, conn: int | None) -> bool:
    return conn is None or item.record.conn_id == conn


def _stream_ok(ev: Event, stream: int | None) -> bool:
    if stream is None:
        return True
    if isinstance(ev, FrameObserved):
        return ev.frame.stream_id == stream or ev.block_stream_id == stream
    return getattr(ev, "stream_id", None) == stream


def _record_line(item: Replayed) -> str | None:
    rec = item.record
    if rec.type == RecordType.CONNECTION:
        meta = rec.json()
        client = meta.get("client") or {}
        server = meta.get("server") or {}
        return (f"{clock(rec.wall)} c{rec.conn_id} connection {client.get('ip', '?')}:"
                f"{client.get('port', '?')} → {server.get('host') or server.get('ip', '?')}:"
                f"{server.get('port', '?')} {meta.get('protocol', 'h2')}")
    if rec.type == RecordType.CLOSE:
        info = rec.json()
        by = info.get("closed_by") or "?"
        err = f" ({info['error']})" if info.get("error") else ""
        return f"{clock(rec.wall)} c{rec.conn_id} closed by {by}{err}"
    if rec.type == RecordType.HTTP1:
        head, body = rec.http1()
        first = head.split(b"\r\n", 1)[0].decode("latin-1")
        return (f"{clock(rec.wall)} c{rec.conn_id} {rec.direction.arrow} HTTP/1 {first}  "
                f"body {len(body)} bytes")
    if rec.type == RecordType.LOST:
        info = rec.json()
        return f"{clock(rec.wall)} c{rec.conn_id} LOST {info.get('count')} records: " \
               f"{info.get('reason')}"
    return None


def write_text(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None,
               stream: int | None = None, headers: bool = True) -> int:
    """Write the log; return the number of frames written."""
    frames = 0
    for item in replayed:
        if not _selected(item, conn):
            continue
        rec = item.record
        if stream is None:
            line = _record_line(item)
            if line:
                out.write(line + "\n")
        for ev in item.events:
            if not _stream_ok(ev, stream):
                continue
            for line in event_lines(rec.conn_id, ev, rec.wall, headers=headers,
                                    truncated=rec.truncated):
                out.write(line + "\n")
            frames += isinstance(ev, FrameObserved)
    return frames


def jsonl_dict(conn_id: int, ev: FrameObserved, wall: float, *,
               stored_length: int | None = None) -> dict[str, Any]:
    """``frame_dict`` plus the capture's fields: connection, wall clock, truncation."""
    d = {"conn": conn_id, "wall": wall, **frame_dict(ev)}
    if stored_length is not None:
        d["truncated"] = {"stored_payload_length": stored_length,
                          "note": "DATA payload cut by max_data_bytes; data_hex is zero-padded"}
    return d


def write_jsonl(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None,
                stream: int | None = None) -> int:
    """One JSON object per frame; return the number written."""
    n = 0
    for item in replayed:
        if not _selected(item, conn):
            continue
        rec = item.record
        for ev in item.events:
            if isinstance(ev, FrameObserved) and _stream_ok(ev, stream):
                stored = len(rec.body) - 9 if rec.truncated else None
                out.write(json.dumps(jsonl_dict(rec.conn_id, ev, rec.wall,
                                                stored_length=stored),
                                     ensure_ascii=False) + "\n")
                n += 1
    return n
