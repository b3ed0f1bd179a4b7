"""The console printer: the same lines whether batches come one by one or in groups."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from proxy.events import Batch, Closer, ConnectionClosed, ConnectionOpened
from proxy.headless import HeadlessPrinter
from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import FrameObserved
from proxy.textlog import RequestLabels, event_lines, in_log_order, prefix
from tests.unit.capture.traffic import record_session
from tests.unit.observe.conftest import FrameFactory


def _batches() -> list[Batch]:
    """Two interleaved connections of real h2 traffic, each read its own batch."""
    out: list[Batch] = []
    for conn_id in (1, 2):
        obs = ConnectionObserver(preface="required")
        chunks = record_session(_NullWriter(), conn_id).chunks  # type: ignore[arg-type]
        t = 1000.0
        out.append(Batch(conn_id=conn_id, t=t, events=(ConnectionOpened(
            conn_id=conn_id, t=t, client=("127.0.0.1", 5000 + conn_id), mode="regular",
            target="example.test:443"),)))
        for direction, data in chunks:
            t += 0.001  # both connections share the same times: the prefix is per connection
            out.append(Batch(conn_id=conn_id, t=t, events=tuple(obs.feed(direction, data, t)),
                             direction=direction, data=data, protocol="h2"))
        out.append(Batch(conn_id=conn_id, t=t, events=(ConnectionClosed(
            conn_id=conn_id, t=t, closed_by=Closer.CLIENT, reason="client closed"),)))
    return sorted(out, key=lambda b: b.t)  # stable: interleaves the two connections


class _NullWriter:
    """Enough of a CaptureWriter for record_session's tap: records nothing."""

    def __getattr__(self, name: str) -> object:
        return lambda *a, **k: None


def _one_by_one(batches: list[Batch], **kw: object) -> str:
    out = io.StringIO()
    printer = HeadlessPrinter(out, **kw)  # type: ignore[arg-type]
    for b in batches:
        printer.handle(b)
    return out.getvalue()


def test_grouped_batches_print_exactly_the_lines_of_one_by_one() -> None:
    batches = _batches()
    for kw in ({}, {"annotate": True}, {"quiet": True}):
        out = io.StringIO()
        printer = HeadlessPrinter(out, **kw)  # type: ignore[arg-type]
        printer.handle_many(batches[:5])
        printer.handle_many(batches[5:])
        expected = _one_by_one(batches, **kw)
        assert out.getvalue() == expected
        assert printer.lines == expected.count("\n")


def test_every_frame_line_is_the_text_log_line_with_its_own_connection() -> None:
    batches = _batches()
    text = _one_by_one(batches)
    start = batches[0].t
    expected: list[str] = []
    requests = RequestLabels()
    for b in batches:
        for ev in in_log_order(b.events):
            if type(ev) is FrameObserved and ev.block is not None:
                requests.block(b.conn_id, ev)
            if b.direction is not None:
                expected += event_lines(b.conn_id, ev, ev.t - start, requests=requests)
    frame_lines = [ln for ln in text.splitlines() if " * " not in ln]
    assert frame_lines == expected
    # What a frame caused comes after it: the ACK, then the settings in force.
    ack = next(i for i, ln in enumerate(frame_lines) if "SETTINGS [ACK]" in ln)
    assert "settings in force for the" in frame_lines[ack + 1]
    assert any(ln.startswith(prefix(1, 0.001, Direction.C2S.arrow)) for ln in frame_lines)
    assert any(ln.startswith(prefix(2, 0.001, Direction.C2S.arrow)) for ln in frame_lines)


def test_a_reader_that_went_away_stops_the_printer_not_the_proxy() -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    out.close()
    printer.handle_many(_batches()[:3])
    assert printer.broken


