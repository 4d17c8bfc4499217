"""Backup: walk the source, chunk and store what is new, save trees bottom-up, then the
snapshot. Files unchanged since the parent snapshot (same size, mtime, ctime, inode) reuse its
blob ids without being read, and a directory whose entries all equal the parent's reuses its
tree without encoding it. File contents are processed on a bounded pool of threads (hashing,
compression, encryption and reads release the GIL); the walk stays on the calling thread, and
a bounded number of files is in flight, so memory stays flat."""

from __future__ import annotations

import getpass
import os
import resource
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from operator import attrgetter
from typing import BinaryIO, TypeVar, cast

import msgspec

from snapfs.chunker import Chunker
from snapfs.errors import IntegrityError, PathNotFound, TableUnreadable
from snapfs.events import (
    BytesDone,
    EventHandler,
    FileDone,
    FilesReused,
    FileStarted,
    FileWarning,
    Planned,
    ignore,
)
from snapfs.faults import fault_point
from snapfs.metadata import group_name, node_from_stat, read_xattrs, user_name
from snapfs.pack import BlobKind
from snapfs.pinning import TABLE_MARKS, PinnedTable, TablePins
from snapfs.plans import claim_for
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot, Summary, find_parent
from snapfs.sources import Entry, ObjectReplaced, ObjectVanished, Source
from snapfs.tree import DIR, FILE, Node, Tree
from snapfs.version import __version__
from snapfs.walk import PathFilter, path_text

_IN_FLIGHT = 64
_BATCH = 64
_OPEN_AHEAD = 16  # descriptors a worker holds open at once for read-ahead (at most)
_OWN_TASK = 1024 * 1024
_READ_AHEAD = 64 * 1024 * 1024
_NAME = attrgetter("name")
T = TypeVar("T")

# An entry on its way to a worker: path, name, the path as shown in events, its lstat.
_Item = tuple[bytes, bytes, str, os.stat_result]


@dataclass
class _Counts:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    bytes_added: int = 0
    warnings: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, files: int, size: int, new: int) -> None:
        with self.lock:
            self.files += files
            self.bytes += size
            self.bytes_added += new


@dataclass(slots=True)
class _Content:
    """A file's blobs, and its xattrs, read through its descriptor before it is closed (set
    once by the reader, then only read: a hardlink's other names share it)."""

    content: list[bytes]
    size: int
    new: int
    xattrs: list[tuple[bytes, bytes]] | None = None  # read through the file's descriptor


class _Skip(Exception):
    """The entry is left out of the snapshot; a warning has been sent."""


