"""``h2scope replay``: send a capture's (or a frame script's) client side to a server.

Exit status: 0 when every replayed stream matches the original (status,
response header names, body length and SHA-256, reset), 3 when any differs or
the server ended a connection with an error GOAWAY — usable in CI — 1 when
the replay could not run, 2 for usage errors. See docs/replay.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy.commands.progress import Progress
from proxy.words import count

EXIT_DIFFERS = 3

EPILOG = """\
examples:
  h2scope replay session.h2scope --target https://staging.example:8443
  h2scope replay session.h2scope --target https://127.0.0.1:8443 --insecure --speed 0
  h2scope replay session.h2scope --target http://127.0.0.1:8080 --mode reencode \\
      --authority staging.example --record replay.h2scope
  h2scope export session.h2scope --format script --conn 3 -o conn3.yaml
  $EDITOR conn3.yaml && h2scope replay conn3.yaml --target https://staging.example
  h2scope replay session.h2scope --target https://staging.example --values --ignore x-request-id
      compare header and trailer values too, but not x-request-id (nor date, etag, ...)

exit status: 0 all streams match, 3 some differ or a server sent an error GOAWAY the
recording does not have, 1 the replay failed, 2 usage error, 130/143 stopped by SIGINT/SIGTERM.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "replay", allow_abbrev=False, parents=[common],
        help="replay the client side of recorded connections against a server",
        description="Replay the client side of a capture (or a YAML frame script) against a "
        "server, observe it like live traffic, and compare each stream with the original.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, metavar="FILE|SCRIPT",
                   help="a capture file (plain or gzip) or a frame script (YAML)")
    p.add_argument("--target", required=True, metavar="URL",
                   help="https://host[:port] (TLS, ALPN h2) or http://host[:port] (h2c, prior "
                   "knowledge)")
    p.add_argument("--conn", type=int, metavar="ID",
                   help="replay only connection ID (default: every HTTP/2 connection, in turn)")
    p.add_argument("--speed", type=float, default=1.0, metavar="S",
                   help="divide the recorded gaps between client frames by S (default 1: "
                   "real time; 2 twice as fast; 0: no waiting at all — a frame still waits "
                   "for what the recorded client had received before it: the server's "
                   "SETTINGS, response headers, data; the replay ends when every stream "
                   "has, or has had as much of its response as was recorded)")
    p.add_argument("--mode", choices=("verbatim", "reencode"), default="verbatim",
                   help="verbatim: the recorded bytes exactly (default); reencode: rebuild "
                   "each request with a fresh HPACK encoder (an h2 client endpoint)")
    p.add_argument("--authority", metavar="HOST[:PORT]",
                   help="reencode: send this :authority instead of the recorded one")
    p.add_argument("--record", type=Path, metavar="OUT", help="record the replay to OUT")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the server's certificate")
    p.add_argument("--upstream-ca", type=Path, metavar="FILE",
                   help="trust this CA (PEM) for the server's certificate")
    p.add_argument("--client-certs", type=Path, metavar="PATH",
                   help="client certificate for a server that asks for one (mutual TLS): a "
                   "PEM file with the certificate and its unencrypted key, or a directory of "
                   "HOST.pem files")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="stop waiting for a server that sent nothing for this long (default 10)")
    p.add_argument("--sslkeylogfile", type=Path, metavar="FILE",
                   help="append NSS key-log lines for the TLS session (default: "
                   "$SSLKEYLOGFILE)")
    compare = p.add_argument_group("comparison (as h2scope diff's)")
    compare.add_argument("--values", action="store_true",
                         help="compare response header and trailer values too (names that "
                         "change by themselves, such as date, are still left out)")
    compare.add_argument("--ignore", default="", metavar="NAMES",
                         help="more header names to leave out, comma-separated")
    compare.add_argument("--strict", action="store_true",
                         help="leave nothing out: compare date, etag, set-cookie, … as well")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every frame of the replay, both directions (like h2scope run "
                   "--headless)")
    p.set_defaults(func=run)


