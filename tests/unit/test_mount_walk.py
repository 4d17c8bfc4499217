"""What a reader walking the whole mount (find, du) costs the repository, as logic: the
handlers run without a kernel, on a repository in memory, and the test counts the tree blobs
read and the index lookups made (the real mounts are in tests/integration/test_mount.py)."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyfuse3
import pytest
import trio

from snapfs.backup import backup
from snapfs.errors import IntegrityError
from snapfs.fuse.inodes import ROOT_INODE
from snapfs.fuse.ops import SnapshotOperations
from snapfs.fuse.reader import ChunkCache
from snapfs.repository import Repository
from snapfs.store.memory import MemoryBackend
from snapfs.view import View
from snapfs.walk import resolve

Entry = tuple[bytes, int, int]  # name, inode number, mode


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """4 groups of 6 directories of 3 files, an empty directory and a deeper one: no two
    directories have the same tree."""
    root = tmp_path / "lake"
    for g in range(4):
        for d in range(6):
            folder = root / f"g{g}" / f"d{d}"
            folder.mkdir(parents=True)
            for f in range(3):
                (folder / f"f{f}.jsonl").write_bytes(b'{"n": %d}\n' % (g * 100 + d * 10 + f))
    (root / "empty").mkdir()
    (root / "g0" / "d0" / "deep").mkdir()
    (root / "g0" / "d0" / "deep" / "f").write_bytes(b"deeper")  # not the empty tree again
    return root


def _counting(repo: Repository) -> Counter[str]:
    """Count the tree blobs read from the store and the lookups in the index from now on."""
    counts: Counter[str] = Counter()
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    index = repo.index

    def wrap(owner: object, name: str) -> None:
        fn: Callable[..., object] = getattr(owner, name)

        def counted(*args: object) -> object:
            counts[name] += 1
            return fn(*args)

        setattr(owner, name, counted)

    wrap(backend, "get_range")
    wrap(index, "lookup")
    return counts


def _replies(monkeypatch: pytest.MonkeyPatch) -> list[Entry]:
    """readdir's replies, taken as the kernel would take them (every one, copied: the
    handler refills one attributes object)."""
    replied: list[Entry] = []

    def reply(token: object, name: bytes, attr: pyfuse3.EntryAttributes, next_id: int) -> bool:
        replied.append((name, attr.st_ino, attr.st_mode))
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    return replied


async def _walk(ops: SnapshotOperations, replied: list[Entry]) -> int:
    """Open and list every directory, depth first as find does; the directories walked."""
    walked = 0
    todo = [ROOT_INODE]
    while todo:
        ino = todo.pop()
        fh = await ops.opendir(ino, pyfuse3.RequestContext())
        replied.clear()
        await ops.readdir(fh, 0, None)  # type: ignore[arg-type]
        await ops.releasedir(fh)
        walked += 1
        todo.extend(ino for _, ino, mode in reversed(replied) if stat.S_ISDIR(mode))
    return walked


# 40 nodes: what the mount's 32k are to groups of 100 directories of 100 files. A group's
# directories decoded ahead (18 nodes) fit; the next groups' trees, decoded ahead as well,
# would leave before the reader had walked the first group and opened them.
@pytest.mark.parametrize("lru_nodes", [None, 40])
def test_a_full_walk_reads_each_tree_once_and_looks_each_up_once(
    memory_repo: Repository, source: Path, monkeypatch: pytest.MonkeyPatch, lru_nodes: int | None
) -> None:
    snapshot = backup(memory_repo, [str(source)])
    if lru_nodes is not None:
        memory_repo.keep_trees(lru_nodes)
    view = View(memory_repo, snapshot)
    cache = ChunkCache(view.read_chunks, 1 << 20)
    ops = SnapshotOperations(view, cache)
    replied = _replies(monkeypatch)
    counts = _counting(memory_repo)
    try:
        walked = trio.run(_walk, ops, replied)
    finally:
        ops.close()
        cache.close()
    # the path down to the lake, the lake, its 4 groups, 24 directories, empty and deep
    assert walked == len(source.parts) + 4 + 24 + 2
    assert counts["get_range"] == walked  # no tree read twice, no file read at all
    assert counts["lookup"] <= walked  # the parent's check of a subtree serves its read


def test_a_damaged_chunk_is_its_own_error_and_its_neighbours_decode(
    memory_repo: Repository, tmp_path: Path
) -> None:
    """The mount decodes a file's chunks in groups: one damaged chunk maps to its error,
    and the others of the group (one range read of the same pack) still decode."""
    (tmp_path / "src").mkdir()
    content = os.urandom(2 * 1024 * 1024)
    (tmp_path / "src" / "big.bin").write_bytes(content)
    snapshot = backup(memory_repo, [str(tmp_path / "src")])
    view = View(memory_repo, snapshot)
    node = resolve(memory_repo, bytes.fromhex(snapshot.tree), f"{tmp_path}/src/big.bin")
    assert node is not None and len(node.content) > 2
    entry = memory_repo.blob_entry(node.content[1])
    key = f"data/{entry.pack_id[:2]}/{entry.pack_id}"
    raw = bytearray(memory_repo.backend.get(key))
    raw[entry.offset + 5] ^= 0x01
    memory_repo.backend.put(key, bytes(raw), exclusive=False)
    decoded = view.read_chunks(node.content)
    starts = view.chunk_starts(node)
    for i, blob_id in enumerate(node.content):
        got = decoded[blob_id]
        if i == 1:
            assert isinstance(got, IntegrityError)
            assert str(got) == f"blob {blob_id.hex()[:16]} in pack {entry.pack_id[:16]} is damaged"
        else:
            assert got == content[starts[i] : starts[i + 1]]
