"""``h2scope decode``: decode HTTP/2 frames or HPACK header blocks given as hex.

"Paste the hex from a log": the input may come from an argument, a file or
stdin; whitespace and ``0x`` prefixes are ignored. Errors name the line and
the offset, and everything decoded before them is still printed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from proxy.observe.connection import ConnectionObserver
from proxy.observe.describe import block_lines, event_line, flags_text, frame_summary
from proxy.observe.enums import Direction
from proxy.observe.events import ConnectionFindingRaised, Desynced, Event, FrameObserved
from proxy.observe.findings import Finding
from proxy.observe.header_blocks import decoded_before, size_updates
from proxy.observe.hpack_annotated import AnnotatedDecoder, HpackDecodeError
from proxy.observe.jsonview import block_dict, finding_dict, frame_dict, json_line

_HEX_PREFIX = re.compile(r"0[xX]")
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")

EPILOG = """\
examples:
  h2scope decode 000004080000000000000f0001          a WINDOW_UPDATE frame
  h2scope decode -f client.hex --json | jq .type      frames from a file, as JSON Lines
  h2scope decode --hpack 828684418cf1e3c2e5f23a6ba0ab90f4ff
  h2scope decode --protobuf 0000000007 0a0568656c6c6f     a gRPC message: 1: "hello"
  h2scope decode --protobuf --protoset api.pb --type /pkg.Greeter/SayHello 00000000070a0568656c6c6f
                                                         the same with field names
  pbpaste | h2scope decode --hpack --table-size 256 -  one header block per line, from stdin

Frames: one direction's bytes, optionally starting with the client preface.
Without --from, a stream that starts with the preface is decoded as the
client's; otherwise as the server's if its first header block has :status or
it has a PUSH_PROMISE, ALTSVC or ORIGIN frame before any header block. The
other direction is not in the input, so nothing that needs it is judged (the
SETTINGS an ACK answers, a PING ACK's PING, the peer's streams and the
windows it grants). Until the sender's first SETTINGS ACK the peer's settings
have not been applied, so the RFC defaults are: frame size 16,384, windows of
65,535, an HPACK table of 4,096 bytes (RFC 9113 §4.2, §6.9.2, §4.3.1).

