"""What every connection handler shares: options, certificates, TLS contexts, the bus.

:class:`ProxyOptions` is the subset of the configuration the network layer
reads (``proxy.config.Config`` satisfies it). :class:`ProxyState` holds what
is built from it once per run; :class:`Conn` is one client connection's
handle on it: its id, and helpers that stamp events with that id.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from certs.files import private_append
from certs.store import CertStore
from proxy.events import (
    Batch,
    Closer,
    ConnectionClosed,
    ConnectionEvent,
    EventBus,
    ProxyErrorRaised,
    ProxyEvent,
)
from proxy.net.client_certs import present
from proxy.net.modes import Mode, ModeKind
from proxy.net.streams import OwnListener, Stream, TcpStream, hostport, open_tcp
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import Event
from proxy.observe.framer import FrameSplitter

if TYPE_CHECKING:
    from proxy.net.clienthello import ClientHello

log = logging.getLogger("h2scope.proxy")

CONNECT_TIMEOUT = 10.0
"""Seconds to open a TCP connection upstream."""
HANDSHAKE_TIMEOUT = 15.0
"""Seconds for a TLS handshake, on either leg."""
REQUEST_TIMEOUT = 60.0
"""Seconds a client may take to send a request head (and idle between requests)."""


class Observer(Protocol):
    """What the relays need of an HTTP/2 observer: :class:`ConnectionObserver`,
    or :class:`FrameSplitter` when nothing but the recorder reads the events."""

    def feed(self, direction: Direction, data: bytes | bytearray | memoryview,
             t: float) -> list[Event]: ...
    def close(self, t: float, closed_by: str | None = None,
              ends: Mapping[Direction, int] | None = None) -> list[Event]: ...
    def upgrade_h2c(self, *, http2_settings: bytes,
                    request_headers: tuple[tuple[str, str], ...], t: float) -> list[Event]: ...


class ProxyOptions(Protocol):
    """The configuration the proxy core reads (``proxy.config.Config`` provides it)."""

    @property
    def listen_host(self) -> str: ...
    @property
    def listen_port(self) -> int: ...
    @property
    def modes(self) -> Sequence[str]: ...
    @property
    def confdir(self) -> Path: ...
    @property
    def insecure(self) -> bool: ...
    @property
    def upstream_ca(self) -> Path | None: ...
    @property
    def client_certs(self) -> Path | None: ...
    @property
    def upstream_auth(self) -> str | None: ...
    @property
    def ignore_hosts(self) -> Sequence[str]: ...
    @property
    def allow_hosts(self) -> Sequence[str]: ...
    @property
    def proxyauth(self) -> str | None: ...
    @property
    def allow_remote(self) -> bool: ...
    @property
    def sslkeylogfile(self) -> Path | None: ...


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ProxyState:
    """Built once per run from the options; shared by every connection."""

    def __init__(self, options: ProxyOptions, bus: EventBus, certs: CertStore, *,
                 decode: bool = True) -> None:
        self.options = options
        self.decode = decode
        """Decode HTTP/2 (every frame, header block and stream modelled), or only cut
        frames for the recorder (:mod:`proxy.observe.framer`): the live UI's proxy
        process, whose capture the UI decodes."""
        self.bus = bus
        self.certs = certs
        # (host names are case-insensitive: so is the match, as in mitmproxy)
        self.ignore = [re.compile(p, re.IGNORECASE) for p in options.ignore_hosts]
        self.allow = [re.compile(p, re.IGNORECASE) for p in options.allow_hosts]
        self.keylog = str(options.sslkeylogfile) if options.sslkeylogfile else None
        self.listening: list[tuple[str, int]] = []
        """The addresses this proxy listens on (the server adds each as it binds): an
        upstream connection that reaches one is refused, it would loop."""
        if self.keylog:  # (OpenSSL would create it with the umask: it holds every key)
            private_append(self.keylog)
        self._auth = _parse_auth(options.proxyauth)
        self._upstream_contexts: dict[
            tuple[tuple[str, ...], Path | None, tuple[ssl.TLSVersion | None,
                                                      ssl.TLSVersion | None]],
            ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._next_id = 0
        self._client_tls: dict[tuple[str, str, object], float] = {}
        """(client address, host, TLS stack) → when a client there last finished a
        handshake with h2scope's certificate for that host (:meth:`client_trusts`)."""

    CLIENT_TLS_REMEMBERED = 30.0
    """Seconds a finished client handshake vouches for the client's trust in
    h2scope's certificate for its host."""

    def client_tls_done(self, client_ip: str, host: str, stack: object) -> None:
        """A client at *client_ip* with the TLS *stack* (:attr:`ClientHello.stack`)
        finished a handshake with h2scope's leaf for *host*."""
        known = self._client_tls
        if len(known) >= 4096:
            now = time.monotonic()
            for key in [k for k, t in known.items() if now - t > self.CLIENT_TLS_REMEMBERED]:
                del known[key]
            if len(known) >= 4096:
                known.clear()
        known[(client_ip, host.lower(), stack)] = time.monotonic()

    def client_trusts(self, client_ip: str, host: str, stack: object, opened: float) -> bool:
        """Whether a client at *client_ip* with the same TLS *stack* (the same
        library: on one machine every client is 127.0.0.1) finished a handshake with
        h2scope's leaf for *host* within the last :attr:`CLIENT_TLS_REMEMBERED`
        seconds, after the connection opened at *opened* (monotonic) had begun: it
        trusts the certificate, and it opened this connection alongside that one,
        so this one, ending silently mid-handshake, was abandoned (a browser's
        raced or spare connection), not a rejection. A connection opened after
        the other finished is no race: another program with the same library (one
        Python program after another) may well not trust h2scope's CA."""
        t = self._client_tls.get((client_ip, host.lower(), stack))
        return t is not None and t >= opened and \
            time.monotonic() - t <= self.CLIENT_TLS_REMEMBERED

    def new_observer(self) -> Observer:
        """The observer of one HTTP/2 connection's bytes (the client sends the preface)."""
        if self.decode:
            return ConnectionObserver(preface="required")
        return FrameSplitter(preface="required")

    def new_conn_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def ignored(self, host: str, port: int) -> bool:
        """True if ``host:port`` is to be passed through: it matches an ignore_hosts
        pattern, or allow_hosts is set and it matches none (``re.search``, as mitmproxy)."""
        text = hostport(host, port)
        if self.allow:
            return not any(p.search(text) for p in self.allow)
        return any(p.search(text) for p in self.ignore)

    @property
    def auth_required(self) -> bool:
        return self._auth is not None

    def check_basic(self, header: str | None) -> bool:
        """Is *header* (``Proxy-Authorization``) the configured Basic credential?"""
        if self._auth is None:
            return True
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, self._auth)

    def check_userpass(self, user: bytes, password: bytes) -> bool:
        if self._auth is None:
            return True
        return hmac.compare_digest(user + b":" + password, self._auth)

    def upstream_context(self, alpn: Sequence[str], cert: Path | None = None,
                         versions: tuple[ssl.TLSVersion | None, ssl.TLSVersion | None]
                         = (None, None)) -> ssl.SSLContext:
        """A client context for the server leg offering *alpn*, presenting the client
        certificate in *cert* if the server asks for one, and offering the TLS
        *versions* (lowest, highest) the client offered, within h2scope's own range:
        a client and server without a version in common fail through h2scope as they
        would without it. Cached per list, file and versions."""
        key = (tuple(alpn), cert, versions)
        with self._lock:
            ctx = self._upstream_contexts.get(key)
            if ctx is None:
                ctx = ssl.create_default_context()
                low, high = versions
                if low is not None and low > ctx.minimum_version:
                    ctx.minimum_version = low
                if high is not None and high >= ctx.minimum_version:
                    ctx.maximum_version = high
                if self.options.upstream_ca is not None:
                    ctx.load_verify_locations(cafile=str(self.options.upstream_ca))
                if self.options.insecure:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                if alpn:
                    ctx.set_alpn_protocols(list(alpn))
                if cert is not None:
                    present(ctx, cert)
                # (create_default_context() reads $SSLKEYLOGFILE itself: None keeps
                # --no-sslkeylogfile's "off" true for this leg too)
                ctx.keylog_filename = self.keylog  # type: ignore[assignment]
                self._upstream_contexts[key] = ctx
            return ctx

    def client_context(self, host: str, alpn: Sequence[str],
                       extra_sans: Sequence[str]) -> ssl.SSLContext:
        """The server context for the client leg (leaf for *host*); raises InvalidHostname."""
        ctx = self.certs.server_context(host, alpn, extra_sans)
        if self.keylog and ctx.keylog_filename != self.keylog:
            ctx.keylog_filename = self.keylog
        return ctx


