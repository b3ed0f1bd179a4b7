"""gRPC messages in the text logs: under each DATA frame, the messages it completes.

The headless log and ``export --format text`` print a line per frame, as
``nghttp -v`` does; on a gRPC stream (a request with ``content-type:
application/grpc``) :class:`GrpcTracker` reassembles each direction's
length-prefixed messages (gRPC over HTTP/2: a flag byte, a 4-byte length, the
message) and prints the ones a DATA frame completes, one line each::

    0.012 #1   →     1 DATA [END_STREAM] len=61  61 bytes  window conn=…
              grpc → message 1: 56 bytes  demo.v1.HelloRequest {name: "world" kind: …}

With a protoset (``--protoset``) the method's request or response type names
the fields, as the UI's stream view does; without, the fields are numbered
(``protoc --decode_raw``). JSON Lines carries the same under ``"grpc"``.
Compressed messages are inflated by the direction's ``grpc-encoding`` (gzip,
deflate). Memory is bounded: :attr:`GrpcTracker.MAX_STREAMS` streams at a
time, and a message longer than :attr:`GrpcTracker.MAX_MESSAGE` is counted,
not kept (inflated: four times that). A
payload the capture cut stops that direction (what follows cannot be framed),
and says so once.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from proxy.observe.describe import duration_ms, grpc_code_name, grpc_timeout_ms
from proxy.observe.events import FrameObserved
from proxy.protobuf import decode_raw, rpc_status
from proxy.protoset import Protoset

GRPC_TYPES = (("content-type", "application/grpc"), ("content-type", "application/grpc+proto"),
              ("content-type", "application/grpc-web"),
              ("content-type", "application/grpc-web+proto"))
"""A request that carries one of these is a gRPC call: gRPC, or binary gRPC-Web,
framed the same but for its trailers frame (flag 0x80); gRPC-Web text is base64."""
SUMMARY = 160
"""Characters of a message's fields shown on its line."""


@dataclass(frozen=True, slots=True)
class GrpcMessage:
    direction: int
    index: int
    """1 for a direction's first message on the stream."""
    size: int
    compressed: bool
    type_name: str | None
    fields: list[str] | None
    """The decoded fields (``protoc --decode`` lines), None when not decoded."""
    note: str = ""
    trailers: bool = False
    """A gRPC-Web trailers frame (flag 0x80): ``note`` holds its text."""
    source: tuple[Protoset, bytes, bool] | None = field(default=None, repr=False,
                                                        compare=False)
    """With a protoset: what the JSON mapping of :meth:`as_dict` is made from, when
    asked (the schema, the message's bytes, whether they are only its start)."""

    def summary(self) -> str:
        if self.trailers:
            return f"trailers frame: {self.note}"
        head = f"message {self.index}: {self.size} bytes"
        if self.compressed:
            head += " (compressed)"
        if self.fields is None:
            return f"{head}  {self.note}" if self.note else head
        text = " ".join(line.strip() for line in self.fields) or "(empty)"
        if len(text) > SUMMARY:
            text = text[:SUMMARY - 1] + "…"
        name = f"{self.type_name} " if self.type_name else ""
        said = f"{head}  {name}{{{text}}}"
        return f"{said}  {self.note}" if self.note else said

    def as_dict(self) -> dict[str, Any]:
        if self.trailers:
            return {"trailers": self.note, "size": self.size}
        d: dict[str, Any] = {"message": self.index, "size": self.size}
        if self.compressed:
            d["compressed"] = True
        if self.type_name:
            d["type"] = self.type_name
        if self.fields is not None:
            d["fields"] = self.fields
        if self.source is not None and self.type_name:
            schema, data, partial = self.source
            mapped = schema.decode_json(data, self.type_name, partial)
            if mapped is not None:  # (the proto3 JSON mapping, as grpcurl prints it)
                d["json"] = mapped
                if partial:  # (its first 64 KiB: a field cut there has its start only)
                    d["json_partial"] = True
        if self.note:
            d["note"] = self.note
        return d


def _inflate(payload: bytes, encoding: str | None,
             limit: int) -> tuple[bytes | None, str, bool]:
    """A compressed message inflated (gzip, deflate) to at most ``limit`` bytes:
    (the bytes, or None and why not; whether they are the whole message)."""
    if encoding not in ("gzip", "deflate"):
        return None, (f"(grpc-encoding {encoding or 'not given'}: not inflated; h2scope "
                      "inflates gzip and deflate)"), False
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(payload, limit)
    except zlib.error as exc:
        return None, (f"(grpc-encoding {encoding}: not inflated: not valid {encoding} data: "
                      f"{exc})"), False
    return out, "", not d.unconsumed_tail


