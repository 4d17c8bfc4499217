"""Large objects go to disk with O_DIRECT; where a filesystem refuses it, through the page cache."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from snapfs.store.local import LocalBackend

SIZES = [1 << 20, (1 << 20) + 1, 3 * (1 << 20) - 4095]


@pytest.mark.parametrize("size", SIZES)
def test_large_objects_round_trip_at_their_exact_size(tmp_path: Path, size: int) -> None:
    backend = LocalBackend(tmp_path)
    data = os.urandom(size)
    backend.put("data/ab/big", data)
    assert (tmp_path / "data/ab/big").stat().st_size == size
    assert backend.get("data/ab/big") == data
    assert backend.get_range("data/ab/big", size - 10, 10) == data[-10:]


def _refuse_direct(on: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make O_DIRECT fail with EINVAL at ``on`` ("open" or "write"); the calls refused."""
    refused: list[int] = []
    real_open, real_write = os.open, os.write
    direct_fds: set[int] = set()

    def fake_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & os.O_DIRECT and on == "open":
            refused.append(flags)
            raise OSError(errno.EINVAL, "Invalid argument")
        fd = real_open(path, flags, *args, **kw)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    def fake_write(fd: int, data: Any) -> int:
        if fd in direct_fds:
            direct_fds.discard(fd)
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "write", fake_write)
    return refused


@pytest.mark.parametrize("on", ["open", "write"])
def test_a_filesystem_refusing_direct_io_gets_the_object_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on: str
) -> None:
    refused = _refuse_direct(on, monkeypatch)
    backend = LocalBackend(tmp_path)
    data = os.urandom(SIZES[1])
    backend.put("data/ab/big", data)
    assert len(refused) == 1
    assert backend.get("data/ab/big") == data
    assert sorted(p.name for p in (tmp_path / "data/ab").iterdir()) == ["big"]
