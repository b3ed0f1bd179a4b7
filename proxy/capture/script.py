"""Frame scripts: one connection's client-side frames as editable YAML.

A script says what the client sent, frame by frame, in terms a person edits:
header lists instead of HPACK bytes, DATA as text (or hex when it is not
text), flags by name, delays between frames. ``h2scope replay`` (a later
command) re-encodes it and sends it to a server. The format is documented in
``docs/export.md``; :data:`SCRIPT_VERSION` changes when it does.

Only what an encoder cannot derive is kept: a header block split over
CONTINUATION frames becomes one ``HEADERS`` entry with ``continuations: N``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

import yaml

from proxy.capture.exchanges import stored_data
from proxy.capture.format import RecordType
from proxy.capture.replay import Replayed, upgrade_request
from proxy.observe.enums import Direction, error_name, setting_name
from proxy.observe.events import FrameObserved, PrefaceObserved
from proxy.observe.frames import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PriorityUpdateFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from proxy.observe.header_rules import connection_specific

SCRIPT_VERSION = 1


def _text_or_hex(data: bytes) -> dict[str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": data.hex()}
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return {"text": text}
    return {"hex": data.hex()}


def _priority(p: Any) -> dict[str, Any]:
    return {"depends_on": p.depends_on, "weight": p.weight, "exclusive": p.exclusive}


def frame_entry(ev: FrameObserved, *, delay: float, stored: bytes | None = None,
                truncated: bool = False) -> dict[str, Any] | None:
    """The script entry for one client frame (None for a CONTINUATION, which is
    folded into its HEADERS entry)."""
    f: Frame = ev.frame
    entry: dict[str, Any] = {"delay": round(delay, 6), "type": f.type_name}
    if f.stream_id or f.type in (0, 1, 2, 3, 9):
        entry["stream"] = f.stream_id
    if f.malformed is not None or type(f) is Frame:
        entry.update({"type_id": f.type, "flags_raw": f.flags, "payload_hex": f.payload.hex(),
                      "comment": f"malformed: {f.malformed}" if f.malformed else "raw frame"})
        return entry
    if f.flag_names:
        entry["flags"] = list(f.flag_names)
    match f:
        case DataFrame():
            data = stored if stored is not None else f.data
            entry.update(_text_or_hex(data))
            if f.pad_length is not None:
                entry["padding"] = f.pad_length
            if truncated:
                entry["length"] = f.data_length
                entry["comment"] = (f"payload truncated when recorded: {len(data)} of "
                                    f"{f.data_length} bytes kept; replay pads with zeros")
        case HeadersFrame():
            if f.priority is not None:
                entry["priority"] = _priority(f.priority)
            if f.pad_length is not None:
                entry["padding"] = f.pad_length
            if ev.block is not None:
                entry["headers"] = [[n, v] for n, v in ev.block.headers]
            else:
                entry["header_block_hex"] = f.fragment.hex()
        case SettingsFrame():
            if not f.ack:
                entry["settings"] = [[setting_name(k), v] for k, v in f.settings]
        case WindowUpdateFrame():
            entry["increment"] = f.increment
        case PingFrame():
            entry["opaque_hex"] = f.opaque.hex()
        case PriorityFrame():
            entry["priority"] = _priority(f.priority)
        case RstStreamFrame():
            entry["error"] = error_name(f.error_code)
        case GoAwayFrame():
            entry["last_stream_id"] = f.last_stream_id
            entry["error"] = error_name(f.error_code)
            if f.debug_data:
                entry.update({f"debug_{k}": v for k, v in _text_or_hex(f.debug_data).items()})
        case PriorityUpdateFrame():
            entry["prioritized_stream"] = f.prioritized_stream_id
            entry["value"] = f.field_value.decode("latin-1")
        case _ if f.type == 9:
            return None
        case _:
            entry.update({"type_id": f.type, "flags_raw": f.flags,
                          "payload_hex": f.payload.hex()})
    return entry


def upgrade_entry(info: dict[str, Any]) -> dict[str, Any] | None:
    """Stream 1 of an h2c upgrade as a HEADERS entry: the HTTP/1.1 request that asked
    for it (RFC 7540 §3.2), in HTTP/2's form — without its connection-specific fields
    (RFC 9113 §8.2.2), ``HTTP2-Settings`` and ``host``, which ``:authority`` says —
    for a replay with prior knowledge to send; None when the request had a body (not
    in the upgrade record)."""
    request = upgrade_request(info)
    fields = dict(request)
    if fields.get("content-length", "0").strip() != "0" or "transfer-encoding" in fields:
        return None
    dropped = connection_specific(request) | {"http2-settings", "host"}
    headers = [[n, v] for n, v in request if n not in dropped]
    return {"delay": 0.0, "type": "HEADERS", "stream": 1, "flags": ["END_STREAM", "END_HEADERS"],
            "headers": headers,
            "comment": "stream 1: the HTTP/1.1 request that asked for Upgrade: h2c (RFC 7540 "
                       "§3.2), as HEADERS: the replay uses prior knowledge"}


def build_script(replayed: Iterable[Replayed], conn: int | None = None) -> dict[str, Any]:
    """The script of connection ``conn`` (default: the first one with h2 frames).

    Raises :class:`LookupError` when the capture has no such connection.
    """
    metas: dict[int, dict[str, Any]] = {}
    chosen = conn
    frames: list[dict[str, Any]] = []
    last_t: float | None = None
    open_headers: dict[str, Any] | None = None
    preface = False
    found = False
    upgrades: dict[int, dict[str, Any] | None] = {}
    """Stream 1 of a connection upgraded from HTTP/1.1, for after its first SETTINGS."""
    for item in replayed:
        rec = item.record
        if rec.type == RecordType.CONNECTION:
            metas[rec.conn_id] = rec.json()
            continue
        if rec.type == RecordType.H2C_UPGRADE:
            upgrades[rec.conn_id] = upgrade_entry(rec.json())
            continue
        if rec.direction is not Direction.C2S or rec.type not in (RecordType.FRAME,
                                                                  RecordType.RAW):
            continue
        if chosen is not None and rec.conn_id != chosen:
            continue
        # Only HTTP/2 counts: an HTTP/1.1 connection's bytes are records too.
        if not any(isinstance(ev, (PrefaceObserved, FrameObserved)) for ev in item.events):
            continue
        chosen = rec.conn_id
        found = True
        for ev in item.events:
            if isinstance(ev, PrefaceObserved):
                preface = True
            if not isinstance(ev, FrameObserved):
                continue
            delay = 0.0 if last_t is None else max(ev.t - last_t, 0.0)
            last_t = ev.t
            f = ev.frame
            if f.type == 9 and open_headers is not None:
                open_headers["continuations"] = open_headers.get("continuations", 0) + 1
                if ev.block is not None:
                    open_headers.pop("header_block_hex", None)
                    open_headers["headers"] = [[n, v] for n, v in ev.block.headers]
                    open_headers = None
                continue
            stored = stored_data(rec, f) if isinstance(f, DataFrame) else None
            entry = frame_entry(ev, delay=delay, stored=stored, truncated=rec.truncated)
            if entry is None:
                continue
            frames.append(entry)
            open_headers = entry if isinstance(f, HeadersFrame) and not f.end_headers else None
            first = upgrades.pop(rec.conn_id, None) if entry["type"] == "SETTINGS" else None
            if first is not None:  # (the client's SETTINGS come first: RFC 9113 §3.4)
                frames.append(first)
    if chosen is None or not found:
        if conn is None:
            raise LookupError("the capture has no HTTP/2 connection with frames from the "
                              "client: a frame script holds HTTP/2 frames")
        if conn in metas:
            what = metas[conn].get("protocol") or "not HTTP/2"
            raise LookupError(f"connection {conn} has no HTTP/2 frames from the client "
                              f"({what}): a frame script holds HTTP/2 frames; h2scope check "
                              "FILE lists the connections")
        raise LookupError(f"the capture has no connection {conn}")
    meta = metas.get(chosen, {})
    server = meta.get("server") or {}
    tls = meta.get("server_tls") or {}
    # (h2 is negotiated by TLS's ALPN; h2c is cleartext: a reverse http:// listener)
    secure = bool(tls) or meta.get("protocol", "h2") == "h2"
    return {
        "h2scope_script": SCRIPT_VERSION,
        "connection": chosen,
        "server": {"host": server.get("host"), "port": server.get("port"),
                   "tls": secure, "sni": meta.get("sni") if secure else None,
                   "alpn": (tls.get("alpn") or "h2") if secure else None},
        "preface": preface,
        "frames": frames,
    }


class _ScriptDumper(yaml.SafeDumper):
    """Text of several lines as a literal block (``|``), as one would type it: a body
    ending in a newline came out as a folded single-quoted scalar, each line break
    doubled. (Where a block cannot be — trailing spaces, a flow list — PyYAML
    quotes it, and every string reads back exactly as it was.)"""


def _lines(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


_ScriptDumper.add_representer(str, _lines)


def write_script(replayed: Iterable[Replayed], out: TextIO, *, conn: int | None = None) -> int:
    """Write the YAML script; return the number of frame entries."""
    script = build_script(replayed, conn)
    out.write("# h2scope frame script: the client side of one connection (docs/export.md)\n")
    # (flow style for the innermost lists and mappings: a header is one line, [name, value])
    yaml.dump(script, out, Dumper=_ScriptDumper, sort_keys=False, allow_unicode=True,
              width=100, default_flow_style=None)
    return len(script["frames"])