def _not_protobuf(data: bytes) -> str:
    return f"not protobuf: {data[:24].hex(' ')}" + (" …" if len(data) > 24 else "")


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if not n % 1024 else f"{n:,} bytes"


class _Stream:
    __slots__ = ("answered", "big", "buffers", "counts", "encodings", "ended", "lost", "path",
                 "skip")

    def __init__(self, path: str) -> None:
        self.path = path
        self.encodings: list[str | None] = [None, None]
        """Each direction's ``grpc-encoding`` (how its compressed messages are)."""
        self.buffers = (bytearray(), bytearray())
        self.counts = [0, 0]
        self.skip = [0, 0]
        """Bytes of an oversized message still to pass over, per direction."""
        self.big: list[tuple[int, int, bytearray, bool] | None] = [None, None]
        """An oversized message's (index, size, first bytes so far), per direction:
        its first MAX_MESSAGE bytes are decoded, the fields that end within them."""
        self.lost: list[str | None] = [None, None]
        self.ended = 0
        self.answered = False
        """The response's (final) headers came: whether they say gRPC was checked."""


class GrpcTracker:
    """gRPC streams of every connection, read as their DATA goes by. Fed every frame
    event in order (filtered or not, so the framing stays whole)."""

    MAX_STREAMS = 256
    MAX_MESSAGE = 64 * 1024

    def __init__(self, schema: Protoset | None = None) -> None:
        self.schema = schema
        self.streams: dict[tuple[int, int], _Stream] = {}
        """A plain dict, so that callers test ``if tracker.streams`` at C speed."""
        self._calls: dict[int, tuple[object, bool]] = {}
        """Request blocks seen, by id (the block kept, so the id is not reused):
        the observer hands back the same block for a repeated request."""

    def is_call(self, block: Any) -> bool:
        """Whether a request header block starts a gRPC call (cheap when repeated)."""
        hit = self._calls.get(id(block))
        if hit is not None and hit[0] is block:
            return hit[1]
        headers = block.headers
        found = any(t in headers for t in GRPC_TYPES)
        if len(self._calls) >= 1024:
            self._calls.clear()
        self._calls[id(block)] = (block, found)
        return found

    def feed(self, conn_id: int, ev: FrameObserved,
             truncated: bool = False) -> tuple[list[GrpcMessage], str | None]:
        """The messages this frame completes, and why its direction stopped being
        read if it just did."""
        f = ev.frame
        key = (conn_id, f.stream_id)
        block = ev.block
        if block is not None and ev.direction == 0 and key not in self.streams \
                and self.is_call(block):
            if len(self.streams) >= self.MAX_STREAMS:
                self.streams.pop(next(iter(self.streams)))
            path = next((v for n, v in block.headers if n == ":path"), "")
            self.streams[key] = _Stream(path)
        state = self.streams.get(key)
        if state is None:
            return [], None
        d = ev.direction
        lost: str | None = None
        if block is not None:
            encoding = next((v for n, v in block.headers if n == "grpc-encoding"), None)
            if encoding is not None:
                state.encodings[d] = encoding.strip().lower()
            if d == 1 and not state.answered:
                lost = self._answer(state, block.headers)
        if f.type == 3:  # RST_STREAM
            del self.streams[key]
            return [], lost
        msgs: list[GrpcMessage] = []
        data = getattr(f, "data", None)
        if data is not None and state.lost[d] is None and not f.malformed:
            if truncated:
                state.lost[d] = lost = "a payload the capture cut (max_data_bytes)"
            else:
                msgs = self._messages(state, d, data)
        if f.type in (0, 1) and f.flags & 0x1:
            big = state.big[d]
            if big is not None:  # (cut before its first bytes were all there)
                msgs.append(self._start_decoded(state, d, *big))
                state.big[d] = None
            buf = state.buffers[d]
            if (buf or state.skip[d]) and state.lost[d] is None:
                # The direction ended inside a message: the peer gets a cut message
                # (gRPC clients then fail the call, or drop it silently).
                if state.skip[d]:
                    whole = f"{state.skip[d]} of its bytes never came"
                    index = state.counts[d]  # (the oversized one, counted already)
                elif len(buf) >= 5:
                    whole = f"{len(buf) - 5} of its {int.from_bytes(buf[1:5], 'big')} bytes came"
                    index = state.counts[d] + 1
                else:
                    whole = f"{len(buf)} bytes of its 5-byte prefix came"
                    index = state.counts[d] + 1
                msgs.append(GrpcMessage(d, index, max(len(buf) - 5, 0), False, None, None,
                                        f"cut: the stream ended inside this message ({whole})"))
                buf.clear()
                state.skip[d] = 0
            state.ended |= 1 << d
            if state.ended == 3:
                del self.streams[key]
        return msgs, lost

    def call_messages(self, request: Any, response: Any,
                      frames: Iterable[tuple[int, float, bytes]],
                      ) -> list[tuple[float, GrpcMessage]]:
        """One call's messages in the order they completed, both directions
        interleaved (a bidirectional stream's conversation), each with the time of
        the DATA frame that completed it: ``frames`` is ``(direction, t, payload)``
        of the stream's DATA in order; ``request``/``response`` its header lists."""
        state = _Stream(next((v for n, v in request if n == ":path"), ""))
        for n, v in request:
            if n == "grpc-encoding":
                state.encodings[0] = v.strip().lower()
        if response is not None:
            for n, v in response:
                if n == "grpc-encoding":
                    state.encodings[1] = v.strip().lower()
            self._answer(state, response)
        out: list[tuple[float, GrpcMessage]] = []
        for d, t, payload in frames:
            if state.lost[d] is None:
                out.extend((t, m) for m in self._messages(state, d, payload))
        return out

    @staticmethod
    def _answer(state: _Stream, headers: Any) -> str | None:
        """The response's headers: a server that answers a call with something else
        (an HTTP error page, a proxy's 503) does not send gRPC messages; its body is
        not read as them (a text's first bytes would be a bogus length prefix)."""
        status = next((v for n, v in headers if n == ":status"), "")
        if status.startswith("1"):
            return None  # interim: the final response comes later
        state.answered = True
        ctype = next((v for n, v in headers if n == "content-type"), "")
        if ctype.lower().startswith("application/grpc"):
            return None
        state.lost[1] = why = (f"the response is not gRPC (:status {status or '?'}, "
                               f"content-type {ctype or 'none'}): its body is not read as "
                               "gRPC messages")
        return why

    def _messages(self, state: _Stream, d: int, data: bytes) -> list[GrpcMessage]:
        out: list[GrpcMessage] = []
        skip = state.skip[d]
        if skip:
            passed = min(skip, len(data))
            state.skip[d] = skip - passed
            big = state.big[d]
            if big is not None:
                head = big[2]
                head += data[:min(passed, self.MAX_MESSAGE - len(head))]
                if len(head) >= self.MAX_MESSAGE or not state.skip[d]:
                    out.append(self._start_decoded(state, d, *big))
                    state.big[d] = None
            data = data[passed:]
        buf = state.buffers[d]
        buf += data
        while len(buf) >= 5:
            flags = buf[0]
            compressed = bool(flags & 1)
            size = int.from_bytes(buf[1:5], "big")
            if size > self.MAX_MESSAGE:
                state.counts[d] += 1
                have = len(buf) - 5
                head = bytearray(buf[5:5 + min(have, self.MAX_MESSAGE)])
                if len(head) >= self.MAX_MESSAGE:
                    out.append(self._start_decoded(state, d, state.counts[d], size, head,
                                                   compressed))
                else:
                    state.big[d] = (state.counts[d], size, head, compressed)
                state.skip[d] = max(0, size - have)
                del buf[:5 + min(size, have)]
                continue
            if len(buf) < 5 + size:
                break
            payload = bytes(buf[5:5 + size])
            del buf[:5 + size]
            if flags & 0x80:  # gRPC-Web: the trailers, as HTTP/1 header lines
                text = " ".join(line.strip() for line in
                                payload.decode("latin-1").splitlines() if line.strip())
                out.append(GrpcMessage(d, state.counts[d], size, False, None, None,
                                       text or "(empty)", trailers=True))
                continue
            state.counts[d] += 1
            out.append(self._decoded(state, d, size, compressed, payload))
        return out

    def _start_decoded(self, state: _Stream, d: int, index: int, size: int,
                       head: bytearray, compressed: bool = False) -> GrpcMessage:
        """An oversized message by its first bytes: the fields that end within them
        (a large upload's small fields — a name, an id — come first, its bytes after);
        a compressed one's first bytes inflated, up to as many."""
        first = _size(self.MAX_MESSAGE)
        if not compressed:
            return self._partial(state, d, index, size, bytes(head), False,
                                 f"(the fields within its first {first}; the rest not decoded)")
        encoding = state.encodings[d]
        data, why, _ = _inflate(bytes(head), encoding, self.MAX_MESSAGE)
        if data is None:
            return GrpcMessage(d, index, size, True, None, None, why)
        return self._partial(state, d, index, size, data, True,
                             f"({encoding} decoded: the fields within the first {first} it "
                             "inflates to; the rest not decoded)")

    def _partial(self, state: _Stream, d: int, index: int, size: int, data: bytes,
                 compressed: bool, note: str) -> GrpcMessage:
        """The fields that end within ``data``, a message's first bytes."""
        schema = self.schema
        type_name = schema.method_type(state.path, d == 0) if schema is not None else None
        fields = schema.decode(data, type_name, partial=True) \
            if type_name is not None and schema is not None else None
        if fields is None:
            type_name = None
            fields = decode_raw(data, partial=True)
        if fields is None:
            return GrpcMessage(d, index, size, compressed, None, None, _not_protobuf(data))
        return GrpcMessage(d, index, size, compressed, type_name, fields, note,
                           source=(schema, data, True) if type_name and schema else None)

    def _decoded(self, state: _Stream, d: int, size: int, compressed: bool,
                 payload: bytes) -> GrpcMessage:
        index = state.counts[d]
        if compressed:
            encoding = state.encodings[d]
            limit = self.MAX_MESSAGE * 4
            inflated, why, whole = _inflate(payload, encoding, limit)
            if inflated is None:
                return GrpcMessage(d, index, size, True, None, None, why)
            if not whole:
                return self._partial(state, d, index, size, inflated, True,
                                     f"({encoding} decoded: the fields within the first "
                                     f"{_size(limit)} it inflates to; the rest not decoded)")
            payload = inflated
        schema = self.schema
        type_name = schema.method_type(state.path, d == 0) if schema is not None else None
        if type_name is not None and schema is not None:
            fields = schema.decode(payload, type_name)
            if fields is not None:
                return GrpcMessage(d, index, size, compressed, type_name, fields,
                                   source=(schema, payload, False))
        fields = decode_raw(payload)
        if fields is None:
            return GrpcMessage(d, index, size, compressed, None, None, _not_protobuf(payload))
        return GrpcMessage(d, index, size, compressed, None, fields)

    def lines(self, conn_id: int, ev: FrameObserved, indent: str,
              truncated: bool = False) -> list[str]:
        """:meth:`feed`'s result as the lines to print under the frame's."""
        msgs, lost = self.feed(conn_id, ev, truncated)
        if not msgs and lost is None:
            return []
        arrow = "→" if ev.direction == 0 else "←"
        out = [f"{indent}grpc {arrow} {m.summary()}" for m in msgs]
        if lost is not None:
            out.append(f"{indent}grpc {arrow} not read further: {lost}")
        return out


