"""Backup then restore keeps everything: contents, types, modes, owners, ns mtimes, symlink
targets (dangling too), hardlink groups, xattrs, FIFOs, non-UTF-8 names, sparse holes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapfs.backup import backup
from snapfs.repository import Repository
from snapfs.restore import restore
from snapfs.store.url import open_backend
from tests.conftest import BACKENDS, PASSWORD
from tests.helpers import assert_same_tree, describe

pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)


def test_round_trip_keeps_every_kind_of_entry(
    repo: Repository, lake_tree: Path, tmp_path: Path
) -> None:
    snap = backup(repo, [str(lake_tree)])
    out = tmp_path / "out"
    summary = restore(repo, snap, str(out), verify=True)
    assert summary.verify_errors == []
    restored = out / str(lake_tree).lstrip("/")
    assert_same_tree(lake_tree, restored)
    entries = describe(restored)
    assert entries[b"sparse.img"]["sparse"] is True
    assert entries[b"dangling"]["target"] == b"/nonexistent/target"
    assert entries[b"dir/hardlink.txt"]["hardlinked_with"] == [b"dir/hardlink.txt", b"small.txt"]
    assert os.path.exists(os.fsencode(restored) + b"/caf\xe9-\xff.bin")


def test_restore_resumes_and_skips_identical_files(
    repo: Repository, lake_tree: Path, tmp_path: Path
) -> None:
    snap = backup(repo, [str(lake_tree)])
    out = tmp_path / "out"
    restore(repo, snap, str(out))
    restored = out / str(lake_tree).lstrip("/")
    # Shorter and longer than in the snapshot, with its mtime: neither is taken as done.
    for rel, data in (("random.bin", b"half-written"), ("dir/nested/deeper/leaf.csv", None)):
        was = (restored / rel).stat()
        with open(restored / rel, "ab" if data is None else "wb") as f:
            f.write(data or b"a row too many\n")
        os.utime(restored / rel, ns=(was.st_atime_ns, was.st_mtime_ns))
    sparse = restored / "sparse.img"
    sparse.write_bytes(b"x" * sparse.stat().st_size)  # stale bytes where the holes belong
    summary = restore(repo, snap, str(out))
    # empty and the non-UTF-8 one; small.txt and its hardlink are made anew (a file with
    # two names is never kept: the other might be outside the target)
    assert summary.skipped == 2
    assert_same_tree(lake_tree, restored)


def test_include_and_exclude_select_paths(
    repo: Repository, lake_tree: Path, tmp_path: Path
) -> None:
    snap = backup(repo, [str(lake_tree)])
    out = tmp_path / "out"
    restore(repo, snap, str(out), includes=["*.csv"])
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == [str(lake_tree / "dir/nested/deeper/leaf.csv").lstrip("/")]
    out2 = tmp_path / "out2"
    restore(repo, snap, str(out2), excludes=["dir", "*.bin"])
    names = {p.name for p in (out2 / str(lake_tree).lstrip("/")).iterdir()}
    assert names == {"empty", "small.txt", "sparse.img", "link", "dangling", "fifo", "empty-dir"}


def test_reopened_repository_sees_snapshot(
    repo_location: str, lake_tree: Path, tmp_path: Path
) -> None:
    with Repository.open(open_backend(repo_location), PASSWORD) as r:
        snap = backup(r, [str(lake_tree)], tags=["nightly"])
    with Repository.open(open_backend(repo_location), PASSWORD) as r:
        again = r.find_snapshot("latest")
        assert (again.id, again.tags, again.paths) == (snap.id, ["nightly"], [str(lake_tree)])
        restore(r, again, str(tmp_path / "out"))
    assert_same_tree(lake_tree, tmp_path / "out" / str(lake_tree).lstrip("/"))
