"""Listener modes as the user writes them, mitmproxy style.

``regular`` (explicit HTTP proxy), ``socks5``, ``reverse:https://host:port``,
``reverse:http://host:port`` and ``upstream:http://host:port`` (an explicit
proxy whose connections go out through another HTTP proxy); any of them may
end with ``@port`` (or ``@host:port``) to listen on its own address.
"""

from __future__ import annotations

import ipaddress
import re
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


_USERINFO = re.compile(r"([^:/@\[\]]*):([^/@]*)")
"""``user:pass`` (or ``user:``, an empty password) before the ``@`` of a URL (a port
would be digits)."""


def _credentials_in_url(text: str) -> str | None:
    """The mode's prefix (``upstream:http://``) when its URL carries ``user:pass@``,
    the ``$HTTPS_PROXY`` form, which the ``@`` of a listening address would misread:
    two ``@``, or ``user:pass`` before the one ``@`` that is no ``host:port``. (A
    numeric password, ``user:1234@host:port``, reads as a proxy ``user:1234``
    listening on ``host:port``: the same text.)"""
    for prefix in ("reverse:", "upstream:"):
        scheme, sep, rest = text[len(prefix):].partition("://")
        if not text.startswith(prefix) or not sep:
            continue
        authority = rest.split("/", 1)[0] if rest.count("@") < 2 else rest
        before = authority.split("@", 1)[0]
        if "@" in authority and (rest.count("@") >= 2 or (
                (m := _USERINFO.fullmatch(before)) is not None and not m.group(2).isdigit())):
            return f"{prefix}{scheme}://"
    return None


def _ambiguous(text: str) -> bool:
    """``upstream:http://alice:1234@10.1.2.3:3128``: a single-label proxy host and a
    listening ``host:port`` — or a user name, a numeric password and the proxy (and
    ``upstream:http://alice@10.1.2.3:3128``: a proxy host, or a user name alone). The
    second is the ``$HTTPS_PROXY`` form: refused, with the way to say the first."""
    if not text.startswith("upstream:") or text.count("@") != 1:
        return False
    base, listen = text.split("@")
    authority = base.partition("://")[2]
    if ":" not in listen or listen.endswith("]"):
        return False
    m = _USERINFO.fullmatch(authority)
    if m is not None and not m.group(2).isdigit():
        return False
    name = m.group(1) if m is not None else authority  # (``user@``: a user name alone)
    return bool(name) and "." not in name and ":" not in name and "/" not in name \
        and name.lower() != "localhost" and not name.isdigit()


def parse_mode(spec: str) -> Mode:
    """Parse one mode spec; raises :class:`ModeError` naming the problem (never
    repeating a password written into the URL)."""
    text = spec.strip()
    prefix = _credentials_in_url(text)
    if prefix is not None:
        if prefix.startswith("upstream:"):
            raise ModeError(f"mode '{prefix}USER:PASS@...': credentials in the proxy URL are "
                            "not accepted: use --upstream-auth USER:PASS (upstream.auth in the "
                            "config file) and write upstream:http://proxyhost:port")
        raise ModeError(f"mode '{prefix}USER:PASS@...': credentials in the target URL are not "
                        "accepted: the client sends its own Authorization to the server; "
                        "write reverse:https://host:port")
    if _ambiguous(text):
        scheme = text.partition("://")[0]
        raise ModeError(f"mode '{scheme}://NAME[:NUMBER]@HOST:PORT' is ambiguous: credentials "
                        "in the URL are not accepted (use --upstream-auth USER:PASS, "
                        "upstream.auth in the config file); for h2scope to listen on HOST:PORT "
                        "and go out through the proxy NAME:NUMBER, end the proxy's URL with a "
                        f"slash: {scheme}://NAME:NUMBER/@HOST:PORT")
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
