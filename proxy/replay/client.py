"""Replaying the client side of a recorded connection against a server.

One :class:`ReplayConnection` per plan (:mod:`proxy.replay.source`) opens a
connection to the target (TLS with ALPN ``h2`` for ``https``, verified unless
``insecure``; prior-knowledge h2c for ``http``) and sends the client's side in
one of two modes:

``verbatim``
    The recorded bytes exactly: preface, SETTINGS, HPACK blocks, WINDOW_UPDATEs,
    in order, with the recorded gaps divided by ``speed`` (0: no waiting). A
    DATA frame waits until the server's flow-control windows (tracked by the
    observer) allow it, and a SETTINGS ACK until the server has SETTINGS waiting
    for one; PINGs of the server's are answered as they come (the recorded PING
    ACKs echoed another server's) — docs/replay.md, "Modes".
    Once the recording is exhausted, the replay tops up the windows for the
    server's data with WINDOW_UPDATEs of its own if they run low — the
    recorded ones were sized for the original server's responses — and counts
    them (``extra_frames``).
``reencode``
    A python-hyper ``h2`` client endpoint rebuilds each request from the
    frame-script view of the recording: fresh HPACK blocks (so a target with
    other SETTINGS decodes them), ``:authority`` optionally rewritten, DATA
    chunked as the new windows and frame size allow, trailers, RST_STREAM,
    PRIORITY and PING as recorded. WINDOW_UPDATE and SETTINGS ACK are the
    endpoint's own business and are not copied.

Both directions go through a :class:`~proxy.observe.connection.ConnectionObserver`
(inside a :class:`~proxy.capture.tap.RecordingObserver` when recording), so
the replay is decoded, printed and recorded like live traffic.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.events import Batch
from proxy.net.client_certs import cert_file_for, present
from proxy.net.clienthello import iana_cipher
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import MAX_WINDOW, Direction, FrameType, SettingCode
from proxy.observe.events import ConnectionFindingRaised, Event
from proxy.observe.findings import Finding, Severity
from proxy.observe.frames import DataFrame, GoAwayFrame, PingFrame, SettingsFrame
from proxy.observe.streams import StreamState
from proxy.replay.script_frames import (
    data_of,
    error_code,
    flags_of,
    headers_of,
    setting_code,
)
from proxy.replay.source import ConnectionPlan, goaway_said, left_open
from proxy.words import count

C2S, S2C = Direction.C2S, Direction.S2C
_MAX_STREAMS = int(SettingCode.MAX_CONCURRENT_STREAMS)
MODES = ("verbatim", "reencode")
LOW_WINDOW = 1 << 15
"""Below this, a verbatim replay past its recording tops the server's window up."""
TOP_UP = 1 << 24
READ_SIZE = 1 << 16


class ReplayError(Exception):
    """The replay could not run (connection refused, TLS failed, no h2); a user message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}"


def parse_target(url: str) -> Target:
    """``https://host[:port]`` or ``http://host[:port]``; raises :class:`ValueError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--target must be an http:// or https:// URL, not {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"--target {url!r} has an invalid port") from None
    return Target(scheme=parts.scheme, host=parts.hostname, port=port)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOptions:
    mode: str = "verbatim"
    speed: float = 1.0
    """Recorded gaps are divided by this; 0 sends as fast as possible."""
    insecure: bool = False
    upstream_ca: Path | None = None
    client_certs: Path | None = None
    """A client certificate for a server that asks for one: a PEM file (certificate
    and key) or a directory of ``HOST.pem`` files (:mod:`proxy.net.client_certs`)."""
    authority: str | None = None
    """reencode: the ``:authority`` every request gets instead of the recorded one."""
    idle_timeout: float = 10.0
    """Give up waiting for the server after this long without a byte from it."""
    sslkeylogfile: Path | None = None


@dataclass(slots=True)
class ConnectionResult:
    """How one replayed connection went (the streams are compared afterwards)."""

    plan: ConnectionPlan
    conn_id: int
    """The connection's id in the replay's own capture."""
    sent_frames: int = 0
    extra_frames: int = 0
    """Frames the verbatim replay added beyond the recording: window top-ups, and
    acknowledgements of the server's SETTINGS and PINGs that the recording had none
    left for."""
    skipped: list[str] = field(default_factory=list)
    """Entries reencode could not send, with why."""
    error: str | None = None
    timed_out: bool = False
    still_open: tuple[int, ...] = ()
    """The streams the server had not ended when the replay stopped waiting."""
    goaway: str | None = None
    """The server's GOAWAY with an error code, as said to the user (``PROTOCOL_ERROR,
    last stream 1: debug text``); None without one, or for NO_ERROR."""
    goaway_error: str | None = None
    """That GOAWAY's error code name (compared with the recorded server's)."""

    never_made: bool = False
    """The connection was not replayed at all (the server had gone): its ``error`` says
    why; nothing of it is compared."""
    goaway_missing: bool = False
    """The recorded server ended the connection with an error GOAWAY (a gRPC server's
    too_many_pings) and this one sent none within the --timeout."""

    @property
    def refused(self) -> bool:
        """The server ended the connection with an error its recorded self did not
        (the same GOAWAY again is the server behaving as recorded), or did not end it
        with the one its recorded self did."""
        return (self.goaway is not None and self.goaway_error != self.plan.server_goaway) \
            or self.goaway_missing
    findings: list[Finding] = field(default_factory=list)
    """The observer's errors and warnings over the replayed exchange (what a server's
    reset may answer: an edited script's body that no longer fits content-length)."""


