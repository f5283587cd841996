"""The C allocator's thresholds: memory freed by one request stays mapped for the next.

Python hands every bytes object over 512 bytes to the C allocator. glibc gives
memory at the top of its heap back to the kernel as soon as more than
``M_TRIM_THRESHOLD`` of it is free (128 KiB), and serves a block over
``M_MMAP_THRESHOLD`` (128 KiB at first) with a mapping of its own. A worker
that reads, copies and frees a few 50 KB bodies per request frees more than
128 KiB at the top after nearly every request, so the kernel takes the pages
back and the next request faults them in again, one zeroed 4 KiB page at a
time: 40 % of the time spent copying a 50 KB body went to those faults
(docs/performance.md). ``keep_freed_memory`` raises both thresholds for the
process: up to ``TRIM_BYTES`` stays free at the top of the heap, and blocks
under ``MMAP_BYTES`` come from the heap. The price is at most ``TRIM_BYTES``
of resident memory the process would otherwise have returned.

The proxy workers and the comparison process call it once, at start. An
operator's own tuning wins: it does nothing when the environment already sets
glibc's malloc tunables. Where the C library is not glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

__all__ = ["MMAP_BYTES", "TRIM_BYTES", "keep_freed_memory"]

TRIM_BYTES = 8 * 1024 * 1024
"""Free memory at the top of the heap the process keeps instead of returning it."""
MMAP_BYTES = 4 * 1024 * 1024
"""Blocks from this size on get a mapping of their own, returned when freed."""

# mallopt's parameter numbers, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_OPERATOR_VARIABLES = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


def _glibc() -> bool:
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        return False
    return version is not None and version.startswith("glibc")


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> bool:
    """Set this process's thresholds; True when they were set.

    False, changing nothing, when ``environ`` tunes glibc's malloc itself
    (``MALLOC_TRIM_THRESHOLD_`` and its siblings, or ``glibc.malloc`` in
    ``GLIBC_TUNABLES``) or the C library is not glibc.
    """
    if any(name in environ for name in _OPERATOR_VARIABLES):
        return False
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return False
    if not _glibc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; setting either also stops glibc moving them itself.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
    )
