"""A stream's message bodies: reassembled from DATA frames, decoded for reading.

Reassembly reads only this stream's DATA frames (by row) from wherever the
table keeps frame bytes. Decoding follows ``content-encoding`` (gzip and
deflate from the standard library; ``br`` and ``zstd`` when the optional
``brotli`` / ``zstandard`` packages are installed) and then ``content-type``:
JSON pretty-printed, text as text, gRPC (RFC-less but specified in
grpc/doc/PROTOCOL-HTTP2.md) split into its length-prefixed messages, each
(inflated by ``grpc-encoding`` if compressed) and ``application/x-protobuf``
bodies decoded as protobuf without a schema, anything else as a hex dump.
"""

from __future__ import annotations

import base64
import json
import shlex
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.content import decode_content
from proxy.observe.frames import DataFrame
from proxy.protobuf import decode_raw
from proxy.protoset import Protoset
from proxy.websocket import Deflate, WsMessage, WsReader
from proxy.websocket import messages as ws_messages
from ui.model.connections import ConnInfo, Headers, StreamInfo
from ui.model.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    raw: bytes
    """The bytes as they crossed the wire (still content-encoded)."""
    frames: int
    truncated: bool = False
    """Some DATA payloads were not kept, or only their start (record.max_data_bytes):
    ``raw`` holds what was."""
    sent: int = 0
    """The bytes of data the frames carried (padding excluded), kept or not."""


def reassemble(session: Session, stream: StreamInfo, direction: int) -> Body:
    """The DATA payloads of ``stream`` sent in ``direction`` (0 request, 1 response)."""
    table = session.table
    parts: list[bytes] = []
    frames = 0
    sent = 0
    truncated = False
    for row in stream.rows:
        if table.type[row] != 0 or table.direction[row] != direction:
            continue
        frames += 1
        frame = table.frame(row)
        if frame is None:
            truncated = True
            continue
        if isinstance(frame, DataFrame):
            sent += frame.data_length
            kept = session.capped.get(row)
            if kept is None:
                parts.append(frame.data)
            else:  # the capture kept only the start: the rest would be zeros
                truncated = True
                start = 1 if frame.pad_length is not None else 0
                parts.append(frame.data[:max(0, kept - start)])
    return Body(raw=b"".join(parts), frames=frames, truncated=truncated, sent=sent)


def data_frames(session: Session, stream: StreamInfo,
                ) -> tuple[list[tuple[int, int, float, bytes]], bool]:
    """``(row, direction, t, payload)`` of the stream's DATA frames in order, and
    whether some payloads were not kept (as in :func:`reassemble`): a direction's
    frames stop at its first incomplete one, since what follows cannot be framed."""
    table = session.table
    out: list[tuple[int, int, float, bytes]] = []
    cut = [False, False]
    for row in stream.rows:
        direction = table.direction[row]
        if table.type[row] != 0 or cut[direction]:
            continue
        frame = table.frame(row)
        if not isinstance(frame, DataFrame) or row in session.capped:
            cut[direction] = True
            continue
        out.append((row, direction, table.time[row], frame.data))
    return out, cut[0] or cut[1]


def _deflate(stream: StreamInfo) -> Deflate | None:
    return Deflate.from_header(header(stream.response_headers, "sec-websocket-extensions"))


_ws_cache: dict[tuple[int, int, int, int], dict[int, list[WsMessage]]] = {}


def websocket_by_row(session: Session, stream: StreamInfo) -> dict[int, list[WsMessage]]:
    """The WebSocket messages each DATA row of an RFC 8441 stream completes (cached
    while the stream has the same rows: the detail pane asks on every move)."""
    key = (id(session), stream.conn_id, stream.stream_id, len(stream.rows))
    cached = _ws_cache.get(key)
    if cached is not None:
        return cached
    deflate = _deflate(stream)
    readers = (WsReader(0, deflate), WsReader(1, deflate))
    out: dict[int, list[WsMessage]] = {}
    for row, direction, t, payload in data_frames(session, stream)[0]:
        msgs = readers[direction].feed(payload, t)
        if msgs:
            out[row] = msgs
    if len(_ws_cache) >= 8:
        _ws_cache.clear()
    _ws_cache[key] = out
    return out


