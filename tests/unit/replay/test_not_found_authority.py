"""A 404 from ``h2scope serve`` that only the authority caused says so, and how to fix it."""

from __future__ import annotations

from proxy.replay.mock_server import not_found_body
from proxy.replay.responses import RecordedResponse, ResponseBook
from tests.unit.replay.test_responses import responses  # noqa: F401  (fixture)


def test_a_request_for_another_host_names_the_recorded_authority(
        responses: list[RecordedResponse]) -> None:  # noqa: F811
    book = ResponseBook(responses)
    recorded = next(r for r in responses if r.path == "/index.html")
    body = not_found_body(book, recorded.method, "127.0.0.1:9999", "/index.html").decode()
    assert f"{recorded.method} /index.html was recorded for authority {recorded.authority}" \
        in body
    assert "--match method,path" in body


def test_a_path_recorded_nowhere_does_not_blame_the_authority(
        responses: list[RecordedResponse]) -> None:  # noqa: F811
    body = not_found_body(ResponseBook(responses), "GET", "127.0.0.1:9999", "/nope").decode()
    assert "was recorded for authority" not in body
    assert "closest recorded paths (query values not shown):" in body


def test_the_404_names_a_recorded_paths_query_names_not_their_values() -> None:
    from proxy.replay.mock_server import _query_names

    assert _query_names("/cb?access_token=SECRET&x=1&flag") == "/cb?access_token=…&x=…&flag"
    assert _query_names("/index.html") == "/index.html"
