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


class Handler(http.server.BaseHTTPRequestHandler):
    """GET /chunked → a chunked body; POST echoes the body; anything else → ``h1 <path>``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"first ", b"second ", b"third"):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        body = f"h1 {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

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
