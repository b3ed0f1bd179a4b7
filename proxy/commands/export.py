"""``h2scope export``: turn a capture into HAR, pcapng, text, JSON Lines or a frame script.

Every format re-runs the observer over the capture's raw frames (architecture
principle 6), so an export reflects the current decoder. Text formats go to
stdout by default (or ``-o -``); binary formats need ``-o FILE``. Long exports
show progress on stderr when it is a terminal, and are quiet otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from proxy.capture.exports import (
    BINARY_FORMATS,
    FILTERED_FORMATS,
    FORMATS,
    ReplacedFile,
    filter_context,
    open_private,
    write_export,
)
from proxy.capture.format import RecordType
from proxy.capture.reader import BadRecord, CaptureFormatError, CaptureReader, Record
from proxy.capture.replay import Observers
from proxy.commands.progress import Progress, counted
from proxy.filter import Filter
from proxy.textlog import TIME_FORMATS

_PER_CONNECTION = frozenset(int(t) for t in (RecordType.CONNECTION, RecordType.FRAME,
                                              RecordType.RAW, RecordType.HTTP1,
                                              RecordType.H2C_UPGRADE, RecordType.CLOSE))

EPILOG = """\
examples:
  h2scope export session.h2scope --format har -o session.har
  h2scope export session.h2scope --format pcapng -o session.pcapng && wireshark session.pcapng
  h2scope export session.h2scope --format jsonl --conn 3 | jq 'select(.type=="HEADERS")'
  h2scope export session.h2scope --format text --conn 3 --stream 5
  h2scope export session.h2scope --format text --filter 'finding:any or status:5xx'
  h2scope export session.h2scope --format script --conn 3 -o conn3.yaml

pcapng is binary: -o FILE, or stdout sent to a file or a pipe (not a
terminal). script takes one connection: --conn, else the first HTTP/2 one.
Exports are created mode 0600, like the capture.
A gzip-compressed capture (session.h2scope.gz) is read as is. Damaged records
are reported on stderr and skipped; everything intact is exported.
Exit status: 0 done, 1 the output could not be written (a full disk), 2 usage
error (no such file, not a capture, a --conn or --stream the capture does not
have: the message lists what it has).
See docs/export.md.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export",
        allow_abbrev=False,
        parents=[common],
        help="export a capture as HAR, pcapng, text, JSON Lines or a frame script",
        description="Export a capture file. The frames are decoded afresh, so exports "
        "benefit from every decoder improvement.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="the capture file (plain or gzip)")
    p.add_argument("--format", "-f", choices=(*FORMATS, "capture"), required=True,
                   help="har: HAR 1.2; pcapng: decrypted TCP flows for Wireshark; text: one "
                   "line per frame; jsonl: one JSON object per frame (and per event: "
                   "stalls, settings, findings at the close); script: the client frames "
                   "of one connection as YAML; capture: an h2scope capture of the chosen "
                   "connections (--conn), to share (add --redact)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file; '-' or omitted: stdout (text formats only)")
    p.add_argument("--conn", type=conn_ids, metavar="IDS",
                   help="only these connections: an ID, a list, ranges (3 or 1,4-6); "
                   "script takes one")
    p.add_argument("--stream", type=int, metavar="ID",
                   help="only stream ID (har, text, jsonl; combine with --conn)")
    p.add_argument("--filter", metavar="EXPR",
                   help="only the frames this filter matches (text, jsonl): the language "
                   "of the UI's filter bar and run --filter, e.g. 'type:HEADERS "
                   "status:5xx' (docs/filters.md)")
    p.add_argument("--redact", action="store_true",
                   help="replace the values of credential headers (authorization, "
                   "cookie, set-cookie, x-api-key, …) and of credential query parameters "
                   "in URLs (access_token, code, key, sig, X-Amz-Signature, …) with "
                   "REDACTED; HTTP/2 header blocks are encoded again (docs/export.md); "
                   "bodies are not searched")
    p.add_argument("--redact-header", action="append", default=[], metavar="NAME",
                   help="with --redact: one more header name to redact; repeatable")
    p.add_argument("--redact-param", action="append", default=[], metavar="NAME",
                   help="with --redact: one more URL query parameter to redact; repeatable")
    p.add_argument("--annotate", action="store_true",
                   help="text: show how each header field was HPACK-encoded "
                   "(representation, index, Huffman, inserts, evictions, size updates)")
    p.add_argument("--protoset", type=Path, action="append", default=[], metavar="FILE",
                   help="text, jsonl: name the fields of gRPC messages with this "
                   "FileDescriptorSet (protoc --descriptor_set_out, or h2scope protoset); "
                   "repeatable")
    p.add_argument("--time", choices=TIME_FORMATS, default="relative", metavar="FORMAT",
                   help="text: the time column: relative (seconds since the first record, "
                   "the default), wall (local date and time, 2026-12-08 00:32:27.110) or "
                   "utc (2026-12-08T00:32:27.110Z), to line frames up with other logs")
    p.set_defaults(func=run)


