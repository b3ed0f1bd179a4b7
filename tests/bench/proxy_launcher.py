"""A stand-in for ``h2scope run --headless --record FILE`` while recording is not wired in.

    python tests/bench/proxy_launcher.py --confdir DIR --mode MODE [-p PORT]
        [--upstream-ca FILE] [--record FILE] [-q]

It builds what ``h2scope run --headless`` builds — a :class:`ProxyServer`
with a :class:`HeadlessPrinter` on stdout — plus, with ``--record``, a
:class:`CaptureRecorder` sink, prints the same "proxy listening on" banner
on stderr, and stops cleanly on SIGINT/SIGTERM (connections closed, the
sinks drained, the capture closed). Only the benchmark and load tests use
it; :mod:`proxyproc` prefers the real command whenever it can do the job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class LauncherOptions:
    """The attributes ``proxy.net.context.ProxyOptions`` asks for."""

    confdir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    modes: list[str] = field(default_factory=lambda: ["regular"])
    insecure: bool = False
    upstream_ca: Path | None = None
    client_certs: Path | None = None
    upstream_auth: str | None = None
    ignore_hosts: list[str] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)
    proxyauth: str | None = None
    allow_remote: bool = False
    sslkeylogfile: Path | None = None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--confdir", required=True, type=Path)
    p.add_argument("--mode", action="append", required=True)
    p.add_argument("-p", "--listen-port", type=int, default=0)
    p.add_argument("--upstream-ca", type=Path)
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--record", type=Path)
    p.add_argument("-q", "--quiet", action="store_true")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.writer import CaptureWriter
    from proxy.headless import HeadlessPrinter
    from proxy.server import ProxyServer, ProxyStartError

    options = LauncherOptions(confdir=args.confdir, listen_port=args.listen_port,
                              modes=list(args.mode), upstream_ca=args.upstream_ca,
                              insecure=args.insecure)
    sinks: list[Any] = [HeadlessPrinter(sys.stdout, quiet=args.quiet)]
    recorder = None
    if args.record is not None:
        recorder = CaptureRecorder(CaptureWriter(args.record))
        sinks.append(recorder)
    server = ProxyServer(options, sinks)
    try:
        await server.start()
    except ProxyStartError as exc:
        print(f"h2scope: {exc}", file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec, (host, port) in server.addresses.items():
            print(f"h2scope: {spec} proxy listening on {host}:{port}", file=sys.stderr,
                  flush=True)
        await stop.wait()
    finally:
        await server.stop()
        if recorder is not None:
            recorder.close()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