def bin_value(value: str) -> bytes | None:
    """A ``-bin`` field's bytes: base64 (padding optional, as gRPC sends it), or sent
    raw where the peer allowed true binary metadata (grpc-core marks those with a
    leading NUL byte); None when it is neither."""
    raw = value.encode("utf-8", "surrogateescape")
    if raw[:1] == b"\x00":
        return raw[1:]
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except ValueError:
        return None


def grpc_field_note(name: str, value: str) -> str | None:
    """What a gRPC field's value means, for a reader of a header list:
    ``grpc-status: 9`` is FAILED_PRECONDITION, ``grpc-timeout: 501m`` a deadline
    of 501 ms, ``grpc-message`` percent-decoded, ``grpc-status-details-bin`` the
    google.rpc.Status it carries; None for other fields."""
    if not name.startswith("grpc-") and not name.endswith("-bin"):
        return None
    if name == "grpc-status":
        return grpc_code_name(value) or "not a status code: clients fail the call with INTERNAL"
    if name == "grpc-message":
        decoded = unquote(value)
        return f"decoded: {decoded!r}" if decoded != value else None
    if name == "grpc-timeout":
        ms = grpc_timeout_ms(value)
        if ms is not None:
            return f"deadline {duration_ms(ms)}"
        return "not a timeout (1-8 digits and a unit: H M S m u n)"
    if not name.endswith("-bin"):
        return None
    raw = bin_value(value)
    marker = value[:1] == "\x00"
    if raw is None:
        return "not base64: a -bin value must be, unless true binary metadata was allowed"
    if name == "grpc-status-details-bin":
        status = rpc_status(raw)
        if status is not None:
            code, message, types = status
            what = grpc_code_name(str(code)) or "?"
            parts = [f"google.rpc.Status: code {code} {what}"]
            if message:
                parts.append(f"message {message!r}")
            if types:
                parts.append("details " + ", ".join(types))
            return ", ".join(parts)
    kind = "sent raw (true binary metadata; the leading 0x00 is grpc's marker)" if marker \
        else "base64"
    return f"{len(raw)} bytes, {kind}"