def conn_ids(text: str) -> tuple[int, ...]:
    """``--conn``: ``3``, ``1,4`` or ``2-5`` (and mixes), in order, without repeats."""
    ids: dict[int, None] = {}
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: connection ids are numbers, lists and ranges (3, 1,4, 2-5)"
            ) from None
        if first < 0 or last < first or last - first > 1_000_000:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a range of connection ids")
        ids.update(dict.fromkeys(range(first, last + 1)))
    return tuple(ids)


def _records(reader: CaptureReader, progress: Progress, size: int,
             seen: set[int], streams: dict[int, set[int]] | None = None,
             only: frozenset[int] | None = None,
             framed: set[int] | None = None) -> Iterator[Record]:
    """The capture's records, with progress; the connection ids go into ``seen``
    (and those with HTTP/2 frames into ``framed``) and, given ``streams``, each
    connection's stream ids into it. ``only``: the records of other connections
    are left out (file-level ones are kept)."""
    add = seen.add
    for rec in counted(reader.records(), progress, "export", lambda: reader.position, size):
        if rec.type in _PER_CONNECTION:  # (file-level records carry connection id 0)
            add(rec.conn_id)
            if framed is not None and rec.type == RecordType.FRAME:
                framed.add(rec.conn_id)
            if only is not None and rec.conn_id not in only:
                continue
            if streams is not None and rec.type == RecordType.FRAME and len(rec.body) >= 9:
                sid = int.from_bytes(rec.body[5:9], "big") & 0x7FFF_FFFF
                if sid:
                    streams.setdefault(rec.conn_id, set()).add(sid)
        yield rec


def _ids(ids: set[int]) -> str:
    shown = sorted(ids)
    text = ", ".join(map(str, shown[:20]))
    return text + (f", … ({len(shown)} in all)" if len(shown) > 20 else "")


def open_capture(path: Path, problems: list[BadRecord],
                 observers: Observers | None = None) -> CaptureReader:
    """A reader of the capture at ``path`` (damaged records noted in ``problems``,
    and reported to the ``observers`` its records will be fed to); UsageError
    (exit 2) naming the file if it is missing or not a capture."""
    from proxy.cli import UsageError

    report = problems.append if observers is None else observers.reporter(problems.append)
    try:
        return CaptureReader(path, on_problem=report)
    except FileNotFoundError:
        raise UsageError(f"no such capture file: {path}") from None
    except CaptureFormatError as exc:
        raise UsageError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _protoset(paths: list[Path], fmt: str) -> Any:
    from proxy.cli import UsageError
    from proxy.protoset import protoset_option

    if paths and fmt not in ("text", "jsonl"):
        raise UsageError(f"--protoset does not apply to --format {fmt} (text, jsonl)")
    return protoset_option(paths)


def run(args: argparse.Namespace) -> int:
    from proxy.cli import UsageError

    fmt = args.format
    to_stdout = args.output in (None, "-")
    # One connection goes by its id (the exporters' own selection); several are
    # picked from the records as they are read.
    args.conns = None
    if args.conn is not None:
        if len(args.conn) == 1:
            args.conn = args.conn[0]
        elif fmt == "script":
            raise UsageError("--format script takes one connection: --conn ID")
        else:
            args.conn, args.conns = None, frozenset(args.conn)
    if fmt == "capture":
        return _capture(args)
    if fmt in BINARY_FORMATS and to_stdout and _stdout_is_terminal():
        raise UsageError(f"--format {fmt} writes binary data: give an output file with -o "
                         "(or send stdout to a file or a pipe: > FILE, | tshark -r -)")
    if args.stream is not None and fmt in ("pcapng", "script"):
        raise UsageError(f"--stream does not apply to --format {fmt} (use --conn)")
    if args.time != "relative" and fmt != "text":
        raise UsageError(f"--time does not apply to --format {fmt} (text only; jsonl has "
                         "each frame's wall clock in 'wall')")
    args.keep = _filter(args.filter, fmt)
    args.schema = _protoset(args.protoset, fmt)
    source = args.file
    with contextlib.ExitStack() as cleanup:
        if args.redact or args.redact_header or args.redact_param:
            # The capture --format capture --redact would write, exported from a
            # private temporary directory (removed at the end).
            args.file = _redacted_copy(args, cleanup)
        return _export_file(args, fmt, source)


def _redacted_copy(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> Path:
    import tempfile

    directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="h2scope-")))
    copy = directory / "redacted.h2scope"
    _capture(args, into=copy)
    return copy