class Backup:
    """One backup run. The calling thread walks directories (``os.scandir``, in the order
    the file system lists them) and lstats every entry (``DirEntry.stat``): an unchanged
    file is settled there, against the parent snapshot's node. Every other leaf -- its
    xattrs, link target and contents -- is handled on the worker pool, in batches; a
    directory's tree is saved by whichever thread completes it."""

    def __init__(
        self,
        repo: Repository,
        writer: Writer,
        *,
        excludes: PathFilter,
        on_event: EventHandler,
        workers: int,
        tables: bool = True,
    ) -> None:
        self.repo = repo
        self.tables = TablePins() if tables else None
        self.writer = writer
        self.excludes = excludes
        self.emit = on_event
        self.counts = _Counts()
        self._pool = ThreadPoolExecutor(workers, "snapfs-backup")
        self._slots = threading.BoundedSemaphore(_IN_FLIGHT)
        self._ahead = _fds_ahead(workers)
        # (device, inode) -> the content's future and how many of its links were met
        self._hardlinks: dict[tuple[int, int], tuple[Future[_Content], int]] = {}
        self._hardlinks_lock = threading.Lock()
        self._local = threading.local()
        self._min = repo.config.chunker.min_size  # files below it are one blob
        self._failure: BaseException | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the source tree ---------------------------------------------------------------
    def save_roots(self, paths: list[bytes], parent_tree: bytes | None) -> bytes:
        """The root tree: absolute source paths as nested directories, restic-style. The
        calling thread walks; trees are saved as their directories complete, on whichever
        thread completes them, so the walk never waits for a directory's files."""
        spec: dict[bytes, object] = {}
        for path in paths:
            parts = [p for p in path.split(b"/") if p]
            if not parts:
                spec = {}
                break
            level = spec
            for part in parts[:-1]:
                nxt = level.setdefault(part, {})
                if nxt is True:
                    break
                level = cast(dict[bytes, object], nxt)
            else:
                level[parts[-1]] = True
        done: Future[bytes] = Future()
        old = self._load("/", parent_tree)
        root = _DirJob(self, b"", None, None, on_tree=done.set_result, old=old, old_id=parent_tree)
        with self.first_failure():
            if spec:
                self._walk_virtual(root, b"", spec)
            else:
                self._walk_dir(root, b"/")
            root.walked()
            tree_id = done.result()
        return tree_id

    @contextmanager
    def first_failure(self) -> Iterator[None]:
        """A worker's failure is raised when the walk ends, and before any error of the walk
        itself: the first failure is the one to tell (the walk's, once a worker has given up
        retrying, only says the server is still failing)."""
        try:
            yield
        except Exception:
            if self._failure is not None:
                raise self._failure from None
            raise
        if self._failure is not None:
            raise self._failure

    def _walk_virtual(self, job: _DirJob, dirpath: bytes, spec: dict[bytes, object]) -> None:
        olds = _by_name(job.old)
        for name in sorted(spec):
            path = dirpath + b"/" + name
            shown = path_text(path)
            old_node = olds.get(name)
            st = os.lstat(path)
            sub = spec[name]
            if sub is not True or stat.S_ISDIR(st.st_mode):
                child = self._subdir(job, name, path, shown, st, old_node)
                if sub is True:
                    self._walk_dir(child, path)
                else:
                    self._walk_virtual(child, path, cast(dict[bytes, object], sub))
                child.walked()
            elif old_node is not None and _unchanged(old_node, st):
                job.add([_kept(old_node, st)])
                self.counts.add(1, st.st_size, 0)
                self.emit(FilesReused(1, st.st_size))
            else:
                self._submit(job, [(path, name, shown, st)])

    def _subdir(
        self, job: _DirJob, name: bytes, path: bytes, shown: str, st: os.stat_result,
        old: Node | None,
    ) -> _DirJob:  # fmt: skip
        old_id = old.subtree if old is not None and old.type == DIR else None
        return job.subdir(name, path, st, self._load(shown, old_id), old_id)

    def _load(self, shown: str, tree_id: bytes | None) -> Tree | None:
        """The parent snapshot's tree of a directory. A damaged one is warned about, and the
        directory backed up as new: every file below it is read again."""
        if tree_id is None:
            return None
        try:
            return self.repo.load_tree(tree_id, keep=False)
        except IntegrityError as e:
            self._warn(shown, f"the parent snapshot's tree is unreadable, backed up anew: {e}")
            return None

    def _walk_dir(
        self, job: _DirJob, path: bytes, table: PinnedTable | None = None, rel: str = ""
    ) -> None:
        """``table``: the pinned table ``path`` lies in, at ``rel`` inside it; its entries
        are limited to the files of the pinned version."""
        olds = _by_name(job.old)
        batch: list[_Item] = []
        reused: list[Node] = []
        files = size = 0
        base = path.rstrip(b"/") + b"/"
        excludes = self.excludes if self.excludes else None
        entries = self._scan(path)
        pinned = self._pin(path, entries) if table is None else None
        if pinned is not None:
            table, rel = pinned, ""
            entries = self._scan(path)  # listed again after the pin: no file of it missed
            # Its last file read, no worker can lose one: its record is final, its sets go.
            job.after = partial(self.tables.finish, path) if self.tables is not None else None
        for entry in entries:
            name = entry.name
            child = base + name
            # Paths as text only where they are shown or matched: not for a reused file.
            if excludes is not None and excludes.excluded(path_text(child)):
                if table is not None:
                    self._table_excluded(table, rel + os.fsdecode(name), entry)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as e:
                # A pinned table's file gone: unseen() says whether the table is torn.
                if table is None or not isinstance(e, FileNotFoundError):
                    self._warn(path_text(child), e)
                continue
            old = olds.get(name)
            inner = ""
            if table is not None:
                inner = rel + os.fsdecode(name)
                if not table.wanted(inner, stat.S_ISDIR(st.st_mode)):
                    continue
            if stat.S_ISDIR(st.st_mode):
                sub = self._subdir(job, name, child, path_text(child), st, old)
                self._walk_dir(sub, child, table, inner + "/")
                sub.walked()
            elif table is not None and inner in table.pin.fixed:
                reused.append(self._pinned_bytes(table, inner, name, child, path_text(child), st))
            elif old is not None and _unchanged(old, st):
                # Settled here, without a worker or an event: told once for the directory.
                reused.append(_kept(old, st))
                files += 1
                size += st.st_size
            elif stat.S_ISREG(st.st_mode) and st.st_size >= _OWN_TASK:
                # A large file: a task of its own.
                self._submit(job, [(child, name, path_text(child), st)])
            else:
                batch.append((child, name, path_text(child), st))
                if len(batch) >= _BATCH:  # handing work to a thread costs more than a small file
                    self._submit(job, batch)
                    batch = []
        if batch:
            self._submit(job, batch)
        job.add(reused)
        self.counts.add(files, size, 0)
        if files:
            self.emit(FilesReused(files, size))
        with self.counts.lock:
            self.counts.dirs += 1
        if pinned is not None:
            for message in pinned.unseen():
                self._warn(pinned.shown, message)

    def _table_excluded(self, table: PinnedTable, inner: str, entry: os.DirEntry[bytes]) -> None:
        for message in table.excluded(inner, entry.is_dir(follow_symlinks=False)):
            self._warn(table.shown, message)

    def _pin(self, path: bytes, entries: list[os.DirEntry[bytes]]) -> PinnedTable | None:
        """The directory pinned as a table, when it is one (it holds ``_delta_log/``, or
        ``metadata/`` with Iceberg metadata files) and tables are backed up as tables. One
        that cannot be pinned is warned about and backed up as plain files."""
        if self.tables is None:
            return None
        marks = [
            e.name for e in entries if e.name in TABLE_MARKS and e.is_dir(follow_symlinks=False)
        ]
        shown = path_text(path)
        try:
            fmt = self.tables.format_of(path, marks)
            if fmt is None:
                return None
            table = self.tables.pin(path, shown, fmt)
        except TableUnreadable as e:
            self._warn(shown, f"not pinned, backed up as plain files: {e}")
            return None
        except OSError as e:
            self._warn(shown, f"not pinned, backed up as plain files: {e.strerror or e}")
            return None
        fault_point("table-pinned")  # tests commit or vacuum here, after the pin
        return table

    def _pinned_bytes(
        self, table: PinnedTable, rel: str, name: bytes, path: bytes, shown: str, st: os.stat_result
    ) -> Node:
        """A file stored as read at the pin (``_last_checkpoint``, ``version-hint.text``: a
        writer may have named a later version since, which the snapshot leaves out), with
        the file's metadata now."""
        data = table.pin.fixed[rel]
        blob_id, added = self.writer.add_blob(BlobKind.DATA, data)
        self._count_file(shown, len(data), len(data) if added else 0)
        return node_from_stat(name, path, st, content=[blob_id] if data else [], size=len(data))

    def _scan(self, path: bytes) -> list[os.DirEntry[bytes]]:
        """The directory's entries, unsorted (trees are sorted when saved)."""
        try:
            with os.scandir(path) as it:
                return list(it)
        except OSError as e:
            self._warn(path_text(path), e)
            return []

    def fail(self, error: BaseException) -> None:
        """An unexpected error on a worker: the first one is raised when the walk ends."""
        if self._failure is None:
            self._failure = error

    # -- files and other leaves, on the workers ----------------------------------------
    def _submit(self, job: _DirJob, batch: list[_Item]) -> None:
        self._task(job, self._leaves, batch)

    def _task(self, job: _DirJob, leaves: Callable[[list[T]], list[Node]], batch: list[T]) -> None:
        """Run ``leaves(batch)`` on the pool; its nodes go to ``job`` (a slot held meanwhile)."""
        self._slots.acquire()
        job.expect()
        try:
            fut = self._pool.submit(leaves, batch)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda f: self._finished(job, f))

    def _finished(self, job: _DirJob, fut: Future[list[Node]]) -> None:
        self._slots.release()
        if fut.cancelled():  # the backup failed and dropped its queued work: none to save
            return
        error = fut.exception()
        if error is not None:
            self.fail(error)
        job.arrived([] if error is not None else fut.result())

    def _leaves(self, batch: list[_Item]) -> list[Node]:
        """The batch's nodes, ``self._ahead`` files opened ahead at a time. The bytes of its
        small files are told once, at its end (``_read_small`` sums them)."""
        self._local.unsent = 0
        try:
            return self._batch_leaves(batch)
        finally:
            if self._local.unsent:
                self.emit(BytesDone(self._local.unsent))

    def _batch_leaves(self, batch: list[_Item]) -> list[Node]:
        nodes = []
        for at in range(0, len(batch), self._ahead):
            window = batch[at : at + self._ahead]
            opened = self._open_ahead(window)
            try:
                for i, item in enumerate(window):
                    try:
                        nodes.append(self._leaf(item, opened.pop(i, None)))
                    except _Skip:
                        continue
            finally:
                for fd in opened.values():
                    os.close(fd)
        return nodes

    def _open_ahead(self, window: list[_Item]) -> dict[int, int]:
        """Open the window's small files and ask the kernel for all their pages at once: on
        a cold cache the disk then has a batch of reads queued (and merges neighbours)
        instead of one at a time. A file that fails to open here is opened again, and
        warned about, where it is read."""
        opened = {}
        for i, (path, _name, _shown, st) in enumerate(window):
            if st.st_nlink <= 1 and st.st_size and self._small(st):
                try:
                    fd = _open_noatime(path, advise=False)
                except OSError:
                    continue
                opened[i] = fd
                os.posix_fadvise(fd, 0, st.st_size, os.POSIX_FADV_WILLNEED)
        return opened

    def _small(self, st: os.stat_result) -> bool:
        """A regular file below the chunker's minimum: one blob, read whole by one call."""
        return stat.S_ISREG(st.st_mode) and st.st_size < self._min

    def _leaf(self, item: _Item, fd: int | None) -> Node:
        path, name, shown, st = item
        if stat.S_ISLNK(st.st_mode):
            try:
                return node_from_stat(name, path, st, target=os.readlink(path))
            except OSError as e:
                self._warn(shown, e)
                raise _Skip from e
        if not stat.S_ISREG(st.st_mode):
            return node_from_stat(name, path, st)
        done = self._content(item, fd)
        return node_from_stat(
            name, path, st, content=done.content, size=done.size, xattrs=done.xattrs
        )

    def _content(self, item: _Item, fd: int | None) -> _Content:
        """A file's blobs; a hardlinked inode is read once, by whichever worker comes first.
        ``fd``: the file, opened already (it is closed here)."""
        _path, _name, shown, st = item
        if st.st_nlink <= 1:
            done = self._read_file(item, fd)
            self._count_file(shown, done.size, done.new)
            return done
        key = (st.st_dev, st.st_ino)
        with self._hardlinks_lock:
            shared, seen = self._hardlinks.get(key, (None, 0))
            first = shared is None
            if shared is None:
                shared = Future()
            # Forgotten once its last link is met, so the map holds only inodes some of whose
            # links are still ahead (or outside the backup).
            if seen + 1 >= st.st_nlink:
                self._hardlinks.pop(key, None)
            else:
                self._hardlinks[key] = (shared, seen + 1)
        if first:
            try:
                shared.set_result(self._read_file(item))
            except BaseException as e:
                shared.set_exception(e)
        done = shared.result()
        self._count_file(shown, done.size, done.new if first else 0)
        return done

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = self.repo.chunker()
        return chunker

    def _read_file(self, item: _Item, fd: int | None = None) -> _Content:
        path, _name, shown, st = item
        self.emit(FileStarted(shown))
        small = self._small(st)
        try:
            if fd is None:
                fd = _open_noatime(path, advise=not small)
        except FileNotFoundError as e:
            self._vanished(path, shown, e)
            raise _Skip from e
        except OSError as e:
            self._warn(shown, e)
            raise _Skip from e
        try:
            try:
                done = self._read_small(fd, st) if small else None
                after = None
                if done is None:
                    done = self._read_chunked(fd)
                    after = os.fstat(fd)
                done.xattrs = read_xattrs(fd)
            finally:
                os.close(fd)
        except OSError as e:
            self._warn(shown, e)
            raise _Skip from e
        # A small file came whole from one read of the size lstat gave; had it changed after
        # that lstat, its node keeps the older mtime, so the next backup reads it again.
        if after is not None and (after.st_mtime_ns, after.st_size) != (st.st_mtime_ns, done.size):
            self._warn(shown, "file changed while being read")
        return done

    def _read_small(self, fd: int, st: os.stat_result) -> _Content | None:
        """A file below the chunker's minimum is one chunk (FastCDC would cut it whole too):
        one read into this thread's buffer, no chunker. None when the read did not return
        the size lstat gave (the file grew, or a short read): then it is chunked after all."""
        buf: bytearray | None = getattr(self._local, "buffer", None)
        if buf is None:
            buf = self._local.buffer = bytearray(self._min)
        n = os.readv(fd, [buf])
        if n != st.st_size:
            os.lseek(fd, 0, os.SEEK_SET)
            return None
        if n == 0:
            return _Content([], 0, 0)
        blob_id, added = self.writer.add_blob(BlobKind.DATA, memoryview(buf)[:n])
        self._local.unsent += n  # told by _leaves, once a batch
        return _Content([blob_id], n, n if added else 0)

    def _read_chunked(self, fd: int) -> _Content:
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
            return self._read_stream(f)

    def _read_stream(self, stream: BinaryIO) -> _Content:
        content: list[bytes] = []
        size = new = 0
        for chunk in self._chunker().chunks(stream):
            blob_id, added = self.writer.add_blob(BlobKind.DATA, chunk)
            content.append(blob_id)
            size += len(chunk)
            if added:
                new += len(chunk)
            self.emit(BytesDone(len(chunk)))
        return _Content(content, size, new)

    def _vanished(self, path: bytes, shown: str, error: OSError) -> None:
        """A file gone when read. Inside a pinned table: the table is torn when its version
        needs the file, and nothing is said when only older versions did (VACUUM's right)."""
        owner = self.tables.owner(path) if self.tables is not None else None
        if owner is None:
            self._warn(shown, error)
            return
        table, rel = owner
        message = table.lost(rel)
        if message is not None:
            self._warn(table.shown, message)

    def _count_file(self, shown: str, size: int, new: int) -> None:
        self.counts.add(1, size, new)
        self.emit(FileDone(shown, size, new))

    def _warn(self, shown: str, error: OSError | str) -> None:
        message = error if isinstance(error, str) else (error.strerror or str(error)).lower()
        with self.counts.lock:
            self.counts.warnings += 1
        self.emit(FileWarning(shown, message))


