"""A lock record of this host naming a pid no process can have (planted, or damaged in a
way that still decodes) is stale at once, like a damaged record: it blocks no prune and
``unlock`` removes it, instead of every lock check failing on os.kill."""

from __future__ import annotations

import os
import time

import msgspec
import pytest

from snapfs.crypto import MasterKey
from snapfs.locks import LockRecord, acquire, remove_stale
from snapfs.store.memory import MemoryBackend


@pytest.mark.parametrize("pid", [2**40, -1, 0])
def test_a_pid_no_process_can_have_makes_the_lock_stale(pid: int) -> None:
    backend, key = MemoryBackend(), MasterKey.generate()
    now = time.time()
    record = LockRecord("ab" * 8, os.uname().nodename, pid, "prune", now - 60, now)
    backend.put(f"locks/{'cd' * 16}", key.seal(msgspec.msgpack.encode(record)))
    with acquire(backend, key, "prune"):  # not blocked by it
        pass
    assert [held.record.pid for held in remove_stale(backend, key)] == [pid]
