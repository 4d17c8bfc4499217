"""Backup: walk the source, chunk and store what is new, save trees bottom-up, then the
snapshot. Files unchanged since the parent snapshot (same size, mtime, ctime, inode) reuse its
blob ids without being read. File contents are processed on a bounded pool of threads (hashing,
compression, encryption and reads release the GIL); the walk and tree assembly stay on the
calling thread, and a bounded number of files is in flight, so memory stays flat."""

from __future__ import annotations

import getpass
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import msgspec

from snapfs.chunker import Chunker
from snapfs.errors import PathNotFound
from snapfs.events import (
    BytesDone,
    EventHandler,
    FileDone,
    FileStarted,
    FileWarning,
    Planned,
    ignore,
)
from snapfs.metadata import group_name, node_from_stat, user_name
from snapfs.pack import BlobKind
from snapfs.plans import claim_for
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot, Summary, find_parent
from snapfs.tree import DIR, FILE, Node, Tree
from snapfs.version import __version__
from snapfs.walk import PathFilter

_IN_FLIGHT = 64
_BATCH = 64
_OWN_TASK = 1024 * 1024
_READ_AHEAD = 64 * 1024 * 1024


@dataclass
class _Counts:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    bytes_added: int = 0
    warnings: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Content:
    content: list[bytes]
    size: int
    new: int


class _Skip(Exception):
    """The entry is left out of the snapshot; a warning has been sent."""