class _DirJob:
    """A directory whose tree is saved when its walk has ended and every task holding some
    of its entries has finished; then its own node goes to its parent. ``old``: the parent
    snapshot's tree of it (``old_id``), whose id is reused when every entry equals its
    node. ``after``: called once it is complete, before its node goes up. Thread-safe."""

    after: Callable[[], object] | None = None

    def __init__(
        self, run: Backup, name: bytes, path: bytes | None, st: os.stat_result | None,
        parent: _DirJob | None = None, on_tree: Callable[[bytes], object] | None = None,
        old: Tree | None = None, old_id: bytes | None = None,
    ) -> None:  # fmt: skip
        self.run, self.name, self.path, self.st = run, name, path, st
        self.parent, self.on_tree = parent, on_tree
        self.old, self.old_id = old, old_id
        self.nodes: list[Node] = []
        self.pending = 1  # the walk itself
        self.lock = threading.Lock()

    def subdir(
        self, name: bytes, path: bytes, st: os.stat_result, old: Tree | None,
        old_id: bytes | None,
    ) -> _DirJob:  # fmt: skip
        self.expect()
        return _DirJob(self.run, name, path, st, parent=self, old=old, old_id=old_id)

    def expect(self) -> None:
        with self.lock:
            self.pending += 1

    def add(self, nodes: list[Node]) -> None:
        with self.lock:
            self.nodes.extend(nodes)

    def walked(self) -> None:
        self.arrived([])

    def arrived(self, nodes: list[Node]) -> None:
        with self.lock:
            self.nodes.extend(nodes)
            self.pending -= 1
            complete = self.pending == 0
        if complete:
            self._complete()

    def _complete(self) -> None:
        nodes = sorted(self.nodes, key=_NAME)
        old, self.old, self.nodes = self.old, None, []
        try:
            if old is not None and self.old_id is not None and _same(old, nodes):
                tree_id = self.old_id  # encodes to the very blob: no need to encode it
            else:
                tree_id = self.run.writer.save_tree(nodes)
        except BaseException as e:
            self.run.fail(e)
            tree_id = b""
        if self.after is not None:
            self.after()
        if self.on_tree is not None:
            self.on_tree(tree_id)
        if self.parent is not None:
            self.parent.arrived([self._node(tree_id)])

    def _node(self, tree_id: bytes) -> Node:
        """This directory's own node, holding ``tree_id``."""
        assert self.path is not None and self.st is not None
        return node_from_stat(self.name, self.path, self.st, subtree=tree_id)