exit status: 0 decoded (findings do not change it); 1 the input is not whole:
bad hex, a header block that does not decode (--hpack), input that stops
inside a frame or loses framing; 2 usage errors.
"""


class HexError(ValueError):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


def parse_hex_line(text: str, line_no: int) -> bytes:
    """Bytes from one line of hex; whitespace, ``0x`` prefixes, ``:`` and ``,`` ignored."""
    cleaned = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n:,":
            i += 1
            continue
        if _HEX_PREFIX.match(text, i) and (i + 2 < n and text[i + 2] not in " \t"):
            i += 2
            continue
        if _NOT_HEX.match(ch):
            raise HexError(line_no, i + 1, f"{ch!r} is not a hex digit")
        cleaned.append(ch)
        i += 1
    digits = "".join(cleaned)
    if len(digits) % 2:
        raise HexError(line_no, len(text.rstrip()) + 1,
                       f"odd number of hex digits ({len(digits)}): a byte is cut in half")
    return bytes.fromhex(digits)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "decode",
        allow_abbrev=False,
        parents=[common],
        help="decode HTTP/2 frames, HPACK header blocks or protobuf messages given as hex",
        description="Decode HTTP/2 frames (default), HPACK header blocks (--hpack) or "
        "protobuf messages (--protobuf) from hex, with every field annotated and "
        "protocol problems flagged.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("hex", nargs="*", metavar="HEX",
                   help="hex to decode (several arguments are one input, as if spaced); "
                   "omit or '-' to read stdin")
    p.add_argument("-f", "--file", type=Path, help="read the hex from FILE")
    p.add_argument("--hpack", action="store_true",
                   help="input is HPACK header blocks, one per line, sharing one dynamic table")
    p.add_argument("--protobuf", action="store_true",
                   help="input is protobuf messages (a gRPC message's 5-byte prefix is "
                   "allowed), one per line: shown as protoc --decode_raw would, no schema")
    p.add_argument("--protoset", type=Path, action="append", default=[], metavar="FILE",
                   help="with --protobuf: a FileDescriptorSet (protoc --descriptor_set_out) "
                   "to decode with; give --type too; repeatable")
    p.add_argument("--type", dest="proto_type", metavar="NAME",
                   help="with --protoset: the message type, by full name (pkg.Message), or a "
                   "gRPC method path /pkg.Service/Method (its request type; add :response "
                   "for the response's)")
    p.add_argument("--table-size", type=int, default=4096, metavar="N",
                   help="with --hpack: the dynamic table's maximum from the start, as in "
                   "RFC 7541 Appendix C (default 4096): the first block needs no size "
                   "update for it; a setting lowered mid-way is a line 'table-size N' "
                   "between blocks, from there on")
    p.add_argument("--from", dest="sender", choices=("auto", "client", "server"),
                   default="auto", help="which endpoint sent the frames (default auto)")
    p.add_argument("--json", action="store_true",
                   help="JSON Lines: one object per frame or header block (see docs/json.md)")
    p.add_argument("--no-annotate", action="store_true",
                   help="human output: list header fields without their HPACK representation")
    p.set_defaults(func=run)


def _read_lines(args: argparse.Namespace) -> list[str]:
    if args.file is not None:
        try:
            return args.file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:  # (no such file: a usage error, exit 2, as elsewhere)
            from proxy.cli import UsageError

            raise UsageError(f"decode: cannot read {args.file}: {exc.strerror}") from None
    if not args.hex or args.hex == ["-"]:
        if sys.stdin.isatty():
            print("h2scope decode: reading hex from stdin (end with Ctrl-D)", file=sys.stderr)
        return sys.stdin.read().splitlines()
    return " ".join(args.hex).splitlines() or [""]


def run(args: argparse.Namespace) -> int:
    from proxy.cli import UsageError

    if args.table_size < 0:
        raise UsageError("--table-size must be 0 or more")
    lines = _read_lines(args)
    if not any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines):
        where = f"{args.file} holds" if args.file is not None else "the input holds"
        raise UsageError(f"nothing to decode: {where} no hex (give it as an argument, "
                         "with -f FILE, or on stdin)")
    out = sys.stdout
    if args.hpack and args.protobuf:
        raise UsageError("--hpack and --protobuf: choose one")
    if (args.protoset or args.proto_type) and not args.protobuf:
        raise UsageError("--protoset and --type go with --protobuf")
    if args.protobuf:
        return _decode_protobuf(lines, out, _schema(args))
    if args.hpack:
        return _decode_hpack(lines, args, out)
    return _decode_frames(lines, args, out)


def _err(msg: str) -> None:
    sys.stdout.flush()
    print(f"h2scope decode: {msg}", file=sys.stderr)


def _hex_items(lines: list[str]) -> list[tuple[int, bytes]]:
    """(line number, bytes) of every line that holds hex (blank and ``#`` lines
    skipped); raises HexError at the first bad one, before anything is printed."""
    return [(line_no, parse_hex_line(text, line_no)) for line_no, text in enumerate(lines, 1)
            if text.strip() and not text.lstrip().startswith("#")]


_TABLE_SIZE_LINE = re.compile(r"\s*table-size\s+(\d+)\s*$")


def _decode_hpack(lines: list[str], args: argparse.Namespace, out: TextIO) -> int:
    if not 0 <= args.table_size < 1 << 32:
        _err(f"--table-size {args.table_size} is not a 32-bit SETTINGS value (0 to "
             f"{(1 << 32) - 1})")
        return 2
    decoder = AnnotatedDecoder(args.table_size)
    # A line `table-size N` between blocks: the decoder's SETTINGS_HEADER_TABLE_SIZE
    # became N (sent and acknowledged), as a connection's can mid-way (RFC 7541 §4.2).
    sizes = {n: int(m.group(1)) for n, text in enumerate(lines, 1)
             if (m := _TABLE_SIZE_LINE.match(text))}
    for n, size in sizes.items():
        if size >= 1 << 32:  # (SETTINGS values are 32-bit, RFC 9113 §6.5.1)
            _err(f"line {n}: table-size {size} does not fit a 32-bit SETTINGS value")
            return 1
    for n, text in enumerate(lines, 1):
        if n not in sizes and text.strip().startswith("table-size"):
            _err(f"line {n}: {text.strip()!r}: a table-size line is 'table-size N', N a "
                 "number of bytes")
            return 1
    try:
        items = _hex_items([("" if n in sizes else text) for n, text in enumerate(lines, 1)])
    except HexError as exc:
        _err(f"bad hex at {exc}")
        return 1
    changes = sorted(sizes.items())
    for count, (line_no, data) in enumerate(items, 1):
        while changes and changes[0][0] < line_no:
            at, size = changes.pop(0)
            decoder.max_allowed_table_size = size
            if args.json:
                out.write(json_line({"line": at, "table_size": size}) + "\n")
            else:
                out.write(f"table-size {size} (line {at}): the decoder now allows a dynamic "
                          "table of at most this; the next block must start with a size "
                          f"update if the table's maximum ({decoder.table_max}) is above it "
                          "(RFC 9113 §4.3.1)\n")
        try:
            block = decoder.decode(data)
        except HpackDecodeError as exc:
            # What decoded before the break, then the error: the decoder's table is
            # lost from there (a peer would end the connection, COMPRESSION_ERROR).
            partial = exc.partial_block
            if args.json and partial is not None:
                out.write(json_line({"line": line_no, "block": count - 1,
                                     "error": {"offset": exc.offset, "reason": exc.reason,
                                               "rfc": exc.rfc}, **block_dict(partial)}) + "\n")
            elif partial is not None:
                n = len(partial.fields)
                before = "nothing decoded before the error" if not n else \
                    f"the {n} representation{'' if n == 1 else 's'} before the error:"
                out.write(f"block {count - 1} (line {line_no}): {_bytes(len(data))}, does not "
                          f"decode; {before}\n")
                for ln in block_lines(partial, annotate=not args.no_annotate):
                    out.write(ln + "\n")
            out.flush()
            _err(f"header block on line {line_no} does not decode: {exc}"
                 + (f"{decoded_before(exc)}" if partial is None else "")
                 + (f"; blocks after it are not decoded ({len(items) - count} left)"
                    if count < len(items) else ""))
            return 1
        found: list[Finding] = []
        size_updates(block, None, count - 1, found)  # (as the proxy checks a block: §4.2)
        if args.json:
            d = {"line": line_no, "block": count - 1, **block_dict(block)}
            if found:
                d["findings"] = [finding_dict(f) for f in found]
            out.write(json_line(d) + "\n")
        else:
            out.write(f"block {count - 1} (line {line_no}): {_bytes(block.wire_length)}, "
                      f"{len(block.headers)} header{'' if len(block.headers) == 1 else 's'}\n")
            for ln in block_lines(block, annotate=not args.no_annotate):
                out.write(ln + "\n")
            for f in found:
                out.write(f"    ! {f}\n")
    return 0


def _schema(args: argparse.Namespace) -> tuple[Any, str] | None:
    """(Protoset, message type) from --protoset and --type, or None."""
    if not args.protoset and not args.proto_type:
        return None
    from proxy.cli import UsageError
    from proxy.protoset import protoset_option

    if not args.protoset or not args.proto_type:
        raise UsageError("--protoset and --type go together")
    schema = protoset_option(args.protoset)
    assert schema is not None
    name = args.proto_type.lstrip(".")
    if name.startswith("/"):
        path, _, which = args.proto_type.partition(":")
        resolved = schema.method_type(path, which != "response")
        if resolved is None:
            methods = sorted(schema.methods)
            close = difflib.get_close_matches(path, methods, 1, 0.6)
            meant = f"did you mean {close[0]}? " if close else ""
            known = ", ".join(methods[:8]) + (f", … ({len(methods)} in all)"
                                              if len(methods) > 8 else "")
            raise UsageError(f"--type {args.proto_type}: no such method in the protoset "
                             f"({meant}methods: {known or 'none'})")
        name = resolved
    if name not in schema.messages:
        close = difflib.get_close_matches(name, list(schema.messages), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--type {name}: no such message in the protoset{hint}")
    return schema, name


def _decode_protobuf(lines: list[str], out: TextIO,
                     schema: tuple[Any, str] | None = None) -> int:
    from proxy.protobuf import decode_raw

    try:
        items = _hex_items(lines)
    except HexError as exc:
        _err(f"bad hex at {exc}")
        return 1
    for count, (line_no, data) in enumerate(items):
        prefix = ""
        if len(data) >= 5 and data[0] in (0, 1) and int.from_bytes(data[1:5], "big") \
                == len(data) - 5:  # one gRPC length-prefixed message
            if data[0]:
                _err(f"line {line_no}: a compressed gRPC message (flag 1): inflate it first")
                return 1
            prefix, data = " (gRPC message, 5-byte prefix removed)", data[5:]
        fields = decode_raw(data) if schema is None else schema[0].decode(data, schema[1])
        if fields is None:
            _err(f"line {line_no}: {len(data)} bytes that are not a well-formed protobuf "
                 "message")
            return 1
        as_type = f", {schema[1]}" if schema is not None else ""
        out.write(f"message {count} (line {line_no}): {_bytes(len(data))}{prefix}{as_type}\n")
        for ln in fields or ["(empty message)"]:
            out.write(f"  {ln}\n")
    return 0


def _run_observer(data: bytes, sender: Direction, preface: str) -> list[Event]:
    from proxy.observe.enums import CONNECTION_PREFACE

    # One direction only: what the other side sent (the SETTINGS an ACK answers, the
    # PING a PING ACK answers, the streams it opened, the windows it granted) is not
    # in the input, so no rule that needs it is applied (``unseen``); its settings and
    # windows bind the sender only from the sender's first SETTINGS ACK on.
    obs = ConnectionObserver(preface=preface, partial=not data.startswith(CONNECTION_PREFACE),
                             unseen=sender.peer)
    if sender is Direction.S2C:
        # A lone server stream: pretend the client's preface and SETTINGS went by
        # so the server's frames are judged as a reply, not as a first contact.
        obs.sides[Direction.C2S].preface = "done"
    events = obs.feed(sender, data, 0.0)
    # One direction alone can't show an ACK or a response: only report what is cut
    # short.
    for ev in obs.close(0.0):
        if isinstance(ev, ConnectionFindingRaised):
            if ev.finding.code in ("settings-not-acknowledged", "stream-unfinished",
                                   "flow-control-stalled"):  # (windows granted unseen)
                continue
            # (there is no connection here, only the input)
            ev = replace(ev, finding=replace(ev.finding, message=ev.finding.message.replace(
                "at the end of the connection", "at the end of the input")))
        events.append(ev)
    return events


_SERVER_ONLY = frozenset({5, 0xA, 0xC})
"""PUSH_PROMISE (RFC 9113 §8.4), ALTSVC (RFC 7838 §4: a client's is ignored) and
ORIGIN (RFC 8336 §2.1: only a server's has meaning)."""


def _guess_sender(data: bytes) -> Direction:
    from proxy.observe.enums import CONNECTION_PREFACE

    if data.startswith(CONNECTION_PREFACE):
        return Direction.C2S
    for ev in _run_observer(data, Direction.C2S, "optional"):
        if isinstance(ev, FrameObserved) and ev.frame.type in _SERVER_ONLY:
            return Direction.S2C  # (frames only a server sends)
        if isinstance(ev, FrameObserved) and ev.block is not None:
            return Direction.S2C if any(n == ":status" for n, _ in ev.block.headers) \
                else Direction.C2S
    return Direction.C2S


def _iter_bytes(lines: list[str]) -> Iterator[tuple[int, bytes]]:
    for line_no, text in enumerate(lines, 1):
        if text.lstrip().startswith("#"):
            continue
        yield line_no, parse_hex_line(text, line_no)


def _decode_frames(lines: list[str], args: argparse.Namespace, out: TextIO) -> int:
    chunks = []
    bad: HexError | None = None
    try:
        for _, chunk in _iter_bytes(lines):
            chunks.append(chunk)
    except HexError as exc:
        bad = exc
    data = b"".join(chunks)
    from proxy.net.http1 import looks_like_http1_request

    if not data.startswith(b"PRI * HTTP/2.0") and (
            data[:5] == b"HTTP/" or looks_like_http1_request(data[:24])):
        line = data.split(b"\r\n", 1)[0][:60]
        _err(f"this is HTTP/1.x ({line!r}), not HTTP/2 frames: decode reads the bytes of "
             "an HTTP/2 connection (after the preface for a client's)")
        return 1
    sender = {"client": Direction.C2S, "server": Direction.S2C}.get(args.sender) \
        or _guess_sender(data)
    events = _run_observer(data, sender, "optional")
    status = 0
    annotate = not args.no_annotate
    for ev in events:
        if args.json:
            if isinstance(ev, FrameObserved):
                out.write(json_line(frame_dict(ev)) + "\n")
            elif isinstance(ev, (Desynced, ConnectionFindingRaised)):
                out.write(json.dumps({"event": type(ev).__name__,
                                      "finding": finding_dict(ev.finding)}) + "\n")
        else:
            _write_human(ev, out, annotate)
        if isinstance(ev, Desynced) or (isinstance(ev, ConnectionFindingRaised)
                                        and ev.finding.code == "frame-truncated"):
            status = 1
    if bad is not None:
        _err(f"bad hex at {bad}; " + ("the lines before it were decoded" if chunks else
                                      "nothing was decoded (a line is decoded whole)"))
        return 1
    if status:
        _err("the input does not end on a frame boundary or is not HTTP/2 framing "
             "(see the last message above)")
    if not args.json and any(isinstance(ev, FrameObserved) and ev.windows is not None
                             for ev in events):
        _err("note: the windows shown count from RFC 9113's initial 65,535: decode sees one "
             "direction, not the peer's SETTINGS and WINDOW_UPDATEs"
             + ("" if data.startswith(b"PRI * HTTP/2.0") else
                " nor what went before the input") + ", so the connection's own may differ")
    return status


def _write_human(ev: Event, out: TextIO, annotate: bool) -> None:
    if isinstance(ev, FrameObserved):
        f = ev.frame
        out.write(f"#{ev.seq} {f.type_name} <length={f.length}, "
                  f"flags={flags_text(f) or '[]'}, stream={f.stream_id}>  {frame_summary(ev)}\n")
        if ev.block is not None:
            for ln in block_lines(ev.block, annotate=annotate):
                out.write(ln + "\n")
        for finding in ev.findings:
            out.write(f"    ! {finding}\n")
        return
    line = event_line(ev)
    if line:
        out.write(f"  {line}\n")


def _bytes(n: int) -> str:
    return f"{n} byte{'' if n == 1 else 's'}"
