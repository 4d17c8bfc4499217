"""Lock records: who is using the repository, refreshed while held, stale when not.

Kinds: ``backup`` (writes data), ``read`` (restore, mount, dump), ``forget``, and the
exclusive kinds ``prune``, ``check`` and ``key`` (removing a key), of which one may run at a
time. Backups never wait for prune: prune is two-phase and instead waits, between its
phases, for the backups that were running when it marked (see prune.py). A lock is stale
when it was not refreshed for STALE_AFTER seconds (or claims a refresh that far ahead),
or when its process is gone on this same host.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from snapfs.crypto import MasterKey
from snapfs.errors import IntegrityError, RepositoryLocked, SnapfsError
from snapfs.store.base import Backend, NotFound

REFRESH_EVERY = 120.0
STALE_AFTER = 1800.0
EXCLUSIVE = frozenset({"prune", "check", "key"})


class LockRecord(msgspec.Struct, frozen=True):
    """``id`` stays the same across refreshes (each refresh is a new object)."""

    id: str
    host: str
    pid: int
    kind: str
    started: float
    refreshed: float


# Stands for a lock record that does not open or decode (damaged, or planted): stale at
# once, so it blocks nothing, and ``unlock`` removes it.
DAMAGED = LockRecord("", "", 0, "damaged", 0.0, 0.0)


@dataclass(frozen=True)
class HeldLock:
    key: str
    record: LockRecord

    def describe(self) -> str:
        if self.record is DAMAGED:
            return f"a damaged lock record ({self.key.rpartition('/')[2][:16]})"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.record.started))
        r = self.record
        return f"{r.kind} (pid {r.pid} on {r.host}, since {since})"

    def stale(self, now: float) -> bool:
        # A refresh further ahead than STALE_AFTER is a skewed clock, not a live holder:
        # without the abs, such a lock would never go stale.
        if abs(now - self.record.refreshed) > STALE_AFTER:
            return True
        return self.record.host == os.uname().nodename and not _alive(self.record.pid)


def _alive(pid: int) -> bool:
    if not 0 < pid < 2**31:  # no process has it (os.kill would signal a group, or overflow)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_locks(backend: Backend, key: MasterKey) -> list[HeldLock]:
    out = []
    for info in backend.list("locks/"):
        try:
            record = msgspec.msgpack.decode(key.open(backend.get(info.key)), type=LockRecord)
        except NotFound:
            continue  # released while we listed
        except (IntegrityError, msgspec.DecodeError):
            record = DAMAGED
        out.append(HeldLock(info.key, record))
    return out


class Lock:
    """A held lock; refreshed by a daemon thread until ``release``. Usable as a context."""

    def __init__(self, backend: Backend, key: MasterKey, kind: str) -> None:
        self._backend, self._key, self.kind = backend, key, kind
        self._started = time.time()
        self.id = os.urandom(8).hex()
        self._stop = threading.Event()
        self.key = self._write()
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True)

    def _write(self) -> str:
        now = time.time()
        record = LockRecord(
            self.id, os.uname().nodename, os.getpid(), self.kind, self._started, now
        )
        lock_key = f"locks/{os.urandom(16).hex()}"
        self._backend.put(lock_key, self._key.seal(msgspec.msgpack.encode(record)))
        return lock_key

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_EVERY):
            try:
                old, self.key = self.key, self._write()
                self._backend.delete(old)
            except (SnapfsError, OSError):
                # The store is unreachable: the command itself will hit the same error and
                # say so in one line; here we simply try again at the next refresh.
                continue

    def start_refreshing(self) -> None:
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._backend.delete(self.key)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(
    backend: Backend,
    key: MasterKey,
    kind: str,
    *,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> Lock:
    """Take a lock of ``kind``. An exclusive kind conflicts with any other live exclusive
    lock: the older one wins, so two racing prunes never both proceed. RepositoryLocked
    after ``wait`` seconds of conflict, naming the holder."""
    deadline = time.monotonic() + wait
    while True:
        lock = Lock(backend, key, kind)
        holder = _conflict(backend, key, lock) if kind in EXCLUSIVE else None
        if holder is None:
            lock.start_refreshing()
            return lock
        lock.release()
        if time.monotonic() >= deadline:
            raise RepositoryLocked(f"repository is locked by {holder.describe()}")
        if on_wait is not None:
            on_wait(f"waiting for the lock held by {holder.describe()}")
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))


def _conflict(backend: Backend, key: MasterKey, mine: Lock) -> HeldLock | None:
    now = time.time()
    own = None
    others = []
    for held in list_locks(backend, key):
        if held.key == mine.key:
            own = held
        elif held.record.kind in EXCLUSIVE and not held.stale(now):
            others.append(held)
    assert own is not None
    older = [h for h in others if (h.record.started, h.key) < (own.record.started, own.key)]
    return min(older, key=lambda h: h.record.started) if older else None


def live_ids(backend: Backend, key: MasterKey, kinds: frozenset[str]) -> set[str]:
    """Ids of live locks of ``kinds`` (prune waits for the backups among them)."""
    now = time.time()
    held = list_locks(backend, key)
    return {h.record.id for h in held if h.record.kind in kinds and not h.stale(now)}


def remove_stale(backend: Backend, key: MasterKey, *, everything: bool = False) -> list[HeldLock]:
    now = time.time()
    removed = [h for h in list_locks(backend, key) if everything or h.stale(now)]
    for held in removed:
        backend.delete(held.key)
    return removed