def test_jsonl_writes_one_object_per_frame_and_per_event_a_log_shows() -> None:
    batches = _batches()
    frames = [(b.conn_id, b.t, ev) for b in batches for ev in b.events
              if isinstance(ev, FrameObserved)]
    objs = [json.loads(line) for line in _one_by_one(batches, jsonl=True).splitlines()]
    assert [(o["conn"], o["wall"], o["seq"], o["type"]) for o in objs if "type" in o] == [
        (c, t, ev.seq, ev.frame.type_name) for c, t, ev in frames]
    # The others are events, named: settings taking effect, and each connection's
    # open and close, in their places.
    events = [o for o in objs if "type" not in o]
    assert events and {o["event"] for o in events} <= {
        "SettingsAcknowledged", "FlowControlStalled", "FlowControlResumed", "PingAnswered",
        "ConnectionOpened", "ConnectionClosed"}
    assert "SettingsAcknowledged" in {o["event"] for o in events}
    for conn in (1, 2):
        mine = [o for o in objs if o["conn"] == conn]
        assert mine[0] == {"conn": conn, "wall": 1000.0, "event": "ConnectionOpened",
                           "client": {"ip": "127.0.0.1", "port": 5000 + conn},
                           "mode": "regular"}
        assert (mine[-1]["event"], mine[-1]["closed_by"], mine[-1]["reason"]) == (
            "ConnectionClosed", "client", "client closed")
    # -q: what the text log's -q keeps, the connections.
    quiet = [json.loads(line) for line in
             _one_by_one(batches, jsonl=True, quiet=True).splitlines()]
    assert [(o["conn"], o["event"]) for o in quiet] == [
        (1, "ConnectionOpened"), (2, "ConnectionOpened"),
        (1, "ConnectionClosed"), (2, "ConnectionClosed")]
    only_data = _one_by_one(batches, jsonl=True,
                            filter=lambda ev, info: isinstance(ev, FrameObserved)
                            and ev.frame.type == 0)
    assert {json.loads(line)["type"] for line in only_data.splitlines()} == {"DATA"}


def test_jsonl_says_what_went_wrong_on_stderr_and_a_desync_as_an_event() -> None:
    """A proxy error (with its hint) and a desync go to ``err`` as text, where the
    user running the pipe sees them; both are also objects on stdout, as the
    export of the recording has them."""
    from proxy.events import ProxyErrorRaised

    obs = ConnectionObserver(preface="required")
    desync = obs.feed(Direction.C2S, b"GET / HTTP/1.1\r\n\r\n", 1000.5)
    batches = [
        Batch(conn_id=1, t=1000.0, events=(ProxyErrorRaised(
            conn_id=1, t=1000.0, stage="server-tls", message="certificate verification failed",
            hint="pass its CA with --upstream-ca FILE"),)),
        Batch(conn_id=2, t=1000.5, events=tuple(desync), direction=Direction.C2S,
              data=b"GET / HTTP/1.1\r\n\r\n", protocol="h2"),
    ]
    out, err = io.StringIO(), io.StringIO()
    printer = HeadlessPrinter(out, jsonl=True, err=err)
    printer.handle_many(batches)
    error, event = [json.loads(line) for line in out.getvalue().splitlines()]
    assert error == {"conn": 1, "wall": 1000.0, "event": "ProxyErrorRaised",
                     "stage": "server-tls", "message": "certificate verification failed",
                     "hint": "pass its CA with --upstream-ca FILE"}
    assert (event["conn"], event["event"], event["finding"]["code"]) == (2, "Desynced",
                                                                         "desynced")
    lines = err.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("h2scope: 0.000 #1") and "! server-tls: certificate " \
        "verification failed — hint: pass its CA with --upstream-ca FILE" in lines[0]
    assert lines[1].startswith("h2scope: 0.500 #2") and "! " in lines[1] \
        and "preface" in lines[1]


