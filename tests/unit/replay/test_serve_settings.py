"""The mock server sends the recorded server's first SETTINGS as they were."""

from __future__ import annotations

import struct
from types import SimpleNamespace

from proxy.replay.mock_server import _h2_settings, recorded_settings_frame


def _values(frame: bytes) -> list[tuple[int, int]]:
    return [struct.unpack_from(">HL", frame, i) for i in range(9, len(frame), 6)]


def test_a_recorded_enable_push_0_is_sent_and_a_1_is_not() -> None:
    """ENABLE_PUSH=0 from a server is legal and what the recording has (serve dropped
    it); 1 a server must not send (RFC 9113 §6.5.2), whatever a capture holds."""
    def book(settings: list[tuple[int, int]]) -> SimpleNamespace:
        return SimpleNamespace(responses=[SimpleNamespace(server_settings=settings,
                                                          later_settings=(), method="GET")])

    frame = recorded_settings_frame(book([(1, 4096), (2, 0), (4, 65535)]))  # type: ignore[arg-type]
    assert frame is not None and _values(frame) == [(1, 4096), (2, 0), (4, 65535)]
    assert _h2_settings(frame).enable_push == 0
    frame = recorded_settings_frame(book([(2, 1), (3, 100)]))  # type: ignore[arg-type]
    assert frame is not None and _values(frame) == [(3, 100)]
