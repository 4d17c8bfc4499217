"""RetryBackend on a MemoryBackend that fails on command: what is retried, what is not, and
how a create-only put whose answer was lost still succeeds."""

from __future__ import annotations

import random
import statistics

import pytest

from snapfs.buffers import Buffer
from snapfs.errors import BackendError
from snapfs.store.base import AlreadyExists, NotFound, Transient
from snapfs.store.memory import MemoryBackend
from snapfs.store.retry import RetryBackend, RetryPolicy


class Flaky(MemoryBackend):
    """Fails the next ``failures`` calls; with ``after`` a put is stored, then fails (the
    reply was lost)."""

    def __init__(self, failures: int = 0, *, after: bool = False) -> None:
        super().__init__()
        self.failures, self.after, self.calls = failures, after, 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise Transient("S3 get k: connection failed")

    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        if not self.after:
            self._maybe_fail()
        super().put(key, data, exclusive=exclusive)
        if self.after:
            self._maybe_fail()

    def get(self, key: str) -> bytes:
        self._maybe_fail()
        return super().get(key)


def _policy(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, sleep=lambda _s: None)


def test_transient_failures_are_retried() -> None:
    inner = Flaky(3)
    store = RetryBackend(inner, _policy())
    store.put("k", b"v")
    assert store.get("k") == b"v"
    assert store.policy.retried == 3


def test_answers_are_not_retried() -> None:
    inner = Flaky()
    store = RetryBackend(inner, _policy())
    with pytest.raises(NotFound):
        store.get("absent")
    assert inner.calls == 1


def test_lost_reply_to_a_create_only_put_is_success() -> None:
    inner = Flaky(1, after=True)
    store = RetryBackend(inner, _policy())
    store.put("locks/a", b"mine")
    assert inner.objects["locks/a"] == b"mine"


def test_someone_elses_object_is_still_already_exists() -> None:
    inner = Flaky()
    inner.objects["locks/a"] = b"theirs"
    inner.failures, inner.after = 1, False
    store = RetryBackend(inner, _policy())
    with pytest.raises(AlreadyExists):
        store.put("locks/a", b"mine")


def test_gives_up_with_one_line_then_fails_fast_until_a_success() -> None:
    inner = Flaky(100)
    store = RetryBackend(inner, _policy(attempts=3))
    with pytest.raises(BackendError) as info:
        store.get("k")
    assert not isinstance(info.value, Transient)
    assert str(info.value) == "S3 get k: connection failed (gave up after 3 attempts)"
    assert inner.calls == 3
    with pytest.raises(BackendError, match="still failing"):
        store.get("k")
    assert inner.calls == 4
    inner.failures = 0
    store.put("k", b"v")
    inner.failures = 2
    assert store.get("k") == b"v"  # a success restored the full patience


def _never(_: None = None) -> None:
    raise Transient("S3 get k: connection failed")


def test_waits_between_attempts_grow_then_stay_capped() -> None:
    """Full jitter: the k-th wait is uniform in [0, min(cap, base * 2**k)], so over many
    seeded runs its mean doubles with each attempt until the cap holds it."""
    random.seed(20240601)
    waits: list[list[float]] = [[] for _ in range(7)]
    for _ in range(400):
        slept: list[float] = []
        policy = RetryPolicy(attempts=8, base_delay=0.1, max_delay=1.0, sleep=slept.append)
        with pytest.raises(BackendError):
            policy.call(_never)
        assert len(slept) == 7
        for k, wait in enumerate(slept):
            waits[k].append(wait)
    for k, ws in enumerate(waits):
        ceiling = min(1.0, 0.1 * 2**k)  # 0.1 0.2 0.4 0.8 1.0 1.0 1.0
        assert all(0.0 <= w <= ceiling for w in ws)
        assert max(ws) > 0.95 * ceiling
        assert 0.45 * ceiling < statistics.fmean(ws) < 0.55 * ceiling, k


def test_with_one_attempt_every_failure_reads_alike() -> None:
    """Parallel reads failing at once: the line the backup reports must not depend on which
    of them failed first."""
    store = RetryBackend(Flaky(100), _policy(attempts=1))
    for _ in range(2):
        with pytest.raises(BackendError) as info:
            store.get("k")
        assert str(info.value) == "S3 get k: connection failed (gave up after 1 attempts)"