def test_an_event_object_carries_its_own_time_live_and_exported() -> None:
    """A finding raised at the close came in a batch stamped later than the finding
    (live) and in a record stamped otherwise (exported): both now give its time."""
    from proxy.capture.export_text import jsonl_event
    from proxy.observe.events import ConnectionFindingRaised
    from proxy.observe.findings import Finding, Severity

    finding = Finding(code="stream-unfinished", severity=Severity.INFO, rfc="RFC 9113 §8.1",
                      message="m", seq=3, stream_id=1)
    ev = ConnectionFindingRaised(t=1000.25, direction=Direction.S2C, finding=finding)
    out = io.StringIO()
    HeadlessPrinter(out, jsonl=True, err=io.StringIO()).handle_many(
        [Batch(conn_id=1, t=1000.75, events=(ev,))])
    (live,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert live == jsonl_event(1, ev) and live["wall"] == live["t"] == 1000.25


def test_quiet_leaves_out_http1_message_lines_as_it_does_frame_lines() -> None:
    from proxy.events import Http1MessageObserved

    opened = ConnectionOpened(conn_id=4, t=1.0, client=("127.0.0.1", 40000), mode="regular",
                              target=None)
    message = Http1MessageObserved(
        conn_id=4, t=2.0, direction=Direction.C2S, start_line="GET /x HTTP/1.1",
        headers=(("host", "example.test"),), head_size=40, body_size=0, started=1.5,
        duration=0.5)
    batches = [Batch(conn_id=4, t=1.0, events=(opened,)),
               Batch(conn_id=4, t=2.0, events=(message,))]
    assert "GET /x HTTP/1.1" in _one_by_one(batches)
    quiet = _one_by_one(batches, quiet=True)
    assert "GET /x HTTP/1.1" not in quiet and "#4" in quiet  # (the connection line stays)


def _download_batches(more: Callable[[FrameFactory], list[tuple[Direction, bytes]]],
                      ) -> list[Batch]:
    """A GET of /big answered 200, then ``more`` frames, each its own batch."""
    from tests.unit.observe.conftest import Conversation
    conv = Conversation()
    f = conv.f
    request = [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"),
               (":path", "/big")]
    steps = [(Direction.C2S, f.headers(Direction.C2S, 1, request,
                                       flags=["END_HEADERS", "END_STREAM"])),
             (Direction.S2C, f.headers(Direction.S2C, 1, [(":status", "200")])), *more(f)]
    out: list[Batch] = []
    t = 1000.0
    for direction, data in steps:
        t += 0.01
        out.append(Batch(conn_id=1, t=t, events=tuple(conv.send(direction, data)),
                         direction=direction, data=data, protocol="h2"))
    return out


def _stall_batches() -> list[Batch]:
    """A download that spends stream 1's window, then a WINDOW_UPDATE reopens it."""
    return _download_batches(lambda f: [
        (Direction.C2S, f.window_update(0, 1 << 20)),
        *[(Direction.S2C, f.data(1, b"x" * 16384)) for _ in range(3)],
        (Direction.S2C, f.data(1, b"x" * 16383)),
        (Direction.C2S, f.window_update(1, 65535))])


def test_a_filter_shows_a_stall_and_its_reopening_with_the_frames_that_caused_them() -> None:
    """What a frame causes (the stall after the DATA that spent the window, the
    reopening after the WINDOW_UPDATE) is shown when the filter keeps that frame,
    or keeps frames of the stalled stream, and not otherwise."""
    from proxy.commands.run import event_filter
    batches = _stall_batches()
    everything = _one_by_one(batches)
    assert "server blocked, stream 1 window is 0" in everything
    assert "stream 1 reopened after" in everything
    one_stream = _one_by_one(batches, filter=event_filter("stream:1"))
    assert [line.split(" #1 ")[1].split()[:3] for line in one_stream.splitlines()
            if "flow control" in line] == [["←", "flow", "control:"]] * 2
    lines = one_stream.splitlines()
    stall = next(i for i, line in enumerate(lines) if "blocked" in line)
    assert "DATA" in lines[stall - 1] and "len=16383" in lines[stall - 1]
    updates = _one_by_one(batches, filter=event_filter("type:WINDOW_UPDATE"))
    assert "reopened after" in updates and "blocked" not in updates
    assert _one_by_one(batches, filter=event_filter("stream:3")).count("flow control") == 0
    # (the request HEADERS of stream 1 shown: its stalls are shown with them)
    assert _one_by_one(batches, filter=event_filter("type:HEADERS")).count("flow control") == 2


def test_the_text_export_keeps_what_a_kept_frame_caused_as_the_live_log(tmp_path: Path) -> None:
    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay
    from proxy.capture.writer import CaptureWriter
    from proxy.filter import compile_filter
    from proxy.observe.enums import CONNECTION_PREFACE
    path = tmp_path / "stall.h2scope"
    with CaptureWriter(path, autoflush=False) as w:
        w.connection(1, {"client": {"ip": "127.0.0.1", "port": 5001}, "mode": "regular",
                         "protocol": "h2"}, t=0.0, wall=1000.0)
        w.raw(1, Direction.C2S, CONNECTION_PREFACE, t=0.0, wall=1000.0)
        for b in _stall_batches():
            w.raw(1, b.direction, b.data, t=b.t - 1000.0, wall=b.t)  # type: ignore[arg-type]

    def export(text: str) -> str:
        out = io.StringIO()
        write_text(replay(path), out, keep=compile_filter(text))
        return out.getvalue()
    one_stream = export("stream:1")
    assert "server blocked, stream 1 window is 0" in one_stream
    assert "stream 1 reopened after" in one_stream
    updates = export("type:WINDOW_UPDATE")
    assert "reopened after" in updates and "blocked" not in updates
    assert "flow control" not in export("stream:3")


def test_a_stall_a_settings_ack_causes_is_shown_with_the_stream_a_filter_follows() -> None:
    """The ACK of a lowered INITIAL_WINDOW_SIZE (a stream-0 frame) stalls stream 1:
    ``stream:1`` hides the ACK but shows stream 1's stall, live and in JSON Lines."""
    from proxy.commands.run import event_filter
    batches = _download_batches(lambda f: [
        (Direction.S2C, f.data(1, b"x" * 16384)),  # window 49,151
        (Direction.C2S, f.settings(initial_window_size=1000)),  # -64,535
        (Direction.S2C, f.settings(ack=True))])
    text = _one_by_one(batches, filter=event_filter("stream:1"))
    assert "server blocked, stream 1 window is -15384 after the SETTINGS change" in text
    assert "settings in force" not in text  # (the ACK itself is not stream 1's)
    out = io.StringIO()
    printer = HeadlessPrinter(out, filter=event_filter("stream:1"), jsonl=True)
    for b in batches:
        printer.handle(b)
    events = [json.loads(line).get("event") for line in out.getvalue().splitlines()]
    assert "FlowControlStalled" in events and "SettingsAcknowledged" not in events


def test_quiet_jsonl_keeps_the_frames_that_carry_findings() -> None:
    """-q keeps the problems: in JSON Lines a frame's findings are in its object,
    so a frame with findings stays (they were dropped with every frame, and a
    --fail-on exit 3 had no object saying why); the others go."""
    obs = ConnectionObserver(preface="required")
    events = obs.feed(Direction.C2S, CONNECTION_PREFACE + bytes.fromhex("000000040000000000")
                      + bytes.fromhex("000004080000000000") + (0).to_bytes(4, "big"), 1000.0)
    out = io.StringIO()
    HeadlessPrinter(out, jsonl=True, quiet=True, err=io.StringIO()).handle_many(
        [Batch(conn_id=1, t=1000.0, events=tuple(events), direction=Direction.C2S,
               data=b"", protocol="h2")])
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(o["type"], [f["code"] for f in o["findings"]]) for o in objs] == [
        ("WINDOW_UPDATE", ["window-update-zero"])]


