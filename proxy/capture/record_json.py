"""What the reader checks of a JSON record's body before handing the record on.

A record's CRC proves its bytes are the ones written, not that the writer wrote
what docs/capture-format.md says: another tool, a hand edit or a newer h2scope
can put a list where a string belongs, and every reader indexes these bodies
(the observer is even built from CONNECTION's ``observer``). A body that does not
parse, or a documented key of the wrong type, makes the record damaged: it is
reported by its offset and skipped, like a record whose CRC fails, and the rest
of the file is read. Unknown keys are left alone (readers keep them).

Only CONNECTION, H2C_UPGRADE, CLOSE, LOST and END have JSON bodies: a few per
connection, so the check costs nothing next to the frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from proxy.capture.format import RecordType

Check = Callable[[Any], bool]


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and abs(v) < 1e12)


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


def _object(**keys: Check) -> Check:
    def check(v: Any) -> bool:
        return isinstance(v, dict) and _problem(v, keys) is None
    return check


def _list_of(item: Check) -> Check:
    def check(v: Any) -> bool:
        return isinstance(v, list) and all(item(x) for x in v)
    return check


def _pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)


def _hex(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        bytes.fromhex(v)
    except ValueError:
        return False
    return True


def _counts(v: Any) -> bool:
    return isinstance(v, dict) and all(_int(x) for x in v.values())


_ADDRESS = _object(ip=_text, host=_text, port=_int)
_TLS = _object(version=_text, cipher=_text, alpn=_text, sni=_text,
               alpn_offered=_list_of(_text), at=_number,
               certificate=_object(subject=_text, issuer=_text, sans=_list_of(_text),
                                   not_after=_text))
_FIELDS: dict[int, dict[str, Check]] = {
    int(RecordType.CONNECTION): {
        "client": _ADDRESS, "server": _ADDRESS, "mode": _text, "target": _text,
        "via": _text, "target_at": _number, "protocol": _text, "sni": _text,
        "opened": _number, "client_tls": _TLS, "server_tls": _TLS,
        "observer": _object(preface=_text, max_table_size=_int, partial=_flag),
    },
    int(RecordType.H2C_UPGRADE): {"http2_settings": _hex, "request_headers": _list_of(_pair)},
    int(RecordType.CLOSE): {
        "closed_by": _text, "error": _text, "reason": _text, "bytes_c2s": _int,
        "bytes_s2c": _int, "protocol": _text, "cut": _flag,
        "errors": _list_of(_object(stage=_text, message=_text, hint=_text, at=_number)),
        "ends": _counts,
    },
    int(RecordType.LOST): {"count": _int, "unit": _text, "reason": _text},
    int(RecordType.END): {"records": _int, "counts": _counts, "truncated_frames": _int},
}
JSON_TYPES = frozenset(_FIELDS)
"""The record types whose body is a JSON object."""


def _problem(value: dict[str, Any], keys: dict[str, Check]) -> str | None:
    for key, check in keys.items():
        v = value.get(key)
        if v is not None and not check(v):
            return f"its {key!r} is {_kind(v)}, which the format does not allow there"
    return None


def _kind(v: Any) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    shown = json.dumps(v)
    return f"{type(v).__name__} {shown[:40]}{'…' if len(shown) > 40 else ''}"


def json_problem(rtype: int, body: bytes) -> str | None:
    """Why the JSON body of a record of type ``rtype`` cannot be read, or None."""
    try:
        value = json.loads(body)
    except ValueError as exc:  # (UnicodeDecodeError included)
        return f"its JSON does not parse ({exc})"
    if not isinstance(value, dict):
        return f"its JSON is {_kind(value)}, not an object"
    return _problem(value, _FIELDS[rtype])
