"""The index cache: a repository's index files as runs on local disk, shared by every process
that opens the repository (format, and why a crash leaves it usable or discarded, in
docs/FORMAT.md "Index cache").

The repository's index files stay the truth. The manifest names each run and the index
files it covers; a run counts only while all of those files are still listed, its file has
the size and header the manifest says, and the manifest carries this repository's id and a
MAC under its key. Anything else is rebuilt from the index files. Updaters hold an exclusive
``flock`` and publish by rename (run files first, then the manifest, both fsynced); readers
take no lock: they read the manifest and map its runs, and retry when a concurrent
compaction removed one first (an open run stays readable after it is unlinked).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from snapfs.buffers import Buffer
from snapfs.faults import fault_point
from snapfs.index.decode import records_of_index_file
from snapfs.index.runs import (
    CHUNK_RECORDS,
    DamagedRun,
    Run,
    checksum,
    concatenate,
    merge_runs,
    renumber,
    sort_unique,
    write_run,
)

if TYPE_CHECKING:
    import numpy as np

MANIFEST_VERSION = 1
MAX_RUNS = 8
# Records sorted at once while building: 24 MB of them, so numpy's temporaries stay under
# glibc's mmap threshold (32 MB) and are reused from the heap; at 2^20 each one was a fresh
# mapping, faulted in page by page (2.6 GB of page faults, 4.7 s of system time for 10M).
BUILD_BATCH = 1 << 19
FEED_BATCH = 1 << 18  # a writer's batches and merge slices: its memory, beside its backup's
PUBLISH_MERGE_LIMIT = 1 << 22  # a writer merges at most this many records on its own
_MAC = 32
_TMP = ".tmp-"
_MANIFEST = "manifest"
_LOCK = "lock"

ReadFiles = Callable[[list[str]], Iterator[tuple[str, Buffer]]]  # names -> (name, plaintext)


class RunInfo(msgspec.Struct, array_like=True, frozen=True):
    name: str
    count: int
    size: int
    checksum: bytes
    files: list[str]  # the index files whose blobs the run holds


class Manifest(msgspec.Struct, frozen=True):
    version: int
    repository: str
    runs: list[RunInfo]


def runs_to_merge(counts: list[int], most: int = MAX_RUNS) -> list[int]:
    """Which runs (indexes into ``counts``) to merge into one, if any: the smallest runs
    whose total reaches a quarter of the next larger one (so a run is rewritten only when
    what joins it is comparable: O(log n) runs, each record rewritten O(log n) times), and
    always enough of the smallest that at most ``most`` remain."""
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    start = len(order)
    tail = 0
    for j in range(len(order) - 1, 0, -1):
        tail += counts[order[j]]
        if tail * 4 >= counts[order[j - 1]]:
            start = j - 1
    if len(order) > most:
        start = min(start, most - 1)
    chosen = order[start:]
    return sorted(chosen) if len(chosen) > 1 else []


class IndexCache:
    """One repository's index cache in ``directory``. ``mac`` is a keyed hash under the
    repository's key, so a manifest from another repository (or forged) is not believed."""

    def __init__(self, directory: Path, repo_id: str, mac: Callable[[bytes], bytes]) -> None:
        self.directory = directory
        self._repo = repo_id
        self._repo_bytes = bytes.fromhex(repo_id)
        self._mac = mac
        # Runs this process wrote and has not yet fsynced: fsynced when a manifest names
        # them, and trusted by merges without a checksum (their bytes were never at rest).
        self._unsynced: set[str] = set()

    # -- reading ---------------------------------------------------------------------------
    def open_runs(self, names: Iterable[str], read: ReadFiles) -> list[Run]:
        """Runs holding exactly the blobs of the index files ``names``; what the cache
        lacks is read (``read``) and added, under the lock."""
        wanted = set(names)
        runs = self._current(wanted)
        if runs is not None:
            return runs
        # Stale, damaged, or a run compacted away between the manifest and its file: under
        # the lock the manifest is read again and only what is missing is built.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked(blocking=True):
            return self._update(wanted, read)

    def _current(self, wanted: set[str]) -> list[Run] | None:
        """The runs when the manifest covers exactly ``wanted``. No manifest is never
        current, even for a repository without index files: its update publishes an empty
        one, so the first backup's index files are added to a cache that exists (else the
        next open would read and merge every one of them)."""
        manifest = self._read_manifest()
        if manifest is None:
            return None
        covered = {name for info in manifest.runs for name in info.files}
        if covered != wanted:
            return None
        return self._open_all(manifest.runs)

    def _open_all(self, infos: list[RunInfo]) -> list[Run] | None:
        runs: list[Run] = []
        for info in infos:
            run = self._open(info)
            if run is None:
                for opened in runs:
                    opened.close()
                return None
            runs.append(run)
        return runs

    def _open(self, info: RunInfo) -> Run | None:
        """The run ``info`` names when its file is the one the manifest describes."""
        try:
            run = Run(self.directory / info.name, self._repo_bytes)
        except (DamagedRun, OSError):  # OSError: gone (compacted, or deleted by hand)
            return None
        if (run.size, run.count) != (info.size, info.count):
            run.close()
            return None
        return run

    def _read_manifest(self) -> Manifest | None:
        try:
            stored = (self.directory / _MANIFEST).read_bytes()
        except FileNotFoundError:
            return None
        body = stored[_MAC:]
        if len(stored) < _MAC or self._mac(body) != stored[:_MAC]:
            return None
        try:
            manifest = msgspec.msgpack.decode(body, type=Manifest)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if manifest.version != MANIFEST_VERSION or manifest.repository != self._repo:
            return None
        return manifest

    # -- updating (under the lock) ---------------------------------------------------------
    @contextmanager
    def _locked(self, *, blocking: bool) -> Iterator[bool]:
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _update(self, wanted: set[str], read: ReadFiles) -> list[Run]:
        manifest = self._read_manifest()
        kept: list[tuple[RunInfo, Run]] = []
        for info in manifest.runs if manifest else []:
            run = self._open(info) if set(info.files) <= wanted else None
            if run is not None:
                kept.append((info, run))
        covered = {name for info, _run in kept for name in info.files}
        kept += self._build(sorted(wanted - covered), read)
        fault_point("index-cache-run-written")
        kept = self._compact(kept, limit=None, read=read, wanted=wanted)
        self._publish([info for info, _run in kept])
        return [run for _info, run in kept]

    def _build(self, names: list[str], read: ReadFiles) -> list[tuple[RunInfo, Run]]:
        """New runs holding the blobs of the index files ``names``."""
        with _Batches(self._write) as batches:
            for name, plain in read(names) if names else iter(()):
                batches.add(name, plain)
            return batches.finish()

    def _write(
        self, records: np.ndarray[Any, Any], packs: list[bytes], files: list[str]
    ) -> tuple[RunInfo, Run]:
        records, table = renumber(sort_unique(records), packs)
        return self._install(lambda path: write_run(path, self._repo_bytes, records, table), files)

    def _install(
        self, write: Callable[[Path], tuple[int, int, bytes]], files: list[str]
    ) -> tuple[RunInfo, Run]:
        """Write a run under a temporary name, then give it its own: a crash leaves at most
        a temporary file, which the next update sweeps away."""
        name = f"run-{os.urandom(8).hex()}"
        tmp = self.directory / f"{_TMP}{name}"
        try:
            count, size, digest = write(tmp)
            os.replace(tmp, self.directory / name)
            self._unsynced.add(name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        run = Run(self.directory / name, self._repo_bytes)
        return RunInfo(name, count, size, digest, sorted(files)), run

    def _compact(
        self, runs: list[tuple[RunInfo, Run]], *, limit: int | None, read: ReadFiles | None,
        wanted: set[str] | None, chunk: int = CHUNK_RECORDS,
    ) -> list[tuple[RunInfo, Run]]:  # fmt: skip
        """Merge runs as ``runs_to_merge`` says (only when the merge holds at most ``limit``
        records, if given). A run whose bytes fail their checksum is dropped and, when
        ``read`` is given, rebuilt from its index files."""
        while True:
            chosen = runs_to_merge([info.count for info, _run in runs])
            if not chosen or (limit is not None and sum(runs[i][0].count for i in chosen) > limit):
                return runs
            bad = [
                i for i in chosen
                if runs[i][0].name not in self._unsynced
                and checksum(runs[i][1].path) != runs[i][0].checksum
            ]  # fmt: skip
            if bad:
                lost = [name for i in bad for name in runs[i][0].files]
                runs = [r for i, r in enumerate(runs) if i not in bad]
                if read is not None and wanted is not None:
                    runs += self._build(sorted(set(lost) & wanted), read)
                continue
            inputs = [runs[i] for i in chosen]
            files = [name for info, _run in inputs for name in info.files]
            sources = [run for _info, run in inputs]
            merge = partial(merge_runs, sources, repo_id=self._repo_bytes, chunk=chunk)
            merged = self._install(merge, files)
            runs = [r for i, r in enumerate(runs) if i not in chosen] + [merged]

    def _publish(self, infos: list[RunInfo]) -> None:
        """Replace the manifest (fsynced, renamed, directory fsynced), then delete every file
        it does not name: old runs (their readers keep them open) and dead temporaries."""
        for info in infos:
            if info.name in self._unsynced:
                _fsync(self.directory / info.name)
        self._unsynced.clear()  # the others are deleted below
        body = msgspec.msgpack.encode(Manifest(MANIFEST_VERSION, self._repo, infos))
        tmp = self.directory / f"{_TMP}{_MANIFEST}-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(self._mac(body) + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / _MANIFEST)
        _fsync(self.directory)
        fault_point("index-cache-published")
        live = {info.name for info in infos} | {_MANIFEST, _LOCK}
        for name in os.listdir(self.directory):
            if name not in live:
                (self.directory / name).unlink(missing_ok=True)

    @contextmanager
    def adding(self) -> Iterator[Callable[[str, Buffer], None]]:
        """Inside, ``add(name, plain)`` gives the cache each index file this process writes
        (prune's rewrite, which knows what it wrote); on a clean exit they become runs,
        published beside the runs there already, so that once the files they replace are
        deleted the next open finds all covered and reads nothing. Holds the lock
        throughout (a backup's ``add`` then leaves its file to the next open). A cache
        that cannot be written, or has no manifest yet, takes nothing: the next open reads
        the files, as on any other machine."""
        with ExitStack() as stack:
            manifest, feeding = None, None
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                stack.enter_context(self._locked(blocking=True))
                manifest = self._read_manifest()
            except OSError:
                pass
            if manifest is not None:
                feeding = stack.enter_context(_Batches(self._write))

            def add(name: str, plain: Buffer) -> None:
                nonlocal feeding
                try:
                    if feeding is not None:
                        feeding.add(name, plain)
                except OSError:
                    feeding = None  # what it wrote is swept by the next update

            yield add
            if feeding is not None and manifest is not None:
                try:
                    built = self._compact(feeding.finish(), limit=None, read=None, wanted=None)
                    self._publish([*manifest.runs, *(info for info, _run in built)])
                except OSError:
                    return  # the next open reads the files
                for _info, run in built:
                    run.close()

    def add(self, name: str, plain: Buffer) -> Run | None:
        """Add the index file ``name`` (just written by this process; ``plain`` is its
        content) as a run of its own, unless another process holds the lock (then the next
        open reads the file). Merges only what is cheap. The new run, or None."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._locked(blocking=False) as held:
                if not held:
                    return None
                manifest = self._read_manifest()
                if manifest is None:
                    return None  # the next open builds the whole cache
                records, packs = records_of_index_file(plain, name)
                opened = self._open_all(manifest.runs)
                if opened is None:
                    return None
                runs = list(zip(manifest.runs, opened, strict=True))
                added = self._write(records, packs, [name])
                runs = self._compact([*runs, added], limit=PUBLISH_MERGE_LIMIT, read=None,
                                     wanted=None)  # fmt: skip
                self._publish([info for info, _run in runs])
                return added[1]
        except OSError:
            return None

    def feed(self, on_run: Callable[[Run, list[str]], None]) -> Feed:
        """A ``Feed`` for the index files a writer stores (a backup's, a copy's)."""
        return Feed(self, on_run)

    def _name(self, infos: list[RunInfo]) -> list[RunInfo]:
        """Under the lock: name ``infos`` (runs this process wrote) beside the manifest's
        runs, merging nothing; the ones left unnamed (all of them when there is no manifest:
        the next open builds the whole cache). A run another updater swept away meanwhile is
        not named: the next open reads its files."""
        manifest = self._read_manifest()
        if manifest is None:
            return infos
        alive = [info for info in infos if (self.directory / info.name).exists()]
        for info in alive:  # another thread's publish may have cleared _unsynced
            _fsync(self.directory / info.name)
        self._publish([*manifest.runs, *alive])
        return []

    def compact(self, unnamed: list[RunInfo]) -> None:
        """When the lock is free: name ``unnamed`` (runs this process wrote while it was
        busy), then merge the manifest's runs as ``runs_to_merge`` says, at most
        PUBLISH_MERGE_LIMIT records (a writer's share). Once, as a writer ends."""
        try:
            with self._locked(blocking=False) as held:
                if not held or self._name(unnamed):
                    return
                manifest = self._read_manifest()
                opened = None if manifest is None else self._open_all(manifest.runs)
                if manifest is None or opened is None:
                    return
                runs = list(zip(manifest.runs, opened, strict=True))
                kept = self._compact(runs, limit=PUBLISH_MERGE_LIMIT, read=None, wanted=None,
                                     chunk=FEED_BATCH)  # fmt: skip
                if [info for info, _run in kept] != manifest.runs:
                    self._publish([info for info, _run in kept])
                for _info, run in [*runs, *kept]:  # a second close does nothing
                    run.close()
        except OSError:
            return


class Feed:
    """The index files a writer stores, given to the cache as they are written: gathered
    into runs of about FEED_BATCH records (sorted on a thread, merging nothing), each
    handed to ``on_run`` with its pack ids (the writer's overlay lets them go) and named
    in the manifest beside the runs there (and those left unnamed before) when the lock is
    free; ``close`` writes the last and compacts once. So a backup merges once at its end,
    not once an index file, and the next open reads none of its files. Thread-safe. A run
    is written under the lock when it is free, so no updater sweeps it half-written; a
    batch whose run cannot be written (a full disk, or swept while the lock was busy)
    stays in the overlay, and the next open reads its files."""

    def __init__(self, cache: IndexCache, on_run: Callable[[Run, list[str]], None]) -> None:
        self._cache = cache
        self._on_run = on_run
        self._lock = threading.Lock()
        self._batches: _Batches | None = _Batches(self._written, FEED_BATCH)
        self._unnamed: list[RunInfo] = []  # written, not yet in the manifest

    def add(self, name: str, plain: Buffer) -> None:
        with self._lock:
            if self._batches is not None:
                with suppress(OSError):  # the batch that failed is lost to the cache only
                    self._batches.add(name, plain)

    def close(self) -> None:
        """Write the last run, name those left unnamed, then compact; idempotent."""
        with self._lock:
            batches, self._batches = self._batches, None
            if batches is None:
                return
            try:
                with suppress(OSError):
                    batches.finish()
            finally:
                batches.close()
        self._cache.compact(self._unnamed)

    def _written(
        self, records: np.ndarray[Any, Any], packs: list[bytes], files: list[str]
    ) -> tuple[RunInfo, Run]:
        """A batch made a run (on the batch thread, one at a time), named when the lock
        is free, then given to the writer's index."""
        with self._cache._locked(blocking=False) as held:
            info, run = self._cache._write(records, packs, files)
            self._unnamed.append(info)
            if held:
                with suppress(OSError):
                    self._unnamed = self._cache._name(self._unnamed)
        self._on_run(run, [pack.hex() for pack in packs])
        return info, run


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Batches:
    """Index files gathered into runs of about BUILD_BATCH records: a batch is sorted and
    written on a thread (numpy releases the GIL) while the next one is decoded, so memory
    holds at most two batches. ``finish`` writes the last and gives every run written."""

    def __init__(
        self,
        write: Callable[[np.ndarray[Any, Any], list[bytes], list[str]], tuple[RunInfo, Run]],
        batch: int | None = None,
    ) -> None:
        self._write = write
        self._most = BUILD_BATCH if batch is None else batch  # records a batch holds
        self._pool = ThreadPoolExecutor(1, "snapfs-index-build")
        self._writing: Future[tuple[RunInfo, Run]] | None = None
        self._built: list[tuple[RunInfo, Run]] = []
        self._batch: list[np.ndarray[Any, Any]] = []
        self._packs: list[bytes] = []
        self._files: list[str] = []
        self._size = 0

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, name: str, plain: Buffer) -> None:
        records, file_packs = records_of_index_file(plain, name)
        records["pk"] += len(self._packs) << 1
        self._batch.append(records)
        self._packs += file_packs
        self._files.append(name)
        self._size += len(records)
        if self._size >= self._most:
            self._wait()
            batch = concatenate(self._batch)
            self._writing = self._pool.submit(self._write, batch, self._packs, self._files)
            self._batch, self._packs, self._files, self._size = [], [], [], 0

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self._built.append(writing.result())

    def finish(self) -> list[tuple[RunInfo, Run]]:
        self._wait()
        if self._files:
            parts, packs, files = self._batch, self._packs, self._files
            self._batch, self._packs, self._files, self._size = [], [], [], 0
            records = concatenate(parts)
            del parts  # gone before the sort copies the records again
            self._built.append(self._write(records, packs, files))
        return self._built

    def close(self) -> None:
        self._pool.shutdown(wait=True)