def test_with_a_filter_only_connections_with_something_shown_get_their_lines() -> None:
    """`path:/a.css` printed every connection's opened/TLS/closed lines — 51 of them
    around 6 frames. A connection is said when its first kept frame (or a proxy
    error) is; one with nothing shown goes unsaid."""
    from proxy.commands.run import event_filter
    from proxy.events import ProxyErrorRaised

    batches = _batches()
    third = [Batch(conn_id=3, t=1000.0, events=(ConnectionOpened(
        conn_id=3, t=1000.0, client=("127.0.0.1", 5003), mode="regular",
        target="other.test:443"),)),
        Batch(conn_id=3, t=1000.1, events=(ProxyErrorRaised(
            conn_id=3, t=1000.1, stage="connect", message="cannot connect to other.test:443"),)),
        Batch(conn_id=3, t=1000.2, events=(ConnectionClosed(
            conn_id=3, t=1000.2, closed_by=Closer.PROXY, reason="upstream failed"),))]
    text = _one_by_one(batches + third, filter=event_filter("conn:2 type:HEADERS"))
    lines = text.splitlines()
    assert not any(" #1 " in ln for ln in lines), text
    mine = [ln for ln in lines if " #2 " in ln]
    assert "opened" in mine[0] and "closed by client" in mine[-1], mine
    assert " HEADERS " in mine[1], mine  # (its opened line, then its first kept frame)
    errs = [ln for ln in lines if " #3 " in ln]  # (an error is always said, in context)
    assert len(errs) == 3 and "opened" in errs[0] and "cannot connect" in errs[1], errs
    # Without a filter, every connection as before.
    assert " #1 " in _one_by_one(batches)


