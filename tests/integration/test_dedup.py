from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from snapfs.backup import backup
from snapfs.repository import Repository
from snapfs.stats import stats
from snapfs.walk import resolve, walk
from tests.conftest import BACKENDS

pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)


def test_second_backup_of_unchanged_tree_adds_under_one_percent(
    repo: Repository, lake_tree: Path
) -> None:
    first = backup(repo, [str(lake_tree)])
    before = stats(repo).stored_bytes
    second = backup(repo, [str(lake_tree)])
    added = stats(repo).stored_bytes - before
    assert second.parent == first.id
    # The tree backed up, not the root: its ancestors (/tmp and on) change under other runs.
    assert _subtree(repo, second.tree, lake_tree) == _subtree(repo, first.tree, lake_tree)
    assert second.summary.bytes_added == 0
    assert added < 0.01 * first.summary.bytes


def _subtree(repo: Repository, tree: str, path: Path) -> bytes | None:
    node = resolve(repo, bytes.fromhex(tree), str(path))
    assert node is not None
    return node.subtree


def test_unchanged_files_are_not_read_again(repo: Repository, lake_tree: Path) -> None:
    backup(repo, [str(lake_tree)])
    (lake_tree / "dir/nested/deeper/leaf.csv").write_text("changed")
    seen: list[object] = []
    backup(repo, [str(lake_tree)], on_event=seen.append)
    started = [e for e in seen if type(e).__name__ == "FileStarted"]
    paths = [e.path for e in started]  # type: ignore[attr-defined]
    assert paths == [f"{lake_tree}/dir/nested/deeper/leaf.csv"]


def test_prepending_three_bytes_to_3mib_adds_under_ten_percent(
    repo: Repository, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(3 * 1024 * 1024)
    (src / "a.bin").write_bytes(data)
    backup(repo, [str(src)])
    before = stats(repo).stored_bytes
    shutil.rmtree(src)
    src.mkdir()
    (src / "b.bin").write_bytes(b"xyz" + data)
    snap = backup(repo, [str(src)])
    added = stats(repo).stored_bytes - before
    assert snap.summary.bytes_added < 0.10 * len(data)
    assert added < 0.10 * len(data)


def test_an_xattr_change_alone_is_seen_by_the_next_backup(
    repo: Repository, lake_tree: Path
) -> None:
    """Setting an xattr changes nothing but the ctime: the file must not be taken as unchanged."""
    backup(repo, [str(lake_tree)])
    os.setxattr(lake_tree / "small.txt", "user.origin", b"lakehouse")
    os.setxattr(lake_tree / "dir/nested/deeper/leaf.csv", "user.owner", b"finance")
    snap = backup(repo, [str(lake_tree)])
    nodes = dict(walk(repo, bytes.fromhex(snap.tree)))
    rel = os.fsencode(lake_tree).lstrip(b"/")
    assert nodes[rel + b"/small.txt"].xattrs == [(b"user.origin", b"lakehouse")]
    assert nodes[rel + b"/dir/nested/deeper/leaf.csv"].xattrs == [(b"user.owner", b"finance")]
    assert nodes[rel + b"/dir"].xattrs == [(b"user.team", b"data-eng")]


def test_a_change_of_mode_owner_or_links_alone_is_seen_by_the_next_backup(
    repo: Repository, lake_tree: Path
) -> None:
    """An unchanged file keeps its parent's node whole: each of these moves only the ctime."""
    backup(repo, [str(lake_tree)])
    os.chmod(lake_tree / "small.txt", 0o600)
    os.chown(lake_tree / "dir/nested/deeper/leaf.csv", 1234, 5678)
    os.link(lake_tree / "empty", lake_tree / "empty-link")
    snap = backup(repo, [str(lake_tree)])
    nodes = dict(walk(repo, bytes.fromhex(snap.tree)))
    rel = os.fsencode(lake_tree).lstrip(b"/")
    assert nodes[rel + b"/small.txt"].mode == 0o600
    leaf = nodes[rel + b"/dir/nested/deeper/leaf.csv"]
    assert (leaf.uid, leaf.gid) == (1234, 5678)
    assert nodes[rel + b"/empty"].links == 2