def _export_file(args: argparse.Namespace, fmt: str, source: Path) -> int:
    """Export ``args.file`` (``source`` as the user named it: a redacted copy's)."""
    from proxy.cli import UsageError

    to_stdout = args.output in (None, "-")
    problems: list[BadRecord] = []
    args.observers = Observers()
    reader = open_capture(args.file, problems, args.observers)
    try:
        size = os.path.getsize(args.file)
    except OSError:
        size = 0
    progress = Progress()
    written = None if to_stdout else ReplacedFile(Path(args.output), source)
    with reader, contextlib.ExitStack() as stack:
        out: IO[Any]
        if written is None:
            # (pcapng to a pipe or a file stdout was sent to: its bytes, not text)
            out = sys.stdout.buffer if fmt in BINARY_FORMATS else sys.stdout
        else:
            stack.callback(written.discard)  # (unless committed: nothing half-written stays)
            try:
                out = open_private(written.temp, fmt in BINARY_FORMATS)
            except OSError as exc:
                raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
            # (closed before the commit; after a failure, quietly: it is discarded, and
            # flushing into a full disk again would only hide the first error)
            stack.callback(_close_quietly, out)
        seen: set[int] = set()
        streams: dict[int, set[int]] | None = {} if args.stream is not None else None
        framed: set[int] = set()
        records = _records(reader, progress, size, seen, streams, args.conns, framed)
        lookup: str | None = None
        try:
            count = _export(fmt, records, out, args)
        except LookupError as exc:  # the script export found no such connection
            for _ in records:  # the rest of the file, for the connections it has
                pass
            count, lookup = 0, str(exc)
        except OSError as exc:
            raise _named(exc, written, args.output) from None
        finally:
            progress.done()
        if written is None:
            sys.stdout.flush()
        elif not (_missing(args, seen, count, fmt, streams or {}, framed) or lookup):
            try:
                out.close()  # (the last buffered bytes may find the disk full too)
                written.commit()
            except OSError as exc:
                raise _named(exc, written, args.output) from None
    for problem in problems:
        print(f"h2scope export: {source}: {problem}", file=sys.stderr)
    if not reader.clean_end and lookup is None:
        print(f"h2scope export: {source} has no END record: the recording was killed, or "
              "the file cut short (or it is still being written); what its connections did "
              "after that is not in it", file=sys.stderr)
    missing = _missing(args, seen, count, fmt, streams or {}, framed) or lookup
    if args.keep is not None and count == 0 and not missing:
        from proxy.filter import no_match_hint

        h2 = bool(framed) or not seen
        print(f"h2scope export: no frame matches --filter {args.filter!r}"
              f"{no_match_hint(args.filter)}" + ("" if h2 else
              " (the capture has no HTTP/2 frames: a filter selects HTTP/2 frames; HTTP/1.x "
              "messages are in the export without one)"), file=sys.stderr)
    if missing:  # (nothing was written to -o: a file that was there is as it was)
        raise UsageError(missing)
    return 0


_OUT_OF_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
"""Write failures of the system, not of what was asked: exit 1, not 2."""


def _close_quietly(out: IO[Any]) -> None:
    with contextlib.suppress(OSError):
        out.close()


def _named(exc: OSError, written: ReplacedFile | None, output: str) -> OSError:
    """A write failure (a full disk) named by the ``-o`` file it was for: the command
    line says it as one line, exit 1 (see cli.main)."""
    if exc.filename is None and written is not None:
        return OSError(exc.errno, exc.strerror, output)
    return exc