class _Progress(Progress):
    """What a replay is doing: loading the capture, then each connection."""

    def loading(self, _position: int, records: int) -> None:
        self.show(f"replay: loading, {records} records")

    def connection(self, n: int, total: int) -> None:
        if total > 1:
            self.show(f"replay: connection {n} of {total}", now=True)


def _authority_note(source: Any, target_host: str, mode: str) -> str | None:
    """When the recorded requests name another host than ``--target``'s: a server
    that routes by ``:authority`` answers for the recorded one (a CDN, a virtual
    host), so "all match" may have tested the recorded site again."""
    hosts: dict[str, str] = {}
    for plan in source.plans:
        for o in plan.original or ():
            if o.authority:
                host = urlsplit(f"//{o.authority}").hostname or ""
                hosts.setdefault(host.lower(), o.authority)
    target_host = target_host.lower().rstrip(".")
    other = sorted(a for h, a in hosts.items() if h.rstrip(".") != target_host)
    if not other:
        return None
    said = ", ".join(other[:3]) + (f" (+{len(other) - 3} more)" if len(other) > 3 else "")
    how = ("--authority HOST sends the target's instead" if mode == "reencode" else
           "--mode reencode --authority HOST sends the target's instead")
    return (f"the recorded requests say :authority {said}, not {target_host}: they go to "
            f"the target as recorded, and a server that routes by :authority (a CDN, a "
            f"virtual host) answers for {other[0]}; {how}")


