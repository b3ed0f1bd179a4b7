"""The run summary's flow-control and slowest-stream lines, from the observer's
own events on a scripted conversation (hyperframe/hpack-built frames)."""

from __future__ import annotations

from proxy.events import Batch, ConnectionClosed
from proxy.observe.enums import Direction
from proxy.observe.findings import Severity
from proxy.summary import RunSummary
from tests.unit.observe.conftest import REQUEST, Conversation

C2S, S2C = Direction.C2S, Direction.S2C
END = ["END_HEADERS", "END_STREAM"]


class Fed:
    """A conversation whose events go to a RunSummary as connection ``conn``."""

    def __init__(self, summary: RunSummary, conn: int = 1) -> None:
        self.conv = Conversation()
        self.conv.send(C2S, self.conv.f.settings(initial_window_size=100))
        self.conv.send(S2C, self.conv.f.settings(ack=True))
        self.summary, self.conn = summary, conn
        self.summary.handle(Batch(conn_id=conn, t=self.conv.t, events=tuple(self.conv.events)))

    def send(self, direction: Direction, data: bytes, dt: float = 0.001) -> None:
        events = self.conv.send(direction, data, dt)
        self.summary.handle(Batch(conn_id=self.conn, t=self.conv.t, events=tuple(events)))

    def request(self, sid: int, path: str) -> None:
        self.send(C2S, self.conv.f.headers(C2S, sid, [*REQUEST[:3], (":path", path)], flags=END))
        self.send(S2C, self.conv.f.headers(S2C, sid, [(":status", "200")]))


def stall_lines(summary: RunSummary) -> list[str]:
    return [ln.strip() for ln in summary.lines() if "stall" in ln or "never resumed" in ln]


def test_a_resumed_stall_is_counted_with_the_longest_wait() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    fed.request(1, "/big")
    fed.send(S2C, fed.conv.f.data(1, b"x" * 100))  # the window of 100 is spent: stalled
    fed.send(C2S, fed.conv.f.window_update(1, 100), dt=0.25)
    fed.send(S2C, fed.conv.f.data(1, b"y", flags=["END_STREAM"]))
    assert stall_lines(summary) == [
        "flow control: 1 stall, longest 250.0 ms (#1 stream 1, server blocked)"]
    slowest = summary.lines()[summary.lines().index("slowest streams:") + 1]
    assert slowest.split() == ["253.0", "ms", "#1", "stream", "1", "GET", "example.com/big"]


def test_stalls_ended_by_a_reset_a_close_or_the_end_never_resumed() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    for sid in (1, 3):
        fed.request(sid, f"/{sid}")
        fed.send(S2C, fed.conv.f.data(sid, b"x" * 100))
    fed.send(C2S, fed.conv.f.rst(1, 8), dt=2.0)  # the client gives up on stream 1
    other = Fed(summary, conn=2)
    other.request(1, "/hang")
    other.send(S2C, other.conv.f.data(1, b"x" * 100))
    summary.handle(Batch(conn_id=2, t=other.conv.t + 1, events=(ConnectionClosed(
        conn_id=2, t=other.conv.t + 1, closed_by="CLIENT", reason="client closed"),)))  # type: ignore[arg-type]
    summary.last_t = fed.conv.t + 5
    lines = stall_lines(summary)
    # The longest is a hang that never resumed: it says so.
    assert lines[0] == ("flow control: 3 stalls, longest 7000.0 ms (#1 stream 3, server "
                        "blocked, never resumed)")
    assert lines[1] == ("never resumed: #1 stream 1, server blocked, stalled for 2003.0 ms "
                        "from frame #8 until the client reset the stream (CANCEL): the client "
                        "sent no WINDOW_UPDATE that reopened it")
    assert lines[2].startswith("never resumed: #2 stream 1, server blocked, stalled for 1000.")
    assert lines[2].endswith("until the connection closed: the client sent no WINDOW_UPDATE "
                             "that reopened it")
    assert lines[3].startswith("never resumed: #1 stream 3, server blocked, stalled for 7000.0 ms")
    assert "at the end" in lines[3]
    # check --json: where each began, to go to that frame.
    assert [(e["conn"], e["stream"], e["since_frame"])
            for e in summary.as_dict()["stalls"]["never_resumed"]] == [(1, 1, 8), (2, 1, 8),
                                                                      (1, 3, 11)]


