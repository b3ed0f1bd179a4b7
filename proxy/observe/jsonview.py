"""Observer events as plain JSON-able dicts (``decode --json``, the jsonl export).

The schema is documented in ``docs/json.md``; keep the two in step.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.observe.describe import escape_undecoded, shown_fields, shown_headers
from proxy.observe.enums import error_name, setting_name
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FlowControlResumed,
    FlowControlStalled,
    FrameObserved,
    PingAnswered,
    SettingsAcknowledged,
)
from proxy.observe.findings import Finding
from proxy.observe.frames import (
    AltSvcFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    OriginFrame,
    PingFrame,
    PriorityFrame,
    PriorityUpdateFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    UnknownFrame,
    WindowUpdateFrame,
    frame_padding,
)
from proxy.observe.hpack_annotated import FieldAnnotation, HeaderBlock


def finding_dict(f: Finding) -> dict[str, Any]:
    return {"code": f.code, "severity": f.severity.name.lower(), "rfc": f.rfc,
            "message": f.message, "seq": f.seq, "stream_id": f.stream_id}


def json_line(obj: Any) -> str:
    """``obj`` as one line of JSON, non-ASCII text as it is. A byte that was not
    UTF-8 (a lone surrogate in a decoded name or value) is written ``\\xNN``, as
    the text log shows it, so the line can be written as UTF-8; the exact bytes
    are in the object's ``*_hex`` fields."""
    line = json.dumps(obj, ensure_ascii=False)
    if line.isascii():
        return line
    return escape_undecoded(line, "\\\\")


