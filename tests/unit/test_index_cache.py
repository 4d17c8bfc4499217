"""The on-disk index (runs under a manifest) against the in-memory one, on real files."""

from __future__ import annotations

import fcntl
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import pytest

import snapfs.index.cache
from snapfs.index import Index, encode_index_file
from snapfs.index.cache import IndexCache, runs_to_merge
from snapfs.index.layered import LayeredIndex
from snapfs.pack import BlobKind, PackEntry

REPO = "ab" * 16


def _mac(data: bytes) -> bytes:
    return blake3.blake3(data, key=b"k" * 32).digest()


class Files:
    """Index files as a repository holds them (plaintext), counting what gets read."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.files: dict[str, list[tuple[str, list[PackEntry]]]] = {}
        self.read: list[str] = []

    def add(self, packs: int = 3, blobs: int = 40, reuse: list[bytes] | None = None) -> str:
        listing = []
        for _ in range(packs):
            entries = [
                PackEntry(
                    self.rng.randbytes(32), BlobKind(self.rng.randrange(2)),
                    self.rng.randrange(1 << 24), self.rng.randrange(1 << 20),
                    self.rng.randrange(1 << 20),
                )
                for _ in range(blobs)
            ]  # fmt: skip
            if reuse:
                entries += [PackEntry(b, BlobKind.DATA, 1, 2, 3) for b in reuse]
            listing.append((self.rng.randbytes(32).hex(), entries))
        name = self.rng.randbytes(32).hex()
        self.files[name] = listing
        return name

    def reader(self, names: list[str]) -> Iterator[tuple[str, bytes]]:
        for name in names:
            self.read.append(name)
            yield name, encode_index_file(self.files[name])

    def memory_index(self) -> Index:
        index = Index()
        for name in sorted(self.files):
            for pack_id, entries in self.files[name]:
                index.add_pack(pack_id, entries)
        return index


def _open(directory: Path, files: Files, repo: str = REPO) -> LayeredIndex:
    cache = IndexCache(directory, repo, _mac)
    return LayeredIndex(cache.open_runs(list(files.files), files.reader))


def _same_answers(disk: LayeredIndex, memory: Index, rng: random.Random) -> None:
    ids = [blob_id for blob_id, _e in memory.entries()]
    for blob_id in rng.sample(ids, min(300, len(ids))):
        assert blob_id in disk
        found = disk.lookup(blob_id)
        expected = memory.lookup(blob_id)
        assert found is not None and expected is not None
        # a blob in two files may live in either: both are valid homes
        assert (found.kind, found.raw_length) == (expected.kind, expected.raw_length)
    for _ in range(300):
        missing = rng.randbytes(32)
        assert missing not in disk and disk.lookup(missing) is None
    assert sorted(b for b, _e in disk.entries()) == sorted(ids)
    data = sum(1 for _b, e in memory.entries() if e.kind == BlobKind.DATA)
    raw = sum(e.raw_length for _b, e in memory.entries() if e.kind == BlobKind.DATA)
    assert disk.totals() == (data, len(memory) - data, raw)


def test_runs_answer_as_the_memory_index_across_merges_and_compactions(tmp_path: Path) -> None:
    files = Files()
    rng = random.Random(2)
    shared = [rng.randbytes(32) for _ in range(5)]  # listed in many files and packs
    for step in range(12):
        for _ in range(rng.randrange(1, 4)):
            files.add(packs=rng.randrange(1, 5), blobs=rng.randrange(1, 300), reuse=shared)
        disk = _open(tmp_path / "cache", files)
        _same_answers(disk, files.memory_index(), rng)
        assert len(disk.runs) <= 8, step
    runs = {p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith("run-")}
    assert 1 <= len(runs) < 12  # merged as they multiplied, old files swept


def test_exact_home_of_each_blob(tmp_path: Path) -> None:
    files = Files(3)
    for _ in range(4):
        files.add(packs=4, blobs=100)
    disk = _open(tmp_path / "c", files)
    for _name, listing in files.files.items():
        for pack_id, entries in listing:
            for e in entries:
                found = disk.lookup(e.blob_id)
                assert found is not None
                got = (found.pack_id, found.kind, found.offset, found.length, found.raw_length)
                assert got == (pack_id, e.kind, e.offset, e.length, e.raw_length)
                assert disk.has_pack(pack_id)
    assert not disk.has_pack("00" * 32)


def test_a_second_open_reads_no_index_file(tmp_path: Path) -> None:
    files = Files()
    files.add()
    files.add()
    _open(tmp_path / "c", files)
    files.read.clear()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(4))
    assert files.read == []


def test_an_index_file_added_elsewhere_is_read_alone(tmp_path: Path) -> None:
    files = Files()
    files.add()
    _open(tmp_path / "c", files)
    files.read.clear()
    new = files.add()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(5))
    assert files.read == [new]


def test_an_index_file_removed_elsewhere_drops_its_blobs(tmp_path: Path) -> None:
    files = Files()
    names = [files.add() for _ in range(3)]
    _open(tmp_path / "c", files)
    gone = files.files.pop(names[1])
    disk = _open(tmp_path / "c", files)
    for _pack_id, entries in gone:
        assert all(e.blob_id not in disk for e in entries)
    _same_answers(disk, files.memory_index(), random.Random(6))


def test_a_cache_of_another_repository_is_rebuilt(tmp_path: Path) -> None:
    files = Files()
    files.add()
    other = Files(9)
    other.files = {name: other.files.get(name, []) for name in files.files}  # same names
    for name in files.files:
        other.files[name] = [("cd" * 32, [PackEntry(os.urandom(32), BlobKind.DATA, 1, 2, 3)])]
    _open(tmp_path / "c", other, repo="cd" * 16)  # another repository's cache, same place
    files.read.clear()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(7))
    assert files.read == list(files.files)


def test_a_manifest_under_another_key_is_not_believed(tmp_path: Path) -> None:
    files = Files()
    files.add()
    IndexCache(tmp_path / "c", REPO, lambda d: b"x" * 32).open_runs(list(files.files), files.reader)
    files.read.clear()
    _open(tmp_path / "c", files)
    assert files.read == list(files.files)


@pytest.mark.parametrize("cut", [1, 48, 4000])
def test_a_truncated_run_is_rebuilt(tmp_path: Path, cut: int) -> None:
    files = Files()
    files.add(packs=5, blobs=200)
    _open(tmp_path / "c", files)
    (run,) = [p for p in (tmp_path / "c").iterdir() if p.name.startswith("run-")]
    os.truncate(run, run.stat().st_size - cut)
    files.read.clear()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(8))
    assert files.read == list(files.files)


def test_a_damaged_run_is_rebuilt_before_it_is_merged(tmp_path: Path) -> None:
    """Bit rot keeps the size: the checksum, verified before every merge, catches it."""
    files = Files()
    first = files.add(packs=2, blobs=100)
    _open(tmp_path / "c", files)
    (run,) = [p for p in (tmp_path / "c").iterdir() if p.name.startswith("run-")]
    with open(run, "r+b") as f:
        f.seek(64 + 40)
        f.write(b"\xff\xff\xff\xff")
    files.add(packs=2, blobs=100)  # comparable in size: the two runs merge
    files.read.clear()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(9))
    assert first in files.read


def test_a_run_this_process_published_is_checked_before_it_is_merged(tmp_path: Path) -> None:
    """Only runs written in the same update skip the checksum: a long-lived process (a
    mount) that built a run earlier verifies it like anyone else's."""
    files = Files()
    first = files.add(packs=2, blobs=100)
    cache = IndexCache(tmp_path / "c", REPO, _mac)
    cache.open_runs(list(files.files), files.reader)
    (run,) = [p for p in (tmp_path / "c").iterdir() if p.name.startswith("run-")]
    with open(run, "r+b") as f:
        f.seek(64 + 40)
        f.write(b"\xff\xff\xff\xff")
    files.add(packs=2, blobs=100)
    files.read.clear()
    disk = LayeredIndex(cache.open_runs(list(files.files), files.reader))
    _same_answers(disk, files.memory_index(), random.Random(10))
    assert first in files.read