def test_an_ipv6_client_address_is_written_in_brackets(tmp_path: Path) -> None:
    """'opened from ::1:59436' could not be told from a port of its own; the target
    was already written [::1]:443."""
    from proxy.capture.export_text import write_text
    from proxy.capture.replay import replay
    from proxy.capture.writer import CaptureWriter
    from proxy.headless import connection_line
    from ui.model.connections import ConnInfo

    opened = ConnectionOpened(conn_id=1, t=0.0, client=("::1", 59436), mode="regular",
                              target=None)
    assert connection_line(opened) == "opened from [::1]:59436 (regular)"
    path = tmp_path / "v6.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"client": {"ip": "::1", "port": 59436}, "mode": "regular",
                              "server": {"host": "::1", "port": 443}, "opened": 0.0}, t=0.0)
    out = io.StringIO()
    write_text(replay(path), out)
    assert "opened from [::1]:59436 (regular) to [::1]:443" in out.getvalue()
    assert ConnInfo(1, meta={"client": {"ip": "::1", "port": 59436}}).client == "[::1]:59436"


def test_a_reset_line_names_the_request_it_reset() -> None:
    """Live, as exported: the RST_STREAM line names the request (and its status so
    far), also when a filter hides that request's HEADERS."""
    from proxy.commands.run import event_filter

    batches = _batches()
    resets_only = event_filter("type:RST_STREAM")
    for text in (_one_by_one(batches), _one_by_one(batches, filter=resets_only)):
        resets = [ln for ln in text.splitlines() if "RST_STREAM" in ln]
        assert len(resets) == 2, resets
        assert all(ln.endswith("CANCEL  GET /slow → 200") for ln in resets), resets


