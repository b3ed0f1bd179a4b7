"""``h2scope import``: HTTP/2 in a packet capture, as an h2scope capture.

The TCP segments of a pcap or pcapng file (:mod:`proxy.capture.pcap`) are
put back into each connection's two byte streams, in sequence order:
retransmitted and overlapping bytes are used once, segments that arrive early
wait (up to :data:`MAX_AHEAD` bytes per direction) until the hole before them
is filled. A connection is HTTP/2 when its client sends the connection preface
(RFC 9113 §3.4, prior knowledge: h2c), when an HTTP/1.1 ``Upgrade: h2c`` gets
its 101 (RFC 7540 §3.2), or when either happens inside TLS that the key log
decrypts (:mod:`proxy.capture.tls_decrypt`). It is recorded through the same
tap the proxy records with (:class:`proxy.capture.tap.RecordingObserver`):
frames, preface, upgrade, close, at the packets' times. The result opens in
``h2scope view``, exports and replays like a recording made by the proxy.

What cannot be decoded is said, not guessed:

* a hole that never fills (the capture lost packets, or its snap length cut
  them) stops decoding that direction at the hole — HTTP/2 frames cannot be
  found again in the middle of a stream — and a LOST record says how many
  bytes are missing and where;
* TLS without its secrets in the key log is counted, and why it could not be
  opened is reported;
* connections whose start was not captured, and those that are not HTTP/2
  (HTTP/1.1 that does not upgrade), are counted and skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from proxy.capture.http1_split import Http1Recording
from proxy.capture.pcap import ACK, FIN, RST, SYN, Segment, packets, tcp_segment
from proxy.capture.replay import lost_part
from proxy.capture.tap import RecordingObserver
from proxy.capture.tls_decrypt import KeyLog, TlsDecryptor
from proxy.capture.writer import CaptureWriter
from proxy.net.http1 import (
    Http1Error,
    RequestHead,
    h2c_upgrade,
    looks_like_http1_request,
    parse_request_head,
    parse_response_head,
)
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import Event, FrameObserved

_H = TypeVar("_H")
MAX_HEAD = 64 << 10
"""An HTTP/1.1 head longer than this is not waited for (not an h2c upgrade)."""
MAX_AHEAD = 4 << 20
"""Bytes of early segments kept per direction while waiting for a hole to fill."""
_SEQ_MOD = 1 << 32
_TLS_HANDSHAKE = 0x16


def _data_seq(seg: Segment) -> int:
    """The sequence number of ``seg``'s first data byte (a SYN takes one number)."""
    return (seg.seq + (1 if seg.flags & SYN else 0)) % _SEQ_MOD