def _same(old: Tree, nodes: list[Node]) -> bool:
    """Whether ``nodes`` (sorted) are the parent's tree entry for entry: the ones it stores,
    since a tree that lost refused entries in loading has problems."""
    return not old.problems and nodes == old.nodes


def _by_name(tree: Tree | None) -> dict[bytes, Node]:
    return dict(zip(map(_NAME, tree.nodes), tree.nodes, strict=True)) if tree else {}


def _unchanged(old: Node, st: os.stat_result) -> bool:
    """Whether a regular file is the parent snapshot's ``old``, by what its lstat says."""
    return (
        stat.S_ISREG(st.st_mode)
        and old.type == FILE
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
        and old.ctime_ns == st.st_ctime_ns
        and old.inode == st.st_ino
    )


def _kept(old: Node, st: os.stat_result) -> Node:
    """An unchanged file: the parent snapshot's node, without reading a byte or listing its
    xattrs. Changing a file's mode, owner, link count or xattrs moves its ctime, which
    ``_unchanged`` compared; only what the inode does not hold is looked at again."""
    user, group = user_name(st.st_uid), group_name(st.st_gid)
    if (old.device, old.user, old.group) == (st.st_dev, user, group):
        return old
    return msgspec.structs.replace(old, device=st.st_dev, user=user, group=group)