def test_request_labels_name_pushed_streams_and_forget_the_oldest() -> None:
    from proxy.observe.frames import HeadersFrame, PushPromiseFrame
    from proxy.textlog import RequestLabels

    class _Block:
        def __init__(self, *headers: tuple[str, str]) -> None:
            self.headers = headers

    def ev(frame: object, *headers: tuple[str, str]) -> FrameObserved:
        return type("Ev", (), {"frame": frame, "block": _Block(*headers)})()  # type: ignore[return-value]

    labels = RequestLabels()
    push = PushPromiseFrame.__new__(PushPromiseFrame)
    object.__setattr__(push, "stream_id", 1)
    object.__setattr__(push, "promised_stream_id", 2)
    labels.block(1, ev(push, (":method", "GET"), (":path", "/style.css")))
    assert labels.reset(1, 2) == "  GET /style.css → …"
    head = HeadersFrame.__new__(HeadersFrame)
    object.__setattr__(head, "stream_id", 2)
    labels.block(1, ev(head, (":status", "103")))
    assert labels.reset(1, 2) == "  GET /style.css → …"  # (an interim response)
    labels.block(1, ev(head, (":status", "200"), ("server", "x")))
    assert labels.reset(1, 2) == "  GET /style.css → 200"
    assert labels.reset(1, 4) == "" and labels.reset(2, 2) == ""
    labels.MAX_STREAMS = 3
    for sid in (3, 5, 7):
        object.__setattr__(head, "stream_id", sid)
        labels.block(1, ev(head, (":method", "GET"), (":path", "/" + "x" * 100)))
    assert labels.reset(1, 2) == ""  # (the oldest, forgotten)
    assert labels.reset(1, 7) == "  GET /" + "x" * 74 + "… → …"
    labels.block(1, ev(head, (":method", "GET"), (":path", "/\x1b[2J")))
    assert labels.reset(1, 7) == "  GET /\\x1b[2J → …"  # (a peer's bytes, escaped)
    labels.closed(1)
    assert labels.reset(1, 7) == ""


def test_a_certificate_with_many_names_says_how_many_were_left_out() -> None:
    from proxy.textlog import tls_leg_text

    sans = tuple(f"n{i}.example" for i in range(10))
    text = tls_leg_text("server", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "h2", ("h2",),
                        "n0.example", ("CN=n0", "CN=CA", sans, "2030-01-01"))
    assert "sans=n0.example,n1.example,n2.example,n3.example (+6 more) not_after" in text
    four = tls_leg_text("server", "TLSv1.3", None, None, (), None,
                        ("CN=n0", "CN=CA", sans[:4], "2030-01-01"))
    assert "n3.example not_after" in four


def test_a_tls12_suite_is_named_as_iana_names_it() -> None:
    from proxy.net.clienthello import iana_cipher

    assert iana_cipher("ECDHE-RSA-AES128-GCM-SHA256") == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert iana_cipher("ECDHE-ECDSA-CHACHA20-POLY1305") == \
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
    assert iana_cipher("TLS_AES_128_GCM_SHA256") == "TLS_AES_128_GCM_SHA256"
    assert iana_cipher("NOT-A-SUITE") == "NOT-A-SUITE"


def test_a_close_says_its_error_once() -> None:
    from proxy.textlog import closed_text

    error = "SSLEOFError: EOF occurred in violation of protocol (_ssl.c:2427)"
    said = closed_text("client", f"client went away while data was sent to it ({error})",
                       error, 10, 0)
    assert said.count("SSLEOFError") == 1 and said.endswith("(→ 10 B, ← 0 B)")
    assert closed_text("server", "server closed", "reset", 0, 0) == \
        "closed by server: server closed [reset]"


def test_an_untrusted_server_chain_hint_names_a_tls_inspecting_proxy_too() -> None:
    """Without --upstream-ca, a chain the trust store does not know is not only
    'your own server's': a corporate or sandbox egress proxy re-signs every site."""
    import ssl

    from proxy.net.tls import verify_hint

    exc = ssl.SSLCertVerificationError(1, "self-signed certificate in certificate chain")
    exc.verify_code = 19  # type: ignore[attr-defined]
    hint = verify_hint(exc, "pypi.org", None)
    assert "TLS-inspecting proxy" in hint and "--upstream-ca FILE" in hint
    assert "did not issue this chain" in verify_hint(exc, "pypi.org", "ca.pem")
