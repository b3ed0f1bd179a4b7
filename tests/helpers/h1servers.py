"""HTTP/1.1-only origins: Python's http.server, and a raw-socket WebSocket echo server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


class Handler(http.server.BaseHTTPRequestHandler):
    """GET /chunked → a chunked body (/chunked-trailers: with two trailer fields); POST
    echoes the body; anything else (OPTIONS too) → ``h1 <path>``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path in ("/chunked", "/chunked-trailers"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"first ", b"second ", b"third"):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            trailers = b"X-Checksum: abc123\r\nServer-Timing:  db;dur=53\r\n" \
                if self.path == "/chunked-trailers" else b""
            self.wfile.write(b"0\r\n" + trailers + b"\r\n")
            return
        body = f"h1 {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_OPTIONS = do_GET  # (``h1 *`` for the asterisk-form)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A threaded HTTP/1.1 server on a free loopback port (over TLS with ``tls``)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _ws_client(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (line.decode().partition(":") for line in head.split(b"\r\n")[1:])}
        # RFC 6455 §4.2.2: the accept value proves the server read the key.
        accept = base64.b64encode(hashlib.sha1(
            (fields["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode()
                     + b"\r\n\r\n")
        if rest:
            conn.sendall(rest)
        # After the 101 the bytes are WebSocket frames: echo them back verbatim.
        while chunk := conn.recv(4096):
            conn.sendall(chunk)


@contextlib.contextmanager
def websocket_echo_server() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_ws_client, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def ws_frame(payload: bytes) -> bytes:
    """A masked client text frame (RFC 6455 §5.2), payload < 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def recv_until(sock: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def ws_upgrade(port: int) -> bytes:
    """An absolute-form WebSocket upgrade request (RFC 6455 §4.1) for a proxy, to
    127.0.0.1:``port``; the key is the RFC's example, so the accept is known."""
    return (f"GET http://127.0.0.1:{port}/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


@dataclass
class OneConnection:
    """What :func:`one_connection_server` saw."""

    port: int
    received: bytearray = field(default_factory=bytearray)
    """Every byte the peer sent (up to the reply, when there is one)."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the connection ended: the peer closed it, or the reply went out."""


@contextlib.contextmanager
def one_connection_server(reply: bytes | None = None,
                          timeout: float = 20.0) -> Iterator[OneConnection]:
    """A server for one connection: it keeps what it receives; with ``reply``, it
    sends it as it is once a request head has come, and closes; without, it reads
    until the peer closes (to see what a proxy passed on, and that it let go)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(timeout)
    seen = OneConnection(port=listener.getsockname()[1])

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(timeout)
            with contextlib.suppress(OSError):
                while data := conn.recv(65536):
                    seen.received.extend(data)
                    if reply is not None and b"\r\n\r\n" in seen.received:
                        conn.sendall(reply)
                        break
        seen.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        thread.join(5)
        listener.close()
