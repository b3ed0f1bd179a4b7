"""``h2scope diff`` says what changed inside bodies: request bodies with --requests,
a text body (JSON, a form) as a short diff of its lines after its content-encoding is
undone, a gRPC body message by message (raw protobuf, or named by --protoset), a
binary one as its size and SHA-256. Real peers: python-h2 and grpcio clients through
the proxy to an h2 origin and a grpcio server."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import h2.connection
import pytest

from proxy.cli import main
from tests.helpers import procs
from tests.helpers.proxy_thread import ProxyThread
from tests.integration.replay_peers import Fields, Origin, fetch, record_through_proxy, request


def _api(reply: dict[str, object]) -> Callable[..., None]:
    def route(conn: h2.connection.H2Connection, sid: int, _req: Fields, _body: bytes) -> None:
        body = gzip.compress(json.dumps(reply).encode(), mtime=0)
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json"),
                                ("content-encoding", "gzip")])
        conn.send_data(sid, body, end_stream=True)
    return route


def _binary(payload: bytes) -> Callable[..., None]:
    def route(conn: h2.connection.H2Connection, sid: int, _req: Fields, _body: bytes) -> None:
        conn.send_headers(sid, [(":status", "200"), ("content-type", "image/png")])
        conn.send_data(sid, payload, end_stream=True)
    return route


def _record_http(make_proxy: Callable[..., ProxyThread], path: Path, *, greeting: str,
                 n: int, msg: str, form: str, png: bytes) -> Path:
    routes = {"/api": _api({"greeting": greeting, "n": n, "list": [1, 2, 3]}),
              "/form": _api({"ok": True}), "/logo.png": _binary(png)}
    json_type = ("content-type", "application/json")
    form_type = ("content-type", "application/x-www-form-urlencoded")
    requests = [
        (request("POST", "/api", json_type), json.dumps({"msg": msg, "id": 7}).encode()),
        (request("POST", "/form", form_type), form.encode()),
        (request("GET", "/logo.png"), b""),
    ]
    with Origin(routes) as origin:
        return record_through_proxy(make_proxy, origin.port, path,
                                    lambda port: fetch(port, requests))


def test_diff_shows_changed_text_bodies_as_lines_and_binary_ones_by_size(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a = _record_http(make_proxy, tmp_path / "a.h2scope", greeting="hello", n=1,
                     msg="hello world", form="user=ann&lang=en&page=1", png=b"\x89PNG" * 5)
    b = _record_http(make_proxy, tmp_path / "b.h2scope", greeting="hello", n=2,
                     msg="hello world2", form="user=ann&lang=fr&page=1",
                     png=b"\x89PNG" * 5 + b"!")
    assert main(["diff", str(a), str(b), "--requests"]) == 3
    out = capsys.readouterr().out
    # The JSON request body, field by field (compact JSON re-indented).
    assert 'request body: 31 bytes, sha256 ' in out
    assert '\n               -  "msg": "hello world",\n               +  "msg": "hello world2",\n' \
        in out
    # The gzip response, decoded first: the changed field, not the compressed bytes.
    assert '\n               -  "n": 1,\n               +  "n": 2,\n' in out
    assert "\n               @@ -2,3 +2,3 @@\n" in out  # (one line of context each side)
    # A form, one field a line.
    assert "\n               -lang=en\n               +lang=fr\n" in out
    # A binary body stays its size and SHA-256.
    assert "body: 20 bytes, sha256 " in out and " → 21 bytes, sha256 " in out
    png_part = out.split("/logo.png")[1]
    assert "PNG" not in png_part
    # Without --requests the request bodies are not compared.
    assert main(["diff", str(a), str(b)]) == 3
    out = capsys.readouterr().out
    assert "request body" not in out and '+  "n": 2,' in out
    # The same bodies agree, request bodies included.
    assert main(["diff", str(a), str(a), "--requests"]) == 0


def test_a_long_text_diff_is_cut_after_20_lines(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    def page(text: str) -> Callable[..., None]:
        def route(conn: h2.connection.H2Connection, sid: int, _r: Fields, _b: bytes) -> None:
            conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            conn.send_data(sid, text.encode(), end_stream=True)
        return route

    paths = []
    for name, word in (("a", "old"), ("b", "new")):
        body = "".join(f"line {i} {word}\n" for i in range(40))
        with Origin({"/t": page(body)}) as origin:
            paths.append(record_through_proxy(
                make_proxy, origin.port, tmp_path / f"{name}.h2scope",
                lambda port: fetch(port, [(request("GET", "/t"), b"")])))
    assert main(["diff", *map(str, paths)]) == 3
    out = capsys.readouterr().out
    lines = out.split("body: ")[1].splitlines()[1:]
    assert lines[0] == "               @@ -1,40 +1,40 @@"
    assert lines[1:3] == ["               -line 0 old", "               -line 1 old"]
    assert lines[20] == "               … 61 more lines"


SERVICE = "h2scope.test.Echo"
PROTO = """syntax = "proto3";
package h2scope.test;
message Text { string text = 1; }
service Echo { rpc Say (Text) returns (Text); }
"""


def _text(s: str) -> bytes:
    data = s.encode()
    return b"\x0a" + bytes([len(data)]) + data


def _record_grpc(make_proxy: Callable[..., ProxyThread], path: Path, said: str,
                 suffix: str) -> Path:
    def say(message: bytes, _context: grpc.ServicerContext) -> bytes:
        return _text(message[2:].decode() + suffix)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Say": grpc.unary_unary_rpc_method_handler(say)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def client(proxy_port: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{proxy_port}") as channel:
            assert channel.unary_unary(f"/{SERVICE}/Say")(_text(said), timeout=10) == \
                _text(said + suffix)

    try:
        return record_through_proxy(make_proxy, port, path, client)
    finally:
        server.stop(grace=None).wait(5)


def test_diff_compares_grpc_messages_raw_and_by_protoset(
        make_proxy: Callable[..., ProxyThread], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a = _record_grpc(make_proxy, tmp_path / "a.h2scope", "hello world", "!")
    b = _record_grpc(make_proxy, tmp_path / "b.h2scope", "hello world2", "?")
    assert main(["diff", str(a), str(b), "--requests"]) == 3
    out = capsys.readouterr().out
    assert 'request message 1: 1: "hello world" → "hello world2"' in out
    assert 'response message 1: 1: "hello world!" → "hello world2?"' in out
    assert "body: " not in out  # (the messages say it)

    (tmp_path / "echo.proto").write_text(PROTO)
    protoset = tmp_path / "echo.pb"
    made = procs.run([procs.require("protoc"), f"--proto_path={tmp_path}",
                      f"--descriptor_set_out={protoset}", str(tmp_path / "echo.proto")])
    assert made.returncode == 0, made.stderr
    assert main(["diff", str(a), str(b), "--requests", "--protoset", str(protoset)]) == 3
    out = capsys.readouterr().out
    assert 'request message 1: text: "hello world" → "hello world2"' in out
    assert 'response message 1: text: "hello world!" → "hello world2?"' in out
