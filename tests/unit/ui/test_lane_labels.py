"""A lane's label: connection, stream, method, path and status in 30 characters,
cut where it tells the least."""

from __future__ import annotations

from ui.model.connections import StreamInfo
from ui.widgets.lanes import LABEL, lane_label


def _stream(path: str, method: str = "GET", *response: tuple[str, str]) -> StreamInfo:
    return StreamInfo(conn_id=1, stream_id=1, request_headers=(
        (":method", method), (":path", path)), response_headers=response or (
        (":status", "200"),))


def test_a_long_query_string_is_cut_before_the_path() -> None:
    """With a long query string the path disappeared: '#1 1 GET …ppppppp → 200'."""
    assert lane_label(_stream("/i.html?q=" + "p" * 40)) == "#1    1 GET /i.html?q=p… → 200"
    # (no room for any of the query: the path stays, and '…' says something follows)
    assert lane_label(_stream("/index.html?q=" + "p" * 40)) == "#1    1 GET /index.html… → 200"
    assert lane_label(_stream("/x?a=1")) == "#1    1 GET /x?a=1 → 200"


def test_a_long_path_keeps_its_end_as_a_grpc_method_does() -> None:
    assert lane_label(_stream("/static/js/vendor/bundle.min.js")) == \
        "#1    1 GET …ndle.min.js → 200"
    call = _stream("/helloworld.Greeter/SayHelloAgain", "POST", (":status", "200"),
                   ("grpc-status", "14"))
    assert lane_label(call) == "#1    1 …loAgain → UNAVAILABLE"
    for path in ("/i.html?q=" + "p" * 40, "/a/" * 30, "/helloworld.Greeter/SayHelloAgain"):
        assert len(lane_label(_stream(path))) == LABEL
