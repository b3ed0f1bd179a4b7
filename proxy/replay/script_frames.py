"""Frame scripts for replay: loading the YAML and turning entries back into frames.

``h2scope export --format script`` writes a script (:mod:`proxy.capture.script`,
format in docs/export.md); this module reads one back. :func:`load_script`
validates the document and names the entry at fault (``frames[3].type``).
:func:`encode_entry` builds the exact frame bytes an entry describes, with a
fresh HPACK encoder for header lists (the script keeps header lists, not HPACK
bytes) — the verbatim replay of a script is this, frame for frame.
"""

from __future__ import annotations

import difflib
import gzip
import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hpack
import yaml

from proxy.capture.format import GZIP_MAGIC, MAGIC
from proxy.capture.script import SCRIPT_VERSION
from proxy.observe.enums import FLAGS_BY_TYPE, ErrorCode, FrameType, SettingCode

_HEADER = struct.Struct(">HBBBL")
SCRIPT_FIRST_LINE = b"# h2scope frame script"
"""How the comment line :func:`proxy.capture.script.write_script` writes first begins."""
_TYPES = {t.name: int(t) for t in FrameType}
_ERRORS = {e.name: int(e) for e in ErrorCode}
_SETTINGS = {s.name: int(s) for s in SettingCode}
_FLAGS = {(int(t), name): bit for t, flags in FLAGS_BY_TYPE.items() for bit, name in flags}


class ScriptError(ValueError):
    """The script cannot be used; the message names the entry and key at fault."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        """The script's line (from 1) where the fault is, when known."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """A loaded frame script."""

    connection: int | None
    server: dict[str, Any]
    preface: bool
    frames: tuple[dict[str, Any], ...]
    """The entries, as in the YAML (validated: types, streams, flags known)."""


def _read_text(path: str | Path) -> str:
    """The script's text; gzip-compressed, as captures may be."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(GZIP_MAGIC):
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _head(path: str | Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(256)
    if head.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as z:
                return z.read(256)
        except (OSError, EOFError):
            return b"\0"  # (damaged gzip: not a script's to explain)
    return head


def is_script(path: str | Path) -> bool:
    """True if the file is a YAML frame script rather than a capture: by its first
    bytes as h2scope writes it (the comment line ``export --format script`` writes
    first), else (a script a YAML tool rewrote: keys sorted, comments dropped) by
    being YAML text holding a ``frames`` mapping key. Any other text starting with
    ``#`` (a Markdown file, a shell script) is not a script. A gzip-compressed file
    is judged by what it holds."""
    head = _head(path)
    if b"h2scope_script" in head or head.lstrip().startswith((SCRIPT_FIRST_LINE, b"frames:")):
        return True
    if not head or head.startswith(MAGIC) or b"\0" in head:
        return False  # a capture, a packet capture: binary
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith((".yaml", ".yml")):
        return True  # (meant as one: what is wrong with it is the YAML's to say)
    try:
        doc = yaml.safe_load(_read_text(path))
    except (OSError, EOFError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and "frames" in doc


def load_script(path: str | Path) -> Script:
    """Read and validate a script; raises :class:`ScriptError`, whose message names
    the entry at fault and :attr:`ScriptError.line` its line."""
    try:
        text = _read_text(path)
        doc = yaml.safe_load(text)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ScriptError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise ScriptError(f"not valid YAML: {what}" + (f" ({context})" if context else ""),
                          line=mark.line + 1 if mark is not None else None) from None
    try:
        return parse_script(doc)
    except ScriptError as exc:
        raise locate(exc, text) from None


_ENTRY = re.compile(r"frames\[(\d+)\]")


def locate(exc: ScriptError, text: str) -> ScriptError:
    """``exc`` with the line of the entry its message names (``frames[6]``), found in
    the script's ``text``; ``exc`` itself if it names none or the text has none."""
    found = _ENTRY.match(str(exc))
    if exc.line is not None or found is None:
        return exc
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return exc
    frames = None
    if isinstance(node, yaml.MappingNode):
        frames = next((v for k, v in node.value if getattr(k, "value", None) == "frames"), None)
    i = int(found.group(1))
    if not isinstance(frames, yaml.SequenceNode) or i >= len(frames.value):
        return exc
    return ScriptError(str(exc), line=frames.value[i].start_mark.line + 1)


