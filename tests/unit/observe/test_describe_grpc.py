"""gRPC's status in the one-line summary of a header block (timeline, text log)."""

from __future__ import annotations

from proxy.observe.describe import block_summary


def test_grpc_trailers_summarize_as_their_status_with_the_decoded_message() -> None:
    trailers = (("grpc-status", "3"), ("grpc-message", "bad%20id%3A%20%E2%9C%93%0A"))
    assert block_summary(trailers) == "grpc-status 3 INVALID_ARGUMENT 'bad id: ✓\\n'"
    assert block_summary((("grpc-status", "0"),)) == "grpc-status 0 OK"


def test_a_trailers_only_response_shows_the_http_and_the_grpc_status() -> None:
    headers = ((":status", "200"), ("content-type", "application/grpc"),
               ("grpc-status", "14"), ("grpc-message", "no healthy upstream"))
    assert block_summary(headers) == (":status 200 application/grpc  "
                                      "grpc-status 14 UNAVAILABLE 'no healthy upstream'")


def test_an_unknown_grpc_status_and_other_trailers() -> None:
    assert block_summary((("grpc-status", "99"),)) == "grpc-status 99 ?"
    assert block_summary((("grpc-status", "x"),)) == "grpc-status x ?"
    assert block_summary((("x-checksum", "1"), ("x-count", "2"))) == "2 fields"
    assert block_summary(((":status", "200"),)) == ":status 200"

def test_a_message_that_only_repeats_the_status_name_is_left_out() -> None:
    assert block_summary((("grpc-status", "0"), ("grpc-message", "OK"))) == "grpc-status 0 OK"

def test_one_field_is_one_field() -> None:
    assert block_summary((("x-request-trailer", "yes"),)) == "1 field"
