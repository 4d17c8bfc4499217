"""The local cache's sweep of kept packs goes past what it did not write: a stray file where
a folder of packs would be (or a folder another process removed meanwhile) does not stop
the index from loading."""

from __future__ import annotations

import os
import time
from pathlib import Path

from snapfs.store.cache import TMP_STALE_AFTER, CachedBackend
from snapfs.store.memory import MemoryBackend


def test_the_sweep_of_kept_packs_goes_past_a_stray_file(tmp_path: Path) -> None:
    cache = CachedBackend(MemoryBackend(), tmp_path)
    cache.keep("data/ab/ab01", b"pack one")
    cache.keep("data/cd/cd02", b"pack two")
    (tmp_path / "data" / "stray").write_bytes(b"not a folder")
    cache.sweep_kept(lambda pack_id: pack_id == "cd02")
    assert sorted(p.name for p in (tmp_path / "data").rglob("*") if p.is_file()) == [
        "cd02", "stray"
    ]  # fmt: skip


def test_listing_a_cached_prefix_sweeps_temporary_files_a_crashed_writer_left(
    tmp_path: Path,
) -> None:
    """Temporary files older than TMP_STALE_AFTER go; a younger one may be a write in
    flight and stays, as does the copy of a stored file."""
    inner = MemoryBackend()
    inner.put("index/i1", b"index one")
    cache = CachedBackend(inner, tmp_path)
    assert cache.get("index/i1") == b"index one"
    old, young = tmp_path / "index" / ".tmp-1-2", tmp_path / "index" / ".tmp-3-4"
    for path, age in ((old, TMP_STALE_AFTER + 60), (young, TMP_STALE_AFTER - 60)):
        path.write_bytes(b"half")
        then = time.time() - age
        os.utime(path, (then, then))

    assert [i.key for i in cache.list("index/")] == ["index/i1"]

    assert sorted(os.listdir(tmp_path / "index")) == [".tmp-3-4", "i1"]
