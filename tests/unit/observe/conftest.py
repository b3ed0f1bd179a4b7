"""The vocabulary of the observer's tests.

Frames are built with ``hyperframe`` and header blocks with ``hpack.Encoder``:
independent encoders, so a test that passes means our decoder agrees with
another implementation, not with itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import h2.config
import h2.connection
import hpack
import pytest
from hyperframe import frame as hf

from proxy.observe.connection import ConnectionObserver
from proxy.observe.enums import CONNECTION_PREFACE, Direction
from proxy.observe.events import Event, FrameObserved
from proxy.observe.findings import Finding

C2S, S2C = Direction.C2S, Direction.S2C

REQUEST = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"),
           (":path", "/")]
RESPONSE = [(":status", "200"), ("content-type", "text/plain")]


class FrameFactory:
    """Serialized frames for one connection, with a live HPACK encoder per side."""

    def __init__(self) -> None:
        self.encoders = {C2S: hpack.Encoder(), S2C: hpack.Encoder()}

    def block(self, direction: Direction, headers: Iterable[tuple[str, str]]) -> bytes:
        return self.encoders[direction].encode(list(headers))

    def settings(self, ack: bool = False, **values: int) -> bytes:
        f = hf.SettingsFrame(0, flags=["ACK"] if ack else [])
        for name, v in values.items():
            f.settings[getattr(hf.SettingsFrame, name.upper())] = v
        return f.serialize()

    def headers(self, direction: Direction, stream_id: int, headers: Iterable[tuple[str, str]],
                *, flags: Iterable[str] = ("END_HEADERS",), **kw: object) -> bytes:
        f = hf.HeadersFrame(stream_id, flags=list(flags), **kw)
        f.data = self.block(direction, headers)
        return f.serialize()

    def data(self, stream_id: int, payload: bytes, *, flags: Iterable[str] = (),
             pad_length: int = 0) -> bytes:
        f = hf.DataFrame(stream_id, data=payload, flags=list(flags))
        if pad_length:
            f.flags.add("PADDED")
            f.pad_length = pad_length
        return f.serialize()

    def window_update(self, stream_id: int, increment: int) -> bytes:
        return hf.WindowUpdateFrame(stream_id, window_increment=increment).serialize()

    def rst(self, stream_id: int, code: int = 8) -> bytes:
        return hf.RstStreamFrame(stream_id, error_code=code).serialize()

    def ping(self, opaque: bytes = b"12345678", ack: bool = False) -> bytes:
        return hf.PingFrame(0, opaque_data=opaque, flags=["ACK"] if ack else []).serialize()


class Conversation:
    """An observer plus a factory: feed frames by direction, collect events."""

    def __init__(self, *, preface: bool = True, settings: bool = True) -> None:
        self.obs = ConnectionObserver()
        self.f = FrameFactory()
        self.events: list[Event] = []
        self.t = 0.0
        if preface:
            self.send(C2S, CONNECTION_PREFACE)
        if settings:
            self.send(C2S, self.f.settings())
            self.send(S2C, self.f.settings())
            self.send(C2S, self.f.settings(ack=True))
            self.send(S2C, self.f.settings(ack=True))

    def send(self, direction: Direction, data: bytes, dt: float = 0.001) -> list[Event]:
        self.t += dt
        new = self.obs.feed(direction, data, self.t)
        self.events.extend(new)
        return new

    def frames(self, new: list[Event] | None = None) -> list[FrameObserved]:
        return [e for e in (self.events if new is None else new) if isinstance(e, FrameObserved)]

    def findings(self, new: list[Event] | None = None) -> list[str]:
        return [x.code for e in self.frames(new) for x in e.findings]

    def finding_objects(self, new: list[Event] | None = None) -> list[Finding]:
        return [x for e in self.frames(new) for x in e.findings]


@pytest.fixture
def factory() -> FrameFactory:
    return FrameFactory()


@pytest.fixture
def conv() -> Conversation:
    return Conversation()


def h2_pair(**client_settings: int) -> tuple[h2.connection.H2Connection,
                                             h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    return client, server


@pytest.fixture
def make_conv() -> type[Conversation]:
    return Conversation
