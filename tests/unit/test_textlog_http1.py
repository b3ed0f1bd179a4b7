"""An HTTP/1.x message's header fields and trailers under its line in the text log,
live (``run --headless``) and in ``export --format text`` alike."""

from __future__ import annotations

import io
from pathlib import Path

from proxy.capture.export_text import write_text
from proxy.capture.recorder import CaptureRecorder
from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.events import (
    Batch,
    Closer,
    ConnectionClosed,
    ConnectionOpened,
    Http1MessageObserved,
    RelayStarted,
)
from proxy.observe.describe import SHOWN_LIST_SIZE
from proxy.observe.enums import Direction
from proxy.textlog import HEADER_INDENT
from tests.unit.test_headless import _one_by_one as _live

C2S, S2C = Direction.C2S, Direction.S2C
REQUEST = b"GET /echo HTTP/1.1\r\nHost: a.test\r\nUser-Agent:  curl/8.5 \r\nAccept: */*\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\nServer-Timing:  db;dur=53\r\n\r\n")


def _message(t: float, direction: Direction, start_line: str,
             headers: tuple[tuple[str, str], ...],
             trailers: tuple[tuple[str, str], ...] = ()) -> Http1MessageObserved:
    return Http1MessageObserved(conn_id=1, t=t, direction=direction, start_line=start_line,
                                headers=headers, head_size=100, body_size=0, started=t,
                                duration=0.001, trailers=trailers)


def _batches(request: bytes = REQUEST, request_headers: tuple[tuple[str, str], ...] = (
        ("Host", "a.test"), ("User-Agent", "curl/8.5"), ("Accept", "*/*"))) -> list[Batch]:
    """An HTTP/1.1 exchange as the relay publishes it: each message with its last
    bytes (the response chunked, with two trailer fields)."""
    return [
        Batch(conn_id=1, t=1000.0, events=(ConnectionOpened(
            conn_id=1, t=1000.0, client=("127.0.0.1", 5001), mode="regular",
            target="a.test:80"),)),
        Batch(conn_id=1, t=1000.001, events=(RelayStarted(
            conn_id=1, t=1000.001, protocol="http/1.1", target="a.test:80"),)),
        Batch(conn_id=1, t=1000.01, direction=C2S, data=request, protocol="http/1.1",
              events=(_message(1000.01, C2S, "GET /echo HTTP/1.1", request_headers),)),
        Batch(conn_id=1, t=1000.02, direction=S2C, data=RESPONSE, protocol="http/1.1",
              events=(_message(1000.02, S2C, "HTTP/1.1 200 OK", (
                  ("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")), (
                  ("X-Checksum", "abc123"), ("Server-Timing", "db;dur=53"))),)),
        Batch(conn_id=1, t=1000.03, events=(ConnectionClosed(
            conn_id=1, t=1000.03, closed_by=Closer.CLIENT, reason="client closed"),)),
    ]


def _exported(batches: list[Batch], path: Path) -> str:
    recorder = CaptureRecorder(CaptureWriter(path))
    for b in batches:
        recorder.consume(b)
    recorder.close()
    out = io.StringIO()
    write_text(replay(path), out)
    return out.getvalue()


def _under(text: str, start_line: str) -> list[str]:
    """The indented lines under the message line that ends with ``start_line``."""
    lines = text.splitlines()
    i = next(i for i, ln in enumerate(lines) if start_line in ln and "#1" in ln)
    out = []
    for ln in lines[i + 1:]:
        if not ln.startswith(HEADER_INDENT):
            break
        out.append(ln[len(HEADER_INDENT):])
    return out


def test_an_http1_message_lists_its_fields_and_trailers_live_and_exported(
        tmp_path: Path) -> None:
    """Names as sent (HTTP/1.1 names keep their case), values without the spaces
    around them; the trailers after the header fields, as they came after the body.
    The export lists the same lines: its trailers read from the recorded bytes."""
    live = _live(_batches())
    assert _under(live, "GET /echo HTTP/1.1") == [
        "Host: a.test", "User-Agent: curl/8.5", "Accept: */*"]
    response = ["Content-Type: text/plain", "Transfer-Encoding: chunked",
                "; trailers, after the body:", "X-Checksum: abc123",
                "Server-Timing: db;dur=53"]
    assert _under(live, "HTTP/1.1 200 OK") == response
    assert "2 trailer fields" in next(ln for ln in live.splitlines() if "200 OK" in ln)
    exported = _exported(_batches(), tmp_path / "h1.h2scope")
    assert _under(exported, "GET /echo HTTP/1.1") == _under(live, "GET /echo HTTP/1.1")
    assert _under(exported, "HTTP/1.1 200 OK") == response


def test_quiet_and_a_filter_leave_out_an_http1_messages_fields_with_its_line() -> None:
    from proxy.commands.run import event_filter

    for kw in ({"quiet": True}, {"filter": event_filter("type:HEADERS")}):
        text = _live(_batches(), **kw)
        assert "Host: a.test" not in text and "X-Checksum" not in text, kw


def test_a_huge_http1_field_list_is_cut_as_a_headers_frames_is(tmp_path: Path) -> None:
    """At most SHOWN_LIST_SIZE of the list (RFC 7541 §4.1 sizes), the rest counted."""
    fields = tuple((f"X-F{i:04d}", "v" * 200) for i in range(2000))
    request = ("GET /echo HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
               + "\r\n").encode()
    live = _under(_live(_batches(request, fields)), "GET /echo HTTP/1.1")
    shown = SHOWN_LIST_SIZE // (7 + 200 + 32)
    assert len(live) == shown + 1 and live[-1].startswith(
        f"… {2000 - shown:,} more fields (") and live[-1].endswith(" bytes) not shown"), live[-1]
    assert _under(_exported(_batches(request, fields), tmp_path / "big.h2scope"),
                  "GET /echo HTTP/1.1") == live


def test_an_http1_field_name_that_is_no_token_is_quoted(tmp_path: Path) -> None:
    """A name with a space (as a lax parser takes it) is shown in quotes: the line
    cannot read as another name and value."""
    request = b"GET /echo HTTP/1.1\r\nHost: a.test\r\nX Y: 1\r\n\r\n"
    fields = (("Host", "a.test"), ("X Y", "1"))
    live = _under(_live(_batches(request, fields)), "GET /echo HTTP/1.1")
    assert live == ["Host: a.test", '"X Y": 1']
    assert _under(_exported(_batches(request, fields), tmp_path / "name.h2scope"),
                  "GET /echo HTTP/1.1") == live


def test_the_export_without_header_lists_leaves_out_an_http1_messages_too(
        tmp_path: Path) -> None:
    path = tmp_path / "h1.h2scope"
    _exported(_batches(), path)
    out = io.StringIO()
    write_text(replay(path), out, headers=False)
    assert "GET /echo HTTP/1.1" in out.getvalue() and "Host: a.test" not in out.getvalue()