def test_a_stream_its_sender_ends_with_the_window_spent_was_not_waiting() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    fed.request(1, "/exact")
    fed.send(S2C, fed.conv.f.data(1, b"x" * 100))
    fed.send(S2C, fed.conv.f.data(1, b"", flags=["END_STREAM"]))
    # Not a stall at all: nothing was waiting (the live log's 'blocked' line was
    # written before the END_STREAM said so); before the next batch too.
    assert stall_lines(summary) == []
    fed.send(C2S, fed.conv.f.ping())
    assert stall_lines(summary) == [] and summary.as_dict()["stalls"]["count"] == 0


def test_a_connection_upgraded_after_its_101_counts_once_as_what_it_became() -> None:
    """curl --http2 on http://: relayed as http/1.1, then as h2c after the 101."""
    from proxy.events import ConnectionOpened, RelayStarted

    summary = RunSummary()
    for conn, protocols in ((1, ("http/1.1", "h2c")), (2, ("http/1.1",))):
        summary.handle(Batch(conn_id=conn, t=0.0, events=(ConnectionOpened(
            conn_id=conn, t=0.0, client=("127.0.0.1", 50000 + conn), mode="regular",
            target=None),)))
        for p in protocols:
            summary.handle(Batch(conn_id=conn, t=0.0, events=(RelayStarted(
                conn_id=conn, t=0.0, protocol=p, target="localhost:80"),)))
    assert summary.connections == 2
    assert dict(summary.protocols) == {"h2c": 1, "http/1.1": 1}


def test_the_live_summary_counts_protocols_as_check_does() -> None:
    """An HTTP/1.1 relay announces no RelayStarted (its chunks carry the protocol),
    and a connection that failed before relaying is 'not relayed': the live summary left both
    out, while check on the recording counted them."""
    from proxy.events import ConnectionClosed, ConnectionOpened, Direction

    summary = RunSummary()
    for conn in (1, 2):
        summary.handle(Batch(conn_id=conn, t=0.0, events=(ConnectionOpened(
            conn_id=conn, t=0.0, client=("127.0.0.1", 50000 + conn), mode="regular",
            target=None),)))
    summary.handle(Batch(conn_id=1, t=0.1, events=(), direction=Direction.C2S,
                         data=b"GET / HTTP/1.1\r\n\r\n", protocol="http/1.1"))
    summary.handle(Batch(conn_id=1, t=0.2, events=(), direction=Direction.S2C,
                         data=b"HTTP/1.1 200 OK\r\n\r\n", protocol="http/1.1"))
    for conn in (1, 2):
        summary.handle(Batch(conn_id=conn, t=0.3, events=(ConnectionClosed(
            conn_id=conn, t=0.3, closed_by="CLIENT", reason="done"),)))  # type: ignore[arg-type]
    assert dict(summary.protocols) == {"http/1.1": 1, "not relayed": 1}


def test_the_summary_counts_grpc_calls_by_their_status() -> None:

    conv = Conversation()
    request = [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
               (":path", "/pkg.Svc/Call"), ("content-type", "application/grpc")]
    for sid, code in ((1, "0"), (3, "0"), (5, "5")):
        conv.send(C2S, conv.f.headers(C2S, sid, request, flags=["END_HEADERS", "END_STREAM"]))
        conv.send(S2C, conv.f.headers(S2C, sid, [(":status", "200"),
                                                 ("content-type", "application/grpc"),
                                                 ("grpc-status", code)],
                                      flags=["END_HEADERS", "END_STREAM"]))
    summary = RunSummary()
    summary.handle(Batch(conn_id=1, t=conv.t, events=tuple(conv.events)))
    assert "grpc calls: 2 OK, 1 NOT_FOUND" in summary.lines()
    assert summary.as_dict()["grpc_statuses"] == {"OK": 2, "NOT_FOUND": 1}


