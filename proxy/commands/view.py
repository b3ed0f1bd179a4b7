"""``h2scope view FILE``: open a capture in the interactive UI.

The UI (``ui/``) is imported only when the command runs: the proxy and the
other commands never depend on Textual being importable.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  h2scope view session.h2scope
      browse a capture: connections, every frame, HPACK, flow control, streams
  h2scope view session.h2scope --filter 'type:HEADERS status:5xx'
      start with a filter applied (docs/filters.md)
  h2scope run --headless -q --record live.h2scope   (in one terminal), then
  h2scope view --follow live.h2scope                (in another)
      watch a capture while it is being recorded, like tail -f
  h2scope view dump.pcapng [--keylog-file keys.log]
      a tcpdump/Wireshark capture: imported to a private temporary capture
      first (h2scope import keeps one; docs/import.md)
  h2scope view chrome-net-export.json
      a Chrome net log: its HTTP/2 connections, frame by frame, imported the
      same way (docs/import.md)
  chromium --log-net-log=net.json --net-log-capture-mode=Everything &
  h2scope view --follow net.json
      Chrome's HTTP/2 live, with no proxy and no CA: the log as Chrome writes it

Press ? inside the viewer for every key; q quits.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "view",
        allow_abbrev=False,
        parents=[common],
        help="open a capture file in the interactive UI",
        description="Open a capture recorded with --record in the interactive UI "
        "(the same views as live, re-decoded from the recorded frames).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="capture file (plain or gzip); or a pcap/pcapng "
                   "or a Chrome net log, imported first")
    p.add_argument("--filter", metavar="EXPR", default="",
                   help="filter applied when the capture opens")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep reading as the file grows (a capture still being recorded, "
                   "or a Chrome net log Chrome is still writing); the view is live, as "
                   "under h2scope run")
    p.add_argument("--theme", choices=("auto", "dark", "light", "ansi"), default=None,
                   help="colour theme (default: ui.theme from the config, else auto)")
    add_protoset_argument(p)
    p.add_argument("--keylog-file", type=Path, metavar="KEYLOG",
                   help="for a pcap/pcapng FILE: decrypt its TLS with this key log "
                   "(as h2scope import --keylog-file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from proxy.cli import UsageError
    from proxy.filter import FilterError, compile_filter

    if args.filter:
        try:
            compile_filter(args.filter)
        except FilterError as exc:
            raise UsageError(f"--filter: {exc}") from None
    keys, theme, protosets = _ui_config(args)
    use_protosets([*protosets, *args.protoset])
    with contextlib.ExitStack() as stack:
        path = _capture_of(Path(args.file), args, stack)
        from ui.launch import run_view

        return _view(run_view, path, args, keys, theme)


def _capture_of(path: Path, args: argparse.Namespace, stack: contextlib.ExitStack) -> Path:
    """``path`` itself, or for a packet capture the private temporary capture it is
    imported to (removed when the view closes)."""
    from proxy.capture.netlog_import import looks_like_netlog
    from proxy.capture.pcap import is_packet_capture, sniff
    from proxy.cli import UsageError

    head = sniff(path)
    netlog = looks_like_netlog(head)
    if not is_packet_capture(head) and not netlog:  # (run_view says what else is wrong)
        if args.keylog_file is not None:
            raise UsageError("--keylog-file applies to a packet capture (pcap/pcapng)")
        return path
    if netlog and args.follow:
        return _follow_netlog(path, stack)
    if args.follow:
        raise UsageError(f"{path} is a packet capture: it cannot be followed (h2scope "
                         "import it, or record through h2scope run)")
    from proxy.commands.pcap import import_file, imported, report

    temp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="h2scope-import-")))
    out = temp / f"{path.stem}.h2scope"
    summary = import_file(path, out, args.keylog_file)
    first, *rest = report(summary, path, out, args.keylog_file is not None)
    for line in rest:
        print(line, file=sys.stderr)
    if not imported(summary):
        raise UsageError(first.removeprefix("h2scope import: "))
    return out


def add_protoset_argument(p: Any) -> None:
    """``--protoset`` on a parser or an argument group."""
    p.add_argument("--protoset", type=Path, action="append", default=[], metavar="FILE",
                   help="a FileDescriptorSet (protoc --descriptor_set_out=FILE "
                   "--include_imports api.proto; grpcurl's -protoset): gRPC messages in the "
                   "stream view get their field names, types and enum names; repeatable")


def use_protosets(paths: list[Path]) -> None:
    """Load ``--protoset`` files for the UI's stream view (UsageError if one is bad)."""
    if not paths:
        return
    from proxy.protoset import protoset_option
    from ui.model import body

    body.SCHEMA = protoset_option(paths)


