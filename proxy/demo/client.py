"""The demo's client: interleaved HTTP/2 traffic through the proxy, made to show things.

One round on one connection (CONNECT through the proxy, TLS trusting the
h2scope CA, ALPN h2): a page and its subresources as concurrent streams with
different priorities (RFC 7540 weights and RFC 9218 ``priority`` headers), a
large download that stalls because the client holds back WINDOW_UPDATE and
then resumes, a server push, a POST answered with trailers, a PING, a stream
cancelled with RST_STREAM, and a smaller SETTINGS_HEADER_TABLE_SIZE than the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

SMALL_WINDOW = 32_768


def _text_headers(headers: object) -> dict[str, str]:
    """h2's header list as text (it is text already with ``header_encoding``)."""
    out: dict[str, str] = {}
    for k, v in headers or []:  # type: ignore[attr-defined]
        out[k.decode() if isinstance(k, bytes) else str(k)] = \
            v.decode() if isinstance(v, bytes) else str(v)
    return out


class DemoClientError(Exception):
    """The demo traffic could not be made; the message says at which step."""


@dataclass
class _Stream:
    path: str
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: str | None = None
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    hold_window: bool = False
    """Acknowledge this stream's DATA late, so its window runs dry (a stall)."""


@dataclass
class RoundResult:
    statuses: dict[str, str]
    pushed: list[str]
    bytes_received: int
    ping_rtt: float | None


class DemoClient:
    def __init__(self, proxy: tuple[str, int], origin: tuple[str, int], ca_file: Path,
                 *, server_name: str = "localhost") -> None:
        self.proxy = proxy
        self.origin = origin
        self.ca_file = ca_file
        self.server_name = server_name

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(*self.proxy)
        target = f"{self.server_name}:{self.origin[1]}"
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if " 200" not in status_line:
            raise DemoClientError(f"the proxy refused CONNECT {target}: {status_line}")
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.set_alpn_protocols(["h2"])
        await writer.start_tls(ctx, server_hostname=self.server_name)
        ssl_obj = writer.get_extra_info("ssl_object")
        if ssl_obj is None or ssl_obj.selected_alpn_protocol() != "h2":
            raise DemoClientError("TLS through the proxy did not negotiate h2")
        return reader, writer

    async def run_round(self, round_no: int = 0) -> RoundResult:
        reader, writer = await self._connect()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        # A small window makes the large download outgrow it: a visible stall.
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: SMALL_WINDOW,
            h2.settings.SettingCodes.ENABLE_PUSH: 1,
            # A smaller HPACK table than the default: the server's first header
            # block must start with a table size update.
            h2.settings.SettingCodes.HEADER_TABLE_SIZE: 256,
        })
        conn.initiate_connection()
        streams: dict[int, _Stream] = {}
        pushed: list[str] = []
        pong = asyncio.Event()
        ping_sent: list[float] = []
        rtt: list[float] = []
        flushes: set[asyncio.Future[None]] = set()
        failure: list[str] = []
        loop = asyncio.get_running_loop()

        async def flush() -> None:
            data = conn.data_to_send()
            if data:
                writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        async def read_loop() -> None:
            while True:
                data = await reader.read(65536)
                if not data:
                    for s in streams.values():
                        s.done.set()
                    return
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    failure.append(f"the client's h2 rejected the server's bytes: {exc}")
                    raise
                for ev in events:
                    on_event(ev)
                await flush()

        def on_event(ev: h2.events.Event) -> None:
            sid = getattr(ev, "stream_id", None) or 0
            s = streams.get(sid)
            if isinstance(ev, h2.events.ResponseReceived) and s is not None:
                s.status = _text_headers(ev.headers).get(":status")
            elif isinstance(ev, h2.events.DataReceived) and s is not None:
                s.body.extend(ev.data or b"")
                n = ev.flow_controlled_length or 0
                if s.hold_window:
                    loop.call_later(0.15, ack, n, sid)
                else:
                    conn.acknowledge_received_data(n, sid)
            elif isinstance(ev, h2.events.TrailersReceived) and s is not None:
                s.trailers = [(str(k), str(v)) for k, v in ev.headers or []]
            elif isinstance(ev, h2.events.PushedStreamReceived):
                path = _text_headers(ev.headers).get(":path", "?")
                pushed.append(str(path))
                streams[ev.pushed_stream_id or 0] = _Stream(str(path))
            elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset) and s is not None:
                s.done.set()
            elif isinstance(ev, h2.events.PingAckReceived):
                if ping_sent:
                    rtt.append(loop.time() - ping_sent[0])
                pong.set()

        def ack(n: int, sid: int) -> None:
            with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                conn.acknowledge_received_data(n, sid)
                task = asyncio.ensure_future(flush())
                flushes.add(task)
                task.add_done_callback(flushes.discard)

        def request(path: str, *, method: str = "GET", body: bytes = b"", urgency: int = 3,
                    weight: int | None = None, depends_on: int | None = None,
                    hold: bool = False) -> int:
            sid = conn.get_next_available_stream_id()
            headers = [(":method", method), (":scheme", "https"),
                       (":authority", f"{self.server_name}:{self.origin[1]}"), (":path", path),
                       ("user-agent", "h2scope-demo/1"), ("accept", "*/*"),
                       ("priority", f"u={urgency}" + (", i" if hold else ""))]
            conn.send_headers(sid, headers, end_stream=not body, priority_weight=weight,
                              priority_depends_on=depends_on)
            if body:
                conn.send_data(sid, body)
                conn.send_headers(sid, [("x-request-trailer", "yes")], end_stream=True)
            streams[sid] = _Stream(path, hold_window=hold)
            return sid

        await flush()
        reader_task = asyncio.ensure_future(read_loop())
        try:
            page = request("/", urgency=0, weight=256)
            request("/app.js", urgency=1, weight=220, depends_on=page)
            for i in range(1, 7):
                request(f"/img/{i}.png?round={round_no}", urgency=5, weight=32 * i % 256 or 1)
            big = request("/big", urgency=6, weight=8, hold=True)
            request("/api/echo", method="POST", body=b'{"hello": "h2scope"}', urgency=2)
            ping_sent.append(loop.time())
            conn.ping(b"demo%04d" % round_no)
            slow = request("/slow", urgency=7)
            await flush()
            await asyncio.sleep(0.12)
            with contextlib.suppress(h2.exceptions.ProtocolError,
                                     h2.exceptions.StreamClosedError):
                conn.reset_stream(slow, error_code=8)  # CANCEL
                streams[slow].done.set()
            await asyncio.wait_for(pong.wait(), 10)
            await asyncio.wait_for(streams[big].done.wait(), 30)
            request(f"/img/7.png?after-the-download={round_no}", urgency=4)
            await flush()
            await asyncio.wait_for(
                asyncio.gather(*(s.done.wait() for s in list(streams.values()))), 30)
            conn.close_connection()
            await flush()
        except TimeoutError as exc:
            waiting = [s.path for s in streams.values() if not s.done.is_set()]
            if not pong.is_set():
                waiting.append("PING ACK")
            raise DemoClientError("the demo server did not answer in time; still waiting for "
                                  f"{', '.join(waiting) or 'nothing?'} "
                                  f"({conn.state_machine.state.name}) "
                                  f"{'; '.join(failure)}") from exc
        finally:
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader_task
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return RoundResult(
            statuses={s.path: s.status or "reset" for s in streams.values()},
            pushed=pushed, bytes_received=sum(len(s.body) for s in streams.values()),
            ping_rtt=rtt[0] if rtt else None)