def _fds_ahead(workers: int) -> int:
    """Descriptors each worker may hold open ahead: at most _OPEN_AHEAD, and all workers
    together at most a quarter of the soft RLIMIT_NOFILE, so many cores never exhaust it."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _OPEN_AHEAD
    return max(1, min(_OPEN_AHEAD, soft // (4 * max(workers, 1))))


def _open_noatime(path: bytes, *, advise: bool) -> int:
    """Open for reading; with ``advise``, ask the kernel to read ahead: on a cold cache the
    disk then works while this thread hashes and compresses. A small file is read by one
    call: its advice (WILLNEED for its size) comes from ``Backup._open_ahead``, for a
    window of files at once."""
    flags = os.O_RDONLY | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, flags)
    if not advise:
        return fd
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    os.posix_fadvise(fd, 0, _READ_AHEAD, os.POSIX_FADV_WILLNEED)
    return fd


class Scan:
    """Counts the files and bytes below ``paths`` on a daemon thread, then sends a Planned
    event: an ETA for progress displays. Started before the repository opens, it also reads
    a cold cache's directories and inodes while the password is derived (on the other
    core), so the backup's own walk finds them cached: 25-50 ms of a 0.4 s re-backup."""

    def __init__(
        self, paths: list[str], excludes: list[str] | None, on_event: EventHandler
    ) -> None:
        self._stop = threading.Event()
        roots = [os.fsencode(os.path.abspath(p)) for p in paths]
        args = (roots, PathFilter(excludes=excludes), on_event)
        threading.Thread(target=self._run, args=args, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, roots: list[bytes], excludes: PathFilter, emit: EventHandler) -> None:
        files = total = 0
        stack = list(roots)
        while stack and not self._stop.is_set():
            path = stack.pop()
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                try:
                    names = os.listdir(path)
                except OSError:
                    continue
                base = path.rstrip(b"/")
                stack.extend(
                    base + b"/" + n
                    for n in names
                    if not excludes.excluded((base + b"/" + n).decode("utf-8", "surrogateescape"))
                )
            elif stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
        if not self._stop.is_set():
            emit(Planned(files, total))