def _after(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space (RFC 9293 §3.4: numbers wrap)."""
    return (a - b + (1 << 31)) % _SEQ_MOD - (1 << 31)


@dataclass
class _Direction:
    """One direction's reassembly: what was delivered, and what waits for a hole."""

    next_seq: int | None = None
    """The sequence number of the next byte to deliver (None: not known yet)."""
    ahead: dict[int, bytes] = field(default_factory=dict)
    ahead_bytes: int = 0
    delivered: int = 0
    gap: bool = False
    """A hole did not fill: nothing more is delivered."""
    fin: bool = False
    lost: tuple[int, str] | None = None
    """(bytes, why) of the gap that stopped this direction, once there is one."""
    stop_at: tuple[int, int] | None = None
    """(sequence number, bytes missing): where the first reading of the file found
    this stream's first hole that never fills."""
    snap: bool = False
    """That hole is a packet the capture's snap length cut, not a lost one."""
    first_seq: int | None = None

    def take(self, seg: Segment) -> tuple[list[bytes], int]:
        """The in-order bytes ``seg`` makes available (with early ones it unblocks),
        and the size of a hole given up on (0: none): the one :attr:`stop_at`
        names, once everything before it is delivered, or one that more than
        :data:`MAX_AHEAD` bytes arrived after without it filling."""
        data = seg.payload
        seq = _data_seq(seg)
        if self.next_seq is None:
            self.next_seq = self.first_seq = seq
        if self.gap:
            return [], 0
        stop = self.stop_at
        if stop is not None and self.next_seq == stop[0]:
            self.gap = True  # the known hole, with nothing before it left to deliver
            return [], stop[1]
        if not data:
            return [], 0
        out: list[bytes] = []
        late = _after(self.next_seq, seq)
        if late > 0:  # a retransmission, or an overlap: keep only what is new
            if late >= len(data):
                return [], 0
            data, seq = data[late:], self.next_seq
        if seq != self.next_seq:
            if self.ahead_bytes + len(data) > MAX_AHEAD:
                self.gap = True
                return [], self.hole()
            if len(data) > len(self.ahead.get(seq, b"")):
                self.ahead_bytes += len(data) - len(self.ahead.get(seq, b""))
                self.ahead[seq] = data
            return [], 0
        out.append(data)
        self.next_seq = (seq + len(data)) % _SEQ_MOD
        while self.ahead:  # the hole is filled: what waited behind it follows
            found = False
            for s in list(self.ahead):
                d = _after(self.next_seq, s)
                if d < 0:
                    continue
                chunk = self.ahead.pop(s)
                self.ahead_bytes -= len(chunk)
                if d < len(chunk):
                    out.append(chunk[d:])
                    self.next_seq = (self.next_seq + len(chunk) - d) % _SEQ_MOD
                found = True
            if not found:
                break
        self.delivered += sum(map(len, out))
        stop = self.stop_at
        if stop is not None and self.next_seq == stop[0]:
            # Everything before the hole is delivered: stop now, before the other
            # direction says anything about what the hole holds.
            self.gap = True
            return out, stop[1]
        return out, 0

    def hole(self) -> int:
        """Bytes missing before the earliest early segment."""
        nxt = self.next_seq or 0
        return min((_after(s, nxt) for s in self.ahead), default=0)


@dataclass
class _Upgrade:
    """An HTTP/1.1 connection while it may still upgrade to h2c: the heads so far."""

    client: bytearray = field(default_factory=bytearray)
    server: bytearray = field(default_factory=bytearray)
    request: RequestHead | None = None
    gave_up: bool = False
    seen: list[tuple[Direction, bytes, float]] = field(default_factory=list)
    """Every chunk so far, in capture order: an HTTP/1.x connection that does not
    upgrade is recorded from its first byte."""


@dataclass
class _Connection:
    conn_id: int | None
    client: tuple[str, int]
    server: tuple[str, int]
    started: float
    sides: tuple[_Direction, _Direction] = field(
        default_factory=lambda: (_Direction(), _Direction()))
    kind: str | None = None
    """What the client's first bytes say: h2c, tls, http1 (may upgrade), other or
    late (its start not captured); None until they come."""
    tap: RecordingObserver | None = None
    saw_syn: bool = False
    pending: list[tuple[Direction, bytes, float]] = field(default_factory=list)
    """Server bytes that came before the client's first (an h2c server's SETTINGS
    on accept): fed first, in capture order, once the client's say what it is."""
    closed_by: str | None = None
    """Who sent the first FIN or RST: client or server."""
    undecided: bool = False
    """No SYN seen, and the side taken for the client sent bytes no client starts
    with: they wait in ``pending`` for the other side's (see _roles_unsure)."""
    swapped: bool = False
    """The roles were swapped that way: the server spoke first."""
    tls: TlsDecryptor | None = None
    upgrade: _Upgrade | None = None
    plain_kind: str | None = None
    """What the cleartext turned out to be: h2c, h2 (over TLS), other, tls-other."""
    plain_pending: list[tuple[Direction, bytes, float]] = field(default_factory=list)
    h1: Http1Recording | None = None
    """An HTTP/1.x connection (cleartext that did not upgrade, or decrypted TLS),
    recorded as messages."""


@dataclass
class ImportSummary:
    """What an import found, for the command's report."""

    packets: int = 0
    tcp_segments: int = 0
    skipped_packets: int = 0
    """Not TCP over IPv4/IPv6 (UDP, ARP, fragments, unknown link types)."""
    connections: dict[str, int] = field(default_factory=dict)
    """TCP connections by kind: h2c, h2 (TLS, decrypted), tls (no key log),
    tls-undecrypted, tls-other (decrypted, not HTTP/2), other, late."""
    frames: int = 0
    http1_messages: int = 0
    gaps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """TLS connections the key log did not open, and why."""
    embedded_secrets: int = 0
    """TLS secrets the file itself carried (pcapng Decryption Secrets Blocks)."""
    torn: list[str] = field(default_factory=list)
    """The file ends inside a packet (a capture cut short): where."""
    tunnels: list[str] = field(default_factory=list)
    """HTTP/1.x connections that became tunnels (a CONNECT's 2xx, a 101) whose bytes
    were recorded as they are, not decoded: which, and what that means."""
    linktypes: set[int] = field(default_factory=set)


def import_packets(f: BinaryIO, writer: CaptureWriter, *, keylog: KeyLog | None = None,
                   progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Read the packet capture ``f`` and record its HTTP/2 connections to
    ``writer`` (cleartext ones, and TLS ones ``keylog`` decrypts); returns what
    was found. Raises PcapError for a file that is not a packet capture."""
    summary = ImportSummary()
    conns: dict[tuple[tuple[str, int], tuple[str, int]], _Connection] = {}
    ids = _Ids()
    t = 0.0
    holes: dict[_FlowKey, tuple[int, int]] = {}
    snapped: set[_FlowKey] = set()
    if f.seekable():
        start = f.tell()
        embedded: list[bytes] = []
        holes = _holes(f, embedded, snapped)
        f.seek(start)
        if embedded:  # a pcapng with its TLS secrets (editcap --inject-secrets)
            own = KeyLog.parse(b"\n".join(embedded).decode("ascii", "replace"))
            keylog = own if keylog is None else keylog.merged(own)
            summary.embedded_secrets = len(own)
    torn: list[str] = []
    for packet in packets(f, torn=torn):
        summary.packets += 1
        if progress is not None and not summary.packets % 4096:
            progress(summary.packets)
        seg = tcp_segment(packet)
        if seg is None:
            summary.skipped_packets += 1
            summary.linktypes.add(packet.linktype)
            continue
        summary.tcp_segments += 1
        t = seg.t
        key = (seg.src, seg.dst)
        conn = conns.get(key) or conns.get((seg.dst, seg.src))
        if conn is None:
            client, server = (seg.src, seg.dst)
            if seg.flags & SYN and seg.flags & ACK:  # SYN-ACK: the sender is the server
                client, server = seg.dst, seg.src
            conn = conns[(client, server)] = _Connection(None, client, server, seg.t)
        if seg.flags & SYN:
            conn.saw_syn = True
        direction = Direction.C2S if seg.src == conn.client else Direction.S2C
        side = conn.sides[direction]
        if side.first_seq is None and holes:
            flow = (seg.src, seg.dst, _data_seq(seg))
            side.stop_at = holes.get(flow)
            side.snap = flow in snapped
        chunks, hole = side.take(seg)
        for data in chunks:
            _deliver(conn, direction, data, seg.t, writer, summary, ids, keylog)
        if hole:
            _gap(conn, direction, hole, "the capture's snap length cut a packet" if side.snap
                 else "packets missing from the capture", writer, seg.t,
                 summary)
        if seg.missing and not side.gap:
            side.gap = True
            _gap(conn, direction, seg.missing, "the capture's snap length cut a packet",
                 writer, seg.t, summary)
        if seg.flags & (FIN | RST):
            side.fin = True
            if conn.closed_by is None:
                conn.closed_by = "client" if direction is Direction.C2S else "server"
        if seg.flags & RST or (conn.sides[0].fin and conn.sides[1].fin):
            _finish(conn, writer, seg.t, summary, ids, reset=bool(seg.flags & RST))
            if conns.pop((conn.client, conn.server), None) is None:  # (roles swapped later)
                conns.pop((conn.server, conn.client), None)
    for conn in list(conns.values()):
        _finish(conn, writer, t, summary, ids, ended=False)
    summary.torn.extend(torn)
    return summary


_FlowKey = tuple[tuple[str, int], tuple[str, int], int]
"""A direction of a TCP connection: (source, destination, its first sequence number)."""


def _holes(f: BinaryIO, secrets: list[bytes],
           snapped: set[_FlowKey] | None = None) -> dict[_FlowKey, tuple[int, int]]:
    """A first reading of the file: each direction's first hole that never fills —
    (sequence number, bytes missing) — so the second reading stops decoding
    that direction as soon as everything before the hole is delivered; the TLS
    key logs the file carries go to ``secrets``, and the directions whose hole
    is a packet the snap length cut (not a lost one) to ``snapped``."""
    sides: dict[tuple[tuple[str, int], tuple[str, int]], _Direction] = {}
    found: dict[_FlowKey, tuple[int, int]] = {}

    def note(side: _Direction, key: tuple[tuple[str, int], tuple[str, int]], at: int,
             missing: int, snap: bool = False) -> None:
        if side.first_seq is not None and (*key, side.first_seq) not in found:
            found[(*key, side.first_seq)] = (at, missing)
            if snap and snapped is not None:
                snapped.add((*key, side.first_seq))

    for packet in packets(f, secrets):
        seg = tcp_segment(packet)
        if seg is None:
            continue
        key = (seg.src, seg.dst)
        side = sides.get(key)
        if side is None or (seg.flags & SYN and side.first_seq is not None
                            and _data_seq(seg) != side.first_seq):
            side = sides[key] = _Direction()  # a new connection (or the ports reused)
        before = side.next_seq
        _, hole = side.take(seg)
        if hole:
            note(side, key, side.next_seq or 0, hole)
        elif seg.missing and not side.gap:
            side.gap = True
            note(side, key, (seg.seq + len(seg.payload)) % _SEQ_MOD
                 if before is not None else 0, seg.missing, snap=True)
    for key, side in sides.items():
        if side.ahead and not side.gap:
            note(side, key, side.next_seq or 0, side.hole())
    return found


class _Ids:
    """Connection ids for the capture, in the order connections turn out HTTP/2."""

    def __init__(self) -> None:
        self.next = 1

    def take(self) -> int:
        n, self.next = self.next, self.next + 1
        return n


def _deliver(conn: _Connection, direction: Direction, data: bytes, t: float,
             writer: CaptureWriter, summary: ImportSummary, ids: _Ids,
             keylog: KeyLog | None) -> None:
    """The next in-order bytes of a connection's TCP stream."""
    if conn.kind is None:
        if not conn.saw_syn:
            was = conn.swapped
            if _roles_unsure(conn, direction, data):
                conn.pending.append((direction, data, t))
                return
            if conn.swapped and not was:  # these bytes are the client's after all
                direction = direction.peer
        if direction is Direction.S2C and conn.undecided:  # (its start is not captured)
            conn.pending.clear()
            conn.kind = "late"
            _count_kind(summary, "late")
            return
        if direction is Direction.S2C:
            conn.pending.append((direction, data, t))
            return
        conn.kind = _kind(conn, data)
        early, conn.pending = conn.pending, []
        if conn.kind == "tls" and keylog is not None:
            conn.tls = TlsDecryptor(keylog)
        elif conn.kind == "http1":
            conn.upgrade = _Upgrade()
        elif conn.kind != "h2c":
            _count_kind(summary, conn.kind)  # nothing to decode in it
            return
        # In capture order: a server that speaks first (an h2c server's SETTINGS)
        # before the client, whose first bytes may already acknowledge it.
        for d, chunk, te in [*early, (direction, data, t)]:
            _deliver(conn, d, chunk, te, writer, summary, ids, keylog)
        return
    tls = conn.tls
    if tls is None:
        if conn.kind == "h2c":
            _plain(conn, direction, data, t, writer, summary, ids)
        elif conn.upgrade is not None:
            _http1(conn, direction, data, t, writer, summary, ids)
        return
    was_failed = tls.failed[direction]
    for chunk in tls.feed(int(direction), data):
        _plain(conn, direction, chunk, t, writer, summary, ids)
    if tls.failed[direction] and not was_failed and conn.tap is not None:
        who = "client" if direction is Direction.C2S else "server"
        text = (f"{address_text(conn.client)} → {address_text(conn.server)}: {tls.problem}; the "
                f"{who}'s frames after that point are not decoded")
        summary.problems.append(text)
        if conn.conn_id is not None:
            writer.lost(conn.conn_id, count=0, reason=text, t=t, wall=t, unit="bytes")
            _excerpt(conn)


def _plain(conn: _Connection, direction: Direction, data: bytes, t: float,
           writer: CaptureWriter, summary: ImportSummary, ids: _Ids) -> None:
    """The next cleartext bytes (TCP payload for h2c, decrypted for TLS)."""
    if conn.h1 is not None:
        summary.http1_messages += conn.h1.feed(direction, data, t)
        return
    if conn.tap is None:
        if conn.plain_kind is not None:
            return  # not HTTP/2
        if direction is Direction.S2C:
            conn.plain_pending.append((direction, data, t))
            return
        tls = conn.tls
        if not data.startswith(CONNECTION_PREFACE[:len(data)]):
            if tls is not None and looks_like_http1_request(data):
                early, conn.plain_pending = conn.plain_pending, []
                _record_http1(conn, [*early, (direction, data, t)], writer, summary, ids)
                return
            conn.plain_kind = "tls-other" if tls is not None else "other"
            _count_kind(summary, conn.plain_kind)
            return
        tap = _open_tap(conn, "h2" if tls is not None else "h2c", writer, summary, ids)
        early, conn.plain_pending = conn.plain_pending, []
        for d, chunk, te in [*early, (direction, data, t)]:  # in capture order
            summary.frames += frame_count(tap.feed(d, chunk, te))
        return
    summary.frames += frame_count(conn.tap.feed(direction, data, t))


def _open_tap(conn: _Connection, protocol: str, writer: CaptureWriter,
              summary: ImportSummary, ids: _Ids, via: str = "packet capture"
              ) -> RecordingObserver:
    """The connection is HTTP/2: its CONNECTION record, and the tap its bytes go through."""
    conn.plain_kind = protocol
    _count_kind(summary, protocol)
    conn.conn_id = ids.take()
    conn.tap = RecordingObserver(writer, conn.conn_id, _meta(conn, protocol, via),
                                 t=conn.started, wall_clock=True)
    for side in conn.sides:  # a gap found before the connection turned out HTTP/2
        if side.lost is not None:
            writer.lost(conn.conn_id, count=side.lost[0], reason=side.lost[1],
                        t=conn.started, wall=conn.started, unit="bytes")
            _excerpt(conn)
    return conn.tap


def _meta(conn: _Connection, protocol: str, via: str = "packet capture") -> dict[str, Any]:
    """A connection record's metadata."""
    meta: dict[str, Any] = {
        "client": {"ip": conn.client[0], "port": conn.client[1]},
        "server": {"ip": conn.server[0], "port": conn.server[1]},
        "mode": "pcap", "protocol": protocol, "via": via, "target": address_text(conn.server),
    }
    tls = conn.tls
    if tls is not None:
        meta["client_tls"] = tls.tls_meta()
        if tls.client_hello is not None and tls.client_hello.sni:
            sni = tls.client_hello.sni
            meta["sni"] = sni
            meta["server"]["host"] = sni
            meta["target"] = address_text((sni, conn.server[1]))  # the name the client asked for
    return meta


def _http1(conn: _Connection, direction: Direction, data: bytes, t: float,
           writer: CaptureWriter, summary: ImportSummary, ids: _Ids) -> None:
    """HTTP/1.1 until an ``Upgrade: h2c`` request gets its 101 (RFC 7540 §3.2): then
    stream 1 is that request (the observer's ``upgrade_h2c``, an H2C_UPGRADE
    record) and the bytes after the two heads are HTTP/2 frames."""
    up = conn.upgrade
    assert up is not None
    if conn.tap is not None:
        summary.frames += frame_count(conn.tap.feed(direction, data, t))
        return
    if conn.h1 is not None:
        summary.http1_messages += conn.h1.feed(direction, data, t)
        return
    if up.gave_up:
        return
    up.seen.append((direction, data, t))
    (up.client if direction is Direction.C2S else up.server).extend(data)
    try:
        if up.request is None:
            up.request = _head(up.client, parse_request_head)
            if up.request is None:
                return
            if "h2c" not in up.request.tokens("upgrade"):
                raise Http1Error("no Upgrade: h2c")
        response = _head(up.server, parse_response_head)
        if response is None:
            return
        if response.status != 101:
            raise Http1Error(f"the server answered {response.status}")
    except Http1Error:
        up.gave_up = True
        _record_http1(conn, up.seen, writer, summary, ids)
        up.seen = []
        return
    up.seen = []
    settings, headers = h2c_upgrade(up.request)
    tap = _open_tap(conn, "h2c", writer, summary, ids, via="packet capture, Upgrade: h2c")
    summary.frames += frame_count(tap.upgrade_h2c(http2_settings=settings or b"",
                                             request_headers=headers, t=t))
    # The server's frames follow its 101; the client's preface follows the 101 too.
    for d, rest in ((Direction.S2C, up.server), (Direction.C2S, up.client)):
        if rest:
            summary.frames += frame_count(tap.feed(d, bytes(rest), t))
    up.client.clear()
    up.server.clear()


def _head(buf: bytearray, parse: Callable[[bytes], _H]) -> _H | None:
    """The HTTP/1.1 head at the start of ``buf``, taken out of it; None while it is
    incomplete. Raises Http1Error for one that does not parse or never ends."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise Http1Error(f"no end of the head in {MAX_HEAD} bytes")
        return None
    head = parse(bytes(buf[:end + 4]))
    del buf[:end + 4]
    return head


def _record_http1(conn: _Connection, chunks: list[tuple[Direction, bytes, float]],
                  writer: CaptureWriter, summary: ImportSummary, ids: _Ids) -> None:
    """The connection speaks HTTP/1.x (and will not upgrade to h2c): record it as
    messages, as the proxy records one, from its first byte."""
    conn.plain_kind = "http1"
    _count_kind(summary, "http1")
    conn.conn_id = ids.take()
    conn.h1 = Http1Recording(writer, conn.conn_id, _meta(conn, "http/1.1"), conn.started)
    for d, chunk, te in chunks:
        summary.http1_messages += conn.h1.feed(d, chunk, te)


def _count_kind(summary: ImportSummary, kind: str) -> None:
    summary.connections[kind] = summary.connections.get(kind, 0) + 1


def _roles_unsure(conn: _Connection, direction: Direction, data: bytes) -> bool:
    """Without the handshake, the side that sent first was taken for the client; a
    server that speaks first (an h2c server's SETTINGS on accept) makes that wrong.
    While the first side's bytes are no client's start, wait for the other side's:
    if they are (the preface, a ClientHello, a request), the roles are swapped.
    True while the bytes just go to ``pending``."""
    if direction is Direction.C2S:
        if conn.undecided or (not conn.pending and _kind(conn, data) == "late"):
            conn.undecided = True
            return True
        return False
    if conn.undecided and _kind(conn, data) in ("h2c", "tls", "http1"):
        conn.client, conn.server = conn.server, conn.client
        conn.sides = (conn.sides[1], conn.sides[0])
        conn.pending = [(d.peer, chunk, te) for d, chunk, te in conn.pending]
        conn.undecided = False
        conn.swapped = True
    return False


def _kind(conn: _Connection, first: bytes) -> str:
    """What the client's first bytes say: h2c (the preface), tls, other, or late."""
    if first.startswith(CONNECTION_PREFACE[:len(first)]) and len(first) >= 3:
        return "h2c"
    if first[:1] == bytes([_TLS_HANDSHAKE]) and first[1:2] == b"\x03":
        return "tls"
    if looks_like_http1_request(first):
        return "http1"  # an Upgrade: h2c may follow (RFC 7540 §3.2)
    if not conn.saw_syn:
        return "late"
    return "other"


def frame_count(events: list[Event]) -> int:
    """How many frames ``events`` (a tap's output) hold."""
    return sum(1 for ev in events if type(ev) is FrameObserved)


def _gap(conn: _Connection, direction: Direction, missing: int, why: str,
         writer: CaptureWriter, t: float, summary: ImportSummary) -> None:
    who = "client" if direction is Direction.C2S else "server"
    side = conn.sides[direction]
    text = (f"{address_text(conn.client)} → {address_text(conn.server)}: {missing} bytes of the "
            f"{who}'s stream are not in the capture after byte {side.delivered} ({why}); "
            "its frames after that point are not decoded")
    summary.gaps.append(text)
    side.lost = (missing, text)
    if conn.tap is not None and conn.conn_id is not None:
        writer.lost(conn.conn_id, count=missing, reason=text, t=t, wall=t, unit="bytes")
        _excerpt(conn)


def _excerpt(conn: _Connection) -> None:
    """After the LOST record, the observer judges the rest as an excerpt (as every
    reader does after it: :func:`proxy.capture.replay.lost_part`)."""
    if conn.tap is not None:
        lost_part(conn.tap.observer)


def _finish(conn: _Connection, writer: CaptureWriter, t: float, summary: ImportSummary,
            ids: _Ids, *, reset: bool = False, ended: bool = True) -> None:
    for direction in (Direction.C2S, Direction.S2C):
        side = conn.sides[direction]
        if side.ahead and not side.gap:
            side.gap = True
            _gap(conn, direction, side.hole(), "packets missing from the capture", writer, t,
                 summary)
    if conn.kind is None and conn.pending:
        _count_kind(summary, "late" if conn.undecided else "other")
    elif conn.upgrade is not None and conn.tap is None and conn.h1 is None \
            and not conn.upgrade.gave_up:  # HTTP/1.x that may have upgraded, had it gone on
        _record_http1(conn, conn.upgrade.seen, writer, summary, ids)
    elif conn.tls is not None and conn.plain_kind is None and conn.tap is None:
        _count_kind(summary, "tls-undecrypted")
        if conn.tls.problem:
            summary.problems.append(f"{address_text(conn.client)} → {address_text(conn.server)}: "
                                    f"{conn.tls.problem}")
    error = "reset (TCP RST)" if reset else (
        None if ended else "still open when the capture ended")
    if conn.tap is not None:
        conn.tap.close(t, closed_by=conn.closed_by if ended else None, error=error,
                       cut=not ended)
    elif conn.h1 is not None:
        summary.http1_messages += conn.h1.close(
            t, closed_by=conn.closed_by if ended else None, error=error)
        if conn.h1.splitter.tunnel:
            summary.tunnels.append(
                f"{address_text(conn.client)} → {address_text(conn.server)}: the bytes after "
                "its CONNECT's 2xx (or its 101) are kept as they are, not decoded — TLS inside "
                "a proxy's tunnel is not decrypted; capture between the proxy and the server, "
                "or record with h2scope as the proxy, to see it")


def address_text(addr: tuple[str, int]) -> str:
    """``host:port``, an IPv6 host in brackets."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
