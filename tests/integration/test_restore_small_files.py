"""The small-file path of restore: a file of one blob is created, written and finished in one
go, in a directory the restore made without looking for earlier files there; full garbage
collections wait while a restore runs. Each must keep the exact result and the safety."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from snapfs.backup import backup
from snapfs.errors import SnapfsError
from snapfs.events import Event
from snapfs.repository import Repository
from snapfs.restore import Limits, RestoreSource, restore
from tests.helpers import assert_same_tree

T = 1_650_000_000_123_456_789


def test_one_blob_files_come_back_exact_with_holes_and_hardlinks_windows_apart(
    repo: Repository, tmp_path: Path
) -> None:
    """An all-zero small file is a hole of its size (its blob is never written); the first
    name of a hardlink group is a small file, linked from a later window."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    with open(src / "a" / "zeros", "wb") as f:
        f.truncate(4000)
    (src / "a" / "text").write_bytes(b"one small file\n")
    for i in range(12):
        (src / "a" / f"n{i:02d}").write_bytes(b"%d\n" % i * (i + 1))
    os.link(src / "a" / "text", src / "b" / "again")
    for p in src.rglob("*"):
        os.utime(p, ns=(T, T))
    snap = backup(repo, [str(src)])
    out = tmp_path / "out"

    summary = restore(repo, snap, str(out), limits=Limits(files=5), verify=True)

    assert (summary.warnings, summary.verify_errors) == (0, [])
    restored = out / str(src).lstrip("/")
    assert_same_tree(src, restored)
    zeros = os.stat(restored / "a" / "zeros")
    assert (zeros.st_size, zeros.st_blocks) == (4000, 0)
    assert (restored / "a" / "zeros").read_bytes() == bytes(4000)
    first, second = os.stat(restored / "a" / "text"), os.stat(restored / "b" / "again")
    assert (first.st_ino, first.st_nlink) == (second.st_ino, 2)


class _Planting:
    """A RestoreSource that, once the walk has made the directories and planned the files,
    plants a symlink to a file outside the target where a small file goes."""

    def __init__(self, repo: Repository, where: Path, outside: Path) -> None:
        self.repo, self.where, self.outside = repo, where, outside
        self.key = repo.key
        self.lock, self.load_tree, self.blob_entry = repo.lock, repo.load_tree, repo.blob_entry

    def read_blob_ranges(self, ids: Iterable[bytes], *rest: Any, **named: Any) -> None:
        if not self.where.is_symlink():
            os.symlink(self.outside, self.where)
        self.repo.read_blob_ranges(ids, *rest, **named)


def test_an_entry_planted_in_a_directory_the_restore_made_is_replaced_not_followed(
    repo: Repository, tmp_path: Path
) -> None:
    """No file is looked for in a new directory before it is created, so creation itself
    (O_EXCL, O_NOFOLLOW) must meet what was planted: replaced, the outside left alone."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"the snapshot's bytes\n")
    outside = tmp_path / "outside"
    outside.write_bytes(b"not yours\n")
    snap = backup(repo, [str(src)])
    out = tmp_path / "out"
    planted = out / str(src).lstrip("/") / "d" / "f"
    source: RestoreSource = _Planting(repo, planted, outside)

    summary = restore(source, snap, str(out))

    assert summary.warnings == 0
    assert outside.read_bytes() == b"not yours\n"
    assert not planted.is_symlink()
    assert planted.read_bytes() == b"the snapshot's bytes\n"


def test_full_collections_wait_during_a_restore_and_resume_after(
    repo: Repository, lake_tree: Path, tmp_path: Path
) -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def on_event(event: Event) -> None:
        seen.append(gc.get_threshold())

    snap = backup(repo, [str(lake_tree)])
    restore(repo, snap, str(tmp_path / "out"), on_event=on_event)

    assert seen and all(t[:2] == before[:2] and t[2] >= 1 << 30 for t in seen)
    assert gc.get_threshold() == before
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises((OSError, SnapfsError)):
        restore(repo, snap, str(blocker / "below"))  # a failed restore leaves it too
    assert gc.get_threshold() == before
