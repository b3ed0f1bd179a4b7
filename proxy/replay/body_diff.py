"""What changed in a body, for ``h2scope diff``: more than its length and SHA-256.

A :class:`Body` is what a comparison keeps of a request's or a response's body: its
length and SHA-256, and — up to :data:`DETAIL_KEPT` bytes — the bytes themselves with
the fields that say how to read them. :func:`body_changes` says how two bodies differ:

* a gRPC body (``application/grpc*``) is split into its length-prefixed messages
  (gRPC over HTTP/2: a compressed flag, a 4-byte length; compressed ones inflated by
  ``grpc-encoding``), each decoded — by its method's type in a protoset, else as
  ``protoc --decode_raw`` would — and compared message by message:
  ``request message 1: text: "hello" → "hello2"``;
* a text body (``text/*``, JSON, XML, a form) is decoded from its
  ``content-encoding`` first, and its changed lines shown as a short unified diff
  (JSON re-indented so that each field is a line, a form one field a line), at most
  :data:`DIFF_LINES` lines, then ``… N more lines``;
* anything else stays its size and SHA-256.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from proxy.content import decode_content

DETAIL_KEPT = 256 * 1024
"""Body bytes a comparison keeps to show what changed inside a body (a larger one is
compared by its length and SHA-256 only)."""
DIFF_LINES = 20
LINE_CHARS = 160
"""Most characters of one line of a body diff: a long line or value is cut around
where the two sides first differ (two 100 KB strings printed 400 KB in full)."""
"""Lines of a text body's diff shown (the rest counted)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    """One body as a comparison keeps it."""

    length: int
    sha256: str | None
    """None when part of it was not recorded (truncated DATA, a stream cut short)."""
    data: bytes | None = None
    """The bytes, when whole and at most :data:`DETAIL_KEPT`."""
    content_type: str = ""
    encoding: str = ""
    """Its ``content-encoding``."""
    grpc_encoding: str = ""
    """Its message's ``grpc-encoding`` (the compression of the flagged messages)."""

    def summary(self) -> str:
        sha = self.sha256[:16] + "…" if self.sha256 else "not recorded in full"
        return f"{self.length} bytes, sha256 {sha}"


def make_body(data: bytes | bytearray | None, length: int, sha256: str | None,
              headers: tuple[tuple[str, str], ...] | None) -> Body:
    """A :class:`Body` from the bytes (None: not kept) and the header fields of its
    message (content-type, content-encoding, grpc-encoding)."""
    fields = {n.lower(): v for n, v in headers or ()}
    kept = bytes(data) if data is not None and sha256 is not None and \
        len(data) == length and length <= DETAIL_KEPT else None
    return Body(length=length, sha256=sha256, data=kept,
                content_type=fields.get("content-type", "").strip().lower(),
                encoding=fields.get("content-encoding", "").strip().lower(),
                grpc_encoding=fields.get("grpc-encoding", "").strip().lower())


def same_body(a: Body, b: Body) -> bool:
    """The same length and bytes (or a side whose bytes were not recorded in full:
    its length alone)."""
    if a.length != b.length:
        return False
    return a.sha256 is None or b.sha256 is None or a.sha256 == b.sha256


def body_differences(what: str, a: Body, b: Body, *, path: str | None = None,
                     request: bool = False, protoset: Any = None) -> list[str]:
    """What differs between two bodies, ``[]`` when nothing does: gRPC messages by
    message (``request message 1: text: "hello" → "hello2"``), else ``request body:
    20 bytes, sha256 … → 21 bytes, sha256 …`` followed, for text, by its diff's
    lines. Bodies whose content is the same once their ``content-encoding`` is
    undone do not differ."""
    if same_body(a, b) or _same_content(a, b):
        return []
    changes = body_changes(what, a, b, path=path, request=request, protoset=protoset)
    if changes is not None and is_grpc(a.content_type) and is_grpc(b.content_type):
        return changes or [f"{what} body: {a.summary()} → {b.summary()} (the same "
                           "messages)"]
    return [f"{what} body: {a.summary()} → {b.summary()}", *(changes or ())]


def _same_content(a: Body, b: Body) -> bool:
    if a.data is None or b.data is None or not (a.encoding or b.encoding):
        return False
    da, note_a = decode_content(a.data, a.encoding or None)
    db, note_b = decode_content(b.data, b.encoding or None)
    return da == db and all(note == "" or note.endswith(" decoded")
                            for note in (note_a, note_b))


def is_grpc(content_type: str) -> bool:
    return content_type.startswith("application/grpc") and "grpc-web" not in content_type


def body_changes(what: str, a: Body, b: Body, *, path: str | None = None,
                 request: bool = False, protoset: Any = None) -> list[str] | None:
    """How body ``a`` became ``b``, as lines, ``what`` naming it (``request``,
    ``response``): gRPC messages (``request message 1: …``), or a text diff's lines
    (indented, after no summary: the caller says ``body: …``). None when the bodies
    cannot be read for it (binary, not kept, not decodable): the caller shows their
    sizes and SHA-256."""
    if a.data is None or b.data is None:
        return None
    if is_grpc(a.content_type) and is_grpc(b.content_type):
        return _grpc_changes(what, a, b, path, request, protoset)
    ta, tb = _text(a), _text(b)
    if ta is None or tb is None:
        return None
    lines = list(difflib.unified_diff(_lines(ta, a.content_type), _lines(tb, b.content_type),
                                      lineterm="", n=1))[2:]  # (not the ---/+++ names)
    shown = [_clip(line) for line in lines[:DIFF_LINES]]
    if len(lines) > DIFF_LINES:
        shown.append(f"… {len(lines) - DIFF_LINES} more lines")
    return [f"  {line}" for line in shown]


