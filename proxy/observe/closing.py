"""What a connection's end leaves unfinished: the messages still being sent.

A server that closes the connection (or nobody says who did) in the middle of
a response it declared the length of sent a short body: that is
``content-length-mismatch`` (RFC 9113 §8.1.1), the response that just stops.
The other unfinished messages make one ``stream-unfinished`` line per sender:
a warning for responses the server itself abandoned, information for the rest
(a client giving up, a tunnel ended by closing the connection, what the other
side's leaving cut short).
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.observe.enums import Direction, error_name
from proxy.observe.findings import Finding, Severity
from proxy.observe.findings import finding as _f
from proxy.observe.header_rules import header_value
from proxy.observe.streams import Stream, StreamState

_SENDING = {
    Direction.C2S: (StreamState.OPEN, StreamState.HALF_CLOSED_SERVER),
    Direction.S2C: (StreamState.OPEN, StreamState.HALF_CLOSED_CLIENT),
}
"""The states in which each direction's sender may still send on a stream (§5.1)."""


_PEER_ERRORS = frozenset({1, 3, 4, 5, 6, 9, 11, 12, 13})
"""GOAWAY error codes that blame the peer (PROTOCOL_ERROR, FLOW_CONTROL_ERROR,
SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, COMPRESSION_ERROR,
ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED): a sender closing after
one did what the peer's connection error requires. INTERNAL_ERROR, CONNECT_ERROR and
the others are the sender's own trouble: its unfinished responses are still its own."""


def unfinished(streams: Iterable[Stream], direction: Direction, closed_by: str | None,
               seq: int, server_goaway: int | None = None,
               ended_at: int | None = None, silent: bool = False,
               goaway_error: int = 0) -> list[Finding]:
    """The findings for the messages ``direction``'s sender had not finished when
    the connection closed (``closed_by``: ``client``, ``server``, ``proxy``, or
    None when unknown). A stream reset is finished; a short body is reported once
    (its content-length is marked checked). Client streams above the last-stream-id
    of a GOAWAY the server sent (``server_goaway``) were not processed (§6.8): they
    are listed apart, as safe to retry, and blame nobody. ``ended_at``: how many of
    the other direction's bytes had been read when this direction's sender ended its
    side (EOF, as the relay saw it); a stream the other side reset after that was
    given up on because the sender had gone (a killed server's calls, reset by the
    client as the socket closed): still the sender's unfinished message. ``silent``:
    the sender never sent a byte (no preface SETTINGS either): no HTTP/2 peer broke
    off, so information, with the likely cause (a TLS port behind reverse:http://).
    ``goaway_error``: the error code of the sender's last GOAWAY; a sender that
    closed after a GOAWAY whose error blames its peer did what a connection error
    requires (§5.4.1: close the connection), and abandoned nothing: information,
    with why."""
    sender = direction.sender
    own = closed_by is None or closed_by == sender
    errored = own and goaway_error in _PEER_ERRORS
    sending = _SENDING[direction]
    out: list[Finding] = []
    cut: list[int] = []
    amounts: dict[int, str] = {}
    declined: list[int] = []
    abandoned = False
    for stream in streams:
        if stream.refused:
            continue  # (opened against §5.1.1: its peer owed it nothing)
        if stream.reset_by is not None:
            if ended_at is None or stream.reset_by is direction \
                    or stream.reset_offset <= ended_at or stream.reset_from not in sending:
                continue  # (reset while its sender was there: finished)
        elif stream.state not in sending:
            continue
        sid = stream.stream_id
        if server_goaway is not None and sid > server_goaway and sid % 2:
            if stream.reset_by is None:  # (one the client reset, it gave up itself)
                declined.append(sid)
            continue
        declared = stream.content_length[direction]
        received = stream.data_bytes[direction]
        if direction is Direction.S2C and own and not errored and declared >= 0 and \
                received < declared:
            stream.content_length[direction] = -1
            out.append(_f("content-length-mismatch", Severity.ERROR, "RFC 9113 §8.1.1",
                          f"the response on stream {sid} declares content-length {declared} "
                          f"but the connection closed after {received} bytes of it", seq, sid))
            continue
        if stream.request_headers is None and stream.response_headers is None:
            continue  # (a request whose header block never ended: nothing to answer yet)
        if direction is Direction.S2C or stream.request_headers is not None:
            cut.append(sid)
            if declared >= 0:  # how far the body got: an upload cut at 73,000 of 1,000,000
                amounts[sid] = f" ({received:,} of {declared:,} bytes)"
            tunnel = header_value(stream.request_headers or (), ":method") == "CONNECT"
            abandoned |= direction is Direction.S2C and own and not tunnel and not errored
    if cut:
        many = len(cut) > 1
        shown = ", ".join(f"{sid}{amounts.get(sid, '')}" for sid in cut[:10]) + (
            f", … ({len(cut)} in all)" if len(cut) > 10 else "")
        what = "response" if direction is Direction.S2C else "request"
        by = f"the {closed_by} closed it" if closed_by else "it closed"
        said = f": it had sent GOAWAY {error_name(goaway_error)}, and a connection error " \
            "ends every open stream (§5.4.1)" if errored else "" if not silent else (
            f": the {sender} sent not a byte, not even its SETTINGS — no HTTP/2 {sender} "
            "there? (a TLS port reached with reverse:http:// ends this way: use "
            "reverse:https://)")
        out.append(_f("stream-unfinished", Severity.WARNING if abandoned and not silent
                      else Severity.INFO, "RFC 9113 §8.1",
                      f"the connection ended ({by}) with the {sender}'s {what}"
                      f"{'s' if many else ''} on stream{'s' if many else ''} {shown} "
                      f"unfinished (no END_STREAM){said}", seq, cut[0]))
    if declined and direction is Direction.S2C:
        many = len(declined) > 1
        shown = ", ".join(map(str, declined[:10])) + (f", … ({len(declined)} in all)"
                                                      if len(declined) > 10 else "")
        out.append(_f("stream-not-processed", Severity.INFO, "RFC 9113 §6.8",
                      f"stream{'s' if many else ''} {shown} got no response: above the "
                      f"server's GOAWAY last-stream-id {server_goaway}, so not processed "
                      "and safe to retry on a new connection (§8.7)", seq, declined[0]))
    return out


