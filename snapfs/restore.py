"""Restore: recreate a snapshot's tree under a target directory, and never outside it.

Containment by construction: the target is opened once, and every entry below it is reached
through directory descriptors (``openat`` with ``O_NOFOLLOW``, the ``dir_fd`` forms of mkdir,
symlink, unlink...), so no symlink, from the snapshot or planted in the target, is followed,
and no path string is resolved. Metadata is set on descriptors or with the no-follow forms.
Whatever stands in the way of an entry is removed, inside its directory, without following
anything. Names that could lead elsewhere (empty, ``.``, ``..``, with ``/`` or NUL) and a
second entry of the same name are skipped with a warning. docs/ARCHITECTURE.md states the
rules.

Speed and memory: the walk plans a window of files (bounded in files, blobs and open
directories); while it plans the next, another thread completes the window: the repository
fetches its blobs pack by pack (each pack read once a window, coalesced ranges, decoded and
verified on threads), each blob is ``pwrite``n to every place it goes, then come the
window's hardlinks and the metadata of the directories completed in it (post-order:
children before parents). A file of one blob is created, written and finished at once by
the thread that decoded its blob, with no more system calls than it needs; full garbage
collections wait while a restore runs. All-zero chunks are not written,
so holes stay holes (files are sized with ftruncate first). A file whose size and mtime
already match the snapshot is skipped, so an interrupted restore resumes where it stopped
(mtime is set only after a file's contents are complete)."""

from __future__ import annotations

import errno
import gc
import os
import resource
import stat
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from snapfs.buffers import Data
from snapfs.crypto import MasterKey
from snapfs.errors import IntegrityError, PathNotFound, SnapfsError
from snapfs.events import BytesDone, EventHandler, FileDone, FileWarning, Planned, ignore
from snapfs.index import IndexEntry
from snapfs.metadata import apply_link_metadata, apply_metadata, full_mode, reason
from snapfs.snapshot import Snapshot, TableRecord
from snapfs.tables.catalog import CatalogError, IcebergCatalog
from snapfs.tableview import move_restored, restored_places
from snapfs.tree import BLOCK, CHAR, DIR, FIFO, FILE, SOCKET, SYMLINK, Node, Tree, name_problem
from snapfs.walk import MAX_DEPTH, PathFilter, join, path_text, resolve

_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OLD_FILE = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIALS = {SYMLINK, FIFO, CHAR, BLOCK}


