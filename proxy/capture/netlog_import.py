"""``h2scope import`` of a Chrome net log: its HTTP/2 connections, frame for frame.

Chrome (and every Chromium-based browser, Edge, Cronet, headless Chromium)
writes a *net log* — ``chrome://net-export`` or ``--log-net-log=FILE`` — a JSON
file of events. With raw bytes included (net-export's "Include raw bytes", or
``--net-log-capture-mode=Everything``) each socket's reads and writes carry the
bytes themselves, after TLS decryption (``SSL_SOCKET_BYTES_SENT`` /
``SSL_SOCKET_BYTES_RECEIVED``). Those are exactly the bytes an HTTP/2
connection's frames are made of, so a connection whose first bytes are the
client preface is recorded through the same tap the proxy records with, at
the events' times: every frame, HPACK block and finding h2scope shows for
traffic it relayed itself. The socket's other events fill in the connection:
addresses (``TCP_CONNECT``), TLS version, cipher and ALPN (``SSL_CONNECT``),
the ClientHello as sent (``SSL_HANDSHAKE_MESSAGE_SENT``), the server's
certificate (``SSL_CERTIFICATES_RECEIVED``) and the host the session was for
(``HTTP2_SESSION``).

The file is read as a stream — one event at a time, a net log can be large —
and a log that ends early (Chrome killed while writing it, which leaves it
without its closing brackets) is read up to its last whole event.

A log without raw bytes (Chrome's default capture modes) still has each HTTP/2
session's events, frame by frame: its frames are rebuilt from them
(:mod:`proxy.capture.netlog_frames`), and the connection says what that
leaves out. HTTP/1.1 and QUIC (HTTP/3) are counted and skipped.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from proxy.capture.http1_split import Http1Recording
from proxy.capture.netlog_frames import SessionFrames
from proxy.capture.pcap_import import address_text, frame_count
from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.net.clienthello import ClientHelloError, cipher_name, parse_client_hello
from proxy.net.http1 import (
    Http1Error,
    RequestHead,
    absolute_target,
    looks_like_http1_request,
    parse_request_head,
)
from proxy.observe.enums import CONNECTION_PREFACE, Direction

RAW_MODES = ("Everything", "IncludeSocketBytes", "")
"""Capture modes whose logs carry the sockets' bytes (IncludeSocketBytes: older
Chrome's name; no mode named: assume bytes, as the oldest logs had them)."""
READ_SIZE = 1 << 20
MAX_VALUE = 64 << 20
"""A JSON value (an event, the constants) larger than this is not waited for."""
_WS = re.compile(r"[\s,]*")
_SKIPPED = object()
_ADDRESS = re.compile(r"^\[?([^\]]*?)\]?:(\d+)$")


class NetlogError(ValueError):
    """The file is not a Chrome net log, or is damaged before its events."""


def looks_like_netlog(head: bytes) -> bool:
    """True if ``head`` (a file's first bytes) starts a JSON object, as a net log does
    (and no packet capture does)."""
    return head.lstrip()[:1] == b"{"


