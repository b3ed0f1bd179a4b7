"""pcapng export: each connection's decrypted bytes as a synthetic TCP flow.

Wireshark cannot see inside the proxy's TLS, but it can dissect the plaintext
h2scope relayed. Each connection becomes an Ethernet/IP/TCP flow with a
three-way handshake, correct sequence and acknowledgement numbers in both
directions, the original timestamps and client address, and a FIN exchange
when the connection closed (an RST from the side that reset it, for a reset).
The server port is rewritten to 80: Wireshark's HTTP dissector owns port 80,
sees the client preface ``PRI * HTTP/2.0`` and hands the flow to HTTP/2 with
no options (``tshark -r OUT -Y http2`` works as is). The real server address
and port are kept in a packet comment on the SYN. For the same reason, frames
a server sent before the client's first bytes (an h2c or h2 server may send
its SETTINGS at once) are placed right after the client's first segment, at
its time, with their own time in a packet comment: a flow whose first payload
is the server's is never handed to HTTP/2.

Format: pcapng
(https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html), one
Section Header Block, one Ethernet interface, Enhanced Packet Blocks.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from proxy import __version__
from proxy.capture.format import RecordType
from proxy.capture.reader import Record
from proxy.events import CONNECTION_RESET
from proxy.observe.enums import Direction

LINKTYPE_ETHERNET = 1
HTTP_PORT = 80
MAX_SEGMENT = 65535 - 60 - 20 - 14
"""Payload per TCP segment: an IP datagram holds at most 65535 bytes, less the
largest IP header (IPv6, 40) and a TCP header (20); the rest is margin."""
_SYN, _FIN, _RST, _PSH, _ACK = 0x02, 0x01, 0x04, 0x08, 0x10
_MAC_CLIENT = bytes.fromhex("020000000001")
_MAC_SERVER = bytes.fromhex("020000000002")


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def section_header() -> bytes:
    opts = _option(4, f"h2scope {__version__}".encode()) + _option(0, b"")
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def interface_description() -> bytes:
    opts = _option(2, b"h2scope") + _option(0, b"")
    return _block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0) + opts)


def enhanced_packet(wall: float, packet: bytes, comment: str | None = None) -> bytes:
    # (a damaged or foreign capture's time may be NaN, infinite or past 64 bits of
    # microseconds: the packet keeps its place at time 0, not a traceback)
    micros = round(wall * 1_000_000) if 0 <= wall < 1.8e13 else 0
    opts = _option(1, comment.encode()) + _option(0, b"") if comment else b""
    body = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFF_FFFF, len(packet),
                       len(packet)) + _pad4(packet) + opts
    return _block(6, body)


def _checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum. 2^16 ≡ 1 (mod 65535), so the one's complement
    sum of the 16-bit words is the big-endian integer modulo 65535."""
    if len(data) % 2:
        data += b"\0"
    total = int.from_bytes(data, "big") % 0xFFFF or 0xFFFF
    return ~total & 0xFFFF


@dataclass(slots=True)
class _Flow:
    client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    server_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    client_port: int
    comment: str
    seq: list[int]
    """Next sequence number each direction sends (index: Direction)."""
    opened: bool = False
    closed: bool = False
    ip_id: int = 0
    client_spoke: bool = False
    held: list[tuple[float, bytes]] | None = None
    """Server frames (time, bytes) sent before the client's first bytes."""

    def packet(self, direction: Direction, flags: int, payload: bytes = b"") -> bytes:
        c2s = direction is Direction.C2S
        src, dst = (self.client_ip, self.server_ip) if c2s else (self.server_ip, self.client_ip)
        sport, dport = (self.client_port, HTTP_PORT) if c2s else (HTTP_PORT, self.client_port)
        seq = self.seq[direction]
        ack = self.seq[direction.peer] if flags & _ACK else 0
        tcp = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFF_FFFF, ack & 0xFFFF_FFFF,
                          5 << 4, flags, 65535, 0, 0)
        seg_len = len(tcp) + len(payload)
        if src.version == 4:
            pseudo = src.packed + dst.packed + struct.pack(">BBH", 0, 6, seg_len)
        else:
            pseudo = src.packed + dst.packed + struct.pack(">IxxxB", seg_len, 6)
        csum = _checksum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack(">H", csum) + tcp[18:]
        if src.version == 4:
            self.ip_id = (self.ip_id + 1) & 0xFFFF
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + seg_len, self.ip_id, 0x4000, 64, 6,
                             0, src.packed, dst.packed)
            ip = ip[:10] + struct.pack(">H", _checksum(ip)) + ip[12:]
            ether_type = 0x0800
        else:
            ip = struct.pack(">IHBB16s16s", 0x6000_0000, seg_len, 6, 64, src.packed, dst.packed)
            ether_type = 0x86DD
        macs = _MAC_SERVER + _MAC_CLIENT if c2s else _MAC_CLIENT + _MAC_SERVER
        self.seq[direction] += len(payload) + (1 if flags & (_SYN | _FIN) else 0)
        return macs + struct.pack(">H", ether_type) + ip + tcp + payload


def _address(value: Any, fallback: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        addr = ipaddress.ip_address(fallback)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _endpoint(host: object, port: object) -> str:
    """``127.0.0.1:443``, ``[::1]:443`` (``?`` for what the metadata lacks)."""
    text = str(host) if host else "?"
    if ":" in text and not text.startswith("["):
        text = f"[{text}]"
    return f"{text}:{port if port is not None else '?'}"


_STAND_IN = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}
"""Addresses for a flow whose metadata lacks them, by IP version: (client, server)."""


