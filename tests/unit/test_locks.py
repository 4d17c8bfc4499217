"""Locks on a MemoryBackend: which kinds exclude which, the older of two racing exclusive
locks wins, what is stale (30 minutes unrefreshed, or a dead pid on this host), refreshing,
waiting, and removing exactly the stale ones."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from snapfs import locks
from snapfs.buffers import Buffer
from snapfs.crypto import MasterKey
from snapfs.errors import BackendError, RepositoryLocked
from snapfs.locks import STALE_AFTER, LockRecord, acquire, list_locks, live_ids, remove_stale
from snapfs.store.base import ObjectInfo
from snapfs.store.memory import MemoryBackend

HOST = os.uname().nodename


@pytest.fixture
def store() -> tuple[MemoryBackend, MasterKey]:
    return MemoryBackend(), MasterKey.generate()


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


Store = tuple[MemoryBackend, MasterKey]


def _put(store: Store, kind: str, *, host: str = HOST, pid: int | None = None, age: float = 0.0,
         started: float | None = None) -> str:  # fmt: skip
    backend, key = store
    then = time.time() - age
    record = LockRecord(os.urandom(8).hex(), host, os.getpid() if pid is None else pid, kind,
                        then if started is None else started, then)  # fmt: skip
    name = f"locks/{os.urandom(16).hex()}"
    backend.put(name, key.seal(msgspec.msgpack.encode(record)))
    return record.id


def test_exclusive_kinds_exclude_each_other_and_nothing_else(
    store: Store,
) -> None:
    backend, key = store
    for holder in ("prune", "check", "key"):
        with acquire(backend, key, holder):
            for kind in ("prune", "check", "key"):
                with pytest.raises(RepositoryLocked) as info:
                    acquire(backend, key, kind)
                assert str(info.value).startswith(
                    f"repository is locked by {holder} (pid {os.getpid()} on {HOST}, since "
                )
            for kind in ("backup", "read", "forget"):
                acquire(backend, key, kind).release()
            assert [h.record.kind for h in list_locks(backend, key)] == [holder]
        assert list_locks(backend, key) == []
    with acquire(backend, key, "backup"), acquire(backend, key, "read"):
        acquire(backend, key, "prune").release()  # backups never hold prune off


def test_the_older_of_two_racing_exclusive_locks_wins(
    store: Store,
) -> None:
    backend, key = store
    _put(store, "prune", started=time.time() + 60)  # took its lock after ours will
    acquire(backend, key, "check").release()
    _put(store, "prune", started=time.time() - 60)
    with pytest.raises(RepositoryLocked):
        acquire(backend, key, "check")
    assert len(list_locks(backend, key)) == 2  # the refused attempt withdrew its record


def test_stale_after_30_minutes_or_when_the_pid_is_gone_on_this_host(
    store: Store,
) -> None:
    backend, key = store
    dead = _dead_pid()
    fresh = _put(store, "backup", host="elsewhere", pid=dead, age=STALE_AFTER - 30)
    old = _put(store, "backup", host="elsewhere", pid=dead, age=STALE_AFTER + 30)
    gone = _put(store, "backup", pid=dead)
    mine = _put(store, "backup", age=STALE_AFTER - 30)
    other_kind = _put(store, "read")
    assert live_ids(backend, key, frozenset({"backup"})) == {fresh, mine}
    removed = remove_stale(backend, key)
    assert sorted(h.record.id for h in removed) == sorted([old, gone])
    assert sorted(h.record.id for h in list_locks(backend, key)) == sorted(
        [fresh, mine, other_kind]
    )
    assert len(remove_stale(backend, key, everything=True)) == 3
    assert list_locks(backend, key) == []


def test_a_lock_refreshed_too_far_in_the_future_is_stale(store: Store) -> None:
    """A clock ahead by more than STALE_AFTER is a lock that would never go stale: stale.
    The bounds are exact: STALE_AFTER ahead is live, a millisecond more is stale."""
    backend, key = store
    _put(store, "backup", host="elsewhere", age=-STALE_AFTER)
    (held,) = list_locks(backend, key)
    now = held.record.refreshed
    assert not held.stale(now - STALE_AFTER)
    assert held.stale(now - STALE_AFTER - 0.001)
    assert not held.stale(now + STALE_AFTER)
    assert held.stale(now + STALE_AFTER + 0.001)


def test_a_stale_exclusive_lock_does_not_block(store: Store) -> None:
    backend, key = store
    _put(store, "prune", host="elsewhere", age=STALE_AFTER + 1)
    _put(store, "prune", pid=_dead_pid())
    acquire(backend, key, "prune").release()
    _put(store, "prune", host="elsewhere", age=STALE_AFTER - 60)
    with pytest.raises(RepositoryLocked):
        acquire(backend, key, "prune")


def test_waiting_reports_the_holder_then_gives_up(store: Store) -> None:
    backend, key = store
    heard: list[str] = []
    with acquire(backend, key, "prune"), pytest.raises(RepositoryLocked):
        acquire(backend, key, "check", wait=0.2, on_wait=heard.append)
    assert heard and all(
        m.startswith(f"waiting for the lock held by prune (pid {os.getpid()} on {HOST}, since ")
        for m in heard
    )


def test_a_held_lock_is_refreshed_under_the_same_id(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, key = store
    monkeypatch.setattr(locks, "REFRESH_EVERY", 0.01)
    lock = acquire(backend, key, "backup")
    first = list_locks(backend, key)
    deadline = time.monotonic() + 30
    while list_locks(backend, key)[0].key == first[0].key:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    lock.release()
    (held,) = first
    assert held.record.id == lock.id and held.record.kind == "backup"
    assert list_locks(backend, key) == []
    assert [k for k in backend.objects if k.startswith("locks/")] == []


class _Vanishing(MemoryBackend):
    """Lists a lock that is released before it can be read, ahead of the real ones."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        yield ObjectInfo(f"{prefix}00-released-while-listed", 10)
        yield from super().list(prefix)


