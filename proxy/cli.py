"""The ``h2scope`` command line.

Each subcommand lives in its own module with a ``register(subparsers, common)``
function; this module only assembles them and maps outcomes to exit codes:
0 clean, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from proxy import __version__
from proxy.textio import escape_bytes_on_standard_streams

#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "proxy.commands.run",
    "proxy.commands.decode",
    "proxy.commands.export",
    "proxy.commands.check",
    "proxy.commands.diff",
    "proxy.commands.pcap",
    "proxy.commands.view",
    "proxy.commands.replay",
    "proxy.commands.serve",
    "proxy.commands.protoset",
    "proxy.commands.demo",
    "certs.cli",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback, exit 2."""


def default_confdir() -> Path:
    """The configuration directory: ``$H2SCOPE_HOME`` or ``~/.h2scope``."""
    env = os.environ.get("H2SCOPE_HOME")
    return Path(env).expanduser() if env else Path("~/.h2scope").expanduser()


def resolve_confdir(args: argparse.Namespace) -> Path:
    """``--confdir`` if given (before or after the subcommand), else the default."""
    value = getattr(args, "confdir", None)
    return Path(value).expanduser() if value else default_confdir()


def build_parser() -> argparse.ArgumentParser:
    # Options shared by every subcommand are declared on a parent parser with
    # SUPPRESS defaults, so `h2scope --confdir D ca path` and
    # `h2scope ca path --confdir D` both work and neither overwrites the other.
    # allow_abbrev=False everywhere: a prefix must not pass for an option
    # (`run --insec` silently meant --insecure, turning upstream verification off).
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--confdir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="configuration directory holding the CA and config.yaml "
        "(default: $H2SCOPE_HOME or ~/.h2scope)",
    )
    parser = _Parser(
        prog="h2scope",
        allow_abbrev=False,
        description="An HTTP/2 frame debugging proxy: decodes both directions of every "
        "connection into frames and annotated HPACK header blocks. Without a command, "
        "h2scope starts the proxy (h2scope run).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"h2scope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    parser.set_defaults(_commands=sub.choices)
    return parser


class _Parser(argparse.ArgumentParser):
    """h2scope's top-level parser: a mistyped command gets the one meant
    (``ruin``: run), as a mistyped option does."""

    def error(self, message: str) -> NoReturn:
        import difflib
        import re

        m = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if m:
            commands = re.findall(r"'([^']+)'", m.group(2))
            meant = difflib.get_close_matches(m.group(1), commands, 1, 0.6)
            if meant:
                message = f"unknown command {m.group(1)!r} (did you mean {meant[0]}?); " \
                    f"h2scope --help lists the commands"
        super().error(message)


def _unknown_options(args: argparse.Namespace, extras: list[str]) -> NoReturn:
    """Exit 2 with the usage of the command given, not h2scope's, naming what it did
    not take and the option meant when one is close (``--jsn``: ``--json``)."""
    import difflib

    command = args._commands.get(getattr(args, "command", None) or "")
    parser = command
    while parser is not None:  # (down to a subcommand's own command: ca path)
        found = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
                     None)
        chosen = found.choices.get(getattr(args, found.dest, None) or "") if found else None
        if chosen is None:
            break
        parser = command = chosen
    message = f"unrecognized arguments: {' '.join(extras)}"
    if command is None:
        raise SystemExit(message)  # (cannot be: argparse names the command first)
    options = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
    hints: list[tuple[str, str]] = []
    for given in (x.split("=", 1)[0] for x in extras if x.startswith("--")):
        word = given.lstrip("-")
        # --port for --listen-port (run), --listen-port for --port (serve): a part
        # of the other's name; else a typo (--jsn, --strem)
        meant = [o for o in options if len(word) > 2 and
                 (o[2:].endswith("-" + word) or word.endswith("-" + o[2:]))] or \
            difflib.get_close_matches(given, options, 1, 0.75)
        if meant:
            hints.append((given, meant[0]))
    if len(hints) == 1:
        message += f" (did you mean {hints[0][1]}?)"
    elif hints:
        message += " (did you mean " + ", ".join(f"{m} for {g}" for g, m in hints) + "?)"
    command.error(message + f"; {command.prog} --help lists its options")  # (exits 2)
    raise AssertionError("unreachable")


#: What ``h2scope`` does when no command is given.
DEFAULT_COMMAND = "run"


def _without_command(argv: Sequence[str]) -> bool:
    """True when ``argv`` names no command: ``h2scope``, ``h2scope -p 9000 --headless``.

    Only the top-level options are skipped over; the first other option or a
    word decides (a word is a command or a typo argparse will report).
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help", "--version"):
            return False
        if arg == "--confdir":
            i += 2
            continue
        if arg.startswith("--confdir="):
            i += 1
            continue
        return arg.startswith("-")
    return True


EXIT_INTERRUPTED = 130
"""Ctrl+C before a command's own handling of it (``run`` stops cleanly, exit 0):
128 + SIGINT, as shells report it."""


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # (the command itself, not a test calling main)
        # SIGTERM ends a command as Ctrl+C does, through its finally blocks: an
        # export's or a replay's unfinished output file is removed, not left as a
        # .part beside the target. ``run`` and the UI install their own handlers.
        import signal

        signal.signal(signal.SIGTERM, _terminated)
    try:
        return _main(argv)
    except KeyboardInterrupt:  # (while the commands' modules load: no traceback)
        return EXIT_INTERRUPTED


def _filter_values(argv: list[str]) -> list[str]:
    """``--filter -finding:any`` as ``--filter=-finding:any``: a filter may begin with
    its negation (docs/filters.md), which argparse would take for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--filter" and i + 1 < len(argv) and argv[i + 1][:1] == "-" \
                and argv[i + 1][:2] != "--" and len(argv[i + 1]) > 1:
            out.append(f"--filter={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _main(argv: Sequence[str] | None = None) -> int:
    escape_bytes_on_standard_streams()
    parser = build_parser()
    argv = _filter_values(list(sys.argv[1:] if argv is None else argv))
    if _without_command(argv):
        argv = [DEFAULT_COMMAND, *argv]
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is not None and first not in parser.get_default("_commands") and \
            os.path.isfile(first):
        print(f"h2scope: {first} is a file, not a command; to open a capture: h2scope view "
              f"{first} (h2scope --help lists the commands)", file=sys.stderr)
        return EXIT_USAGE
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unknown_options(args, extras)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # (here, not at exit: a failure to write is said as one)
        return code
    except UsageError as exc:
        print(f"h2scope: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `h2scope decode ... | head`: the reader went away; not an error.
        _quiet_stdout()
        return EXIT_OK
    except OSError as exc:
        # The system's refusal, not a bug: a full disk under an export or under
        # stdout (`> /dev/full`), a device that failed. One line, exit 1.
        where = f": {exc.filename}" if exc.filename else " (writing its output)"
        print(f"h2scope: {args.command or 'run'}{where}: {exc.strerror or exc}",
              file=sys.stderr)
        if exc.filename is None:  # (stdout's: its buffer would fail again at exit)
            _quiet_stdout()
        return EXIT_FAILURE


def _quiet_stdout() -> None:
    """Point the process's stdout at /dev/null, so that the flush at exit cannot
    fail again; only the real one (``main`` called with stdout replaced, as under a
    test runner's capture, leaves it alone)."""
    real = sys.__stdout__
    if real is None or sys.stdout is not real:
        return
    try:
        fd = real.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
