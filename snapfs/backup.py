"""Backup: walk the source, chunk and store what is new, save trees bottom-up, then the
snapshot. Files unchanged since the parent snapshot (same size, mtime, ctime, inode) reuse its
blob ids without being read. File contents are processed on a bounded pool of threads (hashing,
compression, encryption and reads release the GIL); the walk and tree assembly stay on the
calling thread, and a bounded number of files is in flight, so memory stays flat."""

from __future__ import annotations

import getpass
import os
import socket
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

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
from snapfs.metadata import node_from_stat
from snapfs.pack import BlobKind
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot, Summary, find_parent
from snapfs.tree import DIR, FILE, Node, Tree
from snapfs.version import __version__
from snapfs.walk import PathFilter

_IN_FLIGHT = 64


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
    """One backup run. Not reusable; ``run`` returns the saved snapshot."""

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
        self._hardlinks: dict[tuple[int, int], Future[_Content]] = {}
        self._local = threading.local()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the source tree ---------------------------------------------------------------
    def save_roots(self, paths: list[bytes], parent_tree: bytes | None) -> bytes:
        """The root tree: absolute source paths as nested directories, restic-style."""
        spec: dict[bytes, object] = {}
        for path in paths:
            parts = [p for p in path.split(b"/") if p]
            if not parts:
                return self._save_dir(b"/", parent_tree)
            level = spec
            for part in parts[:-1]:
                nxt = level.setdefault(part, {})
                if nxt is True:
                    break
                level = cast(dict[bytes, object], nxt)
            else:
                level[parts[-1]] = True
        return self._save_virtual(b"", spec, parent_tree)

    def _save_virtual(
        self, dirpath: bytes, spec: dict[bytes, object], parent: bytes | None
    ) -> bytes:
        old = self._load(parent)
        nodes: list[Node | Future[Node]] = []
        for name in sorted(spec):
            path = dirpath + b"/" + name
            old_node = old.find(name) if old else None
            sub = spec[name]
            if sub is True:
                result = self._entry(path, name, old_node)
                if result is not None:
                    nodes.append(result)
            else:
                subtree = self._save_virtual(path, cast(dict[bytes, object], sub), _sub(old_node))
                nodes.append(node_from_stat(name, path, os.lstat(path), subtree=subtree))
        return self.writer.save_tree(self._resolve_all(nodes))

    def _load(self, tree_id: bytes | None) -> Tree | None:
        return self.repo.load_tree(tree_id) if tree_id else None

    def _save_dir(self, path: bytes, parent: bytes | None) -> bytes:
        old = self._load(parent)
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            self._warn(path, e)
            names = []
        pending: list[Node | Future[Node]] = []
        for name in names:
            child = path.rstrip(b"/") + b"/" + name
            if self.excludes.excluded(child.decode("utf-8", "surrogateescape")):
                continue
            result = self._entry(child, name, old.find(name) if old else None)
            if result is not None:
                pending.append(result)
        with self.counts.lock:
            self.counts.dirs += 1
        return self.writer.save_tree(self._resolve_all(pending))

    @staticmethod
    def _resolve_all(items: list[Node | Future[Node]]) -> list[Node]:
        """Nodes in order; files whose reading failed (already warned about) are left out."""
        nodes = []
        for item in items:
            try:
                nodes.append(item.result() if isinstance(item, Future) else item)
            except _Skip:
                continue
        return nodes

    def _entry(self, path: bytes, name: bytes, old: Node | None) -> Node | Future[Node] | None:
        """A node now, a future node (file contents being read), or None when skipped."""
        try:
            st = os.lstat(path)
        except OSError as e:
            self._warn(path, e)
            return None
        if stat.S_ISDIR(st.st_mode):
            subtree = self._save_dir(path, _sub(old))
            return node_from_stat(name, path, st, subtree=subtree)
        if stat.S_ISLNK(st.st_mode):
            try:
                return node_from_stat(name, path, st, target=os.readlink(path))
            except OSError as e:
                self._warn(path, e)
                return None
        if not stat.S_ISREG(st.st_mode):
            return node_from_stat(name, path, st)
        return self._file(path, name, st, old)

    # -- files -------------------------------------------------------------------------
    def _file(
        self, path: bytes, name: bytes, st: os.stat_result, old: Node | None
    ) -> Node | Future[Node]:
        if old is not None and _unchanged(old, st):
            self.emit(BytesDone(st.st_size))
            self._count_file(path, st.st_size, 0)
            return node_from_stat(name, path, st, content=old.content)
        first = (st.st_dev, st.st_ino) not in self._hardlinks
        content = self._content_future(path, st)
        node_future: Future[Node] = Future()

        def finish(fut: Future[_Content]) -> None:
            try:
                done = fut.result()
                self._count_file(path, done.size, done.new if first else 0)
                node_future.set_result(
                    node_from_stat(name, path, st, content=done.content, size=done.size)
                )
            except BaseException as e:
                node_future.set_exception(e)

        content.add_done_callback(finish)
        return node_future

    def _content_future(self, path: bytes, st: os.stat_result) -> Future[_Content]:
        link_key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and link_key in self._hardlinks:
            return self._hardlinks[link_key]
        self._slots.acquire()
        try:
            fut = self._pool.submit(self._read_file, path, st)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _f: self._slots.release())
        if st.st_nlink > 1:
            self._hardlinks[link_key] = fut
        return fut

    def _chunker(self) -> Chunker:
        chunker: Chunker | None = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = self.repo.chunker()
        return chunker

    def _read_file(self, path: bytes, st: os.stat_result) -> _Content:
        shown = path.decode("utf-8", "surrogateescape")
        self.emit(FileStarted(shown))
        try:
            fd = _open_noatime(path)
        except OSError as e:
            self._warn(path, e)
            raise _Skip from e
        content: list[bytes] = []
        size = new = 0
        try:
            with os.fdopen(fd, "rb", buffering=0) as f:
                for chunk in self._chunker().chunks(f):
                    blob_id, added = self.writer.add_blob(BlobKind.DATA, chunk)
                    content.append(blob_id)
                    size += len(chunk)
                    if added:
                        new += len(chunk)
                    self.emit(BytesDone(len(chunk)))
                after = os.fstat(f.fileno())
        except OSError as e:
            self._warn(path, e)
            raise _Skip from e
        if after.st_mtime_ns != st.st_mtime_ns or after.st_size != size:
            self._warn(path, "file changed while being read")
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


