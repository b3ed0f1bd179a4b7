"""The per-stream comparison of an original with its replay."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.capture.replay import replay
from proxy.capture.writer import CaptureWriter
from proxy.replay.compare import StreamOutcome, compare, outcomes, report_lines
from tests.unit.capture.traffic import BINARY_BODY, LARGE_BODY, record_session


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> list[StreamOutcome]:
    path = tmp_path_factory.mktemp("compare") / "traffic.h2scope"
    with CaptureWriter(path) as writer:
        record_session(writer)
    return outcomes(replay(path))


def by_path(streams: list[StreamOutcome], path: str) -> StreamOutcome:
    return next(s for s in streams if s.path == path)


def test_outcomes_hold_status_header_names_body_and_resets(
        streams: list[StreamOutcome]) -> None:
    import hashlib

    page = by_path(streams, "/index.html")
    assert (page.method, page.status, page.pushed) == ("GET", "200", False)
    assert page.header_names == ("content-type", "set-cookie")  # (the trailers' apart)
    upload = by_path(streams, "/upload")
    assert upload.body_length == len(BINARY_BODY)
    assert upload.body_sha256 == hashlib.sha256(BINARY_BODY).hexdigest()
    assert by_path(streams, "/large.bin").body_length == len(LARGE_BODY)
    assert by_path(streams, "/slow").reset == "CANCEL by client"
    push = by_path(streams, "/style.css")
    assert push.pushed and push.stream_id == 2 and push.status == "200"


def test_a_replay_equal_to_the_original_matches_everywhere(
        streams: list[StreamOutcome]) -> None:
    diffs = compare(streams, list(streams))
    assert diffs and all(d.matches for d in diffs)


def test_every_compared_field_is_reported_when_it_differs(
        streams: list[StreamOutcome]) -> None:
    page = by_path(streams, "/index.html")
    changed = dataclasses.replace(page, status="503", header_names=("content-type", "x-new"),
                                  body_length=3, body_sha256="00" * 32,
                                  reset="INTERNAL_ERROR by server",
                                  server_reset="INTERNAL_ERROR by server")
    replayed = [changed if s is page else s for s in streams]
    diff = next(d for d in compare(streams, replayed) if d.original is page)
    assert diff.differences == (
        "status: 200 → 503",
        "response header names: new x-new",
        f"body: 31 bytes, sha256 {page.body_sha256[:16]}… → 3 bytes, sha256 0000000000000000…",
        "server reset: none → INTERNAL_ERROR by server",
    )
    text = "\n".join(report_lines(compare(streams, replayed)))
    assert "DIFFERS  stream 1 (GET /index.html):" in text
    assert "same     stream 3 (POST /upload): 201" in text


def test_volatile_header_names_and_renumbered_streams_do_not_count(
        streams: list[StreamOutcome]) -> None:
    page = by_path(streams, "/index.html")
    replayed = [dataclasses.replace(s, stream_id=s.stream_id + 100,
                                    header_names=tuple(sorted({*s.header_names, "date", "age"}
                                                              - {"set-cookie"})))
                if not s.pushed else s for s in streams]
    diffs = compare(streams, replayed)
    assert all(d.matches for d in diffs)
    assert any("→ replay stream 101" in line for line in report_lines(diffs))
    assert page.stream_id == 1


def test_a_cdns_cache_and_timing_fields_are_volatile_but_strict_keeps_them(
        streams: list[StreamOutcome]) -> None:
    """Fastly's x-served-by/x-timer and Cloudflare's cf-cache-status come (or
    change) per request: left out unless --strict."""
    from proxy.replay.compare import volatile_names

    cdn = ("x-served-by", "x-timer", "x-cache-hits", "cf-cache-status", "cache-status")
    replayed = [dataclasses.replace(s, header_names=tuple(sorted({*s.header_names, *cdn})))
                for s in streams]
    assert all(d.matches for d in compare(streams, replayed))
    strict = compare(streams, replayed, volatile_names(True, ""))
    assert not all(d.matches for d in strict)


def test_a_missing_push_and_an_extra_request_are_differences(
        streams: list[StreamOutcome]) -> None:
    extra = dataclasses.replace(by_path(streams, "/upload"), stream_id=99, path="/extra")
    replayed = [s for s in streams if not s.pushed] + [extra]
    texts = [t for d in compare(streams, replayed) for t in d.differences]
    assert "no such stream in the replay" in texts
    assert "not in the original: stream 99 (POST /extra)" in texts


def test_a_truncated_body_compares_by_length_only(streams: list[StreamOutcome]) -> None:
    big = by_path(streams, "/large.bin")
    cut = dataclasses.replace(big, body_sha256=None)
    original = [cut if s is big else s for s in streams]
    assert all(d.matches for d in compare(original, streams))
    shorter = [dataclasses.replace(big, body_length=1) if s is big else s for s in streams]
    assert not all(d.matches for d in compare(original, shorter))


def test_a_push_pairs_by_path_when_the_replay_rewrote_the_authority(
        streams: list[StreamOutcome]) -> None:
    """``replay --mode reencode --authority foo.example``: the target's pushes carry
    the new authority; the original's push is still the one for that path."""
    moved = [dataclasses.replace(s, authority="foo.example") for s in streams]
    diffs = compare(streams, moved)
    assert diffs and all(d.matches for d in diffs)
    assert len(diffs) == len(streams)