class _Reader:
    """A JSON document read value by value from a text stream."""

    def __init__(self, f: TextIO | TailText) -> None:
        self.f = f
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.decoder = json.JSONDecoder()
        self.consumed = 0
        """Characters before ``buf`` (for positions in messages)."""

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(READ_SIZE)
        if not chunk:
            self.eof = True
            return False
        self.consumed += self.pos
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def skip(self, chars: str = "") -> str:
        """Skip whitespace and commas; the next character ('' at the end)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def take(self, char: str) -> None:
        if self.skip() != char:
            found = self.buf[self.pos:self.pos + 20] or "the end of the file"
            raise NetlogError(f"expected {char!r} at character {self.at()}, found {found!r}")
        self.pos += 1

    def value(self, damaged: Callable[[str], None] | None = None) -> Any:
        """The next JSON value; EOFError if the file ends inside it. A value that
        is damaged (the error comes before a line's end, so more text would not
        mend it): NetlogError, or with ``damaged`` its line is reported to it and
        skipped, and the value after it returned (Chrome writes an event a line)."""
        self.skip()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                newline = self.buf.find("\n", exc.pos)
                if newline >= 0:
                    where = f"{exc.msg} at character {self.consumed + exc.pos}"
                    if damaged is None:
                        raise NetlogError(f"malformed JSON: {where}") from None
                    damaged(where)
                    self.pos = newline + 1
                    if not self.skip() or self.buf[self.pos] in "]}":
                        return _SKIPPED
                    continue
                if len(self.buf) - self.pos > MAX_VALUE:
                    raise NetlogError(f"a value longer than {MAX_VALUE >> 20} MiB at "
                                      f"character {self.at()}") from None
                if not self._fill():
                    raise EOFError(f"{exc.msg} at character {self.consumed + exc.pos}"
                                   if self.pos < len(self.buf) else "") from None
                continue
            self.pos = end
            return obj

    def at(self) -> int:
        return self.consumed + self.pos


@dataclass
class NetlogSummary:
    """What a net log import found, for the command's report."""

    events: int = 0
    chrome: str = ""
    """The browser and version the log names (clientInfo)."""
    capture_mode: str = ""
    connections: dict[str, int] = field(default_factory=dict)
    """Sockets by kind: h2 (TLS), h2c, http1 (HTTP/1.x, recorded as messages), other
    (neither, or HTTP/1.x without its bytes), quic (HTTP/3 sessions)."""
    rebuilt: bool = False
    """The log has no raw bytes: frames were rebuilt from the session events."""
    frames: int = 0
    http1_messages: int = 0
    truncated: str = ""
    """Set when the log ends before its closing brackets: where and why."""
    problems: list[str] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.connections[kind] = self.connections.get(kind, 0) + 1


@dataclass
class _Socket:
    source: int
    started: float
    client: tuple[str, int] = ("", 0)
    server: tuple[str, int] = ("", 0)
    tls: bool = False
    tls_meta: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    tap: RecordingObserver | None = None
    kind: str | None = None
    """h2/h2c once its first cleartext bytes are the preface; other when not."""
    pending: list[tuple[Direction, bytes, float]] = field(default_factory=list)
    """Server bytes before the client's first."""
    error: str | None = None
    closed_by: str | None = None
    reason: str | None = None
    """Why Chromium closed its HTTP/2 session (HTTP2_SESSION_CLOSE's description)."""
    proxy: str = ""
    """The proxy Chrome reached the host through (the socket's address is the proxy's)."""
    http1: Http1Recording | None = None
    """An HTTP/1.x connection, being recorded."""


REBUILT_NOTE = (
    "the net log has no raw bytes: frames are rebuilt from Chrome's HTTP/2 events — "
    "header lists as Chrome logged them, HPACK encoded again without a dynamic table (not "
    "the representations on the wire), DATA sizes without payloads or padding")


def _address(text: object) -> tuple[str, int]:
    m = _ADDRESS.match(str(text or ""))
    return (m.group(1), int(m.group(2))) if m else (str(text or ""), 0)


def _hello_records(message: bytes) -> bytes:
    """A handshake message as the TLS records that carry it (for the ClientHello
    parser, which reads records)."""
    out = bytearray()
    for i in range(0, len(message), 16384):
        part = message[i:i + 16384]
        out += b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
    return bytes(out)


