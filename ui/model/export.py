"""Export from the UI: the capture exporters of proxy/capture, on a capture file.

The UI exports what a capture holds (``h2scope view FILE``, or the recording
of a live session), optionally one connection or stream — the same output as
``h2scope export``.
"""

from __future__ import annotations

from pathlib import Path

from proxy.capture.reader import CaptureReader
from proxy.capture.replay import replay_records

FORMATS = ("har", "pcapng", "text", "jsonl", "script")
EXTENSIONS = {"har": "har", "pcapng": "pcapng", "text": "txt", "jsonl": "jsonl",
              "script": "h2script"}


def export(capture: Path, fmt: str, out_path: Path, *, conn: int | None = None,
           stream: int | None = None) -> int:
    """Write ``capture`` as ``fmt`` to ``out_path``; returns what the exporter counted."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    with CaptureReader(capture) as reader:
        records = reader.records()
        if fmt == "pcapng":
            from proxy.capture.export_pcapng import write_pcapng

            with open(out_path, "wb") as bout:
                return write_pcapng(records, bout, conn=conn)
        with open(out_path, "w", encoding="utf-8") as out:
            replayed = replay_records(records)
            if fmt == "har":
                from proxy.capture.export_har import write_har

                return write_har(replayed, out, conn=conn, stream=stream)
            if fmt == "jsonl":
                from proxy.capture.export_text import write_jsonl

                return write_jsonl(replayed, out, conn=conn, stream=stream)
            if fmt == "script":
                from proxy.capture.script import write_script

                return write_script(replayed, out, conn=conn)
            from proxy.capture.export_text import write_text

            return write_text(replayed, out, conn=conn, stream=stream)
