"""What a backup of many tiny files keeps in memory is bounded per pack, not per backup: a
pack ends at 65,536 blobs and an index file is written every 65,536 blobs, while the backup
goes on (not only every 64 packs, which tiny blobs would take millions to fill)."""

from __future__ import annotations

import time

import pytest

import snapfs.repository
import snapfs.tree
from snapfs.errors import UnsupportedFormat
from snapfs.pack import BlobKind
from snapfs.repository import Repository
from tests.crafted import node


def _indexes(repo: Repository) -> int:
    return len(list(repo.backend.list("index/")))


def test_tiny_blobs_end_a_pack_at_65536_and_are_indexed_as_they_go(
    memory_repo: Repository,
) -> None:
    with memory_repo.writer() as w:
        for i in range(65_536 + 10):
            w.add_blob(BlobKind.DATA, b"%d" % i)
        deadline = time.monotonic() + 20  # the full pack is stored on an upload thread
        while _indexes(memory_repo) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _indexes(memory_repo) == 1
    assert len(list(memory_repo.backend.list("data/"))) == 2
    assert len(memory_repo.reload_index()) == 65_536 + 10


def test_a_tree_of_more_entries_than_readers_take_is_refused_before_it_is_stored(
    memory_repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers refuse a tree of more than MAX_TREE_ENTRIES entries, so the writer must never
    store one (its snapshot would not read back). A small bound stands in for 4 Mi entries;
    the tree's bytes are far below MAX_TREE_RAW, so only the entry bound refuses it."""
    for module in (snapfs.repository, snapfs.tree):
        monkeypatch.setattr(module, "MAX_TREE_ENTRIES", 3)
    with memory_repo.writer() as w:
        three = w.save_tree([node(b"%d" % i) for i in range(3)])
        with pytest.raises(UnsupportedFormat, match="a directory of 4 entries"):
            w.save_tree([node(b"%d" % i) for i in range(4)])
    assert len(memory_repo.load_tree(three).nodes) == 3
    assert len(memory_repo.reload_index()) == 1  # the refused tree was never stored
