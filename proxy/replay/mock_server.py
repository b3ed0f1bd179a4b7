"""The mock server behind ``h2scope serve``: recorded responses, frame by frame.

A python-hyper ``h2`` server endpoint per connection (h2 over TLS with a leaf
from the h2scope CA, or h2c with prior knowledge). When a request's stream
ends, its recorded response (:class:`~proxy.replay.responses.ResponseBook`)
is played back action by action: response HEADERS, each DATA frame as it was
chunked (and padded) when recorded, as the client's flow-control windows
allow, trailers, PUSH_PROMISE with the pushed response — only if the client
allows pushes (RFC 9113 §8.4: SETTINGS_ENABLE_PUSH) — and RST_STREAM. A
request nothing matches gets a 404 whose body names the closest recorded
paths. A client without HTTP/2 is served over HTTP/1.1 by
:mod:`proxy.replay.mock_http1`.

By default the mock answers as fast as the windows allow. With a ``speed``
above 0 it keeps the recorded pace: each action waits until its recorded
offset from the request's arrival (:attr:`Action.at`), divided by ``speed``,
has passed — the server's think time before HEADERS, the gaps between DATA
frames, a late reset — and flow control can only delay it further.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ssl
import struct
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from proxy.observe.describe import grpc_message, shown
from proxy.observe.header_rules import grpc_call_type
from proxy.replay.responses import Action, Headers, ResponseBook, goaway_text

READ_SIZE = 1 << 16
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CUT_GRACE = 1.0
"""Seconds a response recorded only in part waits for the client's reset before
ending the stream itself."""


CLOSEST = "closest recorded paths (query values not shown):"
GOAWAY_GRACE = 0.1
"""Seconds between a played-back GOAWAY and the close (the client reads it first)."""


def not_found_body(book: ResponseBook, method: str, authority: str, path: str) -> bytes:
    lines = [f"h2scope serve: no recorded response for {method} {path} (authority "
             f"{authority or '-'}; matching on {','.join(book.fields)})"]
    others = book.authorities_for(method, path)
    if others:
        hosts = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        lines.append(f"{method} {path} was recorded for authority {hosts}: ask for that host "
                     f"name (the port may differ), or start serve with --match method,path")
    bodies = book.other_bodies(method, authority, path)
    if bodies:
        lines.append(f"{method} {path} was recorded {bodies} time{'s' * (bodies != 1)}, each "
                     "with another request body (--match body compares them byte for byte)")
    methods = sorted({r.method for r in book.responses if r.path == path} - {method})
    if methods and "method" in book.fields:
        lines.append(f"{path} was recorded as {', '.join(methods)}, not {method}")
    closest = [p for p in book.closest_paths(path) if p != path or not others]
    if closest:
        lines.append(CLOSEST)
        lines.extend(f"  {_query_names(p)}" for p in closest)
    elif not others:
        lines.append("the capture has no recorded responses")
    # (a path recorded with bytes that are not UTF-8 is written \xNN)
    return ("\n".join(shown(line) for line in lines) + "\n").encode()


def not_found_why(book: ResponseBook, method: str, authority: str, path: str) -> str:
    """Why nothing matched, in a few words for the log."""
    others = book.authorities_for(method, path)
    bodies = book.other_bodies(method, authority, path)
    return f"recorded only for {', '.join(others[:3])}" if others else \
        f"recorded {bodies} time{'s' * (bodies != 1)}, with other request bodies" \
        if bodies else "no recorded response"


def _query_names(path: str) -> str:
    """``/cb?token=…&x=…``: a recorded path as a 404 may show it to any client —
    its query's names, not their values (tokens ride there)."""
    base, q, query = path.partition("?")
    if not q:
        return path
    names = [part.partition("=")[0] + ("=…" if "=" in part else "")
             for part in query.split("&")]
    return f"{base}?{'&'.join(names)}"


