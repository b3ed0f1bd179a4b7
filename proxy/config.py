"""Configuration: a YAML file plus command-line flags, validated into one :class:`Config`.

Precedence, lowest first: the defaults below, the config file (``--config FILE``
or ``<confdir>/config.yaml`` when it exists), environment variables the
command honours (``$SSLKEYLOGFILE``), then flags. Flags reach
:func:`load_config` as ``overrides``: dotted keys (``listen.port``) mapped to
raw values, validated exactly like the file's.

Every mistake stops with a :class:`ConfigError` that names the key by its
dotted path (``ui.keymap.quitt``, ``modes[1]``), the line in the file when it
came from the file, and what would have been accepted. The CLI turns it into
exit status 2 (it is a :class:`proxy.cli.UsageError`).

The schema is the dataclasses below; ``config.example.yaml`` at the top of the
repository lists every option with its default, and a test keeps the two equal.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints

import yaml

from proxy.cli import UsageError, default_confdir
from proxy.net.client_certs import client_cert_problem
from proxy.net.modes import Mode, ModeError, is_loopback, parse_mode

__all__ = [
    "CLEAR",
    "Config",
    "ConfigError",
    "HeadlessConfig",
    "ListenConfig",
    "LogConfig",
    "RecordConfig",
    "UIConfig",
    "UpstreamConfig",
    "default_config_path",
    "keymap_actions",
    "load_config",
]

def keymap_key_problem(keys: str) -> str | None:
    """What is wrong with a keymap value's key names (``ui/keymap.py``), or None."""
    from ui.keymap import key_problem

    return key_problem(keys)


def keymap_actions() -> tuple[str, ...]:
    """The UI action ids a keymap may rebind (``ui/keymap.py`` is the one table).

    Imported only when a config file has a keymap: the proxy alone never loads
    the UI's modules."""
    from ui.keymap import KEYS

    return tuple(bid for bid, *_ in KEYS)

CLEAR: Any = type("Clear", (), {"__repr__": lambda self: "CLEAR"})()
"""An override meaning "unset this key" (``--no-record``): the file's value gives way
to null, the key's default."""

THEMES = ("auto", "dark", "light", "ansi")
HEADLESS_FORMATS = ("text", "jsonl")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(UsageError):
    """An invalid configuration value or key; ``str()`` says where and what is accepted."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None,
                 source: str | None = None, flag: str | None = None) -> None:
        self.message = message
        self.key = key
        """Dotted path of the offending key, e.g. ``listen.port`` or ``modes[1]``."""
        self.line = line
        """1-based line in the config file, when the value came from the file."""
        self.source = source
        """The config file's path, when the value came from a file."""
        self.flag = flag
        """The command-line flag that gave the value, when it came from one."""
        if flag is not None:
            text = f"{flag} ({key}): {message}" if key else f"{flag}: {message}"
        else:
            where = source or ""
            if line is not None:
                where = f"{where}, line {line}" if where else f"line {line}"
            text = f"{key}: {message}" if key else message
            text = f"{where}: {text}" if where else text
        super().__init__(text)


# Modes are parsed by the proxy core's parser (proxy/net/modes.py), so the
# config accepts exactly what the listeners can do.
_MODE_KINDS = "regular, socks5, reverse:https://HOST[:PORT], reverse:http://HOST[:PORT], " \
    "each optionally followed by @PORT or @HOST:PORT"


# ------------------------------------------------------------------ schema
# Each field's metadata may hold ``check``: a function that returns the
# (normalised) value or raises ValueError whose message says what is accepted.

def _meta(check: Callable[[Any], Any] | None = None, *, in_file: bool = True) -> dict[str, Any]:
    return {"check": check, "in_file": in_file}


def _check_listen_host(value: str) -> str:
    if value.lower() == "localhost":  # (host names are case-insensitive)
        return "localhost"
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or 'localhost'; accepted: "
                         f"127.0.0.1, ::1, localhost, 0.0.0.0 (all IPv4 interfaces), "
                         f":: (all interfaces) or one interface's address") from None