def _open_noatime(path: bytes) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW
    try:
        return os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        return os.open(path, flags)


def _scan(
    paths: list[bytes], excludes: PathFilter, emit: EventHandler, stop: threading.Event
) -> None:
    """Counts files and bytes ahead of the backup, so progress can show an ETA."""
    files = total = 0
    stack = list(paths)
    while stack and not stop.is_set():
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
    if not stop.is_set():
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
) -> Snapshot:
    """Back up ``paths`` and return the saved snapshot. Unreadable or vanishing files are
    reported as FileWarning events and counted in ``summary.warnings``; the backup goes on.
    ``parent="auto"`` picks the newest snapshot of the same host and paths."""
    started = time.monotonic()
    when = datetime.now(UTC).astimezone().isoformat()
    abspaths = sorted({os.path.abspath(p) for p in paths})
    for p in abspaths:
        if not os.path.lexists(p):
            raise PathNotFound(f"{p}: no such file or directory")
    host = host or socket.gethostname()
    if parent == "auto":
        parent = find_parent(repo.snapshots(), host, abspaths)
    assert not isinstance(parent, str)
    raw_paths = [os.fsencode(p) for p in abspaths]
    filt = PathFilter(excludes=excludes)
    stop = threading.Event()
    if on_event is not ignore:
        threading.Thread(target=_scan, args=(raw_paths, filt, on_event, stop), daemon=True).start()
    workers = workers or (os.cpu_count() or 2) + 1
    with repo.lock("backup"), repo.writer() as writer:
        run = Backup(repo, writer, excludes=filt, on_event=on_event, workers=workers)
        try:
            root = run.save_roots(raw_paths, bytes.fromhex(parent.tree) if parent else None)
        finally:
            stop.set()
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
        return writer.save_snapshot(snap)