class _Importer:
    def __init__(self, writer: CaptureWriter, summary: NetlogSummary, *,
                 rebuild: bool = False) -> None:
        self.writer = writer
        self.summary = summary
        self.types: dict[int, str] = {}
        self.source_types: dict[int, str] = {}
        self.offset = 0.0
        """timeTickOffset: the wall clock (ms) at tick 0."""
        self.sockets: dict[int, _Socket] = {}
        self.session_hosts: dict[int, tuple[str, str]] = {}
        """HTTP/2 session source → (host:port, Chrome's proxy for it in PAC form)."""
        self.raw = True
        """The log has the sockets' bytes (capture mode Everything): frames come from
        them. Otherwise they are rebuilt from the HTTP/2 sessions' events."""
        self.sessions: dict[int, tuple[_Socket, SessionFrames]] = {}
        self.raw_sessions: dict[int, _Socket] = {}
        """HTTP/2 sessions whose socket's bytes are in the log, by session source id."""
        self.force_rebuild = rebuild
        self.next_id = 1
        self.t = 0.0

    def constants(self, c: object) -> None:
        if not isinstance(c, dict) or not isinstance(c.get("logEventTypes"), dict):
            raise NetlogError("its constants have no logEventTypes: not a Chrome net log")
        try:
            self.types = {int(v): str(k) for k, v in c["logEventTypes"].items()}
            sources = c.get("logSourceType") or {}
            self.source_types = {int(v): str(k) for k, v in dict(sources).items()}
        except (TypeError, ValueError) as exc:
            raise NetlogError(f"its constants are damaged (logEventTypes, logSourceType: "
                              f"{exc})") from None
        try:
            self.offset = float(c.get("timeTickOffset") or 0)
        except (TypeError, ValueError):
            self.offset = 0.0
        info = c.get("clientInfo") or {}
        if isinstance(info, dict):
            self.summary.chrome = " ".join(str(info[k]) for k in ("name", "version")
                                           if info.get(k))
        self.summary.capture_mode = mode = str(c.get("logCaptureMode") or "")
        self.raw = mode in RAW_MODES and not self.force_rebuild
        self.summary.rebuilt = not self.raw
        if not self.raw:
            self.writer.max_data_bytes = 0  # the zeros that stand for DATA are not kept

    def event(self, e: object) -> None:
        if not isinstance(e, dict):
            return
        self.summary.events += 1
        etype, source = e.get("type"), e.get("source")
        if not isinstance(etype, int) or not isinstance(source, dict):
            return
        name = self.types.get(etype, "")
        sid, stype = source.get("id"), source.get("type")
        if not isinstance(sid, int):
            return
        params = e.get("params")
        if not isinstance(params, dict):
            params = {}
        try:
            t = (float(e.get("time", 0)) + self.offset) / 1000.0
        except (TypeError, ValueError):
            return
        self.t = t
        session = self.sessions.get(sid)
        if session is not None:
            self.session_event(session, name, e.get("phase"), params, t)
            return
        if name == "HTTP2_SESSION" and "host" in params:
            self.session_hosts[sid] = (str(params["host"]), str(params.get("proxy") or ""))
            return
        if name == "HTTP2_SESSION_INITIALIZED":
            dep = params.get("source_dependency")
            dep_id = dep.get("id", -1) if isinstance(dep, dict) else -1
            sock = self.sockets.get(dep_id)
            if sock is None and not self.raw:  # the socket's start is not in the log
                sock = self.sockets[dep_id] = _Socket(dep_id, t, tls=True)
            if sock is not None and sid in self.session_hosts:
                sock.host, proxy = self.session_hosts.pop(sid)
                if proxy and "direct" not in proxy:
                    sock.proxy = proxy.strip("[]")
            if sock is not None and not self.raw and sock.tap is None:
                self.rebuild(sid, sock, t)
            elif sock is not None and self.raw:
                self.raw_sessions[sid] = sock  # (its close says why the session ended)
            return
        raw_session = self.raw_sessions.get(sid)
        if raw_session is not None:
            if name == "HTTP2_SESSION_CLOSE":
                self.session_closed(raw_session, params)
            elif name == "HTTP2_SESSION" and e.get("phase") == 2:
                del self.raw_sessions[sid]
            return
        if name == "QUIC_SESSION" and e.get("phase") == 1:
            self.summary.count("quic")
            return
        if not isinstance(stype, int) or self.source_types.get(stype) != "SOCKET":
            return
        sock = self.sockets.get(sid)
        if name == "SOCKET_ALIVE":
            if e.get("phase") == 1 and sock is None:
                self.sockets[sid] = _Socket(sid, t)
            elif e.get("phase") == 2 and sock is not None:
                self.close(sock, t)
                del self.sockets[sid]
            return
        if sock is None:  # its start is not in the log
            sock = self.sockets[sid] = _Socket(sid, t)
        if name == "TCP_CONNECT" and "remote_address" in params:
            sock.client = _address(params.get("local_address"))
            sock.server = _address(params.get("remote_address"))
        elif name == "SSL_CONNECT":
            if e.get("phase") == 1 and sock.tap is None and sock.kind == "other":
                # Through a proxy: what came before TLS was the HTTP CONNECT tunnel's
                # exchange, on the same socket; the TLS inside it is the connection.
                sock.kind = None
                sock.pending = []
                self.summary.connections["other"] -= 1
                if not self.summary.connections["other"]:
                    del self.summary.connections["other"]
            sock.tls = True
            if e.get("phase") == 2:
                self.tls_done(sock, params)
        elif name == "SSL_HANDSHAKE_MESSAGE_SENT" and str(params.get("type")) == "1":
            if "client_hello" not in sock.tls_meta and isinstance(params.get("bytes"), str):
                self.client_hello(sock, params["bytes"])
        elif name == "SSL_CERTIFICATES_RECEIVED":
            self.certificate(sock, params.get("certificates"))
        elif name in ("SSL_SOCKET_BYTES_SENT", "SSL_SOCKET_BYTES_RECEIVED") or (
                not sock.tls and name in ("SOCKET_BYTES_SENT", "SOCKET_BYTES_RECEIVED")):
            direction = Direction.C2S if name.endswith("SENT") else Direction.S2C
            raw = params.get("bytes") if self.raw else None
            if raw is None:
                return
            try:
                data = base64.b64decode(raw)
            except (ValueError, TypeError):
                self.summary.problems.append(f"socket {sid}: event {self.summary.events}: "
                                             "its bytes are not base64")
                return
            self.data(sock, direction, data, t)
        elif "net_error" in params and sock.error is None and e.get("phase") == 2:
            sock.error = f"{name.lower().replace('_', ' ')}: net error {params['net_error']}"

    def tls_done(self, sock: _Socket, params: dict[str, Any]) -> None:
        if "net_error" in params:
            sock.error = f"TLS handshake failed: net error {params['net_error']}"
            return
        version = str(params.get("version") or "")
        meta = sock.tls_meta
        meta["version"] = {"TLS 1.3": "TLSv1.3", "TLS 1.2": "TLSv1.2"}.get(version, version)
        try:
            meta["cipher"] = cipher_name(int(params.get("cipher_suite") or 0))
        except (TypeError, ValueError):
            pass
        meta["alpn"] = params.get("next_proto") or None
        if params.get("is_resumed") in (True, "True", "true"):
            meta["resumed"] = True

    def client_hello(self, sock: _Socket, b64: str) -> None:
        try:
            hello = parse_client_hello(_hello_records(base64.b64decode(b64)))
        except (ClientHelloError, ValueError):
            return
        if hello is not None:
            sock.tls_meta.update(sni=hello.sni, alpn_offered=list(hello.alpn),
                                 client_hello=hello.as_json())

    def certificate(self, sock: _Socket, pems: object) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        from proxy.net.tls import cert_summary

        if not isinstance(pems, list) or not pems:
            return
        try:
            der = x509.load_pem_x509_certificate(str(pems[0]).encode()).public_bytes(Encoding.DER)
        except ValueError:
            return
        summary, _ = cert_summary(der)
        if summary is not None:
            sock.tls_meta["certificate"] = {"subject": summary.subject, "issuer": summary.issuer,
                                            "sans": list(summary.sans),
                                            "not_after": summary.not_after}

    def data(self, sock: _Socket, direction: Direction, data: bytes, t: float) -> None:
        if sock.tap is not None:
            self.summary.frames += frame_count(sock.tap.feed(direction, data, t))
            return
        if sock.http1 is not None:
            self.http1_data(sock, direction, data, t)
            return
        if sock.kind is not None:
            return  # neither HTTP/2 nor HTTP/1.x
        if direction is Direction.S2C:
            sock.pending.append((direction, data, t))
            return
        if not data.startswith(CONNECTION_PREFACE[:len(data)]):
            if looks_like_http1_request(data) and not data.startswith(b"CONNECT "):
                # (a proxy's CONNECT is followed by TLS on the same socket: see SSL_CONNECT)
                self.open_http1(sock, data)
                early, sock.pending = sock.pending, []
                for d, chunk, te in [*early, (direction, data, t)]:
                    self.http1_data(sock, d, chunk, te)
                return
            sock.kind = "other"
            self.summary.count("other")
            return
        tap = self.open_tap(sock)
        early, sock.pending = sock.pending, []
        for d, chunk, te in [*early, (direction, data, t)]:
            self.summary.frames += frame_count(tap.feed(d, chunk, te))

    def rebuild(self, sid: int, sock: _Socket, t: float) -> None:
        """Session ``sid`` on ``sock`` is HTTP/2 and the log has no bytes: its frames
        are rebuilt from its events."""
        tap = self.open_tap(sock, rebuilt=True)

        def emit(direction: Direction, data: bytes, te: float) -> None:
            self.summary.frames += frame_count(tap.feed(direction, data, te))

        frames = SessionFrames(emit)
        frames.start(t)
        self.sessions[sid] = (sock, frames)

    def session_event(self, session: tuple[_Socket, SessionFrames], name: str, phase: object,
                      params: dict[str, Any], t: float) -> None:
        sock, frames = session
        if name == "HTTP2_SESSION_CLOSE":
            self.session_closed(sock, params)
        if name == "HTTP2_SESSION" and phase == 2:
            frames.finish(t)
            if sock.tap is not None:
                sock.tap.close(t, closed_by=sock.closed_by, error=sock.error, reason=sock.reason)
            return
        frames.event(name, params, t)

    @staticmethod
    def session_closed(sock: _Socket, params: dict[str, Any]) -> None:
        """Chromium closed the HTTP/2 session (HTTP2_SESSION_CLOSE): it is the client
        that ended it, for the reason the event gives."""
        description = params.get("description") or "closed"
        error = str(params.get("net_error", "0"))
        sock.error = f"net error {error}" if error not in ("0", "") else None
        sock.reason = str(description)
        sock.closed_by = "client"

    def open_tap(self, sock: _Socket, *, rebuilt: bool = False) -> RecordingObserver:
        sock.kind = "h2" if sock.tls else "h2c"
        self.summary.count(sock.kind)
        conn_id, self.next_id = self.next_id, self.next_id + 1
        meta = self.meta(sock, sock.kind)
        if rebuilt:
            meta["via"] = meta["via"].replace("Chrome net log",
                                              "Chrome net log, frames rebuilt from its HTTP/2 "
                                              "events", 1)
            meta["rebuilt"] = REBUILT_NOTE
        sock.tap = RecordingObserver(self.writer, conn_id, meta, t=sock.started,
                                     wall_clock=True)
        return sock.tap

    def open_http1(self, sock: _Socket, first: bytes) -> None:
        """An HTTP/1.x connection: its bytes go to RAW records and its messages'
        heads to HTTP1 records, as the proxy records one."""
        sock.kind = "http1"
        self.summary.count("http1")
        conn_id, self.next_id = self.next_id, self.next_id + 1
        if not sock.host:  # the first request names the server
            head: RequestHead | None
            try:
                head = parse_request_head(first[:first.find(b"\r\n\r\n") + 4])
                origin = absolute_target(head.target) if head.target.startswith(
                    ("http://", "https://")) else None
            except Http1Error:
                head = origin = None
            if origin is not None:
                # Absolute form: a request to a proxy (the socket's address).
                sock.host = address_text((origin[1], origin[2]))
                sock.proxy = address_text(sock.server)
            elif head is not None and head.get("host"):
                host = str(head.get("host"))
                sock.host = host if ":" in host.rsplit("]", 1)[-1] else \
                    address_text((host, sock.server[1]))
        sock.http1 = Http1Recording(self.writer, conn_id, self.meta(sock, "http/1.1"),
                                    sock.started)

    def http1_data(self, sock: _Socket, direction: Direction, data: bytes, t: float) -> None:
        assert sock.http1 is not None
        self.summary.http1_messages += sock.http1.feed(direction, data, t)

    def meta(self, sock: _Socket, protocol: str) -> dict[str, Any]:
        """A connection record's metadata for ``sock``."""
        sni = str(sock.tls_meta.get("sni") or "")
        # The session's host:port (what Chrome asked for; through a proxy, not the
        # socket's address), else the SNI with the socket's port.
        target = sock.host or (address_text((sni, sock.server[1])) if sni else
                               address_text(sock.server))
        meta: dict[str, Any] = {
            "client": {"ip": sock.client[0], "port": sock.client[1]},
            "server": {"ip": sock.server[0], "port": sock.server[1]},
            "mode": "netlog", "protocol": protocol, "via": "Chrome net log",
            "target": target,
        }
        if sock.proxy and sock.host:
            # The socket went to the proxy: the server is the session's host (its
            # address was the proxy's to resolve).
            host, port = _address(sock.host)
            meta["server"] = {"host": host, "port": port}
            meta["via"] += f", through the proxy {sock.proxy}"
            meta["upstream_proxy"] = sock.proxy
        name = _address(sock.host)[0] if sock.host else sni
        if name:
            meta["server"]["host"] = name
        if sock.tls:
            meta["client_tls"] = dict(sock.tls_meta)
            if sock.tls_meta.get("sni"):
                meta["sni"] = sock.tls_meta["sni"]
        return meta

    def close(self, sock: _Socket, t: float, *, error: str | None = None) -> None:
        if sock.http1 is not None:
            self.summary.http1_messages += sock.http1.close(t, closed_by=sock.closed_by,
                                                            error=error or sock.error)
            sock.http1 = None
        elif sock.tap is not None:
            sock.tap.close(t, closed_by=sock.closed_by, error=sock.error, reason=sock.reason)
        elif sock.kind is None and (sock.pending or (
                not self.raw and sock.tls_meta.get("alpn") not in (None, "h2"))):
            self.summary.count("other")  # (without bytes: told by its ALPN)

    def finish(self) -> None:
        for _, frames in self.sessions.values():
            frames.finish(self.t)
        for sock in list(self.sockets.values()):
            if sock.tap is not None:
                sock.tap.close(self.t, closed_by=None,
                               error=sock.error or "still open when the log ended", cut=True)
            else:
                self.close(sock, self.t, error="still open when the log ended"
                           if sock.http1 is not None else None)
        self.sockets.clear()


