"""``h2scope import``: a packet capture's HTTP/2 as an h2scope capture.

For traffic h2scope did not relay: a ``tcpdump``/``dumpcap`` capture of h2c
(gRPC without TLS, a load balancer's backend leg), or of TLS with the client's
key log. The result is an ordinary capture (mode 0600) for ``view``,
``export``, ``check`` and ``replay``. docs/import.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import sys
from pathlib import Path
from typing import Any

from proxy.capture.pcap import LINKTYPES
from proxy.commands.progress import Progress
from proxy.words import count

EPILOG = """\
examples:
  tcpdump -i lo -w grpc.pcap 'tcp port 50051'      (elsewhere, while the traffic runs)
  h2scope import grpc.pcap                          writes grpc.h2scope
  h2scope view grpc.h2scope

  h2scope import capture.pcapng -o session.h2scope && h2scope check session.h2scope
  tcpdump -U -w - 'tcp port 8080' | h2scope import - -o live.h2scope

  SSLKEYLOGFILE=keys.log curl --http2 https://example.com/   (captured meanwhile)
  h2scope import https.pcapng --keylog-file keys.log        TLS 1.2/1.3 decrypted

  chromium --log-net-log=net.json --net-log-capture-mode=Everything https://example.com/
  h2scope import net.json                 a Chrome net log (chrome://net-export;
                                          with "Include raw bytes": the frames as sent)

Connections are found by the HTTP/2 connection preface (as h2c clients and
gRPC send it, and as every client sends it inside TLS once ALPN chose h2);
TLS is decrypted when --keylog-file has the connection's secrets, and skipped
otherwise; HTTP/1.x connections are kept as their messages. Packets the
capture lost stop the decoding of that direction, and say so. A net log
without raw bytes has its HTTP/2 frames rebuilt from Chrome's events (the
report says what that leaves out). docs/import.md.

