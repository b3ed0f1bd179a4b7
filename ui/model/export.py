"""Export from the UI: the capture exporters of proxy/capture, on a capture file.

The UI exports what a capture holds (``h2scope view FILE``, or the recording
of a live session), optionally one connection or stream, and for text and
JSON Lines the frames the view's filter keeps — the same output as
``h2scope export [--conn] [--stream] [--filter]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from proxy.capture.exports import (
    EXTENSIONS,
    FILTERED_FORMATS,
    FORMATS,
    filter_context,
    open_private,
    write_export,
)
from proxy.capture.reader import CaptureReader, Record
from proxy.capture.replay import Observers
from proxy.filter import Filter

__all__ = ["EXTENSIONS", "FILTERED_FORMATS", "FORMATS", "ExportCancelled", "export",
           "replaced_note"]


class ExportCancelled(Exception):
    """The export was given up (the UI quit while it ran)."""


def export(capture: Path, fmt: str, out_path: Path, *, conn: int | None = None,
           stream: int | None = None, keep: Filter | None = None,
           cancelled: Callable[[], bool] | None = None) -> int:
    """Write ``capture`` as ``fmt`` to ``out_path``; returns what the exporter counted.
    ``keep`` (the view's filter) selects the frames of a text or jsonl export.
    ``cancelled`` is asked as records are read: when it says so, the export stops,
    ``out_path`` is removed and :class:`ExportCancelled` raised."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    observers = Observers()
    try:
        with CaptureReader(capture, on_problem=observers.reporter()) as reader, \
                open_private(out_path, fmt == "pcapng") as out:
            from ui.model import body

            records: Iterator[Record] = reader.records()
            if cancelled is not None:
                records = _until(records, cancelled)
            return write_export(fmt, records, out, conn=conn, stream=stream, keep=keep,
                                protoset=body.SCHEMA, observers=observers,
                                stream_headers=filter_context(capture, keep))
    except ExportCancelled:
        out_path.unlink(missing_ok=True)  # (half a file would pass for an export)
        raise


def _until(records: Iterator[Record], cancelled: Callable[[], bool]) -> Iterator[Record]:
    for i, rec in enumerate(records):
        if not i & 0xFFF and cancelled():
            raise ExportCancelled
        yield rec


def replaced_note(path: Path) -> str:
    """What to add to a "saved to" message when ``path`` holds a file already (it is
    replaced, as editors do, but the user is told)."""
    return " (it replaced the file that was there)" if path.is_file() else ""
