"""``h2scope run`` (also plain ``h2scope``): start the proxy.

Flags follow mitmproxy's where the concept is the same. They override the
config file (``--config FILE`` or ``<confdir>/config.yaml``); see
docs/configuration.md. Exit status: 0 after a clean shutdown (SIGINT, SIGTERM
or SIGHUP), 1 when the proxy cannot run (a port in use, ...), 2 for a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.config import CLEAR, Config, ConfigError, default_config_path, load_config
from proxy.net.modes import ModeKind

EPILOG = """\
examples:
  h2scope run --headless
      explicit proxy on 127.0.0.1:8080, frames printed to stdout; then, elsewhere:
      curl --cacert "$(h2scope ca path)" -x http://127.0.0.1:8080 https://example.com/
  h2scope run --headless --filter 'type:HEADERS,RST_STREAM or finding:any'
      print only header frames, resets and frames with findings (docs/filters.md)
  h2scope run --headless --format jsonl | jq -c 'select(.type == "RST_STREAM")'
      one JSON object per frame (and per event), for scripts (docs/export.md describes the fields)
  h2scope run --headless --mode reverse:https://example.com -p 8443
      reverse proxy: the client connects to 127.0.0.1:8443 but keeps the server's name,
      whose certificate h2scope mints (signed by the h2scope CA), e.g.
      curl --cacert "$(h2scope ca path)" --connect-to example.com:443:127.0.0.1:8443 https://example.com/
  h2scope run --headless --mode regular --mode socks5@1080 --record session.h2scope
      two listeners (HTTP proxy on 8080, SOCKS5 on 1080), everything recorded
  h2scope run --headless --mode reverse:http://127.0.0.1:8000 -p 9000 --quiet
      h2c (cleartext HTTP/2) reverse proxy, no per-frame output
  h2scope run --mode upstream:http://proxy.corp.example:3128 --upstream-auth me:secret
      behind a corporate proxy: h2scope's connections go out through it (CONNECT)

trusting the CA:
  Clients must trust h2scope's CA to accept its certificates: `h2scope ca path`
  prints the PEM file, `h2scope ca install-hints` says how to trust it in browsers,
  curl, Python, Node, Java and the OS. Browsers can also fetch it at http://h2scope/
  through the proxy.

exit status: 0 after a clean stop (SIGINT/SIGTERM/SIGHUP), 1 if the proxy cannot start
(its port is taken, the --record file is being written by another h2scope, the disk
is full), 2 for a usage or config error, 3 with --fail-on when findings of that severity
were seen (the summary printed on stderr at the end lists them).