def _check_listen_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"{value} is not a port number; accepted: 0-65535 "
                         f"(0 picks a free port)")
    return value


def _check_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.lower() not in choices:
            raise ValueError(f"{value!r} is not accepted; accepted: {', '.join(choices)}")
        return value.lower()
    return check


def _check_proxyauth(value: str | None) -> str | None:
    if value is not None:
        user, colon, password = value.partition(":")
        if not colon or not user:
            raise ValueError("expected USER:PASS, e.g. alice:secret")
        if not password:
            raise ValueError(f"the password of {user!r} is empty: anyone who knows the user "
                             "name would get in; give USER:PASS with a password")
    return value


def _check_upstream_auth(value: str | None) -> str | None:
    # (credentials h2scope sends, not checks: an empty password is the upstream
    # proxy's business, and some accept one)
    if value is not None:
        user, colon, _ = value.partition(":")
        if not colon or not user:
            raise ValueError("expected USER:PASS, e.g. alice:secret (USER: for an empty "
                             "password)")
    return value


def _check_max_data(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise ValueError(f"{value} is negative; accepted: an integer >= 0 or null (no cap)")
    return value


FAIL_ON = ("error", "warning", "info")
TIME_FORMATS = ("relative", "wall", "utc")
"""proxy.textlog.TIME_FORMATS (a test keeps them the same; config imports no printer)."""


def _check_fail_on(value: str | None) -> str | None:
    """``none`` (as ``check --fail-on none`` takes it): never, the same as unset."""
    if value is None or value == "none":
        return None
    return _check_choice((*FAIL_ON, "none"))(value)


def _check_filter(value: str) -> str:
    from proxy.filter import FilterError, compile_filter

    try:
        compile_filter(value)
    except FilterError as exc:
        raise ValueError(f"invalid filter: {exc}") from None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenConfig:
    host: str = field(default="127.0.0.1", metadata=_meta(_check_listen_host))
    """Address the listeners bind to."""
    port: int = field(default=8080, metadata=_meta(_check_listen_port))
    """Port of every mode without its own ``@PORT`` (a ``--listen-port`` flag that no
    mode uses is an error)."""
    allow_remote: bool = False
    """Allow a non-loopback ``host``: anyone who can reach it can use the proxy."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    insecure: bool = False
    """Do not verify upstream servers' certificates."""
    ca_file: Path | None = None
    """Extra trust anchors (PEM) for upstream servers, added to the system's."""
    client_certs: Path | None = None
    """A client certificate for upstream servers that ask for one (mutual TLS): a PEM
    file with the certificate (chain) and its private key, used for every server,
    or a directory of ``HOST.pem`` files, one per upstream host name."""
    auth: str | None = field(default=None, metadata=_meta(_check_upstream_auth))
    """USER:PASS for the upstream proxy of an ``upstream:`` mode (Basic)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordConfig:
    file: Path | None = None
    """Record every connection to this capture file."""
    max_data_bytes: int | None = field(default=None, metadata=_meta(_check_max_data))
    """Keep at most this many bytes of each DATA frame's payload in the capture."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadlessConfig:
    filter: str = field(default="", metadata=_meta(_check_filter))
    """Only print frames matching this filter (docs/filters.md)."""
    quiet: bool = False
    """Print nothing per frame (recording and findings summaries still happen)."""
    annotate: bool = False
    """Text format: show how each header field was encoded (HPACK representation,
    table index, Huffman, inserts and evictions, size updates) beside it."""
    format: str = field(default="text", metadata=_meta(_check_choice(HEADLESS_FORMATS)))
    """``text``: a line per frame, its header list under it; ``jsonl``: one JSON
    object per frame (the objects of ``h2scope export --format jsonl``)."""
    fail_on: str | None = field(default=None, metadata=_meta(_check_fail_on))
    """Exit with status 3 at the end if a finding of this severity (error, warning,
    info) or worse was seen; None: findings never change the exit status."""
    time: str = field(default="relative", metadata=_meta(_check_choice(TIME_FORMATS)))
    """The text log's time column: ``relative`` seconds since the first event,
    ``wall`` (local date and time) or ``utc``."""


def _check_keymap(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class UIConfig:
    keymap: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}),
                                      metadata=_meta(_check_keymap))
    """Action id -> key, overriding the default bindings."""
    theme: str = field(default="auto", metadata=_meta(_check_choice(THEMES)))
    protosets: tuple[str, ...] = ()
    """FileDescriptorSets whose gRPC methods the stream view decodes with field names
    (``--protoset`` adds more)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    file: Path | None = None
    """Write h2scope's own log here (not traffic)."""
    level: str = field(default="warning", metadata=_meta(_check_choice(LOG_LEVELS)))


