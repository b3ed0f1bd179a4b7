"""gRPC server reflection: a server's schema, fetched as a protoset.

A gRPC server with reflection enabled answers ``ServerReflectionInfo`` (a
bidirectional stream; ``grpc.reflection.v1`` and the older ``v1alpha``, as
grpcurl and Postman use it) with its services and the
``FileDescriptorProto`` s that define them, dependencies included. This module
asks for every service and the files that contain them, over one HTTP/2
stream (python-hyper ``h2``, TLS or h2c), and returns them as a
``FileDescriptorSet`` — what ``protoc --descriptor_set_out`` writes, so
``--protoset`` reads it. The messages are encoded and read here by hand: no
protobuf library.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from proxy.protobuf import _fields, _Malformed

SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
READ_SIZE = 1 << 16


class ReflectionError(Exception):
    """The server could not be asked, or did not answer as reflection does."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _grpc(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _messages(buffer: bytearray) -> Iterator[bytes]:
    """Complete gRPC messages taken off the front of ``buffer``."""
    while len(buffer) >= 5:
        n = int.from_bytes(buffer[1:5], "big")
        if len(buffer) < 5 + n:
            return
        if buffer[0]:
            raise ReflectionError("the server compressed a reflection response")
        msg = bytes(buffer[5:5 + n])
        del buffer[:5 + n]
        yield msg


def _not_grpc(status: str, ctype: str) -> str:
    return (f"the server answered {status}" + (f" {ctype}" if ctype else "") + ", not gRPC "
            "(application/grpc): not a gRPC server, or one without server reflection "
            "(grpc.reflection.v1 / v1alpha)")