precedence: flags > $SSLKEYLOGFILE (for sslkeylogfile) > config file > defaults.
Every option and its config-file key: docs/configuration.md, config.example.yaml.
"""

#: Config keys each flag sets, and the flag's name for error messages.
FLAG_KEYS: dict[str, tuple[str, str]] = {
    "listen_host": ("listen.host", "--listen-host"),
    "listen_port": ("listen.port", "--listen-port"),
    "allow_remote": ("listen.allow_remote", "--allow-remote"),
    "modes": ("modes", "--mode"),
    "insecure": ("upstream.insecure", "--insecure"),
    "upstream_ca": ("upstream.ca_file", "--upstream-ca"),
    "client_certs": ("upstream.client_certs", "--client-certs"),
    "upstream_auth": ("upstream.auth", "--upstream-auth"),
    "ignore_hosts": ("ignore_hosts", "--ignore-hosts"),
    "allow_hosts": ("allow_hosts", "--allow-hosts"),
    "proxyauth": ("proxyauth", "--proxyauth"),
    "sslkeylogfile": ("sslkeylogfile", "--sslkeylogfile"),
    "record": ("record.file", "--record"),
    "max_data_bytes": ("record.max_data_bytes", "--record-max-data"),
    "filter": ("headless.filter", "--filter"),
    "quiet": ("headless.quiet", "--quiet"),
    "annotate": ("headless.annotate", "--annotate"),
    "output_format": ("headless.format", "--format"),
    "fail_on": ("headless.fail_on", "--fail-on"),
    "time": ("headless.time", "--time"),
    "log_file": ("log.file", "--log-file"),
    "log_level": ("log.level", "--log-level"),
}
CLEAR_FLAGS = {
    "no_proxyauth": ("proxyauth", "--no-proxyauth"),
    "no_sslkeylogfile": ("sslkeylogfile", "--no-sslkeylogfile"),
    "no_record": ("record.file", "--no-record"),
}
"""Flags that unset a key the config file (or $SSLKEYLOGFILE) sets."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        allow_abbrev=False,
        parents=[common],
        help="start the proxy (the default when no command is given)",
        description="Start the HTTP/2 debugging proxy: intercept TLS with h2scope's CA, "
        "relay every frame unchanged and decode both directions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Every default is None ("not given") so the config file's value stands.
    # (--config sits with --confdir, in the options of no group, not under output.)
    p.add_argument("--config", metavar="FILE",
                   help="config file (default: <confdir>/config.yaml if present)")
    listen = p.add_argument_group("listening")
    listen.add_argument("--listen-host", metavar="ADDR",
                        help="address to listen on (default 127.0.0.1; a non-loopback "
                        "address needs --allow-remote)")
    listen.add_argument("-p", "--listen-port", metavar="PORT", type=int,
                        help="port of the modes without their own @PORT (default 8080; 0 picks a "
                        "free port)")
    listen.add_argument("--mode", dest="modes", action="append", metavar="MODE",
                        help="regular, reverse:https://HOST[:PORT], reverse:http://HOST[:PORT], "
                        "socks5 or upstream:http://PROXYHOST:PORT (an explicit proxy going out "
                        "through another HTTP proxy), each optionally followed by @PORT or "
                        "@HOST:PORT; repeat for several listeners (default: regular)")
    listen.add_argument("--allow-remote", action=argparse.BooleanOptionalAction,
                        help="allow listening on a non-loopback address (anyone who can "
                        "reach it can use the proxy)")
    auth = listen.add_mutually_exclusive_group()
    auth.add_argument("--proxyauth", metavar="USER:PASS",
                      help="require these credentials from clients (Proxy-Authorization, "
                           "SOCKS5); 'proxyauth' in the config file keeps them out of ps")
    auth.add_argument("--no-proxyauth", action="store_true",
                      help="require no credentials, whatever the config file's proxyauth says")

    upstream = p.add_argument_group("upstream servers")
    upstream.add_argument("--insecure", action=argparse.BooleanOptionalAction,
                          help="do not verify upstream servers' certificates")
    upstream.add_argument("--upstream-ca", metavar="FILE",
                          help="PEM file of extra CAs to trust for upstream servers")
    upstream.add_argument("--upstream-auth", metavar="USER:PASS",
                          help="credentials (Basic) for the upstream proxy of an "
                          "upstream:http://HOST:PORT mode (not in its URL; the config "
                          "file keeps them out of ps)")
    upstream.add_argument("--client-certs", metavar="PATH",
                          help="client certificate for upstream servers that ask for one "
                          "(mutual TLS): a PEM file with the certificate and its unencrypted "
                          "key, or a directory of HOST.pem files")
    upstream.add_argument("--allow-hosts", action="append", metavar="REGEX",
                          help="intercept only connections whose host:port matches REGEX "
                          "(re.search; repeatable) and pass all others through: the opposite "
                          "of --ignore-hosts")
    upstream.add_argument("--ignore-hosts", action="append", metavar="REGEX",
                          help="pass connections whose host:port matches REGEX through "
                          "untouched (repeatable)")
    keylog = upstream.add_mutually_exclusive_group()
    keylog.add_argument("--sslkeylogfile", metavar="FILE",
                        help="append TLS secrets of both legs for Wireshark "
                        "(default: $SSLKEYLOGFILE)")
    keylog.add_argument("--no-sslkeylogfile", action="store_true",
                        help="write no TLS secrets, whatever $SSLKEYLOGFILE or the config "
                        "file say")

    out = p.add_argument_group("output")
    out.add_argument("--headless", action="store_true",
                     help="print frames to stdout instead of starting the UI")
    out.add_argument("--filter", metavar="EXPR",
                     help="print only frames matching EXPR (docs/filters.md); with the UI, "
                     "the filter it opens with")
    out.add_argument("-q", "--quiet", action=argparse.BooleanOptionalAction,
                     help="headless: print no frames (--no-quiet: print them, when the "
                     "config file says quiet)")
    out.add_argument("--annotate", action=argparse.BooleanOptionalAction,
                     help="headless, text: show how each header field was HPACK-encoded "
                     "(representation, index, Huffman, inserts, evictions, size updates; "
                     "--no-annotate: not, when the config file says annotate)")
    out.add_argument("--format", dest="output_format", metavar="{text,jsonl}",
                     help="headless: text (default; a line per frame, like nghttp -v) or "
                     "jsonl (one JSON object per frame and per event, as export --format "
                     "jsonl writes, for jq)")
    out.add_argument("--fail-on", metavar="SEVERITY",
                     help="headless: exit with status 3 when the proxy stops if a finding "
                     "of SEVERITY (error, warning or info) or worse was seen (none: never, "
                     "the default); a summary of what was seen is printed on stderr either "
                     "way")
    out.add_argument("--time", metavar="FORMAT",
                     help="headless, text: the time column: relative (seconds since the "
                     "first event, the default), wall (local date and time, 2026-12-08 "
                     "00:32:27.110) or utc (2026-12-08T00:32:27.110Z), to line frames up "
                     "with a server's log over a long run")
    record = out.add_mutually_exclusive_group()
    record.add_argument("--record", metavar="FILE",
                        help="record every connection to FILE (an existing FILE is replaced)")
    record.add_argument("--no-record", action="store_true",
                        help="do not record, whatever the config file's record.file says")
    from proxy.commands.view import add_protoset_argument

    add_protoset_argument(out)
    out.add_argument("--record-max-data", dest="max_data_bytes", metavar="N", type=int,
                     help="with --record: keep at most N bytes of each DATA payload")
    out.add_argument("--log-file", metavar="FILE",
                     help="write h2scope's own log to FILE (default: stderr when headless, "
                     "<confdir>/h2scope.log while the UI runs)")
    out.add_argument("--log-level", metavar="LEVEL",
                     help="debug, info, warning (default), error or critical")


