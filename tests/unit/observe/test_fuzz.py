"""Hostile bytes never make the observer raise (architecture principle 4)."""

from __future__ import annotations

import random

import h2.config
import h2.connection
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import Desynced, FrameObserved

C2S, S2C = Direction.C2S, Direction.S2C


def _real_exchange() -> list[tuple[Direction, bytes]]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    out: list[tuple[Direction, bytes]] = []

    def pump() -> None:
        for _ in range(5):
            a = client.data_to_send()
            if a:
                out.append((C2S, a))
                server.receive_data(a)
            b = server.data_to_send()
            if b:
                out.append((S2C, b))
                client.receive_data(b)

    pump()
    for i in range(4):
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                  (":authority", "a.example"), (":path", f"/{i}")],
                            end_stream=True)
        pump()
        server.send_headers(sid, [(":status", "200"), ("x-n", str(i))])
        server.send_data(sid, b"z" * (100 * i), end_stream=True)
        client.ping(b"%08d" % i)
        pump()
    return out


EXCHANGE = _real_exchange()


def _run(chunks: list[tuple[Direction, bytes]]) -> int:
    obs = ConnectionObserver()
    n = 0
    for direction, data in chunks:
        n += len(obs.feed(direction, data, 0.0))
    n += len(obs.close(1.0))
    return n


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([C2S, S2C]), st.binary(max_size=200)), max_size=20))
def test_random_bytes_never_raise(chunks):
    _run(chunks)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([C2S, S2C]), st.binary(max_size=120)), max_size=12))
def test_random_frames_after_a_valid_preface_never_raise(chunks):
    _run([(C2S, CONNECTION_PREFACE), *chunks])


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 12))
def test_mutated_real_traffic_never_raises(rng: random.Random, mutations: int):
    chunks = [(d, bytearray(b)) for d, b in EXCHANGE]
    for _ in range(mutations):
        _d, buf = rng.choice(chunks)
        if not buf:
            continue
        pos = rng.randrange(len(buf))
        action = rng.randrange(3)
        if action == 0:
            buf[pos] = rng.randrange(256)
        elif action == 1:
            del buf[pos : pos + rng.randint(1, 8)]
        else:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    _run([(d, bytes(b)) for d, b in chunks])


def test_garbage_reports_a_finding_and_desyncs():
    obs = ConnectionObserver()
    obs.feed(C2S, CONNECTION_PREFACE, 0.0)
    events = obs.feed(C2S, b"\xff" * 64, 0.0)
    assert any(isinstance(e, Desynced) for e in events) or any(
        isinstance(e, FrameObserved) and e.findings for e in events)
