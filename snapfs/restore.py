"""Restore: recreate a snapshot's tree under a target directory.

Plan by blob, let the repository fetch them pack by pack (each pack read once, coalesced
ranges, decoded and verified on threads), and ``pwrite`` each blob to every place it goes.
All-zero chunks are not written, so holes stay holes (files are sized with ftruncate first).
Metadata follows contents; directories come last, deepest first. A file whose size and mtime
already match the snapshot is skipped, so an interrupted restore resumes where it stopped
(mtime is set only after a file's contents are complete)."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from snapfs.buffers import Data
from snapfs.crypto import MasterKey
from snapfs.events import BytesDone, EventHandler, FileDone, FileWarning, Planned, ignore
from snapfs.index import IndexEntry
from snapfs.metadata import apply_metadata, full_mode
from snapfs.snapshot import Snapshot
from snapfs.tree import BLOCK, CHAR, DIR, FIFO, FILE, SOCKET, SYMLINK, Node, Tree
from snapfs.walk import PathFilter, walk


class RestoreSource(Protocol):
    key: MasterKey

    def lock(self, kind: str) -> AbstractContextManager[object]: ...
    def load_tree(self, tree_id: bytes) -> Tree: ...
    def blob_entry(self, blob_id: bytes) -> IndexEntry: ...
    def read_blob_ranges(
        self,
        ids: Iterable[bytes],
        consume: Callable[[Iterator[tuple[bytes, Data]]], None],
        threads: int | None = None,
    ) -> None: ...


@dataclass
class RestoreSummary:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: int = 0
    warnings: int = 0
    verify_errors: list[str] = field(default_factory=list)


@dataclass
class _File:
    path: bytes
    node: Node
    remaining: int = 0
    created: bool = False  # made (and sized) by the first writer that needs it
    stale: bool = False  # an earlier, interrupted restore left a partial copy


class Restore:
    def __init__(
        self, repo: RestoreSource, target: bytes, filt: PathFilter, on_event: EventHandler
    ) -> None:
        self.repo = repo
        self.target = target
        self.filt = filt
        self.emit = on_event
        self.summary = RestoreSummary()
        self.files: list[_File] = []
        self.dirs: list[tuple[bytes, Node]] = []
        self.links: list[tuple[bytes, bytes]] = []
        self._primaries: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()

    def _warn(self, path: bytes, message: str) -> None:
        with self._lock:
            self.summary.warnings += 1
        self.emit(FileWarning(path.decode("utf-8", "surrogateescape"), message))

    # -- pass 1: the tree ----------------------------------------------------------------
    def create_tree(self, root: bytes) -> None:
        os.makedirs(self.target, exist_ok=True)
        for rel, node in walk(self.repo, root, prune=self.filt or None):
            path = self.target + b"/" + rel
            wanted = self.filt.selected(rel)
            if node.type == DIR:
                self.dirs.append((path, node))
                if wanted:
                    os.makedirs(path, exist_ok=True)
            elif wanted:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self._create(path, node)

    def _create(self, path: bytes, node: Node) -> None:
        if node.type == FILE:
            self._plan_file(path, node)
            return
        _remove(path)
        try:
            if node.type == SYMLINK:
                os.symlink(node.target, path)
            elif node.type == FIFO:
                os.mkfifo(path, node.mode)
            elif node.type in (CHAR, BLOCK):
                os.mknod(path, full_mode(node), node.rdev)
            elif node.type == SOCKET:
                return
        except OSError as e:
            self._warn(path, e.strerror or str(e))
            return
        self._finish_metadata(path, node)

    def _plan_file(self, path: bytes, node: Node) -> None:
        if node.links > 1:
            key = (node.device, node.inode)
            primary = self._primaries.get(key)
            if primary is not None:
                self.links.append((primary, path))
                return
            self._primaries[key] = path
        try:
            st: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            if st.st_size == node.size and st.st_mtime_ns == node.mtime_ns:
                self.summary.skipped += 1  # restored by an earlier, interrupted run
                self.summary.files += 1
                return
        elif st is not None:
            _remove(path)
            st = None
        # Created later, by the writer that first needs it: creating thousands of files here
        # would hold up the first reads of the repository.
        self.files.append(_File(path, node, len(node.content), stale=st is not None))

    # -- pass 2: contents ----------------------------------------------------------------
    def write_contents(self) -> None:
        """Each blob is written by the read thread that decoded it, straight away: bytes
        still in the CPU's cache are copied into the page cache at half the cost."""
        targets: dict[bytes, list[tuple[_File, int]]] = defaultdict(list)
        total = 0
        for f in self.files:
            offset = 0
            for blob_id in f.node.content:
                targets[blob_id].append((f, offset))
                offset += self.repo.blob_entry(blob_id).raw_length
            total += f.node.size
            if not f.node.content:
                self._file_done(f)
        self.emit(Planned(len(self.files), total))
        self.repo.read_blob_ranges(list(targets), lambda blobs: self._write_range(blobs, targets))

    def _write_range(
        self, blobs: Iterator[tuple[bytes, Data]], targets: dict[bytes, list[tuple[_File, int]]]
    ) -> None:
        """Write a range's blobs; neighbours mostly belong to one file, so its descriptor
        is opened once for the range."""
        fds: dict[bytes, int] = {}
        try:
            for blob_id, data in blobs:
                places = targets[blob_id]
                try:
                    self._write_blob(data, places, fds)
                except OSError as e:  # pwrite and ftruncate name no file: say which
                    if e.filename is not None:
                        raise
                    where = places[0][0].path.decode("utf-8", "surrogateescape")
                    raise OSError(e.errno, e.strerror, where) from None
        finally:
            for fd in fds.values():
                os.close(fd)

    def _write_blob(
        self, data: Data, places: list[tuple[_File, int]], fds: dict[bytes, int]
    ) -> None:
        zero = data[:1] == b"\0" and data.count(0) == len(data)
        for f, offset in places:
            fd = fds.get(f.path)
            if fd is None:
                fd = fds[f.path] = self._open(f)
            if not zero:
                os.pwrite(fd, data, offset)
            self.emit(BytesDone(len(data)))
            with self._lock:
                f.remaining -= 1
                complete = f.remaining == 0
            if complete:
                fd = fds.pop(f.path, None)
                if fd is not None:
                    os.close(fd)  # before the metadata: closing must not touch the mtime
                self._file_done(f)

    def _open(self, f: _File) -> int:
        """A descriptor for writing ``f``; the first caller creates it at its full size."""
        if f.created:  # set once, under the lock, before any other writer may open it
            return os.open(f.path, os.O_WRONLY)
        with self._create_lock:
            if f.created:
                return os.open(f.path, os.O_WRONLY)
            fd = os.open(f.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                if f.stale:  # not on new files: ext4 flushes a file truncated to 0 on close
                    os.ftruncate(fd, 0)
                os.ftruncate(fd, f.node.size)
            except OSError:
                os.close(fd)
                raise
            f.created = True
            return fd

    def _file_done(self, f: _File) -> None:
        if not f.created:  # no content to write: an empty file
            os.close(self._open(f))
        self._finish_metadata(f.path, f.node)
        with self._lock:
            self.summary.files += 1
            self.summary.bytes += f.node.size
        self.emit(FileDone(f.path.decode("utf-8", "surrogateescape"), f.node.size, 0))

    def _finish_metadata(self, path: bytes, node: Node) -> None:
        problems: list[str] = []
        apply_metadata(path, node, problems)
        for p in problems:
            self._warn(path, p)

    # -- pass 3: hardlinks and directories -------------------------------------------------
    def finish(self) -> None:
        for primary, path in self.links:
            _remove(path)
            try:
                os.link(primary, path)
            except OSError as e:
                self._warn(path, e.strerror or str(e))
                continue
            self.summary.files += 1
        for path, node in sorted(self.dirs, key=lambda d: d[0].count(b"/"), reverse=True):
            if os.path.isdir(path):  # an include filter may have left it out
                self._finish_metadata(path, node)
                self.summary.dirs += 1

    def verify(self) -> None:
        """Reread every restored file and check each chunk against its blob id."""
        for f in self.files:
            with open(f.path, "rb") as fh:
                for blob_id in f.node.content:
                    data = fh.read(self.repo.blob_entry(blob_id).raw_length)
                    if self.repo.key.blob_id(data) != blob_id:
                        shown = f.path.decode("utf-8", "surrogateescape")
                        self.summary.verify_errors.append(f"{shown}: content differs")
                        break


def _remove(path: bytes) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def restore(
    repo: RestoreSource,
    snapshot: Snapshot,
    target: str,
    *,
    includes: list[str] | None = None,
    excludes: list[str] | None = None,
    verify: bool = False,
    on_event: EventHandler = ignore,
) -> RestoreSummary:
    """Restore ``snapshot`` under ``target``; returns counts and any verification failures."""
    where = os.fsencode(os.path.abspath(target))
    run = Restore(repo, where, PathFilter(includes, excludes), on_event)
    with repo.lock("read"):
        run.create_tree(bytes.fromhex(snapshot.tree))
        run.write_contents()
        run.finish()
        if verify:
            run.verify()
    return run.summary
