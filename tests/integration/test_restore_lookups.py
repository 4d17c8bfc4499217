"""A restore looks each blob up in the index once: a multi-blob file's offsets and the
planning of its range reads share the entries (at a billion blobs a lookup is a pread)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from snapfs.backup import backup
from snapfs.index import IndexEntry
from snapfs.pack import BlobKind
from snapfs.repository import Repository
from snapfs.restore import restore


def test_each_blob_is_looked_up_once(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3_000_000))
    (src / "small.bin").write_bytes(os.urandom(5_000))
    snap = backup(repo, [str(src)])

    looked_up: Counter[bytes] = Counter()
    blob_entry = repo.blob_entry

    def counted(blob_id: bytes) -> IndexEntry:
        entry = blob_entry(blob_id)
        if entry.kind == BlobKind.DATA:  # trees are read whole, by load_tree
            looked_up[blob_id] += 1
        return entry

    monkeypatch.setattr(repo, "blob_entry", counted)
    out = tmp_path / "out"
    restore(repo, snap, str(out))
    restored = out / str(src).lstrip("/")
    assert (restored / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert (restored / "small.bin").read_bytes() == (src / "small.bin").read_bytes()
    assert len(looked_up) > 2 and set(looked_up.values()) == {1}
