"""Protocol bugs in real implementations that h2scope flags — kept as regression tests.

Each test drives real endpoints (python-hyper ``h2``) into the situation and
checks the observer names the broken rule.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.exceptions
import h2.settings

from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved

C2S, S2C = Direction.C2S, Direction.S2C


def test_hpack_encoder_signalling_a_superseded_table_size_is_a_compression_error():
    """Two SETTINGS_HEADER_TABLE_SIZE reductions in a row (4096 → 256 → 128).

    RFC 7541 §4.2 asks the encoder to signal the smallest size of the interval
    and the final one; python-hyper's hpack encoder signals every change in
    order, so its first block opens with an update to 256 — above the 128 the
    client has acknowledged, a decoding error by §6.3. python-hyper's own
    decoder rejects it too ("Encoder exceeded max allowable table size").
    """
    client, events = _table_sizes_then_a_response((256, 128), [(":status", "200")])
    findings = [f for e in events if isinstance(e, FrameObserved) for f in e.findings]
    assert [(f.code, f.rfc) for f in findings] == [("hpack-error", "RFC 7541 §6.3, RFC 9113 §4.3")]
    assert "table size update to 256 exceeds the allowed maximum 128" in findings[0].message
    # And the client endpoint agrees that the block is broken.
    try:
        client.receive_data(_server_bytes_seen(events))
    except h2.exceptions.ProtocolError as exc:
        assert "table size" in str(exc)
    else:  # pragma: no cover - would mean hpack fixed its encoder
        raise AssertionError("python-hyper accepted the block: update this test")


def _table_sizes_then_a_response(sizes: tuple[int, ...], response: list[tuple[str, str]]
                                 ) -> tuple[h2.connection.H2Connection, list]:
    """Real h2 peers: the client changes SETTINGS_HEADER_TABLE_SIZE to each of
    ``sizes`` and sends a GET; the server acknowledges and answers with ``response``.
    Returns the client and the observer's events for the server's bytes."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    for size in sizes:
        client.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: size})
    client.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", "a"),
                            (":path", "/")], end_stream=True)
    server.initiate_connection()
    obs = ConnectionObserver()
    events = obs.feed(C2S, client.data_to_send(), 0.0)
    server.receive_data(_client_bytes_seen(events))
    server.send_headers(1, response, end_stream=True)
    return client, obs.feed(S2C, server.data_to_send(), 0.1)


def _client_bytes_seen(events: list) -> bytes:
    from proxy.observe.enums import CONNECTION_PREFACE

    return CONNECTION_PREFACE + b"".join(e.frame.raw for e in events
                                         if isinstance(e, FrameObserved))


def _server_bytes_seen(events: list) -> bytes:
    return b"".join(e.frame.raw for e in events if isinstance(e, FrameObserved))


def test_hpack_encoder_signalling_every_table_size_change_is_flagged_and_still_decoded():
    """Three SETTINGS_HEADER_TABLE_SIZE changes between two blocks (4096 → 100 →
    200 → 300), each acknowledged.

    RFC 7541 §4.2: the encoder signals the smallest size of the interval (100)
    and the final one (300): two updates. python-hyper's encoder signals all
    three in order. Each is within the acknowledged limit, so the block decodes
    (both endpoints accept it); h2scope warns, names the rule, and the decoded
    headers and the table's maximum are right.
    """
    client, events = _table_sizes_then_a_response((100, 200, 300),
                                                  [(":status", "200"), ("server", "x")])
    frames = [e for e in events if isinstance(e, FrameObserved)]
    findings = [f for e in frames for f in e.findings]
    assert [(f.code, f.rfc) for f in findings] == [("hpack-size-updates", "RFC 7541 §4.2")]
    assert "3 dynamic table size updates" in findings[0].message
    assert "(100 → 200 → 300)" in findings[0].message
    assert "smallest maximum since its last block (100), then the final one (300)" in \
        findings[0].message
    block = next(e.block for e in frames if getattr(e, "block", None) is not None)
    assert block.headers == ((":status", "200"), ("server", "x"))
    assert block.table_max == 300
    client.receive_data(_server_bytes_seen(events))  # the client accepts the block
