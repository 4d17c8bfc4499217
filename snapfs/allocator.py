"""The C allocator's settings for this process (glibc's malloc; elsewhere nothing changes).

A backup's threads allocate pack buffers of up to 16 MiB and free them on other threads.
glibc's defaults turn that into resident memory that grows with the run: each thread that
meets a busy arena gets one of its own (up to 8 a core), and freeing one large mapped block
raises the mmap threshold to its size, so later large buffers come from those arenas' heaps,
whose freed middles are never returned. Measured on the first backup of 300,000 small files:
274 MB peak RSS with the defaults, 203 MB with two arenas and a fixed threshold.
"""

from __future__ import annotations

import ctypes
import os

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024  # larger blocks are mapped, and unmapped when freed
ARENAS = 2


def tune() -> bool:
    """Set both limits, unless the environment sets its own (glibc reads MALLOC_ARENA_MAX
    and MALLOC_MMAP_THRESHOLD_); whether glibc took them. Call it before threads start."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    ok = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok &= mallopt(_M_ARENA_MAX, ARENAS) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok &= mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return bool(ok)