def websocket_lines(session: Session, stream: StreamInfo) -> list[str]:
    """The messages of an RFC 8441 WebSocket stream, both ways in time order."""
    frames, truncated = data_frames(session, stream)
    deflate = _deflate(stream)
    msgs, notes = ws_messages([(d, t, payload) for _, d, t, payload in frames], deflate)
    t0 = stream.first_t
    lines = [f"; {len(msgs)} message(s)"
             + (", permessage-deflate (RFC 7692)" if deflate is not None else "")]
    if truncated:
        lines.append("; some DATA payloads were not kept: messages after them cannot be read")
    for m in msgs:
        arrow = "→" if m.direction == 0 else "←"
        lines.append(f"+{(m.t - t0) * 1000:10.3f} ms {arrow} {m.summary()}")
        lines.extend(f"      ! {p}" for p in m.problems)
        if m.opcode == 2 and len(m.payload) > 24:
            lines.extend("      " + x for x in hexdump(m.payload, limit=512))
    lines.extend(f"; {note}" for note in notes)
    return lines


def header(headers: Headers | None, name: str) -> str | None:
    for n, v in headers or ():
        if n == name:
            return v
    return None


def grpc_messages(data: bytes) -> list[tuple[bool, bytes]]:
    """Split a gRPC body into (compressed flag, message) by its 5-byte prefixes."""
    out = []
    pos = 0
    while pos + 5 <= len(data):
        flag = data[pos]
        n = int.from_bytes(data[pos + 1:pos + 5], "big")
        out.append((bool(flag & 1), data[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return out


def hexdump(data: bytes, *, limit: int = 64 * 1024, start: int = 0, more: str = "",
            per: int = 16) -> list[str]:
    """Classic hex dump, ``per`` bytes a line (offsets from ``start``), of the first
    ``limit`` bytes; past them, a last line says how many more there are (and
    ``more`` after that)."""
    lines = []
    for off in range(0, min(len(data), limit), per):
        chunk = data[off:off + per]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{start + off:08x}  {hexes:<{3 * per - 1}}  {text}")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit:,} more bytes{more}")
    return lines


_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf",
                   "application/vnd.google.protobuf", "application/octet-stream+protobuf")


def _grpc_message(msg: bytes, compressed: bool, grpc_encoding: str | None,
                  proto: bool) -> tuple[bytes, str, bool]:
    """A gRPC message ready to show: (bytes, note, protobuf?); a compressed one is
    inflated by its ``grpc-encoding`` (gzip, deflate)."""
    note = ""
    if compressed:
        enc = (grpc_encoding or "").strip().lower()
        try:
            if enc == "gzip":
                msg, note = zlib.decompress(msg, 16 + zlib.MAX_WBITS), ", gzip decoded"
            elif enc == "deflate":
                msg, note = zlib.decompress(msg), ", deflate decoded"
            else:
                return msg, f", compressed with {enc or 'an unnamed grpc-encoding'}: " \
                            "shown as received", False
        except zlib.error as exc:
            return msg, f", {enc}: cannot decode ({exc})", False
    return msg, note, proto


def _grpc_web_lines(data: bytes, ctype: str, grpc_encoding: str | None,
                    type_name: str | None = None) -> list[str]:
    """gRPC-Web (grpc/doc/PROTOCOL-WEB.md): the gRPC framing, base64 in the ``-text``
    variant, and a frame with the 0x80 flag that carries the trailers as text."""
    lines = []
    if ctype.startswith("application/grpc-web-text"):
        try:  # each chunk may be padded on its own: decode piece by piece
            parts = [base64.b64decode(p + b"=" * (-len(p) % 4)) for p in
                     data.replace(b"\r", b"").replace(b"\n", b"").split(b"=") if p]
            data = b"".join(parts)
        except ValueError as exc:
            return [f"; gRPC-Web text: not base64 ({exc})", *hexdump(data)]
        lines.append("; gRPC-Web text: base64 decoded")
    proto = ctype.split(";")[0].strip() in ("application/grpc-web", "application/grpc-web+proto",
                                            "application/grpc-web-text",
                                            "application/grpc-web-text+proto")
    frames = []
    pos = 0
    while pos + 5 <= len(data):
        n = int.from_bytes(data[pos + 1:pos + 5], "big")
        frames.append((data[pos], data[pos + 5:pos + 5 + n]))
        pos += 5 + n
    lines.append(f"; gRPC-Web: {len(frames)} length-prefixed frame(s)")
    for i, (flag, body) in enumerate(frames, 1):
        if flag & 0x80:
            lines.append(f"trailers (frame {i}):")
            lines.extend("  " + t for t in body.decode("utf-8", "replace").splitlines() if t)
            continue
        shown, how, as_proto = _grpc_message(body, bool(flag & 1), grpc_encoding, proto)
        lines.append(f"message {i}: {len(body)} bytes"
                     f"{' (compressed' + how + ')' if flag & 1 else ''}")
        shown_lines = _protobuf_or_hex(shown, 4096, type_name) if as_proto else \
            hexdump(shown, limit=4096)
        lines.extend("  " + x for x in shown_lines)
    if pos < len(data):
        lines.append(f"; {len(data) - pos} bytes after the last whole frame")
    return lines


SCHEMA: Protoset | None = None
"""The user's protosets (``--protoset``): gRPC messages decoded with field names."""


def _protobuf_or_hex(data: bytes, limit: int, type_name: str | None = None) -> list[str]:
    if type_name is not None and SCHEMA is not None:
        named = SCHEMA.decode(data, type_name)
        if named is not None:
            return [f"; {type_name} (from the protoset)", *named] if named else \
                [f"; {type_name}: (empty message)"]
    fields = decode_raw(data)
    if fields is None:
        return ["; not a well-formed protobuf message: hex", *hexdump(data, limit=limit)]
    return ["; protobuf, no schema: field number: value (protoc --decode_raw)", *fields] \
        if fields else ["(empty message)"]


def render_body(data: bytes, content_type: str | None, encoding: str | None,
                grpc_encoding: str | None = None, grpc_path: str | None = None,
                request: bool = False, hex_limit: int = 64 * 1024,
                more: str = "") -> list[str]:
    """The body as lines for reading: decoded, then JSON / text / gRPC / protobuf / hex.

    gRPC messages (and ``application/x-protobuf`` bodies) are decoded as protobuf
    without a schema (:mod:`ui.model.protobuf`); compressed gRPC messages are
    inflated by ``grpc_encoding`` first. With a protoset (:data:`SCHEMA`) that has
    the method at ``grpc_path``, its request (``request``) or response type names
    the fields. A body shown as a hex dump is dumped to ``hex_limit`` bytes, then
    a line says how many more there are (and ``more``)."""
    if not data:
        return ["(no body)"]
    type_name = SCHEMA.method_type(grpc_path, request) \
        if SCHEMA is not None and grpc_path else None
    decoded, note = decode_content(data, encoding)
    lines = [f"; {note}"] if note else []
    ctype = (content_type or "").lower()
    if ctype.startswith("application/grpc-web"):
        return lines + _grpc_web_lines(decoded, ctype, grpc_encoding, type_name)
    if ctype.startswith("application/grpc"):
        proto = ctype in ("application/grpc", "application/grpc+proto")
        msgs = grpc_messages(decoded)
        lines.append(f"; gRPC: {len(msgs)} length-prefixed message(s)")
        for i, (compressed, msg) in enumerate(msgs, 1):
            shown, how, as_proto = _grpc_message(msg, compressed, grpc_encoding, proto)
            lines.append(f"message {i}: {len(msg)} bytes"
                         f"{' (compressed' + how + ')' if compressed else ''}")
            body = _protobuf_or_hex(shown, 4096, type_name) if as_proto else \
                hexdump(shown, limit=4096)
            lines.extend("  " + x for x in body)
        return lines
    if ctype.split(";")[0].strip() in _PROTOBUF_TYPES:
        lines.extend(_protobuf_or_hex(decoded, 64 * 1024))
        return lines
    if "json" in ctype or decoded[:1] in (b"{", b"["):
        try:
            value = json.loads(decoded)
        except ValueError:
            pass
        else:
            lines.extend(json.dumps(value, indent=2, ensure_ascii=False).splitlines())
            return lines
    if ctype.startswith("text/") or any(k in ctype for k in ("xml", "javascript", "html",
                                                             "x-www-form-urlencoded")) \
            or looks_textual(decoded):
        text = decoded.decode("utf-8", "replace")
        lines.extend(text.splitlines()[:5000] or [""])
        return lines
    lines.extend(hexdump(decoded, limit=hex_limit, more=more))
    return lines


def looks_textual(data: bytes) -> bool:
    """Whether ``data`` reads as text: its first 512 bytes are printable UTF-8
    (line breaks and tabs allowed)."""
    sample = data[:512]
    if not sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def curl_command(conn: ConnInfo, stream: StreamInfo, body: bytes = b"") -> str:
    """``curl --http2 ...`` reproducing the stream's request (pseudo-headers to the URL)."""
    h = stream.request_headers or ()
    pseudo = {n: v for n, v in h if n.startswith(":")}
    scheme = pseudo.get(":scheme", "https")
    authority = pseudo.get(":authority") or conn.host or "localhost"
    url = f"{scheme}://{authority}{pseudo.get(':path', '/')}"
    method = pseudo.get(":method", "GET")
    protocol = pseudo.get(":protocol")
    if method == "CONNECT" and protocol is not None:
        return _extended_connect_command(protocol, scheme, authority,
                                         pseudo.get(":path", "/"), h)
    args = ["curl", "--http2-prior-knowledge" if scheme == "http" else "--http2"]
    if method != "GET" or body:
        args += ["-X", method]
    for n, v in h:
        if n.startswith(":") or n in ("content-length",):
            continue
        args += ["-H", f"{n}: {v}"]
    if body:
        try:
            args += ["--data-binary", body.decode("utf-8")]
        except UnicodeDecodeError:
            args += ["--data-binary", "@body.bin"]
    args.append(url)
    return " ".join(_quoted(a) for a in args)


_WS_OWN = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"})
"""Fields curl makes itself for a WebSocket (its key, version and extensions)."""


def _extended_connect_command(protocol: str, scheme: str, authority: str, path: str,
                              headers: Sequence[tuple[str, str]]) -> str:
    """An RFC 8441 extended CONNECT: curl cannot send one (no ``:protocol``). A
    WebSocket is opened the way curl can, over HTTP/1.1 (RFC 6455 Upgrade) at its
    ws(s):// URL, with the recorded fields; another protocol gets a comment."""
    if protocol.lower() != "websocket":
        return (f"# an extended CONNECT (:protocol {protocol}, RFC 8441) to "
                f"{authority}{path}: curl cannot send one")
    args = ["curl", "--no-buffer", "--include"]
    for n, v in headers:
        if not n.startswith(":") and n not in _WS_OWN and n != "content-length":
            args += ["-H", f"{n}: {v}"]
    args.append(f"{'ws' if scheme == 'http' else 'wss'}://{authority}{path}")
    return " ".join(_quoted(a) for a in args) + \
        "  # a WebSocket over HTTP/1.1 (curl 8.11+): curl has no RFC 8441 extended CONNECT"


def _quoted(arg: str) -> str:
    """``arg`` for a POSIX shell; with bytes that are not printable UTF-8 (a gRPC
    ``-bin`` value sent raw, a control character) as bash's ``$'\\xNN'``, so the
    command is text that copies and pastes, and sends the recorded bytes."""
    if arg.isprintable():
        return shlex.quote(arg)
    raw = arg.encode("utf-8", "surrogateescape")
    return "$'" + "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x27, 0x5C)
                          else f"\\x{b:02x}" for b in raw) + "'"
