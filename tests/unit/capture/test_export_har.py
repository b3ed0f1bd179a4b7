"""The HAR export is valid HAR 1.2 and says what HTTP/2 did for each stream."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from proxy.capture.export_har import write_har
from proxy.capture.replay import replay
from tests.unit.capture.traffic import BINARY_BODY, LARGE_BODY, Session

SCHEMA = json.loads((Path(__file__).parent / "har12.schema.json").read_text())


def _har(path: Path, **kw: Any) -> dict[str, Any]:
    out = io.StringIO()
    write_har(replay(path), out, **kw)
    return json.loads(out.getvalue())


def _by_path(har: dict[str, Any], conn: int = 1) -> dict[str, dict[str, Any]]:
    return {e["request"]["url"].split("example.test", 1)[1]: e for e in har["log"]["entries"]
            if e["_h2scope"]["connection"] == conn}


def test_har_validates_against_the_har_1_2_schema(recorded: tuple[Path, Session]) -> None:
    har = _har(recorded[0])
    jsonschema.Draft7Validator(SCHEMA).validate(har)
    assert len(har["log"]["entries"]) == 10  # 5 streams with requests on each of 2 connections


def test_the_schema_check_can_fail(recorded: tuple[Path, Session]) -> None:
    har = _har(recorded[0])
    broken = copy.deepcopy(har)
    del broken["log"]["entries"][0]["timings"]["wait"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    broken = copy.deepcopy(har)
    broken["log"]["entries"][0]["h2scope"] = {}  # custom fields need a leading underscore
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_entries_carry_headers_bodies_and_h2_details(recorded: tuple[Path, Session]) -> None:
    entries = _by_path(_har(recorded[0]))
    index = entries["/index.html"]
    assert index["request"]["method"] == "GET"
    assert index["request"]["httpVersion"] == index["response"]["httpVersion"] == "h2"
    assert index["response"]["status"] == 200
    assert index["response"]["content"]["text"] == "<html><body>hello</body></html>"
    assert index["response"]["cookies"] == [{"name": "id", "value": "42", "secure": True}]
    assert {"name": "user-agent", "value": "h2scope-test/1"} in index["request"]["headers"]
    assert index["serverIPAddress"] == "127.0.0.1"
    h2 = index["_h2scope"]
    assert h2["stream_id"] == 1 and h2["connection"] == 1
    assert h2["frames"] == {"HEADERS": 3, "DATA": 1, "PUSH_PROMISE": 1}
    assert h2["response_trailers"] == [["grpc-status", "0"], ["x-trailer", "done"]]

    binary = entries["/upload"]
    assert binary["request"]["postData"]["text"] == "hello world"
    assert binary["_h2scope"]["request_trailers"] == [["x-checksum", "abc"]]
    content = binary["response"]["content"]
    assert content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == BINARY_BODY

    assert entries["/large.bin"]["response"]["bodySize"] == len(LARGE_BODY)


def test_pushed_responses_are_marked(recorded: tuple[Path, Session]) -> None:
    entries = _by_path(_har(recorded[0]))
    pushed = entries["/style.css"]
    assert pushed["_h2scope"]["pushed"] is True
    assert pushed["_h2scope"]["promised_by"] == 1
    assert pushed["response"]["content"]["text"] == "body { color: red }"
    assert "push" in pushed["comment"]
    assert entries["/index.html"]["_h2scope"]["pushed"] is False


def test_resets_and_timings_come_from_the_frames(recorded: tuple[Path, Session]) -> None:
    entries = _by_path(_har(recorded[0]))
    slow = entries["/slow"]
    assert slow["_h2scope"]["resets"] == [{"by": "client", "error_code": 8, "error": "CANCEL"}]
    for e in entries.values():
        t = e["timings"]
        assert e["time"] == pytest.approx(t["send"] + t["wait"] + t["receive"], abs=0.01)
    assert slow["timings"]["receive"] >= 0 and slow["time"] > 0


def test_conn_and_stream_select_entries(recorded: tuple[Path, Session]) -> None:
    har = _har(recorded[0], conn=2, stream=3)
    (entry,) = har["log"]["entries"]
    assert entry["_h2scope"]["connection"] == 2 and entry["_h2scope"]["stream_id"] == 3


def _timed(tmp_path: Path, steps: list[tuple[float, str, bytes]]) -> dict[str, Any]:
    """One stream's frames at the given wall-clock times; its HAR timings."""
    from proxy.capture.writer import CaptureWriter
    from proxy.observe.enums import CONNECTION_PREFACE, Direction

    path = tmp_path / "timed.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2"}, t=0.0, wall=0.0)
        writer.raw(1, Direction.C2S, CONNECTION_PREFACE, t=0.0, wall=0.0)
        for t, d, frame in steps:
            writer.frame(1, Direction.C2S if d == "c" else Direction.S2C, frame, t=t, wall=t)
    out = io.StringIO()
    write_har(replay(path), out)
    (entry,) = json.loads(out.getvalue())["log"]["entries"]
    return entry