READY_TIMEOUT = 30.0
"""How long ``view --follow`` waits for a net log's constants."""


def _follow_netlog(path: Path, stack: contextlib.ExitStack) -> Path:
    """``view --follow`` of a Chrome net log Chrome is still writing: a thread imports
    it as it grows into a private temporary capture, which the UI follows."""
    import threading

    from proxy.capture.netlog_import import NetlogError, TailText, import_netlog
    from proxy.capture.writer import CaptureWriter
    from proxy.cli import UsageError

    if sniff_gzip(path):
        raise UsageError(f"{path} is gzipped: it is not being written any more; open it "
                         "without --follow")
    temp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="h2scope-netlog-")))
    out = temp / f"{path.stem}.h2scope"
    writer = CaptureWriter(out, config={"imported_from": path.name}, flush_interval=0.1)
    stop, ready = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                import_netlog(TailText(f, stop), writer, ready=ready.set)
        except BaseException as exc:
            failed.append(exc)
        finally:
            ready.set()
            writer.close()

    thread = threading.Thread(target=run, name="netlog-follow", daemon=True)
    thread.start()

    def done() -> None:
        stop.set()
        thread.join(5)

    stack.callback(done)
    if not ready.wait(READY_TIMEOUT):
        raise UsageError(f"{path}: no net log constants after {READY_TIMEOUT:g} s (Chrome "
                         "writes them first, at start): is it a net log being written?")
    if failed:
        exc = failed[0]
        raise UsageError(f"{path}: {exc}" if isinstance(exc, (NetlogError, OSError))
                         else f"{path}: cannot follow it: {exc!r}")
    print(f"following the Chrome net log {path} (its HTTP/2 frames appear as Chrome "
          "writes them, a second or two behind)", file=sys.stderr)
    return out


def sniff_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _view(run_view: Any, path: Path, args: argparse.Namespace, keys: dict[str, str],
          theme: str) -> int:
    from proxy.capture.reader import CaptureFormatError
    from proxy.cli import UsageError
    from ui.launch import NotATerminal

    try:
        label = args.file if Path(args.file) != path else None  # (an import's source)
        return int(run_view(path, keys=keys, theme_name=args.theme or theme,
                            initial_filter=args.filter, follow=args.follow, label=label))
    except FileNotFoundError:
        raise UsageError(f"no such capture file: {args.file}") from None
    except CaptureFormatError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    except IsADirectoryError:
        raise UsageError(f"{args.file} is a directory, not a capture file") from None
    except NotATerminal as exc:
        raise UsageError(f"{exc}: for the frames as text, run h2scope export {args.file} "
                         "--format text (or --format jsonl)") from None


def _ui_config(args: argparse.Namespace) -> tuple[dict[str, str], str, list[Path]]:
    """The user's keymap, theme and protosets from config.yaml (defaults when there is
    none). A config file with a mistake is a usage error, as for ``run``."""
    from proxy.cli import UsageError, resolve_confdir
    from proxy.config import ConfigError, default_config_path, load_config

    try:
        confdir = resolve_confdir(args)
        config = load_config(default_config_path(confdir), {"confdir": confdir})
    except ConfigError as exc:  # (as run says it: a typo in the keymap is not ignored)
        raise UsageError(str(exc)) from None
    except Exception:
        return {}, "auto", []
    return dict(config.ui.keymap), config.ui.theme, [Path(p) for p in config.ui.protosets]
