"""``h2scope diff A B``: what differs between two recordings of the same requests.

Record a client's traffic twice — straight to the origin and through a CDN,
before and after a deploy, against staging and production, in front of an edge
and behind it — and ask which responses changed: the status, a response header
that vanished or appeared (and, with ``--values``, header values), the trailer
section's names, the body (length and SHA-256; for text what lines changed, for
gRPC which messages), a reset; with ``--requests``, what the requests' header
fields and bodies became too (A the recording nearer the client).
Streams are paired by request (method, host, path), the n-th of a request in A
with the n-th in B, whichever connection carried it; requests that only one
recording made are listed as such. Names that change by themselves (``date``,
``etag``, ``set-cookie``, … — the same list as ``replay``'s) are left out unless
asked for. Exit status 0 when nothing differs, 3 when something does (usable in
CI), 2 for a file that is not a capture.
"""

from __future__ import annotations

import argparse
import heapq
import sys
from pathlib import Path
from typing import Any

from proxy.words import count

EXIT_DIFFERS = 3

EPILOG = """\
examples:
  h2scope diff direct.h2scope via-cdn.h2scope        which responses the CDN changed
  h2scope diff before.h2scope after.h2scope --values --ignore x-trace-id
  h2scope diff a.h2scope b.h2scope --any-host        staging vs production host names
  h2scope diff front.h2scope behind.h2scope --requests  what the edge between did
  h2scope diff v1.h2scope v2.h2scope --requests --protoset api.pb
      what the new client library sends: gRPC messages field by field

exit status: 0 the recordings agree, 3 something differs, 2 usage error.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "diff", allow_abbrev=False, parents=[common],
        help="compare the responses (and requests) of two recordings, request by request",
        description="Pair the streams of two captures by request (method, host, path) and "
        "say what differs: status, 1xx informational responses (a 103's Early Hints), "
        "response header names (and values with --values), "
        "trailer names, bodies (length and SHA-256; a text body's changed lines, a gRPC "
        "body's messages), resets; with --requests the request header fields and bodies "
        "too.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, metavar="A", help="the first capture (plain or gzip)")
    p.add_argument("b", type=Path, metavar="B", help="the second capture")
    p.add_argument("--values", action="store_true",
                   help="compare response header values too (names that change by themselves "
                   "are still left out)")
    p.add_argument("--requests", action="store_true",
                   help="compare each pair's request header fields and bodies too "
                   "(pseudo-headers included; cookie crumbs as one value; A is the recording "
                   "nearer the client, whose Connection header's names B must not carry)")
    p.add_argument("--ignore", default="", metavar="NAMES",
                   help="more header names to leave out (responses, and requests with "
                   "--requests), comma-separated")
    p.add_argument("--strict", action="store_true",
                   help="leave nothing out: compare date, etag, set-cookie, … as well")
    p.add_argument("--any-host", action="store_true",
                   help="pair requests by method and path only (the recordings used other "
                   "host names)")
    p.add_argument("--protoset", type=Path, action="append", default=[], metavar="FILE",
                   help="name the fields of gRPC messages whose bodies differ with this "
                   "FileDescriptorSet (protoc --descriptor_set_out, or h2scope protoset); "
                   "without one they are decoded raw; repeatable")
    p.add_argument("--all", action="store_true", help="list the streams that agree too")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from proxy.capture.exchanges import collect
    from proxy.capture.reader import BadRecord
    from proxy.capture.replay import Observers, replay, replay_records
    from proxy.commands.export import open_capture
    from proxy.commands.progress import Progress, counted
    from proxy.replay.compare import (
        StreamOutcome,
        diff_streams,
        http1_outcomes,
        outcomes,
        pair_by_request,
        request_differences,
        response_text,
        value_differences,
        volatile_names,
    )

    progress = Progress()

    def load(path: Path) -> list[StreamOutcome]:
        problems: list[BadRecord] = []
        observers = Observers()
        reader = open_capture(path, problems, observers)
        size = path.stat().st_size
        with reader:
            records = counted(reader.records(), progress, f"diff {path.name}",
                              lambda: reader.position, size)
            got = [s for s in outcomes(replay_records(records, close_open=True,
                                                      observers=observers),
                                       fields=args.values, requests=args.requests,
                                       bodies=True)
                   if s.method is not None]
        progress.done()
        # HTTP/1.x exchanges (an HTTP/1.1 origin behind an HTTP/2 edge): a second
        # reading, which finds the messages in the connections' bytes. They go among
        # the HTTP/2 streams by when they started: the n-th of a request pairs with
        # the n-th in the other recording.
        h1 = http1_outcomes(collect(replay(path)).items, requests=args.requests)
        got = list(heapq.merge(got, h1, key=lambda s: s.started or 0.0))
        for problem in problems:
            sys.stderr.write(f"h2scope diff: {path}: damaged record skipped: {problem}\n")
        return got

    from proxy.protoset import protoset_option

    protoset = protoset_option(args.protoset)
    a, b = load(args.a), load(args.b)
    volatile = volatile_names(args.strict, args.ignore)
    out = sys.stdout
    out.write(f"A {args.a}: {count(len(a), 'stream')}\nB {args.b}: {count(len(b), 'stream')}\n")
    differing = same = partly = 0
    only = {"A": 0, "B": 0}
    for sa, sb in pair_by_request(a, b, hosts=not args.any_host):
        if sa is None or sb is None:
            s = sa or sb
            assert s is not None
            where = "A" if sa is not None else "B"
            out.write(f"  only in {where}  {_label(s)}: {response_text(s)}\n")
            only[where] += 1
            continue
        found = request_differences(sa, sb, volatile, protoset=protoset) \
            if args.requests else []
        found += _body_detail(diff_streams(sa, sb, volatile), sa, sb, protoset)
        if args.values:
            found += value_differences(sa, sb, volatile)
        if found:
            differing += 1
            out.write(f"  DIFFERS  {_label(sa)} (B: #{sb.conn_id} stream {sb.stream_id}):\n")
            out.writelines(f"             {text}\n" for text in found)
        else:
            same += 1
            gap = [w for w, s in (("A", sa), ("B", sb)) if s.incomplete]
            partly += bool(gap)
            if args.all or gap:
                # (a stream part of which is not in a capture: its body is not compared)
                said = f" (INCOMPLETE in {' and '.join(gap)}: part of the stream is not in " \
                    "the capture, so its body is not compared)" if gap else ""
                out.write(f"  same     {_label(sa)}: {response_text(sa)}{said}\n")
    left_out = "nothing left out" if args.strict else \
        f"left out: {', '.join(sorted(volatile))}"
    incomplete = f" ({partly} of them incomplete)" if partly else ""
    unpaired = "".join(f", {n} only in {w}" for w, n in only.items() if n)
    out.write(f"{same} same{incomplete}, {differing} differ{unpaired} ({left_out})\n")
    if only["A"] and len(b) < len(a) and not differing:
        out.write("  (requests pair in order across each whole capture: to compare a "
                  "replay of one connection, export that connection first: h2scope export "
                  "A --format capture --conn ID -o A1.h2scope)\n")
    return EXIT_DIFFERS if differing or unpaired else 0


def _body_detail(found: tuple[str, ...], a: Any, b: Any, protoset: Any) -> list[str]:
    """The comparison's ``body:`` line with what changed inside the bodies: a gRPC
    body's messages instead of it, a text body's diff after it."""
    from proxy.replay.body_diff import body_changes, is_grpc

    out = []
    for line in found:
        out.append(line)
        if not line.startswith("body: ") or a.response_body is None or b.response_body is None:
            continue
        changes = body_changes("response", a.response_body, b.response_body, path=a.path,
                               protoset=protoset)
        if changes and is_grpc(a.response_body.content_type):
            out[-1:] = changes
        elif changes:
            out += changes
    return out


def _label(s: Any) -> str:
    return (f"#{s.conn_id} stream {s.stream_id} {'push ' if s.pushed else ''}"
            f"{s.method} {s.authority or ''}{s.path or ''}")
