"""What a backup of many tiny files keeps in memory is bounded per pack, not per backup: a
pack ends at 65,536 blobs and an index file is written every 65,536 blobs, while the backup
goes on (not only every 64 packs, which tiny blobs would take millions to fill)."""

from __future__ import annotations

import time

from snapfs.pack import BlobKind
from snapfs.repository import Repository


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
