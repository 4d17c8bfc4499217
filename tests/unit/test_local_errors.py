"""LocalBackend turns every failure of the file system into the Backend's own errors, as its
``get`` does: a range read or a stat of what cannot be read is a BackendError naming the
object, never a bare OSError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapfs.errors import BackendError
from snapfs.store.local import LocalBackend


def test_reading_what_is_not_an_object_is_a_backend_error(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    (tmp_path / "data" / "ab" / "odd").mkdir(parents=True)  # a directory where a pack goes
    with pytest.raises(BackendError, match=r"^cannot read .*/data/ab/odd: Is a directory$"):
        backend.get_range("data/ab/odd", 0, 4)
    with pytest.raises(BackendError, match=r"^cannot read .*/data/ab/odd: Is a directory$"):
        backend.get("data/ab/odd")


def test_a_stat_that_fails_is_a_backend_error(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    os.symlink("loop", tmp_path / "loop")
    looping = r"^cannot read .*/loop: Too many levels of symbolic links$"
    with pytest.raises(BackendError, match=looping):
        backend.stat("loop")
