"""A backup gives the index cache every index file it writes, from the first backup into a
new repository on: the next open reads no index file, and answers as an index built from
all of them does. Its runs are merged at most once, as it ends, not once an index file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import snapfs.index.cache
import snapfs.repository
from snapfs.backup import backup
from snapfs.index import Index
from snapfs.index.runs import merge_runs
from tests.conftest import index_files_read, init_small_packs, reopened


def _grow(root: Path, files: int, seed: int) -> None:
    """``files`` small random files and one of 1 MB (many chunks), in a few directories."""
    rng = random.Random(seed)
    for i in range(files):
        path = root / f"d{i % 7}" / f"f{seed}-{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(100, 3000)))
    (root / f"big-{seed}.bin").write_bytes(os.urandom(1 << 20))


def _opened_reading(location: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Opens the repository as a new command: the index files its open read (spied), after
    checking that its index answers as an in-memory one built from every index file."""
    with index_files_read(monkeypatch) as read, reopened(location) as reader:
        opened = reader.index
        at_open = list(read)
        memory = Index()
        for pack_id, entries in reader.index_packs():
            memory.add_pack(pack_id, entries)
        assert len(list(reader.backend.list("index/"))) > 3  # several index files
        assert len(opened) == len(memory)
        for blob_id, expected in memory.entries():
            assert opened.lookup(blob_id) == expected
        rng = random.Random(3)
        assert not any(rng.randbytes(32) in opened for _ in range(1000))
        assert opened.pack_ids == sorted(memory.pack_ids)
    return at_open


def test_the_open_after_each_backup_reads_no_index_file_and_backups_merge_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = init_small_packs(str(tmp_path / "repo"))
    monkeypatch.setattr(snapfs.repository, "_INDEX_EVERY_PACKS", 1)  # an index file a pack
    monkeypatch.setattr(snapfs.index.cache, "FEED_BATCH", 300)  # a run every two files or so
    merges: list[int] = []

    def counted(sources, *args, **kwargs):  # type: ignore[no-untyped-def]
        merges.append(len(sources))
        return merge_runs(sources, *args, **kwargs)

    monkeypatch.setattr(snapfs.index.cache, "merge_runs", counted)
    src = tmp_path / "src"
    _grow(src, 1500, seed=1)
    with reopened(location) as first:  # a new repository: no cache, no index file
        backup(first, [str(src)])
    assert len(merges) <= 1  # the runs of its batches, merged at most once, at its end
    assert _opened_reading(location, monkeypatch) == []
    _grow(src, 1500, seed=2)
    merges.clear()
    with reopened(location) as second:  # beside the runs the first backup left
        backup(second, [str(src)])
    assert len(merges) <= 1
    assert _opened_reading(location, monkeypatch) == []