def build_config(args: argparse.Namespace) -> Config:
    """The config file plus the flags given; raises :class:`ConfigError`."""
    from proxy.cli import resolve_confdir

    confdir = resolve_confdir(args)
    path = config_path(args, confdir)
    overrides: dict[str, Any] = {"confdir": confdir}
    names = {"confdir": "--confdir"}
    for attr, (key, flag) in FLAG_KEYS.items():
        overrides[key] = getattr(args, attr, None)
        names[key] = flag
    for attr, (key, flag) in CLEAR_FLAGS.items():
        if getattr(args, attr, False):
            overrides[key] = CLEAR
            names[key] = flag
    if overrides["sslkeylogfile"] is None and os.environ.get("SSLKEYLOGFILE"):
        overrides["sslkeylogfile"] = os.environ["SSLKEYLOGFILE"]
        names["sslkeylogfile"] = "$SSLKEYLOGFILE"
    return load_config(path, overrides, flag_names=names)


def config_path(args: argparse.Namespace, confdir: Path) -> Path | None:
    """The config file a run loads: ``--config FILE``, else ``<confdir>/config.yaml``
    if it exists, else None."""
    return Path(args.config).expanduser() if args.config else default_config_path(confdir)


def start_lines(args: argparse.Namespace, config: Config) -> list[str]:
    """The start-up lines saying what was loaded from where: the config file (when
    one was), and the TLS key log with what turned it on — $SSLKEYLOGFILE, set for
    browsers and curl, turns it on for h2scope too, which must not go unsaid."""
    lines = []
    path = config_path(args, config.confdir)
    if path is not None:
        lines.append(f"h2scope: config: {path}")
    if config.sslkeylogfile is not None:
        lines.append(keylog_line(config.sslkeylogfile, keylog_source(args)))
    if config.upstream.insecure:
        lines.append("h2scope: warning: upstream certificates are NOT verified "
                     f"({'--insecure' if getattr(args, 'insecure', None) else 'upstream.insecure'}"
                     "): any server, or anyone between h2scope and it, is taken for the "
                     "host the client asked for")
    return lines


def keylog_source(args: argparse.Namespace) -> str:
    """What set ``sslkeylogfile`` (as :func:`build_config` chose it)."""
    if getattr(args, "sslkeylogfile", None) is not None:
        return "--sslkeylogfile"
    if os.environ.get("SSLKEYLOGFILE"):
        return "$SSLKEYLOGFILE"
    return "the config file"


def keylog_line(path: Path, source: str, *, off: str = "--no-sslkeylogfile turns it off") -> str:
    """The start-up line for a TLS key log: where, set by what, how to turn it off."""
    how = "" if source == "--sslkeylogfile" else f"; {off}"
    return f"h2scope: writing TLS secrets of both legs to {path} (from {source}{how})"


def banner(config: Config, addresses: list[tuple[str, str]], ca_path: Path) -> list[str]:
    """The start-up lines for stderr: where it listens, the CA and how to try it."""
    lines = [f"h2scope: {mode} proxy listening on {addr}" for mode, addr in addresses]
    lines.append(f"h2scope: CA certificate: {ca_path}")
    for mode, listening in addresses:
        addr = reachable(listening)
        if mode.startswith(("regular", "upstream:")):
            lines.append(f"h2scope: try: curl --cacert {ca_path} -x http://{addr}"
                         f"{_proxy_user(config)} https://example.com/")
            break
        if mode.startswith("socks5"):
            lines.append(f"h2scope: try: curl --cacert {ca_path} --socks5-hostname {addr}"
                         f"{_proxy_user(config)} https://example.com/")
            break
        if mode.startswith("reverse:"):
            lines.append(f"h2scope: try: {_reverse_curl(mode, addr, ca_path)}")
            break
    if config.record.file is not None:
        lines.append(f"h2scope: recording every connection to {config.record.file}")
    return lines


