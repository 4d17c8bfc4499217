"""Fault points for crash tests: ``SNAPFS_FAULT=name[:n]`` kills this process with SIGKILL
the n-th time (default first) execution passes ``fault_point(name)``. With
``SNAPFS_FAULT_HOLD=PATH`` set as well, that thread instead writes its pid to PATH and waits
until PATH is removed: a test then knows the process is there, and kills it (a crash at that
instant, the other threads running on) or lets it go on (a backup kept live while a prune
runs). Unset, it costs a dict lookup. Never set outside tests."""

from __future__ import annotations

import os
import signal
import threading
import time

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
    if not hit:
        return
    hold = os.environ.get("SNAPFS_FAULT_HOLD")
    if hold:
        _hold(hold)
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _hold(path: str) -> None:
    with open(f"{path}.tmp", "w", encoding="ascii") as f:
        f.write(str(os.getpid()))
    os.rename(f"{path}.tmp", path)  # appears whole: the test reads it as soon as it exists
    while os.path.exists(path):
        time.sleep(0.02)