def client_context(options: ReplayOptions, host: str = "") -> ssl.SSLContext:
    """The TLS client context for ``host``: verified unless ``insecure``, ALPN ``h2``
    only, with the client certificate ``client_certs`` holds for it."""
    ctx = ssl.create_default_context()
    cert = cert_file_for(options.client_certs, host)
    if cert is not None:
        present(ctx, cert)
    if options.upstream_ca is not None:
        ctx.load_verify_locations(cafile=str(options.upstream_ca))
    if options.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if options.sslkeylogfile is not None:
        ctx.keylog_filename = str(options.sslkeylogfile)
    return ctx


class ReplayConnection:
    """Replays one :class:`ConnectionPlan`; :meth:`run` returns its result."""

    def __init__(self, plan: ConnectionPlan, target: Target, options: ReplayOptions, *,
                 conn_id: int, writer: CaptureWriter | None = None,
                 on_batch: Callable[[Batch], Any] | None = None) -> None:
        self.plan = plan
        self.target = target
        self.options = options
        self.conn_id = conn_id
        self.writer = writer
        self.on_batch = on_batch
        self.result = ConnectionResult(plan=plan, conn_id=conn_id)
        self.changed = asyncio.Event()
        self.eof = False
        self.hung_up = False
        """The server closed the connection (or it broke) before the replay did."""
        self._closing = False
        self.received = 0
        """Bytes the server sent."""
        self.first_bytes = b""
        """The start of what the server sent (HTTP/2 opens with its SETTINGS)."""
        self.last_rx = time.monotonic()
        self.observer: ConnectionObserver | None = None
        self.tap: RecordingObserver | None = None
        self.h2: h2.connection.H2Connection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Verbatim: the acknowledgements owed to the live server (RFC 9113 §6.5.3, §6.7).
        self._server_settings = 0
        self._received: dict[int, int] = {}
        """Per stream, the response body bytes the server has sent."""
        self._unanswered: set[int] = set()
        """Streams whose server sent less than the recording's: not waited for again."""
        self._preface_seen = False
        """:meth:`_await_server_preface` has run."""
        """SETTINGS frames (not ACKs) the server has sent."""
        self._acks_reached = 0
        """Recorded SETTINGS ACKs the replay has come to."""
        self._acks_owed = 0
        """Recorded SETTINGS ACKs held back: the server had no SETTINGS waiting for one."""
        self._server_pings: list[bytes] = []
        """Opaque data of the server's PINGs not answered yet."""
        self._ping_acks_recorded = 0
        self._ping_acks_sent = 0
        self._noted_binary = False
        self._left_open = {o.stream_id: o for o in plan.original or ()
                           if not o.pushed and left_open(o)}
        """Recorded streams whose client did not wait for their response's end."""
        self._last_skip: tuple[tuple[str, str], int, int, list[int]] | None = None
        """The last note of an entry not sent: (kind, why), its first entry, the number
        of notes then, and the streams of the entries it stands for."""

    # ------------------------------------------------------------------ io

    def _observe(self, direction: Direction, data: bytes) -> None:
        t = time.monotonic()
        events: list[Event]
        if self.tap is not None:
            events = self.tap.feed(direction, data, t)
        else:
            assert self.observer is not None
            events = self.observer.feed(direction, data, t)
        for ev in events:
            found = getattr(ev, "findings", None) or (
                (ev.finding,) if isinstance(ev, ConnectionFindingRaised) else ())
            self.result.findings.extend(x for x in found if x.severity >= Severity.WARNING)
        if direction is S2C:
            for ev in events:
                f = getattr(ev, "frame", None)
                if isinstance(f, SettingsFrame) and not f.flags & 0x1:
                    self._server_settings += 1
                elif isinstance(f, DataFrame):
                    self._received[f.stream_id] = self._received.get(f.stream_id, 0) + \
                        f.data_length
                elif isinstance(f, PingFrame) and not f.ack:
                    self._server_pings.append(f.opaque)
        if direction is S2C and self.result.goaway is None:
            for ev in events:
                f = getattr(ev, "frame", None)
                if isinstance(f, GoAwayFrame) and f.error_code:
                    self.result.goaway = goaway_said(f)
                    self.result.goaway_error = f.error_name
                    break  # (the first: a second, a server's answer to what followed, is not)
        if events and self.on_batch is not None:
            self.on_batch(Batch(conn_id=self.conn_id, t=t, events=tuple(events),
                                direction=direction, data=data, protocol="h2"))

    async def _send(self, data: bytes) -> None:
        assert self._writer is not None
        if not data:
            return
        if self._writer.transport.is_closing() or self.hung_up:
            # (the server has gone: writing on would only make asyncio log "socket.send()
            # raised exception." for every frame left)
            self.eof = True
            self.changed.set()
            return
        self._writer.write(data)
        self._observe(C2S, data)
        await self._writer.drain()

    async def _connect(self) -> None:
        t = self.target
        ctx = client_context(self.options, t.host) if t.tls else None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                t.host, t.port, ssl=ctx, server_hostname=t.host if ctx else None,
                limit=READ_SIZE), self.options.idle_timeout)
        except ssl.SSLCertVerificationError as exc:
            from proxy.net.tls import verify_hint

            # (the proxy's hint, by why it failed: a name the certificate lacks is not
            # fixed by --upstream-ca)
            hint = verify_hint(exc, t.host, self.options.upstream_ca).replace(
                "(its names are in the connection's details)",
                "(give that name in --target)")
            raise ReplayError(f"{t.url}: the server's certificate did not verify "
                              f"({exc.verify_message}); {hint}") from None
        except ssl.SSLError as exc:
            if "WRONG_VERSION_NUMBER" in str(exc) or "record layer failure" in str(exc):
                raise ReplayError(f"TLS to {t.url} failed: the server does not speak TLS "
                                  f"there; for cleartext HTTP/2 (h2c) give "
                                  f"http://{t.host}:{t.port}") from None
            raise ReplayError(f"TLS to {t.url} failed: {exc.reason or exc}") from None
        except ConnectionRefusedError:
            raise ReplayError(f"cannot connect to {t.url}: nothing listens on "
                              f"{t.host}:{t.port} (connection refused)") from None
        except TimeoutError:
            raise ReplayError(f"cannot connect to {t.url}: no answer within "
                              f"{self.options.idle_timeout:g} s (--timeout)") from None
        except OSError as exc:
            raise ReplayError(f"cannot connect to {t.url}: {exc.strerror or exc}") from None
        self._reader, self._writer = reader, writer
        tls: dict[str, Any] = {}
        sslobj = writer.get_extra_info("ssl_object")
        if sslobj is not None:
            alpn = sslobj.selected_alpn_protocol()
            if alpn != "h2":
                writer.close()
                raise ReplayError(f"{t.url} did not choose h2 by ALPN (it chose "
                                  f"{alpn or 'nothing'}): h2scope replays HTTP/2 only")
            cipher = sslobj.cipher()
            tls = {"alpn_offered": ["h2"], "alpn": alpn, "version": sslobj.version(),
                   "cipher": iana_cipher(cipher[0]) if cipher else None}
        local = writer.get_extra_info("sockname") or ("?", 0)
        peer = writer.get_extra_info("peername") or (t.host, t.port)
        now = time.monotonic()
        if self.writer is not None:
            meta = {"client": {"ip": local[0], "port": local[1]},
                    "server": {"host": t.host, "ip": peer[0], "port": peer[1]},
                    "mode": f"replay-{self.options.mode}", "protocol": "h2" if t.tls else "h2c",
                    "sni": t.host if t.tls else None, "server_tls": tls or None,
                    "replay_of": {"conn": self.plan.conn_id}}
            self.tap = RecordingObserver(self.writer, self.conn_id, meta, t=now)
            self.observer = self.tap.observer
        else:
            self.observer = ConnectionObserver()

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    self.hung_up = not self._closing
                    break
                self.last_rx = time.monotonic()
                if not self.received:
                    self.first_bytes = data[:60]
                self.received += len(data)
                self._observe(S2C, data)
                if self.h2 is not None:
                    self._h2_received(data)
                    await self._flush_h2()
                else:
                    await self._acknowledge(extra=False)
                self.changed.set()
        except ssl.SSLError as exc:
            # What the server sends once the replay has closed its side (a GOAWAY
            # after our close_notify: APPLICATION_DATA_AFTER_CLOSE_NOTIFY), or after
            # every stream ended, is no error of the exchange. (Ended streams move
            # from the observer's ``streams`` to its ``closed``.)
            observer = self.observer
            done = observer is not None and bool(observer.streams or observer.closed) \
                and self._streams_done()
            if not (self._closing or done):
                self.result.error = self.result.error or f"reading from the server: {exc}"
            self.hung_up = not self._closing
        except OSError as exc:
            # (closing our side cuts a read in progress: "Connection lost" is ours; a
            # server that sent GOAWAY may reset the connection after it, §6.8)
            if not self._closing and not self._server_went_away():
                self.result.error = self.result.error or f"reading from the server: {exc}"
            self.hung_up = not self._closing
        finally:
            self.eof = True
            self.changed.set()

    async def _wait(self, timeout: float) -> bool:
        """Wait for news from the server (or its end); False on timeout."""
        if self.eof:
            return False
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _pause(self, delay: float) -> None:
        speed = self.options.speed
        if speed > 0 and delay > 0:
            await asyncio.sleep(delay / speed)

    def _server_went_away(self) -> bool:
        """The server has sent a GOAWAY (any error code)."""
        observer = self.observer
        return observer is not None and \
            observer.sides[S2C].goaway_last_stream_id is not None

    def _streams_done(self) -> bool:
        assert self.observer is not None
        # RFC 9113 §6.8: a client stream above the last stream id of the server's
        # GOAWAY was not and will not be processed: nothing more to wait for on it.
        last = self.observer.sides[S2C].goaway_last_stream_id
        return all(s.state in (StreamState.CLOSED, StreamState.IDLE)
                   or (last is not None and s.stream_id > last and s.stream_id % 2 == 1)
                   or self._had_as_much(s.stream_id, s.response_headers is not None)
                   for s in self.observer.streams.values())

    def _had_as_much(self, sid: int, answered: bool) -> bool:
        """A stream the recorded client left before its response ended (it closed the
        connection; or the capture stops while it was open) has had as much of its
        response as was recorded: the recorded client did not wait for more, and a
        server that keeps it open (a feed, a long poll) would hold the replay until
        --timeout of silence."""
        o = self._left_open.get(sid)
        return o is not None and (answered or o.status is None) and \
            self._received.get(sid, 0) >= o.body_length

    async def _await_responses(self, top_up: bool) -> None:
        """Wait until every stream closed, the server hung up, or it went quiet."""
        idle = self.options.idle_timeout
        while not self.eof and not self._streams_done():
            if top_up:
                await self._top_up()
            if not await self._wait(0.2) and time.monotonic() - self.last_rx > idle:
                self.result.timed_out = not self.eof
                assert self.observer is not None
                self.result.still_open = tuple(sorted(
                    sid for sid, st in self.observer.streams.items()
                    if st.state not in (StreamState.CLOSED, StreamState.IDLE)))
                return

    async def _await_recorded_goaway(self) -> None:
        """The recorded server ended the connection with an error GOAWAY: wait (up to
        --timeout of quiet) for this one's, which is what the replay is often for
        (does the server still GOAWAY this client's pings?). None that came is a
        difference."""
        if self.plan.server_goaway is None or self.result.goaway is not None:
            return
        idle = self.options.idle_timeout
        while not self.eof and self.result.goaway is None:
            if not await self._wait(0.2) and time.monotonic() - self.last_rx > idle:
                break
        self.result.goaway_missing = self.result.goaway is None

    def _answered_before_reset(self, recorded_sid: int) -> bool:
        """Whether the original server's response headers came before the client's reset."""
        return any(o.stream_id == recorded_sid and o.status is not None
                   for o in self.plan.original or ())

    async def _await_response_headers(self, sid: int) -> None:
        """Wait (bounded) until the server answered stream ``sid`` or closed it.

        A client RST_STREAM recorded after the response headers arrived was a
        reaction to them; sent at once (``--speed 0``) it would race them.
        """
        assert self.observer is not None
        idle = self.options.idle_timeout
        while not self.eof:
            s = self.observer.streams.get(sid)
            if s is None or s.response_headers is not None or s.state is StreamState.CLOSED:
                return
            if not await self._wait(0.2) and time.monotonic() - self.last_rx > idle:
                return

    async def _await_response_bytes(self, sid: int, count: int) -> None:
        """Wait (bounded) until stream ``sid``'s response body has ``count`` bytes: the
        recorded client sent its next message after as much of the server's (a
        WebSocket's echo, a bidirectional gRPC stream's reply); sent at once it could
        reach the server before what it answered (a close before the echoes: no
        echoes). A stream whose server sends less is not waited for again."""
        assert self.observer is not None
        idle = self.options.idle_timeout
        while not self.eof and self._received.get(sid, 0) < count:
            s = self.observer.streams.get(sid)
            if s is None or s.state in (StreamState.CLOSED, StreamState.HALF_CLOSED_SERVER):
                return
            if not await self._wait(0.2) and time.monotonic() - self.last_rx > idle:
                self._unanswered.add(sid)
                return

    def _tunnel(self, sid: int) -> bool:
        """Whether stream ``sid`` is a CONNECT (a tunnel, or an RFC 8441 WebSocket)
        still waiting for its response: its DATA is for the tunnel the 2xx opens
        (RFC 9113 §8.5), which the recorded client had before it sent any; sent at
        once a server may refuse the tunnel (nghttpx answers 502)."""
        assert self.observer is not None
        s = self.observer.streams.get(sid)
        return s is not None and s.response_headers is None and \
            dict(s.request_headers or ()).get(":method") == "CONNECT"

    async def _await_server_preface(self) -> None:
        """Before the first request: wait (bounded) for the server's SETTINGS (its
        preface, RFC 9113 §3.4). A recorded client may have sent its requests before
        they came; replayed as fast as possible they would race the server's limits
        — SETTINGS_MAX_CONCURRENT_STREAMS, ENABLE_CONNECT_PROTOCOL for an extended
        CONNECT (RFC 8441 §4) — that the recorded client had in hand by the time it
        needed them."""
        if self._preface_seen:
            return
        self._preface_seen = True
        idle = self.options.idle_timeout
        started = time.monotonic()
        while not self.eof and not self._server_settings:
            if not await self._wait(0.2) and time.monotonic() - started > idle:
                return

    async def _await_server_settings(self) -> None:
        """Wait (bounded) until a SETTINGS frame of the server's awaits its ACK.

        RFC 9113 §6.5.3: the recorded ACK answered the original server's SETTINGS;
        sent before the target's arrive it would acknowledge nothing.
        """
        assert self.observer is not None
        idle = self.options.idle_timeout
        while not self.eof and not self.observer.sides[S2C].pending:
            if not await self._wait(0.2) and time.monotonic() - self.last_rx > idle:
                return

    # ---------------------------------------------------------- verbatim

    async def _acknowledge(self, *, extra: bool) -> None:
        """Send what the live server is owed: an ACK for each of its PINGs, echoing
        its opaque data (RFC 9113 §6.7: the recorded ACKs echo the original
        server's), and the recorded SETTINGS ACKs held back until the SETTINGS
        they acknowledge arrived; with ``extra``, once the recording is used up,
        ACKs for any SETTINGS still waiting (§6.5.3: the client must send them)."""
        assert self.observer is not None
        frames = b""
        for opaque in self._server_pings:
            frames += b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + opaque
            self._ping_acks_sent += 1
            if self._ping_acks_sent > self._ping_acks_recorded:
                self.result.extra_frames += 1
        self._server_pings.clear()
        waiting = len(self.observer.sides[S2C].pending)
        acks = min(waiting, self._acks_owed)
        self._acks_owed -= acks
        if extra:
            self.result.extra_frames += waiting - acks
            acks = waiting
        frames += SETTINGS_ACK * acks
        if frames and not self.eof:
            await self._send(frames)

    def _opens(self, stream_id: int) -> bool:
        """Whether a HEADERS on ``stream_id`` opens a stream of the client's."""
        assert self.observer is not None
        s = self.observer.streams.get(stream_id)
        return stream_id % 2 == 1 and (s is None or s.state is StreamState.IDLE)

    def _stream_limit(self) -> int:
        """The server's SETTINGS_MAX_CONCURRENT_STREAMS, the latest it sent."""
        assert self.observer is not None
        side = self.observer.sides[S2C]
        limit = side.advertised[_MAX_STREAMS]
        for pending in side.pending:
            limit = dict(pending.settings).get(_MAX_STREAMS, limit)
        return limit

    def _verbatim_streams_full(self) -> tuple[int, int] | None:
        """(open, allowed) when the client's open streams are at the server's limit."""
        assert self.observer is not None
        active, limit = self.observer.sides[C2S].active_streams, self._stream_limit()
        return (active, limit) if active >= limit else None

    def _h2_streams_full(self) -> tuple[int, int] | None:
        assert self.h2 is not None
        active = self.h2.open_outbound_streams
        limit = self.h2.remote_settings.max_concurrent_streams
        return (active, limit) if active >= limit else None

    async def _stream_slot(self, stream_id: int,
                           full: Callable[[], tuple[int, int] | None]) -> bool:
        """Wait until opening ``stream_id`` keeps within the server's limit of
        concurrent streams (RFC 9113 §5.1.2; ``full`` says when it would not): the
        recorded client waited for its streams to end, a replay as fast as possible
        would not. False when the server ends or no stream ends within the idle
        timeout."""
        waited = time.monotonic()
        while (at := full()) is not None:
            if self.eof:
                return False
            if not await self._wait(0.2):
                if self.h2 is None:
                    await self._top_up()  # (a response may wait for window we owe it)
                if time.monotonic() - waited > self.options.idle_timeout:
                    self.result.error = (
                        f"stream {stream_id}: no stream of the {at[0]} open ended within "
                        f"{self.options.idle_timeout:g} s, and the server allows {at[1]} at "
                        "once; the rest of the recording was not sent")
                    return False
        return True

    def _window_allows(self, stream_id: int, flow: int) -> bool:
        assert self.observer is not None
        if self.observer.sides[C2S].conn_window < flow:
            return False
        stream = self.observer.streams.get(stream_id)
        return stream is None or stream.send_window[C2S] >= flow

    async def _top_up(self) -> None:
        """RFC 9113 §6.9: keep the server able to send once the recording is used up
        (and acknowledge what it sends, §6.5.3, §6.7)."""
        assert self.observer is not None
        await self._acknowledge(extra=True)
        frames = b""
        side = self.observer.sides[S2C]
        if side.conn_window < LOW_WINDOW:
            frames += _window_update(0, min(TOP_UP, MAX_WINDOW - side.conn_window))
        for sid, s in self.observer.streams.items():
            if s.state in (StreamState.OPEN, StreamState.HALF_CLOSED_CLIENT) \
                    and s.send_window[S2C] < LOW_WINDOW:
                frames += _window_update(sid, min(TOP_UP, MAX_WINDOW - s.send_window[S2C]))
        if frames:
            self.result.extra_frames += len(frames) // 13
            await self._send(frames)

    async def _run_verbatim(self) -> None:
        assert self.observer is not None
        idle = self.options.idle_timeout
        for send in self.plan.sends:
            await self._pause(send.delay)
            if self.eof:
                break
            if send.frame_type == FrameType.GOAWAY:
                # The recorded client said goodbye after its responses arrived; an
                # endpoint may stop answering once it reads GOAWAY (python-hyper h2
                # does), so wait for the replay's responses first.
                await self._await_responses(top_up=True)
            elif send.frame_type == FrameType.RST_STREAM \
                    and self._answered_before_reset(send.stream_id):
                await self._await_response_headers(send.stream_id)
            elif send.frame_type == FrameType.SETTINGS and send.data[4] & 0x1:
                self._acks_reached += 1
                if self._acks_reached == 1:  # the server's preface: it always comes
                    await self._await_server_settings()
                if not self.observer.sides[S2C].pending:
                    # The original server sent a SETTINGS this one has not (a gRPC
                    # server's BDP update): held back until one arrives, and the
                    # frames after it go on meanwhile (they may be what it waits for).
                    self._acks_owed += 1
                    continue
            elif send.frame_type == FrameType.PING and send.data[4] & 0x1:
                # It echoed the original server's PING; the live server's PINGs are
                # answered as they arrive (_acknowledge).
                self._ping_acks_recorded += 1
                continue
            elif send.frame_type == FrameType.DATA and self._tunnel(send.stream_id):
                await self._await_response_headers(send.stream_id)
            elif send.after and send.stream_id not in self._unanswered:
                await self._await_response_bytes(send.stream_id, send.after)
            elif send.frame_type == FrameType.HEADERS and self._opens(send.stream_id):
                await self._await_server_preface()
                if not self.plan.overran_streams and not await self._stream_slot(
                        send.stream_id, self._verbatim_streams_full):
                    return
            waited = time.monotonic()
            while send.flow and not self._window_allows(send.stream_id, send.flow):
                if not await self._wait(0.2) and time.monotonic() - waited > idle:
                    self.result.error = (f"stream {send.stream_id}: the server's flow-control "
                                         f"window stayed too small for a recorded "
                                         f"{send.flow}-byte DATA frame for {idle:g} s; the "
                                         "rest of the recording was not sent")
                    return
                if self.eof:
                    return
            await self._send(send.data)
            self.result.sent_frames += send.frames if send.frame_type is not None else 0
        await self._await_responses(top_up=True)
        await self._await_recorded_goaway()
        if self._acks_owed:
            self.result.skipped.append(
                f"{count(self._acks_owed, 'recorded SETTINGS ACK')} not sent: the original "
                f"server sent {count(self._acks_reached, 'SETTINGS frame')}, this one "
                f"{self._server_settings}")
        unused = self._ping_acks_recorded - min(self._ping_acks_sent, self._ping_acks_recorded)
        if unused:
            self.result.skipped.append(
                f"{count(unused, 'recorded PING ACK')} not sent: they answered the original "
                "server's PINGs, which this server did not send")

    # ---------------------------------------------------------- reencode

    def _h2_received(self, data: bytes) -> None:
        conn = self.h2
        assert conn is not None
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # (after the replay closed its own side — its GOAWAY sent — what the server
            # still sends, its SETTINGS among it, is no error of the exchange)
            if conn.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                self.result.error = self.result.error or f"the h2 client endpoint: {exc}"
            return
        for ev in events:
            if isinstance(ev, h2.events.DataReceived) and ev.flow_controlled_length:
                with contextlib.suppress(h2.exceptions.StreamClosedError,
                                         h2.exceptions.ProtocolError):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)

    async def _flush_h2(self) -> None:
        assert self.h2 is not None
        await self._send(self.h2.data_to_send())

    def _start_h2(self) -> h2.connection.H2Connection:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False,
            normalize_inbound_headers=False))
        first = next((e for e in self.plan.entries if e.get("type") == "SETTINGS"
                      and not flags_of(e) & 0x1), None)
        if first is not None:
            values: dict[Any, int] = {setting_code(k): int(v)
                                      for k, v in first.get("settings", ())}
            try:
                conn.local_settings = h2.settings.Settings(client=True, initial_values=values)
                conn.max_inbound_frame_size = conn.local_settings.max_frame_size
                # (settings given so are in force at once, not acknowledged later: the
                # HPACK decoder must allow the table they announce, which the server's
                # encoder may use as soon as it has read them — Chromium's 65536)
                conn.decoder.max_allowed_table_size = conn.local_settings.header_table_size
            except (h2.exceptions.InvalidSettingsValueError, ValueError) as exc:
                self.result.skipped.append(f"recorded SETTINGS not used ({exc}); h2's "
                                           "defaults were sent")
        conn.initiate_connection()
        return conn

    async def _send_data(self, sid: int, data: bytes, end: bool, pad: int | None) -> None:
        conn = self.h2
        assert conn is not None
        idle = self.options.idle_timeout
        waited = time.monotonic()
        while True:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            room -= (pad + 1) if pad else 0
            if data and room <= 0:
                if not await self._wait(0.2) and time.monotonic() - waited > idle:
                    raise ReplayError(f"the server's window for stream {sid} stayed closed "
                                      f"for {idle:g} s")
                if self.eof:
                    raise ReplayError("the server closed the connection")
                continue
            chunk = data[:max(room, 0)]
            last = len(chunk) == len(data)
            conn.send_data(sid, chunk, end_stream=end and last, pad_length=pad)
            await self._flush_h2()
            self.result.sent_frames += 1
            data = data[len(chunk):]
            if last:
                return

    async def _run_reencode(self) -> None:
        conn = self.h2 = self._start_h2()
        await self._flush_h2()
        streams: dict[int, int] = {}
        reset_at: dict[int, int] = {}
        """The entry that reset each script stream (h2 then refuses what follows)."""
        goaway: dict[str, Any] | None = None
        authority = self.options.authority
        # The recorded DATA frames that answered the server's (:attr:`Send.after`), by
        # stream and count: the entries are the same frames, in the same order.
        answers: dict[tuple[int, int], int] = {}
        nth: dict[int, int] = {}
        for send in self.plan.sends:
            if send.frame_type == FrameType.DATA:
                nth[send.stream_id] = nth.get(send.stream_id, 0) + 1
                if send.after:
                    answers[(send.stream_id, nth[send.stream_id])] = send.after
        nth.clear()
        for i, entry in enumerate(self.plan.entries):
            await self._pause(float(entry.get("delay", 0.0)))
            if self.eof:
                self.result.skipped.append(f"frames[{i}] and later: the server closed the "
                                           "connection")
                break
            kind = str(entry.get("type"))
            flags = flags_of(entry)
            s = int(entry.get("stream", 0))
            try:
                if kind == "HEADERS":
                    headers = headers_of(entry)
                    if not headers:
                        why = ("its header block is recorded as bytes only (header_block_hex: "
                               "h2scope could not decode it), so it cannot be encoded again; "
                               "--mode verbatim sends it" if "header_block_hex" in entry else
                               "its header list is empty, and an HTTP/2 request or response "
                               "needs at least its pseudo-header fields")
                        self._skip(i, kind, s, why)
                        continue
                    if authority is not None:
                        headers = [(n, authority if n == ":authority" else v)
                                   for n, v in headers]
                    # (as bytes: a recorded value that is not UTF-8 goes out as it was)
                    wire = [(n.encode("utf-8", "surrogateescape"),
                             v.encode("utf-8", "surrogateescape")) for n, v in headers]
                    wire = self._base64_true_binary(wire)
                    sid = streams.get(s)
                    kwargs: dict[str, Any] = {}
                    prio = entry.get("priority")
                    if isinstance(prio, dict):
                        dep = int(prio.get("depends_on", 0))
                        kwargs = {"priority_weight": int(prio.get("weight", 16)),
                                  "priority_depends_on": streams.get(dep, dep),
                                  "priority_exclusive": bool(prio.get("exclusive"))}
                    if sid is None:
                        await self._await_server_preface()
                        if not await self._stream_slot(s, self._h2_streams_full):
                            return
                        sid = s if s % 2 == 1 and s > conn.highest_outbound_stream_id \
                            else conn.get_next_available_stream_id()
                        streams[s] = sid
                        conn.send_headers(sid, wire, end_stream=bool(flags & 0x1), **kwargs)
                    else:
                        conn.send_headers(sid, wire, end_stream=bool(flags & 0x1))
                elif kind == "DATA":
                    if self._tunnel(streams.get(s, s)):
                        await self._await_response_headers(streams.get(s, s))
                    nth[s] = nth.get(s, 0) + 1
                    after = answers.get((s, nth[s]), 0)
                    if after and streams.get(s, s) not in self._unanswered:
                        await self._await_response_bytes(streams.get(s, s), after)
                    pad = entry.get("padding") if flags & 0x8 else None
                    await self._send_data(streams.get(s, s), data_of(entry), bool(flags & 0x1),
                                          int(pad) if pad is not None else None)
                    continue
                elif kind == "RST_STREAM":
                    if self._answered_before_reset(s):
                        await self._await_response_headers(streams.get(s, s))
                    conn.reset_stream(streams.get(s, s), error_code(entry.get("error", 8)))
                    reset_at.setdefault(s, i)
                elif kind == "PRIORITY":
                    prio = entry.get("priority") or {}
                    dep = int(prio.get("depends_on", 0))
                    conn.prioritize(streams.get(s, s), weight=int(prio.get("weight", 16)),
                                    depends_on=streams.get(dep, dep),
                                    exclusive=bool(prio.get("exclusive")))
                elif kind == "PING" and not flags & 0x1:
                    conn.ping(bytes.fromhex(str(entry.get("opaque_hex", "00" * 8)))[:8]
                              .ljust(8, b"\0"))
                elif kind == "SETTINGS" and not flags & 0x1:
                    if entry is not next(e for e in self.plan.entries
                                         if e.get("type") == "SETTINGS"):
                        conn.update_settings({setting_code(k): int(v)
                                              for k, v in entry.get("settings", ())})
                    continue
                elif kind == "GOAWAY":
                    goaway = entry
                    continue
                elif kind in ("SETTINGS", "PING", "WINDOW_UPDATE"):
                    continue  # ACKs and flow control: the h2 endpoint does its own
                else:
                    self.result.skipped.append(f"frames[{i}] ({kind}) is not sent in reencode "
                                               "mode (use --mode verbatim)")
                    continue
            except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError,
                    ReplayError, ValueError) as exc:
                if not isinstance(exc, h2.exceptions.StreamClosedError):
                    why = str(exc) or type(exc).__name__
                elif s in reset_at:  # (its str is just the stream id)
                    why = ("the stream is already closed (the replay reset it: "
                           f"frames[{reset_at[s]}])")
                else:
                    why = "the stream is already closed (the server ended it first)"
                self._skip(i, kind, s, why)
                continue
            self.result.sent_frames += 1
            await self._flush_h2()
        await self._await_responses(top_up=False)
        await self._await_recorded_goaway()
        if goaway is not None and not self.eof:
            conn.close_connection(error_code(goaway.get("error", 0)))
            await self._flush_h2()
            self.result.sent_frames += 1

    def _skip(self, i: int, kind: str, stream: int, why: str) -> None:
        """Note an entry not sent; a run of entries skipped for the same reason (a
        recorded client's STREAM_CLOSED answers to each DATA in flight) is one note."""
        key = (kind, why)
        notes = self.result.skipped
        last = self._last_skip
        if last is not None and last[0] == key and last[2] == len(notes):
            first, streams = last[1], [*last[3], stream]
            self._last_skip = (key, first, len(notes), streams)
            ids = sorted(set(streams))
            on = f"stream {ids[0]}" if len(ids) == 1 else \
                f"streams {', '.join(map(str, ids[:4]))}{', …' if len(ids) > 4 else ''}"
            notes[-1] = (f"frames[{first}] to frames[{i}] ({len(streams)} {kind} frames on "
                         f"{on}) not sent: {why}")
            return
        notes.append(f"frames[{i}] ({kind} on stream {stream}) not sent: {why}")
        self._last_skip = (key, i, len(notes), [stream])

    def _base64_true_binary(self, wire: list[tuple[bytes, bytes]]
                            ) -> list[tuple[bytes, bytes]]:
        """gRPC's true binary metadata (a ``-bin`` value sent raw after a 0x00 marker)
        is only for a peer that allowed it in its SETTINGS; a fresh endpoint sends
        such values base64-encoded, as gRPC clients do until then (the server
        reads both the same)."""
        out = []
        for name, value in wire:
            if name.endswith(b"-bin") and value[:1] == b"\x00":
                value = base64.b64encode(value[1:]).rstrip(b"=")
                if not self._noted_binary:
                    self._noted_binary = True
                    self.result.skipped.append(
                        f"{name.decode('latin-1')} and any other true binary gRPC metadata "
                        "sent base64-encoded, not raw as recorded (the server must allow raw "
                        "values first)")
            out.append((name, value))
        return out

    # ------------------------------------------------------------- run

    async def run(self) -> ConnectionResult:
        """Connect, replay, wait for the responses, close; raises :class:`ReplayError`
        when the connection cannot be made."""
        await self._connect()
        reader = asyncio.get_running_loop().create_task(self._read_loop())
        try:
            if self.options.mode == "reencode":
                await self._run_reencode()
            else:
                await self._run_verbatim()
        except (OSError, ssl.SSLError) as exc:
            # The server may have answered before it closed (an HTTP/1.1 server's 400
            # page to the preface, a GOAWAY): let the reader take what came, so the
            # error says what the server is rather than only that the write failed.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(reader), WRITE_FAILED_GRACE)
            if self._server_went_away():
                # RFC 9113 §6.8: a server that sent GOAWAY may close; the writes after
                # it that failed (the recorded client's own GOAWAY, frames in flight
                # when it closed) were timing. What it did not get to answer counts
                # in the comparison, as not sent.
                self.result.skipped.append(
                    f"what followed the server's GOAWAY was not all sent: the server "
                    f"closed the connection ({exc})")
            else:
                self.result.error = f"writing to the server: {exc}"
        finally:
            assert self._writer is not None
            self._closing = True
            self._writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(self._writer.wait_closed(), 2)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._finish()
        if not self.received and (self.result.error or self.hung_up):
            # Not one byte back: the server does not speak this (a TLS port asked for
            # h2c, or HTTP/1.1 only): the replay could not run, nothing to compare.
            hint = "; it may want TLS: try https://" if not self.target.tls else ""
            why = f" ({self.result.error})" if self.result.error else ""
            raise ReplayError(f"{self.target.url} closed the connection without an HTTP/2 "
                              f"answer{why}{hint}")
        first = self.first_bytes
        if first and not (len(first) >= 9 and first[3] == 0x4 and first[5:9] == bytes(4)):
            # RFC 9113 §3.4: a server's connection preface is a SETTINGS frame.
            hint = " (an HTTP/1.x server)" if first.startswith(b"HTTP/") else ""
            raise ReplayError(f"{self.target.url} does not speak HTTP/2{hint}: it answered "
                              f"{first[:40]!r}, not a SETTINGS frame")
        if not self.received and self.result.timed_out:
            raise ReplayError(f"{self.target.url} accepted the connection and sent nothing "
                              f"for {self.options.idle_timeout:g} s (--timeout): no HTTP/2 "
                              "answer to compare")
        return self.result

    def _finish(self) -> None:
        t = time.monotonic()
        by = "server" if self.hung_up else "client"
        events = self.tap.close(t, closed_by=by) if self.tap is not None else \
            self.observer.close(t, closed_by=by) if self.observer is not None else []
        if events and self.on_batch is not None:
            self.on_batch(Batch(conn_id=self.conn_id, t=t, events=tuple(events)))


WRITE_FAILED_GRACE = 1.0
"""Seconds the reader gets, after a write to the server failed, to read what the
server sent before it closed."""


SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def _window_update(stream_id: int, increment: int) -> bytes:
    return (4).to_bytes(3, "big") + bytes([FrameType.WINDOW_UPDATE, 0]) + \
        stream_id.to_bytes(4, "big") + increment.to_bytes(4, "big")
