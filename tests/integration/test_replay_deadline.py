"""A gRPC call the client cancelled at its deadline (grpcio's client through the
proxy to an origin that never answered it): replayed against a server that answers
it and resets the stream itself before it reads the replayed CANCEL — what a gRPC
server whose own deadline fired first does —, the server's reset is timing, not a
difference, and the note before the comparison says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import h2.connection
import pytest
from hyperframe.frame import RstStreamFrame

from proxy.cli import main
from tests.helpers.proxy_thread import ProxyThread
from tests.integration.replay_peers import ERRORS, Fields, Origin, record_through_proxy

SLOW = "/h2scope.test.Echo/Slow"


def _silent(_conn: h2.connection.H2Connection, _sid: int, _req: Fields, _body: bytes) -> None:
    """Never answers: the client's deadline ends the call."""


def _deadline_first(conn: h2.connection.H2Connection, sid: int, _req: Fields,
                    _body: bytes) -> None:
    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                            ("grpc-status", "4"), ("grpc-message", "Deadline Exceeded")],
                      end_stream=True)
    # (h2 resets only open streams; grpc-core follows its trailers with this reset)
    conn._data_to_send += RstStreamFrame(sid, error_code=ERRORS.NO_ERROR).serialize()


def _call_with_deadline(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary(SLOW)(b"\x0a\x02hi", timeout=0.3)
        assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]


def test_a_server_reset_after_the_clients_deadline_cancel_is_not_compared(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with Origin({SLOW: _silent}) as recorded:
        capture = record_through_proxy(make_proxy, recorded.port, tmp_path / "d.h2scope",
                                       _call_with_deadline)
    with Origin({SLOW: _deadline_first}) as faster:
        code = main(["replay", str(capture), "--target", f"http://127.0.0.1:{faster.port}",
                     "--speed", "1", "--timeout", "5"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out
    assert "whether the server resets it too, is timing, so its body and a server reset " \
        "are not compared" in out
    assert f"same     stream 1 (POST {SLOW}): no response, 0 bytes before the client's " \
        "reset (not compared)" in out
    assert "server reset:" not in out and "DIFFERS" not in out
    assert "1 stream compared: it matches" in out
