"""``h2scope serve``: a mock HTTP/2 (and HTTP/1.1) server answering with recorded responses.

For reproducing a client's bug without the real server: each request is
matched to a recorded one (method, authority, path by default; ``--match``)
and answered with the recorded frame sequence. TLS uses a leaf from the
h2scope CA (trust it as for the proxy: ``h2scope ca path``); ``--h2c`` serves
cleartext HTTP/2 with prior knowledge. See docs/replay.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  h2scope serve session.h2scope -p 8443
  curl --http2 --cacert "$(h2scope ca path)" https://localhost:8443/index.html
  curl --http1.1 --cacert "$(h2scope ca path)" https://localhost:8443/index.html
  h2scope serve session.h2scope --h2c -p 8080 --match method,path
  h2scope serve grpc.h2scope --h2c -p 50051 --match method,path,body   # per message
  h2scope serve session.h2scope --speed 1    # as slow as the real server was
  nghttp -v http://127.0.0.1:8080/index.html

Each request gets the recorded response with the same --match fields (several
recorded ones: in recorded order, then the last again); a resource recorded
only as a push is served to a client that asks for it. Pushes are sent only
to clients that allow them (nghttp does, curl and browsers do not). A request
nothing matches gets a 404 naming the closest recorded paths. A client without
HTTP/2 (TLS with ALPN http/1.1 or none; cleartext without the h2 preface, an
Upgrade: h2c too) is served over HTTP/1.1: keep-alive, Content-Length or
chunked bodies, Expect: 100-continue, the same matching, responses recorded on
HTTP/2 and on HTTP/1.x alike; a WebSocket upgrade gets a 501 (serve plays
WebSockets back over HTTP/2 only).
Runs until Ctrl-C or SIGTERM (exit 0); 1 if it cannot listen, 2 for a usage error.
See docs/replay.md.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve", allow_abbrev=False, parents=[common],
        help="serve a capture's recorded responses (a mock server)",
        description="A mock HTTP/2 server: requests are matched to recorded ones and answered "
        "with the recorded frames (headers, DATA chunks, trailers, pushes, resets). A client "
        "without HTTP/2 gets the same recorded responses over HTTP/1.1.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, help="the capture file (plain or gzip)")
    p.add_argument("--listen-host", default="127.0.0.1", metavar="HOST",
                   help="address to listen on (default 127.0.0.1)")
    p.add_argument("-p", "--listen-port", "--port", dest="port", type=int, default=8443,
                   metavar="PORT",
                   help="port to listen on (default 8443; 0 picks a free port; --port is the "
                   "same)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --listen-host that is not loopback: the recorded responses "
                   "(cookies, tokens, bodies) are then served to anyone who can reach it")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--tls", dest="tls", action="store_true", default=True,
                     help="TLS with a certificate from the h2scope CA (default): HTTP/2 (ALPN "
                     "h2), else HTTP/1.1")
    how.add_argument("--h2c", dest="tls", action="store_false",
                     help="cleartext: HTTP/2 with prior knowledge, else HTTP/1.1")
    p.add_argument("--match", default="method,authority,path", metavar="FIELDS",
                   help="what identifies a request: a comma-separated subset of method, "
                   "authority, path or route (the path without its query string), and body "
                   "(the request body byte for byte: gRPC calls of one method differ only "
                   "there) (default: method,authority,path; authority ignores the port)")
    p.add_argument("--conn", type=int, metavar="ID", help="serve only connection ID's responses")
    p.add_argument("--no-goaway", action="store_true",
                   help="do not send the recorded server's error GOAWAY (a gRPC server's "
                   "too_many_pings) after the response it followed; by default it is sent, "
                   "and that connection closed")
    p.add_argument("--speed", type=float, default=0.0, metavar="S",
                   help="keep the recorded pace: each response frame is sent when it was "
                   "recorded, counted from the request's arrival, divided by S (1: as "
                   "recorded, 2: twice as fast); default 0: as fast as the client's "
                   "flow-control windows allow")
    p.add_argument("--cert-host", metavar="NAME",
                   help="the certificate's main name (default: the first recorded authority); "
                   "every recorded host, localhost and the listen address are added")
    p.add_argument("--sslkeylogfile", type=Path, metavar="FILE",
                   help="append NSS key-log lines for each TLS session (default: "
                   "$SSLKEYLOGFILE)")
    p.set_defaults(func=run)


def _log(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    from proxy.capture.reader import CaptureFormatError
    from proxy.cli import EXIT_FAILURE, UsageError, resolve_confdir
    from proxy.net.modes import is_loopback
    from proxy.replay.responses import ResponseBook, load_responses

    fields = [f.strip() for f in args.match.split(",") if f.strip()]
    if not is_loopback(args.listen_host):
        if not args.allow_remote:
            raise UsageError(f"--listen-host {args.listen_host} is not a loopback address: "
                             "anyone who can reach it would be served the recorded responses "
                             "(cookies, tokens, bodies); add --allow-remote if you mean it")
        print(f"h2scope serve: warning: listening on {args.listen_host}, not loopback: "
              "anyone who can reach it is served the recorded responses", file=sys.stderr)
    if not math.isfinite(args.speed) or args.speed < 0:
        raise UsageError(f"--speed must be 0 (no waiting) or a positive number, not "
                         f"{args.speed:g}")
    if not args.file.exists():
        raise UsageError(f"no such capture file: {args.file}")
    if args.file.is_dir():
        raise UsageError(f"{args.file} is a directory, not a capture file")
    try:
        responses = load_responses(args.file, conn=args.conn, on_problem=lambda bad: print(
            f"h2scope serve: note: {args.file}: damaged record skipped: {bad}; the responses "
            "open there are served up to it, then reset (CANCEL)", file=sys.stderr))
        book = ResponseBook(responses, fields)
        book.goaway = not args.no_goaway
    except CaptureFormatError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not responses:
        where = ""
        if args.conn is not None:
            have = sorted({r.conn_id for r in load_responses(args.file)})
            where = (f" on connection {args.conn}; the connections with some are "
                     f"{', '.join(map(str, have))}" if have else
                     f" on connection {args.conn}, nor on any other")
        raise UsageError(f"{args.file}: no recorded responses to serve{where}")
    for r in responses:
        if r.truncated and r.pushed_on is None:  # (a push is its parent's)
            print(f"h2scope serve: note: {r.method} {r.path} (connection {r.conn_id}, stream "
                  f"{r.stream_id}): its DATA was truncated when recorded; zeros are sent in "
                  "place of the missing bytes", file=sys.stderr)
    ctx = ca = None
    if args.tls:
        ctx, ca = _tls_context(args, resolve_confdir(args), [r.authority for r in responses])
    from proxy.observe import huffman

    huffman.prepare()  # (else the first request's block waits for the tables)
    try:
        return asyncio.run(_serve(args, book, ctx, ca,
                                  sum(r.pushed_on is None for r in responses)))
    except _ListenError as exc:
        from proxy.commands.run import address_in_use_message

        said = address_in_use_message(args.listen_host, args.port, exc.error, modes=False)
        print(f"h2scope serve: {said}", file=sys.stderr)
        return EXIT_FAILURE


class _ListenError(Exception):
    """The mock server could not listen (``error``: why)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _tls_context(args: argparse.Namespace, confdir: Path,
                 authorities: list[str]) -> tuple[Any, Path]:
    from certs.store import CertStore
    from proxy.cli import UsageError
    from proxy.replay.responses import host_of

    hosts = [host_of(a).strip("[]") for a in authorities if a]
    main = args.cert_host or (hosts[0] if hosts else "localhost")
    extra = sorted({*hosts, "localhost", "127.0.0.1", args.listen_host} - {main})
    try:
        store = CertStore(confdir)
        ctx = store.server_context(main, ["h2", "http/1.1"], extra)
    except ValueError as exc:
        raise UsageError(f"cannot make a certificate for {main}: {exc}") from None
    keylog = args.sslkeylogfile or (Path(os.environ["SSLKEYLOGFILE"])
                                    if os.environ.get("SSLKEYLOGFILE") else None)
    if keylog is not None:
        from certs.files import key_log_problem

        problem = key_log_problem(keylog)  # (and made 0600: it holds keys)
        if problem:
            raise UsageError(problem)
        ctx.keylog_filename = str(keylog)
    return ctx, store.ca_cert_path


