"""A stand-in for ``proxy.config.Config``: just the attributes the proxy core reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
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