def test_a_grpc_status_that_changed_is_a_difference(streams: list[StreamOutcome]) -> None:
    """For a gRPC call the status is a header value, and the call's outcome: a
    server that now answers NOT_FOUND must not replay as 'same'."""
    page = by_path(streams, "/index.html")
    assert page.grpc_status is not None and page.grpc_status.startswith("grpc-status 0 OK")
    other = [dataclasses.replace(s, grpc_status="grpc-status 5 NOT_FOUND 'no such thing'")
             if s is page else s for s in streams]
    (diff,) = [d for d in compare(streams, other) if not d.matches]
    assert diff.differences == ("grpc-status 0 OK → grpc-status 5 NOT_FOUND 'no such thing'",)
    # Another message with the same code is the same outcome.
    same = [dataclasses.replace(s, grpc_status="grpc-status 0 OK 'fine'") if s is page else s
            for s in streams]
    assert all(d.matches for d in compare(streams, same))
    assert any(", grpc-status 0 OK, " in line for line in report_lines(compare(streams, same)))


def test_a_replay_compares_the_servers_resets_not_which_came_first(
        streams: list[StreamOutcome]) -> None:
    """A call the client cancels at its deadline while the server resets it too: in
    the replay the server's reset came first. The client's CANCEL is the recorded
    one, replayed; only a change in the server's resets is a difference."""
    slow = by_path(streams, "/slow")
    original = dataclasses.replace(slow, reset="CANCEL by client",
                                   server_reset="NO_ERROR by server")
    raced = dataclasses.replace(slow, reset="NO_ERROR by server",
                                server_reset="NO_ERROR by server")
    (diff,) = [d for d in compare([original], [raced])]
    assert diff.matches
    # The client's reset came first: whether the server resets it too is timing.
    silent = dataclasses.replace(raced, server_reset=None)
    assert compare([original], [silent])[0].matches
    # A server that reset the stream first in the recording: its reset counts.
    server_first = dataclasses.replace(original, reset="NO_ERROR by server")
    (diff,) = [d for d in compare([server_first], [silent])]
    assert diff.differences == ("server reset: NO_ERROR by server → none",)


def test_a_stream_the_client_cancelled_is_not_compared_by_how_much_arrived(
        streams: list[StreamOutcome]) -> None:
    """The recorded client reset a download mid-body; the replay resets it again, and
    how much body had come by then is timing (it made replays of the same server
    exit 3 most of the time). A status or a reset from the server still counts."""
    big = by_path(streams, "/slow")
    original = dataclasses.replace(big, status="200", reset="CANCEL by client",
                                   server_reset=None, answered=False, body_length=262140,
                                   body_sha256="a" * 64)
    assert original.cancelled
    less = dataclasses.replace(original, body_length=229373, body_sha256="b" * 64)
    assert compare([original], [less])[0].matches
    none_yet = dataclasses.replace(less, status=None, body_length=0)
    assert compare([original], [none_yet])[0].matches
    (diff,) = compare([original], [dataclasses.replace(less, status="503")])
    assert diff.differences == ("status: 200 → 503",)
    # A response the server had finished before the client's reset is compared whole.
    finished = dataclasses.replace(original, answered=True)
    assert not finished.cancelled
    (diff,) = compare([finished], [less])
    assert diff.differences[0].startswith("body: 262140 bytes")