def test_a_lock_released_while_listed_hides_none_of_the_others() -> None:
    backend, key = _Vanishing(), MasterKey.generate()
    with acquire(backend, key, "prune"):
        with pytest.raises(RepositoryLocked):
            acquire(backend, key, "check")
        assert [h.record.kind for h in list_locks(backend, key)] == ["prune"]


def test_a_process_that_never_released_its_lock_still_exits() -> None:
    """The refresher is a daemon thread: a command that ends holding a lock ends."""
    code = ("from snapfs.locks import acquire; from snapfs.crypto import MasterKey;"
            "from snapfs.store.memory import MemoryBackend;"
            "acquire(MemoryBackend(), MasterKey.generate(), 'backup')")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], timeout=20).returncode == 0


def test_a_process_of_another_user_is_alive_though_it_cannot_be_signalled() -> None:
    """As another user, os.kill(pid, 0) on root's process fails with EPERM: alive. The child
    drops to nobody once it has loaded snapfs (the interpreter may be root's alone)."""
    nobody = pwd.getpwnam("nobody")
    code = ("import os, time; from snapfs.locks import HeldLock, LockRecord;"
            f"os.setgroups([]); os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid});"
            f"r = LockRecord('0123', {HOST!r}, 1, 'prune', time.time(), time.time());"
            "print(HeldLock('locks/x', r).stale(time.time()))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "False\n", "")


def test_the_pid_rule_is_for_this_host_only(store: Store) -> None:
    """A host whose name sorts after or before ours is another host all the same."""
    backend, key = store
    dead = _dead_pid()
    ids = {_put(store, "backup", host=host, pid=dead) for host in (f"{HOST}z", f"0{HOST}")}
    assert live_ids(backend, key, frozenset({"backup"})) == ids


class _Unreachable(MemoryBackend):
    """Fails the lock writes after the first: once with OSError, once with a SnapfsError."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        self.writes += 1
        if self.writes == 2:
            raise OSError("network is unreachable")
        if self.writes == 3:
            raise BackendError("S3 put: connection failed")
        super().put(key, data, exclusive=exclusive)


def test_refreshing_goes_on_after_the_store_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    backend, key = _Unreachable(), MasterKey.generate()
    monkeypatch.setattr(locks, "REFRESH_EVERY", 0.01)
    lock = acquire(backend, key, "backup")
    first = list_locks(backend, key)[0].key
    deadline = time.monotonic() + 10
    while list_locks(backend, key)[0].key == first:
        assert time.monotonic() < deadline, "the refresher stopped at the failure"
        time.sleep(0.01)
    lock.release()
    assert backend.writes > 3


def test_a_lock_record_that_does_not_open_or_decode_blocks_nothing_and_unlock_removes_it(
    store: Store,
) -> None:
    backend, key = store
    backend.put("locks/" + "a" * 32, b"not sealed at all")
    backend.put("locks/" + "b" * 32, bytes(key.seal(msgspec.msgpack.encode({"kind": 1}))))
    held = list_locks(backend, key)
    assert sorted(h.describe() for h in held) == [
        "a damaged lock record (aaaaaaaaaaaaaaaa)",
        "a damaged lock record (bbbbbbbbbbbbbbbb)",
    ]
    assert live_ids(backend, key, frozenset({"backup", "damaged"})) == set()
    acquire(backend, key, "prune").release()  # an exclusive lock is not refused
    assert sorted(h.key for h in remove_stale(backend, key)) == [
        "locks/" + "a" * 32,
        "locks/" + "b" * 32,
    ]
    assert list_locks(backend, key) == []
