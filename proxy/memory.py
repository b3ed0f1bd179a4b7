"""Giving memory back to the system once a burst of connections is over.

A relay holds large buffers while connections are busy (up to 256 KiB per
read, TLS records, frames waiting for a slow reader). Freed, they mostly stay
in the allocator's heap: the C library returns the top of the heap to the
system, not the free pages in the middle of it, so the resident size after a
burst is its high-water mark and depends on how many connections happened to
be open at once. :func:`release` collects the young generations and runs glibc's
``malloc_trim(0)``, which gives those free pages back; the server calls it
when the last connection has closed (``proxy/server.py``), so the resident
size then says what is really held.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim  # glibc; other C libraries: nothing to do
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release() -> bool:
    """Collect the young garbage cycles and return free heap pages; True if pages
    went back. (Full collections are left to their schedule: in the UI's process
    they wait for a moment without input, ``ui/model/heap.py``.)"""
    gc.collect(1)
    return bool(_TRIM(0)) if _TRIM is not None else False