def test_the_overlay_answers_until_published(tmp_path: Path) -> None:
    files = Files()
    files.add()
    cache = IndexCache(tmp_path / "c", REPO, _mac)
    disk = LayeredIndex(cache.open_runs(list(files.files), files.reader))
    name = files.add()
    ((pack_id, entries),) = files.files[name][:1]
    disk.add_pack(pack_id, entries)
    assert all(e.blob_id in disk for e in entries)
    run = cache.add(name, encode_index_file(files.files[name][:1]))
    assert run is not None
    disk.published(run, [pack_id])
    assert all(e.blob_id in disk for e in entries)
    assert len(disk) == sum(len(es) for _p, es in files.files[next(iter(files.files))]) + len(
        entries
    )


def _rewrite(files: Files, cache: IndexCache, *, drop: int, fail: bool = False) -> list[str]:
    """What prune's rewrite does: the listings of every file but one pack (``drop``-th) into
    two new files given to the cache as written, then the old files deleted."""
    old = list(files.files)
    listings = [listing for name in old for listing in files.files[name]]
    del listings[drop]
    new = {}
    for part in (listings[::2], listings[1::2]):
        new[files.rng.randbytes(32).hex()] = part
    with cache.adding() as add:
        for name, listing in new.items():
            files.files[name] = listing
            add(name, encode_index_file(listing))
        if fail:
            raise RuntimeError("the rewrite failed")
    for name in old:
        del files.files[name]
    return list(new)


