"""The live UI with the proxy in a child process: follow the capture it writes.

``h2scope run`` with the UI starts the proxy as a child process
(:mod:`proxy.child`) that records every connection to the session's capture —
the user's ``--record FILE`` or a private temporary one — and flushes it every
50 ms. The UI process reads that file as it grows (:class:`Follower`), runs
the observer over the new records as ``h2scope view`` does (architecture
principle 6) and hands the events to the same feed and ingest as before
(:mod:`ui.model.live`). Relay and screen no longer share an interpreter lock:
the proxy keeps its headless speed while the UI draws (docs/architecture.md).

What the UI shows is always in the file already, so saving it, exporting it
or reading a frame back from it never waits for a recorder.

:class:`ChildProxy` is what the app talks to: start, stop, recording,
backing (the :class:`ui.model.backing.SessionCapture`), input_seen, behind.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from proxy.capture.format import (
    FILE_HEADER,
    MAX_BODY,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    SYNC,
    RecordType,
)
from proxy.capture.reader import new_record
from proxy.observe.connection import ConnectionObserver
from proxy.observe.events import FrameObserved
from ui.model.backing import TEMP_NAME, SessionCapture
from ui.model.capture import Readers, record_events
from ui.model.live import FollowedBatch, LiveFeed

log = logging.getLogger("h2scope.ui.follow")
_HDR = RECORD_HEADER_SIZE
_FRAME = int(RecordType.FRAME)
CHUNK = 256 << 10
"""Bytes read from the capture per step."""
POLL = 0.01
"""Seconds the follower waits when the file has not grown (while traffic comes)."""
IDLE_POLL = 0.1
"""... and once it has not grown for :data:`IDLE_AFTER` seconds: an idle session
wakes the follower 10 times a second, not 100 (2.7 % of a core, idle, measured
over two minutes before), and the first frame after a pause waits at most this."""
IDLE_AFTER = 2.0
INPUT_HOLD = 0.3
"""Seconds after a key press or a mouse event during which the follower
decodes only in small slices (:data:`HELD_SLICE` records every
:data:`HELD_GAP` seconds), so the UI's thread has the interpreter almost to
itself while it answers. The proxy is not slowed; the view catches up after."""
HELD_SLICE = 64
HELD_GAP = 0.02
SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it, while the
follower runs (the default, 5 ms, is what a key press would wait)."""
STATUS_EVERY = 1.0
"""Seconds between two questions to the proxy's process about the disk."""
DISK_NOTE = 5.0
"""Seconds the status bar says the disk slowed the proxy after it last did."""
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
COMMAND_TIMEOUT = 15.0


