"""stdout for the frame log, written by a thread: the event loop never waits for it.

The headless frame log is a side output. Written from the event loop, a
reader that stops reading (a paused ``| less``, a stuck log shipper) fills
the pipe, the write blocks, and the whole proxy stops with it: every client
hangs, and SIGINT/SIGTERM are never handled (PEP 475 retries the write after
each signal). :class:`BackgroundOutput` takes the text instead, encoded as
the stream would have encoded it, into a queue bounded in bytes; a thread
writes the queue to the file descriptor as soon as the reader takes it, so a
reader that keeps up sees each batch's lines at once. When the queue is full
the new lines are dropped and counted (design principle 5: the loss is
counted and shown, never silent): the run says so once when it starts and
once in its summary.

An error writing (a reader that went away: ``BrokenPipeError``; a full disk
under a redirect: ``ENOSPC``) is raised by the next :meth:`write` or by
:meth:`close`, once, as a blocking stream would have raised it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

QUEUE_LIMIT = 2 << 20
"""Bytes of frame log waiting for the reader before new lines are dropped."""
WRITE_SLICE = 4096
"""Bytes per write: PIPE_BUF, which a pipe takes whole or not at all, so what the
stop counts as not printed is off by one slice's lines at most (the slice under
way), and never short."""
STALLED_AFTER = 1.0
"""At the stop: seconds the reader may take nothing before the rest is given up."""
CLOSE_AT_MOST = 10.0
"""At the stop: seconds at most to wait for a reader that is still reading."""


class BackgroundOutput:
    """A write-only text stream over ``stream``'s file descriptor whose
    :meth:`write` never blocks; see the module's docstring."""

    def __init__(self, stream: TextIO, *, limit: int = QUEUE_LIMIT,
                 on_drop: Callable[[], object] | None = None) -> None:
        stream.flush()  # (what was printed before goes first)
        self.fd = stream.fileno()
        self.encoding = stream.encoding or "utf-8"
        self.errors = stream.errors or "strict"
        self.limit = limit
        self.on_drop = on_drop
        """Called once (from :meth:`write`) when lines are first dropped."""
        self.dropped_lines = 0
        """Lines not printed: the queue was full, or the reader was gone at the stop."""
        self.failed: OSError | None = None
        """What writing failed with; raised once to the caller."""
        self._raised = False
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._pending = 0
        """Bytes queued or being written."""
        self._inflight: memoryview | bytes = b""
        """What the thread is writing and has not written yet."""
        self._written = 0
        self._closing = False
        self._abandoned = False
        """Given up at the stop: the thread writes no further slice."""
        self._thread = threading.Thread(target=self._run, name="h2scope-stdout", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self.fd

    def write(self, text: str) -> int:
        """Queue ``text``, or drop it (counted) when the queue is full; raises what
        an earlier write failed with, once."""
        self._raise_failure()
        data = text.encode(self.encoding, self.errors)
        first_drop = False
        with self._cond:
            if self.failed is None:
                if self._pending and self._pending + len(data) > self.limit:
                    first_drop = not self.dropped_lines
                    self.dropped_lines += text.count("\n") or 1
                else:
                    self._chunks.append(data)
                    self._pending += len(data)
                    self._cond.notify()
        if first_drop and self.on_drop is not None:
            self.on_drop()
        return len(text)

    def flush(self) -> None:
        """Nothing to do (the thread writes as soon as it can); raises a failure, once."""
        self._raise_failure()

    def close(self, *, stalled_after: float = STALLED_AFTER,
              at_most: float = CLOSE_AT_MOST) -> None:
        """Let the thread write what is queued while the reader keeps taking it (at
        most ``at_most`` seconds; a reader that took nothing for ``stalled_after``
        seconds is given up on): what is left is counted in :attr:`dropped_lines`.
        Raises what writing failed with, if that was not raised yet."""
        deadline = time.monotonic() + at_most
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            last, since = self._written, time.monotonic()
            while self._pending and self.failed is None:
                now = time.monotonic()
                if self._written != last:
                    last, since = self._written, now
                if now - since >= stalled_after or now >= deadline:
                    break
                self._cond.wait(min(0.05, stalled_after))
            if self._pending and self.failed is None:
                left = sum(chunk.count(b"\n") for chunk in self._chunks)
                left += bytes(self._inflight).count(b"\n")
                self.dropped_lines += left
                self._chunks.clear()
                self._abandoned = True
                # (the thread may still be blocked in its write: it is a daemon)
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self.failed is not None and not self._raised:
            self._raised = True
            raise self.failed

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._chunks and not self._closing:
                    cond.wait()
                if not self._chunks:
                    return
                data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
                self._chunks.clear()
                self._inflight = data
            view = memoryview(data)
            try:
                while view:
                    with cond:
                        if self._abandoned:
                            return
                        # (this slice too: blocked in its write when the stop gives
                        # the reader up, it is printed only if the reader reads
                        # before h2scope exits, so it counts as not printed — at
                        # worst one slice's lines counted that did get out, never
                        # lines lost uncounted)
                        self._inflight = view
                    n = os.write(self.fd, view[:WRITE_SLICE])
                    view = view[n:]
                    with cond:
                        self._pending -= n
                        self._written += n
                        cond.notify_all()
            except OSError as exc:
                with cond:
                    self.failed = exc
                    self._chunks.clear()
                    self._pending = 0
                    self._inflight = b""
                    cond.notify_all()
                return


def background(stream: TextIO, *, on_drop: Callable[[], object] | None = None
               ) -> TextIO | BackgroundOutput:
    """``stream`` behind a :class:`BackgroundOutput` when something reads it at its
    own pace (a pipe, a terminal, a socket such as journald's); as it is when no
    reader can hold it up (a regular file, /dev/null: written at once, as before,
    with no thread to hand each batch to) or it has no descriptor (in memory)."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        st = os.fstat(stream.fileno())
        if stat.S_ISREG(st.st_mode) or (stat.S_ISCHR(st.st_mode) and _is_devnull(st)):
            return stream
        return BackgroundOutput(stream, on_drop=on_drop)
    return stream


def _is_devnull(st: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return st.st_rdev == null.st_rdev
