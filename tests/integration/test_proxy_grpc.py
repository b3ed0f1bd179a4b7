"""gRPC through the proxy with gRPC's own HTTP/2 implementation on both ends
(grpcio, C-core): unary and server-streaming calls, trailers, an error status,
over h2c and TLS. The calls succeed, every frame is observed without a false
alarm, the recorded capture shows the messages decoded as protobuf, and
``h2scope replay`` of it against the same server matches every call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from proxy.capture.recorder import CaptureRecorder
from proxy.capture.writer import CaptureWriter
from proxy.cli import main
from proxy.observe.enums import Direction
from proxy.observe.events import FrameObserved
from proxy.protoset import Protoset
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread
from tests.helpers.tls_files import CertFiles
from tests.integration.conftest import Served
from ui.model import body
from ui.model.body import reassemble, render_body
from ui.model.capture import CaptureFile, load
from ui.model.session import Session
from ui.screens.stream import stream_text

SERVICE = "h2scope.test.Echo"
HELLO, WORLD = b"\x0a\x05hello", b"\x0a\x05world"  # field 1: "hello" / "world"


PROTO = """syntax = "proto3";
package h2scope.test;
message Text { string text = 1; }
message Empty {}
message Number { int32 n = 1; }
service Echo {
  rpc Say (Text) returns (Text);
  rpc Count (Empty) returns (stream Number);
  rpc Missing (Empty) returns (Empty);
}
"""


def protoset(directory: Path) -> Path:
    """The test service's FileDescriptorSet, compiled by protoc."""
    (directory / "echo.proto").write_text(PROTO)
    out = directory / "echo.pb"
    result = procs.run([procs.require("protoc"), f"--proto_path={directory}",
                        f"--descriptor_set_out={out}", "--include_imports",
                        str(directory / "echo.proto")])
    assert result.returncode == 0, result.stderr
    return out


TRACE = b"\xde\xad\x00\xbe\xef"  # binary metadata: true binary between grpc-core peers


def _say(request: bytes, context: grpc.ServicerContext) -> bytes:
    assert request == HELLO
    if dict(context.invocation_metadata()).get("x-trace-bin") != TRACE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "x-trace-bin lost")
    context.set_trailing_metadata((("x-served-by", "grpcio"),))
    return WORLD


def _count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(1, 4):
        yield bytes([0x08, i])  # field 1: i


