"""A small threaded TLS server for tests whose server must misbehave in ways real
servers are configured for (a TLS version ceiling, a required client certificate)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def tls_server(ctx: ssl.SSLContext, handle: Callable[[ssl.SSLSocket], None]) -> Iterator[int]:
    """Serve ``ctx`` on a free loopback port (yielded) until the block ends: each
    connection's handshake, then ``handle(tls)``; a failed handshake or a peer gone is
    part of what is tested, not an error."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            with sock:
                sock.settimeout(5)
                try:
                    with ctx.wrap_socket(sock, server_side=True) as tls:
                        handle(tls)
                except (ssl.SSLError, OSError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()