def _clip(text: str, at: int = 0) -> str:
    """``text`` cut to :data:`LINE_CHARS` characters, keeping the part from a little
    before ``at`` (where it differs from the other side), with how long it was."""
    if len(text) <= LINE_CHARS:
        return text
    start = max(0, min(at - 40, len(text) - LINE_CHARS))
    head = "…" if start else ""
    tail = "…" if start + LINE_CHARS < len(text) else ""
    return f"{head}{text[start:start + LINE_CHARS]}{tail} ({len(text):,} characters)"


def _clip_pair(a: str, b: str) -> tuple[str, str]:
    """Two long values cut around their first difference (:func:`_clip`)."""
    if len(a) <= LINE_CHARS and len(b) <= LINE_CHARS:
        return a, b
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
              min(len(a), len(b)))
    return _clip(a, at), _clip(b, at)


def readable(headers: tuple[tuple[str, str], ...] | None) -> bool:
    """Whether a body with these header fields is one :func:`body_changes` reads (text,
    gRPC): only those bodies' bytes are worth keeping."""
    content_type = next((v for n, v in headers or () if n.lower() == "content-type"), "")
    content_type = content_type.strip().lower()
    return is_grpc(content_type) or _is_text(content_type)


_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "application/xml",
               "application/javascript", "application/x-ndjson", "application/graphql",
               "application/yaml")


def _is_text(content_type: str) -> bool:
    mime = content_type.split(";")[0].strip()
    return mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json",
                                                                              "+xml"))


def _text(body: Body) -> str | None:
    """The body as text: its content-encoding undone, UTF-8; None when it is not a
    text type or does not decode."""
    assert body.data is not None
    if not _is_text(body.content_type):
        return None
    data, note = decode_content(body.data, body.encoding or None)
    if body.encoding and body.encoding != "identity" and not note.endswith(" decoded"):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str, content_type: str) -> list[str]:
    """A text body as the lines a diff compares: JSON re-indented (a compact document
    is one line), a form's fields one a line."""
    mime = content_type.split(";")[0].strip()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False).splitlines()
        except ValueError:
            pass
    if mime == "application/x-www-form-urlencoded":
        return text.split("&")
    return text.splitlines()


def _grpc_changes(what: str, a: Body, b: Body, path: str | None, request: bool,
                  protoset: Any) -> list[str] | None:
    ma, mb = _messages(a), _messages(b)
    if ma is None or mb is None:
        return None
    type_name = protoset.method_type(path, request) if protoset is not None and path else None
    out = []
    if len(ma) != len(mb):
        out.append(f"{what} messages: {len(ma)} → {len(mb)}")
    for i in range(max(len(ma), len(mb))):
        la = _decoded(ma[i], protoset, type_name) if i < len(ma) else None
        lb = _decoded(mb[i], protoset, type_name) if i < len(mb) else None
        if la == lb:
            continue
        said = f"{what} message {i + 1}: "
        if la is None or lb is None:
            one = " ".join(line.strip() for line in (la or lb or []))
            out.append(said + (f"none → {{{one}}}" if la is None else f"{{{one}}} → none"))
            continue
        out += [said + change for change in _field_changes(la, lb)]
    return out


def _messages(body: Body) -> list[bytes] | None:
    """The whole messages of a gRPC body, inflated; None when it is not gRPC framing
    or a compressed message does not inflate."""
    assert body.data is not None
    data, pos, out = body.data, 0, []
    while pos < len(data):
        if pos + 5 > len(data):
            return None
        flag, size = data[pos], int.from_bytes(data[pos + 1:pos + 5], "big")
        payload = data[pos + 5:pos + 5 + size]
        if len(payload) < size or flag > 1:
            return None
        if flag:
            payload, note = decode_content(payload, body.grpc_encoding or None)
            if not note.endswith(" decoded"):
                return None
        out.append(payload)
        pos += 5 + size
    return out


def _decoded(message: bytes, protoset: Any, type_name: str | None) -> list[str]:
    lines = protoset.decode(message, type_name) if type_name else None
    if lines is None:
        from proxy.protobuf import decode_raw

        lines = decode_raw(message)
    if lines is None:
        return [f"not protobuf: {len(message)} bytes, sha256 "
                f"{hashlib.sha256(message).hexdigest()[:16]}…"]
    return lines


def _field_changes(la: list[str], lb: list[str]) -> list[str]:
    """A decoded message's changed lines: ``name: a → b`` where a field kept its place,
    else the lines removed (``-``) and added (``+``)."""
    if len(la) == len(lb):
        out = []
        for x, y in zip(la, lb, strict=True):
            if x == y:
                continue
            kx, sep_x, vx = x.strip().partition(": ")
            ky, sep_y, vy = y.strip().partition(": ")
            if sep_x and sep_y and kx == ky:
                vx, vy = _clip_pair(vx, vy)
                out.append(f"{kx}: {vx} → {vy}")
            else:
                cx, cy = _clip_pair(x.strip(), y.strip())
                out.append(f"{cx} → {cy}")
        return out
    diff = [line for line in list(difflib.unified_diff(la, lb, lineterm="", n=0))[2:]
            if not line.startswith("@@")]
    shown = [_clip(f"{line[0]}{line[1:].strip()}") for line in diff[:DIFF_LINES]]
    if len(diff) > DIFF_LINES:
        shown.append(f"… {len(diff) - DIFF_LINES} more lines")
    return shown
