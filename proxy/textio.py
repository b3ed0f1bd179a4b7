"""Writing decoded text that may hold bytes that were not UTF-8.

Header names and values are decoded with ``surrogateescape`` (lossless: see
:mod:`proxy.observe.hpack_annotated`), so a ``-bin`` value sent raw or a broken
path is text with lone surrogates, which a UTF-8 stream refuses to encode. The
error handler registered here writes each such byte as ``\\xNN``, as the log
lines show it (:func:`proxy.observe.describe.shown`), and anything else it
cannot encode as a backslash escape: a terminal or a file always gets valid
text, never a traceback.
"""

from __future__ import annotations

import codecs
import io
import sys

ESCAPE_BYTES = "h2scope.bytes"


def _escape(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start:exc.end]
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else
                   c.encode("ascii", "backslashreplace").decode("ascii")
                   for c in text), exc.end


codecs.register_error(ESCAPE_BYTES, _escape)


def escape_bytes_on_standard_streams() -> None:
    """Make stdout and stderr write undecodable bytes as ``\\xNN`` (see the module)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=ESCAPE_BYTES)
