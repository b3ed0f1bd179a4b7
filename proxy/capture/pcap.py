"""Reading packet captures (pcap and pcapng) down to TCP segments.

``h2scope import`` turns a packet capture of cleartext HTTP/2 (h2c: gRPC
inside a cluster, a load balancer's backend leg, ``curl --http2-prior-knowledge``)
into an h2scope capture. This module is the packet half: it reads the file
(classic pcap in either byte order, microsecond or nanosecond timestamps;
pcapng with any number of interfaces and their timestamp resolutions), takes
the link layer off (Ethernet with VLAN tags, Linux cooked SLL and SLL2, BSD
loopback, raw IP) and yields each TCP segment with its time, addresses, ports,
sequence number, flags and payload. Anything else (UDP, ARP, fragments after
the first, a truncated header) is counted as skipped, never fatal.
:mod:`proxy.capture.pcap_import` reassembles the segments into byte streams.

Both formats are specified publicly: pcap in draft-ietf-opsawg-pcap, pcapng in
draft-ietf-opsawg-pcapng (the block types, options and link types used here).
"""

from __future__ import annotations

import gzip
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
LINKTYPES = {LINKTYPE_NULL: "BSD loopback", LINKTYPE_ETHERNET: "Ethernet",
             LINKTYPE_RAW: "raw IP", LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
             LINKTYPE_IPV4: "raw IPv4", LINKTYPE_IPV6: "raw IPv6",
             LINKTYPE_LINUX_SLL2: "Linux cooked (SLL2)"}

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
_ETH_IPV4, _ETH_IPV6, _ETH_VLAN, _ETH_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8
_IPV6_EXTENSIONS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_IPV6_FRAGMENT = 44
_TLS_KEY_LOG = 0x544C534B
"""A Decryption Secrets Block holding an NSS key log ("TLSK", pcapng §4.7)."""
MAX_BLOCK = 1 << 26
"""A pcapng block or pcap record claiming more is damage, not a packet."""


class PcapError(ValueError):
    """The file is not a packet capture, or its structure is damaged; the message
    says which and where (byte offset)."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured packet: its link type, bytes as captured, and length on the wire."""

    t: float
    """Unix time, seconds."""
    linktype: int
    data: bytes
    wire_length: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment as captured."""

    t: float
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    flags: int
    payload: bytes
    missing: int
    """Payload bytes the capture did not keep (snap length): the stream has a gap."""


def is_packet_capture(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts a pcap or pcapng file."""
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def open_packet_capture(path: str | Path) -> BinaryIO:
    """``path`` for reading, gunzipped when it is gzip (``dump.pcap.gz``: recognised
    by its magic bytes, not its name). Raises OSError."""
    f: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if f.read(2) == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    f.seek(0)
    return f


def sniff(path: str | Path) -> bytes:
    """The first four bytes of ``path``'s content (gunzipped); b"" if it cannot be read."""
    try:
        with open_packet_capture(path) as f:
            return f.read(4)
    except (OSError, EOFError):
        return b""


def packets(f: BinaryIO, secrets: list[bytes] | None = None,
            torn: list[str] | None = None) -> Iterator[Packet]:
    """The packets of a pcap or pcapng file, in file order. TLS key logs a pcapng
    carries (Decryption Secrets Blocks, as ``editcap --inject-secrets`` writes
    them) are appended to ``secrets``; a file that ends inside a packet (a capture
    cut short) says so in ``torn`` (that packet is left out). Raises PcapError."""
    head = f.read(4)
    cut = [] if torn is None else torn
    try:
        if head in PCAP_MAGICS:
            yield from _pcap(f, head, cut)
        elif head == PCAPNG_MAGIC:
            yield from _pcapng(f, [] if secrets is None else secrets, cut)
        elif head == b"H2SC":
            raise PcapError("this is already an h2scope capture: open it with h2scope view, "
                            "check or export; there is nothing to import")
        else:
            raise PcapError(f"not a pcap or pcapng file (it starts with "
                            f"{head.hex() or 'nothing: the file is empty'})")
    except EOFError:  # a gzip file cut short: what came before is whole
        cut.append("the compressed file is cut short: its last packets are not in it")