def backup(
    repo: Repository,
    paths: list[str],
    *,
    tags: list[str] | None = None,
    host: str | None = None,
    excludes: list[str] | None = None,
    parent: Snapshot | str | None = "auto",
    on_event: EventHandler = ignore,
    workers: int | None = None,
    estimate: bool = False,
    scan: Scan | None = None,
    source: Source | None = None,
    tables: bool = True,
) -> Snapshot:
    """Back up ``paths`` and return the saved snapshot. Unreadable or vanishing files are
    reported as FileWarning events and counted in ``summary.warnings``; the backup goes on.
    ``parent="auto"`` picks the newest snapshot of the same host and paths. With
    ``estimate``, a Scan counts the work ahead (``scan``, if one was started before the
    repository opened); it costs a second walk, so only progress displays ask for it.
    Without, ``scan`` stops as the backup begins: it only warmed the cache meanwhile.
    With ``source`` (an S3Source, a StreamSource), its ``paths`` are backed up instead of
    ``paths``; a source that fails (a command's non-zero exit) fails the backup before its
    snapshot is saved.
    With ``tables`` (local paths), each Delta or Iceberg table met is pinned at its newest committed
    version and its directory limited to that version's files (pinning.py); a file the
    version needs that goes missing is a warning naming the table torn."""
    started = time.monotonic()
    when = datetime.now(UTC).astimezone().isoformat()
    if source is not None:
        abspaths = list(source.paths)
    else:
        abspaths = sorted({os.path.abspath(p) for p in paths})
        for p in abspaths:
            if not os.path.lexists(p):
                raise PathNotFound(f"{p}: no such file or directory")
    host = host or os.uname().nodename
    kind = source.kind if source is not None else "local"
    if parent == "auto":
        parent = find_parent(repo.snapshots(), host, abspaths, kind)
    assert not isinstance(parent, str)
    raw_paths = [os.fsencode(p) for p in abspaths]
    filt = PathFilter(excludes=excludes)
    if estimate and scan is None:
        scan = Scan(paths, excludes, on_event)
    elif scan is not None and not estimate:
        scan.stop()
    workers = workers or (os.cpu_count() or 2)
    with repo.lock("backup") as lock, repo.writer() as writer:
        run = Backup(repo, writer, excludes=filt, on_event=on_event, workers=workers, tables=tables)
        try:
            parent_tree = bytes.fromhex(parent.tree) if parent else None
            if source is None:
                root = run.save_roots(raw_paths, parent_tree)
            else:
                root = _SourceWalk(run, source).save(parent_tree)
        finally:
            if scan is not None:
                scan.stop()
            run.close()
        c = run.counts
        summary = Summary(
            files=c.files,
            dirs=c.dirs,
            bytes=c.bytes,
            bytes_added=c.bytes_added,
            blobs_added=writer.blobs_added,
            stored_bytes_added=writer.stored_bytes,
            warnings=c.warnings,
            seconds=round(time.monotonic() - started, 3),
        )
        snap = Snapshot(
            time=when,
            host=host,
            user=getpass.getuser(),
            paths=abspaths,
            tags=sorted(set(tags or [])),
            tree=root.hex(),
            parent=parent.id if parent else None,
            summary=summary,
            program_version=__version__,
            source=kind,
            tables=run.tables.records() if run.tables is not None else [],
        )
        saved = writer.save_snapshot(snap)
        claim_for(repo, lock.id, [saved])  # what a prune that ran meanwhile condemned
        return saved