def reachable(addr: str) -> str:
    """``host:port`` a client on this machine can connect to: a wildcard listen
    address (``0.0.0.0``, ``[::]``) is reached through loopback."""
    host, _, port = addr.rpartition(":")
    if host in ("0.0.0.0", ""):
        return f"127.0.0.1:{port}"
    if host in ("[::]", "::"):
        return f"[::1]:{port}"
    return addr


def _proxy_user(config: Config) -> str:
    """curl's ``--proxy-user USER`` for ``proxyauth`` (with a leading space), or "".

    The password is not printed (h2scope never echoes a secret: start-up lines
    end up in terminals' scrollback and CI logs); given only the user name, curl
    asks for the password (``Enter proxy password for user 'USER':``), so the
    line still works when copied. Explicit and SOCKS5 modes both ask for it.
    """
    if not config.proxyauth:
        return ""
    import shlex

    return f" --proxy-user {shlex.quote(config.proxyauth.partition(':')[0])}"


def _reverse_curl(mode: str, addr: str, ca_path: Path) -> str:
    """A curl line for a reverse mode listening at ``addr``.

    With TLS the client must keep the target's name: without SNI (a URL with an
    IP) h2scope's leaf is minted for the target host, not the listen address.
    """
    from proxy.net.modes import ModeError, parse_mode

    try:
        spec = parse_mode(mode)
    except ModeError:
        spec = None
    if spec is None or spec.target is None:
        return f"curl --cacert {ca_path} https://{addr}/"
    if spec.scheme != "https":  # h2c: HTTP/2 with prior knowledge (RFC 9113 §3.3)
        return f"curl --http2-prior-knowledge http://{addr}/"
    default = ":443" if spec.port == 443 else ""
    url_host = spec.target[:-len(default)] if default else spec.target
    return f"curl --cacert {ca_path} --connect-to {spec.target}:{addr} https://{url_host}/"


def _print_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    closed = _reopen_closed_stdout()
    config = build_config(args)
    if closed:
        _print_err("h2scope: stdout is closed: the frame log is not printed (the proxy "
                   "relays and records as usual)")
    if config.sslkeylogfile is not None:
        from certs.files import key_log_problem

        problem = key_log_problem(config.sslkeylogfile)  # (and made 0600: it holds keys)
        if problem:
            raise ConfigError(problem, key="sslkeylogfile")
    for line in start_lines(args, config):
        _print_err(line)
    if config.upstream.auth and not any(m.kind is ModeKind.UPSTREAM for m in config.mode_specs):
        _print_err("h2scope: warning: upstream.auth (--upstream-auth) is set but no mode is "
                   "upstream:http://HOST:PORT, so no upstream proxy will receive it")
    warning = remote_warning(config)
    if warning is not None:
        _print_err(warning)
    note = replacing_note(config.record.file)
    if note is not None and not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        _print_err(note)  # (the UI: said before it takes the screen)
    if not args.headless:
        if sys.stdin.isatty() and sys.stdout.isatty():
            from proxy.commands.view import use_protosets
            from ui.launch import run_live  # Textual is imported only when the UI runs

            use_protosets([*map(Path, config.ui.protosets), *args.protoset])
            # (--filter on the command line: the UI opens with it, as view --filter
            # does; headless.filter in the config file is the printer's)
            return run_live(config, initial_filter=args.filter or "")
        # Piped or redirected (a script, a service, `| grep`): the UI needs a
        # terminal, the frame log does not.
        _print_err("h2scope: not a terminal: running headless (use --headless to "
                   "silence this note)")
    from proxy.protoset import protoset_option

    # The protosets name gRPC messages' fields in the headless log too.
    return _serve(config, protoset_option([*map(Path, config.ui.protosets), *args.protoset]),
                  replacing=note)


def _reopen_closed_stdout() -> bool:
    """Started with stdout closed (``>&-``, a service manager's choice): fd 1 is
    opened on /dev/null before a socket or the recording can take it, and
    ``sys.stdout`` writes there (it was None: the stop's flush raised). True if so."""
    if sys.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            os.fstat(sys.stdout.fileno())
            return False
        if sys.stdout is not sys.__stdout__:
            return False  # (replaced in-process, as a test runner's capture: left alone)
    try:
        os.fstat(1)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 1:
            os.dup2(fd, 1)
            os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    return True


def replacing_note(path: Path | None) -> str | None:
    """A start-up line when recording will replace a file that holds something (a
    command run again from the shell's history must not lose a capture unsaid);
    None otherwise — also when the recorder will refuse the file rather than
    replace it (another recorder holds it, it is a symbolic link, it cannot be
    written), and then says why."""
    if path is None or path.is_symlink() or (path.exists() and not os.access(path, os.W_OK)):
        return None
    try:
        size = path.stat().st_size if path.is_file() else 0
    except OSError:
        return None
    from certs.files import held_by_another_writer

    if size == 0 or held_by_another_writer(path):
        return None
    from proxy.textlog import byte_count

    return f"h2scope: note: recording replaces {path} ({byte_count(size)} were there)"


