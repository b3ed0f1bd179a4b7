"""The h2scope capture file format, version 1: constants and record layout.

A capture is the raw truth of what crossed the proxy (architecture principle 6):
frame bytes exactly as relayed, with timestamps, direction and connection
metadata. Decoded views are never stored; readers re-run the observer.

Layout (all integers big-endian, like HTTP/2 itself)::

    file header:  magic  "H2SCOPE\\n"          8 bytes
                  version                      u16
                  reserved (0)                 u16
                  header JSON length           u32
                  header JSON (UTF-8)          n bytes
    records:      sync   0x8E 0x52             2 bytes
                  record type                  u8   (:class:`RecordType`)
                  record flags                 u8   (:class:`RecordFlag`)
                  body length                  u32
                  connection id                u32
                  sequence number              u64  (global, every record)
                  t (observer clock, seconds)  f64  (the ``t`` fed to the observer)
                  wall clock (Unix seconds)    f64
                  CRC-32 of the 36 bytes above and the body   u32
                  (of the 36 bytes only if the flag UNCHECKED is set)
                  body                         n bytes

A FRAME record's body starts with the 9-byte frame header, so one
``struct`` unpack reads both headers when indexing. The full description, with
the reasons for each choice and benchmark figures, is ``docs/capture-format.md``.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag

MAGIC = b"H2SCOPE\n"
GZIP_MAGIC = b"\x1f\x8b"
FORMAT_NAME = "h2scope-capture"
VERSION = 1

FILE_HEADER = struct.Struct(">8sHHI")
"""Magic, version, reserved, length of the JSON header that follows."""
MAX_HEADER_JSON = 1 << 20

SYNC = b"\x8eR"
RECORD_PREFIX = struct.Struct(">2sBBIIQdd")
"""Everything the CRC covers before the body: sync .. wall clock (36 bytes)."""
CRC = struct.Struct(">I")
RECORD_HEADER_SIZE = RECORD_PREFIX.size + CRC.size  # 40
RECORD_HEADER = struct.Struct(">2sBBIIQddI")
FRAME_RECORD_HEADER = struct.Struct(">2sBBIIQddIHBBBL")
"""A record header immediately followed by an HTTP/2 frame header (RFC 9113 §4.1)."""
MAX_BODY = (1 << 24) + 64
"""No record body is larger than the largest HTTP/2 frame (2^24-1 payload + 9)
plus slack: a larger length field means a corrupt record, not a big one."""


class RecordType(IntEnum):
    """What a record holds. Readers skip (and report) types they do not know."""

    CONNECTION = 1
    """A connection opened. Body: JSON metadata (addresses, TLS, ALPN, ...)."""
    FRAME = 2
    """One HTTP/2 frame as relayed: header + payload (DATA payload maybe capped)."""
    RAW = 3
    """Bytes of an h2 connection that are not frames: the preface, bytes after a
    direction desynced, an incomplete frame left at close."""
    H2C_UPGRADE = 4
    """An HTTP/1.1 ``Upgrade: h2c`` succeeded. Body: JSON (HTTP2-Settings, request)."""
    HTTP1 = 5
    """One HTTP/1.x message: u32 head length, the head as sent, then the body."""
    CLOSE = 6
    """A connection ended. Body: JSON (who closed, error)."""
    LOST = 7
    """The proxy could not record something (counted, never silent). Body: JSON."""
    END = 8
    """The writer closed the file cleanly. Body: JSON (record counts)."""


class RecordFlag(IntFlag):
    S2C = 0x01
    """Direction: set for server→client; clear for client→server."""
    TRUNCATED = 0x02
    """FRAME: the DATA payload was cut to ``max_data_bytes`` (the frame header's
    length still says the original size). HTTP1: the body was cut."""
    PREFACE = 0x04
    """RAW: these bytes are the client connection preface (RFC 9113 §3.4)."""
    UNCHECKED = 0x08
    """The CRC covers the 36 bytes before it, not the body. Only the live UI's
    private scratch capture writes such records (a large body's CRC is most of
    what recording costs beside the relay, and that file is read back within
    seconds by the process that started its writer); saving it checksums every
    body (``docs/capture-format.md``)."""


JSON_RECORDS = frozenset({RecordType.CONNECTION, RecordType.H2C_UPGRADE, RecordType.CLOSE,
                          RecordType.LOST, RecordType.END})
KNOWN_TYPES = frozenset(int(t) for t in RecordType)
HTTP1_HEAD_LENGTH = struct.Struct(">I")