async def _serve(args: argparse.Namespace, book: Any, ctx: Any, ca: Path | None,
                 count: int) -> int:
    from proxy.replay.mock_server import served_settings, start_mock_server
    from proxy.replay.responses import goaway_text

    try:
        server = await start_mock_server(book, args.listen_host, args.port, ctx, _log,
                                         args.speed)
    except OSError as exc:
        raise _ListenError(exc) from None
    host, port = server.sockets[0].getsockname()[:2]
    scheme = "https" if ctx is not None else "http"
    shown = f"[{host}]" if ":" in host else host
    pace = "" if args.speed <= 0 else "; at the recorded pace" if args.speed == 1 else \
        f"; at {args.speed:g}× the recorded pace"
    plural = "s" if count != 1 else ""
    print(f"h2scope serve: listening on {scheme}://{shown}:{port}/ ({count} recorded "
          f"response{plural} from {args.file}; matching on {','.join(book.fields)}{pace})",
          file=sys.stderr, flush=True)
    if ca is not None:
        print(f"h2scope serve: CA certificate: {ca} (curl --http2 --cacert {ca} "
              f"{scheme}://localhost:{port}/)", file=sys.stderr, flush=True)
    pairs, changed = served_settings(book)
    if pairs is not None:
        from proxy.observe.enums import setting_name

        said = ", ".join(f"{setting_name(k)}={v}" for k, v in pairs)
        print(f"h2scope serve: SETTINGS as the recorded server sent them: {said or '(none)'}"
              + "".join(f"; {note}" for note in changed), file=sys.stderr, flush=True)
    elif changed:
        print(f"h2scope serve: SETTINGS: h2's defaults (none recorded) and {changed[0]}",
              file=sys.stderr, flush=True)
    for r in book.responses if book.goaway else ():
        if r.goaway_after is not None:
            print(f"h2scope serve: GOAWAY {goaway_text(*r.goaway_after)} is sent after the "
                  f"response to {r.method} {r.path}, as the recorded server sent it "
                  "(--no-goaway: not)", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    return 0
