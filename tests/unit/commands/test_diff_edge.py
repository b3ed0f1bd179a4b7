"""``h2scope diff`` of the two legs around an edge, from captures built here: HTTP/2
legs from a python-hyper ``h2`` client and server talking in-process through a
recording tap (real frames, real HPACK), HTTP/1.1 legs from message bytes recorded
as the proxy records them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h2.config
import h2.connection
import pytest

from proxy.capture.http1_split import Http1Recording
from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.observe.enums import Direction
from tests.unit.capture.traffic import META, exchange

Fields = Sequence[tuple[str, str]]
H1_META = {k: v for k, v in META.items() if k not in ("client_tls", "server_tls")} | {
    "protocol": "http/1.1"}


class H2Exchange:
    """One request on an HTTP/2 leg and the response the server gives it (none: no
    answer), or the RST_STREAM code it resets the stream with."""

    def __init__(self, request: Fields, response: Fields, body: bytes = b"",
                 trailers: Fields = (), *, reset: int | None = None) -> None:
        self.request, self.response, self.body, self.trailers = \
            request, response, body, trailers
        self.reset = reset


def h2_capture(path: Path, exchanges: Sequence[H2Exchange], *,
               closed_by: str | None = "client") -> Path:
    """One HTTP/2 connection carrying ``exchanges`` one after another, recorded;
    then ``closed_by`` that side (the client after a GOAWAY); None: the recording
    stops while it is open."""
    with CaptureWriter(path) as writer:
        h2_connection(writer, 1, exchanges, closed_by=closed_by)
    return path


def h2_connection(writer: CaptureWriter, conn_id: int, exchanges: Sequence[H2Exchange], *,
                  t: float = 1000.0, closed_by: str | None = "client") -> None:
    """:func:`h2_capture`'s connection, written to ``writer`` from (wall clock) ``t``."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8"))
    server = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding="utf-8"))
    tap = RecordingObserver(writer, conn_id, META, t=t, wall_clock=True)
    client.initiate_connection()
    server.initiate_connection()
    exchange(tap, client, server, t)
    for ex in exchanges:
        t += 0.01
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, list(ex.request), end_stream=True)
        exchange(tap, client, server, t)
        if ex.reset is not None:
            server.reset_stream(sid, ex.reset)
        elif not ex.response:
            continue
        else:
            server.send_headers(sid, list(ex.response),
                                end_stream=not ex.body and not ex.trailers)
        if ex.body:
            server.send_data(sid, ex.body, end_stream=not ex.trailers)
        if ex.trailers:
            server.send_headers(sid, list(ex.trailers), end_stream=True)
        exchange(tap, client, server, t + 0.001)
    if closed_by == "client":
        client.close_connection()
        exchange(tap, client, server, t + 0.01)
    tap.close(t + 0.02, closed_by=closed_by, cut=closed_by is None)


def h1_capture(path: Path, messages: Sequence[tuple[bytes, bytes]]) -> Path:
    """One HTTP/1.1 connection carrying (request, response) bytes, recorded."""
    with CaptureWriter(path) as writer:
        h1_connection(writer, 1, messages)
    return path


def h1_connection(writer: CaptureWriter, conn_id: int,
                  messages: Sequence[tuple[bytes, bytes]], *, t: float = 1000.0) -> None:
    """:func:`h1_capture`'s connection, written to ``writer`` from (wall clock) ``t``."""
    recording = Http1Recording(writer, conn_id, H1_META, t)
    for request, response in messages:
        t += 0.01
        recording.feed(Direction.C2S, request, t)
        recording.feed(Direction.S2C, response, t + 0.001)
    recording.close(t + 0.01, closed_by="client")


def get(path: str, *fields: tuple[str, str], authority: str = "origin.example",
        ) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "http"), (":authority", authority),
            (":path", path), *fields]


def diff(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["diff", *map(str, args)])
    return code, capsys.readouterr().out


