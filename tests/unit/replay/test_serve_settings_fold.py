"""The mock's SETTINGS: the recorded server's values in force, and extended CONNECT
allowed whenever the recording holds a WebSocket over HTTP/2."""

from __future__ import annotations

from types import SimpleNamespace

from proxy.replay.mock_server import served_settings


def _book(first: list[tuple[int, int]], later: list[tuple[int, int]],
          method: str = "GET", protocol: str = "", status: str = "200") -> SimpleNamespace:
    return SimpleNamespace(responses=[SimpleNamespace(
        server_settings=tuple(first), later_settings=tuple(later), method=method,
        protocol=protocol, status=status)])


def test_later_frames_before_the_first_response_are_folded_in_and_said() -> None:
    pairs, notes = served_settings(_book([(3, 100), (8, 0)], [(8, 1), (4, 1 << 20), (3, 100)]))  # type: ignore[arg-type]
    assert pairs == [(3, 100), (8, 1), (4, 1 << 20)]
    assert notes == ["ENABLE_CONNECT_PROTOCOL=1 from a later SETTINGS frame",
                     "INITIAL_WINDOW_SIZE=1048576 from a later SETTINGS frame"]


def test_a_websocket_answered_2xx_forces_enable_connect_protocol() -> None:
    pairs, notes = served_settings(_book([(3, 100), (8, 0)], [], "CONNECT", "websocket"))  # type: ignore[arg-type]
    assert pairs == [(3, 100), (8, 1)]
    assert len(notes) == 1 and notes[0].startswith("ENABLE_CONNECT_PROTOCOL=1 (the recording "
                                                   "holds a WebSocket over HTTP/2")
    # (refused in the recording, or a plain CONNECT tunnel: nothing to force)
    assert served_settings(_book([(8, 0)], [], "CONNECT", "websocket", "403"))[0] == [(8, 0)]  # type: ignore[arg-type]
    assert served_settings(_book([(8, 0)], [], "CONNECT"))[0] == [(8, 0)]  # type: ignore[arg-type]
    # (no SETTINGS recorded: h2's defaults, and the note)
    none = _book([], [], "CONNECT", "websocket")
    none.responses[0].server_settings = None
    assert served_settings(none)[0] is None and served_settings(none)[1]  # type: ignore[arg-type]
