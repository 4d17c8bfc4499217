"""A Backend around a Backend that retries Transient failures with capped exponential backoff
and full jitter (each wait is uniform in [0, min(cap, base * 2**n)]), so many threads that
failed together do not come back together.

Only Transient errors are retried: NotFound, AlreadyExists, AccessDenied and the like are
answers, not accidents. When the attempts run out the last failure becomes a plain
BackendError whose one-line message says so. After such a give-up, later calls try once
only, until one succeeds: a failing backup still releases its lock and cleans up, and
waiting out the whole backoff again for each of those steps would only delay the error.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from snapfs.buffers import Buffer
from snapfs.errors import BackendError
from snapfs.store.base import AlreadyExists, Backend, ObjectInfo, Transient

T = TypeVar("T")
DEFAULT_ATTEMPTS = 10


def attempts_from_env() -> int:
    """AWS_MAX_ATTEMPTS, the variable the AWS tools read for the same thing (total attempts,
    the first one included); botocore's own retries are off so the two do not multiply."""
    raw = os.environ.get("AWS_MAX_ATTEMPTS", "")
    try:
        return max(1, int(raw)) if raw else DEFAULT_ATTEMPTS
    except ValueError:
        return DEFAULT_ATTEMPTS


@dataclass
class RetryPolicy:
    """How often and how patiently to retry. With the defaults the waits add up to about
    20 s on average (at most about 45 s) before giving up."""

    attempts: int = DEFAULT_ATTEMPTS
    base_delay: float = 0.2
    max_delay: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[BaseException, float], None] | None = None
    retried: int = field(default=0, init=False)
    gave_up: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2**attempt))

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, again after a wait whenever it raises Transient, ``attempts`` times in all
        (once, after an earlier give-up)."""
        attempts = 1 if self.gave_up else self.attempts
        for attempt in range(attempts):
            try:
                result = fn()
            except Transient as e:
                if attempt + 1 >= attempts:
                    raise BackendError(f"{e} ({self._give_up()})") from e
                wait = self.delay(attempt)
                self._count(e, wait)
                self.sleep(wait)
            else:
                self.gave_up = False
                return result
        raise AssertionError("unreachable: attempts must be at least 1")

    def _give_up(self) -> str:
        # With one attempt allowed, a call after a give-up has had its whole allowance too:
        # saying "still failing" would make the line depend on which thread failed first.
        if self.gave_up and self.attempts > 1:
            return f"still failing after giving up on {self.attempts} attempts"
        self.gave_up = True
        return f"gave up after {self.attempts} attempts"

    def _count(self, error: BaseException, wait: float) -> None:
        with self._lock:
            self.retried += 1
        if self.on_retry is not None:
            self.on_retry(error, wait)


class RetryBackend:
    """Thread-safe if ``inner`` is. A create-only put that failed ambiguously (the request may
    have been stored before the connection broke) and then meets AlreadyExists compares the
    stored bytes with its own: equal means the earlier attempt landed, so it succeeded."""

    def __init__(self, inner: Backend, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.connections = inner.connections

    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        uncertain = False

        def once() -> None:
            nonlocal uncertain
            try:
                self.inner.put(key, data, exclusive=exclusive)
            except AlreadyExists:
                if uncertain and self.inner.get(key) == data:
                    return
                raise
            except Transient:
                uncertain = True
                raise

        self.policy.call(once)

    def get(self, key: str) -> bytes:
        return self.policy.call(lambda: self.inner.get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.policy.call(lambda: self.inner.get_range(key, offset, length))

    def stat(self, key: str) -> ObjectInfo:
        return self.policy.call(lambda: self.inner.stat(key))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # A listing that broke halfway cannot resume where it was, so it is read whole.
        yield from self.policy.call(lambda: list(self.inner.list(prefix)))

    def delete(self, key: str) -> None:
        self.policy.call(lambda: self.inner.delete(key))

    def exists(self, key: str) -> bool:
        return self.policy.call(lambda: self.inner.exists(key))

    def close(self) -> None:
        self.inner.close()