class _SourceWalk:
    """A backup of a Source (sources/base.py) instead of local paths: the same run -- its
    pool, writer, counts, warnings and directory jobs -- fed by ``Source.entries``. The
    calling thread walks and settles files ``Source.unchanged`` vouches for against the
    parent snapshot's node; every other file is one task (an S3 GET is latency, not CPU,
    so files are not batched)."""

    def __init__(self, run: Backup, source: Source) -> None:
        self.run = run
        self.source = source

    def save(self, parent_tree: bytes | None) -> bytes:
        done: Future[bytes] = Future()
        old = self.run._load("/", parent_tree)
        root = _SourceDir(self.run, None, None, done.set_result, old, parent_tree)
        with self.run.first_failure():
            self._walk(root, None, "")
            root.walked()
            tree_id = done.result()
        return tree_id

    def _walk(self, job: _DirJob, directory: Entry | None, base: str) -> None:
        run = self.run
        olds = _by_name(job.old)
        reused: list[Node] = []
        files = size = 0
        for entry in self.source.entries(directory):
            shown = base + path_text(entry.name)
            # Patterns name tree paths, "/B/P/K", as restore's --include does.
            if run.excludes and run.excludes.excluded("/" + shown):
                continue
            old = olds.get(entry.name)
            if entry.node.type == DIR:
                old_id = old.subtree if old is not None and old.type == DIR else None
                sub = _SourceDir(run, entry.node, job, old=run._load(shown, old_id), old_id=old_id)
                job.expect()
                self._walk(sub, entry, shown + "/")
                sub.walked()
            elif old is not None and self.source.unchanged(old, entry):
                reused.append(old)
                files += 1
                size += old.size
            else:
                run._task(job, self._files, [(shown, entry)])
        job.add(reused)
        run.counts.add(files, size, 0)
        if files:
            run.emit(FilesReused(files, size))
        with run.counts.lock:
            run.counts.dirs += 1

    def _files(self, batch: list[tuple[str, Entry]]) -> list[Node]:
        nodes = []
        for shown, entry in batch:
            try:
                nodes.append(self._file(shown, entry))
            except _Skip:
                continue
        return nodes

    def _file(self, shown: str, entry: Entry) -> Node:
        """The file's node with its contents. One replaced meanwhile is read again, as the
        source shows it now, and warned about; one gone, or replaced again, is left out."""
        self.run.emit(FileStarted(shown))
        try:
            try:
                return self._read(shown, entry)
            except ObjectReplaced:
                fresh = self.source.refresh(entry)
                if fresh is None:
                    raise ObjectVanished(shown) from None
                node = self._read(shown, fresh)
                self.run._warn(shown, "replaced while being read: read again")
                return node
        except ObjectVanished as e:
            self.run._warn(shown, "deleted since it was listed")
            raise _Skip from e
        except ObjectReplaced as e:
            self.run._warn(shown, "replaced again while being read again: left out")
            raise _Skip from e

    def _read(self, shown: str, entry: Entry) -> Node:
        fault_point("source-open")
        content = self.source.open(entry)
        try:
            done = self.run._read_stream(cast(BinaryIO, content))
        finally:
            content.close()
        self.run._count_file(shown, done.size, done.new)
        return msgspec.structs.replace(content.node, content=done.content, size=done.size)


class _SourceDir(_DirJob):
    """A directory of a Source: its node comes from the source's entry, not from a stat."""

    def __init__(
        self, run: Backup, node: Node | None, parent: _DirJob | None,
        on_tree: Callable[[bytes], object] | None = None, old: Tree | None = None,
        old_id: bytes | None = None,
    ) -> None:  # fmt: skip
        name = node.name if node is not None else b""
        super().__init__(run, name, None, None, parent, on_tree, old, old_id)
        self.node = node

    def _node(self, tree_id: bytes) -> Node:
        assert self.node is not None
        return msgspec.structs.replace(self.node, subtree=tree_id)
