"""RFC 6455 rules checked on WebSockets over HTTP/2 (RFC 8441), as findings.

A stream that is an extended CONNECT with ``:protocol: websocket`` and was
answered 2xx carries WebSocket frames in its DATA, both ways (RFC 8441 §5).
From that response on, :attr:`Stream.websocket
<proxy.observe.streams.Stream.websocket>` holds a reader per direction
(:class:`proxy.websocket.WsReader`, which knows the framing); each DATA
payload is fed to its direction's, and every rule the frames it completes
break becomes a finding on that DATA frame — the frame that completes the bad
WebSocket frame (a frame too large to keep: the one that brings its header), or,
for what only a whole message shows (text that is not UTF-8), the one that
completes the message.

Direction matters: a client's frames must be masked, a server's must not
(RFC 6455 §5.1). Every rule here is one whose breaking makes the receiver fail
the WebSocket connection, so every finding is an ERROR.

Cost: any other stream pays one attribute test per DATA frame (``websocket is
not None``, in :meth:`StreamFrames._data <proxy.observe.flow.StreamFrames._data>`);
the readers keep at most :data:`KEPT` bytes of a message per direction.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.observe.findings import Finding, Severity
from proxy.observe.findings import finding as _f
from proxy.websocket import Deflate, WsReader, is_websocket

KEPT = 64 * 1024
"""Bytes of one message a reader keeps (to check a text message's UTF-8 and to
inflate): a longer message is checked as far as it is kept."""
CUT = "a payload the capture cut (max_data_bytes)"
_WHO = ("client", "server")


class WebSocketStream:
    """The readers of one WebSocket stream, and what was said about losing them."""

    __slots__ = ("readers",)

    def __init__(self, deflate: Deflate | None) -> None:
        self.readers = (WsReader(0, deflate, max_message=KEPT, report=True),
                        WsReader(1, deflate, max_message=KEPT, report=True))


def accepted(request: Sequence[tuple[str, str]] | None,
             response: Sequence[tuple[str, str]]) -> WebSocketStream | None:
    """For a 2xx response to a CONNECT: the WebSocket it opens, if the request was
    an extended CONNECT for one (RFC 8441 §4, §5); else None (a plain tunnel)."""
    if not is_websocket(request):
        return None
    extensions = next((v for n, v in response if n == "sec-websocket-extensions"), None)
    return WebSocketStream(Deflate.from_header(extensions))


def check_data(ws: WebSocketStream, direction: int, data: bytes, t: float, seq: int,
               sid: int, cut: bool, findings: list[Finding]) -> None:
    """Feed one DATA payload (padding excluded) of stream ``sid`` to its direction's
    reader; a finding for each rule the frames it completes break. ``cut``: the
    payload is not the one sent (a capture's ``max_data_bytes`` kept only its start,
    the rest reads as zeros), so this direction is read no further."""
    reader = ws.readers[direction]
    if cut and reader.lost is None:
        reader.lost = CUT  # (its zeros would read as frames no one sent)
    reader.feed(data, t)
    found = reader.found
    if not found:
        return
    who, peer = _WHO[direction], _WHO[1 - direction]
    for v in found:
        findings.append(_f(v.code, Severity.ERROR, v.rfc,
                           f"WebSocket on stream {sid}, from the {who}: {v.text}; the {peer} "
                           "must fail the WebSocket connection", seq, sid))
    found.clear()