class RestoreSource(Protocol):
    key: MasterKey

    def lock(self, kind: str) -> AbstractContextManager[object]: ...
    def load_tree(self, tree_id: bytes, *, keep: bool = True) -> Tree: ...
    def blob_entry(self, blob_id: bytes) -> IndexEntry: ...
    def read_blob_ranges(
        self,
        ids: Iterable[bytes],
        consume: Callable[[Iterator[tuple[bytes, Data]]], None],
        threads: int | None = None,
        *,
        on_damaged: Callable[[bytes, IntegrityError], None] | None = None,
        known: Mapping[bytes, IndexEntry] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class Limits:
    """What one window may plan before its blobs are read, and how deep a tree may go.
    Windows this size read a lake's packs once each (their blobs are mostly neighbours) and
    cost tens of MB. Descriptors held: one a level of the walk, plus the completed
    directories of two windows; ``restore`` raises the soft RLIMIT_NOFILE to fit them
    when the hard limit allows (as Go programs such as restic do at start)."""

    files: int = 20_000  # files and hardlinks
    blobs: int = 100_000
    dirs: int = 256  # completed directories waiting for their metadata
    depth: int = MAX_DEPTH  # the snapshot walker's: deeper than real trees go


@dataclass(frozen=True)
class DamagedFile:
    """A file with a blob that could not be read: the first error, the byte ranges (offset,
    length) whose blobs were lost, and whether it was written anyway (``allow_damaged``:
    those ranges zero-filled) or left out of the target."""

    path: str
    error: str
    ranges: tuple[tuple[int, int], ...]
    written: bool


@dataclass
class RestoreSummary:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: int = 0
    warnings: int = 0
    verify_errors: list[str] = field(default_factory=list)
    damaged: list[DamagedFile] = field(default_factory=list)  # as many as the damage


class _Dir:
    """A directory of the snapshot on its way to the target: ``fd`` once it is created."""

    __slots__ = ("failed", "fd", "fresh", "name", "node", "parent", "rel")

    def __init__(self, parent: _Dir | None, node: Node | None, rel: bytes) -> None:
        self.parent = parent
        self.node = node
        self.name = node.name if node is not None else b""
        self.rel = rel  # relative path in the snapshot: names checked, so "/" splits it
        self.fd: int | None = None
        self.failed = False
        self.fresh = False  # made by this restore: nothing of an earlier run is in it


@dataclass(eq=False)
class _Primary:
    """The first name of a hardlinked file; its inode once this restore made or kept it."""

    rel: bytes
    ident: tuple[int, int] | None = None


class _File:
    """A regular file of a window, until its last blob is written."""

    __slots__ = ("created", "damaged", "display", "ident", "node", "parent", "primary",
                 "remaining")  # fmt: skip

    def __init__(
        self, parent: _Dir, node: Node, display: bytes, primary: _Primary | None, remaining: int
    ) -> None:
        self.parent = parent
        self.node = node
        self.display = display
        self.primary = primary
        self.remaining = remaining
        self.created = False  # made (and sized) by the first writer that needs it
        self.damaged = False  # a blob could not be read: never completed as planned
        self.ident = (0, 0)  # (st_dev, st_ino) of what this restore created


_Hurt = tuple[IntegrityError, list[tuple[int, int]]]  # a damaged file's first error, ranges


@dataclass
class _Window:
    files: list[_File] = field(default_factory=list)
    links: list[tuple[_Dir, Node, _Primary]] = field(default_factory=list)
    dirs: list[_Dir] = field(default_factory=list)  # completed, in post-order
    kept: list[_File] = field(default_factory=list)  # resumed: only to verify
    blobs: int = 0


class Restore:
    def __init__(
        self,
        repo: RestoreSource,
        target: bytes,
        filt: PathFilter,
        on_event: EventHandler,
        limits: Limits,
        *,
        planned: Planned | None = None,
        verify: bool = False,
        allow_damaged: bool = False,
    ) -> None:
        self.repo = repo
        self.target = target
        self.filt = filt
        self.emit = on_event
        self.limits = limits
        self.verify = verify
        self.allow_damaged = allow_damaged
        self.summary = RestoreSummary()
        self.window = _Window()
        self.root = _Dir(None, None, b"")
        self._planned = planned  # totals to announce if the first window is not all
        self._announced = False
        self._primaries: dict[tuple[int, int], _Primary] = {}  # only files with links > 1
        self._pool = ThreadPoolExecutor(1, "snapfs-window")
        self._pending: Future[None] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()

    def _warn(self, path: bytes, message: str) -> None:
        with self._lock:
            self.summary.warnings += 1
        self.emit(FileWarning(path_text(path), message))

    def _where(self, rel: bytes) -> bytes:
        return self.target + b"/" + rel

    # -- the walk ------------------------------------------------------------------------
    def run(self, root_tree: bytes) -> None:
        """Walk the snapshot depth first, holding a descriptor a level; plan windows."""
        os.makedirs(self.target, exist_ok=True)
        root = self.root
        root.fd = os.open(self.target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stack: list[tuple[_Dir, Iterator[Node]]] = [(root, self._entries(root, root_tree))]
        try:
            while stack:
                parent, entries = stack[-1]
                node = next(entries, None)
                if node is None:
                    stack.pop()
                    if parent is not root:
                        self._leave(parent)
                    continue
                rel = join(parent.rel, node.name)
                if self.filt and not self.filt.descend(rel):
                    continue
                wanted = not self.filt or self.filt.selected(rel)
                if node.type != DIR:
                    if wanted:
                        self._place(parent, node, rel)
                else:
                    d = _Dir(parent, node, rel)
                    if wanted:
                        self._dir_fd(d)
                    stack.append((d, self._entries(d, node.subtree, len(stack))))
            self._flush(final=True)
        except BaseException:
            self._stop.set()  # the window in flight stops at its next blob
            raise
        finally:
            self._pool.shutdown()
            for d in [*(d for d, _ in stack), *self.window.dirs, root]:
                _close(d)

    def _entries(self, d: _Dir, tree_id: bytes | None, depth: int = 0) -> Iterator[Node]:
        """The directory's nodes that can be restored; the others are warned about. Trees
        nested ``limits.depth`` deep are not entered, as walk.walk enters none past MAX_DEPTH."""
        if tree_id is None:
            return
        here = b"/" + d.rel
        if depth >= self.limits.depth:
            limit = self.limits.depth
            self._warn(here, f"directories nested deeper than {limit} levels: entries skipped")
            return
        try:
            # Each tree is read once: past the LRU, whose nodes the collector would walk.
            tree = self.repo.load_tree(tree_id, keep=False)
        except IntegrityError as e:
            self._warn(here, f"{e}: its entries are skipped")
            return
        for problem in tree.problems:  # what validation refused: named, then left out
            where = here if problem.name is None else b"/" + join(d.rel, problem.name)
            self._warn(where, f"{problem.message}: skipped")
        seen: set[bytes] = set()
        for node in tree.nodes:
            why = name_problem(node.name)
            if not why and node.name in seen:
                why = "a second entry of that name"
            if why:
                self._warn(b"/" + join(d.rel, node.name), f"{why}: skipped")
                continue
            seen.add(node.name)
            yield node

    def _dir_fd(self, d: _Dir) -> int | None:
        """The directory's descriptor, creating it (and its parents) on first need."""
        if d.fd is None and not d.failed and d.parent is not None and d.node is not None:
            parent_fd = self._dir_fd(d.parent)
            if parent_fd is None:  # warned about already
                d.failed = True
                return None
            try:
                d.fd, d.fresh = _make_dir(parent_fd, d.name)
            except OSError as e:
                d.failed = True
                self._warn(self._where(d.rel), reason(e))
        return d.fd

    def _leave(self, d: _Dir) -> None:
        """Every entry of ``d`` is placed: its metadata follows once they are complete, at
        the end of this window (files of an earlier one may still be being created in it)."""
        if d.fd is None:
            return
        self.window.dirs.append(d)
        if len(self.window.dirs) >= self.limits.dirs:
            self._flush()

    def _place(self, parent: _Dir, node: Node, rel: bytes) -> None:
        dir_fd = self._dir_fd(parent)
        if dir_fd is None:
            return
        if node.type == FILE:
            self._plan_file(parent, dir_fd, node, rel)
        elif node.type in _SPECIALS:
            self._make_special(dir_fd, node, rel)
        elif node.type != SOCKET:  # a socket is made by whoever listens on it
            self._warn(b"/" + rel, f"unknown type {node.type!r}: skipped")

    # -- entries without contents ----------------------------------------------------------
    def _make_special(self, dir_fd: int, node: Node, rel: bytes) -> None:
        name, where = node.name, self._where(rel)
        try:
            _clear(dir_fd, name)
            if node.type == SYMLINK:
                os.symlink(node.target, name, dir_fd=dir_fd)
            elif node.type == FIFO:
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
            else:
                os.mknod(name, stat.S_IFMT(full_mode(node)) | 0o600, node.rdev, dir_fd=dir_fd)
        except (OSError, ValueError) as e:
            self._warn(where, reason(e))
            return
        problems: list[str] = []
        if node.type == SYMLINK:
            apply_link_metadata(dir_fd, name, node, problems)
        else:
            _special_metadata(dir_fd, node, problems)
        for p in problems:
            self._warn(where, p)

    # -- regular files -------------------------------------------------------------------
    def _plan_file(self, parent: _Dir, dir_fd: int, node: Node, rel: bytes) -> None:
        name = node.name
        key = (node.device, node.inode) if node.links > 1 else None
        if key is not None and key in self._primaries:
            self.window.links.append((parent, node, self._primaries[key]))
            self._grown()
            return
        primary = _Primary(rel) if key is not None else None
        st: os.stat_result | None = None
        if not parent.fresh:  # a new directory holds no earlier run's files: no lookup
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            except OSError as e:  # this name only, like any other file that fails
                self._warn(self._where(rel), reason(e))
                return
        if st is not None and _resumable(st, node):
            with self._lock:  # restored by an earlier, interrupted run
                self.summary.skipped += 1
                self.summary.files += 1
            if key is not None and primary is not None:
                primary.ident = (st.st_dev, st.st_ino)
                self._primaries[key] = primary
            if self.verify:  # size and mtime say nothing of the bytes: reread it too
                self.window.kept.append(_File(parent, node, self._where(rel), None, 0))
                self._grown()
            return
        f = _File(parent, node, self._where(rel), primary, len(node.content))
        try:
            if st is not None:
                _remove(dir_fd, name, st)
            if not node.content:  # an empty file: nothing to wait for
                self._file_done(f, self._open(f))
        except OSError as e:
            self._warn(f.display, reason(e))
            return
        if key is not None and primary is not None:
            self._primaries[key] = primary
        if node.content:
            self.window.files.append(f)
            self.window.blobs += len(node.content)
            self._grown()

    def _grown(self) -> None:
        w, limits = self.window, self.limits
        if len(w.files) + len(w.links) + len(w.kept) >= limits.files or w.blobs >= limits.blobs:
            self._flush()

    # -- a window: contents, hardlinks, verification, directories ------------------------
    def _flush(self, *, final: bool = False) -> None:
        """Hand the window to the thread that completes windows, in order, one at a time,
        while the walk plans the next: at most two windows exist at once."""
        w, self.window = self.window, _Window()
        self._announce(w, final)
        self._wait()
        self._pending = self._pool.submit(self._complete, w)
        if final:
            self._wait()

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _complete(self, w: _Window) -> None:
        """Contents, then hardlinks, verification, and the metadata of the directories
        completed in the window (post-order, so children before parents)."""
        try:
            if w.files:
                self._write_contents(w.files)
            for parent, node, primary in w.links:
                self._link(parent, node, primary)
            if self.verify:
                self._verify([*w.files, *w.kept])
            for d in w.dirs:
                self._finish_dir(d)
        finally:
            for d in w.dirs:
                _close(d)

    def _announce(self, w: _Window, final: bool) -> None:
        """One Planned: exact when the first window is the whole restore, else the
        snapshot's own totals (none with a filter: they would not be the restore's)."""
        if self._announced:
            return
        self._announced = True
        if final:
            self.emit(Planned(len(w.files), sum(f.node.size for f in w.files)))
        elif self._planned is not None:
            self.emit(self._planned)

    def _write_contents(self, files: list[_File]) -> None:
        """Each blob is written by the read thread that decoded it, straight away: bytes
        still in the CPU's cache are copied into the page cache at half the cost. Files with
        a damaged or missing blob are settled once every other blob is written."""
        targets: dict[bytes, list[tuple[_File, int]]] = defaultdict(list)
        known: dict[bytes, IndexEntry] = {}  # what _places looked up: not looked up again
        hurt: dict[_File, _Hurt] = {}
        for f in files:
            places, problem = self._places(f, known)
            if problem is not None:
                self._damaged(hurt, f, problem[1], problem[0], f.node.size - problem[0])
            for blob_id, offset in places:
                targets[blob_id].append((f, offset))

        def on_damaged(blob_id: bytes, error: IntegrityError) -> None:
            entry = known.get(blob_id)  # else the file's last blob: it runs to the end
            for f, offset in targets[blob_id]:
                length = f.node.size - offset if entry is None else entry.raw_length
                self._damaged(hurt, f, error, offset, min(length, f.node.size - offset))

        self.repo.read_blob_ranges(
            list(targets),
            lambda blobs: self._write_range(blobs, targets),
            on_damaged=on_damaged,
            known=known,
        )
        for f, (error, ranges) in hurt.items():
            self._settle_damaged(f, error, sorted(ranges))

    def _places(
        self, f: _File, known: dict[bytes, IndexEntry]
    ) -> tuple[list[tuple[bytes, int]], tuple[int, IntegrityError] | None]:
        """Where each of the file's blobs goes, as far as the index can say: past a blob it
        does not have (or records wrongly) no offset is known, so the rest of the file is
        lost, from (offset, error). The entries it looks up are kept in ``known``."""
        content = f.node.content
        places, offset = [(content[0], 0)], 0
        for i in range(1, len(content)):  # the last blob's length is no blob's offset
            entry = known.get(content[i - 1])
            if entry is None:
                try:
                    entry = known[content[i - 1]] = self.repo.blob_entry(content[i - 1])
                except IntegrityError as e:
                    return places[:-1], (offset, e)
            offset += entry.raw_length
            places.append((content[i], offset))
        return places, None

    def _damaged(
        self, hurt: dict[_File, _Hurt], f: _File, error: IntegrityError, offset: int, length: int
    ) -> None:
        """A blob of ``f`` is damaged or missing (on a read thread): its range is noted, and
        the file never completed as planned."""
        with self._lock:
            f.damaged = True
            _first, ranges = hurt.setdefault(f, (error, []))
            ranges.append((offset, max(length, 0)))

    def _settle_damaged(
        self, f: _File, error: IntegrityError, ranges: list[tuple[int, int]]
    ) -> None:
        """Once a window's blobs are written: a damaged file is removed (no partial file
        stays under its name, and a later restore writes it anew), or, with
        ``allow_damaged``, completed with its metadata and the lost ranges zero-filled (they
        were never written into the file, sized at creation). Warned about either way."""
        shown = ", ".join(f"{o}-{o + n - 1}" if n else f"{o}" for o, n in ranges)
        try:
            if self.allow_damaged:
                self._file_done(f, self._open(f))
                note = f"written with bytes {shown} zero-filled"
            else:
                if f.created:
                    self._unlink_made(f)
                note = "not restored"
        except OSError as e:
            self._warn(f.display, reason(e))
            return
        entry = DamagedFile(path_text(f.display), str(error), tuple(ranges), self.allow_damaged)
        with self._lock:
            self.summary.damaged.append(entry)
        self._warn(f.display, f"{error}: {note}")

    def _unlink_made(self, f: _File) -> None:
        """Remove ``f``'s name, if it still names the file this restore created there."""
        dir_fd = _fd_of(f.parent)
        st = os.stat(f.node.name, dir_fd=dir_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == f.ident:
            os.unlink(f.node.name, dir_fd=dir_fd)

    def _write_range(
        self, blobs: Iterator[tuple[bytes, Data]], targets: dict[bytes, list[tuple[_File, int]]]
    ) -> None:
        """Write a range's blobs; neighbours mostly belong to one file, so its descriptor
        is opened once for the range. Progress is told once a range (an event a blob cost
        as much as writing a small file's blob)."""
        fds: dict[_File, int] = {}
        written = 0
        try:
            for blob_id, data in blobs:
                if self._stop.is_set():
                    raise _Stopped
                places = targets[blob_id]
                try:
                    self._write_blob(data, places, fds)
                except OSError as e:  # pwrite and ftruncate name no file: say which
                    if e.filename is not None:
                        raise
                    where = path_text(places[0][0].display)
                    raise OSError(e.errno, e.strerror, where) from None
                written += len(data) * len(places)
        finally:
            for fd in fds.values():
                os.close(fd)
            if written:
                self.emit(BytesDone(written))

    def _write_blob(
        self, data: Data, places: list[tuple[_File, int]], fds: dict[_File, int]
    ) -> None:
        zero = data[:1] == b"\0" and data.count(0) == len(data)
        for f, offset in places:
            if len(f.node.content) == 1:  # a small file: no other blob, no other thread
                self._write_whole(f, data, zero)
                continue
            fd = fds.get(f)
            if fd is None:
                fd = fds[f] = self._open(f)
            if not zero:
                os.pwrite(fd, data, offset)
            with self._lock:
                f.remaining -= 1
                complete = f.remaining <= 0
            if complete:
                self._file_done(f, fds.pop(f))

    def _write_whole(self, f: _File, data: Data, zero: bool) -> None:
        """A file of one blob, whole: created, written and finished here, with only the
        system calls it needs (sized only when the blob leaves its end unwritten; its inode
        asked for only when a hardlink will need it)."""
        fd = _create_file(f.parent, f.node.name)
        try:
            if zero or len(data) < f.node.size:
                os.ftruncate(fd, f.node.size)
            if not zero:
                os.pwrite(fd, data, 0)
            if f.primary is not None:
                st = os.fstat(fd)
                f.ident = (st.st_dev, st.st_ino)
            f.created = True
        except BaseException:
            os.close(fd)
            raise
        self._file_done(f, fd)

    def _open(self, f: _File) -> int:
        """A descriptor for writing ``f``; the first caller creates it at its full size.
        Later callers reopen it by name and check that it is still the file made here."""
        if not f.created:  # set once, under the lock, after ``ident``
            with self._create_lock:
                if not f.created:
                    fd = _create_file(f.parent, f.node.name)
                    try:
                        os.ftruncate(fd, f.node.size)
                        st = os.fstat(fd)
                    except OSError:
                        os.close(fd)
                        raise
                    f.ident, f.created = (st.st_dev, st.st_ino), True
                    return fd
        fd = os.open(f.node.name, _OLD_FILE, dir_fd=_fd_of(f.parent))
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != f.ident:
            os.close(fd)
            shown = path_text(f.display)
            raise SnapfsError(f"{shown}: replaced by something else during the restore")
        return fd

    def _file_done(self, f: _File, fd: int) -> None:
        """Metadata through the descriptor, then close it (closing leaves the mtime be)."""
        problems: list[str] = []
        try:
            apply_metadata(fd, f.node, problems)
        finally:
            os.close(fd)
        for p in problems:
            self._warn(f.display, p)
        if f.primary is not None:
            f.primary.ident = f.ident
        with self._lock:
            self.summary.files += 1
            self.summary.bytes += f.node.size
        self.emit(FileDone(path_text(f.display), f.node.size, 0))

    def _link(self, parent: _Dir, node: Node, primary: _Primary) -> None:
        """Link ``node`` to a file this restore created or kept, and to nothing else: the
        first name is reached again through descriptors and must still be that inode."""
        rel = join(parent.rel, node.name)
        where = self._where(rel)
        if primary.ident is None:
            self._warn(where, "hardlink: its first name was not restored")
            return
        dir_rel, _, first = primary.rel.rpartition(b"/")
        src_fd: int | None = None
        try:
            src_fd = self._open_rel(dir_rel)
            st = os.stat(first, dir_fd=src_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != primary.ident:
                raise OSError(errno.ESTALE, "hardlink: its first name was replaced")
            dst_fd = _fd_of(parent)
            _clear(dst_fd, node.name)
            os.link(first, node.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            made = os.stat(node.name, dir_fd=dst_fd, follow_symlinks=False)
            if (made.st_dev, made.st_ino) != primary.ident:  # swapped between stat and link
                os.unlink(node.name, dir_fd=dst_fd)
                raise OSError(errno.ESTALE, "hardlink: its first name was replaced")
        except OSError as e:
            self._warn(where, reason(e))
            return
        finally:
            if src_fd is not None:
                os.close(src_fd)
        with self._lock:
            self.summary.files += 1

    def _open_rel(self, rel: bytes) -> int:
        """A new descriptor of the directory ``rel`` below the target, one level at a time."""
        fd = os.dup(_fd_of(self.root))
        for name in rel.split(b"/") if rel else []:
            try:
                sub = os.open(name, _DIR_OPEN, dir_fd=fd)
            finally:
                os.close(fd)
            fd = sub
        return fd

    def _verify(self, files: list[_File]) -> None:
        """Reread the window's files and check each chunk against its blob id."""
        for f in files:
            if f.damaged:  # warned about already
                continue
            where = path_text(f.display)
            try:
                fd = os.open(f.node.name, _READ_FILE, dir_fd=_fd_of(f.parent))
            except OSError as e:
                self.summary.verify_errors.append(f"{where}: {e.strerror}")
                continue
            with os.fdopen(fd, "rb") as fh:
                for blob_id in f.node.content:
                    data = fh.read(self.repo.blob_entry(blob_id).raw_length)
                    if self.repo.key.blob_id(data) != blob_id:
                        self.summary.verify_errors.append(f"{where}: content differs")
                        break

    def _finish_dir(self, d: _Dir) -> None:
        assert d.fd is not None and d.node is not None
        problems: list[str] = []
        try:
            apply_metadata(d.fd, d.node, problems)
        finally:
            _close(d)
        for p in problems:
            self._warn(self._where(d.rel), p)
        with self._lock:
            self.summary.dirs += 1


class _Stopped(Exception):
    """The walk failed or was interrupted: the window in flight ends early."""


def _fd_of(d: _Dir) -> int:
    assert d.fd is not None, "a directory is opened before anything is placed in it"
    return d.fd


def _close(d: _Dir) -> None:
    if d.fd is not None:
        os.close(d.fd)
        d.fd = None


def _make_dir(dir_fd: int, name: bytes) -> tuple[int, bool]:
    """A descriptor of the directory ``name`` in ``dir_fd``, and whether this call made it:
    an existing directory is kept, anything else there is removed first. A new one is
    private (0700) until its metadata is set, so nobody else can plant entries in it
    meanwhile."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
        fresh = True
    except FileExistsError:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        fresh = not stat.S_ISDIR(st.st_mode)
        if fresh:
            _remove(dir_fd, name, st)
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    return os.open(name, _DIR_OPEN, dir_fd=dir_fd), fresh


def _create_file(d: _Dir, name: bytes) -> int:
    """A new, empty, private file: ``O_EXCL`` with ``O_NOFOLLOW``, so neither an existing
    file (perhaps a hardlink to one elsewhere) nor a symlink is ever opened for writing."""
    dir_fd = _fd_of(d)
    try:
        return os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
    except FileExistsError:  # something came since the plan: remove it, once
        _clear(dir_fd, name)
        return os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)


def _resumable(st: os.stat_result, node: Node) -> bool:
    """Whether an existing entry is the file an earlier run restored: a regular file with
    the snapshot's size and mtime and no other name (another name may be outside the target:
    a hardlink group is made anew, its first name being a file this run created)."""
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_nlink == 1
        and st.st_size == node.size
        and st.st_mtime_ns == node.mtime_ns
    )


def _clear(dir_fd: int, name: bytes) -> None:
    """Remove whatever ``name`` is in ``dir_fd``, if anything: never what it points to."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    _remove(dir_fd, name, st)


def _remove(dir_fd: int, name: bytes, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        remove_tree(dir_fd, name)
    else:
        os.unlink(name, dir_fd=dir_fd)


def remove_tree(dir_fd: int, name: bytes) -> None:
    """Remove the directory ``name`` in ``dir_fd`` and everything below it. Each level is
    opened through its parent's descriptor with ``O_NOFOLLOW``, and entries are unlinked by
    name in their directory, so a symlink anywhere below is removed, never followed: nothing
    outside ``dir_fd`` can be touched, whatever is swapped in meanwhile. No recursion: the
    depth is bounded only by the descriptors a process may hold."""
    stack: list[tuple[int, bytes, int, list[bytes]]] = []

    def enter(parent_fd: int, sub: bytes) -> None:
        fd = os.open(sub, _DIR_OPEN, dir_fd=parent_fd)
        subdirs: list[bytes] = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    raw = os.fsencode(entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(raw)
                    else:
                        os.unlink(raw, dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        stack.append((parent_fd, sub, fd, subdirs))

    try:
        enter(dir_fd, name)
        while stack:
            parent_fd, sub, fd, subdirs = stack[-1]
            if subdirs:
                enter(fd, subdirs.pop())
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(sub, dir_fd=parent_fd)
    finally:
        for _, _, fd, _ in stack:
            os.close(fd)


def _special_metadata(dir_fd: int, node: Node, problems: list[str]) -> None:
    """A FIFO's or device's metadata, through an ``O_PATH`` descriptor of the entry itself
    (opening a device would start it) via its /proc/self/fd link: fchmodat has no
    no-follow form on Linux, and the link leads to that inode and nowhere else."""
    try:
        fd = os.open(node.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        problems.append(reason(e))
        return
    try:
        if stat.S_IFMT(os.fstat(fd).st_mode) != stat.S_IFMT(full_mode(node)):
            problems.append("replaced by something else during the restore")
            return
        apply_metadata(b"/proc/self/fd/%d" % fd, node, problems)
    finally:
        os.close(fd)


def restore(
    repo: RestoreSource,
    snapshot: Snapshot,
    target: str,
    *,
    includes: list[str] | None = None,
    excludes: list[str] | None = None,
    verify: bool = False,
    on_event: EventHandler = ignore,
    limits: Limits | None = None,
    path: str = "",
    allow_damaged: bool = False,
    catalog: IcebergCatalog | None = None,
) -> RestoreSummary:
    """Restore ``snapshot`` (its directory ``path``, default the root) under ``target``:
    what lies at ``path/x`` comes back as ``target/x``, and the filters match ``/x``.
    Returns counts, warnings and any verification failures. ``target`` itself is resolved
    once, as given (a symlink there is followed, as tar -C and restic do); nothing below it
    is reached through a path. A file with a damaged or missing blob is left out (listed in
    ``damaged``, warned about), or with ``allow_damaged`` written with the lost ranges
    zero-filled; every other file is restored. Pinned Iceberg tables restored elsewhere
    are moved there, and with ``catalog`` registered in it (a warning for each that is
    not)."""
    where = os.fsencode(os.path.abspath(target))
    filt = PathFilter(includes, excludes)
    totals = whole_totals(snapshot, filt, path)
    limits = limits or Limits()
    _descriptors_for(limits.depth + 2 * limits.dirs + 64)
    run = Restore(repo, where, filt, on_event, limits, planned=totals, verify=verify,
                  allow_damaged=allow_damaged)  # fmt: skip
    with repo.lock("read"), _full_collections_deferred():
        run.run(subtree(repo, snapshot, path))
    _move_tables(snapshot, path, target, run, catalog)
    return run.summary


def _move_tables(
    snapshot: Snapshot, path: str, target: str, run: Restore, catalog: IcebergCatalog | None
) -> None:
    """Pinned Iceberg tables restored to another place get their metadata rewritten for it
    (tableview.move_restored); one that cannot be is a warning naming it (and is not
    registered: it reads its old place)."""
    for record, new in restored_places(snapshot, path, target, moved_only=catalog is None):
        if new.rstrip("/") != "/" + record.path.strip("/"):
            try:
                move_restored(record, new)
            except (SnapfsError, OSError) as e:
                run._warn(os.fsencode(new), f"Iceberg table not moved to its new place: {e}")
                continue
        if catalog is not None:
            _register(catalog, record, new, run)


def _register(catalog: IcebergCatalog, record: TableRecord, new: str, run: Restore) -> None:
    assert record.metadata is not None
    metadata = os.path.join(new, os.path.relpath(record.metadata, record.path))
    try:
        if not os.path.isfile(metadata):
            raise CatalogError("its metadata file was not restored (--include/--exclude?)")
        catalog.register(new, metadata)
    except CatalogError as e:
        run._warn(os.fsencode(new), f"Iceberg table not registered in the catalog: {e}")


def _descriptors_for(wanted: int) -> None:
    """Raise the soft limit of open files to ``wanted`` where the hard limit allows (never
    lower it): the walk holds a descriptor a level. Past the hard limit, the directories
    that cannot be opened are warned about one by one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if ceiling > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def subtree(repo: RestoreSource, snapshot: Snapshot, path: str) -> bytes:
    """The tree of the directory ``path`` in ``snapshot`` (``/``-separated, absolute or
    not; "" or "/" is the root). PathNotFound, naming the snapshot, when there is no
    directory there."""
    root = bytes.fromhex(snapshot.tree)
    try:
        node = resolve(repo, root, path)
    except PathNotFound as e:
        raise PathNotFound(f"{e} in snapshot {snapshot.short_id}") from None
    if node is None:
        return root
    if node.type != DIR or node.subtree is None:
        raise PathNotFound(f"{path}: not a directory in snapshot {snapshot.short_id}")
    return node.subtree


def whole_totals(snapshot: Snapshot, filt: PathFilter, path: str) -> Planned | None:
    """The snapshot's own totals, when the restore is the whole snapshot: a filter or a
    PATH below the root makes them not the restore's."""
    counts = snapshot.summary
    if not counts.files or filt or path.strip("/"):
        return None
    return Planned(counts.files, counts.bytes)


_deferring = 0  # restores running in this process (the TUI may run several)
_deferring_lock = threading.Lock()
_saved_threshold = gc.get_threshold()


@contextmanager
def _full_collections_deferred() -> Iterator[None]:
    """While a restore runs, the collector's full passes wait. A window's objects (nodes,
    files, places) live long enough to reach the oldest generation, and each full pass
    walked them all again: a quarter of a small-file restore's Python time. They form no
    cycles (refcounts free them); young cycles, such as a caught exception's, are still
    collected by the younger generations."""
    global _deferring, _saved_threshold
    with _deferring_lock:
        if _deferring == 0:
            _saved_threshold = gc.get_threshold()
            young, middle, _ = _saved_threshold
            gc.set_threshold(young, middle, 1 << 30)
        _deferring += 1
    try:
        yield
    finally:
        with _deferring_lock:
            _deferring -= 1
            if _deferring == 0:
                gc.set_threshold(*_saved_threshold)