def test_a_grpc_call_reset_before_its_status_is_counted_as_a_call() -> None:
    """A call its client cancelled at the deadline has no grpc-status: the summary
    (and check) said '2 OK' for three calls."""
    conv = Conversation()
    request = [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
               (":path", "/pkg.Svc/Slow"), ("content-type", "application/grpc"),
               ("grpc-timeout", "300m")]
    for sid in (1, 3):
        conv.send(C2S, conv.f.headers(C2S, sid, request, flags=["END_HEADERS", "END_STREAM"]))
        conv.send(S2C, conv.f.headers(S2C, sid, [(":status", "200"),
                                                 ("content-type", "application/grpc"),
                                                 ("grpc-status", "0")],
                                      flags=["END_HEADERS", "END_STREAM"]))
    conv.send(C2S, conv.f.headers(C2S, 5, request, flags=["END_HEADERS"]))
    conv.send(C2S, conv.f.rst(5, 0x8))
    summary = RunSummary()
    summary.handle(Batch(conn_id=1, t=conv.t, events=tuple(conv.events)))
    assert "grpc calls: 2 OK, 1 CANCELLED (reset CANCEL by the client before any " \
        "grpc-status)" in \
        summary.lines()
    # The only call of a session, cancelled, and one that ends with no status at all.
    conv = Conversation()
    conv.send(C2S, conv.f.headers(C2S, 1, request, flags=["END_HEADERS"]))
    conv.send(C2S, conv.f.rst(1, 0x8))
    conv.send(C2S, conv.f.headers(C2S, 3, request, flags=["END_HEADERS", "END_STREAM"]))
    conv.send(S2C, conv.f.headers(S2C, 3, [(":status", "200"),
                                           ("content-type", "application/grpc")],
                                  flags=["END_HEADERS", "END_STREAM"]))
    summary = RunSummary()
    summary.handle(Batch(conn_id=1, t=conv.t, events=tuple(conv.events)))
    assert "grpc calls: 1 CANCELLED (reset CANCEL by the client before any grpc-status), " \
        "1 no status" in summary.lines()


def test_a_slow_stream_that_was_reset_says_so() -> None:
    """Chromium cancels an image it no longer needs: ranked among the slowest, it
    read like a slow response."""
    summary = RunSummary()
    fed = Fed(summary)
    fed.request(1, "/fast")
    fed.send(S2C, fed.conv.f.data(1, b"x", flags=["END_STREAM"]))
    fed.request(3, "/cancelled")
    fed.send(C2S, fed.conv.f.rst(3, 8), dt=0.5)
    lines = summary.lines()
    at = lines.index("slowest streams:")
    assert lines[at + 1].split()[2:] == ["#1", "stream", "3", "GET", "example.com/cancelled",
                                         "(reset", "CANCEL", "by", "the", "client)"]
    assert "reset" not in lines[at + 2]
    assert summary.as_dict()["slowest_streams"][0]["reset"] == "reset CANCEL by the client"


def test_a_malformed_rst_stream_is_a_finding_not_a_reset_and_the_summary_goes_on() -> None:
    """An RST_STREAM whose payload is not 4 bytes (RFC 9113 §6.4: FRAME_SIZE_ERROR)
    has no error code: the summary counts its finding and keeps taking events."""
    import struct
    summary = RunSummary()
    fed = Fed(summary)
    fed.request(1, "/a")
    fed.send(C2S, struct.pack(">HBBBL", 0, 3, 3, 0, 1) + b"\x00\x00\x08")
    fed.request(3, "/b")
    fed.send(S2C, fed.conv.f.rst(3, 8))
    assert summary.resets == {"CANCEL": 1}
    assert [g.code for g in summary.findings.groups()] == ["frame-malformed"]
    assert summary.worst() is Severity.ERROR