def stalled_at_close(streams: Iterable[Stream], direction: Direction, conn_since: float | None,
                     conn_seq: int, t: float) -> Finding | None:
    """The ``flow-control-stalled`` finding for ``direction``'s sender if the
    connection ended while it still waited for a window (the classic hang: its
    peer never sent the WINDOW_UPDATE): the streams whose window held it, and the
    connection window if some stream of its still had data under way. Charged to
    the peer, which owed the window; None when nothing waited."""
    i = int(direction)
    sending = _SENDING[direction]
    waiting = [s for s in streams if s.reset_by is None and s.state in sending]
    held = [s for s in waiting if s.stalled_since[i] is not None]
    parts = [f"stream {s.stream_id} (window {s.send_window[i]}, since frame "
             f"#{s.stall_seq[i]}, {t - (s.stalled_since[i] or t):.1f} s)" for s in held[:5]]
    if len(held) > 5:
        parts.append(f"… ({len(held)} streams in all)")
    first = min((s.stall_seq[i] for s in held), default=-1)
    if conn_since is not None and waiting:
        parts.append(f"the connection window (since frame #{conn_seq}, {t - conn_since:.1f} s)")
        first = conn_seq if first < 0 else min(first, conn_seq)
    if not parts:
        return None
    sender, peer = direction.sender, direction.peer.sender
    return _f("flow-control-stalled", Severity.WARNING, "RFC 9113 §6.9",
              f"the connection ended with the {sender} still blocked by flow control on "
              f"{', '.join(parts)}: the {peer} never sent the WINDOW_UPDATE that would let it "
              "go on", first, held[0].stream_id if held else 0)

