"""The proxy as a child process of the UI: ``python -m proxy.child``.

With the UI attached, the relay and the screen used to share one interpreter,
so every frame the UI took in was time the relay could not use (the GIL), and
the proxy ran at 0.5-0.8x its headless speed. Now ``h2scope run`` with the UI
starts the proxy in this child process, recording to the session's capture,
and the UI follows that file (``ui/model/follow.py``): the two use two cores.
See docs/architecture.md ("The live UI and the proxy are two processes") and
docs/ui.md ("Live mode").

The parent talks to the child over its stdin and stdout:

* stdin, first: an 8-byte big-endian length, then the pickled :class:`Start`.
  Then command lines: ``flush``, ``status``, ``record PATH``, ``unrecord``,
  ``stop``.
  End of file (the parent has gone) is ``stop``.
* stdout: one JSON object per line: ``{"ready": [[mode, address], ...],
  "capture": PATH, "ca": CA_PEM_PATH}`` once listening, or ``{"error": MESSAGE}`` if the proxy
  cannot start (exit 1); then one reply per command (``{"flushed": true}``,
  ``{"disk_wait": SECONDS}`` (how long recording has made the relay wait),
  ``{"recording": PATH}``, ``{"unrecorded": true, "conns": [IDS]}`` (the connections
  the recording holds) or ``{"error": ...}``, ``{"stopped": true}``).
  If the session's capture cannot be written (a full disk), the child stops
  by itself: ``{"fatal": MESSAGE}``, ``{"stopped": true}``, exit status 3.

The child runs in its own session, so keys typed in the terminal (ctrl+c,
ctrl+z) reach only the UI, which stops the child with ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pickle
import signal
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.events import Batch, ConnectionOpened

LENGTH = struct.Struct(">Q")
FLUSH_INTERVAL = 0.05
"""Seconds between the capture writer's flushes: the UI sees frames this late
at most (the headless default is 0.5 s)."""


@dataclass(frozen=True, slots=True)
class Start:
    """What the parent sends first."""

    config: Any
    """The proxy's :class:`proxy.config.Config`."""
    capture: Path
    """The session's capture file (the user's ``--record`` file or a private one)."""
    log_file: Path | None = None
    temporary: bool = False
    """The capture is the UI's private one, removed when the UI quits: not synced
    to disk on closing (that could take seconds for gigabytes of traffic)."""
    demo: tuple[int | None, float] | None = None
    """``h2scope demo``: (rounds, interval); the child then runs the demo's origin
    and client beside the proxy (:mod:`proxy.commands.demo`)."""


class FromNowRecorder:
    """Bus sink that records only connections opened after recording started
    (a capture of a connection from its middle could not be decoded): the UI's
    record key."""

    def __init__(self, path: Path, max_data_bytes: int | None) -> None:
        from proxy.capture.recorder import CaptureRecorder
        from proxy.capture.writer import CaptureWriter

        self.path = path
        self.recorder = CaptureRecorder(CaptureWriter(path, max_data_bytes=max_data_bytes))
        self.conns: set[int] = set()
        self.active = True

    async def handle(self, batch: Batch) -> None:
        if not self.active:
            return
        if any(isinstance(ev, ConnectionOpened) for ev in batch.events):
            self.conns.add(batch.conn_id)
        if batch.conn_id not in self.conns:
            return
        await self.recorder.handle(batch)

    async def handle_many(self, batches: Sequence[Batch]) -> None:
        for batch in batches:
            await self.handle(batch)

    def close(self) -> None:
        if self.active:
            self.active = False
            self.recorder.close()


class _Watched:
    """The session capture's recorder, with the first error it raised kept. If the
    capture cannot be written (a full disk), the proxy goes on relaying, as a
    headless run does: stopping it cut every download in flight and refused every
    client after. The UI, blind from then on, learns why from the status reply
    (``unrecorded``) and says so for as long as it runs."""

    def __init__(self, recorder: Any, path: Path, temporary: bool) -> None:
        self.recorder = recorder
        self.error: Exception | None = None
        self.path = path
        self.temporary = temporary

    @property
    def unrecorded(self) -> str | None:
        """Why the session is no longer recorded (and so not seen), or None."""
        err = self.error
        if err is None:
            return None
        what, elsewhere = ("the session's capture", "--record FILE or TMPDIR") \
            if self.temporary else (str(self.path), "another --record FILE")
        return (f"writing {what} failed: {getattr(err, 'strerror', None) or err}; the proxy "
                "goes on relaying, unrecorded and unseen (free some space and start again, "
                f"or record elsewhere with {elsewhere})")

    async def handle_many(self, batches: Sequence[Batch]) -> None:
        if self.error is not None:
            return  # (nothing more can be written: the relay goes on)
        try:
            await self.recorder.handle_many(batches)
        except Exception as exc:
            self.error = exc
            import logging

            logging.getLogger("h2scope.child").error(
                "recording stopped: %s", self.unrecorded, exc_info=True)

    async def handle(self, batch: Batch) -> None:
        await self.handle_many((batch,))