def test_a_response_whose_client_closed_the_connection_is_compared_as_far_as_it_went(
        streams: list[StreamOutcome]) -> None:
    """The recorded client closed the connection mid-download (it stopped reading):
    the replay, reading it all, got the whole body, which is no difference (it made
    the replay of the same server exit 3). A server's close mid-body still is one."""
    big = by_path(streams, "/slow")
    original = dataclasses.replace(big, status="200", reset=None, server_reset=None,
                                   answered=False, body_length=100, body_sha256="a" * 64,
                                   closed="connection closed by client")
    assert original.client_left and not original.cancelled
    whole = dataclasses.replace(original, closed=None, answered=True, body_length=1_000_000,
                                body_sha256="b" * 64)
    (diff,) = compare([original], [whole])
    assert diff.matches
    assert report_lines([diff])[0].endswith(
        "200, 100 bytes before the client closed the connection (not compared)")
    cut = dataclasses.replace(original, closed="connection closed by server")
    assert compare([cut], [whole])[0].differences[0].startswith("body: 100 bytes")


def test_an_excerpt_without_its_response_is_not_a_difference_in_header_names(
        streams: list[StreamOutcome]) -> None:
    """A capture cut before the response came: status, names and body are unknown,
    not different (replay and diff said 'response header names: new …')."""
    page = by_path(streams, "/index.html")
    cut = dataclasses.replace(page, status=None, header_names=(), body_length=0,
                              body_sha256=None, incomplete=True)
    assert compare([cut], [page])[0].matches
    assert not compare([dataclasses.replace(cut, incomplete=False)], [page])[0].matches


def test_a_reset_after_the_end_of_an_incomplete_capture_is_no_difference(
        streams: list[StreamOutcome]) -> None:
    """A recording killed before the server's RST_STREAM: its "no reset" is unknown,
    not a difference from the replay's reset (replay exited 3 on it)."""
    page = by_path(streams, "/index.html")
    cut = dataclasses.replace(page, body_sha256=None, incomplete=True, server_reset=None,
                              reset=None)
    reset = dataclasses.replace(page, server_reset="INTERNAL_ERROR by server",
                                reset="INTERNAL_ERROR by server")
    assert compare([cut], [reset])[0].matches
    from proxy.replay.compare import diff_streams
    assert diff_streams(cut, reset) == ()  # (diff: two captures, either one cut)
    assert diff_streams(reset, cut) == ()
    whole = dataclasses.replace(cut, incomplete=False, body_sha256=page.body_sha256)
    assert compare([whole], [reset])[0].differences == (
        "server reset: none → INTERNAL_ERROR by server",)


def test_a_trailer_that_moved_into_the_header_section_is_a_difference(
        streams: list[StreamOutcome]) -> None:
    """The trailer section is compared by its names apart from the header names:
    a replayed server that sends x-trailer with its headers instead, or drops the
    trailer while a header of that name stays, answered 'same'."""
    page = by_path(streams, "/index.html")
    assert page.trailer_names == ("grpc-status", "x-trailer")
    assert by_path(streams, "/upload").trailer_names == ()  # (a request's trailers)
    moved = dataclasses.replace(page, trailer_names=("grpc-status",))
    assert moved.header_names == page.header_names
    (diff,) = [d for d in compare(streams, [moved if s is page else s for s in streams])
               if not d.matches]
    assert diff.differences == ("response trailer names: missing x-trailer",)
    # A recorded client's cancel ends the stream before its trailers: not compared.
    cut = dataclasses.replace(page, reset="CANCEL by client", answered=False)
    assert compare([cut], [dataclasses.replace(cut, trailer_names=())])[0].matches


def test_why_a_stream_got_no_response_says_reset_or_goaway(tmp_path) -> None:
    """'connection closed by server' was said alike of a FIN, a TCP reset and a
    GOAWAY that left the request unprocessed (RFC 9113 §6.8: safe to retry)."""
    import hpack
    from hyperframe.frame import GoAwayFrame, HeadersFrame, SettingsFrame

    from proxy.events import CONNECTION_RESET
    from proxy.observe.enums import CONNECTION_PREFACE, Direction

    c2s, s2c = Direction.C2S, Direction.S2C
    enc = hpack.Encoder()

    def request(sid: int) -> bytes:
        f = HeadersFrame(sid, flags=["END_HEADERS", "END_STREAM"])
        f.data = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                             (":path", f"/{sid}")])
        return bytes(f.serialize())

    path = tmp_path / "goaway.h2scope"
    with CaptureWriter(path) as writer:
        writer.connection(1, {"protocol": "h2c"}, t=0.0)
        writer.raw(1, c2s, CONNECTION_PREFACE, t=0.0)
        writer.frame(1, c2s, bytes(SettingsFrame(0).serialize()), t=0.0)
        writer.frame(1, s2c, bytes(SettingsFrame(0).serialize()), t=0.0)
        writer.frame(1, c2s, request(1), t=0.1)
        writer.frame(1, c2s, request(3), t=0.1)
        writer.frame(1, s2c, bytes(GoAwayFrame(0, last_stream_id=1).serialize()), t=0.2)
        writer.close_connection(1, t=0.3, closed_by="server", error=CONNECTION_RESET)
    got = {s.stream_id: s for s in outcomes(replay(path))}
    assert got[1].closed == "connection reset by server"
    assert got[3].closed == ("not processed: above the server's GOAWAY last-stream-id 1, "
                             "safe to retry")
    answered = dataclasses.replace(got[1], status="200", body_length=5, body_sha256="a" * 64,
                                   closed=None, answered=True)
    (diff,) = compare([answered], [got[1]])
    assert diff.differences == ("status: 200 → no response",)  # (no body line: noise)