def remote_warning(config: Config) -> str | None:
    """The one start-up warning about listeners reachable from other machines, or None.

    Per non-loopback address, the modes listening there; louder without
    ``proxyauth``. (The proxy core logs the same fact as information, for a log
    file.)
    """
    from proxy.net.modes import is_loopback

    hosts: dict[str, list[str]] = {}
    for mode in config.mode_specs:
        host = config.listen_address_of(mode)[0]
        if not is_loopback(host):
            hosts.setdefault(host, []).append(mode.spec)
    if not hosts:
        return None
    where = ", ".join(f"{host} ({', '.join(specs)})" for host, specs in hosts.items())
    text = (f"h2scope: warning: listening on {where}, not loopback: anyone who can reach "
            f"{'this address' if len(hosts) == 1 else 'these addresses'} can use the proxy "
            f"and read what goes through it")
    if not config.proxyauth:
        text += ", and no proxyauth is set (--proxyauth USER:PASS requires credentials)"
    return text


def _serve(config: Config, protoset: Any = None, replacing: str | None = None) -> int:
    """Run the proxy until SIGINT/SIGTERM: 0 after a clean stop, 1 if it cannot start."""
    import asyncio

    from proxy.observe import huffman

    _configure_logging(config)
    huffman.prepare()  # (else the first connection's first header block waits for it)
    # (the signal handlers _serve_async leaves stay: a signal after the stop, while
    # the process ends, is ignored, not an exit 130 that hides the verdict)
    return asyncio.run(_serve_async(config, protoset, _Stopping(), replacing))


def _configure_logging(config: Config) -> None:
    handler: logging.Handler
    if config.log.file is not None:
        try:
            from certs.files import private_append

            private_append(config.log.file)  # (hosts, errors: 0600, as captures are)
            handler = _LogFile(config.log.file)
        except OSError as exc:
            raise ConfigError(f"cannot open {config.log.file}: {exc.strerror or exc}",
                              key="log.file") from None
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handlers: list[logging.Handler] = []
    if config.log.file is None:
        # On the terminal a line per message; an internal error's traceback goes
        # to <confdir>/h2scope.log (made when first needed), which the line names.
        details = Path(config.confdir) / "h2scope.log"
        handler = logging.StreamHandler(sys.stderr)
        # (with the prefix of h2scope's other lines there, which scripts key on)
        handler.setFormatter(_LineOnly(f"h2scope: {fmt}", details))
        traces = _PrivateLog(details)
        traces.addFilter(lambda record: record.exc_info is not None)
        traces.setFormatter(logging.Formatter(fmt))
        handlers.append(traces)
    else:
        handler.setFormatter(logging.Formatter(fmt))
    logger = logging.getLogger("h2scope")
    logger.handlers[:] = [handler, *handlers]
    logger.setLevel(config.log.level.upper())
    logger.propagate = False


class _LineOnly(logging.Formatter):
    """A log line without its traceback, which it says is in ``details``."""

    def __init__(self, fmt: str, details: Path) -> None:
        super().__init__(fmt)
        self.details = details

    def format(self, record: Any) -> str:
        if record.exc_info is None:
            return super().format(record)
        import copy

        line = copy.copy(record)
        exc = record.exc_info[1]
        line.exc_info = line.exc_text = None
        line.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc} " \
                   f"(the traceback is in {self.details})"
        line.args = ()
        return super().format(line)


class _LogFile(logging.FileHandler):
    """``log.file``: a record the file refuses (a full disk) is said once on stderr,
    not with logging's traceback of some 40 lines for every record."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.said = False

    def handleError(self, record: Any) -> None:
        if self.said:
            return
        self.said = True
        exc = sys.exc_info()[1]
        why = getattr(exc, "strerror", None) or exc
        with contextlib.suppress(OSError, ValueError):
            _print_err(f"h2scope: cannot write the log file {self.baseFilename}: {why}: "
                       "log records are lost until it can be written (the proxy goes on)")

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # (what the full disk kept)
            super().close()


class _PrivateLog(logging.FileHandler):
    """A log file made when the first record comes, mode 0600 (it names hosts)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self) -> Any:
        from certs.files import ensure_private_dir, private_append

        ensure_private_dir(Path(self.baseFilename).parent)
        private_append(self.baseFilename)
        return super()._open()

    def handleError(self, record: Any) -> None:
        pass  # (the terminal's line said what happened; a log that cannot be written adds nothing)


def _target_host(target: str | None, sni: str | None) -> str | None:
    if target:  # always host:port, IPv6 in brackets
        return (target.rpartition(":")[0] or target).strip("[]") or None
    return sni


