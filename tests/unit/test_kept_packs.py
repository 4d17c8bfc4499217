"""The local cache's sweep of kept packs goes past what it did not write: a stray file where
a folder of packs would be (or a folder another process removed meanwhile) does not stop
the index from loading."""

from __future__ import annotations

from pathlib import Path

from snapfs.store.cache import CachedBackend
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