class TailText:
    """A text file read as it grows (Chrome writes its net log as it goes): at its
    end, :meth:`read` waits for more until ``stop`` is set, then returns ''."""

    def __init__(self, f: TextIO, stop: threading.Event, poll: float = 0.1) -> None:
        self.f = f
        self.stop = stop
        self.poll = poll

    def read(self, n: int = -1) -> str:
        while True:
            data = self.f.read(n)
            if data or self.stop.wait(self.poll):
                return data


def import_netlog(f: TextIO | TailText, writer: CaptureWriter, *,
                  progress: Callable[[int], None] | None = None,
                  rebuild: bool = False,
                  ready: Callable[[], None] | None = None) -> NetlogSummary:
    """Read the Chrome net log ``f`` and record its HTTP/2 connections to ``writer``;
    returns what was found. Raises NetlogError for a file that is not a net log.
    ``rebuild``: rebuild the frames from the session events even when the log has
    the bytes (to compare the two). ``ready`` is called once the constants are
    read (the file is a net log, its events follow)."""
    summary = NetlogSummary()
    imp = _Importer(writer, summary, rebuild=rebuild)
    reader = _Reader(f)
    try:
        reader.take("{")
    except NetlogError:
        raise NetlogError("not a Chrome net log (it does not start with a JSON object)") from None
    have_constants = False
    try:
        while True:
            nxt = reader.skip()
            if nxt == "}":
                break
            if nxt == "":
                raise EOFError
            key = reader.value()
            reader.take(":")
            if key == "log" and not have_constants:  # ({"log": {"version": …, "entries"})
                raise NetlogError("this is a HAR file: it holds requests and responses, not "
                                  "HTTP/2 frames, so h2scope cannot open it (a browser's "
                                  "DevTools or a HAR viewer can); h2scope opens its own "
                                  "captures, pcap/pcapng files and Chrome net logs")
            if key == "events":
                if not have_constants:
                    raise NetlogError("its events come before its constants: not a net log "
                                      "as Chrome writes it")
                reader.take("[")
                for e in _array(reader, lambda where: summary.problems.append(
                        f"a damaged event after event {summary.events:,} was skipped "
                        f"({where})")):
                    imp.event(e)
                    if progress is not None and not summary.events % 4096:
                        progress(reader.at())
            elif key == "constants":
                imp.constants(reader.value())
                have_constants = True
                if ready is not None:
                    ready()
            else:
                reader.value()  # polledData and the like
    except EOFError as exc:
        if not have_constants:
            raise NetlogError("the file ends before its constants: not a whole net log") \
                from None
        summary.truncated = (f"the log ends early, after event {summary.events:,} "
                             f"(Chrome was still writing it{': ' + str(exc) if str(exc) else ''})")
    if not have_constants:
        raise NetlogError("no constants and no events: not a Chrome net log")
    imp.finish()
    return summary


def _array(reader: _Reader, damaged: Callable[[str], None]) -> Iterator[object]:
    while True:
        nxt = reader.skip()
        if nxt == "]":
            reader.pos += 1
            return
        if nxt == "":
            raise EOFError
        value = reader.value(damaged)
        if value is not _SKIPPED:
            yield value
