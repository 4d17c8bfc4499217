"""Restore into S3: each file of a snapshot's directory becomes an object below
``s3://BUCKET/PREFIX`` (docs/S3.md, "Restoring into a bucket").

The file at ``PATH/x/y`` goes to ``PREFIX/x/y``. A snapshot of S3 sources (``source`` "s3")
named its files by sources/keys.py, so their names are decoded back to the original keys;
other snapshots' names are taken as they are (they must be UTF-8). The objects get the
metadata the nodes keep (targets/s3.py); objects already identical at the target are left
alone, so an interrupted restore resumes. Only regular files become objects: directories
are implied by keys, and symlinks and special files are warned about. An object whose key
is also a directory of other keys (``a`` beside ``a/b``, the file ``a%=``), and a folder
marker (``a/`` beside ``a/b``, the file ``a/%``), goes up only when that directory's objects
are up: servers that keep objects as file-system entries (SeaweedFS) may keep just one of
``a`` (or ``a/``) and ``a/b`` written at once.

Files go up on FILES threads. Each reads its blobs in order, a group of at most GROUP bytes
at a time (``read_blob_group``: coalesced ranges), so memory is bounded: a file below the
multipart threshold is held whole while it uploads, and such files may hold SMALL_BUDGET
bytes in all; larger ones go up in parts, at most the target's ``uploads`` in flight.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import msgspec

from snapfs.buffers import Data
from snapfs.errors import IntegrityError, SnapfsError
from snapfs.events import BytesDone, EventHandler, FileDone, FileWarning, ignore
from snapfs.restore import RestoreSource, RestoreSummary, subtree, whole_totals
from snapfs.snapshot import Snapshot
from snapfs.sources.keys import BESIDE_DIR, EMPTY_SEGMENT
from snapfs.sources.s3 import ETAG
from snapfs.tableview import BucketTables
from snapfs.targets.s3 import S3Target
from snapfs.tree import DIR, FILE, Node
from snapfs.walk import PathFilter, path_text, walk

FILES = 8
GROUP = 4 * 1024 * 1024
SMALL_BUDGET = 64 * 1024 * 1024


class S3RestoreSource(RestoreSource, Protocol):
    def read_blob_group(self, ids: Iterable[bytes]) -> dict[bytes, Data]: ...


def restore_to_s3(
    repo: S3RestoreSource,
    snapshot: Snapshot,
    target: S3Target,
    *,
    path: str = "",
    includes: list[str] | None = None,
    excludes: list[str] | None = None,
    on_event: EventHandler = ignore,
    files: int = FILES,
) -> RestoreSummary:
    """Write the files of ``snapshot``'s directory ``path`` as objects through ``target``.
    Failures of the target (a missing bucket, refused credentials, a server that keeps
    failing) end the restore; a file that cannot be a key or whose blobs are damaged is
    warned about and left out. Pinned Iceberg tables get their metadata files moved to
    their new place (tableview.BucketTables), and a ``version-hint.text`` where the
    snapshot holds none."""
    filt = PathFilter(includes, excludes)
    run = _S3Restore(repo, target, snapshot.source == "s3", on_event, files)
    totals = whole_totals(snapshot, filt, path)
    if totals is not None:
        on_event(totals)
    with repo.lock("read"):
        root = subtree(repo, snapshot, path)
        if snapshot.source != "s3":  # an S3 backup's tables are not pinned: nothing moves
            home = f"s3://{target.bucket}/{target.prefix}".rstrip("/")
            run.tables = BucketTables(repo, snapshot, path, home)
            for rel, why in run.tables.failed:
                run._warn(rel, f"Iceberg table not moved to its new place: {why}")
        target.note_empty()  # before the walk: a missing bucket is said even with no file
        nodes = walk(repo, root, prune=filt or None, on_problem=run.problem)
        hints = run.tables.hints() if run.tables is not None else []
        run.run(itertools.chain(nodes, hints), filt)
    return run.summary


class _S3Restore:
    def __init__(
        self,
        repo: S3RestoreSource,
        target: S3Target,
        s3_names: bool,
        on_event: EventHandler,
        files: int,
    ) -> None:
        self.repo = repo
        self.target = target
        self.s3_names = s3_names
        self.emit = on_event
        self.summary = RestoreSummary()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(files, "snapfs-s3-restore")
        self._queue = 2 * files  # queued and running files
        self._slots = threading.BoundedSemaphore(self._queue)
        self._small = _Budget(SMALL_BUDGET)
        self._error: BaseException | None = None
        self.tables: BucketTables | None = None

    def run(self, nodes: Iterator[tuple[bytes, Node]], filt: PathFilter) -> None:
        markers: list[tuple[bytes, Node]] = []  # folder markers of the walk's path, inner last
        try:
            for rel, node in nodes:
                if self._error is not None:
                    break
                self._markers_left(markers, rel)
                if node.type == DIR or (filt and not filt.selected(rel)):
                    continue
                if node.type != FILE:
                    self._warn(rel, "not a regular file: an S3 object cannot hold it, skipped")
                    continue
                if self.s3_names and _is_marker(rel):
                    markers.append((rel, node))  # sorted first: up once its directory's are
                    continue
                if self.s3_names and rel.endswith(BESIDE_DIR):
                    self._drain()  # the walk gave the directory's files first: they go up now
                self._submit(rel, node)
            if self._error is None:
                self._markers_left(markers, None)
        except BaseException:
            self._pool.shutdown(wait=True, cancel_futures=True)
            raise
        self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error

    def _markers_left(self, markers: list[tuple[bytes, Node]], rel: bytes | None) -> None:
        """Submit the folder markers (keys ending in ``/``) of the directories the walk has
        left by ``rel`` (None: all of them), once the objects below them are up."""
        while markers and (rel is None or not rel.startswith(markers[-1][0][:-1])):
            self._drain()
            self._submit(*markers.pop())

    def _drain(self) -> None:
        """Wait until every file submitted is done (each holds a slot until then)."""
        for _ in range(self._queue):
            self._slots.acquire()
        for _ in range(self._queue):
            self._slots.release()

    def problem(self, rel: bytes, message: str) -> None:
        self._warn(rel, f"{message}: skipped")

    def _warn(self, rel: bytes, message: str) -> None:
        with self._lock:
            self.summary.warnings += 1
        self.emit(FileWarning(path_text(b"/" + rel), message))

    def _submit(self, rel: bytes, node: Node) -> None:
        held = min(node.size, self.target.multipart_threshold)
        self._slots.acquire()
        self._small.take(held)
        try:
            fut = self._pool.submit(self._file, rel, node)
        except BaseException:
            self._small.give(held)
            self._slots.release()
            raise
        fut.add_done_callback(lambda done: self._done(done, held))

    def _done(self, fut: Future[None], held: int) -> None:
        self._small.give(held)
        self._slots.release()
        error = None if fut.cancelled() else fut.exception()
        if error is not None:
            with self._lock:
                self._error = self._error or error

    def _file(self, rel: bytes, node: Node) -> None:
        if self._error is not None:  # the restore is failing: start nothing new
            return
        try:
            key = self.target.key_for(rel.split(b"/"), s3_names=self.s3_names)
        except ValueError:
            self._warn(rel, "its name cannot be an S3 key (not UTF-8, or not one an S3 "
                       "backup made): skipped")  # fmt: skip
            return
        moved = self._moved(rel)
        if moved is not None:  # its paths name the new place: its size and ETag are new
            xattrs = [(k, v) for k, v in node.xattrs if k != ETAG]
            node = msgspec.structs.replace(node, size=len(moved), xattrs=xattrs)
        try:
            if moved is None:
                written = self.target.write(key, node, lambda: self._content(node))
            else:
                written = self.target.write(key, node, lambda: [moved])
        except IntegrityError as e:
            self._warn(rel, f"{e}: not restored")
            return
        with self._lock:
            self.summary.files += 1
            if written.uploaded:
                self.summary.bytes += node.size
            else:
                self.summary.skipped += 1
        if written.uploaded:
            self.emit(BytesDone(node.size))
            self.emit(FileDone(path_text(b"/" + rel), node.size, 0))

    def _moved(self, rel: bytes) -> bytes | None:
        """The bytes of an Iceberg metadata file moved to the new place; None: as stored
        (and so is one that cannot be moved, with a warning)."""
        if self.tables is None:
            return None
        try:
            return self.tables.contents(rel)
        except (SnapfsError, OSError) as e:
            self._warn(rel, f"Iceberg metadata not moved to its new place: {e}")
            return None

    def _content(self, node: Node) -> Iterator[Data]:
        """The file's blobs in order, read a group of about GROUP bytes at a time."""
        group: list[bytes] = []
        size = 0
        for blob_id in node.content:
            group.append(blob_id)
            size += self.repo.blob_entry(blob_id).raw_length
            if size >= GROUP:
                yield from _in_order(self.repo.read_blob_group, group)
                group, size = [], 0
        if group:
            yield from _in_order(self.repo.read_blob_group, group)


def _in_order(read: Callable[[list[bytes]], dict[bytes, Data]], ids: list[bytes]) -> Iterator[Data]:
    blobs = read(ids)
    for blob_id in ids:  # a blob may repeat in a file (zeros, say): read once, given twice
        yield blobs[blob_id]


class _Budget:
    """Bytes the files being uploaded whole may hold; ``take`` waits for room, but one file
    alone may take more than the limit (so a lone large file never waits forever)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def take(self, n: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._used == 0 or self._used + n <= self._limit)
            self._used += n

    def give(self, n: int) -> None:
        with self._cond:
            self._used -= n
            self._cond.notify_all()


def _is_marker(rel: bytes) -> bool:
    """Whether the file at ``rel`` is a key ending in ``/``: its last segment is empty."""
    return rel == EMPTY_SEGMENT or rel.endswith(b"/" + EMPTY_SEGMENT)
