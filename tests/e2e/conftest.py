"""Shared by the live-UI tests: an HTTP/2 origin over TLS (a Python ``h2``
server with its own self-signed certificate) and a bounded wait under Pilot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.h2server import ServerThread
from tests.helpers.tls_files import CertFiles, make_self_signed


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[tuple[ServerThread, CertFiles]]:
    cert = make_self_signed(tmp_path / "origin")
    server = ServerThread(cert.cert, cert.key)
    try:
        yield server, cert
    finally:
        server.close()


async def until(pilot: Any, cond: Callable[[], object], what: str,
                timeout: float = 20.0) -> None:
    """Let the app run until ``cond()`` holds; fail naming ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
