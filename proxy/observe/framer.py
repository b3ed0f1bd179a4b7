"""Frame boundaries without decoding: the observer of a proxy that only records.

When the live UI runs, the proxy is the UI's child process and the UI
decodes every frame itself, from the capture the child writes (architecture
principle 6; docs/architecture.md). All the child needs from an observer is
where each frame starts and ends, so that the recorder writes one FRAME record
per frame. Running the whole :class:`~proxy.observe.connection.ConnectionObserver`
there too decoded every header block and modelled every stream twice, once
in each process, and the first result was thrown away.

:class:`FrameSplitter` has the observer's interface (``feed``, ``close``,
``upgrade_h2c``) and does only the framing: the client's connection preface,
then 9-byte headers and their payloads, with the observer's rule for bytes
that are not HTTP/2 (an unknown type or a first frame claiming megabytes more
than the receiver accepts, or a first frame of an unknown type claiming more).
It reports what the recorder reads, in wire order:
:class:`PrefaceObserved`, :class:`FramesCut` (the frames of one call) and
:class:`Desynced`. The bytes are kept exactly either way, so a reader of the
capture, re-running the full observer, decodes what the wire carried whatever
this class decided.
"""

from __future__ import annotations

from collections.abc import Mapping

from proxy.observe.enums import (
    CONNECTION_PREFACE,
    IMPLAUSIBLE_FRAME,
    Direction,
    FrameType,
    not_a_preface,
    type_name,
)
from proxy.observe.events import Desynced, Event, PrefaceObserved
from proxy.observe.findings import Severity
from proxy.observe.findings import finding as _finding
from proxy.observe.records import record

_HEADER = 9
_DEFAULT_MAX = 16_384
_KNOWN = frozenset(int(t) for t in FrameType)
_SETTINGS = int(FrameType.SETTINGS)
_MAX_FRAME_SIZE = 0x5


@record
class FramesCut(Event):
    """Complete frames of one direction, in wire order, from one :meth:`FrameSplitter.feed`."""

    frames: tuple[bytes, ...]
    """Each frame's raw bytes, 9-byte header included."""


class FrameSplitter:
    """One connection's two directions cut into frames; nothing decoded."""

    def __init__(self, *, preface: str = "required") -> None:
        self._preface = preface
        """``required``/``optional`` while the client's preface is still to come, then ``done``."""
        self._buffer = (bytearray(), bytearray())
        self._frames = [0, 0]
        self._desynced = [False, False]
        self._offset = [0, 0]
        """Per direction: the bytes framed so far (the preface included)."""
        self._accepts = [_DEFAULT_MAX, _DEFAULT_MAX]
        """Per direction: the largest frame its *receiver* has said it accepts."""

    def feed(self, direction: Direction, data: bytes | bytearray | memoryview,
             t: float) -> list[Event]:
        d = int(direction)
        events: list[Event] = []
        if self._desynced[d]:
            return events
        buf = self._buffer[d]
        if buf:
            data = b"".join((buf, data))
            buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        pos = 0
        if d == 0 and self._preface != "done":
            have = data[:24]
            if not CONNECTION_PREFACE.startswith(have) and self._preface == "optional":
                self._preface = "done"
            elif not CONNECTION_PREFACE.startswith(have):
                self._desync(d, events, t, not_a_preface(have), "RFC 9113 §3.4", 0)
                return events
            elif len(have) < 24:
                buf += data
                return events
            else:
                self._preface = "done"
                events.append(PrefaceObserved(t=t, direction=direction))
                pos = 24
        n = len(data)
        frames: list[bytes] = []
        accepts = self._accepts[d]
        while n - pos >= _HEADER:
            length = int.from_bytes(data[pos:pos + 3], "big")
            ftype = data[pos + 3]
            first = self._frames[d] == 0
            if length > accepts and (ftype not in _KNOWN or first) and (
                    length > IMPLAUSIBLE_FRAME or (ftype not in _KNOWN and first)):
                if frames:
                    events.append(FramesCut(t=t, direction=direction, frames=tuple(frames)))
                self._desync(d, events, t, f"a {type_name(ftype)} frame header claims "
                             f"{length} bytes, more than the receiver's SETTINGS_MAX_FRAME_SIZE "
                             f"{accepts}: these bytes are not HTTP/2 frames", "RFC 9113 §4.1", pos)
                return events
            end = pos + _HEADER + length
            if end > n:
                break
            raw = data if pos == 0 and end == n else data[pos:end]
            if ftype == _SETTINGS and not data[pos + 4] & 1:
                self._settings(d, raw)
            frames.append(raw)
            self._frames[d] += 1
            pos = end
        if frames:
            events.append(FramesCut(t=t, direction=direction, frames=tuple(frames)))
        self._offset[d] += pos
        if pos < n:
            buf += data[pos:] if pos else data
        return events

    def _settings(self, sender: int, raw: bytes) -> None:
        """A SETTINGS frame from ``sender``: what it accepts bounds the other direction."""
        for i in range(_HEADER, len(raw) - 5, 6):
            if int.from_bytes(raw[i:i + 2], "big") == _MAX_FRAME_SIZE:
                value = int.from_bytes(raw[i + 2:i + 6], "big")
                other = 1 - sender
                if value > self._accepts[other]:
                    self._accepts[other] = value

    def _desync(self, d: int, events: list[Event], t: float, why: str, rfc: str,
                pos: int) -> None:
        """Framing is lost ``pos`` bytes into this call's data."""
        self._desynced[d] = True
        self._buffer[d].clear()
        events.append(Desynced(t=t, direction=Direction(d), offset=self._offset[d] + pos,
                               finding=_finding("desynced", Severity.ERROR, rfc, why)))

    def close(self, t: float, closed_by: str | None = None,
              ends: Mapping[Direction, int] | None = None) -> list[Event]:
        """Nothing to report: the recorder keeps an incomplete frame's bytes itself."""
        return []

    def upgrade_h2c(self, *, http2_settings: bytes, request_headers: object,
                    t: float) -> list[Event]:
        """After ``Upgrade: h2c`` the client sends the preface: nothing else changes here."""
        return []