class Backup:
    """One backup run. The calling thread walks directories (``scandir``, which needs no
    stat) and assembles trees; every other entry -- its lstat, metadata, and contents -- is
    handled on the worker pool, so metadata reads of a cold tree and file reads overlap."""

    def __init__(
        self,
        repo: Repository,
        writer: Writer,
        *,
        excludes: PathFilter,
        on_event: EventHandler,
        workers: int,
    ) -> None:
        self.repo = repo
        self.writer = writer
        self.excludes = excludes
        self.emit = on_event
        self.counts = _Counts()
        self._pool = ThreadPoolExecutor(workers, "snapfs-backup")
        self._slots = threading.BoundedSemaphore(_IN_FLIGHT)
        # (device, inode) -> the content's future and how many of its links were met
        self._hardlinks: dict[tuple[int, int], tuple[Future[_Content], int]] = {}
        self._hardlinks_lock = threading.Lock()
        self._local = threading.local()
        self._whole = repo.config.chunker.min_size  # files below it are one blob
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
        root = _DirJob(self, b"", None, None, on_tree=done.set_result)
        if spec:
            self._walk_virtual(root, b"", spec, parent_tree)
        else:
            self._walk_dir(root, b"/", parent_tree)
        root.walked()
        tree_id = done.result()
        if self._failure is not None:
            raise self._failure
        return tree_id

    def _walk_virtual(
        self, job: _DirJob, dirpath: bytes, spec: dict[bytes, object], parent: bytes | None
    ) -> None:
        old = self._load(parent)
        for name in sorted(spec):
            path = dirpath + b"/" + name
            old_node = old.find(name) if old else None
            st = os.lstat(path)
            sub = spec[name]
            if sub is not True or stat.S_ISDIR(st.st_mode):
                child = job.subdir(name, path, st)
                if sub is True:
                    self._walk_dir(child, path, _sub(old_node))
                else:
                    self._walk_virtual(child, path, cast(dict[bytes, object], sub), _sub(old_node))
                child.walked()
            else:
                self._leaf_entry(job, [], path, name, st, old_node)

    def _load(self, tree_id: bytes | None) -> Tree | None:
        return self.repo.load_tree(tree_id, keep=False) if tree_id else None

    def _walk_dir(self, job: _DirJob, path: bytes, parent: bytes | None) -> None:
        old = self._load(parent)
        batch: list[tuple[bytes, bytes, os.stat_result]] = []
        base = path.rstrip(b"/") + b"/"
        for name, st in self._list(path):
            child = base + name
            if self.excludes and self.excludes.excluded(child.decode("utf-8", "surrogateescape")):
                continue
            old_node = old.find(name) if old else None
            if stat.S_ISDIR(st.st_mode):
                sub = job.subdir(name, child, st)
                self._walk_dir(sub, child, _sub(old_node))
                sub.walked()
            else:
                batch = self._leaf_entry(job, batch, child, name, st, old_node)
        if batch:
            self._submit(job, batch)
        with self.counts.lock:
            self.counts.dirs += 1

    def _leaf_entry(
        self, job: _DirJob, batch: list[tuple[bytes, bytes, os.stat_result]], path: bytes,
        name: bytes, st: os.stat_result, old: Node | None,
    ) -> list[tuple[bytes, bytes, os.stat_result]]:  # fmt: skip
        """Reuse an unchanged file now, give a large file a task of its own, and batch the
        rest: handing work between threads costs more than reading a small file."""
        if stat.S_ISREG(st.st_mode) and old is not None and _unchanged(old, st):
            job.add(self._reuse(path, st, old))
        elif stat.S_ISREG(st.st_mode) and st.st_size >= _OWN_TASK:
            self._submit(job, [(path, name, st)])
        else:
            batch.append((path, name, st))
            if len(batch) >= _BATCH:
                self._submit(job, batch)
                return []
        return batch

    def _list(self, path: bytes) -> list[tuple[bytes, os.stat_result]]:
        """Names and lstat results; entries that vanish meanwhile are warned about."""
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError as e:
            self._warn(path, e)
            return []
        out = []
        for entry in entries:
            try:
                out.append((entry.name, entry.stat(follow_symlinks=False)))
            except OSError as e:
                self._warn(entry.path, e)
        return out

    def _reuse(self, path: bytes, st: os.stat_result, old: Node) -> Node:
        """An unchanged file: the parent snapshot's node, without reading a byte or listing
        its xattrs. Changing a file's mode, owner, link count or xattrs moves its ctime,
        which ``_unchanged`` compared; only what the inode does not hold is looked at."""
        self.emit(BytesDone(st.st_size))
        self._count_file(path, st.st_size, 0)
        user, group = user_name(st.st_uid), group_name(st.st_gid)
        if (old.device, old.user, old.group) == (st.st_dev, user, group):
            return old
        return msgspec.structs.replace(old, device=st.st_dev, user=user, group=group)

    def fail(self, error: BaseException) -> None:
        """An unexpected error on a worker: the first one is raised when the walk ends."""
        if self._failure is None:
            self._failure = error

    # -- files and other leaves, on the workers ----------------------------------------
    def _submit(self, job: _DirJob, batch: list[tuple[bytes, bytes, os.stat_result]]) -> None:
        self._slots.acquire()
        job.expect()
        try:
            fut = self._pool.submit(self._leaves, batch)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda f: self._finished(job, f))

    def _finished(self, job: _DirJob, fut: Future[list[Node]]) -> None:
        self._slots.release()
        error = fut.exception()
        if error is not None:
            self.fail(error)
        job.arrived([] if error is not None else fut.result())

    def _leaves(self, batch: list[tuple[bytes, bytes, os.stat_result]]) -> list[Node]:
        nodes = []
        opened = self._open_ahead(batch)
        try:
            for i, (path, name, st) in enumerate(batch):
                try:
                    nodes.append(self._leaf(path, name, st, opened.pop(i, None)))
                except _Skip:
                    continue
        finally:
            for fd in opened.values():
                os.close(fd)
        return nodes

    def _open_ahead(self, batch: list[tuple[bytes, bytes, os.stat_result]]) -> dict[int, int]:
        """Open the batch's small files and ask the kernel for all their pages at once: on a
        cold cache the disk then has a batch of reads queued (and merges neighbours) instead
        of one at a time. A file that fails to open here is opened again, and warned about,
        where it is read."""
        opened = {}
        for i, (path, _name, st) in enumerate(batch):
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and 0 < st.st_size < self._whole:
                try:
                    fd = _open_noatime(path, advise=False)
                except OSError:
                    continue
                opened[i] = fd
                os.posix_fadvise(fd, 0, st.st_size, os.POSIX_FADV_WILLNEED)
        return opened

    def _leaf(self, path: bytes, name: bytes, st: os.stat_result, fd: int | None) -> Node:
        if stat.S_ISLNK(st.st_mode):
            try:
                return node_from_stat(name, path, st, target=os.readlink(path))
            except OSError as e:
                self._warn(path, e)
                raise _Skip from e
        if not stat.S_ISREG(st.st_mode):
            return node_from_stat(name, path, st)
        done = self._content(path, st, fd)
        return node_from_stat(name, path, st, content=done.content, size=done.size)

    def _content(self, path: bytes, st: os.stat_result, fd: int | None) -> _Content:
        """A file's blobs; a hardlinked inode is read once, by whichever worker comes first.
        ``fd``: the file, opened already (it is closed here)."""
        if st.st_nlink <= 1:
            done = self._read_file(path, st, fd)
            self._count_file(path, done.size, done.new)
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
                shared.set_result(self._read_file(path, st))
            except BaseException as e:
                shared.set_exception(e)
        done = shared.result()
        self._count_file(path, done.size, done.new if first else 0)
        return done

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = self.repo.chunker()
        return chunker

    def _read_file(self, path: bytes, st: os.stat_result, fd: int | None = None) -> _Content:
        self.emit(FileStarted(path.decode("utf-8", "surrogateescape")))
        small = st.st_size < self._whole
        try:
            if fd is None:
                fd = _open_noatime(path, advise=not small)
        except OSError as e:
            self._warn(path, e)
            raise _Skip from e
        try:
            try:
                done = self._read_small(fd, st) if small else None
                after = None
                if done is None:
                    done = self._read_chunked(fd)
                    after = os.fstat(fd)
            finally:
                os.close(fd)
        except OSError as e:
            self._warn(path, e)
            raise _Skip from e
        # A small file came whole from one read of the size lstat gave; had it changed after
        # that lstat, its node keeps the older mtime, so the next backup reads it again.
        if after is not None and (after.st_mtime_ns, after.st_size) != (st.st_mtime_ns, done.size):
            self._warn(path, "file changed while being read")
        return done

    def _read_small(self, fd: int, st: os.stat_result) -> _Content | None:
        """A file below the chunker's minimum is one chunk (FastCDC would cut it whole too):
        one read into this thread's buffer, no chunker. None when the read did not return
        the size lstat gave (the file grew, or a short read): then it is chunked after all."""
        buf: bytearray | None = getattr(self._local, "buffer", None)
        if buf is None:
            buf = self._local.buffer = bytearray(self._whole)
        n = os.readv(fd, [buf])
        if n != st.st_size:
            os.lseek(fd, 0, os.SEEK_SET)
            return None
        if n == 0:
            return _Content([], 0, 0)
        blob_id, added = self.writer.add_blob(BlobKind.DATA, memoryview(buf)[:n])
        self.emit(BytesDone(n))
        return _Content([blob_id], n, n if added else 0)

    def _read_chunked(self, fd: int) -> _Content:
        content: list[bytes] = []
        size = new = 0
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
            for chunk in self._chunker().chunks(f):
                blob_id, added = self.writer.add_blob(BlobKind.DATA, chunk)
                content.append(blob_id)
                size += len(chunk)
                if added:
                    new += len(chunk)
                self.emit(BytesDone(len(chunk)))
        return _Content(content, size, new)

    def _count_file(self, path: bytes, size: int, new: int) -> None:
        with self.counts.lock:
            self.counts.files += 1
            self.counts.bytes += size
            self.counts.bytes_added += new
        self.emit(FileDone(path.decode("utf-8", "surrogateescape"), size, new))

    def _warn(self, path: bytes, error: OSError | str) -> None:
        message = error if isinstance(error, str) else (error.strerror or str(error)).lower()
        with self.counts.lock:
            self.counts.warnings += 1
        self.emit(FileWarning(path.decode("utf-8", "surrogateescape"), message))


