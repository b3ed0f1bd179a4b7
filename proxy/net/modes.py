"""Listener modes as the user writes them, mitmproxy style.

``regular`` (explicit HTTP proxy), ``socks5``, ``reverse:https://host:port``,
``reverse:http://host:port`` and ``upstream:http://host:port`` (an explicit
proxy whose connections go out through another HTTP proxy); any of them may
end with ``@port`` (or ``@host:port``) to listen on its own address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum

from proxy.net.http1 import Http1Error, absolute_target, split_authority


class ModeKind(IntEnum):
    REGULAR = 0
    SOCKS5 = 1
    REVERSE = 2
    UPSTREAM = 3


class ModeError(ValueError):
    """A mode spec that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Mode:
    spec: str
    """As the user wrote it, e.g. ``reverse:https://example.com:443@8443``."""
    kind: ModeKind
    listen_host: str | None = None
    """From ``@host:port``; None means the configured listen_host."""
    listen_port: int | None = None
    """From ``@port``; None means the configured listen_port."""
    scheme: str | None = None
    """For reverse: ``https`` or ``http``; for upstream: ``http``."""
    host: str | None = None
    """For reverse: the upstream server's host; for upstream: the proxy's."""
    port: int | None = None
    """For reverse: the upstream server's port; for upstream: the proxy's."""

    @property
    def name(self) -> str:
        """The spec without its ``@listen`` part."""
        return self.spec.rsplit("@", 1)[0] if self.listen_port is not None else self.spec

    @property
    def target(self) -> str | None:
        """Where every connection goes (reverse modes); None when clients say."""
        if self.kind is not ModeKind.REVERSE:
            return None
        return self.address

    @property
    def address(self) -> str | None:
        """``host:port`` of the reverse target or of the upstream proxy."""
        if self.host is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_mode(spec: str) -> Mode:
    """Parse one mode spec; raises :class:`ModeError` naming the problem."""
    text = spec.strip()
    listen_host: str | None = None
    listen_port: int | None = None
    base = text
    at = text.rfind("@")
    if at >= 0:
        base, listen = text[:at], text[at + 1:]
        try:
            if listen.isdigit():
                listen_port = int(listen)
                if listen_port > 65535:
                    raise Http1Error(f"invalid port {listen}")
            elif listen.endswith(":0") and listen[:-2]:  # (port 0: a free one, as -p 0)
                listen_host, _ = split_authority(listen[:-2], 1)
                listen_port = 0
            else:
                listen_host, listen_port = split_authority(listen, -1)
                if listen_port < 0:
                    raise Http1Error("a port is required after @host:")
        except Http1Error as exc:
            raise ModeError(f"mode {spec!r}: bad listen address after '@': {exc}") from None
    if base == "regular":
        return Mode(spec=text, kind=ModeKind.REGULAR, listen_host=listen_host,
                    listen_port=listen_port)
    if base == "socks5":
        return Mode(spec=text, kind=ModeKind.SOCKS5, listen_host=listen_host,
                    listen_port=listen_port)
    for prefix, kind, what, expected in (
            ("reverse:", ModeKind.REVERSE, "a reverse target",
             "reverse:https://host[:port] or reverse:http://host[:port]"),
            ("upstream:", ModeKind.UPSTREAM, "an upstream proxy", "upstream:http://proxyhost:port")):
        if not base.startswith(prefix):
            continue
        try:
            scheme, host, port, path = absolute_target(base[len(prefix):])
        except Http1Error as exc:
            raise ModeError(f"mode {spec!r}: expected {expected} ({exc})") from None
        if path not in ("", "/"):
            raise ModeError(f"mode {spec!r}: {what} has no path")
        if kind is ModeKind.UPSTREAM and scheme != "http":
            raise ModeError(f"mode {spec!r}: the upstream proxy is spoken to in plain HTTP "
                            "(CONNECT): write upstream:http://proxyhost:port")
        return Mode(spec=text, kind=kind, listen_host=listen_host, listen_port=listen_port,
                    scheme=scheme, host=host, port=port)
    raise ModeError(f"unknown mode {spec!r}: use regular, socks5, reverse:https://host:port, "
                    "reverse:http://host:port or upstream:http://proxyhost:port, optionally "
                    "followed by @port")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: safe to listen on without ``allow_remote``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
