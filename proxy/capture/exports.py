"""One entry point to every capture export, for ``h2scope export`` and the UI's ``x``.

:func:`write_export` turns a capture's records into one format: ``pcapng``
from the raw records, the others from the observer's events over them
(architecture principle 6). ``conn``, ``stream`` and a compiled filter select
what goes out, where the format allows it (:data:`SELECTS`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from certs.files import create_private, is_system_link
from proxy.capture.reader import Record
from proxy.capture.replay import Observers, replay_observer, replay_records
from proxy.filter import Filter
from proxy.filter_context import StreamHeaders, all_stream_headers
from proxy.textio import ESCAPE_BYTES

FORMATS = ("har", "pcapng", "text", "jsonl", "script")
BINARY_FORMATS = frozenset({"pcapng"})
FILTERED_FORMATS = frozenset({"text", "jsonl"})
"""The formats a filter applies to: one line or object per frame."""
EXTENSIONS = {"har": "har", "pcapng": "pcapng", "text": "txt", "jsonl": "jsonl",
              "script": "h2script"}


def open_private(path: str | os.PathLike[str], binary: bool) -> IO[Any]:
    """Create (or truncate) ``path`` mode 0600 for writing: an export holds what its
    capture holds (cookies, tokens, bodies), so it is as private as the capture."""
    fd = create_private(path)
    return os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8",
                                                        errors=ESCAPE_BYTES)


def write_export(fmt: str, records: Iterator[Record], out: Any, *, conn: int | None = None,
                 stream: int | None = None, keep: Filter | None = None,
                 protoset: Any = None, observers: Observers | None = None,
                 stream_headers: Mapping[tuple[int, int], StreamHeaders] | None = None,
                 annotate: bool = False, time: str = "relative") -> int:
    """Write ``records`` as ``fmt`` to ``out`` (binary for pcapng, text otherwise);
    returns what the exporter counted (frames, entries, packets). ``stream`` is
    ignored by pcapng and script, ``keep`` and ``protoset`` (gRPC messages named
    under their DATA frames) by every format but text and jsonl; ``observers``
    is what the reader of ``records`` reports damage to; ``stream_headers`` the
    whole capture's stream headers for ``keep`` (:func:`filter_context`); ``annotate``
    (text) each header field's HPACK encoding; ``time`` (text) the time column.
    Raises ValueError for an unknown format, LookupError when ``script`` finds
    no such connection."""
    if fmt == "pcapng":
        from proxy.capture.export_pcapng import write_pcapng

        return write_pcapng(records, out, conn=conn)
    replayed = replay_records(records, observers=observers)
    if fmt == "har":
        from proxy.capture.export_har import write_har

        return write_har(replayed, out, conn=conn, stream=stream)
    if fmt == "jsonl":
        from proxy.capture.export_text import write_jsonl

        return write_jsonl(replayed, out, conn=conn, stream=stream, keep=keep,
                           protoset=protoset, stream_headers=stream_headers)
    if fmt == "script":
        from proxy.capture.script import write_script

        return write_script(replayed, out, conn=conn)
    if fmt == "text":
        from proxy.capture.export_text import write_text

        return write_text(replayed, out, conn=conn, stream=stream, keep=keep,
                          protoset=protoset, stream_headers=stream_headers, annotate=annotate,
                          time=time)
    raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")


def filter_context(path: str | os.PathLike[str], keep: Filter | None,
                   ) -> dict[tuple[int, int], StreamHeaders] | None:
    """For a filter that looks at streams' headers (``status:``, ``method:``,
    ``path:``), every stream's whole header lists in the capture at ``path`` (one
    reading ahead of the export's), so the request HEADERS of a stream answered
    404 match ``status:404`` as they do in the UI; None when not needed."""
    if keep is None or not keep.needs_stream_headers:
        return None
    return all_stream_headers(replay_observer(path))


class ReplacedFile:
    """An output file (``export -o``, ``replay --record``) written to a private
    temporary file beside it and renamed over it only when the command succeeds:
    one that fails leaves the file as it was (a file of the user's is never lost
    to an error). It must not be the capture read (UsageError)."""

    def __init__(self, target: Path, source: Path, what: str = "-o",
                 doing: str = "exported") -> None:
        from proxy.cli import UsageError

        with contextlib.suppress(OSError):
            if target.exists() and os.path.samefile(target, source):
                raise UsageError(f"{what} {target} is the capture being {doing}: writing "
                                 "there would destroy it; give another file")
        self.target = target
        self.direct = (target.exists() and not target.is_file()) or is_system_link(target)
        """A device or pipe (``/dev/null``, a FIFO), or a link of the system's
        (``/dev/stdout`` to wherever the shell redirected it): written as it is.
        Renamed over, ``/dev/stdout`` itself would be replaced (as root) and the
        redirect left empty."""
        if self.direct:
            self.temp = target
        else:
            # A name no one can guess and a file made here (O_EXCL), so that
            # nothing planted beside the target (a link) is written through.
            try:
                fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                            suffix=".part")
            except OSError as exc:
                hint = f" (create the directory {target.parent} first)" \
                    if isinstance(exc, FileNotFoundError) else ""
                raise UsageError(f"{what}: cannot write {target}: {exc.strerror or exc}"
                                 f"{hint}") from None
            os.close(fd)
            self.temp = Path(name)
        self.committed = False

    def commit(self) -> None:
        """Rename the finished file over the target. Raises UsageError when the
        target cannot be replaced (the finished file is removed, the target kept)."""
        if not self.direct:
            try:
                os.replace(self.temp, self.target)
            except OSError as exc:
                self.discard()
                raise _cannot_replace(self.target, exc) from None
        self.committed = True

    def discard(self) -> None:
        if not self.committed and not self.direct:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)


def _cannot_replace(target: Path, exc: OSError) -> Exception:
    from proxy.cli import UsageError

    hint = ""
    with contextlib.suppress(OSError):
        if exc.errno in (errno.EPERM, errno.EACCES) and \
                os.stat(target.parent).st_mode & stat.S_ISVTX and \
                os.lstat(target).st_uid != os.geteuid():
            hint = (" (it belongs to another user, in a directory where only a file's owner "
                    "may replace it: choose another name)")
    return UsageError(f"cannot replace {target}: {exc.strerror or exc}{hint}")
