"""Header bytes that are not UTF-8 — gRPC's true binary metadata (a ``-bin`` value
sent raw), a broken path — reach every output as valid UTF-8 text: written
``\\xNN`` as the log lines show them, with the exact bytes beside them where the
format has room (``value_hex`` in JSON Lines, ``_valueBase64`` in HAR). Before,
the HAR and JSON Lines exports, ``diff`` and the headless JSON Lines printer on a
UTF-8 terminal stopped with a UnicodeEncodeError."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import h2.config
import h2.connection
import jsonschema
import pytest

from proxy.capture.export_har import write_har
from proxy.capture.replay import replay
from proxy.capture.tap import RecordingObserver
from proxy.capture.writer import CaptureWriter
from proxy.observe.describe import block_summary
from tests.unit.capture.test_export_har import SCHEMA
from tests.unit.capture.traffic import META, exchange

RAW_VALUE = b"\x00\xff\x80"
RAW_PATH = b"/svc/M\xff"


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "raw.h2scope"
    lax = {"validate_outbound_headers": False, "validate_inbound_headers": False}
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, **lax))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, **lax))
    with CaptureWriter(path) as writer:
        tap = RecordingObserver(writer, 1, META, t=999.0)

        client.initiate_connection()
        server.initiate_connection()
        exchange(tap, client, server, 1000.0)
        client.send_headers(1, [(b":method", b"POST"), (b":scheme", b"https"),
                                (b":authority", b"example.test"), (b":path", RAW_PATH),
                                (b"content-type", b"application/grpc"),
                                (b"trace-bin", RAW_VALUE)], end_stream=True)
        exchange(tap, client, server, 1000.05)
        server.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        server.send_headers(1, [(b"grpc-status", b"0"), (b"x-bin", RAW_VALUE)], end_stream=True)
        exchange(tap, client, server, 1000.1)
        tap.close(1000.2)
    return path


def test_the_har_export_is_utf8_json_with_the_exact_bytes_beside(capture: Path) -> None:
    out = io.StringIO()
    write_har(replay(capture), out)
    text = out.getvalue()
    text.encode("utf-8")  # no lone surrogate left
    har = json.loads(text)
    jsonschema.Draft7Validator(SCHEMA).validate(har)
    (entry,) = har["log"]["entries"]
    assert entry["request"]["url"] == "https://example.test/svc/M\\xff"
    (header,) = [h for h in entry["request"]["headers"] if h["name"] == "trace-bin"]
    assert header["value"] == "\\x00\\xff\\x80"  # (a -bin value's bytes: all escaped)
    assert base64.b64decode(header["_valueBase64"]) == RAW_VALUE
    assert "_valueBase64" not in next(h for h in entry["request"]["headers"]
                                      if h["name"] == "content-type")
    # Trailers (where gRPC's binary metadata usually is): the bytes as a third item.
    (trailer,) = [t for t in entry["_h2scope"]["response_trailers"] if t[0] == "x-bin"]
    assert trailer[1] == "\\x00\\xff\\x80" and base64.b64decode(trailer[2]) == RAW_VALUE
    assert ["grpc-status", "0"] in entry["_h2scope"]["response_trailers"]


def test_json_lines_carry_value_hex_and_encode(capture: Path, tmp_path: Path) -> None:
    from proxy.cli import main

    out = tmp_path / "raw.jsonl"
    assert main(["export", str(capture), "--format", "jsonl", "-o", str(out)]) == 0
    objects = [json.loads(line) for line in out.read_bytes().decode("utf-8").splitlines()]
    request = next(o for o in objects if o.get("type") == "HEADERS" and o["direction"] == "c2s")
    fields = {h["name"]: h for h in request["block"]["headers"]}
    assert bytes.fromhex(fields["trace-bin"]["value_hex"]) == RAW_VALUE
    assert bytes.fromhex(fields[":path"]["value_hex"]) == RAW_PATH
    assert fields[":path"]["value"] == "/svc/M\\xff"
    assert "value_hex" not in fields[":method"]
    annotated = {f["name"]: f for f in request["block"]["fields"]}
    assert bytes.fromhex(annotated["trace-bin"]["value_hex"]) == RAW_VALUE


def test_a_request_line_shows_bytes_not_utf8_escaped() -> None:
    path = RAW_PATH.decode("utf-8", "surrogateescape")
    assert block_summary(((":method", "GET"), (":authority", "a"), (":path", path))) \
        == "GET a/svc/M\\xff"


@pytest.mark.parametrize("command", [["export", "--format", "text"],
                                     ["export", "--format", "jsonl"],
                                     ["export", "--format", "har"], ["diff"], ["check"]])
def test_commands_write_valid_utf8_to_a_utf8_terminal(
        capture: Path, recorded: tuple[Path, object], command: list[str]) -> None:
    """PYTHONIOENCODING=utf-8 is a UTF-8 terminal's strict encoding (in the C locale
    Python would write the raw byte instead)."""
    args = [*command[:1], str(capture), *command[1:]]
    if command == ["diff"]:
        args.append(str(recorded[0]))  # other streams: "only in A ... /svc/M\\xff"
    result = subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True,
                            env={"PYTHONIOENCODING": "utf-8", "PATH": "/usr/bin:/bin"},
                            timeout=60)
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    assert result.returncode in (0, 3), result.stderr
    text = result.stdout.decode("utf-8")  # strict: valid UTF-8
    if command[0] != "check":
        assert "\\xff" in text


def test_a_raw_bin_value_shows_as_bytes_even_where_they_happen_to_be_utf8() -> None:
    """0xDE 0xAD is valid UTF-8 (U+07AD): a raw -bin value showed it as a character."""
    from proxy.observe.describe import shown_field

    value = b"\xde\xad\xbe\xef".decode("utf-8", "surrogateescape")
    assert shown_field("x-req-bin", value) == "x-req-bin: \\xde\\xad\\xbe\\xef"
    assert shown_field("x-req-bin", "3q2+7w") == "x-req-bin: 3q2+7w"  # base64: as it is
    assert shown_field("x-name", "caf\u00e9") == "x-name: caf\u00e9"  # not -bin: text


def test_the_log_says_what_a_true_binary_values_first_byte_is() -> None:
    """``x-trail-bin: \\x00\\xde\\xad\\xbe\\xef`` read as five bytes of value; the 0x00
    is gRPC's marker of a value sent raw."""
    import hpack

    from proxy.observe.hpack_annotated import AnnotatedDecoder
    from proxy.textlog import _block_text

    raw = b"\x00\xde\xad\xbe\xef"
    block = AnnotatedDecoder().decode(hpack.Encoder().encode([(b"x-trail-bin", raw)]))
    (line,) = _block_text(block)[2]
    assert line.strip() == ("x-trail-bin: \\x00\\xde\\xad\\xbe\\xef  ; 4 bytes sent raw (true "
                            "binary metadata: 0x00 is grpc's marker)")


def test_a_raw_bin_value_that_happens_to_be_utf8_is_still_bytes_in_har() -> None:
    """grpc-core's true binary grpc-status-details-bin decoded as UTF-8 ('ü' inside,
    NULs and newlines around): HAR had it as text with NUL and control bytes."""
    from proxy.capture.export_har import _header, _pairs

    value = "\x00\x08\x03\x12\x11bad name: ü\x1aK\n)type"
    header = _header("grpc-status-details-bin", value)
    assert header["value"] == "\\x00\\x08\\x03\\x12\\x11bad name: \\xc3\\xbc\\x1aK\\x0a)type"
    assert base64.b64decode(header["_valueBase64"]) == value.encode("utf-8")
    assert header["comment"].startswith("binary (sent raw)")
    assert _pairs((("grpc-status-details-bin", value),))[0][2] == header["_valueBase64"]
    assert _header("grpc-trace-bin", "AAECAw") == {"name": "grpc-trace-bin",
                                                   "value": "AAECAw"}  # (base64: text)
