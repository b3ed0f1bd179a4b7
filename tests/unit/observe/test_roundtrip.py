"""Traffic made by h2's own client and server decodes to exactly what made it.

Hypothesis drives a real ``h2`` client and server through random operations
(requests, responses, DATA, trailers, pushes, settings changes, window
updates, priority, pings, resets). Every byte they exchange goes through one
ConnectionObserver, and the observer's view must match theirs: the headers
each side sent, the DATA each stream carried, and the flow-control windows h2
itself tracks.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from proxy.observe.frames import DataFrame

C2S, S2C = Direction.C2S, Direction.S2C

names = st.sampled_from(["x-a", "x-b", "accept", "user-agent", "x-trace-id"])
values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./=;", min_size=0, max_size=30)
extra_headers = st.lists(st.tuples(names, values), max_size=6)

op = st.one_of(
    st.tuples(st.just("request"), extra_headers, st.booleans()),
    st.tuples(st.just("respond"), extra_headers, st.integers(0, 40_000), st.booleans()),
    st.tuples(st.just("client_data"), st.integers(1, 5000)),
    st.tuples(st.just("window"), st.integers(1, 100_000), st.booleans()),
    st.tuples(st.just("settings"), st.integers(0, 200_000)),
    st.tuples(st.just("ping"), st.binary(min_size=8, max_size=8)),
    st.tuples(st.just("push"), values),
    st.tuples(st.just("priority"), st.integers(1, 256), st.booleans()),
    st.tuples(st.just("reset"), st.booleans()),
)


class Harness:
    def __init__(self, table_size: int = 4096) -> None:
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.server = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        self.obs = ConnectionObserver()
        self.sent_headers: list[tuple[Direction, int, tuple[tuple[str, str], ...]]] = []
        self.sent_data: dict[tuple[Direction, int], int] = {}
        self.observed_headers: list[tuple[Direction, int, tuple[tuple[str, str], ...]]] = []
        self.observed_data: dict[tuple[Direction, int], int] = {}
        self.findings: list[str] = []
        self.t = 0.0
        self.client.initiate_connection()
        self.server.initiate_connection()
        if table_size != 4096:
            # One HPACK table size change per connection: h2's own encoder and
            # decoder disagree after several (not what is under test here).
            self.client.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: table_size})
        self.pump()

    def pump(self) -> None:
        for _ in range(20):
            moved = False
            for direction, src, dst in ((C2S, self.client, self.server),
                                        (S2C, self.server, self.client)):
                data = src.data_to_send()
                if not data:
                    continue
                moved = True
                self.t += 0.001
                for ev in self.obs.feed(direction, data, self.t):
                    if isinstance(ev, FrameObserved):
                        self.findings += [f"{x.code}: {x.message}" for x in ev.findings
                                          if x.severity.name == "ERROR"]
                        if ev.block is not None:
                            sid = ev.block_stream_id or ev.frame.stream_id
                            self.observed_headers.append((direction, sid, ev.block.headers))
                        if isinstance(ev.frame, DataFrame):
                            key = (direction, ev.frame.stream_id)
                            self.observed_data[key] = self.observed_data.get(key, 0) + \
                                ev.frame.data_length
                dst.receive_data(data)
            if not moved:
                return

    def open_streams(self, conn: h2.connection.H2Connection, *, sending: bool) -> list[int]:
        out = []
        for sid, stream in conn.streams.items():
            state = stream.state_machine.state.name
            if sending and state in ("OPEN", "HALF_CLOSED_REMOTE"):
                out.append(sid)
        return sorted(out)

    def apply(self, step: tuple) -> None:
        kind = step[0]
        c, s = self.client, self.server
        try:
            if kind == "request":
                sid = c.get_next_available_stream_id()
                headers = [(":method", "POST" if not step[2] else "GET"), (":scheme", "https"),
                           (":authority", "example.com"), (":path", f"/r/{sid}"), *step[1]]
                c.send_headers(sid, headers, end_stream=step[2])
                self.sent_headers.append((C2S, sid, tuple(headers)))
            elif kind == "respond":
                streams = [x for x in self.open_streams(s, sending=True)
                           if x not in self.responded]
                if not streams:
                    return
                sid = streams[0]
                headers = [(":status", "200"), *step[1]]
                s.send_headers(sid, headers)
                self.responded.add(sid)
                self.sent_headers.append((S2C, sid, tuple(headers)))
                remaining = step[2]
                while remaining:
                    n = min(remaining, s.local_flow_control_window(sid), s.max_outbound_frame_size)
                    if n <= 0:
                        break
                    s.send_data(sid, b"d" * n)
                    self.sent_data[(S2C, sid)] = self.sent_data.get((S2C, sid), 0) + n
                    remaining -= n
                if step[3]:
                    trailers = [("x-trailer", "done")]
                    s.send_headers(sid, trailers, end_stream=True)
                    self.sent_headers.append((S2C, sid, tuple(trailers)))
            elif kind == "client_data":
                for sid in self.open_streams(c, sending=True):
                    n = min(step[1], c.local_flow_control_window(sid), c.max_outbound_frame_size)
                    if n > 0:
                        c.send_data(sid, b"u" * n)
                        self.sent_data[(C2S, sid)] = self.sent_data.get((C2S, sid), 0) + n
                    break
            elif kind == "window":
                conn = c if step[2] else s
                conn.increment_flow_control_window(step[1])
            elif kind == "settings":
                c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: step[1]})
            elif kind == "ping":
                c.ping(step[1])
            elif kind == "push":
                streams = [x for x in self.open_streams(s, sending=True) if x % 2]
                if not streams or not c.local_settings.enable_push:
                    return
                promised = s.get_next_available_stream_id()
                req = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"),
                       (":path", f"/pushed/{step[1]}")]
                s.push_stream(streams[0], promised, req)
                self.sent_headers.append((S2C, promised, tuple(req)))
            elif kind == "priority":
                streams = self.open_streams(c, sending=True)
                if streams:
                    c.prioritize(streams[-1], weight=step[1], exclusive=step[2])
            elif kind == "reset":
                conn = c if step[1] else s
                streams = self.open_streams(conn, sending=True)
                if streams:
                    conn.reset_stream(streams[0])
        except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError,
                h2.exceptions.StreamClosedError):
            return  # an operation h2 refuses in this state: nothing went on the wire
        self.pump()

    responded: set[int]


@settings(max_examples=120, deadline=None)
@given(st.lists(op, min_size=1, max_size=25), st.sampled_from([0, 256, 4096]))
def test_observer_agrees_with_h2(steps, table_size):
    h = Harness(table_size)
    h.responded = set()
    for step in steps:
        h.apply(step)
    assert h.findings == []
    # Every header list each side sent was observed, in order, on its stream.
    for direction in (C2S, S2C):
        sent = [(sid, hdrs) for d, sid, hdrs in h.sent_headers if d is direction]
        seen = [(sid, hdrs) for d, sid, hdrs in h.observed_headers if d is direction]
        assert seen == sent
    assert {k: v for k, v in h.observed_data.items() if v} == \
        {k: v for k, v in h.sent_data.items() if v}
    # The windows the model computes are the ones h2 tracks (for streams both still know).
    assert h.obs.sides[S2C].conn_window == h.server.outbound_flow_control_window
    assert h.obs.sides[C2S].conn_window == h.client.outbound_flow_control_window
    for sid, stream in h.obs.streams.items():
        for conn, direction in ((h.server, S2C), (h.client, C2S)):
            mine = conn.streams.get(sid)
            if mine is not None and not mine.closed:
                assert stream.send_window[direction] == mine.outbound_flow_control_window
