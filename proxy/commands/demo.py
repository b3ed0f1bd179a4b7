"""``h2scope demo``: the first minute — real HTTP/2 traffic to look at, no network needed.

Starts a local HTTP/2 origin (TLS with a certificate from the h2scope CA), the
proxy on a free loopback port, and a client that sends interleaved traffic
through the proxy: concurrent streams with different priorities, a download
that stalls on flow control and resumes, a server push, trailers, a PING, a
RST_STREAM and an HPACK table size change. Everything is what ``h2scope run``
would show for a real client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  h2scope demo                      open the UI on live demo traffic (q quits)
  h2scope demo --headless --rounds 1   print one round of frames and exit
  h2scope demo --record demo.h2scope  keep the session, then: h2scope view demo.h2scope
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo", allow_abbrev=False, parents=[common],
        help="show h2scope on built-in HTTP/2 traffic (local server + client, no network)",
        description=textwrap.fill(__doc__.split("\n\n")[1].replace("``", "`"), width=79),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--headless", action="store_true",
                   help="print frames to stdout instead of opening the UI")
    p.add_argument("--rounds", type=int, default=None, metavar="N",
                   help="rounds of traffic before stopping (default: 1 headless, "
                   "endless with the UI)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="pause between rounds (default 2)")
    p.add_argument("-p", "--listen-port", type=int, default=0, metavar="PORT",
                   help="proxy port (default: a free one); point your own clients at it too")
    p.add_argument("--record", metavar="FILE", help="record the session to FILE")
    p.add_argument("--annotate", action="store_true",
                   help="headless: show each header field's HPACK representation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from proxy.cli import UsageError, resolve_confdir
    from proxy.config import ConfigError, load_config

    if args.rounds is not None and args.rounds < 1:
        raise UsageError("--rounds must be 1 or more")
    confdir = resolve_confdir(args)
    from certs.store import CertStore

    store = CertStore(confdir)
    # $SSLKEYLOGFILE (set for browsers and curl) is honoured here as in `run`, and said.
    keylog = os.environ.get("SSLKEYLOGFILE") or None
    config = load_config(None, {
        "confdir": confdir,
        "listen.port": args.listen_port,
        "upstream.ca_file": str(store.ca_cert_path),
        "record.file": args.record,
        "sslkeylogfile": keylog,
    }, flag_names={"sslkeylogfile": "$SSLKEYLOGFILE"})
    if config.sslkeylogfile is not None:
        from certs.files import key_log_problem
        from proxy.commands.run import keylog_line

        problem = key_log_problem(config.sslkeylogfile)
        if problem:
            raise ConfigError(problem, key="sslkeylogfile")
        print(keylog_line(config.sslkeylogfile, "$SSLKEYLOGFILE",
                          off="unset it to turn it off"), file=sys.stderr)
    if not args.headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Piped or redirected: the UI needs a terminal, the frame log does not.
        print("h2scope: not a terminal: running the demo headless (use --headless to "
              "silence this note)", file=sys.stderr)
        args.headless = True
    rounds = args.rounds if args.rounds is not None else (1 if args.headless else None)
    if not args.headless:
        launch = _ui_launcher()
        if launch is not None:
            return launch(config, store, rounds, args.interval)
        print("h2scope: the interactive UI is not available; running headless",
              file=sys.stderr)
    try:
        return asyncio.run(run_headless(config, store, rounds, args.interval,
                                        annotate=args.annotate))
    except KeyboardInterrupt:
        return 0


def _ui_launcher() -> Any:
    try:
        from ui.demo import launch_demo  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return launch_demo


async def start_demo(config: Any, store: Any, sinks: list[Any], *,
                     decode: bool = True) -> tuple[Any, Any, Any]:
    """Start origin, proxy and client; returns (proxy server, origin, client).

    ``decode=False``: the proxy only records (the live UI decodes the capture)."""
    from proxy.demo.client import DemoClient
    from proxy.demo.server import DemoServer
    from proxy.server import ProxyServer

    origin = DemoServer(store.server_context("localhost", ["h2"]))
    await origin.start()
    proxy = ProxyServer(config, sinks, decode=decode)
    try:
        await proxy.start()
    except Exception:
        await origin.stop()
        raise
    client = DemoClient(proxy.address("regular"), ("127.0.0.1", origin.port),
                        Path(store.ca_cert_path))
    return proxy, origin, client


async def drive(client: Any, rounds: int | None, interval: float,
                report: Any = None) -> None:
    """Run rounds of demo traffic (forever when ``rounds`` is None)."""
    n = 0
    while rounds is None or n < rounds:
        result = await client.run_round(n)
        if report is not None:
            report(n, result)
        n += 1
        if rounds is None or n < rounds:
            await asyncio.sleep(interval)


async def run_headless(config: Any, store: Any, rounds: int | None, interval: float, *,
                       annotate: bool = False) -> int:
    from proxy.demo.client import DemoClientError
    from proxy.headless import HeadlessPrinter

    sinks: list[Any] = [HeadlessPrinter(sys.stdout, annotate=annotate)]
    recorder = None
    if config.record.file is not None:
        from proxy.capture.recorder import CaptureRecorder
        from proxy.capture.writer import CaptureWriter

        recorder = CaptureWriter(config.record.file, max_data_bytes=config.record.max_data_bytes)
        sinks.append(CaptureRecorder(recorder))
    proxy, origin, client = await start_demo(config, store, sinks)
    host, port = proxy.address("regular")
    print(f"h2scope demo: proxy on {host}:{port}, origin https://localhost:{origin.port}/ "
          f"(try: curl --cacert {store.ca_cert_path} -x http://{host}:{port} "
          f"https://localhost:{origin.port}/)", file=sys.stderr)
    if rounds is not None:
        print(f"h2scope demo: both stop after {rounds} round{'s' if rounds != 1 else ''}; "
              f"for time to try your own client, give --rounds N (one round every "
              f"{interval:g} s)", file=sys.stderr)

    def report(n: int, result: Any) -> None:
        print(f"h2scope demo: round {n + 1}: {len(result.statuses)} streams, "
              f"{result.bytes_received} bytes, pushed {', '.join(result.pushed) or 'nothing'}",
              file=sys.stderr)

    status = 0
    try:
        await drive(client, rounds, interval, report)
    except DemoClientError as exc:
        print(f"h2scope demo: {exc}", file=sys.stderr)
        status = 1
    finally:
        await proxy.wait_idle(2.0)  # the last round's connection closes on its own
        await proxy.stop()
        await origin.stop()
        if recorder is not None:
            with contextlib.suppress(Exception):
                recorder.close()
    return status
