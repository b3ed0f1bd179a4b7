"""An HTTP/2 answer from h2scope itself, for a client that spoke HTTP/2 to a
listener whose upstream cannot be reached (reverse mode, cleartext h2c).

An HTTP/1.1 error page would reach such a client as bytes where it expects a
SETTINGS frame (nghttp: "unexpected data", curl: "Empty reply from server"),
and the reason would never reach it. This plays the server side with
python-hyper ``h2`` just long enough to answer each request the client has
sent with the error status and a plain-text body naming the problem, then
says GOAWAY.
"""

from __future__ import annotations

import asyncio
import contextlib

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from proxy.net.streams import Stream
from proxy.observe.describe import grpc_message
from proxy.observe.enums import CONNECTION_PREFACE

READ_TIMEOUT = 2.0
"""Seconds to wait for the client's request after its preface."""


def is_h2_preface(data: bytes) -> bool:
    """The bytes start like the HTTP/2 client connection preface (RFC 9113 §3.4)."""
    n = min(len(data), len(CONNECTION_PREFACE))
    return n >= 3 and data[:n] == CONNECTION_PREFACE[:n]


async def answer_h2(client: Stream, status: int, text: str) -> None:
    """Answer the client's HTTP/2 requests with ``status`` and ``text``, then GOAWAY
    (NO_ERROR). Gives up quietly if the client goes away or sends nothing."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding=None, validate_inbound_headers=False))
    conn.initiate_connection()
    client.write(conn.data_to_send())
    body = text.encode("utf-8")
    answered = 0
    with contextlib.suppress(OSError, ConnectionError, h2.exceptions.ProtocolError,
                             TimeoutError):
        async with asyncio.timeout(READ_TIMEOUT):
            while not answered:
                data = await client.read_some()  # (what the buffer holds first)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        ctype = dict(ev.headers or ()).get(b"content-type", b"")
                        if ctype.startswith(b"application/grpc"):
                            # A gRPC client drops an error page ("Received http2 header
                            # with status: 502"): a Trailers-Only UNAVAILABLE puts the
                            # reason in its own error, as gRPC proxies do.
                            conn.send_headers(ev.stream_id, [
                                (":status", "200"), ("content-type", "application/grpc"),
                                ("grpc-status", "14"),
                                ("grpc-message", grpc_message(text.strip()))],
                                end_stream=True)
                        else:
                            conn.send_headers(ev.stream_id, [
                                (":status", str(status)),
                                ("content-type", "text/plain; charset=utf-8"),
                                ("content-length", str(len(body)))])
                            conn.send_data(ev.stream_id, body, end_stream=True)
                        answered = ev.stream_id
                client.write(conn.data_to_send())
                await client.drain()
        conn.close_connection(last_stream_id=answered)
        client.write(conn.data_to_send())
        await client.drain()
