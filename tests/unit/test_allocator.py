"""The allocator's settings: with tune(), a large block freed does not raise glibc's mmap
threshold, so later large buffers are still mapped (and returned when freed) rather than
carved from a heap that keeps them resident. Observed through mallinfo2 in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from snapfs import allocator
if sys.argv[1] == "tuned":
    assert allocator.tune()
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
big = bytearray(8 << 20)
del big  # freeing a mapped 8 MiB block: glibc's default raises the threshold to 8 MiB
kept = [bytearray(1 << 20) for _ in range(4)]
print(libc.mallinfo2().hblks)
"""


def _mapped_blocks(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_large_buffers_stay_mapped_after_a_larger_one_is_freed() -> None:
    assert _mapped_blocks("default") < 4  # the trap tune() avoids, seen in this glibc
    assert _mapped_blocks("tuned") >= 4