class _DirJob:
    """A directory whose tree is saved when its walk has ended and every task holding some
    of its entries has finished; then its own node goes to its parent. Thread-safe."""

    def __init__(
        self, run: Backup, name: bytes, path: bytes | None, st: os.stat_result | None,
        parent: _DirJob | None = None, on_tree: Callable[[bytes], object] | None = None,
    ) -> None:  # fmt: skip
        self.run, self.name, self.path, self.st = run, name, path, st
        self.parent, self.on_tree = parent, on_tree
        self.nodes: list[Node] = []
        self.pending = 1  # the walk itself
        self.lock = threading.Lock()

    def subdir(self, name: bytes, path: bytes, st: os.stat_result) -> _DirJob:
        self.expect()
        return _DirJob(self.run, name, path, st, parent=self)

    def expect(self) -> None:
        with self.lock:
            self.pending += 1

    def add(self, node: Node) -> None:
        with self.lock:
            self.nodes.append(node)

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
        try:
            tree_id = self.run.writer.save_tree(self.nodes)
        except BaseException as e:
            self.run.fail(e)
            tree_id = b""
        self.nodes = []
        if self.on_tree is not None:
            self.on_tree(tree_id)
        if self.parent is not None:
            assert self.path is not None and self.st is not None
            node = node_from_stat(self.name, self.path, self.st, subtree=tree_id)
            self.parent.arrived([node])