class MockConnection:
    """One client connection to the mock server."""

    def __init__(self, book: ResponseBook, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, log: Callable[[str], None],
                 speed: float = 0.0) -> None:
        self.book = book
        self.speed = speed
        self.reader = reader
        self.writer = writer
        self.log = log
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False))
        self.settings_frame = recorded_settings_frame(book)
        """The recorded server's SETTINGS, sent as they were (None: h2's defaults)."""
        if self.settings_frame is not None:
            self.conn.local_settings = _h2_settings(self.settings_frame)
        elif needs_connect_protocol(book):
            # RFC 8441 §3: without this setting a client sends no extended CONNECT
            # (a WebSocket over HTTP/2), and the recorded one could not be served.
            codes = h2.settings.SettingCodes
            values = {codes(k): v for k, v in self.conn.local_settings.items()}
            values[codes.ENABLE_CONNECT_PROTOCOL] = 1
            self.conn.local_settings = h2.settings.Settings(client=False,
                                                            initial_values=values)
        # (h2 takes its frame-size limit from its settings only when a SETTINGS it
        # sent is acknowledged: set here, it would go on refusing frames over 16 KiB
        # from a client that believed the advertised limit)
        self.conn.max_inbound_frame_size = self.conn.local_settings.max_frame_size
        self.requests: dict[int, Headers] = {}
        self.bodies: dict[int, Any] = {}
        """``--match body``: each open request's body SHA-256 so far."""
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.continued: set[int] = set()
        """Requests whose 100 Continue was sent on their HEADERS."""
        self.window = asyncio.Event()
        self.closed = False
        self.gone_away = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def run(self, first: bytes = b"") -> None:
        """Serve until the client goes; ``first`` is what was already read from it."""
        self.conn.initiate_connection()
        if self.settings_frame is not None:  # (h2 tracks the same values, unsent ones at
            self.conn.data_to_send()  # the RFC's defaults: it lists them all otherwise)
            self.writer.write(self.settings_frame)
        self.flush()
        try:
            while not self.closed:
                data, first = first or await self.reader.read(READ_SIZE), b""
                if not data:
                    break
                if self.gone_away:
                    continue  # (read and dropped until the close: h2 would GOAWAY again)
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    self.log(f"protocol error from the client: {exc}")
                    self.flush()
                    break
                for ev in events:
                    self._handle(ev)
                self.flush()
                await self.writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.closed = True
            self.window.set()
            for task in list(self.tasks.values()):
                task.cancel()
            for task in list(self.tasks.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)

    def _handle(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.RequestReceived):
            # (bytes decoded as the observer does: a name or value that is not UTF-8
            # matches the recorded one, and never stops the server)
            headers = self.requests[ev.stream_id] = tuple(
                (_text(n), _text(v)) for n, v in ev.headers or ())
            if "body" in self.book.fields:
                self.bodies[ev.stream_id] = hashlib.sha256()
            if ev.stream_ended is None and any(
                    n == "expect" and v.strip().lower() == "100-continue" for n, v in headers):
                self._continue(ev.stream_id)
            if ev.stream_ended is not None or (":method", "CONNECT") in headers:
                # A CONNECT's request stream stays open (a tunnel, a WebSocket): the
                # response comes first.
                self._respond(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            body = self.bodies.get(ev.stream_id)
            if body is not None and ev.data:
                body.update(ev.data)
            if ev.flow_controlled_length:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                        ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.requests and ev.stream_id not in self.tasks:
                self._respond(ev.stream_id)
        elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window.set()
        elif isinstance(ev, h2.events.StreamReset):
            task = self.tasks.pop(ev.stream_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = True

    def _continue(self, sid: int) -> None:
        """RFC 9110 §10.1.1: a client that sent ``expect: 100-continue`` may wait for
        a 100 before its body (curl waits 1 s; one without a timeout, forever),
        and the mock answers only once the body has come: the 100 goes now, on
        the request's HEADERS — the recorded one of the response the request
        matches so far (with ``--match body``, the first that matches but for
        the body), else a bare 100 — and is not sent again with the response."""
        req = dict(self.requests.get(sid, ()))
        method, path = req.get(":method", ""), req.get(":path", "")
        found = self.book.find(method, req.get(":authority", req.get("host", "")), path,
                               peek=True)
        interim = _continue_of(found.actions) if found is not None else None
        self.continued.add(sid)
        self.conn.send_headers(sid, _wire(interim.headers if interim is not None
                                          else ((":status", "100"),)))
        self.log(f"{method} {path}: 100 Continue on its HEADERS (expect: 100-continue; "
                 f"{'as recorded' if interim is not None else 'none recorded'})")

    def _respond(self, sid: int) -> None:
        req = dict(self.requests.get(sid, ()))
        method, path = req.get(":method", ""), req.get(":path", "")
        authority = req.get(":authority", req.get("host", ""))
        body = self.bodies.pop(sid, None)
        found = self.book.find(method, authority, path,
                               body.digest() if body is not None else None)
        actions: tuple[Action, ...]
        if found is None and grpc_call_type(req.get("content-type")):
            # A gRPC client turns an HTTP 404 into UNIMPLEMENTED with no word of why:
            # answer in gRPC (a Trailers-Only response) with the reason in grpc-message.
            text = " ".join(not_found_body(self.book, method, authority, path).decode()
                            .replace(CLOSEST, "closest recorded:").split())
            self.log(f"{method} {authority}{path} → grpc-status 12 UNIMPLEMENTED (no "
                     "recorded response)")
            actions = (Action(kind="headers", end_stream=True, headers=(
                (":status", "200"), ("content-type", "application/grpc"),
                ("grpc-status", "12"), ("grpc-message", grpc_message(text)))),)
        elif found is None:
            page = not_found_body(self.book, method, authority, path)
            why = not_found_why(self.book, method, authority, path)
            self.log(f"{method} {authority}{path} → 404 ({why})")
            actions = (
                Action(kind="headers", headers=((":status", "404"),
                                                ("content-type", "text/plain; charset=utf-8"),
                                                ("content-length", str(len(page))))),
                Action(kind="data", data=page, end_stream=True))
        else:
            paced = ""
            if self.speed > 0 and found.actions:
                paced = f"; over {found.actions[-1].at / self.speed * 1000:.0f} ms"
            how = "" if found.pushed_on is None else f", pushed on stream {found.pushed_on}"
            cut = "" if found.cut is None else \
                f"; recorded only in part, {found.cut}: the stream is reset (CANCEL) after it"
            where = f"stream {found.stream_id}" if found.http_version == "h2" else \
                f"{found.http_version} exchange {found.stream_id}"
            self.log(f"{method} {authority}{path} → {found.status} (recorded connection "
                     f"{found.conn_id}, {where}{how}{paced}{cut})")
            actions = found.actions
            if method == "HEAD" and found.method != "HEAD":
                actions = head_only(actions)
            if found.cut is not None and method != "HEAD":  # (never leave the client waiting)
                last = actions[-1].at if actions else 0.0
                actions = (*actions, Action(kind="cut", error_code=0x8, at=last, seq=1 << 62))
        if sid in self.continued:  # (its 100 went on the request's HEADERS)
            self.continued.discard(sid)
            interim = _continue_of(actions)
            actions = tuple(a for a in actions if a is not interim)
        goaway = found.goaway_after if found is not None and self.book.goaway else None
        self._start(sid, actions, asyncio.get_running_loop().time(), goaway)

    def _start(self, sid: int, actions: tuple[Action, ...], start: float,
               goaway: tuple[int, bytes] | None = None) -> None:
        play = self._play(sid, _merged(actions), start, goaway)
        task = asyncio.get_running_loop().create_task(play)
        self.tasks[sid] = task
        task.add_done_callback(lambda _t: self.tasks.pop(sid, None))

    async def _play(self, sid: int, plan: list[tuple[int, Action]], start: float,
                    goaway: tuple[int, bytes] | None = None) -> None:
        """A response, its frames and its pushed streams' in the recorded order (a
        client may act on which came first: a pushed stream's HEADERS before the
        page's DATA). ``plan`` is (slot, action): slot 0 the stream itself, slot k
        the k-th pushed one."""
        conn = self.conn
        loop = asyncio.get_running_loop()
        slots = {0: sid}
        pushes = 0
        gone: set[int] = set()
        answered: set[int] = set()
        """Pushed slots whose response HEADERS went out (they count as open streams)."""
        request = dict(self.requests.get(sid, ()))
        try:
            for slot, action in plan:
                if self.speed > 0:
                    wait = start + action.at / self.speed - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                if action.kind == "push":
                    pushes += 1
                target = slots.get(slot)
                if target is None or slot in gone:
                    continue  # (a push not made: the client disabled push)
                try:
                    if action.kind == "push":
                        if not conn.remote_settings.enable_push:
                            self.log(f"  push of {dict(action.headers).get(':path')} skipped: "
                                     "the client disabled server push")
                            continue
                        promised = conn.get_next_available_stream_id()
                        # RFC 9113 §8.4: promised for this server, as this client
                        # reached it (the recorded :authority was the original's).
                        headers = _as_asked(action.headers, request)
                        conn.push_stream(target, promised, _wire(headers))
                        slots[pushes] = promised
                        self.log(f"  promised {dict(headers).get(':path')} on stream "
                                 f"{promised} (PUSH_PROMISE)")
                    elif action.kind == "headers" and slot and slot not in answered:
                        # §5.1.2: a pushed stream's response opens it, and counts
                        # against the client's SETTINGS_MAX_CONCURRENT_STREAMS.
                        limit = conn.remote_settings.max_concurrent_streams
                        if conn.open_outbound_streams >= limit:
                            self.log(f"  push on stream {target} refused (REFUSED_STREAM): "
                                     f"the client allows {limit} concurrent pushed streams")
                            conn.reset_stream(target, h2.errors.ErrorCodes.REFUSED_STREAM)
                            gone.add(slot)
                        else:
                            answered.add(slot)
                            conn.send_headers(target, _wire(action.headers),
                                              end_stream=action.end_stream)
                    elif action.kind == "headers":
                        conn.send_headers(target, _wire(action.headers),
                                          end_stream=action.end_stream)
                    elif action.kind == "data":
                        await self._send_data(target, action)
                    elif action.kind == "reset":
                        conn.reset_stream(target, action.error_code)
                    elif action.kind == "cut":
                        # The recording stops here. A client that cancels as the recorded
                        # one did does so first (this task ends with its RST_STREAM); any
                        # other is not left waiting for the rest.
                        self.flush()
                        await self.writer.drain()
                        await asyncio.sleep(CUT_GRACE)
                        conn.reset_stream(target, action.error_code)
                except h2.exceptions.StreamClosedError:
                    gone.add(slot)  # (the client reset it: a refused push; the others go on)
                    if slot == 0:
                        self.log(f"  stream {sid}: the rest of the recorded response was not "
                                 "sent (the stream is closed)")
                self.flush()
                await self.writer.drain()
            if goaway is not None:
                await self._go_away(*goaway)
        except h2.exceptions.ProtocolError as exc:
            self.log(f"  stream {sid}: the rest of the recorded response was not sent ({exc})")
            self.flush()
        except (OSError, ssl.SSLError):
            pass
        except Exception as exc:  # never leave the client waiting on a stream
            self.log(f"  stream {sid}: could not send the recorded response ({exc}); "
                     "reset it (INTERNAL_ERROR)")
            with contextlib.suppress(Exception):
                conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                self.flush()

    async def _go_away(self, code: int, debug: bytes) -> None:
        """The recorded server's GOAWAY, after the response it followed; then the
        connection is closed, as that server closed it."""
        self.log(f"  GOAWAY {goaway_text(code, debug)}, as the recorded server sent it "
                 "after this response (--no-goaway: not)")
        self.gone_away = True
        self.conn.close_connection(code, additional_data=debug or None)
        self.flush()
        await self.writer.drain()
        await asyncio.sleep(GOAWAY_GRACE)  # (the client reads it before the close)
        self.closed = True
        self.writer.close()

    async def _send_data(self, sid: int, action: Action) -> None:
        conn = self.conn
        data = action.data
        pad = action.pad
        while True:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            room -= (pad + 1) if pad else 0
            if data and room <= 0:
                if self.closed:
                    return
                self.window.clear()
                await self.window.wait()
                continue
            chunk = data[:max(room, 0)]
            last = len(chunk) == len(data)
            conn.send_data(sid, chunk, end_stream=action.end_stream and last, pad_length=pad)
            self.flush()
            data = data[len(chunk):]
            if last:
                return


ENABLE_CONNECT_PROTOCOL = 0x8


def needs_connect_protocol(book: ResponseBook) -> bool:
    """The recording holds a WebSocket (or another protocol) over HTTP/2: an
    extended CONNECT (RFC 8441) the server answered 2xx."""
    return any(r.method == "CONNECT" and r.protocol and r.status[:1] == "2"
               for r in book.responses)


def served_settings(book: ResponseBook) -> tuple[list[tuple[int, int]] | None, list[str]]:
    """The SETTINGS the mock opens with — the recorded server's first frame (on the
    connection of the first recorded response), with the values its later SETTINGS
    frames set before its first response folded in (the values a client met) — and
    what differs from that first frame, said in words. None: the capture has no
    SETTINGS from the server (h2's defaults are sent)."""
    from proxy.observe.enums import setting_name

    first = next((r for r in book.responses if r.server_settings is not None), None)
    websocket = needs_connect_protocol(book)
    forced = ("ENABLE_CONNECT_PROTOCOL=1 (the recording holds a WebSocket over HTTP/2, "
              "an extended CONNECT answered 2xx: RFC 8441 §3, else no client sends one)")
    if first is None or first.server_settings is None:
        return None, [forced] if websocket else []
    pairs = list(first.server_settings)
    notes = []
    for k, v in first.later_settings:
        if [v] == [pv for pk, pv in pairs if pk == k]:
            continue  # (the same value again: no change)
        if any(pk == k for pk, _ in pairs):
            pairs = [(pk, v if pk == k else pv) for pk, pv in pairs]
        else:
            pairs.append((k, v))
        notes.append(f"{setting_name(k)}={v} from a later SETTINGS frame")
    # RFC 9113 §6.5.2: a server must not set ENABLE_PUSH to 1; 0 is its to send.
    pairs = [(k, v) for k, v in pairs if k != 0x2 or v == 0]
    if websocket and [v for k, v in pairs if k == ENABLE_CONNECT_PROTOCOL] != [1]:
        pairs = [(k, v) for k, v in pairs if k != ENABLE_CONNECT_PROTOCOL]
        pairs.append((ENABLE_CONNECT_PROTOCOL, 1))
        notes = [n for n in notes if not n.startswith("ENABLE_CONNECT_PROTOCOL=")]
        notes.append(forced)
    return pairs, notes


def recorded_settings_frame(book: ResponseBook) -> bytes | None:
    """The SETTINGS frame to send (:func:`served_settings`), as the recorded server
    sent its values: a client's behaviour may hang on a server's settings. None
    when the capture does not have it."""
    pairs, _ = served_settings(book)
    if pairs is None:
        return None
    payload = b"".join(struct.pack(">HL", k, v & 0xFFFF_FFFF) for k, v in pairs)
    return struct.pack(">L", len(payload))[1:] + b"\x04\x00" + bytes(4) + payload


def _h2_settings(frame: bytes) -> h2.settings.Settings:
    """What h2 must believe it sent (``frame``'s values; the others at the RFC's
    defaults, with no limit where the RFC sets none), to enforce the same rules."""
    codes = h2.settings.SettingCodes
    values: dict[Any, int] = {codes.MAX_CONCURRENT_STREAMS: 2**31 - 1,
                              codes.MAX_HEADER_LIST_SIZE: 2**31 - 1}
    for i in range(9, len(frame), 6):
        k, v = struct.unpack_from(">HL", frame, i)
        with contextlib.suppress(ValueError):
            values[codes(k)] = v
    try:
        return h2.settings.Settings(client=False, initial_values=values)
    except h2.exceptions.InvalidSettingsValueError:
        return h2.settings.Settings(client=False)


def _merged(actions: tuple[Action, ...]) -> list[tuple[int, Action]]:
    """A response's actions and its pushed streams' as one list, each with its slot
    (0: the response's stream, k: its k-th push): in the recorded order when the
    capture says it, else each pushed stream's right after its PUSH_PROMISE."""
    items: list[tuple[int, int, Action]] = []
    k = 0
    for a in actions:
        items.append((a.seq, 0, a))
        if a.kind == "push":
            k += 1
            items += [(p.seq, k, p) for p in a.pushed]
    if k and all(seq >= 0 for seq, _, _ in items):
        items.sort(key=lambda item: item[0])  # (stable: a push's own frames keep their order)
    return [(slot, a) for _, slot, a in items]


def _continue_of(actions: tuple[Action, ...]) -> Action | None:
    """A response's recorded ``100 Continue``: an interim HEADERS before the final."""
    for a in actions:
        if a.kind == "headers":
            status = dict(a.headers).get(":status", "")
            if status == "100":
                return a
            if not status.startswith("1"):
                return None
    return None


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")


def _as_asked(pushed: Headers, request: dict[str, str]) -> Headers:
    """A recorded push's request with the :authority and :scheme of the request it
    is pushed on: the client checks a promise against the server it reached."""
    swap: dict[str, str] = {k: request[k] for k in (":authority", ":scheme") if k in request}
    return tuple((n, swap.get(n, v)) for n, v in pushed)


def _wire(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Recorded fields as the bytes they were: a value decoded with lone surrogates
    (gRPC's true binary metadata, bytes that are not UTF-8) goes out as recorded."""
    return [(n.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
            for n, v in headers]


async def serve_connection(book: ResponseBook, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter, log: Callable[[str], None],
                           speed: float = 0.0) -> None:
    """HTTP/2 to a client that chose h2 (ALPN) or sends its preface (cleartext);
    HTTP/1.1 (:mod:`proxy.replay.mock_http1`) to any other."""
    from proxy.replay.mock_http1 import Http1Connection, http1_request_line

    sslobj: Any = writer.get_extra_info("ssl_object")
    if sslobj is not None and sslobj.selected_alpn_protocol() != "h2":
        chosen = sslobj.selected_alpn_protocol()
        log(f"a client without HTTP/2 (ALPN {chosen or 'none'}): served over HTTP/1.1")
        await Http1Connection(book, reader, writer, log, speed).run()
        return
    first = b""
    if sslobj is None:  # cleartext: the h2 preface (prior knowledge), else HTTP/1.x
        with contextlib.suppress(OSError):
            first = await reader.read(READ_SIZE)
            while first and len(first) < len(PREFACE) and PREFACE.startswith(first):
                more = await reader.read(READ_SIZE)
                if not more:
                    break
                first += more
        if first and not first.startswith(PREFACE[:len(first)]):
            log(f"an HTTP/1.x client ({http1_request_line(first)}): served over HTTP/1.1")
            await Http1Connection(book, reader, writer, log, speed, first, "http").run()
            return
    await MockConnection(book, reader, writer, log, speed).run(first)


async def start_mock_server(book: ResponseBook, host: str, port: int,
                            ssl_context: ssl.SSLContext | None,
                            log: Callable[[str], None], speed: float = 0.0) -> asyncio.Server:
    """Listen on ``host:port`` (0: a free port); raises :class:`OSError`. ``speed``
    above 0 keeps the recorded pace (see the module's doc)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(book, reader, writer, log, speed)

    return await asyncio.start_server(handle, host, port, ssl=ssl_context, limit=READ_SIZE)


def head_only(actions: tuple[Action, ...]) -> tuple[Action, ...]:
    """A recorded GET's response as the answer to a HEAD (RFC 9110 §9.3.2): its
    header blocks up to the final one, which ends the stream; no content, no
    trailers, no pushes."""
    out: list[Action] = []
    length = sum(len(a.data) for a in actions if a.kind == "data")
    whole = any(a.end_stream for a in actions)
    for a in actions:
        if a.kind != "headers":
            continue
        final = not dict(a.headers).get(":status", "").startswith("1")
        if not final:
            out.append(a)
            continue
        fields = a.headers
        if whole and length and not any(n.lower() == "content-length" for n, _ in fields):
            fields = (*fields, ("content-length", str(length)))  # (the GET's, §8.6)
        out.append(dataclasses.replace(a, headers=fields, end_stream=True))
        break
    return tuple(out)