def _pcap(f: BinaryIO, magic: bytes, torn: list[str]) -> Iterator[Packet]:
    order, unit = PCAP_MAGICS[magic]
    rest = f.read(20)
    if len(rest) < 20:
        raise PcapError("the pcap file header is cut short")
    linktype = struct.unpack(order + "HHiIII", rest)[5] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    offset = 24
    while True:
        hdr = f.read(16)
        if len(hdr) < 16:
            if hdr:
                torn.append(f"the file ends inside a packet record header at byte {offset}")
            return
        sec, frac, caplen, wirelen = record.unpack(hdr)
        if caplen > MAX_BLOCK:
            raise PcapError(f"the pcap record at byte {offset} claims {caplen} bytes")
        data = f.read(caplen)
        if len(data) < caplen:
            torn.append(f"the file ends inside a packet at byte {offset} ({len(data)} of "
                        f"{caplen} bytes): that packet is left out")
            return
        yield Packet(sec + frac * unit, linktype, data, wirelen)
        offset += 16 + caplen


def _pcapng(f: BinaryIO, secrets: list[bytes], torn: list[str]) -> Iterator[Packet]:
    order = "<"
    interfaces: list[tuple[int, float]] = []
    offset = 0
    first = True
    while True:
        head = PCAPNG_MAGIC if first else f.read(4)
        if len(head) < 4:
            return
        length_raw = f.read(4)
        if len(length_raw) < 4:
            return
        if head == PCAPNG_MAGIC:
            bom = f.read(4)
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise PcapError(f"the pcapng section header at byte {offset} has no "
                                "byte-order magic")
            total = struct.unpack(order + "I", length_raw)[0]
            if total < 28 or total > MAX_BLOCK:
                raise PcapError(f"the pcapng section header at byte {offset} claims "
                                f"{total} bytes")
            body = f.read(total - 12)
            if len(body) < total - 12:
                return
            interfaces = []  # a new section numbers its interfaces afresh
            first = False
            offset += total
            continue
        btype = struct.unpack(order + "I", head)[0]
        total = struct.unpack(order + "I", length_raw)[0]
        if total < 12 or total > MAX_BLOCK or total % 4:
            raise PcapError(f"the pcapng block at byte {offset} claims {total} bytes")
        body = f.read(total - 8)
        if len(body) < total - 8:
            torn.append(f"the file ends inside a block at byte {offset} ({len(body) + 8} of "
                        f"{total} bytes): that block is left out")
            return
        body = body[:-4]
        try:
            yield from _block(btype, body, order, interfaces, secrets)
        except struct.error:
            raise PcapError(f"the pcapng block at byte {offset} (type {btype}) is "
                            "damaged") from None
        offset += total


def _block(btype: int, body: bytes, order: str, interfaces: list[tuple[int, float]],
           secrets: list[bytes]) -> Iterator[Packet]:
    """The packet a pcapng block holds, if any; an IDB is added to ``interfaces``,
    a TLS key log (Decryption Secrets Block) to ``secrets``."""
    if btype == 0x0A:  # Decryption Secrets Block
        kind, length = struct.unpack_from(order + "II", body, 0)
        if kind == _TLS_KEY_LOG:
            secrets.append(body[8:8 + length])
    elif btype == 1:  # Interface Description Block
        linktype = struct.unpack_from(order + "H", body, 0)[0]
        interfaces.append((linktype, _ts_unit(body[8:], order)))
    elif btype == 6:  # Enhanced Packet Block
        iface, hi, lo, caplen, wirelen = struct.unpack_from(order + "IIIII", body, 0)
        if iface < len(interfaces):
            linktype, unit = interfaces[iface]
            yield Packet(((hi << 32) | lo) * unit, linktype, body[20:20 + caplen], wirelen)
    elif btype == 3 and interfaces:  # Simple Packet Block: no time
        wirelen = struct.unpack_from(order + "I", body, 0)[0]
        linktype, _ = interfaces[0]
        yield Packet(0.0, linktype, body[4:4 + min(wirelen, len(body) - 4)], wirelen)
    elif btype == 2:  # the obsolete Packet Block
        iface, _drops, hi, lo, caplen, wirelen = struct.unpack_from(order + "HHIIII", body, 0)
        if iface < len(interfaces):
            linktype, unit = interfaces[iface]
            yield Packet(((hi << 32) | lo) * unit, linktype, body[20:20 + caplen], wirelen)