def event_filter(text: str) -> Callable[[Any, Any], bool]:
    """The headless printer's predicate for a filter text (docs/filters.md).

    Frames go through the filter, with their connection (conn id, target host
    or SNI) and, when the filter uses status/method/path, their stream's
    headers. Connection lines and connection-level findings are always shown;
    what a frame causes (settings in force, a PING's round trip, a flow-control
    stall or reopening: ``AFTER_ITS_FRAME``) with that frame — the printer holds
    them until it, and drops them if the filter hides it; other observer events
    (stream states) and HTTP/1.1 messages only without a filter.
    """
    from proxy.capture.export_text import asks_findings
    from proxy.events import ConnectionEvent, Http1MessageObserved
    from proxy.filter import compile_filter
    from proxy.filter_context import FrameMatcher
    from proxy.observe.events import ConnectionFindingRaised, Desynced, FrameObserved
    from proxy.textlog import AFTER_ITS_FRAME

    match = FrameMatcher(compile_filter(text))
    always = (ConnectionEvent, Desynced, ConnectionFindingRaised, *AFTER_ITS_FRAME)

    def accept(ev: Any, info: Any) -> bool:
        if isinstance(ev, FrameObserved):
            if match(info.conn_id, _target_host(info.target, info.sni), ev):
                matched[0] += 1
                return True
            return False
        if isinstance(ev, Http1MessageObserved):
            return False
        return isinstance(ev, always)
    matched = [0]
    accept.matched = matched  # type: ignore[attr-defined]
    accept.asks_findings = asks_findings(text)  # type: ignore[attr-defined]

    def finding(ev: Any, info: Any) -> bool:
        return match.finding(info.conn_id, _target_host(info.target, info.sni), ev.finding,
                             ev.direction)
    accept.finding = finding  # type: ignore[attr-defined]
    return accept


def no_match_note(text: str, accept: Any, frames: int, http1: int) -> str | None:
    """At the stop of a filtered headless run that printed no frame: what export and
    the UI say then (the live log had been silent), with their typo hints."""
    from proxy.filter import no_match_hint

    if getattr(accept, "matched", [1])[0]:
        return None
    seen = f"{frames:,} HTTP/2 frame{'s' if frames != 1 else ''} seen"
    if not frames and http1:
        seen += ("; the connections were HTTP/1.x: a filter selects HTTP/2 frames, and "
                 "HTTP/1.x messages show without one")
    return f"h2scope: no frame matched --filter {text!r} ({seen}){no_match_hint(text)}"


def _sinks(config: Config, protoset: Any = None) -> list[Any]:
    """The event-bus sinks of this run but the recorder (:func:`open_recorder`, once
    the listeners are bound): the headless printer and the run's summary.

    The printer writes to stdout through a thread (:mod:`proxy.background_output`):
    a reader that stops reading costs frame log lines, counted, never the traffic
    or the signals."""
    from proxy.background_output import background
    from proxy.headless import HeadlessPrinter

    def dropping() -> None:
        _print_err("h2scope: stdout is not read fast enough: frame log lines are dropped "
                   "(counted in the summary); the proxy goes on relaying")

    text = config.headless.filter
    out: Any = background(sys.stdout, on_drop=dropping)
    printer = HeadlessPrinter(out, filter=event_filter(text) if text.strip() else None,
                              quiet=config.headless.quiet,
                              annotate=config.headless.annotate,
                              jsonl=config.headless.format == "jsonl", protoset=protoset,
                              time=config.headless.time)
    from proxy.summary import RunSummary

    return [printer, RunSummary()]


def capture_config(config: Config) -> dict[str, Any]:
    """What a capture's header keeps of the configuration: what shaped the traffic."""
    return {
        "modes": list(config.modes),
        "listen": f"{config.listen_host}:{config.listen_port}",
        "insecure": config.insecure,
        "ignore_hosts": list(config.ignore_hosts),
        "allow_hosts": list(config.allow_hosts),
        "max_data_bytes": config.record.max_data_bytes,
    }


_CANNOT_START = frozenset({errno.EBUSY, errno.ENOSPC, errno.EDQUOT, errno.EIO})
"""Why a recording cannot start that is no usage error: another program writing the
file, a full disk, a failing device (the proxy cannot start: exit 1)."""


def open_recorder(config: Config) -> Any:
    """A CaptureRecorder sink writing ``record.file``, or None when not recording."""
    if config.record.file is None:
        return None
    from proxy.capture.recorder import CaptureRecorder
    from proxy.capture.writer import CaptureWriter

    try:
        writer = CaptureWriter(config.record.file, config=capture_config(config),
                               max_data_bytes=config.record.max_data_bytes)
    except OSError as exc:
        if exc.errno in _CANNOT_START:  # (the system's state, not what was asked: exit 1)
            raise OSError(exc.errno, f"cannot record to it: {exc.strerror or exc}",
                          str(config.record.file)) from None
        hint = ""
        if isinstance(exc, FileNotFoundError):
            hint = f" (create the directory {Path(config.record.file).parent} first)"
        raise ConfigError(f"cannot record to {config.record.file}: {exc.strerror or exc}"
                          f"{hint}", key="record.file") from None
    return CaptureRecorder(writer)