def raw_bytes(text: str) -> bytes | None:
    """The wire bytes of a decoded name or value that is not UTF-8 (its bytes were
    decoded as lone surrogates, losslessly); None for text JSON can hold as it is."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return None


def _header(name: str, value: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "value": value}
    raw = raw_bytes(value)
    if raw is not None:  # a -bin value sent raw, or a broken one: its bytes, exactly
        d["value_hex"] = raw.hex()
    raw = raw_bytes(name)
    if raw is not None:
        d["name_hex"] = raw.hex()
    return d


def field_dict(fa: FieldAnnotation) -> dict[str, Any]:
    d = {
        "representation": fa.representation.name.lower(),
        "offset": fa.offset,
        "wire_length": fa.wire_length,
        "name": fa.name,
        "value": fa.value,
        "index": fa.index,
        "table": fa.table,
        "name_huffman": fa.name_huffman,
        "name_wire_length": fa.name_wire_length,
        "name_length": fa.name_length,
        "value_huffman": fa.value_huffman,
        "value_wire_length": fa.value_wire_length,
        "value_length": fa.value_length,
        "new_table_size": fa.new_table_size,
        "inserted": fa.inserted,
        "evicted": [{"name": n, "value": v} for n, v in fa.evicted],
    }
    raw = raw_bytes(fa.value)
    if raw is not None:
        d["value_hex"] = raw.hex()
    raw = raw_bytes(fa.name)
    if raw is not None:
        d["name_hex"] = raw.hex()
    return d


def block_dict(block: HeaderBlock) -> dict[str, Any]:
    headers, omitted, omitted_size = shown_headers(block.headers, block.decoded_size)
    fields = shown_fields(block.fields, len(headers)) if omitted else block.fields
    d: dict[str, Any] = {
        "headers": [_header(n, v) for n, v in headers],
        "fields": [field_dict(fa) for fa in fields],
        "wire_length": block.wire_length,
        "decoded_size": block.decoded_size,
        "inserted": block.inserted,
        "evicted": block.evicted,
        "table": {"size_before": block.table_size_before, "size": block.table_size,
                  "max": block.table_max, "entries": block.table_entries},
    }
    if omitted:  # (past describe.SHOWN_LIST_SIZE: counted, not written)
        d["omitted"] = {"fields": omitted, "size": omitted_size}
    return d


def _priority(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"exclusive": p.exclusive, "depends_on": p.depends_on, "weight": p.weight}


def frame_dict(ev: FrameObserved) -> dict[str, Any]:
    f = ev.frame
    d: dict[str, Any] = {
        "seq": ev.seq,
        "t": ev.t,
        "direction": ev.direction.name.lower(),
        "type": f.type_name,
        "type_id": f.type,
        "flags": list(f.flag_names),
        "flags_raw": f.flags,
        "stream_id": f.stream_id,
        "length": f.length,
        "reserved_bit": f.reserved,
    }
    if f.malformed is not None:
        d["malformed"] = f.malformed
    elif f.flags & 0x8 and f.type in (0, 1, 5) and f.pad_length:  # type: ignore[attr-defined]
        d["padding_hex"] = frame_padding(f).hex()
    match f:
        case DataFrame():
            d["pad_length"] = f.pad_length
            d["data_length"] = f.data_length
            d["data_hex"] = f.data.hex()
        case HeadersFrame():
            d["pad_length"] = f.pad_length
            d["priority"] = _priority(f.priority)
            d["fragment_length"] = len(f.fragment)
        case PushPromiseFrame():
            d["pad_length"] = f.pad_length
            d["promised_stream_id"] = f.promised_stream_id
            d["fragment_length"] = len(f.fragment)
        case PriorityFrame():
            d["priority"] = _priority(f.priority)
        case RstStreamFrame():
            d["error_code"] = f.error_code
            d["error"] = error_name(f.error_code)
        case SettingsFrame():
            d["settings"] = [{"id": k, "name": setting_name(k), "value": v}
                             for k, v in f.settings]
        case PingFrame():
            d["opaque_hex"] = f.opaque.hex()
        case GoAwayFrame():
            d["last_stream_id"] = f.last_stream_id
            d["error_code"] = f.error_code
            d["error"] = error_name(f.error_code)
            # (bytes not UTF-8 come out \xNN, as in header values: json_line)
            d["debug_data"] = f.debug_data.decode("utf-8", "surrogateescape")
            d["debug_data_hex"] = f.debug_data.hex()
        case WindowUpdateFrame():
            d["increment"] = f.increment
        case AltSvcFrame():
            d["origin"] = f.origin.decode("latin-1")
            d["field_value"] = f.field_value.decode("latin-1")
        case OriginFrame():
            d["origins"] = [o.decode("latin-1") for o in f.origins]
        case PriorityUpdateFrame():
            d["prioritized_stream_id"] = f.prioritized_stream_id
            d["field_value"] = f.field_value.decode("latin-1")
        case UnknownFrame():
            d["payload_hex"] = f.payload.hex()
    if f.malformed is not None:
        d["payload_hex"] = f.payload.hex()
    if ev.windows is not None:
        d["windows"] = {"connection": ev.windows[0], "stream": ev.windows[1]}
    if ev.block is not None:
        d["block"] = block_dict(ev.block)
        if ev.block_stream_id is not None:
            d["block"]["promised_stream_id"] = ev.block_stream_id
    d["findings"] = [finding_dict(x) for x in ev.findings]
    return d


def event_dict(ev: Event) -> dict[str, Any] | None:
    """An event other than a frame as a JSON-able dict, for the events a log shows
    (a connection-level finding, a desync, a flow-control stall and its end,
    settings taking effect, a PING answered); None for the others."""
    d: dict[str, Any] = {"event": type(ev).__name__, "t": ev.t,
                         "direction": ev.direction.name.lower()}
    match ev:
        case ConnectionFindingRaised():
            d["finding"] = finding_dict(ev.finding)
        case Desynced():
            d["offset"] = ev.offset
            d["finding"] = finding_dict(ev.finding)
        case FlowControlStalled():
            d.update(stream_id=ev.stream_id, seq=ev.seq, blocked=ev.direction.sender,
                     window=ev.window)
        case FlowControlResumed():
            d.update(stream_id=ev.stream_id, seq=ev.seq, stalled_for=ev.stalled_for,
                     connection_blocked=ev.connection_blocked)
        case SettingsAcknowledged():
            d.update(seq=ev.seq, settings=[{"id": k, "name": setting_name(k), "value": v}
                                           for k, v in ev.settings],
                     window_delta=ev.window_delta, streams_adjusted=ev.streams_adjusted,
                     windows=[{"stream_id": sid, "window": w} for sid, w in ev.windows])
        case PingAnswered():
            d.update(seq=ev.seq, rtt=ev.rtt, opaque_hex=ev.opaque.hex())
        case _:
            return None
    return d
