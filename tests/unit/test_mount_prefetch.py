"""The mount's guess at what a reader opens next, as logic: the handlers run without a
kernel, on a repository in memory, and the test records each group of chunks sent to be
decoded (the real mounts are in tests/integration/test_mount.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pyfuse3
import pytest
import trio

from snapfs.backup import backup
from snapfs.fuse.inodes import ROOT_INODE
from snapfs.fuse.ops import SnapshotOperations
from snapfs.fuse.reader import ChunkCache
from snapfs.repository import Repository
from snapfs.view import View, node_of


def _groups_decoded(cache: ChunkCache, names: dict[bytes, str]) -> list[list[str]]:
    """Record, by file name, the chunks of each decode task the cache starts."""
    groups: list[list[str]] = []
    submit = cache._pool.submit

    def recording(fn, todo):  # type: ignore[no-untyped-def]
        groups.append(sorted(names[blob_id] for blob_id in todo))
        return submit(fn, todo)

    cache._pool.submit = recording  # type: ignore[method-assign, assignment]
    return groups


class Mount:
    """SnapshotOperations over a backup of 40 small files f00..f39, without a kernel."""

    def __init__(self, repo: Repository, source: Path) -> None:
        view = View(repo, backup(repo, [str(source)]))
        self.cache = ChunkCache(view.read_chunks, 1 << 20)
        self.ops = SnapshotOperations(view, self.cache)
        self.ctx = pyfuse3.RequestContext()
        folder = ROOT_INODE
        for part in source.parts[1:]:
            folder = trio.run(self._lookup, folder, part)
        self.files = [trio.run(self._lookup, folder, f"f{i:02d}") for i in range(40)]
        names = {self._head(ino): f"f{i:02d}" for i, ino in enumerate(self.files)}
        self.groups = _groups_decoded(self.cache, names)

    def _head(self, ino: int) -> bytes:
        return node_of(trio.run(self.ops._item, ino)[0]).content[0]

    async def _lookup(self, parent: int, name: str) -> int:
        return int((await self.ops.lookup(parent, name.encode(), self.ctx)).st_ino)

    def open(self, *order: int) -> None:
        async def run() -> None:
            for i in order:
                await self.ops.open(self.files[i], os.O_RDONLY, self.ctx)

        trio.run(run)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "d"
    folder.mkdir()
    for i in range(40):
        (folder / f"f{i:02d}").write_bytes(os.urandom(100))
    return folder


def _names(first: int, end: int) -> list[str]:
    return [f"f{i:02d}" for i in range(first, end)]


def test_a_reader_opening_files_in_name_order_gets_the_next_ones_decoded_in_groups(
    memory_repo: Repository, source: Path
) -> None:
    mount = Mount(memory_repo, source)
    mount.open(*range(40))
    assert mount.groups == [
        ["f00"],  # the file opened: one open is no walk yet
        ["f01"],  # the next one: a walk
        _names(2, 34),  # the next 32, in one task
        _names(34, 40),  # topped up half way through
    ]
    mount.cache.close()


def test_a_first_open_or_a_jump_is_not_a_walk_but_walking_on_from_where_it_landed_is(
    memory_repo: Repository, source: Path
) -> None:
    mount = Mount(memory_repo, source)
    mount.open(30, 2)
    assert mount.groups == [["f30"], ["f02"]]  # a first open, then a jump: no guess
    mount.groups.clear()
    mount.open(3)
    assert mount.groups == [["f03"], _names(4, 30) + _names(31, 36)]  # f30 is decoded
    mount.cache.close()