class Follower:
    """Reads the records appended to a growing capture, decodes them and puts
    their events on ``feed`` (waiting while it is full: nothing is dropped, the
    UI only falls behind the proxy, and says by how much)."""

    def __init__(self, path: Path, feed: LiveFeed) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        head = os.pread(self.fd, FILE_HEADER.size, 0)
        _, _, _, n = FILE_HEADER.unpack(head)
        self.pos = FILE_HEADER.size + n
        self.feed = feed
        self.observers: dict[int, ConnectionObserver | None] = Readers()
        self.records = 0
        self.broken: str | None = None
        self.hold_until = 0.0
        """Monotonic time until which the follower decodes only in slices (input first)."""
        self.paused = False
        """While set, nothing more is read: the file holds what comes meanwhile."""
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="h2scope-follow", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(5)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def behind(self) -> int:
        """Bytes of the capture not read yet."""
        try:
            return max(0, os.fstat(self.fd).st_size - self.pos) if self.fd >= 0 else 0
        except OSError:
            return 0

    def hold(self, seconds: float) -> None:
        """Leave the interpreter to the UI for ``seconds`` (it is answering input)."""
        self.hold_until = max(self.hold_until, time.monotonic() + seconds)

    def _run(self) -> None:
        last_found = time.monotonic()
        while not self.stopped.is_set():
            if self.paused:
                self.stopped.wait(IDLE_POLL)
                continue
            held = time.monotonic() < self.hold_until
            try:
                found = self.poll(HELD_SLICE if held else None)
            except OSError as exc:  # the file went away: nothing more to follow
                self.broken = f"reading the session's capture: {exc.strerror or exc}"
                return
            except Exception as exc:  # a record that does not read (the status bar says)
                log.exception("following the session's capture")
                self.broken = (f"a record after byte {self.pos} of the session's capture "
                               f"does not read: {exc}")
                return
            if found:
                last_found = time.monotonic()
            if held:
                self.stopped.wait(HELD_GAP)
            elif not found:
                idle = time.monotonic() - last_found > IDLE_AFTER
                self.stopped.wait(IDLE_POLL if idle else POLL)

    def poll(self, limit: int | None = None) -> int:
        """Read and decode the complete records appended since the last call (at
        most ``limit``; fewer if input comes meanwhile)."""
        if self.broken is not None:
            return 0
        fd, pos = self.fd, self.pos
        size = os.fstat(fd).st_size
        if size - pos < _HDR:
            return 0
        chunk = os.pread(fd, min(CHUNK, size - pos), pos)
        unpack = RECORD_HEADER.unpack_from
        n = len(chunk)
        i = 0
        found = 0
        out: list[FollowedBatch] = []
        events: list[Any] = []
        refs: list[int] = []
        conn_of_events = -1
        last_wall = 0.0
        while i + _HDR <= n:
            if limit is not None and found >= limit:
                break
            if not found & 255 and found and time.monotonic() < self.hold_until:
                break  # input came: the rest waits until the UI has answered it
            sync, rtype, flags, blen, conn, seq, t, wall, _crc = unpack(chunk, i)
            if sync != SYNC or blen > MAX_BODY:
                self.broken = f"no record at byte offset {pos + i} of the session's capture"
                break
            end = i + _HDR + blen
            if end > n:
                if i == 0 and pos + _HDR + blen <= size:  # one record bigger than a chunk
                    chunk = os.pread(fd, _HDR + blen, pos)
                    n = len(chunk)
                    continue
                break  # the rest is not written yet
            rec = new_record(pos + i, rtype, flags, conn, seq, t, wall, chunk[i + _HDR:end])
            i = end
            found += 1
            if conn != conn_of_events and events:
                out.append(FollowedBatch(conn_of_events, last_wall, tuple(events), tuple(refs)))
                events, refs = [], []
            conn_of_events, last_wall = conn, wall
            before = len(events)
            record_events(self.observers, rec, events)
            # The table refers to a frame by its record's offset (read back from the
            # file when shown): a FRAME record yields at most one FrameObserved.
            refs.extend(rec.offset if rtype == _FRAME and type(ev) is FrameObserved else -1
                        for ev in events[before:])
        if events:
            out.append(FollowedBatch(conn_of_events, last_wall, tuple(events), tuple(refs)))
        self.pos = pos + i
        self.records += found
        self._put(out)
        return found

    def _put(self, batches: list[FollowedBatch]) -> None:
        feed = self.feed
        for batch in batches:
            while len(feed.batches) >= feed.maxsize and not self.stopped.is_set():
                time.sleep(POLL)  # the UI is behind: wait for it, drop nothing
            feed.put(batch)


@dataclass
class _Recording:
    path: Path
    active: bool = True


class ChildProxyError(Exception):
    pass