def test_an_internal_error_loses_one_batch_and_the_summary_says_it_is_incomplete(
        monkeypatch: object) -> None:
    summary = RunSummary()
    fed = Fed(summary)
    real = RunSummary._handle
    calls = {"n": 0}

    def flaky(self: RunSummary, batch: Batch) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise AttributeError("a bug")
        real(self, batch)
    monkeypatch.setattr(RunSummary, "_handle", flaky)  # type: ignore[attr-defined]
    fed.request(1, "/a")  # (two batches: the second is lost)
    fed.request(3, "/b")
    assert summary.missed == 1
    assert summary.streams == 2  # (counted at the request HEADERS: both got through)
    assert any(line.startswith("INCOMPLETE: an internal error kept 1 batch")
               for line in summary.lines())
    assert summary.as_dict()["incomplete_batches"] == 1


def test_findings_are_grouped_and_named_by_the_side_whose_bytes_they_are_about() -> None:
    """The same code by both peers is two lines, each saying whose frames it was
    about; ``check --json`` has it as ``sender``. SETTINGS never acknowledged is
    the side that owed the ACK's."""
    import struct
    summary = RunSummary()
    fed = Fed(summary)
    fed.send(C2S, struct.pack(">HBBBL", 0, 4, 8, 0, 0) + b"\x00\x00\x00\x00")  # WU +0
    fed.send(S2C, struct.pack(">HBBBL", 0, 4, 8, 0, 0) + b"\x00\x00\x00\x00")
    fed.send(S2C, struct.pack(">HBBBL", 0, 4, 8, 0, 0) + b"\x00\x00\x00\x00")
    fed.send(C2S, fed.conv.f.settings(max_concurrent_streams=10))
    summary.handle(Batch(conn_id=1, t=fed.conv.t + 5, events=tuple(
        fed.conv.obs.close(fed.conv.t + 5, closed_by="client"))))
    found = [(d["code"], d["sender"], d["count"]) for d in summary.as_dict()["findings"]]
    assert ("window-update-zero", "server", 2) in found
    assert ("window-update-zero", "client", 1) in found
    assert ("settings-not-acknowledged", "server", 1) in found
    assert any(line.strip().startswith("error   window-update-zero (RFC 9113 §6.9) ×2 by the "
                                       "server, first #1:") for line in summary.lines())


def test_a_stream_still_open_when_its_connection_closes_counts_among_the_slowest() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    fed.request(1, "/quick")
    fed.send(S2C, fed.conv.f.data(1, b"x", flags=["END_STREAM"]))
    fed.send(C2S, fed.conv.f.headers(C2S, 3, [*REQUEST[:3], (":path", "/hang")],
                                     flags=END))
    summary.connection_closed(1, fed.conv.t + 2.0)
    slowest = summary.lines()[summary.lines().index("slowest streams:") + 1]
    assert slowest.split()[2:] == ["#1", "stream", "3", "GET", "example.com/hang", "(unfinished",
                                   "when", "the", "connection", "closed)"]
    assert summary.as_dict()["slowest_streams"][0]["reset"] == \
        "unfinished when the connection closed"


def test_streams_open_where_an_excerpt_ends_are_not_counted_as_slow() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    fed.send(C2S, fed.conv.f.headers(C2S, 1, [*REQUEST[:3], (":path", "/cut")], flags=END))
    summary.connection_closed(1, fed.conv.t + 2.0, excerpt=True)
    assert "slowest streams:" not in summary.lines()


def test_a_stall_whose_window_updates_were_too_small_says_so() -> None:
    """A WINDOW_UPDATE that leaves a stalled window at 0 or below does not reopen
    it: 'never resumed' says the peer's updates were too small, not that none came."""
    summary = RunSummary()
    fed = Fed(summary)  # (the client's INITIAL_WINDOW_SIZE is 100)
    fed.request(1, "/big")
    fed.send(S2C, fed.conv.f.data(1, b"x" * 100))  # the window of 100 is spent
    fed.send(C2S, fed.conv.f.settings(initial_window_size=50))
    fed.send(S2C, fed.conv.f.settings(ack=True))  # -50
    fed.send(C2S, fed.conv.f.window_update(1, 30))  # -20: still blocked
    summary.connection_closed(1, fed.conv.t + 1.0)
    (line,) = [ln for ln in stall_lines(summary) if "never resumed:" in ln]
    assert line.endswith("the client's 1 WINDOW_UPDATE since left the window at 0 or below")