def _check_modes(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError(f"needs at least one mode; accepted: {_MODE_KINDS}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration. The proxy core reads the flat properties."""

    listen: ListenConfig = field(default_factory=ListenConfig)
    modes: tuple[str, ...] = field(default=("regular",), metadata=_meta(_check_modes))
    """Validated mode entries as written; :attr:`mode_specs` has them parsed."""
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    ignore_hosts: tuple[str, ...] = ()
    """Regexes matched against ``host:port``; matching connections are passed
    through untouched (no TLS interception, no decoding)."""
    allow_hosts: tuple[str, ...] = ()
    """The opposite of ``ignore_hosts``: only connections whose ``host:port``
    matches one of these are intercepted; the others are passed through."""
    proxyauth: str | None = field(default=None, metadata=_meta(_check_proxyauth))
    """``USER:PASS`` required from clients (Proxy-Authorization / SOCKS5)."""
    sslkeylogfile: Path | None = None
    """Append TLS secrets of both legs in NSS key log format (for Wireshark)."""
    record: RecordConfig = field(default_factory=RecordConfig)
    headless: HeadlessConfig = field(default_factory=HeadlessConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    log: LogConfig = field(default_factory=LogConfig)
    confdir: Path = field(default_factory=default_confdir, metadata=_meta(in_file=False))
    """Holds the CA and config.yaml: ``--confdir`` or ``$H2SCOPE_HOME``, never the file."""

    @property
    def listen_host(self) -> str:
        return self.listen.host

    @property
    def listen_port(self) -> int:
        return self.listen.port

    @property
    def allow_remote(self) -> bool:
        return self.listen.allow_remote

    @property
    def insecure(self) -> bool:
        return self.upstream.insecure

    @property
    def upstream_ca(self) -> Path | None:
        return self.upstream.ca_file

    @property
    def client_certs(self) -> Path | None:
        return self.upstream.client_certs

    @property
    def upstream_auth(self) -> str | None:
        return self.upstream.auth

    @property
    def mode_specs(self) -> tuple[Mode, ...]:
        return tuple(parse_mode(m) for m in self.modes)

    @property
    def listen_is_loopback(self) -> bool:
        return is_loopback(self.listen.host)

    def listen_address_of(self, mode: Mode) -> tuple[str, int]:
        """Where ``mode`` listens: its ``@HOST:PORT`` / ``@PORT``, else ``listen.*``."""
        return (mode.listen_host or self.listen.host,
                self.listen.port if mode.listen_port is None else mode.listen_port)


def default_config_path(confdir: Path) -> Path | None:
    """``<confdir>/config.yaml`` if it exists."""
    path = confdir / "config.yaml"
    return path if path.is_file() else None


# ----------------------------------------------------------------- loading

def _kind(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return f"{str(value).lower()}"
        case int() | float():
            return f"the number {value}"
        case str():
            return f"the string {value!r}"
        case list():
            return "a list"
        case dict():
            return "a mapping"
    return type(value).__name__


class _Loader:
    """Converts raw values (from YAML or flags) into the dataclasses, keeping
    track of where each value came from so errors can point at it."""

    def __init__(self, file: Path | None, lines: dict[str, int],
                 flags: dict[str, str]) -> None:
        self.file = file
        self.lines = lines
        self.flags = flags

    def error(self, key: str, message: str) -> ConfigError:
        for prefix, flag in self.flags.items():
            if key == prefix or key.startswith((prefix + ".", prefix + "[")):
                return ConfigError(message, key=key, flag=flag)
        line = self.lines.get(key)
        if line is None:  # a missing key's parent, e.g. for a whole section
            parent = key.rpartition(".")[0]
            line = self.lines.get(parent)
        return ConfigError(message, key=key, line=line,
                           source=str(self.file) if self.file else None)

    def base_dir(self, key: str) -> Path:
        # Relative paths in the file are relative to the file; from flags, to the cwd.
        if self.file is not None and not any(
                key == p or key.startswith(p + ".") for p in self.flags):
            return self.file.parent
        return Path.cwd()

    def section(self, cls: type, raw: Any, path: str) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise self.error(path or "(top level)",
                             f"expected a mapping of options, got {_kind(raw)}")
        hints = get_type_hints(cls)
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            dotted = f"{path}.{key}" if path else str(key)
            f = known.get(key) if isinstance(key, str) else None
            if f is None:
                names = [n for n, fd in known.items() if fd.metadata.get("in_file", True)]
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                nested = _nested(str(key), known, hints)
                if nested:  # (listen_port: the key of a section, flattened)
                    head, tail = nested
                    hint = (f"{head}.{tail} is written nested: '{head}:' on one line, "
                            f"'  {tail}: …' indented under it; ")
                raise self.error(dotted, f"unknown key; {hint}known keys here: "
                                 f"{', '.join(names)}")
            values[key] = self.value(hints[key], value, dotted, f.metadata.get("check"))
        return cls(**values)

    def value(self, hint: Any, raw: Any, key: str, check: Callable[[Any], Any] | None) -> Any:
        if is_dataclass(hint):
            return self.section(hint, raw, key)  # type: ignore[arg-type]
        value = self.convert(hint, raw, key)
        if check is not None:
            try:
                value = check(value)
            except ValueError as exc:
                raise self.error(key, str(exc)) from None
        return value

    def convert(self, hint: Any, raw: Any, key: str) -> Any:
        optional = hint in (Path | None, int | None, str | None)
        if optional and raw is None:
            return None
        base = {Path | None: Path, int | None: int, str | None: str}.get(hint, hint)
        if base is bool:
            if not isinstance(raw, bool):
                raise self.error(key, f"expected true or false, got {_kind(raw)}")
            return raw
        if base is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise self.error(key, f"expected an integer{' or null' if optional else ''}, "
                                 f"got {_kind(raw)}")
            return raw
        if base is str:
            if not isinstance(raw, str):
                raise self.error(key, f"expected a string{' or null' if optional else ''}, "
                                 f"got {_kind(raw)}")
            return raw
        if base is Path:
            if isinstance(raw, Path):
                raw = str(raw)
            if not isinstance(raw, str) or not raw:
                raise self.error(key, f"expected a file path or null, got {_kind(raw)}")
            path = Path(raw).expanduser()
            return path if path.is_absolute() else self.base_dir(key) / path
        if hint == tuple[str, ...]:
            if isinstance(raw, tuple):
                raw = list(raw)
            if not isinstance(raw, list):
                raise self.error(key, f"expected a list of strings, got {_kind(raw)}")
            for i, item in enumerate(raw):
                if not isinstance(item, str):
                    raise self.error(f"{key}[{i}]", f"expected a string, got {_kind(item)}")
            return tuple(raw)
        if hint == Mapping[str, str]:
            if not isinstance(raw, dict):
                raise self.error(key, f"expected a mapping of strings, got {_kind(raw)}")
            for k, v in raw.items():
                if not isinstance(v, str) or not v:
                    raise self.error(f"{key}.{k}", f"expected a non-empty string, "
                                     f"got {_kind(v)}")
            return raw
        raise TypeError(f"no converter for {hint!r} ({key})")  # a schema bug, not user input


_MAX_DEPTH = 32
"""How deep a config file's YAML may nest (h2scope's own keys go 3 deep)."""


_MAX_NODES = 100_000
"""Values a config file may stand for, aliases expanded: a few lines of aliases of
aliases (the "billion laughs") stand for billions."""


def _node_lines(node: yaml.Node | None, path: str, out: dict[str, int],
                dupes: list[tuple[str, int]], budget: list[int] | None = None,
                depth: int = 0) -> None:
    """Map each dotted key path in the composed YAML tree to its 1-based line.
    Raises ConfigError for a tree nested deeper than :data:`_MAX_DEPTH` or that
    aliases (``*name``) expand past :data:`_MAX_NODES` values."""
    if node is None:
        return
    budget = [_MAX_NODES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"its YAML aliases (*name) expand to more than {_MAX_NODES:,} "
                          "values: write the values out (h2scope's settings need a few "
                          "dozen)", key=path.split("[", 1)[0].split(".", 1)[0] or None)
    if depth > _MAX_DEPTH:
        raise ConfigError(f"nested more than {_MAX_DEPTH} levels deep: h2scope's settings "
                          "go three levels deep at most (see config.example.yaml)",
                          line=node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{path}.{key}" if path else key
            if key in seen:
                dupes.append((dotted, key_node.start_mark.line + 1))
            seen.add(key)
            out[dotted] = key_node.start_mark.line + 1
            _node_lines(value_node, dotted, out, dupes, budget, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[f"{path}[{i}]"] = item.start_mark.line + 1
            _node_lines(item, f"{path}[{i}]", out, dupes, budget, depth + 1)


def _read_file(path: Path) -> tuple[Any, dict[str, int]]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("the config file does not exist", source=source) from None
    except IsADirectoryError:
        raise ConfigError("this is a directory: give the config file itself (e.g. "
                          f"{path / 'config.yaml'})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror or exc}",
                          source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the config file is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})", source=source) from None
    node = _parsed(lambda t: yaml.compose(t, Loader=yaml.SafeLoader), text, source)
    lines: dict[str, int] = {}
    dupes: list[tuple[str, int]] = []
    try:
        _node_lines(node, "", lines, dupes)
    except ConfigError as exc:
        raise ConfigError(exc.message, key=exc.key, line=exc.line, source=source) from None
    raw = _parsed(yaml.safe_load, text, source)
    if dupes:
        key, line = dupes[0]
        raise ConfigError("this key appears twice", key=key, line=line, source=source)
    return raw, lines


def _parsed(load: Callable[[str], Any], text: str, source: str) -> Any:
    """``load(text)`` (PyYAML's compose or safe_load), its errors as ConfigError."""
    try:
        return load(text)
    except RecursionError:
        raise ConfigError("not valid YAML for h2scope: nested too deeply (its settings go "
                          "three levels deep at most)", source=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {exc.problem or exc}", line=line,
                          source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from None


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None, *,
                flag_names: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (``None``: defaults only), apply ``overrides``, validate.

    ``overrides`` maps dotted keys (``listen.port``, ``modes``, ``confdir``) to
    raw values as a flag would give them; ``None`` values mean "not given" and
    are skipped, :data:`CLEAR` sets the key to null (``--no-record``).
    ``flag_names`` maps those keys to the flag the user typed (``--listen-port``) so
    an error can name it. Raises :class:`ConfigError`.
    """
    raw: Any = {}
    lines: dict[str, int] = {}
    if path is not None:
        raw, lines = _read_file(path)
        if raw is None:
            raw = {}
        _warn_if_secrets_readable(path, raw)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    names = dict(flag_names or {})
    flags = {k: names.get(k, "the command line") for k in given}
    loader = _Loader(path, lines, flags)
    if not isinstance(raw, dict):
        raise loader.error("(top level)", f"expected a mapping of options, got {_kind(raw)}")
    if "confdir" in raw:  # (the file's line, not the --confdir every command passes)
        raise _Loader(path, lines, {}).error(
            "confdir", "cannot be set in the config file (the file lives in it); use "
            "--confdir or $H2SCOPE_HOME")
    if path is not None and given:
        # The file is validated on its own first: a flag overriding a key must
        # not hide a mistake in the file's value for it (docs/configuration.md).
        file_loader = _Loader(path, lines, {})
        _check_values(file_loader.section(Config, raw, ""), file_loader)
    for key, value in given.items():
        _set_dotted(raw, key, None if value is CLEAR else value)
    config: Config = loader.section(Config, raw, "")
    _check_values(config, loader)
    _check_whole(config, loader)
    return config


def _warn_if_secrets_readable(path: Path, raw: Any) -> None:
    """A config file that holds a password (``proxyauth``, ``upstream.auth``) and that
    others may read: said on stderr, as ssh does for its keys (the CA key gets the
    same warning)."""
    if not isinstance(raw, dict):
        return
    upstream = raw.get("upstream")
    keys = [k for k, v in (("proxyauth", raw.get("proxyauth")),
                           ("upstream.auth", upstream.get("auth")
                            if isinstance(upstream, dict) else None)) if v]
    if not keys:
        return
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        print(f"h2scope: warning: {path} holds {' and '.join(keys)} (a password) and others "
              f"may read it (mode {mode:04o}): chmod 600 {path}", file=sys.stderr)


def _check_values(config: Config, loader: _Loader) -> None:
    """Rules about one key's value that its type and ``check`` cannot see: modes that
    parse, valid regexes, known keymap actions. Also run on the file alone."""
    for i, text in enumerate(config.modes):
        try:
            parse_mode(text)
        except ModeError as exc:
            raise loader.error(f"modes[{i}]", f"{exc}") from None
    for key in ("ignore_hosts", "allow_hosts"):
        for i, pattern in enumerate(getattr(config, key)):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise loader.error(f"{key}[{i}]", f"{pattern!r} is not a valid regular "
                                   f"expression: {exc}") from None
    actions = keymap_actions() if config.ui.keymap else ()
    for key in config.ui.keymap:
        if key not in actions:
            close = difflib.get_close_matches(key, actions, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise loader.error(f"ui.keymap.{key}", f"unknown action; {hint}known actions: "
                               f"{', '.join(actions)}")
        problem = keymap_key_problem(config.ui.keymap[key])
        if problem:
            raise loader.error(f"ui.keymap.{key}", problem)
    if config.ui.keymap:
        from ui.keymap import key_clash

        clash = key_clash(config.ui.keymap)
        if clash is not None:
            raise loader.error(f"ui.keymap.{clash[0]}", clash[1])


def _check_whole(config: Config, loader: _Loader) -> None:
    """Rules that involve more than one key, and what must exist on disk; checked on
    the merged configuration only."""
    specs = config.mode_specs  # every mode parses: _check_values ran first
    _check_listen_flags_used(config, specs, loader)
    remote = "is not a loopback address: anyone who can reach it could use the proxy; " \
        + ("drop --no-allow-remote (the file allows it) if you mean it"
           if "listen.allow_remote" in loader.flags else
           "set listen.allow_remote: true (or --allow-remote) if you mean it")
    if not config.listen_is_loopback and not config.allow_remote:
        raise loader.error("listen.host", f"{config.listen_host} {remote}")
    addresses: dict[tuple[str, int], str] = {}
    for i, (text, mode) in enumerate(zip(config.modes, specs, strict=True)):
        host, port = config.listen_address_of(mode)
        if not is_loopback(host) and not config.allow_remote:
            raise loader.error(f"modes[{i}]", f"{text!r} listens on {host}, which {remote}")
        if port and (host, port) in addresses:
            raise loader.error(f"modes[{i}]", f"{text!r} and {addresses[host, port]!r} would "
                               f"both listen on {host}:{port}; give one of them its own port "
                               f"with @PORT, e.g. {mode.name}@{port + 1}")
        addresses[host, port] = text
    if config.ignore_hosts and config.allow_hosts:
        raise loader.error("allow_hosts", "ignore_hosts and allow_hosts cannot both be set: "
                           "allow_hosts intercepts only what it matches, ignore_hosts all but "
                           "what it matches; keep one")
    # What must exist on disk: only the paths in use (a file's path that a flag
    # replaces is not looked for).
    ca = config.upstream.ca_file
    if ca is not None and not ca.is_file():
        raise loader.error("upstream.ca_file", f"{ca} does not exist or is not a file "
                           f"(expected PEM certificates)")
    if ca is not None:
        problem = ca_file_problem(ca)
        if problem:
            raise loader.error("upstream.ca_file", problem)
    for i, name in enumerate(config.ui.protosets):
        if not Path(name).expanduser().is_file():
            raise loader.error(f"ui.protosets[{i}]", f"{name} does not exist or is not a file "
                               "(a FileDescriptorSet: protoc --include_imports "
                               "--descriptor_set_out=FILE your.proto)")
    certs = config.upstream.client_certs
    if certs is not None:
        problem = client_cert_problem(certs)
        if problem:
            raise loader.error("upstream.client_certs", problem)
    for key, out in (("record.file", config.record.file), ("log.file", config.log.file),
                     ("sslkeylogfile", config.sslkeylogfile)):
        problem = output_path_problem(out) if out is not None else None
        if problem:
            raise loader.error(key, problem)


def output_path_problem(path: Path) -> str | None:
    """Why a file h2scope would write (a capture, its log, a key log) cannot be
    created at ``path``, as far as can be told without creating it (None: it can)."""
    if path.is_dir():
        return f"{path} is a directory: give the path of a file (in it, or elsewhere)"
    parent = path.parent
    if not parent.exists():
        return f"the directory {parent} does not exist: create it first (mkdir -p {parent})"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    return None


def ca_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as trust anchors (None: it loads). Checked at start:
    each upstream connection loads it, and would otherwise fail one by one."""
    import ssl

    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        return (f"{path} holds no certificate OpenSSL can read ({exc.reason or exc}): give "
                "the CA certificate(s) of the servers as PEM (-----BEGIN CERTIFICATE-----)")
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None


def _check_listen_flags_used(config: Config, specs: tuple[Mode, ...], loader: _Loader) -> None:
    """A listen address given on the command line that no mode would use is an error.

    ``listen.port`` / ``listen.host`` only serve modes without their own ``@PORT`` /
    ``@HOST:PORT``; ``-p 9000 --mode socks5@1080`` would silently not listen on
    9000. From the config file the key is only a default, so it may go unused.
    """
    if "listen.port" in loader.flags and all(m.listen_port is not None for m in specs):
        raise loader.error("listen.port", f"{config.listen_port} would not be used: every "
                           f"mode has its own @PORT ({', '.join(config.modes)}); drop this "
                           f"flag, or add a mode without @PORT to listen on it")
    if "listen.host" in loader.flags and all(m.listen_host is not None for m in specs):
        raise loader.error("listen.host", f"{config.listen_host} would not be used: every "
                           f"mode has its own @HOST:PORT ({', '.join(config.modes)}); drop "
                           f"this flag, or give a mode only @PORT to listen on it")


def _nested(key: str, known: dict[str, Any], hints: dict[str, Any]) -> tuple[str, str] | None:
    """``(section, key)`` when ``key`` is a section's key written flat
    (``listen_port``, ``listen.port``, ``record-file``)."""
    for sep in ("_", ".", "-"):
        head, found, tail = key.partition(sep)
        if found and head in known and is_dataclass(hints.get(head)):
            inner = {f.name for f in fields(hints[head])}
            for candidate in (tail, tail.replace("-", "_"), tail.replace("_", "-")):
                if candidate in inner:
                    return head, candidate
    return None