def _ts_unit(options: bytes, order: str) -> float:
    """An interface's timestamp unit from its ``if_tsresol`` option (default 10^-6 s)."""
    i = 0
    while i + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, i)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = options[i + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        i += 4 + length + (-length % 4)
    return 1e-6


def tcp_segment(packet: Packet) -> Segment | None:
    """The TCP segment a packet carries; None for anything else (or too short to tell)."""
    try:
        return _segment(packet)
    except (struct.error, IndexError, ValueError):
        return None  # a header cut short or malformed: not a segment to reassemble


def _segment(packet: Packet) -> Segment | None:
    data, lt = packet.data, packet.linktype
    if lt == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        etype = int.from_bytes(data[12:14], "big")
        pos = 14
        while etype in (_ETH_VLAN, _ETH_QINQ) and len(data) >= pos + 4:
            etype = int.from_bytes(data[pos + 2:pos + 4], "big")
            pos += 4
    elif lt == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        etype, pos = int.from_bytes(data[14:16], "big"), 16
    elif lt == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return None
        etype, pos = int.from_bytes(data[0:2], "big"), 20
    elif lt == LINKTYPE_NULL:
        if len(data) < 4:
            return None
        family = int.from_bytes(data[:4], "little")
        if family > 0xFFFF:  # written by a big-endian host
            family = int.from_bytes(data[:4], "big")
        etype, pos = (_ETH_IPV4 if family == 2 else _ETH_IPV6), 4
    elif lt in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not data:
            return None
        etype, pos = (_ETH_IPV4 if data[0] >> 4 == 4 else _ETH_IPV6), 0
    else:
        return None
    # The bytes the link layer says are missing from the end of this packet.
    missing = max(0, packet.wire_length - len(data))
    if etype == _ETH_IPV4:
        return _ipv4(packet.t, data, pos, missing)
    if etype == _ETH_IPV6:
        return _ipv6(packet.t, data, pos, missing)
    return None


def _ipv4(t: float, data: bytes, pos: int, missing: int) -> Segment | None:
    if len(data) < pos + 20 or data[pos] >> 4 != 4:
        return None
    ihl = (data[pos] & 0x0F) * 4
    total = int.from_bytes(data[pos + 2:pos + 4], "big")
    frag = int.from_bytes(data[pos + 6:pos + 8], "big")
    if data[pos + 9] != 6 or frag & 0x1FFF or frag & 0x2000:
        return None  # not TCP, or a fragment (reassembling IP fragments is not done)
    src = str(ipaddress.IPv4Address(data[pos + 12:pos + 16]))
    dst = str(ipaddress.IPv4Address(data[pos + 16:pos + 20]))
    # TSO captures say 0 for the total length: trust the captured bytes then.
    end = pos + total if total else len(data) + missing
    return _tcp(t, data, pos + ihl, end, src, dst)


def _ipv6(t: float, data: bytes, pos: int, missing: int) -> Segment | None:
    if len(data) < pos + 40 or data[pos] >> 4 != 6:
        return None
    payload_len = int.from_bytes(data[pos + 4:pos + 6], "big")
    nxt = data[pos + 6]
    src = str(ipaddress.IPv6Address(data[pos + 8:pos + 24]))
    dst = str(ipaddress.IPv6Address(data[pos + 24:pos + 40]))
    end = pos + 40 + payload_len if payload_len else len(data) + missing
    pos += 40
    while nxt in _IPV6_EXTENSIONS and len(data) >= pos + 8:
        nxt, pos = data[pos], pos + 8 + data[pos + 1] * 8
    if nxt != 6:
        return None  # not TCP (or a fragment header)
    return _tcp(t, data, pos, end, src, dst)


def _tcp(t: float, data: bytes, pos: int, end: int, src: str, dst: str) -> Segment | None:
    if len(data) < pos + 20:
        return None
    sport, dport, seq = struct.unpack_from(">HHI", data, pos)
    off = (data[pos + 12] >> 4) * 4
    flags = data[pos + 13]
    if off < 20:
        return None
    start = pos + off
    payload = data[start:min(end, len(data))]
    missing = max(0, end - start - len(payload))
    return Segment(t, (src, sport), (dst, dport), seq, flags, payload, missing)