def test_a_clients_push_promise_reserves_no_stream_and_is_not_a_slow_stream() -> None:
    import struct

    from tests.unit.observe.test_connection import raw_frame

    summary = RunSummary()
    fed = Fed(summary)
    fed.request(1, "/page")
    block = fed.conv.f.block(C2S, [*REQUEST[:3], (":path", "/pushed")])
    fed.send(C2S, raw_frame(5, 0x4, 1, struct.pack(">I", 2) + block))
    assert "push-from-client" in fed.conv.findings()
    assert 2 not in fed.conv.obs.streams or fed.conv.obs.streams[2].state.name == "IDLE"
    fed.send(S2C, fed.conv.f.data(1, b"x", flags=["END_STREAM"]))
    summary.connection_closed(1, fed.conv.t + 2.0)
    assert "slowest streams:" in summary.lines()
    assert not any("stream 2" in ln for ln in summary.lines())
    assert summary.streams == 1


def test_the_summary_says_how_well_each_side_compressed_its_headers() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    for sid in (1, 3, 5):
        fed.request(sid, "/same")
    wire, fields = summary.hpack_wire, summary.hpack_fields
    assert wire[0] > 0 and fields[0] > wire[0]  # the repeats index the table
    line = next(ln for ln in summary.lines() if ln.startswith("HPACK: "))
    assert line.startswith(f"HPACK: client {wire[0]:,} B on the wire for {fields[0]:,} B of "
                           f"names and values ({fields[0] / wire[0]:.1f}:1); server ")
    assert summary.as_dict()["hpack"]["server"] == {"wire_bytes": wire[1],
                                                    "field_bytes": fields[1]}


def _conn_window_spent(summary: RunSummary) -> Fed:
    """Stream 1's response spends the 65,535-byte connection window exactly (its own
    window is wide): the connection window stalls."""
    fed = Fed(summary)
    fed.send(C2S, fed.conv.f.settings(initial_window_size=1 << 20))
    fed.send(S2C, fed.conv.f.settings(ack=True))
    fed.request(1, "/all")
    for _ in range(3):
        fed.send(S2C, fed.conv.f.data(1, b"x" * 16384))
    fed.send(S2C, fed.conv.f.data(1, b"x" * 16383))
    return fed


def test_a_connection_window_spent_by_a_download_that_then_ended_is_no_stall() -> None:
    """The download's last DATA spent the connection window exactly and an empty
    DATA ended it: nothing waited, so no stall — it was the summary's longest,
    'never resumed', on a connection that finished normally. If the client resets
    its last waiting stream instead, the connection window's wait is said with it."""
    summary = RunSummary()
    fed = _conn_window_spent(summary)
    fed.send(S2C, fed.conv.f.data(1, b"", flags=["END_STREAM"]), dt=0.9)
    summary.handle(Batch(conn_id=1, t=fed.conv.t + 1, events=()))
    summary.connection_closed(1, fed.conv.t + 1)
    assert stall_lines(summary) == []

    summary = RunSummary()
    fed = _conn_window_spent(summary)
    fed.send(C2S, fed.conv.f.rst(1, 8), dt=2.0)
    summary.connection_closed(1, fed.conv.t + 1)
    lines = stall_lines(summary)
    assert any(ln.startswith("never resumed: #1 the connection window, server blocked, "
                             "stalled for 2000.0 ms") and ln.endswith(
        "until the client reset stream 1, the last that waited (CANCEL): the client sent no "
        "WINDOW_UPDATE that reopened it") for ln in lines), lines


