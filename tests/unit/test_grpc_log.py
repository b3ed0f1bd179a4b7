"""gRPC messages in the text logs (with a protoset): under the DATA frame that
completes each one, live and in the export alike; off without a protoset."""

from __future__ import annotations

import io
import json
from pathlib import Path

import h2.config
import h2.connection
import pytest

from proxy.capture.replay import replay
from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.events import Batch
from proxy.grpc_log import GrpcTracker
from proxy.headless import HeadlessPrinter
from proxy.observe.enums import Direction
from proxy.protoset import Protoset
from tests.unit.capture.traffic import META
from tests.unit.test_protoset import MESSAGE, compile_greet

PATH = "/demo.v1.Greeter/SayHello"
REPLY = b"\x0a\x05hello"  # message: "hello"


def grpc(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Protoset]:
    out = compile_greet(tmp_path_factory.mktemp("grpclog"))
    return out, Protoset.load([out])


def record_call(path: Path, *, big: int = 0, max_data_bytes: int | None = None,
                unavailable: bool = False) -> list:
    """One unary call (the request message split over two DATA frames, a second
    stream with a message of ``big`` bytes if asked) recorded; the live events."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    live: list = []
    t = [100.0]
    with CaptureWriter(path, max_data_bytes=max_data_bytes) as writer:
        tap = RecordingObserver(writer, 1, META, t=t[0])

        def pump() -> None:
            for _ in range(20):
                c2s, s2c = client.data_to_send(), server.data_to_send()
                if not c2s and not s2c:
                    return
                for d, data, peer in ((Direction.C2S, c2s, server), (Direction.S2C, s2c, client)):
                    if data:
                        t[0] += 0.001
                        live.append(tap.feed(d, data, t[0]))
                        peer.receive_data(data)

        client.initiate_connection()
        server.initiate_connection()
        pump()
        request = [(":method", "POST"), (":scheme", "http"), (":authority", "example.test"),
                   (":path", PATH), ("content-type", "application/grpc"), ("te", "trailers")]
        body = grpc(MESSAGE)
        client.send_headers(1, request)
        client.send_data(1, body[:20])
        pump()
        client.send_data(1, body[20:], end_stream=True)
        pump()
        if unavailable:  # an overloaded front end's plain-text 503, not a gRPC answer
            server.send_headers(1, [(":status", "503"), ("content-type", "text/plain")])
            server.send_data(1, b"overloaded", end_stream=True)
        else:
            server.send_headers(1, [(":status", "200"), ("content-type", "application/grpc")])
            server.send_data(1, grpc(REPLY))
            server.send_headers(1, [("grpc-status", "0")], end_stream=True)
        pump()
        if big:
            client.send_headers(3, [*request[:3], (":path", PATH), *request[4:]])
            client.send_data(3, grpc(big_message(big)), end_stream=True)
            pump()
    return live


def big_message(size: int) -> bytes:
    """A HelloRequest named "world" with ``size`` bytes of an unknown field 15 after."""
    n, length = size, b""
    while True:
        length += bytes([n & 0x7F | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return b"\x0a\x05world\x7a" + length + bytes(size)


def grpc_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("grpc ")]


def test_messages_print_under_the_data_that_completes_them_live_and_exported(
        schema: tuple[Path, Protoset], tmp_path: Path) -> None:
    pb, protoset = schema
    capture = tmp_path / "call.h2scope"
    live = record_call(capture)
    out = io.StringIO()
    printer = HeadlessPrinter(out, protoset=protoset)
    for events in live:
        printer.handle(Batch(conn_id=1, t=events[0].t if events else 0.0, events=events))
    printed = out.getvalue()
    lines = grpc_lines(printed)
    assert lines[0].startswith(f'grpc → message 1: {len(MESSAGE)} bytes  demo.v1.HelloRequest '
                               '{name: "world" kind: KIND_GREETING inner { id: 42')
    assert lines[0].endswith("…}") and len(lines[0]) < 240  # a long message is cut short
    assert lines[1] == 'grpc ← message 1: 7 bytes  demo.v1.HelloReply {message: "hello"}'
    assert len(lines) == 2
    # Under the second DATA frame of the request (the one that completes it).
    text = printed.splitlines()
    at = next(i for i, ln in enumerate(text) if ln.strip().startswith("grpc →"))
    assert " DATA [END_STREAM]" in text[at - 1]
    # The export says the same; without a protoset, the fields numbered.
    exported = tmp_path / "call.txt"
    assert main(["export", str(capture), "--format", "text", "-o", str(exported),
                 "--protoset", str(pb)]) == 0
    assert grpc_lines(exported.read_text()) == lines
    assert main(["export", str(capture), "--format", "text", "-o", str(exported)]) == 0
    raw = grpc_lines(exported.read_text())
    assert raw[0].startswith('grpc → message 1: 70 bytes  {1: "world" 2: 1 ')
    assert raw[1] == 'grpc ← message 1: 7 bytes  {1: "hello"}' and len(raw) == 2
    jsonl = tmp_path / "call.jsonl"
    assert main(["export", str(capture), "--format", "jsonl", "-o", str(jsonl),
                 "--protoset", str(pb)]) == 0
    objects = [d["grpc"] for d in map(json.loads, jsonl.read_text().splitlines()) if "grpc" in d]
    # (and in the proto3 JSON mapping, for jq: the fields' text needs parsing again)
    assert objects[1] == [{"message": 1, "size": 7, "type": "demo.v1.HelloReply",
                           "fields": ['message: "hello"'], "json": {"message": "hello"}}]
    assert objects[0][0]["json"]["name"] == "world"
    assert main(["export", str(capture), "--format", "har", "-o", str(tmp_path / "x.har"),
                 "--protoset", str(pb)]) == 2  # (only text and jsonl)


def test_big_messages_are_counted_and_cut_payloads_stop_the_reading(
        schema: tuple[Path, Protoset], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, protoset = schema
    monkeypatch.setattr(GrpcTracker, "MAX_MESSAGE", 1000)
    capture = tmp_path / "big.h2scope"
    record_call(capture, big=GrpcTracker.MAX_MESSAGE + 10)
    out = io.StringIO()
    from proxy.capture.export_text import write_text

    write_text(replay(capture), out, protoset=protoset)
    lines = grpc_lines(out.getvalue())
    # (its first 1,000 bytes hold the name and the start of field 15: what ends in them)
    size = len(big_message(GrpcTracker.MAX_MESSAGE + 10))
    # (and field 15 by its first bytes: an unknown one, shown raw)
    [line] = [line for line in lines if line.startswith(f"grpc → message 1: {size} bytes")]
    assert line == f"grpc → message 1: {size} bytes  demo.v1.HelloRequest " \
        '{name: "world" 15: bytes [' + "00 " * 15 + '00 …]  (1,010 bytes, cut: the first ' \
        '990 seen)  (unknown field)}  (the fields within its first 1,000 bytes; the rest not ' \
        'decoded)', lines
    cut = tmp_path / "cut.h2scope"
    record_call(cut, max_data_bytes=10)
    out = io.StringIO()
    write_text(replay(cut), out, protoset=protoset)
    lines = grpc_lines(out.getvalue())
    assert lines[0] == "grpc → not read further: a payload the capture cut (max_data_bytes)"
    assert "grpc ← not read further: a payload the capture cut (max_data_bytes)" in lines


def test_compressed_messages_are_inflated_by_their_grpc_encoding(
        schema: tuple[Path, Protoset]) -> None:
    import gzip
    import zlib
    from types import SimpleNamespace

    from proxy.observe.frames import DataFrame

    _, protoset = schema
    tracker = GrpcTracker(protoset)

    def data_event(direction: int, payload: bytes) -> SimpleNamespace:
        raw = len(payload).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big") + payload
        frame = DataFrame(type=0, flags=0, stream_id=1, length=len(payload), raw=raw,
                          reserved=False, malformed=None, pad_length=None,
                          data_length=len(payload))
        return SimpleNamespace(frame=frame, block=None, direction=direction, t=0.0)

    request = SimpleNamespace(
        frame=SimpleNamespace(stream_id=1, type=1, flags=4, malformed=None), direction=0,
        block=SimpleNamespace(headers=((":path", PATH), ("content-type", "application/grpc"),
                                       ("grpc-encoding", "gzip"))), t=0.0)
    tracker.feed(1, request)  # type: ignore[arg-type]
    zipped = gzip.compress(MESSAGE)
    (msg,), _ = tracker.feed(1, data_event(0, b"\x01" + len(zipped).to_bytes(4, "big")  # type: ignore[arg-type]
                                           + zipped))
    assert msg.compressed and msg.type_name == "demo.v1.HelloRequest"
    assert msg.fields is not None and msg.fields[0] == 'name: "world"'
    assert msg.summary().startswith(f"message 1: {len(zipped)} bytes (compressed)  "
                                    "demo.v1.HelloRequest {")
    # deflate is zlib's format; an unknown encoding is said, not guessed.
    tracker.streams[(1, 1)].encodings[0] = "deflate"
    squeezed = zlib.compress(MESSAGE)
    (msg,), _ = tracker.feed(1, data_event(0, b"\x01" + len(squeezed).to_bytes(4, "big")  # type: ignore[arg-type]
                                           + squeezed))
    assert msg.fields is not None
    tracker.streams[(1, 1)].encodings[0] = "snappy"
    (msg,), _ = tracker.feed(1, data_event(0, b"\x01\x00\x00\x00\x02ab"))  # type: ignore[arg-type]
    assert msg.summary() == ("message 3: 2 bytes (compressed)  (grpc-encoding snappy: not "
                             "inflated; h2scope inflates gzip and deflate)")
    # One that inflates to more than the log decodes: the fields within the first
    # 256 KiB (it had said only that it was too large); one that is not the
    # encoding it claims says so.
    tracker.streams[(1, 1)].encodings[0] = "gzip"
    bomb = gzip.compress(b"\x0a\x05world" + bytes([0x3a, 0xe0, 0xa7, 0x12])
                         + bytes(GrpcTracker.MAX_MESSAGE * 5))
    (msg,), _ = tracker.feed(1, data_event(0, b"\x01" + len(bomb).to_bytes(4, "big")  # type: ignore[arg-type]
                                           + bomb))
    assert msg.fields is not None and msg.fields[0] == 'name: "world"', msg.summary()
    assert msg.note == ("(gzip decoded: the fields within the first 256 KiB it inflates to; "
                        "the rest not decoded)")
    zeros = gzip.compress(bytes(GrpcTracker.MAX_MESSAGE * 5))
    (msg,), _ = tracker.feed(1, data_event(0, b"\x01" + len(zeros).to_bytes(4, "big")  # type: ignore[arg-type]
                                           + zeros))
    assert msg.note == "not protobuf: " + " ".join(["00"] * 24) + " …"
    (msg,), _ = tracker.feed(1, data_event(0, b"\x01\x00\x00\x00\x02ab"))  # type: ignore[arg-type]
    assert msg.note is not None and msg.note.startswith(
        "(grpc-encoding gzip: not inflated: not valid gzip data: ")


def test_a_response_that_is_not_grpc_is_not_read_as_messages(
        schema: tuple[Path, Protoset], tmp_path: Path) -> None:
    """'overloaded' is no length prefix of a 1,986,359,916-byte compressed message."""
    _, protoset = schema
    capture = tmp_path / "503.h2scope"
    record_call(capture, unavailable=True)
    out = io.StringIO()
    from proxy.capture.export_text import write_text

    write_text(replay(capture), out, protoset=protoset)
    lines = grpc_lines(out.getvalue())
    assert lines[0].startswith("grpc → message 1: ")
    assert lines[1:] == ["grpc ← not read further: the response is not gRPC (:status 503, "
                         "content-type text/plain): its body is not read as gRPC messages"]


def test_a_grpc_web_trailers_frame_is_not_read_as_a_message(
        schema: tuple[Path, Protoset]) -> None:
    """gRPC-Web puts the trailers in the body, in a frame flagged 0x80: text, not a
    protobuf message (the exports printed 'not protobuf: 67 72 70 63 ...')."""
    from types import SimpleNamespace

    from proxy.observe.frames import DataFrame

    _, protoset = schema
    tracker = GrpcTracker(protoset)
    request = SimpleNamespace(
        frame=SimpleNamespace(stream_id=1, type=1, flags=4, malformed=None), direction=0,
        block=SimpleNamespace(headers=((":path", PATH),
                                       ("content-type", "application/grpc-web+proto"))), t=0.0)
    tracker.feed(1, request)  # type: ignore[arg-type]
    response = SimpleNamespace(
        frame=SimpleNamespace(stream_id=1, type=1, flags=4, malformed=None), direction=1,
        block=SimpleNamespace(headers=((":status", "200"),
                                       ("content-type", "application/grpc-web+proto"))), t=0.0)
    tracker.feed(1, response)  # type: ignore[arg-type]
    trailer = b"grpc-status:0\r\ngrpc-message:fine\r\n"
    payload = b"\x80" + len(trailer).to_bytes(4, "big") + trailer
    raw = len(payload).to_bytes(3, "big") + b"\x00\x01" + (1).to_bytes(4, "big") + payload
    frame = DataFrame(type=0, flags=1, stream_id=1, length=len(payload), raw=raw,
                      reserved=False, malformed=None, pad_length=None, data_length=len(payload))
    (msg,), _ = tracker.feed(1, SimpleNamespace(frame=frame, block=None, direction=1,  # type: ignore[arg-type]
                                                t=0.0))
    assert msg.summary() == "trailers frame: grpc-status:0 grpc-message:fine"
    assert msg.as_dict() == {"trailers": "grpc-status:0 grpc-message:fine",
                             "size": len(trailer)}


def test_a_stream_that_ends_inside_a_message_says_so(schema: tuple[Path, Protoset]) -> None:
    """A 32-byte message of which 5 bytes came, then END_STREAM: the client got a cut
    message (grpcio: OK with no message), and nothing said so."""
    from types import SimpleNamespace

    from proxy.observe.frames import DataFrame

    _, protoset = schema
    tracker = GrpcTracker(protoset)
    request = SimpleNamespace(
        frame=SimpleNamespace(stream_id=1, type=1, flags=4, malformed=None), direction=0,
        block=SimpleNamespace(headers=((":path", PATH), ("content-type", "application/grpc"))),
        t=0.0)
    tracker.feed(1, request)  # type: ignore[arg-type]
    response = SimpleNamespace(
        frame=SimpleNamespace(stream_id=1, type=1, flags=4, malformed=None), direction=1,
        block=SimpleNamespace(headers=((":status", "200"), ("content-type", "application/grpc"))),
        t=0.0)
    tracker.feed(1, response)  # type: ignore[arg-type]
    payload = b"\x00" + (32).to_bytes(4, "big") + b"abcde"
    raw = len(payload).to_bytes(3, "big") + b"\x00\x01" + (1).to_bytes(4, "big") + payload
    frame = DataFrame(type=0, flags=1, stream_id=1, length=len(payload), raw=raw,
                      reserved=False, malformed=None, pad_length=None, data_length=len(payload))
    (msg,), _ = tracker.feed(1, SimpleNamespace(frame=frame, block=None, direction=1,  # type: ignore[arg-type]
                                                t=0.0))
    assert msg.summary() == ("message 1: 5 bytes  cut: the stream ended inside this message "
                             "(5 of its 32 bytes came)")


def test_grpc_fields_are_explained_where_headers_are_listed() -> None:
    """The stream view lists a call's trailers: the status by name, the message
    percent-decoded, the deadline, and the google.rpc.Status in
    grpc-status-details-bin (raw bytes or base64) instead of a byte dump."""
    import base64

    from proxy.grpc_log import grpc_field_note

    def ld(number: int, value: bytes) -> bytes:
        return bytes([number << 3 | 2, len(value)]) + value

    status = bytes([8, 9]) + ld(2, b"precondition failed") + ld(
        3, ld(1, b"type.googleapis.com/qa.v1.ErrorInfo") + ld(2, b"\x0a\x01x"))
    as_base64 = base64.b64encode(status).decode().rstrip("=")
    as_raw = ("\x00" + status.decode("utf-8", "surrogateescape"))  # true binary
    for value in (as_base64, as_raw):
        assert grpc_field_note("grpc-status-details-bin", value) == (
            "google.rpc.Status: code 9 FAILED_PRECONDITION, message 'precondition failed', "
            "details type.googleapis.com/qa.v1.ErrorInfo")
    assert grpc_field_note("grpc-status", "9") == "FAILED_PRECONDITION"
    assert grpc_field_note("grpc-message", "%C3%BCn%C3%AFcode %25 100") == \
        "decoded: 'ünïcode % 100'"
    assert grpc_field_note("grpc-timeout", "501m") == "deadline 501 ms"
    assert grpc_field_note("x-trace-bin", "\x00\udcfe\udcff").startswith(
        "2 bytes, sent raw (true binary metadata")
    assert grpc_field_note("content-type", "application/grpc") is None


def test_the_standard_error_details_are_decoded_without_a_protoset() -> None:
    """grpc-status-details-bin said 'details type.googleapis.com/google.rpc.BadRequest'
    and stopped there: the field violations — the reason the call failed — were in
    the bytes, in types every gRPC user has (google/rpc/error_details.proto)."""
    import base64

    from proxy.grpc_log import grpc_field_note
    from proxy.protobuf import rpc_detail

    def ld(number: int, value: bytes) -> bytes:
        return bytes([number << 3 | 2, len(value)]) + value

    def detail(name: str, body: bytes) -> bytes:
        return ld(3, ld(1, f"type.googleapis.com/google.rpc.{name}".encode()) + ld(2, body))

    bad = ld(1, ld(1, b"name") + ld(2, b"must not be empty")) + ld(1, ld(1, b"age"))
    info = ld(1, b"QUOTA") + ld(2, b"example.com") + ld(3, ld(1, b"zone") + ld(2, b"eu"))
    retry = ld(1, bytes([8, 1, 16, 0x80, 0xCA, 0xB5, 0xEE, 0x01]))  # (1 s, 500,000,000 ns)
    status = bytes([8, 3]) + ld(2, b"bad name") + detail("BadRequest", bad) + \
        detail("ErrorInfo", info) + detail("RetryInfo", retry) + \
        detail("Unknown", b"\x08\x01")
    note = grpc_field_note("grpc-status-details-bin", base64.b64encode(status).decode())
    assert note == (
        "google.rpc.Status: code 3 INVALID_ARGUMENT, message 'bad name', details "
        'google.rpc.BadRequest {field_violations {field: "name" description: "must not be '
        'empty"} field_violations {field: "age"}}, google.rpc.ErrorInfo {reason: "QUOTA" '
        'domain: "example.com" metadata {key: "zone" value: "eu"}}, google.rpc.RetryInfo '
        "{retry_delay {1.5s}}, type.googleapis.com/google.rpc.Unknown"), note
    assert rpc_detail("type.googleapis.com/google.rpc.BadRequest", b"\xff") is None


def test_a_large_messages_leading_fields_are_decoded(schema: tuple[Path, Protoset]) -> None:
    """A 5 MB upload's name came before its bytes, but a message over 64 KiB was only
    counted: headless and exports said nothing of what it was (the UI decoded it)."""
    from types import SimpleNamespace

    from proxy.observe.frames import DataFrame

    _, protoset = schema

    def ld(number: int, value: bytes) -> bytes:
        size, n = b"", len(value)
        while True:
            size += bytes([n & 0x7F | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                break
        return bytes([number << 3 | 2]) + size + value

    def data_event(payload: bytes, end: bool) -> SimpleNamespace:
        raw = len(payload).to_bytes(3, "big") + bytes([0, int(end)]) + \
            (1).to_bytes(4, "big") + payload
        frame = DataFrame(type=0, flags=int(end), stream_id=1, length=len(payload), raw=raw,
                          reserved=False, malformed=None, pad_length=None,
                          data_length=len(payload))
        return SimpleNamespace(frame=frame, block=None, direction=0, t=0.0)

    def said_of(tracker: GrpcTracker, framed: bytes, *metadata: tuple[str, str]) -> list[str]:
        said = []
        tracker.feed(1, SimpleNamespace(  # type: ignore[arg-type]
            frame=SimpleNamespace(stream_id=1, type=1, flags=4, malformed=None), direction=0,
            block=SimpleNamespace(headers=((":path", PATH), ("content-type", "application/grpc"),
                                           *metadata)), t=0.0))
        for i in range(0, len(framed), 16384):  # (DATA frames of 16 KiB)
            msgs, _ = tracker.feed(1, data_event(  # type: ignore[arg-type]
                framed[i:i + 16384], i + 16384 >= len(framed)))
            said.extend(m.summary() for m in msgs)
        return said

    message = ld(1, b"upload.bin") + ld(7, b"x" * 200_000)
    for tracker, named in ((GrpcTracker(protoset), True), (GrpcTracker(), False)):
        said = said_of(tracker, grpc(message))
        assert len(said) == 1, said
        field = 'name: "upload.bin"' if named else '1: "upload.bin"'
        assert f"message 1: {len(message)} bytes  " in said[0] and field in said[0], said
        assert said[0].endswith("(the fields within its first 64 KiB; the rest not decoded)")
        assert 'bytes [78 78 78' in said[0] if named else '7: "xxx' in said[0], said
    # A message whose first field is the large one: that field's first characters and
    # how long it is (it had said "{(empty)}": the request looked empty).
    big_first = ld(1, b"q" * 300_000) + ld(2, b"\x01")
    for tracker, named in ((GrpcTracker(protoset), True), (GrpcTracker(), False)):
        [said_big] = said_of(tracker, grpc(big_first))
        field = "name" if named else "1"
        assert f'{field}: "{"q" * 40}…"  (300,000 bytes, cut: the first 65,532 seen)' \
            in said_big, said_big
        assert "(empty)" not in said_big
    # Compressed, and still over 64 KiB (bytes that do not compress): its first 64 KiB
    # inflated, and the fields within what they give (it had been only counted).
    import gzip
    import random

    noise = random.Random(7).randbytes(200_000)
    zipped = gzip.compress(ld(1, b"upload.bin") + ld(7, noise))
    assert len(zipped) > GrpcTracker.MAX_MESSAGE
    said = said_of(GrpcTracker(protoset), b"\x01" + len(zipped).to_bytes(4, "big") + zipped,
                   ("grpc-encoding", "gzip"))
    assert len(said) == 1, said
    assert said[0].startswith(f"message 1: {len(zipped)} bytes (compressed)  "
                              'demo.v1.HelloRequest {name: "upload.bin" blob: bytes ['), said
    assert "bytes, cut: the first " in said[0], said
    assert said[0].endswith("(gzip decoded: the fields within the first 64 KiB it inflates "
                            "to; the rest not decoded)")


def test_the_text_log_says_what_a_failed_calls_status_details_hold(tmp_path: Path) -> None:
    """The stream view decoded grpc-status-details-bin; the headless log and its export
    showed the base64 alone."""
    import base64

    import hpack

    from proxy.capture.export_text import write_text
    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    def ld(number: int, value: bytes) -> bytes:
        return bytes([number << 3 | 2, len(value)]) + value

    bad = ld(1, ld(1, b"name") + ld(2, b"must not be empty"))
    status = bytes([8, 3]) + ld(2, b"bad name") + ld(
        3, ld(1, b"type.googleapis.com/google.rpc.BadRequest") + ld(2, bad))
    enc, senc = hpack.Encoder(), hpack.Encoder()
    path = h2c_capture(tmp_path / "failed.h2scope", [
        (Direction.S2C, raw_frame(4, 0, 0, b""), 0.001),
        (Direction.C2S, raw_frame(1, 0x5, 1, enc.encode(
            [(":method", "POST"), (":scheme", "http"), (":authority", "a"),
             (":path", PATH), ("content-type", "application/grpc")])), 0.002),
        (Direction.S2C, raw_frame(1, 0x5, 1, senc.encode(
            [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "3"),
             ("grpc-status-details-bin", base64.b64encode(status).decode())])), 0.003)])
    out = io.StringIO()
    write_text(replay(path), out)
    lines = out.getvalue().splitlines()
    at = next(i for i, ln in enumerate(lines) if "grpc-status-details-bin:" in ln)
    assert lines[at + 1].strip() == (
        "; google.rpc.Status: code 3 INVALID_ARGUMENT, message 'bad name', details "
        'google.rpc.BadRequest {field_violations {field: "name" description: "must not be '
        'empty"}}'), lines[at:at + 2]
