"""The proxy server: listeners per mode, the certificate store, the event bus, the sinks.

``ProxyServer(options, sinks)`` → ``await start()`` binds every mode's
listener (``addresses`` then says where) → connections are handled until
``await stop()``. The ``run`` command (``proxy/commands/run.py``) adds the
signal handling, the logging set-up and the exit statuses around it.

No internal error reaches the user's terminal as a traceback: a failing
connection is logged with its id (Python logging, ``h2scope.*`` loggers),
published as ProxyErrorRaised, closed, and the proxy keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from certs.files import hold_in_use
from certs.store import CertStore
from proxy import memory
from proxy.events import Closer, ConnectionOpened, EventBus, Sink, SinkCallable
from proxy.net.context import Conn, ProxyOptions, ProxyState
from proxy.net.listeners import handle_regular, handle_reverse
from proxy.net.modes import Mode, ModeError, ModeKind, is_loopback, parse_mode
from proxy.net.socks5 import handle_socks5
from proxy.net.streams import TcpStream

log = logging.getLogger("h2scope.proxy")

LOG_FILE = "h2scope.log"
#: Connections the kernel may queue before the proxy accepts them (asyncio's default,
#: 100, drops the SYNs of a browser's or a load test's burst: each waits 1 s to retry).
LISTEN_BACKLOG = 1024
IDLE_RELEASE_DELAY = 0.5
"""Seconds without a connection before memory is given back (:mod:`proxy.memory`)."""

_HANDLERS: dict[ModeKind, Callable[[Conn, TcpStream], Awaitable[None]]] = {
    ModeKind.REGULAR: handle_regular,
    ModeKind.REVERSE: handle_reverse,
    ModeKind.SOCKS5: handle_socks5,
    ModeKind.UPSTREAM: handle_regular,  # an explicit proxy; only the way out differs
}


OUT_OF_FDS_EVERY = 10.0
"""Seconds between two warnings that the proxy ran out of file descriptors."""


def open_files_limit() -> int:
    """This process's soft limit on open files (-1 where it cannot be read)."""
    try:
        import resource
    except ImportError:  # (not POSIX)
        return -1
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit (each
    connection holds two sockets; the soft limit is often 1024): (soft, hard) after."""
    try:
        import resource
    except ImportError:  # (not POSIX)
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
    return soft, hard


class _OutOfDescriptors:
    """A loop exception handler that turns asyncio's 'socket.accept() out of system
    resource' — logged with its traceback for every queued connection, several
    thousand lines a second while the limit holds — into one warning every
    :data:`OUT_OF_FDS_EVERY` seconds that says what to do; and drops asyncio's
    retries of those accepts that come due after the listener closed. Everything
    else goes to the handler that was there."""

    def __init__(self, previous: Callable[..., object] | None) -> None:
        self.previous = previous
        self.last = -OUT_OF_FDS_EVERY

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system"):
            now = time.monotonic()
            if now - self.last >= OUT_OF_FDS_EVERY:
                self.last = now
                exc = context.get("exception")
                limit = open_files_limit()
                log.warning("cannot accept new connections: %s (the limit on open files "
                            "is %s; each connection takes two): they wait until some "
                            "close; raise the limit (ulimit -n) for more",
                            getattr(exc, "strerror", None) or exc, limit)
            return
        callback = getattr(context.get("handle"), "_callback", None)
        if getattr(callback, "__name__", "") == "_start_serving" and \
                isinstance(context.get("exception"), (ValueError, OSError)):
            # asyncio retries accepting a second after each refusal above, once per
            # queued connection; a retry due after the listener closed finds its
            # socket gone (fd -1). Nothing is wrong: the listener is closed.
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


class ProxyStartError(Exception):
    """The proxy cannot start (bad mode, port in use, remote bind refused); a user message."""


class ProxyBindError(ProxyStartError):
    """A listener could not bind; ``__cause__`` is the OSError (the command adds the fix)."""


def confdir_error(confdir: Path, exc: OSError) -> str:
    """What failed when the CA of ``confdir`` could not be created or written (an
    unwritable HOME, a full disk), and what to do."""
    import errno

    fix = "set --confdir or H2SCOPE_HOME to a writable directory"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free some space, or {fix}"
    if not confdir.is_dir():
        return f"cannot create the CA directory {confdir}: {exc.strerror or exc} ({fix})"
    return f"cannot write {exc.filename or confdir}: {exc.strerror or exc} ({fix})"


class ProxyServer:
    """Every listener of one run, sharing one CertStore and one EventBus."""

    def __init__(self, options: ProxyOptions, sinks: Sequence[Sink | SinkCallable] = (), *,
                 bus_size: int = 1024, decode: bool = True) -> None:
        self.options = options
        self.decode = decode
        """False: HTTP/2 is only cut into frames for the sinks (the live UI's child
        process, which only records; see :class:`proxy.net.context.ProxyState`)."""
        self.sinks = list(sinks)
        self.bus_size = bus_size
        self.bus: EventBus | None = None
        self.state: ProxyState | None = None
        self.modes: list[Mode] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        """Mode spec → the (host, port) its listener is bound to, after :meth:`start`."""
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_use: int | None = None
        """The descriptor holding the confdir's in-use lock (:func:`certs.files.hold_in_use`)."""
        self._accepted = 0
        """Connections accepted so far (a release is called off if one came since)."""

    def address(self, kind: str = "regular") -> tuple[str, int]:
        """The bound address of the first mode whose spec starts with *kind*."""
        for spec, addr in self.addresses.items():
            if spec.startswith(kind):
                return addr
        raise KeyError(kind)

    async def start(self) -> None:
        """Bind all listeners; raises ProxyStartError with a message for the user."""
        opts = self.options
        try:
            self.modes = [parse_mode(m) for m in (opts.modes or ["regular"])]
        except ModeError as exc:
            raise ProxyStartError(str(exc)) from None
        soft, hard = raise_open_files_limit()
        log.info("open files limit: %s (hard %s)", soft, hard)
        loop = asyncio.get_running_loop()
        if not isinstance(loop.get_exception_handler(), _OutOfDescriptors):
            loop.set_exception_handler(_OutOfDescriptors(loop.get_exception_handler()))
        binds: list[tuple[Mode, str, int]] = []
        for mode in self.modes:
            host = mode.listen_host or opts.listen_host
            port = opts.listen_port if mode.listen_port is None else mode.listen_port
            if not is_loopback(host):
                if not opts.allow_remote:
                    raise ProxyStartError(
                        f"refusing to listen on {host} (not a loopback address) for mode "
                        f"{mode.spec!r}: anyone who can reach it could use the proxy; "
                        "set allow_remote to do it anyway")
                # (the command says so on the terminal at start-up, once: a log
                # file gets it as information)
                log.info("listening on %s for mode %s: reachable from other machines%s",
                         host, mode.spec, "" if opts.proxyauth else " and no proxyauth is set")
            if port and any((h, p) == (host, port) for _, h, p in binds):
                raise ProxyStartError(f"two modes want {host}:{port}: give each its own "
                                      "port with MODE@PORT")
            binds.append((mode, host, port))
        try:
            certs = await asyncio.to_thread(CertStore, Path(opts.confdir))
            self._in_use = hold_in_use(Path(opts.confdir))  # (ca regenerate sees it)
        except OSError as exc:
            raise ProxyStartError(confdir_error(Path(opts.confdir), exc)) from exc
        except Exception as exc:
            raise ProxyStartError(f"cannot open the CA in {opts.confdir}: {exc}") from exc
        self.bus = EventBus(maxsize=self.bus_size)
        for sink in self.sinks:
            self.bus.subscribe(sink)
        try:
            self.state = ProxyState(opts, self.bus, certs, decode=self.decode)
        except (ValueError, OSError) as exc:
            raise ProxyStartError(str(exc)) from exc
        try:
            for mode, host, port in binds:
                server = await asyncio.get_running_loop().create_server(
                    functools.partial(TcpStream, functools.partial(self._accept, mode)),
                    host, port, reuse_address=True, backlog=LISTEN_BACKLOG)
                self._servers.append(server)
                sockname = server.sockets[0].getsockname()
                self.addresses[mode.spec] = (str(sockname[0]), int(sockname[1]))
                self.state.listening.append(self.addresses[mode.spec])
                log.info("mode %s listening on %s:%d", mode.spec, sockname[0], sockname[1])
        except OSError as exc:
            await self.stop()
            raise ProxyBindError(f"cannot listen on {host}:{port} for mode {mode.spec!r}: "
                                  f"{exc.strerror or exc}") from exc

    def _accept(self, mode: Mode, client: TcpStream) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(mode, client))
        self._tasks.add(task)
        self._accepted += 1
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:  # the last connection closed: trim once it stays so
            asyncio.get_running_loop().call_later(IDLE_RELEASE_DELAY, self._release_if_idle,
                                                  self._accepted)

    def _release_if_idle(self, accepted: int) -> None:
        if not self._tasks and self._accepted == accepted:
            memory.release()

    async def _handle(self, mode: Mode, client: TcpStream) -> None:
        assert self.state is not None
        conn = Conn(self.state, mode, client.peername)
        conn.streams.append(client)
        try:
            await conn.emit(ConnectionOpened(conn_id=conn.id, t=time.time(), client=conn.client,
                                             mode=mode.spec, target=mode.target))
            await _HANDLERS[mode.kind](conn, client)
        except asyncio.CancelledError:
            for s in conn.streams:
                s.abort()
            with contextlib.suppress(Exception):
                await conn.closed(Closer.PROXY, "closed because h2scope is stopping")
            raise
        except Exception as exc:
            log.exception("[conn %d] internal error", conn.id)
            with contextlib.suppress(Exception):
                await conn.error("internal", f"internal error: {type(exc).__name__}: {exc}",
                                 "this is a bug in h2scope; the log has the details")
            for s in conn.streams:
                s.abort()
            with contextlib.suppress(Exception):
                await conn.closed(Closer.PROXY, "internal error", str(exc))
        finally:
            for s in conn.streams:
                with contextlib.suppress(Exception):
                    await s.aclose()
            if not conn.closed_emitted:
                with contextlib.suppress(Exception):
                    await conn.closed(Closer.PROXY, "connection ended", conn.last_error)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is open (True), or ``timeout`` seconds (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self) -> None:
        """Close the listeners and every connection, then let the sinks drain."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()
        if self._in_use is not None:
            os.close(self._in_use)
            self._in_use = None
        if self.bus is not None:
            await self.bus.close()

    async def __aenter__(self) -> ProxyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