def held_recording(config: Config) -> str | None:
    """Why ``record.file`` is refused before the proxy binds anything (another
    recorder holds it), or None: the recorder itself opens it once listening."""
    from certs.files import held_by_another_writer

    path = config.record.file
    if path is None or not held_by_another_writer(path):
        return None
    return (f"run: {path}: cannot record to it: another program is writing it (another "
            "h2scope recording to the same file?): choose another file")


def _log_to_stderr_if_recording_to_stdout(recorder: Any, sinks: list[Any]) -> None:
    """``--record /dev/stdout`` (or ``--record -``'s like: the file fd 1 is): the
    frame log would be mixed into the capture's bytes, so it goes to stderr."""
    printer = next((s for s in sinks if hasattr(s, "not_printed")), None)
    fd = getattr(getattr(recorder, "writer", None), "_fd", None)
    if printer is None or fd is None:
        return
    try:
        ours, stdout = os.fstat(fd), os.fstat(1)
    except (OSError, ValueError):
        return
    if (ours.st_dev, ours.st_ino) != (stdout.st_dev, stdout.st_ino):
        return
    from proxy.background_output import BackgroundOutput, background

    if isinstance(printer.out, BackgroundOutput):
        with contextlib.suppress(OSError, ValueError):
            printer.out.close()  # (nothing written yet: its thread ends)
    printer.out = background(sys.stderr)
    _print_err("h2scope: the recording goes to stdout: the frame log goes to stderr instead")