def test_a_stream_opened_against_the_id_rules_is_not_a_slow_request() -> None:
    """Stream 3 after stream 5 (§5.1.1): its server owes it nothing, so it is not
    listed among the slowest streams as 'unfinished' when the connection closes."""
    summary = RunSummary()
    fed = Fed(summary)
    fed.send(C2S, fed.conv.f.headers(C2S, 5, REQUEST, flags=END))
    fed.send(C2S, fed.conv.f.headers(C2S, 3, REQUEST, flags=END))
    summary.connection_closed(1, fed.conv.t + 2)
    assert [sid for _took, _conn, sid, _req in summary.slowest] == [5]


def _grpc_batches(steps: list[tuple[Direction, bytes, float]]) -> RunSummary:
    """Each frame in its own batch, as the relay hands them over."""
    conv = Conversation()
    summary = RunSummary()
    summary.handle(Batch(conn_id=1, t=conv.t, events=tuple(conv.events)))
    for direction, data, dt in steps:
        events = conv.send(direction, data, dt)
        summary.handle(Batch(conn_id=1, t=conv.t, events=tuple(events)))
    return summary


def test_a_grpc_call_is_counted_once_and_as_its_client_saw_it() -> None:
    """A deadline's CANCEL followed by the server's DEADLINE_EXCEEDED trailers was
    two outcomes for one call (11 for 10 calls); a call the client failed with
    RESOURCE_EXHAUSTED (its RST ENHANCE_YOUR_CALM after the server's OK) was OK."""
    conv = Conversation()
    f = conv.f
    request = [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
               (":path", "/pkg.Svc/Slow"), ("content-type", "application/grpc")]
    ok = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0")]
    summary = _grpc_batches([
        # 1: the deadline (300 ms) passes: the client resets, then the server's status
        (C2S, f.headers(C2S, 1, [*request, ("grpc-timeout", "300m")], flags=END), 0.001),
        (C2S, f.rst(1, 0x8), 0.299),
        (S2C, f.headers(S2C, 1, [(":status", "200"), ("content-type", "application/grpc"),
                                 ("grpc-status", "4")], flags=END), 0.002),
        # 3: OK from the server, but the client refused the message (too large)
        (C2S, f.headers(C2S, 3, request, flags=END), 0.001),
        (S2C, f.headers(S2C, 3, ok, flags=END), 0.001),
        (C2S, f.rst(3, 0xb), 0.001),
        # 5: cancelled by the user long before its 10 s deadline
        (C2S, f.headers(C2S, 5, [*request, ("grpc-timeout", "10S")], flags=END), 0.001),
        (C2S, f.rst(5, 0x8), 0.1),
        # 7: OK, then a client CANCEL after it (cleanup, not a failure)
        (C2S, f.headers(C2S, 7, request, flags=END), 0.001),
        (S2C, f.headers(S2C, 7, ok, flags=END), 0.001),
        (C2S, f.rst(7, 0x8), 0.001),
        # 9: the server resets it
        (C2S, f.headers(C2S, 9, request, flags=END), 0.001),
        (S2C, f.rst(9, 0x2), 0.001),
    ])
    assert dict(summary.grpc) == {
        "DEADLINE_EXCEEDED (the client's 300 ms deadline: reset CANCEL before any "
        "grpc-status)": 1,
        "RESOURCE_EXHAUSTED at the client (OK from the server, then reset ENHANCE_YOUR_CALM "
        "by the client)": 1,
        "CANCELLED (reset CANCEL by the client before any grpc-status)": 1,
        "OK": 1,
        "INTERNAL (reset INTERNAL_ERROR by the server before any grpc-status)": 1}
    assert sum(summary.grpc.values()) == 5


