"""A capture to share: some of its connections, with the secrets in headers removed.

``h2scope export FILE --format capture -o OUT [--conn ID] [--redact]``. Without
``--redact`` the chosen connections' records are copied as they are. With it,
the values of credential headers (:data:`SENSITIVE`, and any named with
``--redact-header``) become ``REDACTED``, and so do the values of credential
query parameters (:data:`SENSITIVE_PARAMS`, and any named with
``--redact-param``) in URLs: ``:path``, ``location``, ``referer`` and
``content-location`` values, HTTP/1.x request lines and those header lines:

* HTTP/2 header blocks cannot be edited in place (Huffman strings, the dynamic
  table), so each block is decoded by the observer and encoded again, by one
  HPACK encoder per connection direction that keeps no dynamic table (a size
  update to 0 opens its first block: allowed whatever the peer's
  SETTINGS_HEADER_TABLE_SIZE). The block goes out as one HEADERS or
  PUSH_PROMISE frame (flags, priority and promised stream kept, padding
  dropped) plus CONTINUATION frames where it passes 16,384 bytes, at the time
  of the frame that completed it. The header lists are the recorded ones but
  for the redacted values; their HPACK representations are h2scope's, not the
  original encoder's.
* A connection whose header blocks do not all decode (an HPACK error, lost
  framing) cannot be redacted whole, so it is left out, and said.
* HTTP/1.x: the header lines of those names in the relayed bytes and in the
  message heads, and the request headers of an h2c upgrade.

Bodies are copied as they are: a token in a body or a WebSocket message is not
found (the docs say so).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import hpack

from proxy.capture.format import HTTP1_HEAD_LENGTH, RecordFlag, RecordType
from proxy.capture.reader import BadRecord, CaptureReader, Record
from proxy.capture.replay import Observers, replay_records
from proxy.capture.writer import CaptureWriter
from proxy.observe.enums import Direction
from proxy.observe.events import Desynced, Event, FrameObserved

SENSITIVE = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie",
                       "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token"})
"""Header names whose values ``--redact`` removes by default."""
SENSITIVE_PARAMS = frozenset({
    "access_token", "id_token", "refresh_token", "token", "auth", "code", "client_secret",
    "api_key", "apikey", "key", "password", "passwd", "secret", "session", "sessionid",
    "sig", "signature", "x-amz-credential", "x-amz-security-token", "x-amz-signature",
    "x-goog-credential", "x-goog-signature",
})
"""URL query parameter names whose values ``--redact`` removes by default (OAuth
tokens and codes, API keys, signed-URL signatures and credentials; compared
without regard to case)."""
CREDENTIAL_WORDS = (
    r"(?:[A-Za-z0-9]+[-_])*"
    r"(?:api[-_]?key|apikey|subscription[-_]key|[A-Za-z]*token|secret|password|passwd"
    r"|credentials?|jwt|signature|session[-_]?id)"
    r"(?:[-_][A-Za-z0-9]+)*")
"""Names of headers and query parameters that hold a credential by their words,
whatever the vendor calls them: ``x-goog-api-key``, ``private-token`` (GitLab),
``api-key`` (Azure), ``ocp-apim-subscription-key``, ``x-amz-security-token``,
``jwt``, ``client_secret``; redacted by default beside the names listed."""
_CREDENTIAL_NAME = re.compile(CREDENTIAL_WORDS, re.IGNORECASE)
URL_HEADERS = frozenset({":path", "location", "referer", "content-location"})
"""Header fields whose values are URLs: their query parameters are redacted."""
REDACTED = "REDACTED"
MAX_FRAME = 16_384
"""Frames the re-encoded blocks are cut to (the smallest SETTINGS_MAX_FRAME_SIZE)."""
_HOLD = 64 * 1024
"""HTTP/1.x bytes after a record's last line end, held for the next record so that
a header line split across two reads is still found (no longer than a head)."""
_UNCHECKED = int(RecordFlag.UNCHECKED)
_BROKEN = frozenset({"hpack-error", "header-block-too-large"})


@dataclass
class Extracted:
    """What :func:`extract` wrote."""

    connections: list[int] = field(default_factory=list)
    records: int = 0
    redacted: int = 0
    """Header values replaced."""
    found: list[str] = field(default_factory=list)
    """The names of those headers."""
    params: int = 0
    """URL query parameter values replaced."""
    found_params: list[str] = field(default_factory=list)
    """The names of those parameters."""
    left_out: dict[int, str] = field(default_factory=dict)
    """Connections not written, and why."""
    damaged: list[BadRecord] = field(default_factory=list)
    """Damaged records of the source, skipped (LOST records say where)."""
    clean_end: bool = True
    """The source ended with its END record."""


def _broken(events: Iterable[Event]) -> str | None:
    for ev in events:
        if isinstance(ev, Desynced):
            return "its framing was lost (bytes that are not HTTP/2 frames)"
        if isinstance(ev, FrameObserved):
            for f in ev.findings:
                if f.code in _BROKEN:
                    return f"a header block does not decode ({f.code}, frame #{f.seq})"
    return None


def _unreadable(path: str | os.PathLike[str], conn: int | None) -> dict[int, str]:
    """Connections whose header blocks cannot all be decoded (so not re-encoded)."""
    out: dict[int, str] = {}
    with CaptureReader(path) as reader:
        for item in replay_records(reader.records()):
            c = item.record.conn_id
            if (conn is None or c == conn) and c not in out:
                why = _broken(item.events)
                if why is not None:
                    out[c] = why
    return out


def redacted_url(url: str) -> str:
    """``url`` with the values of its credential query parameters (those ``export
    --redact`` replaces by default) as ``REDACTED``: a request of a recording and the
    same request of its redacted copy — or of a session with a fresh token — read
    alike."""
    if "=" not in url:
        return url
    return _url_params().sub(lambda m: m.group(1) + "=" + REDACTED, url)


@functools.cache
def _url_params() -> re.Pattern[str]:
    param = _Redactor(frozenset(), SENSITIVE_PARAMS).param
    assert param is not None
    return param


class _Redactor:
    def __init__(self, names: frozenset[str], params: frozenset[str] = frozenset()) -> None:
        # (and every name CREDENTIAL_WORDS matches, headers and parameters alike)
        self.names = names
        alternation = "|".join([*(re.escape(n) for n in sorted(names)), CREDENTIAL_WORDS])
        self.line = re.compile(rb"(?im)^(" + alternation.encode() + rb")[ \t]*:[^\r\n]*")
        self.count = 0
        self.found: set[str] = set()
        """The header names whose values were redacted."""
        self.params = 0
        self.found_params: set[str] = set()
        p = "|".join([*(re.escape(n) for n in sorted(params, key=lambda n: (-len(n), n))),
                      CREDENTIAL_WORDS])
        # name=value after ? & or ; up to the next separator; the name as written
        self.param = re.compile(r"(?i)(?<=[?&;])(" + p + r")=[^&;#\s]*") if params else None
        self.param_b = re.compile(rb"(?i)(?<=[?&;])(" + p.encode() + rb")=[^&;#\s]*") \
            if params else None
        # HTTP/1.x lines that hold a URL: the request line, and URL header lines
        self.url_line = re.compile(
            rb"(?im)^(?:[A-Z]+ [^ \r\n]+ HTTP/\d\.\d|(?:"
            + "|".join(re.escape(n) for n in sorted(URL_HEADERS) if n[0] != ":").encode()
            + rb")[ \t]*:)[^\r\n]*")

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for n, v in headers:
            low = n.lower()
            if low in self.names or _CREDENTIAL_NAME.fullmatch(low):
                self.count += 1
                self.found.add(low)
                v = REDACTED
            elif low in URL_HEADERS and self.param is not None:
                v = self.param.sub(self._param, v)
            out.append((n, v))
        return out

    def _param(self, m: re.Match[str]) -> str:
        self.params += 1
        self.found_params.add(m.group(1).lower())
        return m.group(1) + "=" + REDACTED

    def _param_b(self, m: re.Match[bytes]) -> bytes:
        self.params += 1
        self.found_params.add(m.group(1).decode("latin-1").lower())
        return m.group(1) + b"=" + REDACTED.encode()

    def text(self, data: bytes, *, counted: bool = True) -> bytes:
        """HTTP/1.x lines redacted; ``counted``: what is redacted counts (not in the
        HTTP1 records, which repeat the heads the RAW bytes carry)."""
        def sub(m: re.Match[bytes]) -> bytes:
            if counted:
                self.count += 1
                self.found.add(m.group(1).decode("latin-1").lower())
            return m.group(1) + b": " + REDACTED.encode()
        data = self.line.sub(sub, data)
        param = self.param_b
        if param is not None:
            value = self._param_b if counted else \
                (lambda m: m.group(1) + b"=" + REDACTED.encode())
            data = self.url_line.sub(lambda m: param.sub(value, m.group(0)), data)
        return data


def extract(path: str | os.PathLike[str], out_path: str | os.PathLike[str], *,
            conn: int | None = None, conns: frozenset[int] | None = None,
            redact: frozenset[str] | None = None,
            redact_params: frozenset[str] = frozenset()) -> Extracted:
    """Write connection ``conn`` (or those in ``conns``; default: all) of the
    capture at ``path`` to a new
    capture at ``out_path``; with ``redact``, those header names' values removed,
    and the values of the ``redact_params`` query parameters in URLs.
    Raises CaptureFormatError for a file that is not a capture, OSError."""
    result = Extracted()
    if redact:
        result.left_out = _unreadable(path, conn)
    redactor = _Redactor(redact, redact_params) if redact else None
    encoders: dict[tuple[int, int], hpack.Encoder] = {}
    pending: dict[tuple[int, int], list[FrameObserved]] = {}
    held: dict[tuple[int, int], tuple[bytes, float, float]] = {}
    h1: set[int] = set()
    switched: set[int] = set()
    """HTTP/1.1 connections a 101 switched to another protocol (a WebSocket)."""
    observers = Observers()
    with CaptureReader(path, on_problem=observers.reporter(result.damaged.append)) as reader:
        header = reader.header
        with contextlib.closing(CaptureWriter(out_path, config=header.config,
                                              max_data_bytes=header.max_data_bytes,
                                              autoflush=False)) as writer:
            def copy(rec: Record, body: bytes | None = None) -> None:
                writer.copy(rec.type, rec.flags & ~_UNCHECKED, rec.conn_id, t=rec.t,
                            wall=rec.wall, body=rec.body if body is None else body)
                result.records += 1

            for item in replay_records(reader.records(), observers=observers):
                rec = item.record
                c = rec.conn_id
                if rec.type == RecordType.END or (conn is not None and c != conn and c) \
                        or (conns is not None and c not in conns and c) \
                        or c in result.left_out:
                    continue
                if rec.type == RecordType.CONNECTION:
                    result.connections.append(c)
                    if str(rec.json().get("protocol", "h2")).startswith("http/1"):
                        h1.add(c)
                if redactor is None:
                    copy(rec)
                    continue
                if rec.type == RecordType.FRAME:
                    _frame(rec, item.events, redactor, encoders, pending, writer, result)
                elif rec.type == RecordType.RAW and c in switched:
                    copy(rec)  # (a WebSocket's frames after the 101: not HTTP/1.x lines)
                elif rec.type == RecordType.RAW and c in h1:
                    out = _raw(rec, redactor, held, writer, result)
                    if rec.direction is Direction.S2C and _SWITCHED.search(out):
                        switched.add(c)  # (what either side held back goes out now, in
                        for d in Direction:  # order, before the frames that follow)
                            _flush_held(held, (c, int(d)), writer, result)
                elif rec.type == RecordType.HTTP1:
                    (n,) = HTTP1_HEAD_LENGTH.unpack_from(rec.body, 0)
                    start = HTTP1_HEAD_LENGTH.size
                    head = redactor.text(rec.body[start:start + n], counted=False)
                    copy(rec, HTTP1_HEAD_LENGTH.pack(len(head)) + head + rec.body[start + n:])
                elif rec.type == RecordType.H2C_UPGRADE:
                    info = rec.json()
                    info["request_headers"] = [list(h) for h in redactor.headers(
                        tuple(h) for h in info.get("request_headers") or ())]
                    copy(rec, json.dumps(info, separators=(",", ":")).encode())
                else:
                    if rec.type == RecordType.CLOSE:  # (HTTP/1.x bytes held for it first)
                        for d in Direction:
                            _flush_held(held, (c, int(d)), writer, result)
                    copy(rec)
            for key in list(held):
                _flush_held(held, key, writer, result)
        result.clean_end = reader.clean_end
    if redactor is not None:
        result.redacted = redactor.count
        result.found = sorted(redactor.found)
        result.params = redactor.params
        result.found_params = sorted(redactor.found_params)
    return result


def _frame(rec: Record, events: tuple[Event, ...], redactor: _Redactor,
           encoders: dict[tuple[int, int], hpack.Encoder],
           pending: dict[tuple[int, int], list[FrameObserved]], writer: CaptureWriter,
           result: Extracted) -> None:
    ev = next((e for e in events if isinstance(e, FrameObserved)), None)
    ftype = rec.body[3] if len(rec.body) >= 9 else -1
    if ev is None or ftype not in (0x1, 0x5, 0x9):
        writer.copy(rec.type, rec.flags & ~_UNCHECKED, rec.conn_id, t=rec.t, wall=rec.wall,
                    body=rec.body)
        result.records += 1
        return
    key = (rec.conn_id, int(rec.direction))
    if ftype != 0x9:
        pending[key] = [ev]
    elif key in pending:
        pending[key].append(ev)
    if not ev.frame.flags & 0x4:
        return  # (the block goes out whole, where it ends)
    frames = pending.pop(key, [ev])
    first = frames[0].frame
    if ev.block is None:
        return  # (cannot be: such a connection is left out; nothing unread goes out)
    encoder = encoders.get(key)
    if encoder is None:
        encoder = encoders[key] = hpack.Encoder()
        encoder.header_table_size = 0  # (no dynamic table: valid for any peer)
    headers = redactor.headers(ev.block.headers)
    block = encoder.encode([(n.encode("utf-8", "surrogateescape"),
                             v.encode("utf-8", "surrogateescape")) for n, v in headers],
                           huffman=True)
    payload = first.raw[9:]
    pad = payload[0] + 1 if first.flags & 0x8 else 0
    prefix = payload[1 if pad else 0:][:5 if first.type == 0x1 and first.flags & 0x20 else
                                        4 if first.type == 0x5 else 0]
    flags = first.flags & (0x1 | 0x20) if first.type == 0x1 else 0
    room = MAX_FRAME - len(prefix)
    chunks = [block[:room]] + [block[i:i + MAX_FRAME] for i in range(room, len(block), MAX_FRAME)]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        body = (prefix if i == 0 else b"") + chunk
        ftype_out = first.type if i == 0 else 0x9
        fl = (flags if i == 0 else 0) | (0x4 if last else 0)
        raw = struct.pack(">L", len(body))[1:] + bytes([ftype_out, fl]) + \
            struct.pack(">L", first.stream_id) + body
        writer.frame(rec.conn_id, rec.direction, raw, t=rec.t, wall=rec.wall)
        result.records += 1


_SWITCHED = re.compile(rb"(?m)^HTTP/1\.[01] 101 ")


def _raw(rec: Record, redactor: _Redactor, held: dict[tuple[int, int], tuple[bytes, float,
         float]], writer: CaptureWriter, result: Extracted) -> bytes:
    """HTTP/1.x bytes: header lines redacted; what follows the last line end waits for
    the next record of that direction (a line split across reads). Returns what was
    written."""
    key = (rec.conn_id, int(rec.direction))
    before, _, _ = held.pop(key, (b"", 0.0, 0.0))
    data = before + rec.body
    cut = data.rfind(b"\n") + 1
    if len(data) - cut > _HOLD:
        cut = len(data)
    out, rest = redactor.text(data[:cut]), data[cut:]
    if out:
        writer.raw(rec.conn_id, rec.direction, out, t=rec.t, wall=rec.wall)
        result.records += 1
    if rest:
        held[key] = (rest, rec.t, rec.wall)
    return out


def _flush_held(held: dict[tuple[int, int], tuple[bytes, float, float]],
                key: tuple[int, int], writer: CaptureWriter, result: Extracted) -> None:
    found = held.pop(key, None)
    if found is None:
        return
    rest, t, wall = found
    writer.raw(key[0], Direction(key[1]), rest, t=t, wall=wall)
    result.records += 1


def note_lines(result: Extracted, redact: frozenset[str] | None) -> list[str]:
    """What the user is told about the extract."""
    lines = [f"{len(result.connections)} connection"
             f"{'' if len(result.connections) == 1 else 's'}, {result.records} records"]
    if redact:
        n, p = result.redacted, result.params
        lines[0] += (f"; {n} header value{'' if n == 1 else 's'} redacted"
                     + (f" ({', '.join(result.found)})" if result.found else "")
                     + f", {p} URL query parameter{'' if p == 1 else 's'}"
                     + (f" ({', '.join(result.found_params)})" if result.found_params else ""))
    for c, why in sorted(result.left_out.items()):
        lines.append(f"connection {c} left out: {why}, so it cannot be redacted whole")
    return lines
