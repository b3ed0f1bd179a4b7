"""``h2scope import``: a packet capture's cleartext HTTP/2 as an h2scope capture.

For traffic h2scope did not relay: a ``tcpdump``/``dumpcap`` capture of h2c
(gRPC without TLS, a load balancer's backend leg). The result is an ordinary
capture (mode 0600) for ``view``, ``export``, ``check`` and ``replay``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from proxy.capture.pcap import LINKTYPES

EPILOG = """\
examples:
  tcpdump -i lo -w grpc.pcap 'tcp port 50051'      (elsewhere, while the traffic runs)
  h2scope import grpc.pcap                          writes grpc.h2scope
  h2scope view grpc.h2scope

  h2scope import capture.pcapng -o session.h2scope && h2scope check session.h2scope

Connections are found by the HTTP/2 connection preface (prior knowledge, as
curl --http2-prior-knowledge and gRPC clients send it); TLS connections are
encrypted and skipped (record those through h2scope run). Packets the capture
lost stop the decoding of that direction, and say so. exit status: 0 done,
1 no HTTP/2 connection in the file, 2 not a packet capture (or a bad option).
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        parents=[common],
        help="turn a pcap/pcapng packet capture of cleartext HTTP/2 (h2c) into a capture",
        description="Read a pcap or pcapng file (tcpdump, dumpcap, Wireshark), put each TCP "
        "connection's bytes back in order and record its cleartext HTTP/2 frames to an "
        "h2scope capture, as if h2scope had relayed them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="the packet capture (.pcap or .pcapng)")
    p.add_argument("-o", "--output", type=Path, metavar="OUT",
                   help="the capture to write (default: FILE's name with .h2scope, in the "
                   "current directory)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from proxy.capture.pcap import PcapError
    from proxy.capture.pcap_import import import_packets
    from proxy.capture.writer import CaptureWriter
    from proxy.cli import UsageError

    src: Path = args.file
    out: Path = args.output or Path(src.name).with_suffix(".h2scope")
    if out.exists() and out.resolve() == src.resolve():
        raise UsageError(f"{out} is the packet capture itself: give another -o")
    with contextlib.ExitStack() as stack:
        try:
            f = stack.enter_context(open(src, "rb"))
        except FileNotFoundError:
            raise UsageError(f"no such file: {src}") from None
        except OSError as exc:
            raise UsageError(f"cannot read {src}: {exc.strerror}") from None
        try:
            writer = CaptureWriter(out, config={"imported_from": src.name})
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
        try:
            summary = import_packets(f, writer, source=src.name)
        except PcapError as exc:
            writer.close(fsync=False)
            _remove(out)
            raise UsageError(f"{src}: {exc}") from None
        except BaseException:
            writer.close(fsync=False)
            raise
        writer.close()
    h2 = summary.connections.get("h2c", 0)
    lines = _report(summary, src, out)
    for line in lines:
        print(line, file=sys.stderr if not h2 else sys.stdout)
    if not h2:
        _remove(out)
        return 1
    print(f"next: h2scope view {out}")
    return 0


def _report(summary: Any, src: Path, out: Path) -> list[str]:
    kinds = summary.connections
    h2 = kinds.get("h2c", 0)
    lines = []
    if h2:
        lines.append(f"imported {h2} HTTP/2 connection{'s' * (h2 != 1)} (h2c), "
                     f"{summary.frames:,} frames, from {src} to {out}")
    else:
        lines.append(f"h2scope import: no cleartext HTTP/2 connection in {src} "
                     f"({summary.packets:,} packets, {summary.tcp_segments:,} TCP segments); "
                     "nothing written")
    skipped = []
    if kinds.get("tls"):
        skipped.append(f"{kinds['tls']} TLS (encrypted: record through h2scope run instead)")
    if kinds.get("late"):
        skipped.append(f"{kinds['late']} whose start is not in the capture")
    if kinds.get("other"):
        skipped.append(f"{kinds['other']} not HTTP/2 with prior knowledge")
    if skipped:
        lines.append("skipped TCP connections: " + "; ".join(skipped))
    if summary.skipped_packets:
        unknown = sorted(lt for lt in summary.linktypes if lt not in LINKTYPES)
        note = (f" (link type {', '.join(map(str, unknown))} is not read: "
                f"{', '.join(LINKTYPES.values())} are)") if unknown else ""
        lines.append(f"{summary.skipped_packets:,} packets are not TCP over IP{note}")
    lines.extend(f"gap: {g}" for g in summary.gaps)
    return lines


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