class _Call:
    """One ServerReflectionInfo stream: send a request, read its response."""

    def __init__(self, sock: socket.socket, authority: str, scheme: str, service: str,
                 timeout: float) -> None:
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.sid, [
            (":method", "POST"), (":scheme", scheme), (":authority", authority),
            (":path", f"/{service}/ServerReflectionInfo"), ("content-type", "application/grpc"),
            ("te", "trailers"), ("user-agent", "h2scope-reflection")])
        self.flush()
        self.buffer = bytearray()
        self.status: str | None = None
        self.message: str = ""
        self.ended = False
        self.response: dict[str, str] | None = None
        """The response's header fields, once they came."""
        sock.settimeout(timeout)

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def ask(self, request: bytes) -> bytes:
        self.conn.send_data(self.sid, _grpc(request))
        self.flush()
        while True:
            for msg in _messages(self.buffer):
                return msg
            if self.ended:
                why = f"grpc-status {self.status}" + (f" {self.message!r}" if self.message
                                                      else "")
                raise ReflectionError(f"the stream ended without an answer ({why})")
            self._read()

    def _read(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            raise ReflectionError(self._silent()) from None
        if not data:
            raise ReflectionError("the server closed the connection")
        self._read_events(data)

    def _read_events(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise ReflectionError(f"HTTP/2 error from the server: {exc}") from None
        for ev in events:
            if isinstance(ev, h2.events.DataReceived) and ev.stream_id == self.sid:
                self.buffer += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                fields = {}
                for name, value in ev.headers or ():
                    n = name.decode() if isinstance(name, bytes) else name
                    v = value.decode() if isinstance(value, bytes) else value
                    fields[n] = v
                    if n == "grpc-status":
                        self.status = v
                    elif n == "grpc-message":
                        self.message = v
                if isinstance(ev, h2.events.ResponseReceived):
                    self.response = fields
                    status, ctype = fields.get(":status", "?"), fields.get("content-type", "")
                    if status != "200" or not ctype.startswith("application/grpc"):
                        raise ReflectionError(_not_grpc(status, ctype))
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == self.sid:
                self.ended = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == self.sid:
                raise ReflectionError(f"the server reset the stream (error {ev.error_code})")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise ReflectionError(f"the server sent GOAWAY (error {ev.error_code})")
        self.flush()

    def _silent(self) -> str:
        """Why no answer came: a server that waits for the request's end before it
        answers (HTTP/2 servers that are not gRPC do) is asked once more, with the
        stream half-closed, so its answer says what it is."""
        timeout = self.sock.gettimeout()
        if self.response is None and not self.ended:
            try:
                self.conn.end_stream(self.sid)
                self.flush()
                self.sock.settimeout(2.0)
                while self.response is None and not self.ended:
                    data = self.sock.recv(READ_SIZE)
                    if not data:
                        break
                    self._read_events(data)
            except ReflectionError as exc:
                return str(exc)
            except (OSError, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                pass
        return (f"no answer within {timeout:g} s (--timeout): is this a gRPC server with "
                "reflection enabled?")

    def close(self) -> None:
        """End the call as a client should: half-close, then wait (briefly) for the
        server's trailers, so the server sees a finished call (grpc-status 0), not
        a connection gone from under it (UNAVAILABLE 'Socket closed')."""
        try:
            if not self.ended:
                self.conn.end_stream(self.sid)
                self.flush()
            self.sock.settimeout(min(self.sock.gettimeout() or 2.0, 2.0))
            while not self.ended:
                self._read()
            self.conn.close_connection()
            self.flush()
        except (OSError, ReflectionError, h2.exceptions.ProtocolError,
                h2.exceptions.StreamClosedError):
            pass


def _connect(url: str, *, insecure: bool, cafile: str | None,
             timeout: float) -> tuple[socket.socket, str, str]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReflectionError(f"{url}: give http://HOST:PORT (h2c) or https://HOST:PORT")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        raw = socket.create_connection((parts.hostname, port), timeout=timeout)
    except OSError as exc:
        raise ReflectionError(f"cannot connect to {parts.hostname}:{port}: "
                              f"{exc.strerror or exc}") from None
    authority = parts.netloc.rsplit("@", 1)[-1]
    if parts.scheme == "http":
        return raw, authority, "http"
    ctx = ssl.create_default_context(cafile=cafile)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        tls = ctx.wrap_socket(raw, server_hostname=parts.hostname)
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        if "WRONG_VERSION_NUMBER" in str(exc) or "record layer failure" in str(exc):
            raise ReflectionError(f"TLS to {parts.hostname}:{port} failed: the server does "
                                  "not speak TLS there; for cleartext HTTP/2 (h2c) give "
                                  f"http://{authority}") from None
        raise ReflectionError(f"TLS to {parts.hostname}:{port} failed: {exc} (--insecure "
                              "skips verification; --upstream-ca FILE adds a CA)") from None
    if tls.selected_alpn_protocol() != "h2":
        tls.close()
        raise ReflectionError(f"{parts.hostname}:{port} did not choose HTTP/2 (ALPN h2)")
    return tls, authority, "https"


def _strings(fields: list[tuple[int, int, object]], number: int) -> list[bytes]:
    return [v for n, _, v in fields if n == number and isinstance(v, bytes)]


def fetch_protoset(url: str, *, insecure: bool = False, cafile: str | None = None,
                   timeout: float = 10.0) -> tuple[bytes, list[str], list[str]]:
    """The server's FileDescriptorSet (serialized), the services it describes, and
    the services it listed but could not describe (with the server's reason)."""
    last: ReflectionError | None = None
    for service in SERVICES:
        sock, authority, scheme = _connect(url, insecure=insecure, cafile=cafile,
                                           timeout=timeout)
        call = _Call(sock, authority, scheme, service, timeout)
        try:
            return _ask_everything(call)
        except ReflectionError as exc:
            last = exc
            if call.status != "12":  # UNIMPLEMENTED: try the older version
                raise
        finally:
            call.close()
            sock.close()
    assert last is not None
    raise ReflectionError(f"the server does not implement reflection ({last}); enable it "
                          "(grpc_reflection's enable_server_reflection, or your "
                          "framework's equivalent)")


def _ask_everything(call: _Call) -> tuple[bytes, list[str], list[str]]:
    try:
        listed = _fields(call.ask(_field(7, b"")))  # list_services: ""
        services = [_text(v) for svc in _strings(_one_message(listed, 6), 1)
                    for v in _strings(_fields(svc), 1)]
        if not services:
            _error(listed)
            raise ReflectionError("the server lists no services")
        files: dict[bytes, None] = {}
        described: list[str] = []
        missing: list[str] = []
        for name in services:
            answer = _fields(call.ask(_field(4, name.encode())))  # file_containing_symbol
            try:
                _error(answer)
            except ReflectionError as exc:
                missing.append(f"{name} ({exc})")
                continue
            described.append(name)
            for fd in _strings(_one_message(answer, 4), 1):
                files.setdefault(fd)
    except _Malformed:
        raise ReflectionError("a reflection response is not a well-formed message") from None
    if not files:
        raise ReflectionError("the server described none of its services: "
                              + "; ".join(missing))
    return b"".join(_field(1, fd) for fd in files), described, missing


def _one_message(fields: list[tuple[int, int, object]], number: int) -> list[tuple[int, int,
                                                                                   object]]:
    for n, _, v in fields:
        if n == number and isinstance(v, bytes):
            return _fields(v)
    return []


def _error(fields: list[tuple[int, int, object]]) -> None:
    """An error_response (field 7: error_code 1, error_message 2) as ReflectionError."""
    err = _one_message(fields, 7)
    if err:
        code = next((v for n, _, v in err if n == 1), "?")
        message = next((_text(v) for n, _, v in err if n == 2 and isinstance(v, bytes)), "")
        raise ReflectionError(f"the server answered error {code}: {message}")


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