def _sub(node: Node | None) -> bytes | None:
    return node.subtree if node is not None and node.type == DIR else None


def _unchanged(old: Node, st: os.stat_result) -> bool:
    return (
        old.type == FILE
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
        and old.ctime_ns == st.st_ctime_ns
        and old.inode == st.st_ino
    )


def _open_noatime(path: bytes, *, advise: bool) -> int:
    """Open for reading; with ``advise``, ask the kernel to read ahead: on a cold cache the
    disk then works while this thread hashes and compresses. A small file is read by one
    call, which the advice would only delay by two system calls."""
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
) -> Snapshot:
    """Back up ``paths`` and return the saved snapshot. Unreadable or vanishing files are
    reported as FileWarning events and counted in ``summary.warnings``; the backup goes on.
    ``parent="auto"`` picks the newest snapshot of the same host and paths. With
    ``estimate``, a Scan counts the work ahead (``scan``, if one was started before the
    repository opened); it costs a second walk, so only progress displays ask for it.
    Without, ``scan`` stops as the backup begins: it only warmed the cache meanwhile."""
    started = time.monotonic()
    when = datetime.now(UTC).astimezone().isoformat()
    abspaths = sorted({os.path.abspath(p) for p in paths})
    for p in abspaths:
        if not os.path.lexists(p):
            raise PathNotFound(f"{p}: no such file or directory")
    host = host or os.uname().nodename
    if parent == "auto":
        parent = find_parent(repo.snapshots(), host, abspaths)
    assert not isinstance(parent, str)
    raw_paths = [os.fsencode(p) for p in abspaths]
    filt = PathFilter(excludes=excludes)
    if estimate and scan is None:
        scan = Scan(paths, excludes, on_event)
    elif scan is not None and not estimate:
        scan.stop()
    workers = workers or (os.cpu_count() or 2)
    with repo.lock("backup") as lock, repo.writer() as writer:
        run = Backup(repo, writer, excludes=filt, on_event=on_event, workers=workers)
        try:
            root = run.save_roots(raw_paths, bytes.fromhex(parent.tree) if parent else None)
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
        )
        saved = writer.save_snapshot(snap)
        claim_for(repo, lock.id, [saved])  # what a prune that ran meanwhile condemned
        return saved