exit status: 0 done, 1 no HTTP/2 or HTTP/1.x connection it could decode,
2 not a packet capture or net log (or a bad option).
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        allow_abbrev=False,
        parents=[common],
        help="turn a pcap/pcapng packet capture of HTTP/2 (h2c, or TLS with a key log), or "
        "a Chrome net log, into a capture",
        description="Read a pcap or pcapng file (tcpdump, dumpcap, Wireshark), put each TCP "
        "connection's bytes back in order, decrypt TLS when --keylog-file has its secrets, "
        "and record the HTTP/2 frames to an h2scope capture, as if h2scope had relayed them. "
        "A Chrome net log (chrome://net-export or --log-net-log) is read the same way: "
        "with raw bytes, its sockets' decrypted bytes are the frames; without, the frames "
        "are rebuilt from Chrome's HTTP/2 events.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="the packet capture (.pcap or .pcapng, maybe "
                   "gzipped; - reads it from stdin, as tcpdump -U -w - writes it) or Chrome "
                   "net log (.json)")
    p.add_argument("-o", "--output", type=Path, metavar="OUT",
                   help="the capture to write (default: FILE's name with .h2scope, in the "
                   "current directory)")
    p.add_argument("--keylog-file", type=Path, metavar="KEYLOG",
                   help="decrypt TLS (1.2 and 1.3) with this NSS key log: the file "
                   "SSLKEYLOGFILE named when the client ran (curl, browsers, Go, Python, "
                   "h2scope run --sslkeylogfile)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from proxy.cli import UsageError

    src: Path = args.file
    if str(src) == "-" and args.output is None:
        raise UsageError("reading the packet capture from stdin (-) needs -o OUT")
    stem = Path(src.name[:-3] if src.name.endswith(".gz") else src.name)  # x.pcapng.gz → x
    out: Path = args.output or stem.with_suffix(".h2scope")
    summary = import_file(src, out, args.keylog_file)
    lines = report(summary, src, out, args.keylog_file is not None)
    if not imported(summary):
        for line in lines:
            print(line, file=sys.stderr)
        _remove(out)
        return 1
    for line in lines:
        print(line)
    print(f"next: h2scope view {out}")
    return 0


def imported(summary: Any) -> int:
    """How many connections an import recorded (HTTP/2, and HTTP/1.x as messages)."""
    kinds = summary.connections
    return int(kinds.get("h2c", 0) + kinds.get("h2", 0) + kinds.get("http1", 0))


def import_file(src: Path, out: Path, keylog_file: Path | None) -> Any:
    """Import the packet capture ``src`` to the capture ``out`` (mode 0600), with
    progress on a terminal; the ImportSummary. UsageError (exit 2) for a file that
    cannot be read or is not a packet capture, or a key log that is not one."""
    from proxy.capture.netlog_import import NetlogError, import_netlog, looks_like_netlog
    from proxy.capture.pcap import PcapError, open_packet_capture
    from proxy.capture.pcap_import import import_packets
    from proxy.capture.tls_decrypt import KeyLog
    from proxy.capture.writer import CaptureWriter
    from proxy.cli import UsageError

    keylog = None
    if keylog_file is not None:
        try:
            keylog = KeyLog.load(keylog_file)
        except OSError as exc:
            raise UsageError(f"cannot read the key log {keylog_file}: "
                             f"{exc.strerror or exc}") from None
        if not len(keylog):
            raise UsageError(f"{keylog_file} holds no key log lines (LABEL "
                             "<client random> <secret>, as SSLKEYLOGFILE writes them)")
    stdin = str(src) == "-"
    if not stdin and out.exists() and out.resolve() == src.resolve():
        raise UsageError(f"{out} is the packet capture itself: give another -o")
    with contextlib.ExitStack() as stack:
        try:
            # stdin (tcpdump -U -w - | h2scope import - -o OUT) is read once, as it
            # comes: a lasting hole is then found when more data passed it.
            f = sys.stdin.buffer if stdin else stack.enter_context(open_packet_capture(src))
        except FileNotFoundError:
            raise UsageError(f"no such file: {src}") from None
        except OSError as exc:
            raise UsageError(f"cannot read {src}: {exc.strerror}") from None
        try:
            writer = CaptureWriter(out, config={"imported_from": src.name})
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
        progress = Progress()
        raw = getattr(f, "fileobj", None) or f  # (a gzip file: progress through its bytes)
        try:
            size = os.fstat(raw.fileno()).st_size
        except OSError:
            size = 0

        def step(packets: int) -> None:
            if stdin or not size:
                progress.show(f"import: {packets:,} packets")
            else:
                progress.fraction("import", raw.tell(), size, f"{packets:,} packets")

        try:
            head = f.peek(16)[:16] if hasattr(f, "peek") else b""
            if looks_like_netlog(head):
                if keylog is not None:
                    raise UsageError("--keylog-file applies to a packet capture: a Chrome "
                                     "net log holds its bytes decrypted already")
                text = io.TextIOWrapper(f, encoding="utf-8", errors="replace")
                summary: Any = import_netlog(text, writer, progress=lambda at: progress.fraction(
                    "import", raw.tell(), size, "net log") if size and not stdin else None)
                text.detach()  # (the file is closed with the others, stdin not at all)
            else:
                summary = import_packets(f, writer, keylog=keylog, progress=step)
        except BaseException as exc:
            writer.close(fsync=False)
            if not isinstance(exc, (UsageError, NetlogError, PcapError, gzip.BadGzipFile,
                                    EOFError)):
                raise
            _remove(out)
            if isinstance(exc, UsageError):
                raise
            what = f"a damaged gzip file ({exc})" if isinstance(
                exc, (gzip.BadGzipFile, EOFError)) else str(exc)
            raise UsageError(f"{src}: {what}") from None
        finally:
            progress.done()
        writer.close()
    return summary


def report(summary: Any, src: Path, out: Path, keys: bool) -> list[str]:
    """What an import found, a line per fact, for its user."""
    from proxy.capture.netlog_import import NetlogSummary

    if isinstance(summary, NetlogSummary):
        return netlog_report(summary, src, out)
    kinds = summary.connections
    h2c, h2, h1 = kinds.get("h2c", 0), kinds.get("h2", 0), kinds.get("http1", 0)
    lines = []
    if h2c or h2 or h1:
        parts = []
        if h2c or h2:
            how = ", ".join(part for part in (f"{h2c} h2c" if h2c else "",
                                              f"{h2} TLS decrypted" if h2 else "") if part)
            parts.append(f"{count(h2c + h2, 'HTTP/2 connection')} ({how}), "
                         f"{count(summary.frames, 'frame')}")
        if h1:
            parts.append(f"{count(h1, 'HTTP/1.x connection')}, "
                         f"{count(summary.http1_messages, 'message')}")
        lines.append(f"imported {' and '.join(parts)}, from {src} to {out}")
    else:
        what = "HTTP/2" if keys else "cleartext HTTP/2"
        lines.append(f"h2scope import: no {what} connection in {src} "
                     f"({summary.packets:,} packets, {summary.tcp_segments:,} TCP segments); "
                     "nothing written")
    if summary.embedded_secrets:
        lines.append(f"TLS secrets carried by the file itself: {summary.embedded_secrets:,}")
    skipped = []
    if kinds.get("tls"):
        skipped.append(f"{kinds['tls']} TLS (encrypted: give --keylog-file, or record "
                       "through h2scope run)")
    if kinds.get("tls-undecrypted"):
        skipped.append(f"{kinds['tls-undecrypted']} TLS the key log does not open")
    if kinds.get("tls-other"):
        skipped.append(f"{kinds['tls-other']} TLS, decrypted, not HTTP/2")
    if kinds.get("late"):
        skipped.append(f"{kinds['late']} whose start is not in the capture")
    if kinds.get("other"):
        skipped.append(f"{kinds['other']} neither HTTP/2 nor HTTP/1.x")
    if skipped:
        lines.append("skipped TCP connections: " + "; ".join(skipped))
    if summary.skipped_packets:
        unknown = sorted(lt for lt in summary.linktypes if lt not in LINKTYPES)
        note = (f" (link type {', '.join(map(str, unknown))} is not read: "
                f"{', '.join(LINKTYPES.values())} are)") if unknown else ""
        lines.append(f"{summary.skipped_packets:,} packets are not TCP over IP{note}")
    lines.extend(f"gap: {g}" for g in summary.gaps)
    lines.extend(f"tls: {p}" for p in summary.problems)
    lines.extend(f"tunnel: {p}" for p in summary.tunnels)
    lines.extend(f"cut: {p}" for p in summary.torn)
    return lines


def netlog_report(summary: Any, src: Path, out: Path) -> list[str]:
    """What a net log import found, a line per fact."""
    kinds = summary.connections
    n = kinds.get("h2", 0) + kinds.get("h2c", 0)
    who = f" of {summary.chrome}" if summary.chrome else ""
    h1 = kinds.get("http1", 0)
    if n or h1:
        parts = []
        if n:
            parts.append(f"{count(n, 'HTTP/2 connection')}, {count(summary.frames, 'frame')}")
        if h1:
            parts.append(f"{count(h1, 'HTTP/1.x connection')}, "
                         f"{count(summary.http1_messages, 'message')}")
        lines = [f"imported {' and '.join(parts)}, from the net log{who} {src} to {out}"]
    else:
        lines = [f"h2scope import: no HTTP/2 connection in the net log{who} {src} "
                 f"({summary.events:,} events); nothing written"]
    if summary.rebuilt and n:
        lines.append(
            f"frames rebuilt from Chrome's HTTP/2 events: the log (capture mode "
            f"{summary.capture_mode or '?'}) has no raw bytes, so header lists are as Chrome "
            "logged them but HPACK is encoded again, and DATA has its sizes, not its bytes; "
            "for the frames as sent, record with raw bytes (chrome://net-export: 'Include "
            "raw bytes'; or --log-net-log=FILE --net-log-capture-mode=Everything)")
    skipped = []
    if kinds.get("other"):
        skipped.append(f"{kinds['other']} neither HTTP/2 nor HTTP/1.x with its bytes")
    if kinds.get("quic"):
        skipped.append(f"{kinds['quic']} QUIC (HTTP/3: start Chrome with --disable-quic "
                       "to see it over HTTP/2)")
    if skipped:
        lines.append("skipped connections: " + "; ".join(skipped))
    if summary.truncated:
        lines.append(f"note: {summary.truncated}; everything before it is imported")
    lines.extend(f"problem: {p}" for p in summary.problems)
    return lines


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
