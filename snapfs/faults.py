"""Fault points for crash tests: ``SNAPFS_FAULT=name[:n]`` kills this process with SIGKILL
the n-th time (default first) execution passes ``fault_point(name)``. Unset, it costs a dict
lookup. Never set outside tests."""

from __future__ import annotations

import os
import signal
import threading

_counts: dict[str, int] = {}
_lock = threading.Lock()


def fault_point(name: str) -> None:
    spec = os.environ.get("SNAPFS_FAULT")
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        hit = _counts[name] == int(nth or 1)
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)