def test_a_rewrite_given_to_the_cache_is_read_by_nobody(tmp_path: Path) -> None:
    """After prune rewrote the index here, the next open reads no index file."""
    files = Files(11)
    for _ in range(3):
        files.add(packs=3, blobs=100)
    _open(tmp_path / "c", files)
    _rewrite(files, IndexCache(tmp_path / "c", REPO, _mac), drop=4)
    files.read.clear()
    disk = _open(tmp_path / "c", files)
    assert files.read == []
    _same_answers(disk, files.memory_index(), random.Random(12))
    runs = {p.name for p in (tmp_path / "c").iterdir() if p.name.startswith("run-")}
    assert runs == {run.path.name for run in disk.runs}  # the old runs are gone


def test_a_rewrite_that_fails_leaves_its_files_to_the_next_open(tmp_path: Path) -> None:
    files = Files(13)
    old = files.add(packs=3, blobs=100)
    _open(tmp_path / "c", files)
    with pytest.raises(RuntimeError):
        _rewrite(files, IndexCache(tmp_path / "c", REPO, _mac), drop=0, fail=True)
    files.read.clear()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(14))
    assert sorted(files.read) == sorted(set(files.files) - {old})  # the new files, afresh


def test_a_rewrite_into_a_cache_never_built_adds_nothing(tmp_path: Path) -> None:
    """Another machine, or a cache not built yet: the next open reads the files."""
    files = Files(15)
    files.add(packs=3, blobs=50)
    new = _rewrite(files, IndexCache(tmp_path / "c", REPO, _mac), drop=1)
    files.read.clear()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(16))
    assert sorted(files.read) == sorted(new)


def test_a_cache_opened_without_index_files_takes_the_first_ones(tmp_path: Path) -> None:
    """A new repository: its open publishes an empty manifest, so the index file its first
    backup writes is added as a run, and the next open reads no file."""
    files = Files(17)
    cache = IndexCache(tmp_path / "c", REPO, _mac)
    assert cache.open_runs([], files.reader) == []
    name = files.add(packs=2, blobs=60)
    run = cache.add(name, encode_index_file(files.files[name]))
    assert run is not None
    files.read.clear()
    disk = _open(tmp_path / "c", files)
    assert files.read == []
    _same_answers(disk, files.memory_index(), random.Random(18))


@contextmanager
def _held_elsewhere(directory: Path) -> Iterator[None]:
    """The cache's lock, held as another process's update holds it (flock(2))."""
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.mark.parametrize("free_at_close", [True, False])
def test_runs_a_feed_writes_while_the_lock_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_at_close: bool
) -> None:
    """A writer's runs serve its index even while another updater holds the lock; they are
    named as it ends when the lock is free by then, else the next open reads their files."""
    monkeypatch.setattr(snapfs.index.cache, "FEED_BATCH", 150)  # a run every two files
    files = Files(19)
    files.add(packs=2, blobs=50)
    disk = _open(tmp_path / "c", files)
    feed = IndexCache(tmp_path / "c", REPO, _mac).feed(disk.published)
    fed = [files.add(packs=1, blobs=80) for _ in range(6)]
    with _held_elsewhere(tmp_path / "c"):
        for name in fed:
            feed.add(name, encode_index_file(files.files[name]))
        deadline = time.monotonic() + 20  # the last batch is written on the feed's thread
        while len(disk.runs) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(disk.runs) == 4  # the open's, and three the lock kept unnamed
        if not free_at_close:
            feed.close()
    feed.close()  # the lock free now: a second close does nothing
    _same_answers(disk, files.memory_index(), random.Random(20))
    files.read.clear()
    _same_answers(_open(tmp_path / "c", files), files.memory_index(), random.Random(21))
    assert sorted(files.read) == ([] if free_at_close else sorted(fed))


def test_runs_to_merge_keeps_few_runs() -> None:
    assert runs_to_merge([1000]) == []
    assert runs_to_merge([1000, 10]) == []
    assert runs_to_merge([1000, 10, 10]) == [1, 2]
    assert runs_to_merge([1000, 200, 60]) == [0, 1, 2]
    assert runs_to_merge([10] * 20) == list(range(20))
    assert runs_to_merge([8**i for i in range(10, 0, -1)]) == [7, 8, 9]  # at most 8 remain