def test_the_summary_lists_goaways_by_sender_code_and_debug_data() -> None:
    """A server's GOAWAY ENHANCE_YOUR_CALM 'too_many_pings' — the reason to open a
    gRPC capture — was in no summary, text or JSON."""
    from tests.unit.capture.traffic import raw_frame

    def goaway(last: int, code: int, debug: bytes) -> bytes:
        return raw_frame(0x7, 0, 0, last.to_bytes(4, "big") + code.to_bytes(4, "big") + debug)

    summary = RunSummary()
    for conn in (4, 5):
        conv = Conversation()
        conv.send(S2C, goaway(1, 0xb, b"too_many_pings"))
        summary.handle(Batch(conn_id=conn, t=conv.t, events=tuple(conv.events)))
    conv = Conversation()
    conv.send(C2S, goaway(0, 0, b""))
    summary.handle(Batch(conn_id=6, t=conv.t, events=tuple(conv.events)))
    lines = summary.lines()
    at = lines.index("goaways:")
    assert lines[at + 1].startswith("  server ENHANCE_YOUR_CALM 'too_many_pings' ×2, first #4 "
                                    "(last stream 1): gRPC's keepalive enforcement"), lines
    assert lines[at + 2] == "  client NO_ERROR ×1, first #6 (last stream 0)"
    assert summary.as_dict()["goaways"] == [
        {"by": "server", "error": "ENHANCE_YOUR_CALM", "debug": "too_many_pings", "count": 2,
         "first_conn": 4, "last_stream_id": 1},
        {"by": "client", "error": "NO_ERROR", "debug": None, "count": 1, "first_conn": 6,
         "last_stream_id": 0}]


def test_an_upload_a_server_stops_after_its_complete_response_is_no_hang() -> None:
    """nginx answers an oversized POST with 413 and RST_STREAM NO_ERROR (RFC 9113 §8.1):
    the upload's stall was listed as a hang, 'the server sent no WINDOW_UPDATE'."""
    summary = RunSummary()
    fed = Fed(summary)
    fed.send(S2C, fed.conv.f.settings(initial_window_size=100))
    fed.send(C2S, fed.conv.f.settings(ack=True))
    fed.send(C2S, fed.conv.f.headers(C2S, 1, [(":method", "POST"), *REQUEST[1:]],
                                     flags=["END_HEADERS"]))
    fed.send(C2S, fed.conv.f.data(1, b"x" * 100))  # the upload's window is spent
    fed.send(S2C, fed.conv.f.headers(S2C, 1, [(":status", "413")], flags=END))
    fed.send(S2C, fed.conv.f.rst(1, 0))
    (line,) = [ln for ln in stall_lines(summary) if ln.startswith("never resumed")]
    assert line.endswith("until the server reset the stream (NO_ERROR): no hang: the server "
                         "asked the client to stop sending (RFC 9113 §8.1: a server that sent "
                         "its complete response may end the request's upload with "
                         "RST_STREAM NO_ERROR)"), line


def test_a_stall_on_an_h2c_connection_whose_client_sent_no_preface_says_so() -> None:
    """Apache and h2o fill the window right after the 101; a client that then leaves
    without its preface owed no WINDOW_UPDATE: the summary said it never sent one."""
    from proxy.observe.connection import ConnectionObserver
    from tests.unit.capture.traffic import raw_frame

    obs = ConnectionObserver()
    events = list(obs.upgrade_h2c(http2_settings=b"", request_headers=(
        (":method", "GET"), (":path", "/big"), (":scheme", "http"), (":authority", "a")), t=0.0))
    server = raw_frame(4, 0, 0, b"") + raw_frame(1, 4, 1, bytes.fromhex("88"))
    server += b"".join(raw_frame(0, 0, 1, bytes(16383)) for _ in range(4))
    server += raw_frame(0, 0, 1, bytes(3))
    events += obs.feed(S2C, server, 0.01)
    events += obs.close(0.02, "client")
    summary = RunSummary()
    summary.handle(Batch(conn_id=1, t=0.01, events=tuple(events)))
    summary.handle(Batch(conn_id=1, t=0.02, events=(ConnectionClosed(
        conn_id=1, t=0.02, closed_by="CLIENT", reason="client closed"),)))  # type: ignore[arg-type]
    lines = [ln for ln in stall_lines(summary) if ln.startswith("never resumed")]
    assert len(lines) == 2, lines  # (the connection window and stream 1)
    assert all(ln.endswith("the client never became an HTTP/2 endpoint: it sent no connection "
                           "preface after the 101 of its Upgrade: h2c (preface-missing)")
               for ln in lines), lines