def _big(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request[::-1]


def _missing(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("abort raises")


@pytest.fixture
def grpc_server(origin_cert: CertFiles,
                request: pytest.FixtureRequest) -> Iterator[tuple[int, bool]]:
    tls = bool(request.param)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Say": grpc.unary_unary_rpc_method_handler(_say),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
        "Missing": grpc.unary_unary_rpc_method_handler(_missing),
        "Big": grpc.unary_unary_rpc_method_handler(_big),
    }),))
    if tls:
        creds = grpc.ssl_server_credentials(
            [(origin_cert.key.read_bytes(), origin_cert.cert.read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, tls
    finally:
        server.stop(grace=None).wait(5)


@pytest.mark.parametrize("grpc_server", [False, True], ids=["h2c", "tls"], indirect=True)
def test_grpc_calls_through_the_proxy_are_observed_decoded_and_replayed(
        make_proxy: Callable[..., ProxyThread], grpc_server: tuple[int, bool],
        tmp_path: Path, origin_cert: CertFiles, capsys: pytest.CaptureFixture[str]) -> None:
    port, tls = grpc_server
    capture = tmp_path / "grpc.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    scheme = "https" if tls else "http"
    proxy = make_proxy(modes=[f"reverse:{scheme}://localhost:{port}"], sinks=(recorder,))
    target = f"127.0.0.1:{proxy.port('reverse')}"
    if tls:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(
            root_certificates=proxy.ca_cert.read_bytes()),
            options=[("grpc.ssl_target_name_override", "localhost")])
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        response, call = channel.unary_unary(f"/{SERVICE}/Say").with_call(
            HELLO, timeout=10, metadata=(("x-trace-bin", TRACE),))
        assert response == WORLD
        assert ("x-served-by", "grpcio") in tuple(call.trailing_metadata() or ())
        assert list(channel.unary_stream(f"/{SERVICE}/Count")(b"", timeout=10)) == [
            b"\x08\x01", b"\x08\x02", b"\x08\x03"]
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary(f"/{SERVICE}/Missing")(b"", timeout=10)
        assert failed.value.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    proxy.wait_closed()
    proxy.close()
    recorder.close()

    frames: list[Any] = proxy.events(FrameObserved)
    blocks = [dict(e.block.headers) for e in frames if e.block is not None]
    assert sum(1 for b in blocks if b.get("content-type") == "application/grpc") >= 6
    assert sorted(b["grpc-status"] for b in blocks if "grpc-status" in b) == ["0", "0", "5"]
    # gRPC C-core on both ends: a conforming exchange raises nothing above INFO.
    assert [str(f) for e in frames for f in e.findings if f.severity.name != "INFO"] == []

    source = CaptureFile(capture)
    session = Session(source)
    load(session, source)
    try:
        conn = next(c for c in session.conns.values() if c.streams)
        say = next(s for s in conn.streams.values()
                   if dict(s.request_headers or ()).get(":path") == f"/{SERVICE}/Say")
        shown = render_body(reassemble(session, say, int(Direction.S2C)).raw, "application/grpc",
                            None)
        assert '  1: "world"' in shown
        # With the service's protoset (protoc compiles it), the stream view names
        # the fields, request and response alike.
        body.SCHEMA = Protoset.load([protoset(tmp_path)])
        say_text = stream_text(session, conn, say).plain
        count = next(s for s in conn.streams.values()
                     if dict(s.request_headers or ()).get(":path") == f"/{SERVICE}/Count")
        count_text = stream_text(session, conn, count).plain
    finally:
        body.SCHEMA = None
        source.close()
    assert '; h2scope.test.Text (from the protoset)' in say_text
    assert 'text: "hello"' in say_text and 'text: "world"' in say_text  # request, response
    assert [ln.strip() for ln in count_text.splitlines() if ln.strip().startswith("n: ")] == [
        "n: 1", "n: 2", "n: 3"]

    # The recording replayed against the same server, both ways and at both paces
    # (at the recorded pace the server's last write races the replay's TLS close):
    # every call matches.
    for mode, speed in (("verbatim", "0"), ("reencode", "0"), ("verbatim", "1"),
                        ("reencode", "1")):
        code = main(["replay", str(capture), "--target", f"{scheme}://localhost:{port}",
                     "--upstream-ca", str(origin_cert.cert), "--speed", speed, "--mode", mode,
                     "--timeout", "5"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "3 streams compared: all match" in out
        # (nor an "error:" for how the server's TLS ended after every stream had,
        # nor raw binary metadata sent by reencode before the server allowed it)
        assert "error:" not in out and "ping-ack-unmatched" not in out, out
        assert "header-value-invalid" not in out, out


@pytest.mark.parametrize("grpc_server", [False], ids=["h2c"], indirect=True)
def test_a_verbatim_replay_answers_the_live_servers_settings_and_pings(
        make_proxy: Callable[..., ProxyThread], grpc_server: tuple[int, bool],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A large call makes grpc-core's server send a second SETTINGS (its BDP probe
    raises the windows) and PINGs, which the recorded client acknowledged. Replayed,
    those ACKs answer nothing the new server sent: the recorded SETTINGS ACK must
    not hold back the frames after it (the WINDOW_UPDATEs the server waits for) nor
    be sent unasked (the server fails the call: "unexpected settings ack"), and the
    live server's PINGs get ACKs echoing their own data, the recorded ones none."""
    port, _ = grpc_server
    capture = tmp_path / "big.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"], sinks=(recorder,))
    payload = bytes(range(256)) * (3 << 12)  # 3 MiB, under grpc's 4 MiB message limit
    with grpc.insecure_channel(f"127.0.0.1:{proxy.port('reverse')}") as channel:
        assert channel.unary_unary(f"/{SERVICE}/Big")(payload, timeout=20) == payload[::-1]
    proxy.wait_closed()
    proxy.close()
    recorder.close()

    for speed in ("1", "0"):
        code = main(["replay", str(capture), "--target", f"http://127.0.0.1:{port}",
                     "--speed", speed, "--timeout", "5"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "1 stream compared: it matches" in out or "all match" in out, out
        for alarm in ("settings-ack-unexpected", "ping-ack-unmatched", "stopped waiting",
                      "error:"):
            assert alarm not in out, out


@pytest.mark.parametrize("grpc_server", [False], ids=["h2c"], indirect=True)
def test_serve_answers_a_grpc_client_in_grpc(
        make_proxy: Callable[..., ProxyThread], grpc_server: tuple[int, bool],
        tmp_path: Path, serve: Served) -> None:
    """``serve`` of a recorded call: grpcio gets the recorded answer; for a method
    not recorded it gets UNIMPLEMENTED with the reason and the recorded methods in
    grpc-message (an HTTP 404's text never reaches a gRPC client)."""
    port, _ = grpc_server
    capture = tmp_path / "say.h2scope"
    recorder = CaptureRecorder(CaptureWriter(capture))
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"], sinks=(recorder,))
    with grpc.insecure_channel(f"127.0.0.1:{proxy.port('reverse')}") as channel:
        assert channel.unary_unary(f"/{SERVICE}/Say")(
            HELLO, timeout=10, metadata=(("x-trace-bin", TRACE),)) == WORLD
    proxy.wait_closed()
    proxy.close()
    recorder.close()

    url = serve(str(capture), "--h2c")
    with grpc.insecure_channel(url.split("://", 1)[1]) as channel:
        assert channel.unary_unary(f"/{SERVICE}/Say")(HELLO, timeout=10) == WORLD
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary(f"/{SERVICE}/Sya")(HELLO, timeout=10)
    error = failed.value
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    assert f"no recorded response for POST /{SERVICE}/Sya" in details, details
    assert f"closest recorded: /{SERVICE}/Say" in details, details
    assert any("grpc-status 12 UNIMPLEMENTED" in ln for ln in serve.wait_log(url, "grpc-status"))


def failed_call(proxy: ProxyThread, method: str) -> Any:
    """A unary call of ``method`` through the proxy's reverse listener that fails: its
    grpc.RpcError."""
    with grpc.insecure_channel(f"127.0.0.1:{proxy.port('reverse')}") as channel, \
            pytest.raises(grpc.RpcError) as failed:
        channel.unary_unary(f"/{SERVICE}/{method}")(HELLO, timeout=10)
    return failed.value


def test_a_grpc_response_without_trailers_is_flagged(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """grpcio's client against an origin that ends the response with its DATA (as a
    proxy that drops trailers would make it): the call fails, and h2scope says why."""
    from tests.helpers.h2server import ServerThread

    origin = ServerThread()  # h2c
    try:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{origin.port}"])
        error = failed_call(proxy, "NoTrailers")
        assert error.code() is grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
        assert "Data frame with END_STREAM" in error.details()  # type: ignore[attr-defined]
        flagged = proxy.wait_for(lambda: [f for e in proxy.events(FrameObserved)
                                          for f in e.findings if f.code == "grpc-status-missing"],
                                 what="a grpc-status-missing finding")
    finally:
        origin.close()
    assert flagged[0].stream_id == 1 and "ended with DATA and no trailers" in flagged[0].message


def test_a_grpc_client_hears_why_the_server_cannot_be_reached(
        make_proxy: Callable[..., ProxyThread]) -> None:
    """An unreachable upstream reached grpcio as "Received http2 header with status:
    502": h2scope's reason was in a text body gRPC drops. A Trailers-Only UNAVAILABLE
    carries it in grpc-message, into the client's own error."""
    import socket

    with socket.socket() as spare:  # (a port nothing listens on)
        spare.bind(("127.0.0.1", 0))
        dead = spare.getsockname()[1]
    proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{dead}"])
    error = failed_call(proxy, "Say")
    assert error.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert f"h2scope: cannot connect to 127.0.0.1:{dead}: connection refused" in \
        error.details(), error.details()  # type: ignore[attr-defined]


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_protoset_fetches_the_schema_by_server_reflection(
        tls: bool, tmp_path: Path, origin_cert: CertFiles,
        capsys: pytest.CaptureFixture[str]) -> None:
    """grpcio's reflection service (grpc_reflection) answers ``h2scope protoset``; the
    file it writes is the schema protoc compiled, methods and messages alike."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from grpc_reflection.v1alpha import reflection

    compiled = protoset(tmp_path)
    pool = descriptor_pool.DescriptorPool()
    for proto in descriptor_pb2.FileDescriptorSet.FromString(compiled.read_bytes()).file:
        pool.Add(proto)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Say": grpc.unary_unary_rpc_method_handler(_say)}),))
    reflection.enable_server_reflection([SERVICE, reflection.SERVICE_NAME], server, pool=pool)
    if tls:
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
            [(origin_cert.key.read_bytes(), origin_cert.cert.read_bytes())]))
        url, extra = f"https://localhost:{port}", ["--upstream-ca", str(origin_cert.cert)]
    else:
        port = server.add_insecure_port("127.0.0.1:0")
        url, extra = f"http://127.0.0.1:{port}", []
    server.start()
    out = tmp_path / "fetched.pb"
    try:
        assert main(["protoset", url, "-o", str(out), *extra]) == 0
        if tls:  # an unknown CA is refused, and says how to go on
            assert main(["protoset", url, "-o", str(tmp_path / "x.pb")]) == 1
    finally:
        server.stop(grace=None).wait(5)
    said = capsys.readouterr()
    assert f"/{SERVICE}/Say  (h2scope.test.Text) → (h2scope.test.Text)" in said.out
    if tls:
        assert "--insecure skips verification; --upstream-ca FILE adds a CA" in said.err
    fetched, expected = Protoset.load([out]), Protoset.load([compiled])
    assert fetched.methods == expected.methods
    assert {n: m.fields for n, m in fetched.messages.items()} == \
        {n: m.fields for n, m in expected.messages.items()}
    assert out.stat().st_mode & 0o777 == 0o600
    # Nothing listening: exit 1 and why.
    assert main(["protoset", f"http://127.0.0.1:{port}", "-o", str(tmp_path / "y.pb"),
                 "--timeout", "2"]) == 1
    assert "cannot connect to 127.0.0.1" in capsys.readouterr().err


def test_a_protoset_fetch_ends_its_call_cleanly_and_https_to_h2c_says_so(
        tmp_path: Path, make_proxy: Callable[..., ProxyThread],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Through the proxy, the reflection call ends as a client's should: half-closed,
    answered with grpc-status 0 (not UNAVAILABLE 'Socket closed' for a connection
    gone from under it). https:// against this cleartext server says to use http://."""
    from grpc_reflection.v1alpha import reflection

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    reflection.enable_server_reflection([reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        proxy = make_proxy(modes=[f"reverse:http://127.0.0.1:{port}"])
        url = f"http://127.0.0.1:{proxy.port('reverse')}"
        assert main(["protoset", url, "-o", str(tmp_path / "r.pb")]) == 0
        proxy.wait_closed()
        assert main(["protoset", f"https://127.0.0.1:{port}", "-o", str(tmp_path / "s.pb"),
                     "--timeout", "3"]) == 1
    finally:
        server.stop(grace=None).wait(5)
    statuses = [dict(e.block.headers).get("grpc-status") for e in proxy.events(FrameObserved)
                if e.direction is Direction.S2C and e.block is not None]
    assert "0" in statuses and "14" not in statuses, statuses
    assert f"the server does not speak TLS there; for cleartext HTTP/2 (h2c) give " \
        f"http://127.0.0.1:{port}" in capsys.readouterr().err


def test_protoset_from_an_http2_server_that_is_not_grpc_says_what_it_answered(
        docroot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """nghttpd answers only once the request has ended: the fetch waited out its
    timeout and said 'no answer in time'. It now asks again with the stream
    half-closed and reports what the server is."""
    with procs.nghttpd(docroot) as port:
        assert main(["protoset", f"http://127.0.0.1:{port}", "-o", "/dev/null",
                     "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "the server answered 404 text/html" in err and "not gRPC" in err, err
    assert "not a gRPC server, or one without server reflection" in err