def test_timings_count_message_frames_only_and_add_up_to_the_duration(
        tmp_path: Path) -> None:
    """A client's WINDOW_UPDATE and RST_STREAM time nothing of its request (a gRPC
    deadline: the CANCEL comes 500 ms after the request ended); a bidirectional
    stream's phases do not overlap."""
    import hpack
    from hyperframe.frame import (
        DataFrame,
        HeadersFrame,
        RstStreamFrame,
        SettingsFrame,
        WindowUpdateFrame,
    )

    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()

    def headers(enc: hpack.Encoder, fields: list[tuple[str, str]], end: bool) -> bytes:
        f = HeadersFrame(1, flags=["END_HEADERS", *(["END_STREAM"] if end else [])])
        f.data = enc.encode(fields)
        return bytes(f.serialize())

    request = [(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/x")]
    settings = bytes(SettingsFrame(0).serialize())
    entry = _timed(tmp_path, [
        (0.0, "c", settings), (0.0, "s", settings),
        (1.0, "c", headers(enc_c, request, True)),
        (1.2, "c", bytes(WindowUpdateFrame(1, window_increment=100).serialize())),
        (1.5, "c", bytes(RstStreamFrame(1, error_code=8).serialize())),
        (1.6, "s", headers(enc_s, [(":status", "200")], False)),
        (1.7, "s", bytes(DataFrame(1, data=b"x", flags=["END_STREAM"]).serialize())),
    ])
    t = entry["timings"]
    assert (t["send"], t["wait"], t["receive"]) == (0.0, 600.0, 100.0)
    assert entry["time"] == 700.0
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    (tmp_path / "timed.h2scope").unlink()
    entry = _timed(tmp_path, [
        (0.0, "c", settings), (0.0, "s", settings),
        (1.0, "c", headers(enc_c, request, False)),
        (1.1, "s", headers(enc_s, [(":status", "200")], False)),
        (1.5, "c", bytes(DataFrame(1, data=b"y", flags=["END_STREAM"]).serialize())),
        (2.0, "s", bytes(DataFrame(1, data=b"z", flags=["END_STREAM"]).serialize())),
    ])
    t = entry["timings"]
    assert (t["send"], t["wait"], t["receive"]) == (100.0, 0.0, 900.0)
    assert entry["time"] == 1000.0
    # A browser cancels a stream whose response had already come in full: the
    # CANCEL, 200 ms later, is no part of receiving it.
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    (tmp_path / "timed.h2scope").unlink()
    entry = _timed(tmp_path, [
        (0.0, "c", settings), (0.0, "s", settings),
        (1.0, "c", headers(enc_c, request, True)),
        (1.1, "s", headers(enc_s, [(":status", "200")], False)),
        (1.3, "s", bytes(DataFrame(1, data=b"z", flags=["END_STREAM"]).serialize())),
        (1.5, "c", bytes(RstStreamFrame(1, error_code=8).serialize())),
    ])
    t = entry["timings"]
    assert (t["send"], t["wait"], t["receive"]) == (0.0, 100.0, 200.0)
    assert entry["time"] == 300.0
    # Expect: 100-continue: the body goes up after the 100, then the server thinks;
    # the wait is until the final response, not the interim 100 (which made the
    # server's 400 ms count as receiving).
    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    (tmp_path / "timed.h2scope").unlink()
    entry = _timed(tmp_path, [
        (0.0, "c", settings), (0.0, "s", settings),
        (1.0, "c", headers(enc_c, [*request, ("expect", "100-continue")], False)),
        (1.1, "s", headers(enc_s, [(":status", "100")], False)),
        (1.2, "c", bytes(DataFrame(1, data=b"y", flags=["END_STREAM"]).serialize())),
        (1.6, "s", headers(enc_s, [(":status", "200")], False)),
        (1.7, "s", bytes(DataFrame(1, data=b"z", flags=["END_STREAM"]).serialize())),
    ])
    t = entry["timings"]
    assert (t["send"], t["wait"], t["receive"]) == (200.0, 400.0, 100.0)


@pytest.mark.parametrize(("server", "scheme", "url"), [
    ({"host": "127.0.0.1", "port": 42110}, "http", "http://127.0.0.1:42110/"),
    ({"host": "api.test", "port": 443}, "https", "https://api.test/"),
    ({"ip": "::1", "port": 8443}, "https", "https://[::1]:8443/"),
])
def test_a_request_without_authority_or_host_gets_the_host_it_was_sent_to(
        server: dict[str, Any], scheme: str, url: str) -> None:
    """RFC 9113 §8.3.1 lets a client leave out :authority; the URL is still valid."""
    from proxy.capture.exchanges import Exchange
    from proxy.capture.export_har import entry

    ex = Exchange(1, 9, request_headers=((":method", "GET"), (":scheme", scheme),
                                         (":path", "/")),
                  response_headers=((":status", "200"),))
    assert entry(ex, {"server": server})["request"]["url"] == url


def test_a_response_that_never_ended_is_marked_incomplete(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    """A download the client cancelled, or one a killed recording cut, would read as a
    normal 200 with a short body: the entry says it is not whole, and why."""
    entries = _by_path(_har(recorded[0]))
    slow = entries["/slow"]
    assert slow["comment"] == ("INCOMPLETE: the stream was reset (CANCEL by client) after 0 "
                               "body bytes")
    assert slow["_h2scope"]["incomplete"] == slow["comment"][len("INCOMPLETE: "):]
    assert all("incomplete" not in e["_h2scope"] for p, e in entries.items() if p != "/slow")
    # A capture cut before its END record, in the middle of a response.
    data = recorded[0].read_bytes()
    from proxy.capture.reader import CaptureReader

    with CaptureReader(recorded[0]) as reader:
        records = list(reader.records())
    large = next(r for r in records if r.type == 2 and r.conn_id == 1
                 and r.body[3] == 0 and r.body[5:9] == b"\x00\x00\x00\x05")
    cut = tmp_path / "cut.h2scope"
    cut.write_bytes(data[:large.offset + 40 + len(large.body)])  # (its first DATA, whole)
    entry = _by_path(_har(cut))["/large.bin"]
    assert entry["comment"].startswith("INCOMPLETE: part of the stream is not in the capture")


def test_a_compressed_response_is_exported_decoded_as_devtools_does(tmp_path: Path) -> None:
    """content-encoding gzip: content.text is the JSON itself (not base64 of the gzip),
    content.size its decoded length, bodySize what came on the wire."""
    from tests.unit.ui.traffic import GZIP_JSON, JSON_BODY, record

    path = record(tmp_path / "gz.h2scope")
    (users,) = [e for e in _har(path)["log"]["entries"]
                if e["request"]["url"].endswith("/api/users")]
    content = users["response"]["content"]
    assert json.loads(content["text"]) == JSON_BODY and "encoding" not in content
    decoded = json.dumps(JSON_BODY).encode()
    assert content["size"] == len(decoded)
    assert content["compression"] == len(decoded) - len(GZIP_JSON)
    assert users["response"]["bodySize"] == len(GZIP_JSON)
    jsonschema.Draft7Validator(SCHEMA).validate(_har(path))


def test_a_call_cancelled_before_any_response_lasts_until_its_reset(tmp_path: Path) -> None:
    """A gRPC call cancelled at its deadline had time 0 (no response frame to end
    it): its wait runs to the client's RST_STREAM."""
    import struct

    import hpack

    from proxy.observe.enums import Direction
    from tests.unit.capture.traffic import h2c_capture, raw_frame

    block = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"),
                                    (":authority", "g.test"), (":path", "/pkg.Svc/Slow"),
                                    ("content-type", "application/grpc"),
                                    ("grpc-timeout", "300m")])
    c2s = Direction.C2S
    path = h2c_capture(tmp_path / "cancel.h2scope", [
        (c2s, raw_frame(1, 4, 1, block), 0.01), (c2s, raw_frame(0, 1, 1, b"\0" * 5), 0.01),
        (c2s, raw_frame(3, 0, 1, struct.pack(">L", 8)), 0.31)], host="g.test")
    (entry,) = _har(path)["log"]["entries"]
    t = entry["timings"]
    assert entry["time"] == 300.0 and (t["send"], t["wait"], t["receive"]) == (0.0, 300.0, 0.0)


def test_a_binary_request_body_is_base64_even_when_its_bytes_are_utf8() -> None:
    """A gRPC message often decodes as UTF-8: as postData text it read as control
    characters ("\\u0000\\u0000\\u0000\\u0000-\\n\\u0005world")."""
    from proxy.capture.exchanges import Exchange
    from proxy.capture.export_har import entry

    message = b"\x00\x00\x00\x00\x07\n\x05world"

    def post(mime: str, body: bytes) -> dict[str, Any]:
        ex = Exchange(1, 1, request_headers=(
            (":method", "POST"), (":scheme", "http"), (":authority", "a"),
            (":path", "/pkg.Svc/Say"), ("content-type", mime)),
            response_headers=((":status", "200"),))
        ex.request_body.extend(body)
        return entry(ex, {})["request"]["postData"]

    grpc = post("application/grpc", message)
    assert base64.b64decode(grpc["text"]) == message and grpc["_encoding"] == "base64"
    assert grpc["comment"] == "base64: application/grpc bodies are binary"
    assert post("application/json", b'{"a": 1}')["text"] == '{"a": 1}'
    assert post("application/grpc-web-text", b"AAAAAAc=")["text"] == "AAAAAAc="


def test_an_http11_chunked_responses_trailers_are_in_the_entry() -> None:
    from proxy.capture.exchanges import Exchange
    from proxy.capture.export_har import entry

    ex = Exchange(1, 1, request_headers=((":method", "GET"), (":scheme", "http"),
                                         (":authority", "a"), (":path", "/")),
                  response_headers=((":status", "200"), ("Transfer-Encoding", "chunked")),
                  response_trailers=(("X-Checksum", "abc123"),), http_version="HTTP/1.1")
    assert entry(ex, {})["_h2scope"]["response_trailers"] == [["X-Checksum", "abc123"]]


def test_response_cookies_keep_their_attributes() -> None:
    """HAR's cookie object has path, domain, expires, httpOnly and secure: a
    Set-Cookie's attributes go there (they were dropped), and the entry validates."""
    from proxy.capture.export_har import _set_cookie

    assert _set_cookie("sid=a1b2; Path=/app; Domain=example.test; Expires=Wed, 21 Oct 2037 "
                       "07:28:00 GMT; Secure; HttpOnly; SameSite=Lax; Max-Age=60") == {
        "name": "sid", "value": "a1b2", "path": "/app", "domain": "example.test",
        "expires": "2037-10-21T07:28:00Z", "secure": True, "httpOnly": True,
        "_sameSite": "Lax", "_maxAge": "60"}
    assert _set_cookie("x=1; expires=not a date") == {"name": "x", "value": "1",
                                                      "expires": "not a date"}
    validator = jsonschema.Draft7Validator(SCHEMA["definitions"]["cookie"])
    validator.validate(_set_cookie("sid=a1b2; Path=/; Secure; HttpOnly; SameSite=Strict"))


def test_a_cookie_a_net_log_stripped_is_no_cookie() -> None:
    """Chrome's default net-log mode writes ``[14 bytes were stripped]`` for cookie
    values: the header list keeps what Chrome wrote, the cookies list has no cookie
    named '[14 bytes were stripped]'."""
    from proxy.capture.export_har import _cookies

    assert _cookies((("cookie", "[14 bytes were stripped]"), ("cookie", "a=1")),
                    "cookie") == [{"name": "a", "value": "1"}]
    assert _cookies((("set-cookie", "[96 bytes were stripped]"),), "set-cookie") == []


@pytest.mark.parametrize(("error", "said"), [
    (1, "REJECTED: the client reset the stream (PROTOCOL_ERROR) after the response came"),
    (8, "CANCELLED: the client reset the stream (CANCEL) after the whole response had "
        "reached h2scope"),
    (0, None),
])
def test_a_response_the_client_reset_after_it_came_is_not_a_plain_success(
        error: int, said: str | None) -> None:
    """Chrome answers a malformed response with RST_STREAM PROTOCOL_ERROR and never
    uses it; the entry was a plain 200 with no comment. A reset by the server or with
    NO_ERROR says nothing of the sort."""
    from proxy.capture.exchanges import Exchange
    from proxy.capture.export_har import entry

    ex = Exchange(1, 3, request_headers=((":method", "GET"), (":scheme", "https"),
                                         (":authority", "a"), (":path", "/upper.js")),
                  response_headers=((":status", "200"),), response_ended=True,
                  resets=[{"by": "client", "error_code": error}])
    comment = entry(ex, {}).get("comment")
    assert comment is None if said is None else comment.startswith(said), comment
    ex.resets = [{"by": "server", "error_code": 1}]
    assert "comment" not in entry(ex, {})


def test_headers_size_is_the_hpack_block_as_sent(recorded: tuple[Path, Session]) -> None:
    """HAR's headersSize counts the head's bytes as sent: over HTTP/2 the HPACK block.
    (It was the RFC 7541 list size, 25 times the wire bytes on a browser's page.)"""
    from proxy.capture.exchanges import collect
    from proxy.capture.export_har import entry

    path, _ = recorded
    found = collect(replay(path))
    checked = 0
    for ex in found.items:
        if ex.request_headers is None or ex.response_headers is None:
            continue
        e = entry(ex, found.connections.get(ex.conn_id, {}))
        assert e["request"]["headersSize"] == ex.head_sizes[0] > 0
        assert e["response"]["headersSize"] == ex.head_sizes[1] > 0
        assert e["request"]["headersSize"] < sum(len(n) + len(v) + 32
                                                 for n, v in ex.request_headers)
        rebuilt = entry(ex, {**found.connections.get(ex.conn_id, {}), "rebuilt": "frames"})
        assert rebuilt["request"]["headersSize"] == rebuilt["response"]["headersSize"] == -1
        checked += 1
    assert checked >= 3


def test_a_connections_first_request_carries_its_tls_set_up() -> None:
    """connect and ssl were always -1 though h2scope saw both handshakes: the first
    request on a TLS connection carries them (HAR 1.2: ssl within connect), the time
    from the handshake to its first frame as blocked, and starts at the accept."""
    from proxy.capture.exchanges import Exchange, Exchanges
    from proxy.capture.export_har import har_document

    def ex(sid: int, started: float) -> Exchange:
        return Exchange(1, sid, request_headers=((":method", "GET"), (":scheme", "https"),
                                                 (":authority", "a"), (":path", f"/{sid}")),
                        response_headers=((":status", "200"),), response_ended=True,
                        started=started, request_end=started, response_start=started + 0.01,
                        response_end=started + 0.02)

    found = Exchanges(items=[ex(3, 1000.30), ex(1, 1000.25)],
                      connections={1: {"opened": 1000.0, "client_tls": {"at": 1000.2}}})
    second, first = har_document(found)["log"]["entries"]
    assert first["timings"]["connect"] == first["timings"]["ssl"] == 200.0
    assert first["timings"]["blocked"] == 50.0
    assert first["startedDateTime"].startswith("1970-01-01T00:16:40.000")
    assert first["time"] == 270.0  # blocked + connect + wait + receive
    assert second["timings"]["connect"] == second["timings"]["ssl"] == -1
    validator = jsonschema.Draft7Validator(SCHEMA)
    validator.validate(har_document(found))


@pytest.mark.parametrize(("weight", "priority", "dest", "mime", "expected"), [
    (256, "u=0, i", "document", "text/html", ("VeryHigh", "document")),
    (220, None, "style", "text/css", ("High", "stylesheet")),
    (183, "u=2", "script", "text/javascript", ("Medium", "script")),
    (147, None, "image", "image/png", ("Low", "image")),
    (110, None, "font", "font/woff2", ("VeryLow", "font")),
    (None, "u=1", "empty", "application/json", ("High", "fetch")),
    (None, "i", None, "image/webp", ("Low", "image")),  # (RFC 9218's default u=3)
    (None, "u=6", None, "text/html; charset=utf-8", ("VeryLow", "document")),
    (16, None, None, "application/grpc", (None, "fetch")),  # (curl's weight: no signal)
    (None, None, None, "application/x-unknown", (None, "other")),
    (None, None, "video", "video/mp4", (None, "media")),
])
def test_devtools_type_and_priority_columns_come_from_the_request(
        weight: int | None, priority: str | None, dest: str | None, mime: str,
        expected: tuple[str | None, str]) -> None:
    """DevTools' Type and Priority columns read ``_resourceType`` and ``_priority``;
    the export left them out, so an imported HAR showed every request as 'other'."""
    from proxy.capture.exchanges import Exchange
    from proxy.capture.export_har import entry

    fields = [(":method", "GET"), (":scheme", "https"), (":authority", "a"), (":path", "/")]
    if priority is not None:
        fields.append(("priority", priority))
    if dest is not None:
        fields.append(("sec-fetch-dest", dest))
    ex = Exchange(1, 1, request_headers=tuple(fields),
                  response_headers=((":status", "200"), ("content-type", mime)),
                  request_weight=weight)
    out = entry(ex, {})
    assert (out.get("_priority"), out["_resourceType"]) == expected


def test_a_cors_preflight_is_typed_preflight() -> None:
    from proxy.capture.exchanges import Exchange
    from proxy.capture.export_har import entry

    ex = Exchange(1, 1, request_headers=(
        (":method", "OPTIONS"), (":scheme", "https"), (":authority", "a"), (":path", "/api"),
        ("access-control-request-method", "PUT"), ("sec-fetch-dest", "empty")),
        response_headers=((":status", "204"),))
    assert entry(ex, {})["_resourceType"] == "preflight"


def test_priority_is_the_last_a_priority_frame_gave_and_the_first_is_kept(
        tmp_path: Path) -> None:
    """Chromium raises a request that became urgent with a PRIORITY frame (weight 183
    → 220): DevTools' Priority column shows the current priority, and the HAR said
    the HEADERS' one."""
    import hpack
    from hyperframe.frame import DataFrame, HeadersFrame, PriorityFrame

    enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
    req = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM", "PRIORITY"], depends_on=0,
                       stream_weight=182, exclusive=True)  # (the wire's weight - 1)
    req.data = enc_c.encode([(":method", "GET"), (":scheme", "https"),
                             (":authority", "a.test"), (":path", "/img.png")])
    raised = PriorityFrame(1, depends_on=0, stream_weight=219, exclusive=True)
    resp = HeadersFrame(1, flags=["END_HEADERS"])
    resp.data = enc_s.encode([(":status", "200"), ("content-type", "image/png")])
    entry = _timed(tmp_path, [(1.0, "c", req.serialize()), (1.1, "c", raised.serialize()),
                              (1.2, "s", resp.serialize()),
                              (1.3, "s", DataFrame(1, b"x", flags=["END_STREAM"]).serialize())])
    assert entry["_priority"] == "High"
    assert entry["_h2scope"]["initialPriority"] == "Medium"


def test_the_har_is_written_an_entry_at_a_time_as_one_document(
        recorded: tuple[Path, Session], tmp_path: Path) -> None:
    """The document was built whole, then written: 4.5 times a 300 MB capture in
    memory. Written an entry at a time, it is the same text, byte for byte, and an
    empty selection is an empty list."""
    from proxy.capture.exchanges import collect
    from proxy.capture.export_har import har_document
    from proxy.observe.describe import escape_undecoded

    for kw in ({}, {"conn": 2}, {"conn": 99}):
        whole = json.dumps(har_document(collect(replay(recorded[0]), **kw)),
                           ensure_ascii=False, indent=1)
        out = io.StringIO()
        write_har(replay(recorded[0]), out, **kw)
        assert out.getvalue() == escape_undecoded(whole, "\\\\") + "\n", kw
        assert json.loads(out.getvalue())["log"]["entries"] or kw == {"conn": 99}