def _flow_for(conn_id: int, meta: dict[str, Any]) -> _Flow:
    client = meta.get("client") or {}
    server = meta.get("server") or {}
    # Stand-ins for what the metadata lacks (or a server of the other IP version than
    # its client: one TCP flow has one) come from the documentation ranges (RFC 5737,
    # RFC 3849): never a real host's address.
    client_ip = _address(client.get("ip"), _STAND_IN[4][0])
    server_ip = _address(server.get("ip"), _STAND_IN[client_ip.version][1])
    stand_in = server.get("ip") is None or server_ip.version != client_ip.version
    if server_ip.version != client_ip.version:
        server_ip = _address(_STAND_IN[client_ip.version][1], _STAND_IN[4][1])
    port = client.get("port")
    client_port = port if isinstance(port, int) and 0 < port < 65536 else 40000 + conn_id % 20000
    host, ip = server.get("host"), server.get("ip")
    # (the host once: a server reached by its address has it as its host too)
    where = _endpoint(ip or host, server.get("port"))
    if host and ip and str(host).strip("[]") != str(ip):
        where = f"{host} ({where})"
    protocol = str(meta.get("protocol") or "h2")
    what = "HTTP" if protocol.lower().startswith("http/1") else "HTTP/2"
    comment = (f"h2scope connection {conn_id}: client "
               f"{_endpoint(client.get('ip'), client.get('port'))} -> server {where} "
               f"(server port rewritten to {HTTP_PORT} so Wireshark dissects {what}"
               + (f"; server address {server_ip} stands in for it" if stand_in else "") + ")")
    isn = (conn_id * 2_654_435_761) & 0xFFFF_FFFF
    return _Flow(client_ip, server_ip, client_port, comment, [isn, isn ^ 0x5A5A_5A5A])


def write_pcapng(records: Iterable[Record], out: BinaryIO, *, conn: int | None = None) -> int:
    """Write every selected connection as TCP; return the number of packets."""
    out.write(section_header())
    out.write(interface_description())
    flows: dict[int, _Flow] = {}
    packets = 0

    def emit(wall: float, pkt: bytes, comment: str | None = None) -> None:
        nonlocal packets
        out.write(enhanced_packet(wall, pkt, comment))
        packets += 1

    def open_flow(c: int, wall: float, meta: dict[str, Any] | None = None) -> _Flow:
        flow = flows.get(c)
        if flow is None:
            flow = flows[c] = _flow_for(c, meta or {})
        if not flow.opened:
            flow.opened = True
            emit(wall, flow.packet(Direction.C2S, _SYN), flow.comment)
            emit(wall, flow.packet(Direction.S2C, _SYN | _ACK))
            emit(wall, flow.packet(Direction.C2S, _ACK))
        return flow

    def release(flow: _Flow, wall: float) -> None:
        """Emit the server frames held until the client's first bytes, at ``wall``."""
        for sent, data in flow.held or ():
            note: str | None = (
                f"sent by the server {max(wall - sent, 0) * 1000:.3f} ms before the client's "
                "first bytes; placed after them so Wireshark's HTTP dissector sees the "
                "client preface first")
            for start in range(0, len(data), MAX_SEGMENT):
                emit(wall, flow.packet(Direction.S2C, _PSH | _ACK,
                                       data[start:start + MAX_SEGMENT]), note)
                note = None
        flow.held = None

    raw_seen: set[int] = set()
    last_wall = 0.0
    for rec in records:
        c = rec.conn_id
        if conn is not None and c != conn:
            continue
        rtype = rec.type
        if rtype == RecordType.RAW:
            raw_seen.add(c)
        elif rtype == RecordType.HTTP1 and c in raw_seen:
            continue  # the recorder keeps HTTP/1 bytes as RAW; the HTTP1 record is a summary
        if rtype == RecordType.CONNECTION:
            flows[c] = _flow_for(c, rec.json())
            continue
        if rtype in (RecordType.FRAME, RecordType.RAW, RecordType.HTTP1):
            flow = open_flow(c, rec.wall)
            if rtype == RecordType.FRAME:
                data = rec.frame_bytes()
            elif rtype == RecordType.HTTP1:
                head, body = rec.http1()
                data = head + body
            else:
                data = rec.body
            direction = rec.direction
            if direction is Direction.S2C and not flow.client_spoke \
                    and rtype == RecordType.FRAME and not rec.truncated:
                if flow.held is None:
                    flow.held = []
                flow.held.append((rec.wall, data))
                continue
            note = "DATA payload truncated when recorded (zero-filled)" if rec.truncated \
                else None
            for start in range(0, len(data), MAX_SEGMENT):
                emit(rec.wall, flow.packet(direction, _PSH | _ACK,
                                           data[start:start + MAX_SEGMENT]), note)
                note = None
            if direction is Direction.C2S and not flow.client_spoke:
                flow.client_spoke = True
                release(flow, rec.wall)
        elif rtype == RecordType.CLOSE:
            ending = flows.get(c)
            if ending is None or not ending.opened or ending.closed:
                continue
            release(ending, rec.wall)
            ending.closed = True
            said = rec.json()
            first = Direction.S2C if said.get("closed_by") == "server" else Direction.C2S
            if said.get("error") == CONNECTION_RESET:  # (an abortive close: no FIN handshake)
                emit(rec.wall, ending.packet(first, _RST | _ACK))
                continue
            emit(rec.wall, ending.packet(first, _FIN | _ACK))
            emit(rec.wall, ending.packet(first.peer, _FIN | _ACK))
            emit(rec.wall, ending.packet(first, _ACK))
        last_wall = rec.wall
    for flow in flows.values():  # (a capture cut before the client spoke)
        release(flow, last_wall)
    return packets