def test_a_same_line_names_the_server_reset_it_compared(
        streams: list[StreamOutcome]) -> None:
    """A stream the server reset mid-body, reset again the same way: the line said
    '200, 5000 bytes' as if it had ended normally."""
    page = dataclasses.replace(by_path(streams, "/index.html"),
                               server_reset="INTERNAL_ERROR by server")
    (line,) = report_lines(compare([page], [page]))
    assert line.startswith("  same     stream 1 (GET /index.html): 200, ")
    assert line.endswith(", reset INTERNAL_ERROR by server"), line


def test_a_stream_not_sent_after_the_server_ended_the_connection_says_so(
        streams: list[StreamOutcome]) -> None:
    """Streams after a server's GOAWAY were 'no such stream in the replay'."""
    from types import SimpleNamespace

    from proxy.replay.session import _not_sent

    page = by_path(streams, "/index.html")
    (missing,) = compare([page], [])
    ended = SimpleNamespace(goaway="COMPRESSION_ERROR, last stream 9", error=None)
    said = _not_sent(missing, ended)  # type: ignore[arg-type]
    assert said.differences == ("not sent: the server had ended the connection first "
                                "(GOAWAY COMPRESSION_ERROR, last stream 9)",)
    assert not said.matches
    (both,) = compare([page], [page])
    assert _not_sent(both, ended) is both  # type: ignore[arg-type]


def test_bodies_whose_content_is_the_same_do_not_differ_by_their_encoding(tmp_path) -> None:
    """gzip writes its time into its header: the same JSON compressed twice (a replay,
    a second recording) differed in every byte, and replay exited 3."""
    import gzip

    import hpack
    from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame

    from proxy.observe.enums import CONNECTION_PREFACE, Direction

    body = b'{"users": ["ada", "grace"]}' * 20

    def recording(name: str, encoded: bytes) -> list[StreamOutcome]:
        c2s, s2c = Direction.C2S, Direction.S2C
        enc_c, enc_s = hpack.Encoder(), hpack.Encoder()
        req = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
        req.data = enc_c.encode([(":method", "GET"), (":scheme", "https"),
                                 (":authority", "a"), (":path", "/users")])
        resp = HeadersFrame(1, flags=["END_HEADERS"])
        resp.data = enc_s.encode([(":status", "200"), ("content-encoding", "gzip")])
        path = tmp_path / name
        with CaptureWriter(path) as writer:
            writer.connection(1, {"protocol": "h2"}, t=0.0)
            writer.raw(1, c2s, CONNECTION_PREFACE, t=0.0)
            for d in (c2s, s2c):
                writer.frame(1, d, bytes(SettingsFrame(0).serialize()), t=0.0)
            writer.frame(1, c2s, bytes(req.serialize()), t=0.1)
            writer.frame(1, s2c, bytes(resp.serialize()), t=0.2)
            writer.frame(1, s2c, bytes(DataFrame(1, encoded, flags=["END_STREAM"]).serialize()),
                         t=0.2)
        return outcomes(replay(path))

    first = recording("a.h2scope", gzip.compress(body, mtime=1))
    again = recording("b.h2scope", gzip.compress(body, mtime=2))
    other = recording("c.h2scope", gzip.compress(body + b" ", mtime=1))
    assert first[0].body_sha256 != again[0].body_sha256
    (same,) = compare(first, again)
    assert same.differences == ()
    (changed,) = compare(first, other)
    assert [d.split(":")[0] for d in changed.differences] == ["body"]
