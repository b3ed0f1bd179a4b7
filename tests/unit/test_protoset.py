"""Protobuf with a schema from a protoset that protoc compiled: field names, types and
enum names, checked against ``protoc --decode`` on the same bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.protoset import Protoset, ProtosetError
from tests.helpers import procs

PROTO = """syntax = "proto3";
package demo.v1;
enum Kind { KIND_UNSPECIFIED = 0; KIND_GREETING = 1; KIND_NEGATIVE = -2; }
message Inner { int64 id = 1; sint32 delta = 2; sint64 big = 3; }
message HelloRequest {
  string name = 1;
  Kind kind = 2;
  repeated int32 tags = 3;
  Inner inner = 4;
  bool urgent = 5;
  double score = 6;
  bytes blob = 7;
  map<string, int32> counts = 8;
  fixed32 f32 = 9;
  float ratio = 10;
  int32 negative = 11;
  sfixed64 sf64 = 12;
  repeated double doubles = 13;
}
message HelloReply { string message = 1; repeated Inner items = 2; }
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
"""


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def compile_greet(d: Path) -> Path:
    """PROTO in ``d``, compiled by protoc to a FileDescriptorSet; its path."""
    (d / "greet.proto").write_text(PROTO)
    out = d / "greet.pb"
    result = procs.run([procs.require("protoc"), f"--proto_path={d}",
                        f"--descriptor_set_out={out}", "--include_imports", str(d / "greet.proto")])
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("proto")
    return d, compile_greet(d)


# Scalars, an enum, a nested message, a map entry: the forms protoc --decode prints
# the same way (repeated and bytes fields are checked on their own below).
MESSAGE = (ld(1, b"world") + key(2, 0) + varint(1)
           + ld(4, key(1, 0) + varint(42) + key(2, 0) + varint(zigzag(-3))
                + key(3, 0) + varint(zigzag(-(1 << 40))))
           + key(5, 0) + varint(1) + key(6, 1) + struct.pack("<d", 1.5)
           + ld(8, ld(1, b"a") + key(2, 0) + varint(7))
           + key(9, 5) + struct.pack("<I", 5) + key(10, 5) + struct.pack("<f", 0.1)
           + key(11, 0) + varint(-5) + key(12, 1) + struct.pack("<q", -9))


def test_decoding_matches_protoc_decode(compiled: tuple[Path, Path]) -> None:
    d, pb = compiled
    schema = Protoset.load([pb])
    ours = schema.decode(MESSAGE, "demo.v1.HelloRequest")
    theirs = procs.run([procs.require("protoc"), f"--proto_path={d}",
                        "--decode=demo.v1.HelloRequest", str(d / "greet.proto")],
                       input=MESSAGE)
    assert theirs.returncode == 0, theirs.stderr
    assert ours == theirs.stdout.decode().splitlines()


def test_packed_fields_bytes_enums_and_unknown_fields(compiled: tuple[Path, Path]) -> None:
    schema = Protoset.load([compiled[1]])
    message = (ld(3, varint(1) + varint(2) + varint(300)) + ld(7, b"\x00\xff")
               + key(2, 0) + varint(-2) + key(2, 0) + varint(9)
               + ld(13, struct.pack("<dd", 0.5, -1.0)) + key(99, 0) + varint(7))
    assert schema.decode(message, "demo.v1.HelloRequest") == [
        "tags: [1, 2, 300]", "blob: bytes [00 ff]", "kind: KIND_NEGATIVE", "kind: 9",
        "doubles: [0.5, -1.0]", "99: 7  (unknown field)"]
    assert schema.method_type("/demo.v1.Greeter/SayHello", request=True) == \
        "demo.v1.HelloRequest"
    assert schema.method_type("/demo.v1.Greeter/SayHello", request=False) == "demo.v1.HelloReply"
    assert schema.method_type("/demo.v1.Greeter/Other", request=True) is None
    assert schema.decode(b"\xff", "demo.v1.HelloRequest") is None  # not a message
    assert schema.decode(MESSAGE, "demo.v1.Nope") is None


def test_a_file_that_is_not_a_protoset_is_named(compiled: tuple[Path, Path]) -> None:
    with pytest.raises(ProtosetError, match=r"greet\.proto: not a FileDescriptorSet"):
        Protoset.load([compiled[0] / "greet.proto"])


def test_decode_cli_with_a_protoset(compiled: tuple[Path, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, pb = compiled
    grpc = b"\x00" + len(MESSAGE).to_bytes(4, "big") + MESSAGE
    assert main(["decode", "--protobuf", "--protoset", str(pb), "--type",
                 "/demo.v1.Greeter/SayHello", grpc.hex()]) == 0
    out = capsys.readouterr().out
    assert "(gRPC message, 5-byte prefix removed), demo.v1.HelloRequest" in out
    assert '  name: "world"' in out and "  kind: KIND_GREETING" in out
    assert main(["decode", "--protobuf", "--protoset", str(pb), "--type",
                 "demo.v1.HelloReq", "0a00"]) == 2
    assert "did you mean demo.v1.HelloRequest" in capsys.readouterr().err
    assert main(["decode", "--protobuf", "--protoset", str(pb), "--type",
                 "/demo.v1.Greeter/SayHelo", "0a00"]) == 2
    assert "no such method in the protoset (did you mean /demo.v1.Greeter/SayHello? " \
        "methods: /demo.v1.Greeter/SayHello)" in capsys.readouterr().err
    assert main(["decode", "--protobuf", "--type", "demo.v1.HelloRequest", "0a00"]) == 2
    assert main(["decode", "--protoset", str(pb), "0a00"]) == 2


def test_a_field_whose_wire_type_does_not_fit_the_schema_is_shown_raw(
        compiled: tuple[Path, Path]) -> None:
    """Another message type decoded with this schema (a reply read as the request):
    'kind' (an enum) arriving length-delimited is not a packed list of kinds, and
    'inner' (a message) arriving as a varint is not a message: both raw, as protoc
    --decode shows fields it cannot fit."""
    d, pb = compiled
    schema = Protoset.load([pb])
    message = ld(2, key(1, 0) + varint(42) + key(2, 0) + varint(5)) + key(4, 0) + varint(7)
    ours = schema.decode(message, "demo.v1.HelloRequest")
    assert ours == ["2 {  (kind: wire type 2 does not fit its type)", "  1: 42", "  2: 5", "}",
                    "4: 7  (inner: wire type 0 does not fit its type)"]
    theirs = procs.run([procs.require("protoc"), f"--proto_path={d}",
                        "--decode=demo.v1.HelloRequest", str(d / "greet.proto")], input=message)
    assert [ln.split("  (")[0] for ln in ours] == theirs.stdout.decode().splitlines()


def test_a_protoset_without_its_imports_says_what_it_lacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """protoc without --include_imports: the set loaded silently, and fields of the
    imported types decoded as raw bytes with no word of why."""
    from proxy.protoset import protoset_option

    (tmp_path / "when.proto").write_text(
        'syntax = "proto3";\npackage w.v1;\nimport "google/protobuf/timestamp.proto";\n'
        "message Event { google.protobuf.Timestamp at = 1; }\n")
    for flag, lacking in (([], True), (["--include_imports"], False)):
        out = tmp_path / f"when{len(flag)}.pb"
        result = procs.run([procs.require("protoc"), f"--proto_path={tmp_path}",
                            f"--descriptor_set_out={out}", *flag, str(tmp_path / "when.proto")])
        assert result.returncode == 0, result.stderr
        loaded = protoset_option([out])
        assert loaded is not None and "w.v1.Event" in loaded.messages
        err = capsys.readouterr().err
        said = "the set lacks google/protobuf/timestamp.proto (imported by when.proto)"
        assert (said in err) is lacking, err
        assert ("protoc --include_imports puts them in" in err) is lacking


def test_the_start_of_a_message_is_its_whole_fields_and_not_just_any_bytes() -> None:
    """A message's first bytes (a large message's first 64 KiB) decode to the fields
    that end within them; bytes that are not protobuf before the cut are not
    protobuf (zeros had decoded as a message with no fields)."""
    from proxy.protobuf import decode_raw

    start = b"\x0a\x05world\x12\x08trunc"  # field 2 announces 8 bytes, 5 are here
    assert decode_raw(start, partial=True) == [
        '1: "world"', '2: "trunc…"  (8 bytes, cut: the first 5 seen)']
    # (bytes that are not text: in hex; a character the cut splits is not an error)
    assert decode_raw(b"\x12\x08\x00\xff", partial=True) == [
        "2: bytes [00 ff …]  (8 bytes, cut: the first 2 seen)"]
    assert decode_raw(b"\x12\x08ab\xc3", partial=True) == [
        '2: "ab…"  (8 bytes, cut: the first 3 seen)']
    assert decode_raw(start) is None
    assert decode_raw(b"\x08" + b"\x96", partial=True) == []  # a varint cut short
    assert decode_raw(bytes(100), partial=True) is None  # field number 0
    assert decode_raw(b"\x0a\x05world\x0f" + bytes(20), partial=True) is None  # wire type 7


def test_the_json_mapping_matches_protobufs_own(compiled: tuple[Path, Path]) -> None:
    """`export --format jsonl` gave gRPC fields as text lines ('msg: "hi"'), which a
    script has to parse again: the messages also come in the proto3 JSON mapping,
    checked against the protobuf library's own MessageToDict."""
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

    _, pb = compiled
    schema = Protoset.load([pb])
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(pb.read_bytes()).file:
        pool.Add(f)
    inner = ld(2, key(1, 0) + varint(1 << 40)) + ld(2, b"")  # (an empty Inner too)
    packed = ld(3, varint(1) + varint(300) + varint((1 << 64) - 2))  # (tags: -2 too)
    blob = ld(7, bytes([0, 255, 10]))
    doubles = ld(13, struct.pack("<dd", float("inf"), -0.5))
    for type_name, message in (("demo.v1.HelloRequest", MESSAGE + packed + blob + doubles),
                               ("demo.v1.HelloReply", ld(1, "héllo".encode()) + inner)):
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(type_name))
        expected = json_format.MessageToDict(cls.FromString(message))
        assert schema.decode_json(message, type_name) == expected, type_name
    assert schema.decode_json(b"\xff", "demo.v1.HelloRequest") is None
    # The start of a message: the fields that end in it, none of the one it cuts.
    assert schema.decode_json(ld(1, b"world") + b"\x3a\x08abc", "demo.v1.HelloRequest",
                              partial=True) == {"name": "world", "blob": "YWJj"}
    # (a 300 KB upload's name cut by the window: its start, not an empty message)
    assert schema.decode_json(b"\x0a\x90\x03qqqq", "demo.v1.HelloRequest",
                              partial=True) == {"name": "qqqq"}