def run(args: argparse.Namespace) -> int:
    import os

    from proxy.capture.reader import CaptureFormatError
    from proxy.cli import EXIT_FAILURE, UsageError
    from proxy.replay.client import ReplayError, ReplayOptions, parse_target
    from proxy.replay.compare import volatile_names
    from proxy.replay.script_frames import (
        ScriptError,
        is_script,
        load_script,
        locate_in_file,
    )
    from proxy.replay.session import run_replay
    from proxy.replay.source import ReplaySource, load_capture, plan_from_script

    try:
        target = parse_target(args.target)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    extra = urlsplit(args.target)
    if extra.path not in ("", "/") or extra.query:
        print(f"h2scope replay: note: --target's path {extra.path or ''}"
              f"{'?' + extra.query if extra.query else ''} is not used: each request keeps "
              "its recorded :path (the target names the server only)", file=sys.stderr)
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not "
                         f"{args.timeout:g}")
    if not math.isfinite(args.speed) or args.speed < 0:
        raise UsageError(f"--speed must be 0 (no waiting) or a positive number, not "
                         f"{args.speed:g}")
    if args.authority and args.mode != "reencode":
        raise UsageError("--authority needs --mode reencode (verbatim sends the recorded "
                         "HPACK bytes unchanged)")
    if not args.file.exists():
        raise UsageError(f"no such file: {args.file}")
    from proxy.capture.exports import ReplacedFile

    # (written beside it, renamed when the replay ran: one that could not run leaves
    # a file that was there as it was)
    recording = None if args.record is None else \
        ReplacedFile(args.record, args.file, "--record", "replayed")
    if args.upstream_ca is not None:
        from proxy.config import ca_file_problem

        problem = ca_file_problem(args.upstream_ca)
        if problem:
            raise UsageError(f"--upstream-ca: {problem}")
    if args.client_certs is not None:
        from proxy.net.client_certs import client_cert_problem

        problem = client_cert_problem(args.client_certs)
        if problem:
            raise UsageError(f"--client-certs: {problem}")
    keylog = args.sslkeylogfile or (Path(os.environ["SSLKEYLOGFILE"])
                                    if os.environ.get("SSLKEYLOGFILE") else None)
    if keylog is not None:
        from certs.files import key_log_problem

        problem = key_log_problem(keylog)  # (and made 0600: it holds keys)
        if problem:
            raise UsageError(problem)
    options = ReplayOptions(mode=args.mode, speed=args.speed, insecure=args.insecure,
                            upstream_ca=args.upstream_ca, client_certs=args.client_certs,
                            authority=args.authority,
                            idle_timeout=args.timeout, sslkeylogfile=keylog)
    progress = _Progress()
    source: ReplaySource
    try:
        if is_script(args.file):
            if args.conn is not None:
                raise UsageError(f"--conn chooses a connection of a capture; {args.file} is a "
                                 "frame script, which holds one connection: leave --conn out")
            try:
                source = plan_from_script(load_script(args.file))
            except ScriptError as exc:
                exc = locate_in_file(exc, args.file)
                if exc.line is None:
                    raise
                raise UsageError(f"{args.file}:{exc.line}: {exc}") from None
        else:
            source = load_capture(args.file, conn=args.conn, progress=progress.loading,
                                  fields=args.values)
    except (ScriptError, CaptureFormatError, LookupError) as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    finally:
        progress.done()
    for note in source.notes:
        print(f"h2scope replay: note: {note}", file=sys.stderr)
    if not args.authority:
        other = _authority_note(source, extra.hostname or "", args.mode)
        if other:
            print(f"h2scope replay: note: {other}", file=sys.stderr)

    from proxy.observe import huffman

    # (else the first Huffman-coded block a script sends is decoded, to observe it,
    # before the next frame goes out: a 50-100 ms gap where the script says none)
    huffman.prepare()
    on_batch = None
    if args.verbose:
        from proxy.headless import HeadlessPrinter

        on_batch = HeadlessPrinter(sys.stdout).handle
    try:
        report = run_replay(source, target, options,
                            volatile=volatile_names(args.strict, args.ignore), values=args.values,
                            record=None if recording is None else recording.temp,
                            on_batch=on_batch, on_connection=progress.connection)
        ran = not (report.failed and not any(c.replayed for c in report.connections))
        if recording is not None and ran:
            recording.commit()
            report = dataclasses.replace(report, record=args.record)
        elif recording is not None:
            report = dataclasses.replace(report, record=None)
    except ReplayError as exc:
        progress.done()
        print(f"h2scope replay: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        if recording is None or exc.filename not in (str(recording.temp), str(args.record)):
            raise
        progress.done()
        raise UsageError(f"--record: cannot write {args.record}: {exc.strerror}") from None
    finally:
        if recording is not None:
            recording.discard()
    progress.done()
    nothing = _nothing_compared(report)
    _print_report(report, target.url, args.mode, source.notes, nothing, args.timeout)
    if not ran:
        return EXIT_FAILURE
    if nothing:
        print("h2scope replay: no stream was compared: exit status 1", file=sys.stderr)
        return EXIT_FAILURE
    if report.differs or report.refused:
        if report.refused and not report.differs:  # (the summary line says all match)
            missing = any(c.result.goaway_missing for c in report.connections)
            print("h2scope replay: exit status 3: " + (
                "a connection's GOAWAY is not the recorded one (see above)" if missing else
                "the server ended a connection with a GOAWAY error the recording does not "
                "have (see the error above)"), file=sys.stderr)
        return EXIT_DIFFERS
    if report.failed:
        # Part of the recording was not sent, or the connection broke: whatever
        # came back is no proof the replay passed.
        print("h2scope replay: the replay did not complete (see the error above): exit "
              f"status {EXIT_FAILURE}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def _nothing_compared(report: Any) -> bool:
    """A capture's replay that compared no stream although the recording has requests
    (each skipped: blocks that would not encode, a damaged capture): no proof of
    anything, so no pass."""
    compared = [c for c in report.connections if c.diffs is not None]
    return bool(compared) and not any(c.diffs for c in compared) and (any(
        e.get("type") == "HEADERS" for c in compared for e in c.result.plan.entries)
        or any(c.result.plan.unsent for c in compared))


def _print_report(report: Any, url: str, mode: str, source_notes: tuple[str, ...] = (),
                  nothing_compared: bool = False, timeout: float = 10.0) -> None:
    from proxy.replay.compare import report_lines

    out = sys.stdout
    same = differ = 0
    said: dict[str, str] = {}  # (a note every connection repeats: said in full once)
    for c in report.connections:
        r = c.result
        plan = r.plan
        origin = f"connection {plan.conn_id}" if plan.conn_id is not None else "script"
        own = f", +{r.extra_frames} of its own: window top-ups, ACKs" if r.extra_frames else ""
        out.write(f"{origin} → {url} ({mode}, {count(r.sent_frames, 'frame')} sent{own})\n")
        for note in (*plan.notes, *r.skipped):
            if note in said:
                out.write(f"  note: as for {said[note]} above\n")
            else:
                said[note] = origin
                out.write(f"  note: {note}\n")
        if r.error:
            out.write(f"  error: {r.error}\n")
        if r.goaway_missing:
            out.write(f"  DIFFERS  the recorded server ended the connection with GOAWAY "
                      f"{plan.server_goaway_text}; this one sent none (h2scope waited "
                      "--timeout after its last frame)\n")
        elif r.goaway and r.refused:
            was = f" (the recorded server sent {plan.server_goaway})" \
                if plan.server_goaway else " (the recorded server sent none)" \
                if plan.original is not None else ""
            out.write(f"  error: the server ended the connection: GOAWAY {r.goaway}{was}\n")
        elif r.goaway:
            out.write(f"  same     the server ended the connection with GOAWAY {r.goaway}, as "
                      "recorded\n")
        if r.timed_out:
            which = "" if not r.still_open else " (" + (
                f"stream {r.still_open[0]}" if len(r.still_open) == 1 else
                "streams " + ", ".join(map(str, r.still_open[:5]))
                + (", …" if len(r.still_open) > 5 else "")) + ")"
            out.write(f"  note: stopped waiting: the server sent nothing for {timeout:g} s "
                      f"(--timeout) and had not ended every stream{which}\n")
        for f in r.findings[:5]:  # (what h2scope saw wrong in the exchange; -v shows all)
            where = f" (stream {f.stream_id})" if f.stream_id else ""
            out.write(f"  ! {f.severity.name} {f.code} ({f.rfc}){where}: {f.message}\n")
        if len(r.findings) > 5:
            out.write(f"  ! … {len(r.findings) - 5} more (-v shows every frame)\n")
        # (the server's COMPRESSION_ERROR, or the blocks h2scope itself could not
        # decode under the new server's table size: its GOAWAY may be lost in the reset)
        if mode == "verbatim" and (r.refused or r.error) and (
                r.goaway_error == "COMPRESSION_ERROR"
                or any(f.code == "hpack-error" for f in r.findings)):
            out.write("  hint: the server could not decode the recorded HPACK blocks (its "
                      "header table is smaller than the recorded server's?): --mode "
                      "reencode encodes each block afresh for it\n")
        if c.diffs is None:
            for s in c.replayed:
                body = f"{s.body_length} bytes"
                reset = f", reset {s.reset}" if s.reset else ""
                out.write(f"  {s.label}: {s.status or 'no response'}, {body}{reset}\n")
            continue
        if c.diffs:
            out.write("\n".join(report_lines(list(c.diffs))) + "\n")
        for d in c.diffs:
            if d.matches:
                same += 1
            else:
                differ += 1
    if report.record is not None:
        out.write(f"replay recorded to {report.record}\n")
    if nothing_compared:
        out.write("no stream compared: none of the recording's requests was sent and "
                  "answered (see the notes above)\n")
    if same or differ:
        n = same + differ
        verdict = ("all match" if n > 1 else "it matches") if not differ else (
            f"{differ} differ" if differ > 1 else ("it differs" if n == 1 else "1 differs"))
        bad = [note for note in source_notes if note.startswith("damaged record")]
        torn = sum("torn last record" in note for note in bad)
        damaged = len(bad) - torn
        # (on stdout with the verdict: a CI log shows the match was of part of a capture)
        of = f" (of a damaged capture: {damaged} damaged record{'s' * (damaged > 1)} " \
            "skipped, see the notes)" if damaged else \
            " (of a capture cut short: its torn last record skipped)" if torn else ""
        out.write(f"{n} stream{'' if n == 1 else 's'} compared: {verdict}{of}\n")
    out.flush()
