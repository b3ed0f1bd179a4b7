"""HTTP/1.x messages found in byte streams, as the importers record them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.capture.http1_split import Http1Splitter, Message
from proxy.observe.enums import Direction

C, S = Direction.C2S, Direction.S2C


def feed_all(chunks: list[tuple[Direction, bytes]], *, bytewise: bool = False,
             close: bool = True) -> list[Message]:
    split = Http1Splitter()
    out: list[Message] = []
    t = 0.0
    for direction, data in chunks:
        pieces = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
        for piece in pieces:
            t += 0.001
            out += split.feed(direction, piece, t)
    if close:
        out += split.close(t + 1)
    return out


def starts(messages: list[Message]) -> list[tuple[str, str, int, bool]]:
    return [(m.direction.name, m.head.split(b"\r\n", 1)[0].decode(), m.body_size, m.complete)
            for m in messages]


EXCHANGE = [
    (C, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 5\r\n\r\nhello"),
    (S, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 201 Created\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\nX-T: 1\r\n\r\n"),
]


@pytest.mark.parametrize("bytewise", [False, True])
def test_pipelined_requests_and_both_body_framings(bytewise: bool) -> None:
    assert starts(feed_all(EXCHANGE, bytewise=bytewise)) == [
        ("C2S", "GET /a HTTP/1.1", 0, True), ("C2S", "POST /b HTTP/1.1", 5, True),
        ("S2C", "HTTP/1.1 200 OK", 3, True),
        ("S2C", "HTTP/1.1 201 Created", len(b"4\r\nwiki\r\n0\r\nX-T: 1\r\n\r\n"), True)]


def test_head_1xx_until_close_and_a_body_cut_short() -> None:
    got = starts(feed_all([
        (C, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),  # no body after HEAD
        (C, b"PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
        (S, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (C, b"ok"),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"),  # the connection ends
    ]))
    assert got == [("C2S", "HEAD / HTTP/1.1", 0, True), ("S2C", "HTTP/1.1 200 OK", 0, True),
                   # (the PUT is complete once its body came, after the 100)
                   ("S2C", "HTTP/1.1 100 Continue", 0, True), ("C2S", "PUT /u HTTP/1.1", 2, True),
                   ("S2C", "HTTP/1.1 200 OK", 5, False)]
    until_close = starts(feed_all([(C, b"GET / HTTP/1.0\r\n\r\n"),
                                   (S, b"HTTP/1.0 200 OK\r\n\r\nall of it")]))
    assert until_close[-1] == ("S2C", "HTTP/1.0 200 OK", 9, True)


def test_after_an_upgrade_the_bytes_are_not_http() -> None:
    got = starts(feed_all([
        (C, b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
        (S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
        (C, b"\x81\x85abcdefghi"),
    ]))
    assert got == [("C2S", "GET /ws HTTP/1.1", 0, True),
                   ("S2C", "HTTP/1.1 101 Switching Protocols", 0, True)]


def test_bytes_that_do_not_parse_stop_that_direction() -> None:
    split = Http1Splitter()
    assert split.feed(S, b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0.0) == []
    assert split.sides[S].stopped and "Content-Length" in split.sides[S].stopped
    assert split.feed(S, b"HTTP/1.1 200 OK\r\n\r\n", 0.1) == []
    assert starts(split.feed(C, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.2)) == [
        ("C2S", "GET / HTTP/1.1", 0, True)]


_PIECES = st.sampled_from([
    b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 100 Continue\r\n\r\n",
    b"Content-Length: 3\r\n", b"Content-Length: -1\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n", b"\r\n", b"3\r\nabc\r\n", b"0\r\n\r\n", b"zz\r\n",
    b"HEAD / HTTP/1.1\r\n", b"CONNECT a:1 HTTP/1.1\r\n", b"HTTP/1.1 101 Switching\r\n",
    b"\xff\xfe\x00", b"Host: \xe9\r\n", b"X: y"]) | st.binary(max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([C, S]), st.lists(_PIECES, max_size=6)),
                max_size=12))
def test_any_bytes_split_without_a_crash(chunks: list[tuple[Direction, list[bytes]]]) -> None:
    split = Http1Splitter(keep_bodies=True)
    total = {C: 0, S: 0}
    for direction, pieces in chunks:
        data = b"".join(pieces)
        total[direction] += len(data)
        for m in split.feed(direction, data, 0.0):
            assert m.head.endswith(b"\r\n\r\n") and m.direction is direction
    for m in split.close(1.0):
        assert len(m.head) <= total[m.direction]


@pytest.mark.parametrize("bytewise", [False, True])
def test_a_chunked_bodys_trailers_are_kept(bytewise: bool) -> None:
    """They were relayed and recorded, but no export showed them (the HAR's
    _h2scope.response_trailers comes from here): an HTTP/1.1 origin's trailers could
    not be compared with what an HTTP/2 edge made of them."""
    messages = feed_all(EXCHANGE, bytewise=bytewise)
    created = next(m for m in messages if m.head.startswith(b"HTTP/1.1 201"))
    assert created.trailers == (("X-T", "1"),)
    assert all(m.trailers == () for m in messages if m is not created)