def test_a_trailer_field_both_legs_carry_is_no_difference(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An HTTP/2 edge in front of an HTTP/1.1 origin, both announcing their trailer
    with ``trailer`` (legal in HTTP/2): 'response header names: missing trailer'
    came from dropping it from the HTTP/1.1 side only. The fields that are truly the
    HTTP/1.1 connection's — transfer-encoding, connection, those Connection names —
    are still left out."""
    edge = h2_capture(tmp_path / "edge.h2scope", [H2Exchange(
        get("/t"), [(":status", "200"), ("content-type", "text/plain"),
                    ("trailer", "x-checksum")], b"hello", [("x-checksum", "abc")])])
    origin = h1_capture(tmp_path / "origin.h2scope", [(
        b"GET /t HTTP/1.1\r\nHost: origin.example\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: x-checksum\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive, X-Origin-Hop\r\n"
        b"X-Origin-Hop: 1\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n")])
    for a, b in ((edge, origin), (origin, edge)):
        code, out = diff(capsys, a, b, "--values")
        assert code == 0, out
        assert out.splitlines()[-1].startswith("1 same, 0 differ (left out: ")


def test_a_trailer_moved_into_the_headers_or_dropped_beside_a_header_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Headers and trailers were one set of names: an edge that sent the origin's
    x-checksum trailer with its headers, or dropped the origin's x-served trailer while
    its own x-served header stayed, made no difference."""
    head = [(":status", "200"), ("content-type", "text/plain")]
    a = h2_capture(tmp_path / "a.h2scope", [
        H2Exchange(get("/moved"), head, b"hello", [("x-checksum", "abc")]),
        H2Exchange(get("/dropped"), [*head, ("x-served", "edge")], b"hello",
                   [("x-served", "origin")])])
    b = h2_capture(tmp_path / "b.h2scope", [
        H2Exchange(get("/moved"), [*head, ("x-checksum", "abc")], b"hello"),
        H2Exchange(get("/dropped"), [*head, ("x-served", "edge")], b"hello")])
    code, out = diff(capsys, a, b)
    assert code == 3, out
    assert out.count("response trailer names: missing x-checksum") == 1
    assert out.count("response header names: new x-checksum") == 1  # (where it went)
    assert out.count("response trailer names: missing x-served") == 1
    assert out.count("response header names") == 1  # (a dropped trailer is said once)
    assert out.splitlines()[-1].startswith("0 same, 2 differ (left out: ")


def test_repeated_fields_are_shown_as_lists_not_joined(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Set-Cookie values were joined with commas (RFC 9110 §5.3 forbids combining
    them), and a field split into two lines looked the same as the merged one."""
    head = [(":status", "200"), ("content-type", "text/plain")]
    a = h2_capture(tmp_path / "a.h2scope", [H2Exchange(get("/"), [
        *head, ("set-cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT"),
        ("set-cookie", "b=2"), ("x-list", "a"), ("x-list", "b")])])
    b = h2_capture(tmp_path / "b.h2scope", [H2Exchange(get("/"), [
        *head, ("set-cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT"),
        ("x-list", "a, b")])])
    code, out = diff(capsys, a, b, "--values", "--strict")
    assert code == 3, out
    assert "header set-cookie: ['a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT', 'b=2'] → " \
        "'a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT'\n" in out
    assert "header x-list: ['a', 'b'] → 'a, b'\n" in out


H1_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
H2_OK = [(":status", "200"), ("content-length", "5")]


def test_requests_compares_what_the_edge_did_to_each_request(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--requests: an HTTP/1.1 client's request in front of an edge (A) against what
    the edge sent on over HTTP/2 (B). Its translation is no difference — host for
    :authority, the connection's own fields dropped, te other than trailers dropped,
    the cookie split into crumbs — but a field it added is, a list it split, and
    a field the client's Connection header named that it forwarded anyway."""
    front = h1_capture(tmp_path / "front.h2scope", [(
        b"GET /r HTTP/1.1\r\nHost: cdn.example\r\nConnection: keep-alive, X-Hop\r\n"
        b"Keep-Alive: timeout=5\r\nX-Hop: 1\r\nTE: gzip\r\nCookie: a=1; b=2\r\n"
        b"Accept-Language: en, fr\r\nUser-Agent: t/1\r\n\r\n", H1_OK)])
    behind = h2_capture(tmp_path / "behind.h2scope", [H2Exchange(
        [(":method", "GET"), (":scheme", "http"), (":path", "/r"), ("host", "cdn.example"),
         ("x-hop", "1"), ("cookie", "a=1"), ("cookie", "b=2"), ("accept-language", "en"),
         ("accept-language", "fr"), ("user-agent", "t/1"), ("via", "1.1 edge"),
         ("x-forwarded-for", "203.0.113.7")], H2_OK, b"hello")])

    code, out = diff(capsys, front, behind)
    assert code == 0, out  # (requests are compared only when asked)
    code, out = diff(capsys, front, behind, "--requests")
    assert code == 3, out
    assert out.splitlines()[2:-1] == [
        "  DIFFERS  #1 stream 1 GET cdn.example/r (B: #1 stream 1):",
        "             request header accept-language: 'en, fr' → ['en', 'fr']",
        "             request header x-forwarded-for: none → '203.0.113.7'",
        "             request: forwarded x-hop although the client's Connection header "
        "named it"]
    assert out.splitlines()[-1].startswith("0 same, 1 differ (left out: ")
    # --ignore and --strict apply to requests too.
    code, out = diff(capsys, front, behind, "--requests", "--ignore",
                     "x-forwarded-for,accept-language")
    assert code == 3 and "request header" not in out and "forwarded x-hop" in out
    code, out = diff(capsys, front, behind, "--requests", "--strict")
    assert "request header via: none → '1.1 edge'" in out


def test_requests_names_a_rewritten_authority_and_scheme(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An edge that rewrites the host name and talks https to the origin, paired
    with --any-host: the pseudo-headers are compared, before the other fields."""
    front = h2_capture(tmp_path / "front.h2scope", [H2Exchange(
        get("/r", ("accept", "*/*"), authority="cdn.example"), H2_OK, b"hello")])
    behind = h2_capture(tmp_path / "behind.h2scope", [H2Exchange(
        [(":method", "GET"), (":scheme", "https"), (":authority", "origin.internal"),
         (":path", "/r"), ("accept", "*/*"), ("x-edge", "1")], H2_OK, b"hello")])
    code, out = diff(capsys, front, behind, "--requests", "--any-host")
    assert code == 3, out
    assert out.splitlines()[3:-1] == [
        "             request header :scheme: 'http' → 'https'",
        "             request header :authority: 'cdn.example' → 'origin.internal'",
        "             request header x-edge: none → '1'"]
    code, out = diff(capsys, front, front, "--requests")
    assert code == 0, out


def test_a_stream_whose_connection_closed_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In front of the edge one request got a 502 and one a RST_STREAM; behind it the
    origin closed the connection without answering either. That said 'status: 502 →
    no response' and only 'reset: REFUSED_STREAM by server → none'."""
    front = h2_capture(tmp_path / "front.h2scope", [
        H2Exchange(get("/a"), [(":status", "502")]),
        H2Exchange(get("/b"), (), reset=7)])
    behind = h2_capture(tmp_path / "behind.h2scope", [
        H2Exchange(get("/a"), ()), H2Exchange(get("/b"), ())], closed_by="server")
    code, out = diff(capsys, front, behind)
    assert code == 3, out
    assert "status: 502 → no response (connection closed by server)\n" in out
    assert "reset: REFUSED_STREAM by server → none (connection closed by server)\n" in out
    code, out = diff(capsys, behind, front)
    assert "  only in" not in out and "no response (connection closed by server) → 502" in out
    # A capture that stops while the streams wait says nothing of a closed connection.
    cut = tmp_path / "cut.h2scope"
    h2_capture(cut, [H2Exchange(get("/a"), ()), H2Exchange(get("/b"), ())], closed_by=None)
    code, out = diff(capsys, front, cut)
    assert "connection closed" not in out


def test_http1_and_http2_requests_of_one_recording_pair_in_the_order_they_came(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In front of the edge an HTTP/1.1 client asked first, then an HTTP/2 one; behind
    it both came on one HTTP/2 connection. The HTTP/1.x exchanges were put after
    every HTTP/2 stream, so the n-th /r in A was paired with another request's leg."""
    front = tmp_path / "front.h2scope"
    with CaptureWriter(front) as writer:
        h1_connection(writer, 1, [(
            b"GET /r HTTP/1.1\r\nHost: origin.example\r\nX-Client: h1\r\n\r\n", H1_OK)])
        h2_connection(writer, 2, [H2Exchange(get("/r", ("x-client", "h2")), H2_OK, b"hello")],
                      t=1001.0)
    behind = h2_capture(tmp_path / "behind.h2scope", [
        H2Exchange(get("/r", ("x-client", "h1")), H2_OK, b"hello"),
        H2Exchange(get("/r", ("x-client", "h2")), H2_OK, b"hello")])
    code, out = diff(capsys, front, behind, "--requests", "--all")
    assert code == 0, out
    assert "  same     #1 stream 1 GET origin.example/r: 200\n" in out
    assert "  same     #2 stream 1 GET origin.example/r: 200\n" in out
