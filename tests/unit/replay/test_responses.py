"""Recorded responses for the mock server, and matching requests to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.capture.writer import CaptureWriter
from proxy.replay.mock_server import not_found_body
from proxy.replay.responses import RecordedResponse, ResponseBook, load_responses
from tests.unit.capture.traffic import BINARY_BODY, LARGE_BODY, record_session


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> list[RecordedResponse]:
    path = tmp_path_factory.mktemp("responses") / "traffic.h2scope"
    with CaptureWriter(path) as writer:
        record_session(writer, 1)
        record_session(writer, 2, t0=2000.0)
    return load_responses(path)


def test_each_request_keeps_the_recorded_frame_sequence(
        responses: list[RecordedResponse]) -> None:
    page = responses[0]
    assert (page.conn_id, page.stream_id, page.method, page.path, page.authority) == \
        (1, 1, "GET", "/index.html", "example.test")
    assert [a.kind for a in page.actions] == ["push", "headers", "data", "headers"]
    push, head, data, trailers = page.actions
    assert dict(push.headers)[":path"] == "/style.css"
    assert [a.kind for a in push.pushed] == ["headers", "data"]
    assert push.pushed[-1].data == b"body { color: red }" and push.pushed[-1].end_stream
    assert dict(head.headers)[":status"] == "200" and not head.end_stream
    assert data.data == b"<html><body>hello</body></html>"
    assert dict(trailers.headers) == {"grpc-status": "0", "x-trailer": "done"}
    assert trailers.end_stream


def test_data_chunking_resets_and_padding_are_kept(responses: list[RecordedResponse]) -> None:
    large = next(r for r in responses if r.path == "/large.bin")
    chunks = [a.data for a in large.actions if a.kind == "data"]
    assert b"".join(chunks) == LARGE_BODY and len(chunks) >= 2
    upload = next(r for r in responses if r.path == "/upload")
    assert b"".join(a.data for a in upload.actions if a.kind == "data") == BINARY_BODY
    assert upload.status == "201"
    # Pushed streams are served through their PUSH_PROMISE; as a response of their
    # own only to a client that asks (see below).
    assert [r.pushed_on for r in responses if r.path == "/style.css"] == [1, 1]


def test_matching_ignores_the_port_and_serves_repeats_in_recorded_order(
        responses: list[RecordedResponse]) -> None:
    book = ResponseBook(responses)
    first = book.find("GET", "example.test:9443", "/index.html")
    second = book.find("GET", "example.test", "/index.html")
    third = book.find("GET", "example.test", "/index.html")
    assert first is not None and second is not None and third is not None
    assert (first.conn_id, second.conn_id, third.conn_id) == (1, 2, 2)
    assert book.find("GET", "other.test", "/index.html") is None
    assert book.find("POST", "example.test", "/index.html") is None
    assert ResponseBook(responses, ["method", "path"]).find("GET", "other.test",
                                                            "/index.html") is not None


def test_an_unmatched_request_names_the_closest_recorded_paths(
        responses: list[RecordedResponse]) -> None:
    book = ResponseBook(responses, ["path"])
    body = not_found_body(book, "GET", "a.test", "/index.htm").decode()
    assert "no recorded response for GET /index.htm" in body
    lines = body.splitlines()
    assert lines[lines.index("closest recorded paths (query values not shown):") + 1] \
        == "  /index.html"


def test_unknown_match_fields_are_refused(responses: list[RecordedResponse]) -> None:
    with pytest.raises(ValueError, match="subset of method,authority,path"):
        ResponseBook(responses, ["method", "colour"])


def test_a_resource_recorded_only_as_a_push_is_served_when_asked_for(
        responses: list[RecordedResponse]) -> None:
    """curl and today's browsers never take a push: they ask for the stylesheet."""
    book = ResponseBook(responses)
    css = book.find("GET", "example.test:8443", "/style.css")
    assert css is not None and css.pushed_on == 1 and css.stream_id == 2
    assert [a.kind for a in css.actions] == ["headers", "data"]
    assert css.status == "200" and css.actions[0].at == 0.0
    assert css.actions[-1].data == b"body { color: red }" and css.actions[-1].end_stream
    # A requested response is preferred to a pushed one for the same resource.
    page = book.find("GET", "example.test", "/index.html")
    assert page is not None and page.pushed_on is None


def test_a_response_the_client_cancelled_is_marked_cut_and_a_whole_one_preferred(
        responses: list[RecordedResponse]) -> None:
    slow = [r for r in responses if r.path == "/slow"]
    assert [r.cut for r in slow] == ["the client reset it (CANCEL)"] * 2
    assert all(r.cut is None for r in responses if r.path != "/slow")
    # Given a whole recording of the same request as well, that one is served first.
    whole = RecordedResponse(conn_id=3, stream_id=1, method="GET", authority="example.test",
                             path="/slow", actions=slow[0].actions[:1])
    book = ResponseBook([*slow, whole])
    assert book.find("GET", "example.test", "/slow") is whole
    assert book.find("GET", "example.test", "/slow") is whole  # (the only whole one)


