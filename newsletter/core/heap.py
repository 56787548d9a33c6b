"""Keep freed memory in the process instead of handing it back to the kernel at once.

A sending process builds a message of 100–200 KB and frees it a millisecond later, over
and over. glibc's defaults serve blocks past its mmap threshold with a fresh mapping and
give a heap top past its trim threshold back to the kernel, so each message's buffers
came back as new zeroed pages: a page fault every 4 KB, and ``madvise`` in the threads'
arenas (about 0.03 ms of kernel time a message in B4, benchmarks/README.md). Raising both
thresholds keeps those pages mapped for the next message; the process keeps at most
``TRIM`` of free memory at its heap top.

Only glibc has ``mallopt``; elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["keep_freed_memory"]

log = logging.getLogger(__name__)

#: glibc's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: blocks below this come from the heap (a whole message and its joins)
MMAP = 4 * 1024 * 1024
#: free memory kept at the heap top before it is given back
TRIM = 64 * 1024 * 1024
#: extra asked of the kernel each time the heap grows
PAD = 4 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set the thresholds; False where there is no glibc ``mallopt`` (nothing changed)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, MMAP),
            (_M_TRIM_THRESHOLD, TRIM),
            (_M_TOP_PAD, PAD),
        )
    )
    if not ok:
        log.debug("mallopt refused a threshold; the allocator keeps its defaults")
    return ok