def _capture(args: argparse.Namespace, into: Path | None = None) -> int:
    """``--format capture``: the chosen connections as a capture, maybe redacted
    (``into``: to that file, for another format's export of it; what was redacted
    is said either way)."""
    from proxy.capture.reader import CaptureFormatError
    from proxy.capture.redact import SENSITIVE, SENSITIVE_PARAMS, extract, note_lines
    from proxy.cli import UsageError

    if into is None and args.output in (None, "-"):
        raise UsageError("--format capture writes a capture file: give it with -o OUT")
    if not args.file.is_file():
        raise UsageError(f"no such capture file: {args.file}")
    for flag, given in (("--stream", args.stream is not None), ("--filter", args.filter),
                        ("--protoset", args.protoset), ("--annotate", args.annotate),
                        ("--time", args.time != "relative")):
        if given and into is None:
            raise UsageError(f"{flag} does not apply to --format capture (it keeps whole "
                             "connections: choose them with --conn)")
    for flag, given in (("--redact-header", args.redact_header),
                        ("--redact-param", args.redact_param)):
        if given and not args.redact:
            raise UsageError(f"{flag} needs --redact")
    redact = SENSITIVE | {n.strip().lower() for n in args.redact_header if n.strip()} \
        if args.redact else None
    params = SENSITIVE_PARAMS | {n.strip().lower() for n in args.redact_param if n.strip()}
    written = ReplacedFile(Path(args.output if into is None else into), args.file)
    try:
        result = extract(args.file, written.temp, conn=args.conn, conns=args.conns,
                         redact=redact, redact_params=params)
        lacking = _asked(args) - set(result.connections) - set(result.left_out)
        if lacking:
            raise UsageError(f"the capture has no connection {_ids(lacking)}")
        if not result.connections:
            raise UsageError("nothing to write: " + (
                "; ".join(note_lines(result, redact)[1:]) or "the capture has no connection"))
        written.commit()
    except CaptureFormatError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    except OSError as exc:
        if exc.errno in _OUT_OF_ROOM:  # (a runtime failure, exit 1: see cli.main)
            raise OSError(exc.errno, exc.strerror, args.output) from None
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    finally:
        written.discard()
    for line in note_lines(result, redact):
        said = args.output if into is None else "redacted"
        print(f"h2scope export: {said}: {line}", file=sys.stderr)
    if into is None:  # (else the export of the copy says it, as for any capture)
        for problem in result.damaged:
            print(f"h2scope export: {args.file}: {problem} (a LOST record in {args.output} "
                  "says where)", file=sys.stderr)
        if not result.clean_end:
            print(f"h2scope export: {args.file} has no END record: the recording was killed, "
                  "or the file cut short; neither has the copy", file=sys.stderr)
    if redact and into is None and args.output != "-":
        print(f"h2scope export: before sharing it, look at what is left (bodies are kept as "
              f"they are): h2scope export {shlex.quote(str(args.output))} --format text | "
              "grep -i …  (grep on the capture itself finds nothing: its header values are "
              "HPACK-coded)", file=sys.stderr)
    return 0




def _filter(text: str | None, fmt: str) -> Filter | None:
    """The compiled ``--filter`` (None without one); UsageError when it does not
    apply to ``fmt`` or does not compile (what is wrong, and where)."""
    from proxy.cli import UsageError
    from proxy.filter import FilterError, compile_filter

    if text is None or not text.strip():
        return None
    if fmt not in FILTERED_FORMATS:
        raise UsageError(f"--filter selects frames: it applies to --format text and jsonl, "
                         f"not {fmt} (use --conn/--stream)")
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise UsageError(f"--filter: {exc}") from None


def _asked(args: argparse.Namespace) -> set[int]:
    """The connections ``--conn`` asked for (none: all)."""
    return {args.conn} if args.conn is not None else set(args.conns or ())


def _missing(args: argparse.Namespace, seen: set[int], count: int, fmt: str,
             streams: dict[int, set[int]], framed: set[int] | None = None) -> str | None:
    """What ``--conn``/``--stream`` asked for that the capture lacks, if anything
    (and what it has instead)."""
    asked = _asked(args)
    if asked - seen:
        return (f"the capture has no connection {_ids(asked - seen)}; its connections are "
                f"{_ids(seen) or 'none'}")
    if args.stream is not None and count == 0 and fmt != "pcapng":
        if args.conn is not None:
            have = streams.get(args.conn, set())
            if not have and framed is not None and args.conn not in framed:
                return (f"connection {args.conn} is not HTTP/2 (HTTP/1.x, or a tunnel): "
                        "--stream selects an HTTP/2 stream; --conn alone exports it")
            return (f"the capture has nothing on stream {args.stream} of connection "
                    f"{args.conn}; its streams are {_ids(have) or 'none'}")
        conns = sorted(c for c, ids in streams.items() if args.stream in ids)
        if conns:
            return (f"the capture has nothing on stream {args.stream} that --format {fmt} "
                    f"exports (connections with a stream {args.stream}: {_ids(set(conns))})")
        listed = "; ".join(f"#{c}: {_ids(ids)}" for c, ids in sorted(streams.items())
                           if ids)
        if not listed:
            return ("the capture has no HTTP/2 streams (its connections are not HTTP/2: "
                    "HTTP/1.x, or tunnels): --stream selects an HTTP/2 stream; --conn ID "
                    "selects a connection")
        return (f"the capture has nothing on stream {args.stream}; its streams are "
                f"{listed[:300]} (add --conn ID to pick a connection)")
    return None


def _stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def _export(fmt: str, records: Iterator[Record], out: Any, args: argparse.Namespace) -> int:
    return write_export(fmt, records, out, conn=args.conn, stream=args.stream, keep=args.keep,
                        protoset=args.schema, observers=args.observers,
                        stream_headers=filter_context(args.file, args.keep),
                        annotate=args.annotate, time=args.time)