def _parse_auth(value: str | None) -> bytes | None:
    if value is None:
        return None
    if ":" not in value:
        raise ValueError("proxyauth must be USER:PASS")
    return value.encode("utf-8")


class Conn:
    """One client connection: its id and the way it reports what happens to it."""

    def __init__(self, state: ProxyState, mode: Mode, client: tuple[str, int]) -> None:
        self.state = state
        self.mode = mode
        self.client = client
        self.id = state.new_conn_id()
        self.opened = time.monotonic()
        """When h2scope accepted it (:meth:`ProxyState.client_trusts` reads it)."""
        self.target: str | None = mode.target
        self.closed_emitted = False
        self.streams: list[Stream] = []
        """Every stream opened for this connection; the server closes them all at the end."""
        self.errored = False
        """True once a ProxyErrorRaised was published: the close reason says so too."""
        self.last_error: str | None = None
        self.byte_counts: Callable[[], tuple[int, int]] | None = None
        """Bytes relayed so far (client → server, server → client), once a relay runs:
        the close says them however it comes, h2scope stopping included."""

    @property
    def bus(self) -> EventBus:
        return self.state.bus

    @property
    def via_proxy(self) -> bool:
        """Connections go out through an upstream proxy (``upstream:`` mode)."""
        return self.mode.kind is ModeKind.UPSTREAM

    async def open_server(self, host: str, port: int, client: Stream | None = None
                          ) -> TcpStream:
        """TCP to the server at ``host:port``: direct, or tunnelled through the
        upstream proxy of an ``upstream:`` mode (given up on if *client* leaves while
        the upstream proxy has not answered). Raises OSError or TimeoutError."""
        if self.via_proxy:
            from proxy.net.upstream_proxy import connect_via

            return await connect_via(self.mode, self.state.options.upstream_auth, host, port,
                                     timeout=CONNECT_TIMEOUT, own=self.state.listening,
                                     client=client)
        return await open_tcp(host, port, timeout=CONNECT_TIMEOUT, own=self.state.listening)

    def connect_hint(self, exc: BaseException, host: str | None = None) -> str | None:
        """For a direct connection to *host* that failed while ``$HTTPS_PROXY`` names
        another proxy (and ``$NO_PROXY`` does not exempt *host*): h2scope does not use
        it, and how to go through it."""
        if self.via_proxy or isinstance(exc, OwnListener):
            return None
        from proxy.net.upstream_proxy import env_proxy_hint

        return env_proxy_hint(self.state.listening, host)

    def server_ip(self) -> str | None:
        """The address the latest upstream TCP connection reached (None through an
        upstream proxy: its address is the proxy's)."""
        if self.via_proxy:
            return None
        for s in reversed(self.streams):
            if isinstance(s, TcpStream):
                ip = s.peername[0]
                return None if ip == "?" else ip
        return None

    async def emit(self, event: ConnectionEvent) -> None:
        await self.state.bus.publish(Batch(conn_id=self.id, t=event.t, events=(event,)))

    async def closed(self, closer: Closer, reason: str, error: str | None = None, *,
                     bytes_c2s: int | None = None, bytes_s2c: int | None = None,
                     ends: Mapping[Direction, int] | None = None) -> None:
        """Publish the connection's one ConnectionClosed (later calls do nothing);
        the byte counts default to :attr:`byte_counts`'."""
        if self.closed_emitted:
            return
        self.closed_emitted = True
        if bytes_c2s is None or bytes_s2c is None:
            counted = self.byte_counts() if self.byte_counts is not None else (0, 0)
            bytes_c2s = counted[0] if bytes_c2s is None else bytes_c2s
            bytes_s2c = counted[1] if bytes_s2c is None else bytes_s2c
        await self.emit(ConnectionClosed(conn_id=self.id, t=time.time(), closed_by=closer,
                                         reason=reason, error=error, bytes_c2s=bytes_c2s,
                                         bytes_s2c=bytes_s2c,
                                         ends=tuple((d.name.lower(), n)
                                                    for d, n in (ends or {}).items())))

    async def error(self, stage: str, message: str, hint: str | None = None, *,
                    client_hello: ClientHello | None = None) -> None:
        """Publish a ProxyErrorRaised and log it with the connection id."""
        self.errored = True
        self.last_error = message
        log.info("[conn %d] %s: %s%s", self.id, stage, message, f" ({hint})" if hint else "")
        await self.emit(ProxyErrorRaised(conn_id=self.id, t=time.time(), stage=stage,
                                         message=message, hint=hint, client_hello=client_hello))

    async def auth_failed(self, message: str) -> None:
        """Wrong proxy credentials: an error of the connection, and a warning in the
        log with the client's address (a password being guessed shows there)."""
        log.warning("[conn %d] %s:%s: %s", self.id, self.client[0], self.client[1], message)
        await self.error("auth", message)

    async def publish_chunk(self, direction: Direction, data: bytes, t: float,
                            events: Sequence[ProxyEvent], protocol: str) -> None:
        await self.room()
        self.put_chunk(direction, data, t, events, protocol)

    async def room(self) -> None:
        """Wait until the sinks can take a chunk (:meth:`put_chunk` it, without
        awaiting in between)."""
        await self.state.bus.room()

    def put_chunk(self, direction: Direction, data: bytes, t: float,
                  events: Sequence[ProxyEvent], protocol: str) -> None:
        self.state.bus.put(Batch(conn_id=self.id, t=t, events=tuple(events),
                                 direction=direction, data=data, protocol=protocol))