def damaged_capture(tmp_path: Path) -> Path:
    """Two connections, one after the other; the first DATA record of the second's
    /large.bin damaged (its CRC no longer matches)."""
    from proxy.capture.reader import CaptureReader
    from proxy.observe.enums import Direction

    path = tmp_path / "damaged.h2scope"
    with CaptureWriter(path) as writer:
        record_session(writer, 1, close=False)
        # A PRIORITY for an idle stream (nghttp's anchors): a stream that never ends.
        priority = bytes.fromhex("0000050200000000090000000010")
        writer.frame(1, Direction.C2S, priority, t=1999.0, wall=1999.0)
        writer.close_connection(1, t=1999.5, closed_by="client")
        record_session(writer, 2, t0=2000.0)
    with CaptureReader(path) as reader:
        records = [r for r in reader.records() if r.conn_id == 2]
    bodies = [r.body for r in records if LARGE_BODY[:64] in r.body]
    raw = bytearray(path.read_bytes())
    at = raw.find(bodies[0], records[0].offset)  # (connection 1 has the same bytes)
    assert len(bodies) >= 2 and at > 0
    raw[at + len(bodies[0]) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def test_a_replay_notes_damage_on_the_connections_open_there_only(tmp_path: Path) -> None:
    """The damage falls in connection 2: connection 1, closed before, gets no 'part
    of it is missing' note (it had 15 such notes, on every stream, PRIORITY-only
    ones labelled '? ?')."""
    from proxy.replay.source import load_capture

    source = load_capture(damaged_capture(tmp_path))
    notes = {p.conn_id: [n for n in p.notes if "missing from the capture" in n]
             for p in source.plans}
    assert notes[1] == []
    assert len(notes[2]) == 1 and "/large.bin" in notes[2][0]
    assert any("damaged record at byte offset" in n for n in source.notes)


def test_a_response_with_a_damaged_record_in_its_body_is_served_up_to_the_damage(
        tmp_path: Path) -> None:
    """A damaged record in the middle of /large.bin: serving the rest would send a
    body with a hole and END_STREAM (curl fails; a client bug to chase that is not
    there). The response keeps what came before the damage and is cut there; the
    damage is reported; the other connection's responses, closed before, are whole."""
    from proxy.capture.reader import BadRecord

    path = damaged_capture(tmp_path)
    problems: list[BadRecord] = []
    responses = load_responses(path, on_problem=problems.append)
    assert problems and "CRC" in problems[0].reason
    first, second = (r for r in responses if r.path == "/large.bin")
    assert first.conn_id == 1 and first.cut is None
    assert b"".join(a.data for a in first.actions if a.kind == "data") == LARGE_BODY
    assert second.conn_id == 2
    assert second.cut == "part of it is missing from the capture (damaged or lost records)"
    kept = b"".join(a.data for a in second.actions if a.kind == "data")
    assert LARGE_BODY.startswith(kept) and len(kept) < len(LARGE_BODY)
    assert not any(a.end_stream for a in second.actions)


def test_a_404_says_when_the_path_was_recorded_with_another_method(
        responses: list[RecordedResponse]) -> None:
    body = not_found_body(ResponseBook(responses), "GET", "example.test", "/upload").decode()
    assert "/upload was recorded as POST, not GET" in body


def test_a_failed_grpc_call_is_labelled_with_its_code_not_only_its_http_status() -> None:
    """serve's log and the UI's lanes: '→ 200' on a NOT_FOUND call reads as success."""
    from proxy.replay.responses import Action
    from ui.model.connections import StreamInfo

    call = (("content-type", "application/grpc"),)
    failed = RecordedResponse(conn_id=1, stream_id=1, method="POST", authority="a",
                              path="/pkg.Svc/Get", actions=(
                                  Action(kind="headers", headers=((":status", "200"), *call)),
                                  Action(kind="headers", headers=(("grpc-status", "5"),),
                                         end_stream=True)))
    assert failed.status == "200 NOT_FOUND"
    info = StreamInfo(conn_id=1, stream_id=1,
                      request_headers=((":method", "POST"), (":path", "/pkg.Svc/Get")),
                      response_headers=((":status", "200"), *call),
                      response_trailers=(("grpc-status", "5"),))
    assert info.label == "POST /pkg.Svc/Get → 200 NOT_FOUND"
    info.response_trailers = (("grpc-status", "0"),)
    assert info.label == "POST /pkg.Svc/Get → 200"


def test_match_fields_given_twice_are_a_usage_error(
        responses: list[RecordedResponse]) -> None:
    with pytest.raises(ValueError, match="--match takes a comma-separated subset"):
        ResponseBook(responses, ["path", "path"])


def test_route_matching_ignores_the_query_string(responses: list[RecordedResponse]) -> None:
    """'/trailers?cachebust=1' got a 404 with no way to say the query does not count."""
    assert ResponseBook(responses).find("GET", "example.test", "/index.html?v=2") is None
    book = ResponseBook(responses, ["method", "authority", "route"])
    found = book.find("GET", "example.test", "/index.html?v=2")
    assert found is not None and found.path == "/index.html"
    with pytest.raises(ValueError, match="path or route, not both"):
        ResponseBook(responses, ["path", "route"])
