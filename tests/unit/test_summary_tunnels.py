"""The run summary keeps tunnels (CONNECT streams, plain and RFC 8441 extended) out
of the slowest streams and counts them apart, and counts WebSockets over HTTP/2
and over HTTP/1.1 alike."""

from __future__ import annotations

from proxy.events import Batch, RelayStarted
from proxy.observe.enums import Direction
from proxy.summary import RunSummary
from tests.unit.test_summary_stalls import END, Fed

C2S, S2C = Direction.C2S, Direction.S2C
WS_CONNECT = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
              (":authority", "localhost:62001"), (":path", "/chat")]


def test_an_idle_websocket_is_a_tunnel_not_the_slowest_stream() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    fed.send(S2C, fed.conv.f.settings(enable_connect_protocol=1))
    fed.send(C2S, fed.conv.f.settings(ack=True))
    fed.send(C2S, fed.conv.f.headers(C2S, 1, WS_CONNECT))
    fed.send(S2C, fed.conv.f.headers(S2C, 1, [(":status", "200")]))
    fed.send(C2S, fed.conv.f.headers(C2S, 3, [(":method", "CONNECT"),
                                              (":authority", "db:5432")]))
    fed.send(S2C, fed.conv.f.headers(S2C, 3, [(":status", "200")]))
    fed.request(5, "/api")
    fed.send(S2C, fed.conv.f.data(5, b"ok", flags=["END_STREAM"]), dt=0.2)
    fed.send(C2S, fed.conv.f.data(1, b"", flags=["END_STREAM"]), dt=25.0)
    fed.send(S2C, fed.conv.f.data(1, b"", flags=["END_STREAM"]))
    summary.handle(Batch(conn_id=2, t=fed.conv.t, events=(RelayStarted(
        conn_id=2, t=fed.conv.t, protocol="websocket", target="localhost:80"),)))
    lines = summary.lines()
    slowest = lines[lines.index("slowest streams:") + 1:][0]
    assert "stream 5" in slowest and "GET example.com/api" in slowest
    assert all("CONNECT" not in line for line in lines if line.startswith("  ") and "ms" in line)
    assert "tunnels: 2 (websocket 1), longest 25.2 s #1 stream 1  " \
        "CONNECT localhost:62001/chat" in lines
    assert "websockets: 1 over HTTP/2 (RFC 8441), 1 over HTTP/1.1" in lines
    doc = summary.as_dict()
    assert [s["stream"] for s in doc["slowest_streams"]] == [5]
    assert doc["tunnels"]["count"] == 2 and doc["tunnels"]["websocket"] == 1
    assert doc["tunnels"]["longest"]["stream"] == 1
    assert doc["websockets"] == {"http2": 1, "http1": 1}


def test_a_refused_websocket_and_a_tunnel_open_at_the_close_are_counted_right() -> None:
    summary = RunSummary()
    fed = Fed(summary)
    fed.send(S2C, fed.conv.f.settings(enable_connect_protocol=1))
    fed.send(C2S, fed.conv.f.headers(C2S, 1, WS_CONNECT))
    fed.send(S2C, fed.conv.f.headers(S2C, 1, [(":status", "403")], flags=END))
    fed.send(C2S, fed.conv.f.headers(C2S, 3, WS_CONNECT))
    fed.send(S2C, fed.conv.f.headers(S2C, 3, [(":status", "200")]))
    summary.connection_closed(1, fed.conv.t + 9.0)
    lines = summary.lines()
    assert not any("slowest" in line for line in lines)
    tunnels = next(line for line in lines if line.startswith("tunnels:"))
    # (stream 1's client never ended its side: open until the close, as stream 3)
    assert tunnels == "tunnels: 2 (websocket 1), longest 9003.0 ms #1 stream 1  " \
        "CONNECT localhost:62001/chat"
    assert "websockets: 1 over HTTP/2 (RFC 8441)" in lines