def locate_in_file(exc: ScriptError, path: str | Path) -> ScriptError:
    """:func:`locate` for the script at ``path``."""
    try:
        return locate(exc, _read_text(path))
    except (OSError, EOFError, UnicodeDecodeError):
        return exc


def suggestion(value: object, known: Iterable[str]) -> str:
    """``; did you mean 'CANCEL'?`` for a misspelt name, else ``""``."""
    close = difflib.get_close_matches(str(value).upper(), list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


SCRIPT_KEYS = ("h2scope_script", "connection", "server", "preface", "frames", "comment")
SERVER_KEYS = ("host", "port", "tls", "sni", "alpn")
ENTRY_KEYS = ("type", "stream", "delay", "flags", "text", "hex", "length", "padding",
              "headers", "header_block_hex", "continuations", "priority", "settings",
              "increment", "opaque_hex", "error", "last_stream_id", "debug_text", "debug_hex",
              "prioritized_stream", "value", "type_id", "flags_raw", "payload_hex", "comment")
"""Every key a frame script's entry may have; another is a mistake, said as one (a
misspelt ``hex`` would otherwise send an empty DATA frame)."""
_TYPE_KEYS = {
    "DATA": ("text", "hex", "length", "padding"),
    "HEADERS": ("headers", "header_block_hex", "continuations", "priority", "padding"),
    "PUSH_PROMISE": ("headers", "header_block_hex", "continuations", "padding"),
    "SETTINGS": ("settings",), "WINDOW_UPDATE": ("increment",), "PING": ("opaque_hex",),
    "PRIORITY": ("priority",), "RST_STREAM": ("error",),
    "GOAWAY": ("last_stream_id", "error", "debug_text", "debug_hex"),
    "PRIORITY_UPDATE": ("prioritized_stream", "value"),
}
"""The keys particular to each type: a misspelt key is matched against these first."""


def parse_script(doc: Any) -> Script:
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise ScriptError("a frame script is a mapping with a 'frames' list")
    for key in doc:
        if key not in SCRIPT_KEYS and not str(key).startswith("_"):
            close = difflib.get_close_matches(str(key), SCRIPT_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ScriptError(f"{key}: unknown key; {hint}a script has "
                              f"{', '.join(SCRIPT_KEYS)}, and notes of your own under keys "
                              "starting with _ (docs/export.md, 'script')")
    server = doc.get("server") or {}
    if not isinstance(server, dict):
        raise ScriptError(f"server: {_shape(server)}; server is a mapping of "
                          f"{', '.join(SERVER_KEYS)}")
    for key in server:
        if key not in SERVER_KEYS:
            raise ScriptError(f"server.{key}: unknown key; server has "
                              f"{', '.join(SERVER_KEYS)}")
    version = doc.get("h2scope_script", SCRIPT_VERSION)
    if version != SCRIPT_VERSION:
        raise ScriptError(f"h2scope_script: version {version} is not {SCRIPT_VERSION}, the "
                          "version this h2scope reads")
    frames = []
    for i, entry in enumerate(doc["frames"]):
        if not isinstance(entry, dict):
            raise ScriptError(f"frames[{i}]: an entry is a mapping")
        unknown = [k for k in entry if k not in ENTRY_KEYS]
        if unknown:
            close = difflib.get_close_matches(
                str(unknown[0]), _TYPE_KEYS.get(str(entry.get("type")), ()), n=1, cutoff=0.4) \
                or difflib.get_close_matches(str(unknown[0]), ENTRY_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ScriptError(f"frames[{i}].{unknown[0]}: unknown key; {hint}an entry has "
                              f"{', '.join(ENTRY_KEYS)} (docs/export.md, 'script')")
        kind = entry.get("type")
        if not isinstance(kind, (str, type(None))):
            raise ScriptError(f"frames[{i}].type: {_shape(kind)}; a type is a name such as "
                              "HEADERS or DATA (type_id for a number)")
        if "type_id" not in entry and kind not in _TYPES:
            raise ScriptError(f"frames[{i}].type: unknown frame type {kind!r}"
                              f"{suggestion(kind, _TYPES)} (known: {', '.join(_TYPES)}; "
                              "type_id and payload_hex for other types)")
        stream = entry.get("stream", 0)
        if not isinstance(stream, int) or not 0 <= stream < 2**31:
            raise ScriptError(f"frames[{i}].stream: {stream!r} is not a stream id")
        delay = entry.get("delay", 0.0)
        if not isinstance(delay, (int, float)) or not math.isfinite(delay) or delay < 0:
            raise ScriptError(f"frames[{i}].delay: {delay!r} is not a number of seconds >= 0")
        flags = entry.get("flags") or []
        if isinstance(flags, str):
            raise ScriptError(f"frames[{i}].flags: {flags!r} is text; flags are a list: "
                              f"[{flags}]")
        if not isinstance(flags, (list, tuple)):
            raise ScriptError(f"frames[{i}].flags: {_shape(flags)}; flags are a list of "
                              "names such as [END_STREAM] (flags_raw for a number)")
        for key, want in (("priority", dict), ("headers", list), ("settings", (list, dict))):
            if key in entry and not isinstance(entry[key], want):
                raise ScriptError(f"frames[{i}].{key}: {_shape(entry[key])}; see an exported "
                                  "script for its shape (docs/export.md, 'script')")
        for name in flags:
            if kind in _TYPES and (_TYPES[kind], name) not in _FLAGS \
                    and not str(name).startswith("0x"):
                names = [n for (t, n) in _FLAGS if t == _TYPES[kind]]
                known = f" ({kind}'s flags: {', '.join(names)})" if names else \
                    f" ({kind} defines no flags)"
                raise ScriptError(f"frames[{i}].flags: {kind} has no flag {name!r}"
                                  f"{suggestion(name, names)}{known}")
        if kind in ("HEADERS", "PUSH_PROMISE") and "headers" not in entry \
                and "header_block_hex" not in entry:
            raise ScriptError(f"frames[{i}]: a {kind} entry needs 'headers'")
        if kind == "HEADERS":
            for j, pair in enumerate(entry.get("headers", ())):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ScriptError(f"frames[{i}].headers[{j}]: a header is [name, value]")
        frames.append(entry)
    conn = doc.get("connection")
    return Script(connection=conn if isinstance(conn, int) else None,
                  server=dict(doc.get("server") or {}), preface=bool(doc.get("preface", True)),
                  frames=tuple(frames))


def _shape(value: Any) -> str:
    """``a number (5)``, ``a list ([…])``: what a script value is, for a message."""
    kind = {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)
    shown = repr(value)
    return f"{kind} ({shown[:40]}{'…' if len(shown) > 40 else ''})"


def flags_of(entry: dict[str, Any]) -> int:
    """The flag bits an entry names (``flags_raw`` wins when present)."""
    if "flags_raw" in entry:
        return int(entry["flags_raw"])
    ftype = frame_type(entry)
    bits = 0
    for name in entry.get("flags", ()):
        name = str(name)
        bits |= int(name, 16) if name.startswith("0x") else _FLAGS.get((ftype, name), 0)
    return bits


def frame_type(entry: dict[str, Any]) -> int:
    if "type_id" in entry:
        return int(entry["type_id"])
    return _TYPES[str(entry["type"])]


def error_code(value: Any) -> int:
    """An error code given by name (``CANCEL``) or number."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text in _ERRORS:
        return _ERRORS[text]
    if text.startswith("UNKNOWN_ERROR(") and text.endswith(")"):  # (as older scripts wrote it)
        return int(text[14:-1], 16)
    if text.startswith("0x") and text.endswith(" (unregistered)"):
        return int(text.split()[0], 16)
    raise ScriptError(f"unknown error code {value!r}{suggestion(value, _ERRORS)} (a name "
                      "from RFC 9113 §7 such as CANCEL, or a number)")


def setting_code(value: Any) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text in _SETTINGS:
        return _SETTINGS[text]
    if text.startswith("UNKNOWN_SETTING(") and text.endswith(")"):
        return int(text[16:-1], 16)
    raise ScriptError(f"unknown setting {value!r}{suggestion(value, _SETTINGS)} (a name "
                      "such as INITIAL_WINDOW_SIZE, or a number)")


def data_of(entry: dict[str, Any]) -> bytes:
    """A DATA entry's payload: text, hex, zero-padded to ``length`` if given."""
    if "hex" in entry:
        data = bytes.fromhex(str(entry["hex"]))
    else:
        data = str(entry.get("text", "")).encode("utf-8")
    length = entry.get("length")
    if isinstance(length, int) and length > len(data):
        data += bytes(length - len(data))  # truncated when recorded: zeros in its place
    return data


def headers_of(entry: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(n), str(v)) for n, v in entry.get("headers", ())]


def _frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    n = len(payload)
    return _HEADER.pack(n >> 8, n & 0xFF, ftype, flags, stream & 0x7FFF_FFFF) + payload


def _priority(p: dict[str, Any]) -> bytes:
    dep = int(p.get("depends_on", 0)) | (0x8000_0000 if p.get("exclusive") else 0)
    weight = int(p.get("weight", 16))
    if not 1 <= weight <= 256:  # (RFC 7540 §5.3.2: one byte on the wire, plus one)
        raise ScriptError(f"priority weight {weight} is not 1 to 256")
    return struct.pack(">LB", dep, weight - 1)


def encode_entry(entry: dict[str, Any], encoder: hpack.Encoder,
                 max_frame_size: int = 16_384) -> bytes:
    """The frame bytes of one script entry (several frames for CONTINUATIONs).

    HEADERS use ``encoder`` (a fresh HPACK context per connection); a block
    that was split over CONTINUATION frames when recorded is split again into
    ``continuations + 1`` pieces.
    """
    ftype = frame_type(entry)
    flags = flags_of(entry)
    stream = int(entry.get("stream", 0))
    if "payload_hex" in entry:
        return _frame(ftype, flags, stream, bytes.fromhex(str(entry["payload_hex"])))
    pad = int(entry.get("padding", 0) or 0)
    padded = flags & 0x8
    match ftype:
        case FrameType.DATA:
            body = data_of(entry)
            if padded:
                body = bytes([pad]) + body + bytes(pad)
            return _frame(ftype, flags, stream, body)
        case FrameType.HEADERS:
            if "header_block_hex" in entry:
                block = bytes.fromhex(str(entry["header_block_hex"]))
            else:
                block = encoder.encode(headers_of(entry), huffman=True)
            prio = _priority(entry["priority"]) if "priority" in entry else b""
            if prio:
                flags |= 0x20
            pieces = max(1, int(entry.get("continuations", 0)) + 1)
            size = max(1, -(-len(block) // pieces))
            size = min(size, max_frame_size - len(prio) - (pad + 1 if padded else 0))
            chunks = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
            first = prio + chunks[0]
            if padded:
                first = bytes([pad]) + first + bytes(pad)
            if len(chunks) > 1:
                flags &= ~0x4
            out = [_frame(ftype, flags, stream, first)]
            for i, chunk in enumerate(chunks[1:], 1):
                out.append(_frame(FrameType.CONTINUATION, 0x4 if i == len(chunks) - 1 else 0,
                                  stream, chunk))
            return b"".join(out)
        case FrameType.PRIORITY:
            return _frame(ftype, flags, stream, _priority(entry.get("priority") or {}))
        case FrameType.RST_STREAM:
            return _frame(ftype, flags, stream,
                          struct.pack(">L", error_code(entry.get("error", "CANCEL"))))
        case FrameType.SETTINGS:
            payload = b"".join(struct.pack(">HL", setting_code(k), int(v))
                               for k, v in entry.get("settings", ()))
            return _frame(ftype, flags, 0, payload)
        case FrameType.PING:
            opaque = bytes.fromhex(str(entry.get("opaque_hex", "00" * 8)))
            return _frame(ftype, flags, 0, opaque[:8].ljust(8, b"\0"))
        case FrameType.GOAWAY:
            debug = bytes.fromhex(entry["debug_hex"]) if "debug_hex" in entry else \
                str(entry.get("debug_text", "")).encode()
            return _frame(ftype, flags, 0, struct.pack(
                ">LL", int(entry.get("last_stream_id", 0)),
                error_code(entry.get("error", "NO_ERROR"))) + debug)
        case FrameType.WINDOW_UPDATE:
            return _frame(ftype, flags, stream, struct.pack(">L", int(entry["increment"])))
        case FrameType.PRIORITY_UPDATE:
            value = str(entry.get("value", "")).encode("latin-1")
            return _frame(ftype, flags, 0,
                          struct.pack(">L", int(entry["prioritized_stream"])) + value)
    raise ScriptError(f"cannot encode a {entry.get('type')} entry without payload_hex")
