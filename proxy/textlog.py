"""The one-line-per-frame text log, shared by the headless printer and the text export.

A live log (``h2scope run --headless``) and an exported one (``h2scope export
--format text``) read the same and diff cleanly because both come from here::

        0.004 #1   →     1 HEADERS [END_STREAM,END_HEADERS] len=31  GET example.test/
                          :method: GET
        0.009 #1   ←     1 DATA [END_STREAM] len=13  13 bytes  window conn=65522 stream=65522
"""

from __future__ import annotations

from proxy.observe.describe import block_lines, event_line, flags_text, frame_summary
from proxy.observe.events import (
    ConnectionFindingRaised,
    Desynced,
    Event,
    FrameObserved,
    PrefaceObserved,
    StreamStateChanged,
)

HEADER_INDENT = " " * 22


def prefix(conn_id: int, rel: float, arrow: str) -> str:
    """The columns every line starts with: seconds since the first event, the
    connection and a direction arrow (``*`` for connection lines)."""
    return f"{rel:9.3f} #{conn_id:<3} {arrow}"


def frame_line(conn_id: int, ev: FrameObserved, rel: float, *, truncated: bool = False) -> str:
    """One frame: stream, RFC type name, flags, length and the decoded gist."""
    f = ev.frame
    line = (f"{prefix(conn_id, rel, ev.direction.arrow)} {f.stream_id:>5} {f.type_name} "
            f"{flags_text(f) or '[]'} len={f.length}  {frame_summary(ev)}").rstrip()
    if truncated:
        line += "  (payload truncated when recorded)"
    return line


def event_lines(conn_id: int, ev: Event, rel: float, *, headers: bool = True,
                annotate: bool = False, quiet: bool = False,
                truncated: bool = False) -> list[str]:
    """The log lines for one observer event (none for unremarkable ones).

    ``headers`` lists each decoded header block under its frame (``annotate``
    adds every field's HPACK representation); ``quiet`` keeps only findings.
    """
    if isinstance(ev, FrameObserved):
        lines = [] if quiet else [frame_line(conn_id, ev, rel, truncated=truncated)]
        if headers and not quiet and ev.block is not None:
            lines.extend(block_lines(ev.block, annotate=annotate, indent=HEADER_INDENT))
        head = prefix(conn_id, rel, ev.direction.arrow)
        lines.extend(f"{head} ! {finding}" for finding in ev.findings)
        return lines
    if isinstance(ev, (Desynced, ConnectionFindingRaised)):
        return [f"{prefix(conn_id, rel, ev.direction.arrow)} ! {event_line(ev)}"]
    if quiet or isinstance(ev, (StreamStateChanged, PrefaceObserved)):
        return []
    text = event_line(ev)
    return [f"{prefix(conn_id, rel, ev.direction.arrow)} {text}"] if text else []
