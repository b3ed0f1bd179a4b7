"""``h2scope check``: what a capture holds and whether it broke a rule, for scripts and CI.

The capture is decoded afresh (as ``view`` and ``export`` do) and summarized as
a headless run summarizes itself when it stops (:mod:`proxy.summary`):
connections, frames, streams, resets, findings by severity, code and RFC
section with their first place, and the errors h2scope recorded. The exit
status is 3 when a finding of ``--fail-on`` severity (default: error) or worse
is in it, 0 otherwise: a recording made anywhere can gate a pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  h2scope check session.h2scope                      exit 3 if an error-level finding is in it
  h2scope check session.h2scope --fail-on warning    ... or a warning
  h2scope check session.h2scope --fail-on none       only the summary, exit 0
  h2scope check session.h2scope --json | jq '.findings[] | select(.severity == "error")'

exit status: 0 no finding at or above --fail-on, 3 otherwise, 2 for a file
that is not a capture (or a bad option), 1 when the output could not be written
(a full disk). Findings are listed in
docs/findings.md.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "check",
        allow_abbrev=False,
        parents=[common],
        help="summarize a capture's connections and findings; exit 3 on protocol errors",
        description="Decode a capture and summarize it: connections, frames, streams, "
        "resets, and every finding by severity, code and RFC section. The exit status "
        "says whether findings of --fail-on severity or worse were seen.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="the capture file (plain or gzip); - reads it "
                   "from stdin (ssh host cat s.h2scope.gz | h2scope check -)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object (for CI dashboards and jq)")
    p.add_argument("--fail-on", choices=("error", "warning", "info", "none"), default="error",
                   help="the severity from which findings make the exit status 3 "
                   "(default: error; none: never)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if str(args.file) != "-":
        return _check(args, args.file)
    import os
    import shutil
    import tempfile

    # A capture is read with seeks (and may be gzip): stdin goes to a private file.
    fd, name = tempfile.mkstemp(prefix="h2scope-check-", suffix=".h2scope")
    try:
        with os.fdopen(fd, "wb") as tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp)
        return _check(args, Path(name), shown="(stdin)")
    finally:
        os.unlink(name)


def _check(args: argparse.Namespace, path: Path, shown: str | None = None) -> int:
    from proxy.capture.format import RecordType
    from proxy.capture.reader import BadRecord, Record
    from proxy.capture.replay import Observers, replay_records, upgrade_request
    from proxy.cli import UsageError
    from proxy.commands.export import open_capture
    from proxy.commands.progress import Progress, counted
    from proxy.events import Batch
    from proxy.observe.findings import Severity
    from proxy.summary import EXIT_FINDINGS, NOT_RELAYED, RunSummary

    problems: list[BadRecord] = []
    observers = Observers()
    try:
        reader = open_capture(path, problems, observers)
    except UsageError as exc:  # (stdin's private copy is no name the user gave)
        if shown is None:
            raise
        raise UsageError(str(exc).replace(str(path), shown)) from None
    summary = RunSummary()
    counted_as: dict[int, str] = {}
    """Each open connection's protocol as counted (its CONNECTION record's)."""
    incomplete: list[str] = []
    damage: list[Record] = []
    rebuilt: list[int] = []
    """Connections a net log without bytes rebuilt (their blocks are h2scope's encoding)."""
    progress = Progress()
    size = path.stat().st_size
    with reader:
        records = counted(reader.records(), progress, "check", lambda: reader.position, size)
        for item in replay_records(records, close_open=True, observers=observers):
            rec = item.record
            if rec.type == RecordType.CONNECTION:
                meta = rec.json()
                if meta.get("rebuilt"):
                    rebuilt.append(rec.conn_id)
                summary.connections += 1
                counted_as[rec.conn_id] = str(meta.get("protocol") or NOT_RELAYED)
                summary.protocols[counted_as[rec.conn_id]] += 1
            elif rec.type == RecordType.CLOSE:
                # (cut: the source ended, not the connection — its open streams are
                # excerpts, not hung)
                summary.connection_closed(rec.conn_id, rec.t,
                                          excerpt=bool(rec.json().get("cut")))
                became = rec.json().get("protocol")  # (an upgrade: counted as what it
                was = counted_as.pop(rec.conn_id, None)  # became, as the live summary does)
                if isinstance(became, str) and was is not None and became != was:
                    summary.protocols[was] -= 1
                    if not summary.protocols[was]:
                        del summary.protocols[was]
                    summary.protocols[became] += 1
                for error in rec.json().get("errors", ()):
                    if isinstance(error, dict):
                        summary.errors[str(error.get("stage") or "?")] += 1
            elif rec.type == RecordType.H2C_UPGRADE:
                summary.upgraded(rec.conn_id, upgrade_request(rec.json()))
            elif rec.type == RecordType.LOST and rec.conn_id:
                incomplete.append(f"#{rec.conn_id}: {rec.json().get('reason')}")
            elif rec.type == RecordType.LOST:  # (0: damage, listed below; or a record of
                damage.append(rec)  # it kept by a copy of a damaged capture: export)
            if item.events:
                summary.handle(Batch(conn_id=rec.conn_id, t=rec.t, events=item.events))
    progress.done()
    reported = {p.offset for p in problems}
    incomplete += [str(rec.json().get("reason")) for rec in damage if rec.offset not in reported]
    if not reader.clean_end:
        incomplete.append("the capture has no END record: the recording was killed, or the "
                          "file cut short (or is still being written); connections open at "
                          "its end are judged as excerpts")
    out = sys.stdout
    worst = summary.worst()
    failed = args.fail_on != "none" and worst is not None \
        and worst >= Severity[args.fail_on.upper()]
    # (a check an internal error left incomplete cannot pass: 1, a runtime failure)
    status = EXIT_FINDINGS if failed else 1 if summary.missed else 0
    if args.json:
        doc = {"file": shown or str(path), **summary.as_dict(),
               "damaged_records": [str(p) for p in problems], "incomplete": incomplete,
               "rebuilt_connections": rebuilt, "exit_status": status}
        out.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        return status
    out.write(f"{shown or path}\n")
    for line in summary.lines():
        out.write(f"  {line}\n")
    if rebuilt:
        which = "every connection" if len(rebuilt) == summary.connections else \
            "connection" + "s" * (len(rebuilt) > 1) + " " + ", ".join(f"#{c}" for c in rebuilt)
        out.write(f"  note: {which} rebuilt from a net log without bytes: HPACK sizes and "
                  "frame lengths are of h2scope's own encoding, not the wire's\n")
    for problem in problems:
        out.write(f"  damaged record skipped: {problem}\n")
    for text in incomplete:  # (an import's lost packets, a TLS record it could not open)
        out.write(f"  incomplete: {text}\n")
    if failed:
        assert worst is not None
        out.write(f"exit status {EXIT_FINDINGS}: {worst.name.lower()} findings "
                  f"(--fail-on {args.fail_on})\n")
        return EXIT_FINDINGS
    if status:
        out.write("exit status 1: the check is incomplete (an internal error; see above)\n")
    return status