def _ended(code: int) -> str:
    """``exited with status 1`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


class _Following:
    """What the app needs of a live session's source, over a capture followed into
    ``feed``: the backing capture, the follower and its place behind the file,
    input first, and the GIL switch interval while the follower runs."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed
        self.backing: SessionCapture | None = None
        self.follower: Follower | None = None
        self.tap: _Recording | None = None
        self.recorded_ids: set[int] = set()
        """The connections recordings started with r hold (the proxy says which when
        one stops)."""
        self.error: str | None = None
        self._switch_interval: float | None = None

    def _follow(self, backing: SessionCapture) -> None:
        self.backing = backing
        # The follower decodes on its own thread; the UI's loop, woken by a key or
        # a timer, must not wait the default 5 ms for it to let go of the GIL.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.follower = Follower(backing.path, self.feed)
        self.follower.start()

    def _unfollow(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        if self.backing is not None:
            try:
                self.backing.close()
            except (OSError, ValueError) as exc:
                self.error = f"closing {self.backing.path}: {exc}"
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    def behind(self) -> int:
        """Bytes of the capture the UI has not read yet."""
        return self.follower.behind() if self.follower is not None else 0

    def pause(self, paused: bool) -> None:
        """Stop (or go on) reading the capture: while the view is paused the proxy
        goes on recording, and what it records is read when the view resumes."""
        if self.follower is not None:
            self.follower.paused = paused

    def frames_in_file(self) -> int:
        """FRAME records in the capture so far (read by their headers only)."""
        return self.backing.frame_records() if self.backing is not None else 0

    def input_seen(self) -> None:
        """A key or mouse event arrived: the UI's thread goes first for a moment."""
        if self.follower is not None:
            self.follower.hold(INPUT_HOLD)

    def disk_slows(self) -> bool:
        """Whether recording made the relay wait for the disk in the last seconds."""
        return False

    unrecorded: str | None = None
    """Why the proxy goes on relaying without recording (its capture could not be
    written: a full disk), so that nothing more is seen; None while all is well."""

    def problem(self) -> str | None:
        """Why live traffic stopped, if it did (here: the capture could not be read)."""
        return self.follower.broken if self.follower is not None else None


class ChildProxy(_Following):
    """The proxy in a child process (:mod:`proxy.child`), its capture followed
    into ``feed``."""

    def __init__(self, options: Any, *, feed: LiveFeed, record: Path | None = None,
                 max_data_bytes: int | None = None, log_file: Path | None = None,
                 demo: tuple[int | None, float] | None = None) -> None:
        super().__init__(feed)
        self.options = options
        self.demo = demo
        self.max_data_bytes = max_data_bytes
        self._record = record
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.fatal: str | None = None
        """Why the proxy's process stopped by itself, as it said it."""
        self.ca_cert_path: Path | None = None
        self.addresses: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._temp_dir: Path | None = None
        self._err: IO[bytes] | None = None
        """Where the child's stderr goes (the log, or an unlinked file)."""
        self._err_start = 0
        self._stopping = False
        self.disk_wait = 0.0
        """Seconds recording has made the relay wait for the disk (back-pressure)."""
        self.disk_slowed_at = -DISK_NOTE

    # ------------------------------------------------------------ starting

    def start(self, timeout: float = START_TIMEOUT) -> list[tuple[str, str]]:
        """Start the child and wait until it listens; returns (mode, address) pairs.
        Raises ProxyStartError with the child's reason."""
        from proxy.child import LENGTH, Start, dumps
        from proxy.config import UIConfig
        from proxy.server import ProxyStartError

        path = self._record
        if path is None:
            # mkdtemp makes the directory mode 0700; the writer makes the file 0600.
            self._temp_dir = Path(tempfile.mkdtemp(prefix="h2scope-"))
            atexit.register(self._remove_temp)
            path = self._temp_dir / TEMP_NAME
        # A crash's traceback goes to the log, not on the screen; without a log, to a
        # file of its own (unlinked), so that a start that fails can say why.
        err: IO[bytes] | None = None
        if self.log_file is not None:
            with contextlib.suppress(OSError):
                err = open(self.log_file, "a+b")  # noqa: SIM115 (closed by stop())
        if err is None:
            err = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._err, self._err_start = err, err.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.child"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=err, start_new_session=True, close_fds=True)
        assert self.proc.stdin is not None
        try:
            config = replace(self.options, ui=UIConfig())  # (key maps are not the proxy's)
            payload = dumps(Start(config=config, capture=Path(path), log_file=self.log_file,
                                  temporary=self._temp_dir is not None, demo=self.demo))
            try:
                self.proc.stdin.write(LENGTH.pack(len(payload)) + payload)
                self.proc.stdin.flush()
            except BrokenPipeError:
                # It died before reading its start (a broken install): say why.
                raise ChildProxyError(self._died()) from None
            first = self._read_reply(timeout)
        except (OSError, ChildProxyError) as exc:
            self.stop()
            raise ProxyStartError(f"the proxy process did not start: {exc}") from None
        except BaseException:
            self.stop()
            raise
        if "error" in first:
            self.stop()
            raise ProxyStartError(str(first["error"]))
        self.addresses = [(str(m), str(a)) for m, a in first.get("ready", ())]
        if first.get("ca"):
            self.ca_cert_path = Path(first["ca"])
        self._follow(SessionCapture(Path(path), temp_dir=self._temp_dir,
                                    flush=self.flush_recording))
        self._status_thread = threading.Thread(target=self._poll_status, daemon=True,
                                               name="h2scope-child-status")
        self._status_thread.start()
        return self.addresses

    def _poll_status(self) -> None:
        """Every STATUS_EVERY s: how long recording has made the relay wait for the
        disk (issue: the UI says so when the disk slows the proxy down)."""
        while not self._stopping:
            time.sleep(STATUS_EVERY)
            if self._stopping:
                return
            try:
                status = self._command("status")
                waited = float(status.get("disk_wait", 0.0))
            except (ChildProxyError, ValueError, TypeError, OSError):
                return
            if status.get("unrecorded") and self.unrecorded is None:
                self.unrecorded = str(status["unrecorded"])
            if waited > self.disk_wait:
                self.disk_wait = waited
                self.disk_slowed_at = time.monotonic()

    def disk_slows(self) -> bool:
        """Whether recording made the relay wait for the disk in the last seconds."""
        return time.monotonic() - self.disk_slowed_at < DISK_NOTE

    # ------------------------------------------------------------ commands

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        line = bytearray()
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildProxyError(f"no answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1)
            if not chunk:
                raise ChildProxyError(self._died())
            line += chunk
            if line.endswith(b"\n") and b'"fatal"' in line:
                self._note(line)  # said on its own, before it stops: keep reading
                line = bytearray()
        value = json.loads(line)
        return value if isinstance(value, dict) else {}

    def _died(self) -> str:
        """How the child ended, with its last words and where the log is."""
        assert self.proc is not None
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return "the proxy process stopped answering"
        where = f" (see {self.log_file})" if self.log_file is not None else ""
        said = self._last_said()
        return f"the proxy process {_ended(code)}{': ' + said if said else ''}{where}"

    def _last_said(self) -> str:
        """The last line the child wrote on its stderr since it started (a
        traceback's ``ModuleNotFoundError: …``), or ''."""
        if self._err is None:
            return ""
        try:
            self._err.seek(self._err_start)
            text = self._err.read(1 << 16)
        except (OSError, ValueError):
            return ""
        lines = [ln.strip() for ln in text.decode("utf-8", "replace").splitlines()]
        return next((ln for ln in reversed(lines) if ln), "")[:300]

    def _note(self, line: bytes | bytearray) -> None:
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict) and value.get("fatal"):
                self.fatal = str(value["fatal"])

    def _last_words(self) -> None:
        """Read what the child said before exiting (nothing waits for a reply)."""
        proc = self.proc
        if proc is None or proc.stdout is None or not self._lock.acquire(blocking=False):
            return
        try:
            fd = proc.stdout.fileno()
            data = b""
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
            for line in data.splitlines():
                if b'"fatal"' in line:
                    self._note(line)
        except (OSError, ValueError):
            pass
        finally:
            self._lock.release()

    def _command(self, line: str, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        with self._lock:
            proc = self.proc
            if proc is None or proc.poll() is not None or proc.stdin is None:
                raise ChildProxyError("the proxy process is not running")
            try:
                proc.stdin.write(line.encode() + b"\n")
                proc.stdin.flush()
            except OSError as exc:
                raise ChildProxyError(f"the proxy process is not running: {exc}") from None
            return self._read_reply(timeout)

    def flush_recording(self) -> None:
        """Ask the proxy to write out everything it has taken so far."""
        with contextlib.suppress(ChildProxyError):
            self._command("flush")

    @property
    def record_file(self) -> Path | None:
        b = self.backing
        return b.path if b is not None and not b.temporary else None

    def start_recording(self, path: Path) -> None:
        try:
            reply = self._command(f"record {path}")
        except ChildProxyError as exc:
            raise OSError(str(exc)) from None
        if "error" in reply:
            raise OSError(str(reply["error"]))
        self.tap = _Recording(path)

    def stop_recording(self) -> Path | None:
        tap, self.tap = self.tap, None
        if tap is None:
            return None
        tap.active = False
        with contextlib.suppress(ChildProxyError):
            reply = self._command("unrecord", STOP_TIMEOUT)
            self.recorded_ids.update(int(c) for c in reply.get("conns") or ())
        return tap.path

    @property
    def recording(self) -> Path | None:
        if self.tap is not None and self.tap.active:
            return self.tap.path
        return self.record_file

    def problem(self) -> str | None:
        """Why live traffic stopped, if it did: the proxy exited, or the capture
        could not be read."""
        if self.proc is not None and not self._stopping and self.proc.poll() is not None:
            if self.fatal is None:
                self._last_words()
            if self.fatal is not None:
                return self.fatal
            where = f" (see {self.log_file})" if self.log_file is not None else ""
            return f"the proxy process {_ended(self.proc.returncode)}{where}"
        return super().problem()

    # ------------------------------------------------------------ stopping

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the proxy (its connections closed, its capture closed), then the
        follower; a temporary capture is removed. Idempotent."""
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.poll() is None and not self.addresses:
            proc.kill()  # it never got going: nothing of it to close cleanly
            proc.wait(5)
        if proc is not None and proc.poll() is None:
            try:
                self._command("stop", timeout)
            except (ChildProxyError, ValueError) as exc:
                self.error = f"stopping the proxy: {exc}"
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout, self._err):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self.tap = None
        self._unfollow()
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            atexit.unregister(self._remove_temp)


class FileFollow(_Following):
    """``h2scope view --follow FILE``: a capture another process is writing (say
    ``h2scope run --headless --record FILE``, elsewhere), followed like the
    live session's. There is no proxy to stop or to record with."""

    def __init__(self, path: Path, *, feed: LiveFeed) -> None:
        super().__init__(feed)
        self.path = Path(path)
        self.record_file: Path | None = None
        self.recording: Path | None = None

    def start(self) -> list[tuple[str, str]]:
        """Open the file (raises OSError, ValueError if it is not a capture)."""
        self._follow(SessionCapture(self.path))
        return [("following", str(self.path))]

    def start_recording(self, path: Path) -> None:
        raise OSError(f"{self.path} is recorded by the program writing it; ctrl+s saves "
                      "a copy of what it holds so far")

    def stop_recording(self) -> Path | None:
        return None

    def flush_recording(self) -> None:
        """(The writer is another program: it flushes on its own schedule.)"""

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self._unfollow()  # (the file is not temporary: it stays)