async def settle(server: Any, sink: Any, timeout: float) -> bool:
    """Wait (bounded) until ``sink`` has taken every batch the bus published so far."""
    loop = asyncio.get_running_loop()
    subs = [s for s in getattr(server.bus, "subscriptions", ())
            if getattr(s.handler, "__self__", None) is sink]
    deadline = loop.time() + timeout
    while any(not s.queue.empty() or s.queued_bytes for s in subs):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def _frozen(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


class _Pickler(pickle.Pickler):
    """Pickles the config's read-only mappings (``MappingProxyType``) as copies."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is MappingProxyType:
            return _frozen, (dict(obj),)
        return NotImplemented


def dumps(start: Start) -> bytes:
    """The start message's bytes (what :func:`main` reads back)."""
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(start)
    return out.getvalue()


def _reply(obj: dict[str, Any]) -> None:
    os.write(1, (json.dumps(obj) + "\n").encode())


def _read_exactly(fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError("the parent closed the pipe before sending the start message")
        out += chunk
    return bytes(out)


async def _serve(start: Start) -> int:
    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.writer import CaptureWriter
    from proxy.commands.run import capture_config, start_error
    from proxy.server import ProxyServer, ProxyStartError

    config = start.config
    try:
        writer = CaptureWriter(start.capture, config=capture_config(config),
                               max_data_bytes=config.record.max_data_bytes,
                               flush_interval=FLUSH_INTERVAL,
                               # The private scratch capture is read back within seconds
                               # by the UI; saving it checksums every body (RecordFlag).
                               check_bodies=not start.temporary)
    except OSError as exc:
        _reply({"error": f"cannot record to {start.capture}: {exc.strerror or exc}"})
        return 1
    stopping = asyncio.Event()
    recorder = CaptureRecorder(writer)
    watched = _Watched(recorder, Path(start.capture), start.temporary)
    # The UI decodes every frame from the capture (principle 6): here HTTP/2 is only
    # cut into frames for the recorder, not decoded a first time for nothing.
    server: Any = ProxyServer(config, [watched], decode=False)
    demo: list[Any] = []  # the demo's origin, then the task driving its client
    try:
        if start.demo is not None:
            from certs.store import CertStore
            from proxy.commands.demo import start_demo

            server, origin, client = await start_demo(config, CertStore(config.confdir),
                                                      [watched], decode=False)
            demo += [origin, client]
        else:
            await server.start()
    except ProxyStartError as exc:
        _reply({"error": start_error(config, server, exc)})
        recorder.close()
        return 1
    addresses = [(spec, f"[{h}]:{p}" if ":" in h else f"{h}:{p}")
                 for spec, (h, p) in server.addresses.items()]
    writer.flush()  # the header is in the file before the parent opens it
    ca = server.state.certs.ca_cert_path if server.state is not None else None
    _reply({"ready": addresses, "capture": str(start.capture), "ca": str(ca) if ca else None})

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tap: FromNowRecorder | None = None

    async def commands() -> None:
        nonlocal tap
        while True:
            line = (await reader.readline()).decode("utf-8", "replace").strip()
            if not line or line == "stop":
                return
            cmd, _, arg = line.partition(" ")
            try:
                if cmd == "flush":
                    await settle(server, watched, 2.0)
                    writer.flush()
                    if tap is not None:
                        await settle(server, tap, 2.0)
                        tap.recorder.writer.flush()
                    _reply({"flushed": True})
                elif cmd == "status":
                    _reply({"disk_wait": writer.waited, "unrecorded": watched.unrecorded})
                elif cmd == "record":
                    if tap is not None:
                        tap.close()
                    tap = FromNowRecorder(Path(arg), config.record.max_data_bytes)
                    assert server.bus is not None
                    server.bus.subscribe(tap)
                    _reply({"recording": arg})
                elif cmd == "unrecord":
                    conns: list[int] = []
                    if tap is not None:
                        await settle(server, tap, 5.0)
                        tap.close()
                        conns = sorted(tap.conns)
                        tap = None
                    # (which connections the file holds: the UI, behind, cannot tell)
                    _reply({"unrecorded": True, "conns": conns})
                else:
                    _reply({"error": f"unknown command {cmd!r}"})
            except (OSError, ValueError) as exc:
                _reply({"error": f"{cmd}: {getattr(exc, 'strerror', None) or exc}"})

    task = loop.create_task(commands())
    if start.demo is not None:
        from proxy.commands.demo import drive

        rounds, interval = start.demo
        demo[1] = loop.create_task(drive(demo[1], rounds, interval))
        demo[1].add_done_callback(_demo_ended)
    stop_wait = loop.create_task(stopping.wait())
    try:
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        stop_wait.cancel()
        if demo:
            demo[1].cancel()  # the demo client's rounds first: no new connections
        await server.stop()  # closes every connection, then lets the sinks drain
        if demo:
            with contextlib.suppress(Exception):
                await demo[0].stop()  # the demo's origin
        if tap is not None:
            tap.close()
        with contextlib.suppress(OSError, ValueError):
            writer.close(fsync=not start.temporary)  # (after a write error, may fail again)
        with contextlib.suppress(OSError):
            _reply({"stopped": True})
    return 3 if watched.error is not None else 0


def _demo_ended(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        import logging

        logging.getLogger("h2scope.demo").error("the demo client stopped: %s", task.exception())


def _configure_logging(path: Path | None) -> None:
    import logging

    handler: logging.Handler = logging.NullHandler()
    if path is not None:
        with contextlib.suppress(OSError):
            handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("h2scope")
    logger.handlers[:] = [handler]
    logger.propagate = False


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the UI decides when to stop
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file size limit: an error, not death
    (n,) = LENGTH.unpack(_read_exactly(0, LENGTH.size))
    start: Start = pickle.loads(_read_exactly(0, n))
    _configure_logging(start.log_file)
    import logging

    logging.getLogger("h2scope").setLevel(str(start.config.log.level).upper())
    return asyncio.run(_serve(start))


if __name__ == "__main__":
    sys.exit(main())