async def _serve_async(config: Config, protoset: Any = None,
                       stopping: _Stopping | None = None, replacing: str | None = None) -> int:
    """``replacing``: the line that says the recording replaces a file, said once
    the proxy is listening (a start that fails leaves the file as it was)."""
    import asyncio
    import contextlib
    import signal

    from proxy.observe.findings import Severity
    from proxy.server import ProxyServer, ProxyStartError
    from proxy.summary import EXIT_FINDINGS, RunSummary

    held = held_recording(config)
    if held is not None:  # (refused before anything is bound or touched)
        _print_err(f"h2scope: {held}")
        return 1
    sinks = _sinks(config, protoset)
    failed = ""
    server = ProxyServer(config, sinks)
    try:
        await server.start()
    except ProxyStartError as exc:
        _print_err(f"h2scope: {start_error(config, server, exc)}")
        return 1
    # Only now, listening, is the recording opened: a start that failed (a port in
    # use) had truncated the capture --record names. (No await since the bind: no
    # connection is handled before the recorder is subscribed.)
    if replacing is not None:
        _print_err(replacing)
    try:
        recorder = open_recorder(config)
    except BaseException:
        await server.stop()
        raise
    recorders = [] if recorder is None else [recorder]
    if recorder is not None:
        assert server.bus is not None
        server.bus.subscribe(recorder)
        sinks.append(recorder)
        _log_to_stderr_if_recording_to_stdout(recorder, sinks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    # SIGHUP: the terminal (an ssh session, a tmux pane) went away; a service
    # stops as cleanly as on SIGTERM (its summary, its recording's end).
    for sig in (signal.SIGINT, signal.SIGTERM, *_HANGUP):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        assert server.state is not None
        addresses = [(spec, _hostport(*addr)) for spec, addr in server.addresses.items()]
        for line in banner(config, addresses, server.state.certs.ca_cert_path):
            _print_err(line)
        await stop.wait()
        _print_err("h2scope: stopping: closing connections")
    finally:
        # An impatient second Ctrl-C (or `timeout -s INT`, which signals the whole
        # group) had raised KeyboardInterrupt here: no "recorded to", no summary, no
        # verdict, exit 130. From here on a plain handler takes the signals — the
        # loop's would run only between the steps of the stop, and go with the loop
        # (a signal after it: KeyboardInterrupt again) — until the process ends.
        stopping = stopping or _Stopping()
        # (blocked while the handlers change hands: removing the loop's restores the
        # default handler, and a signal in between raised KeyboardInterrupt; blocked,
        # it waits in the kernel for the plain handler)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, installed) if installed else None
        try:
            for sig in installed:
                loop.remove_signal_handler(sig)
                stopping.take(sig)
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        await server.stop()  # closes every connection, then lets the sinks drain
        printer = next((s for s in sinks if hasattr(s, "not_printed")), None)
        if printer is not None:
            await asyncio.to_thread(printer.finish)  # (what is queued for stdout)
        for rec in recorders:
            try:
                rec.close()  # flushes and fsyncs the capture
                _print_err(f"h2scope: recorded to {config.record.file}")
            except OSError as exc:
                failed = (f"h2scope: the recording {config.record.file} is incomplete: "
                          f"{exc.strerror or exc} (h2scope check {config.record.file} "
                          "reads what was written)")
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    if stopping is not None:
        stopping.finish()  # (stopped: a signal now changes nothing)
    summary = next(s for s in sinks if isinstance(s, RunSummary))
    for line in summary.lines():
        _print_err(f"h2scope: {line}")
    text = config.headless.filter
    shown = next((s for s in sinks if hasattr(s, "filter")), None)
    if text.strip() and shown is not None and not config.headless.quiet:
        note = no_match_note(text, shown.filter, sum(summary.frames),
                             sum(n for p, n in summary.protocols.items()
                                 if p.startswith("http/1")))
        if note:
            _print_err(note)
    if printer is not None and printer.not_printed:
        _print_err(f"h2scope: {printer.not_printed:,} frame log line"
                   f"{'s' if printer.not_printed != 1 else ''} not printed: stdout was not "
                   "read fast enough" + ("" if recorders else " (--record FILE keeps "
                                                               "every frame)"))
    if printer is not None and printer.lost and not failed:
        failed = (f"h2scope: the frame log could not be written to stdout "
                  f"({printer.lost}): what was not printed is not shown anywhere"
                  + ("" if recorders else " (--record FILE keeps it)"))
    if failed:
        _print_err(failed)
        return 1
    worst = summary.worst()
    fail_on = config.headless.fail_on
    if fail_on is not None and worst is not None and worst >= Severity[fail_on.upper()]:
        _print_err(f"h2scope: exit status {EXIT_FINDINGS}: {worst.name.lower()} findings "
                   f"were seen (--fail-on {fail_on})")
        return EXIT_FINDINGS
    if fail_on is not None and summary.missed:  # (a gate that could not see all)
        _print_err("h2scope: exit status 1: the summary is incomplete, so --fail-on "
                   "cannot pass")
        return 1
    return 0


_HANGUP = [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
"""SIGHUP where there is one (POSIX)."""


class _Stopping:
    """The signal handler while the proxy stops: the first signal after the one that
    stopped it is told to wait, the next gives up at once (the recording keeps what
    was flushed); once stopped, signals are ignored (the verdict is on its way)."""

    def __init__(self) -> None:
        self.presses = 0
        self.done = False
        self.taken: list[int] = []

    def take(self, sig: int) -> None:
        import signal

        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, self.press)
            self.taken.append(sig)

    def finish(self) -> None:
        """Stopped: the signals are ignored from here to the process's end (a Python
        handler is reset to the default as the interpreter exits, and a signal then
        killed the process: exit -2 instead of the verdict; an ignored one stays)."""
        import signal

        self.done = True
        for sig in self.taken:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, signal.SIG_IGN)

    def press(self, sig: int, _frame: object) -> None:
        if self.done:
            return
        self.presses += 1
        if self.presses == 1:
            _print_err("h2scope: still stopping (closing connections, flushing the "
                       "recording); another Ctrl-C (or signal) abandons it")
        else:
            _print_err("h2scope: abandoned: the recording keeps what was flushed "
                       "(h2scope check reads it)")
            os._exit(128 + sig)



def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_error(config: Config, server: Any, exc: Exception) -> str:
    """The proxy core's start error, with the address and the fix when a bind failed
    (only then: an unwritable confdir is said as it is, not as a port's refusal)."""
    from proxy.server import ProxyBindError

    cause = exc.__cause__
    if isinstance(exc, ProxyBindError) and isinstance(cause, OSError) \
            and cause.errno is not None:
        for mode in config.mode_specs:
            if mode.spec not in server.addresses:  # the first listener that did not bind
                host, port = config.listen_address_of(mode)
                return address_in_use_message(host, port, cause)
    return str(exc)


def address_in_use_message(host: str, port: int, exc: OSError, *, modes: bool = True) -> str:
    """The one-line explanation for a listener that cannot bind (``modes``: the
    command has ``--mode``, whose ``@PORT`` chooses a port too)."""
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot listen on {addr}: the address is already in use (another h2scope "
                f"or another program); choose another port with -p PORT"
                f"{' (or @PORT in the mode)' if modes else ''} or stop the other program")
    if exc.errno == errno.EACCES:
        return (f"cannot listen on {addr}: permission denied (ports below 1024 need "
                f"privileges); choose a port above 1023 with -p PORT")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {addr}: no network interface has this address; use "
                f"127.0.0.1 or an address of this machine with --listen-host")
    return f"cannot listen on {addr}: {exc.strerror or exc}"
