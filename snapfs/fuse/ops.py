"""The pyfuse3 handlers: each turns a kernel request into view lookups and chunk reads.

Anything that may touch the repository (a tree not yet decoded, a file's chunk table) runs on
a worker thread, so the trio loop keeps answering other requests meanwhile. Every change is
refused with EROFS: a snapshot never changes, which is also why the kernel may cache for long.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from snapfs.errors import SnapfsError
from snapfs.fuse.inodes import Inode, InodeTable
from snapfs.fuse.reader import ChunkCache, OpenFile, prefetch_heads, prefetch_opened, read
from snapfs.metadata import full_mode
from snapfs.tree import DIR, FILE, SYMLINK, Node
from snapfs.view import Item, View, VirtualDir, node_of

log = logging.getLogger("snapfs.fuse")

_SNAPSHOT_TIMEOUT = 24 * 3600.0  # a snapshot never changes
_LAYOUT_TIMEOUT = 1.0  # the snapshot list does, when backups run
_INLINE_CHUNKS = 64
_NEXT_FILES = 32  # siblings whose first chunks one task decodes ahead of their opens
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT

P = ParamSpec("P")
R = TypeVar("R")


async def _off_loop(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except SnapfsError as e:
        log.error("%s", e)
        raise pyfuse3.FUSEError(errno.EIO) from None


async def _erofs(*_args: object, **_kwargs: object) -> None:
    raise pyfuse3.FUSEError(errno.EROFS)


class SnapshotOperations(pyfuse3.Operations):
    def __init__(self, view: View, cache: ChunkCache) -> None:
        super().__init__()
        self._view = view
        self._cache = cache
        self.inodes = InodeTable(view.root, single_snapshot=view.single)
        self._files: dict[int, OpenFile] = {}
        self._dirs: dict[int, tuple[int, list[Item]]] = {}
        # directory inode -> (position of its last open, siblings asked for below this)
        self._walks: dict[int, tuple[int, int]] = {}
        self._next_handle = 1
        self._uid, self._gid = os.getuid(), os.getgid()

    # -- attributes ---------------------------------------------------------------------
    def _attributes(self, ino: int, inode: Inode) -> pyfuse3.EntryAttributes:
        node = node_of(inode.item)
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = ino
        attr.st_mode = full_mode(node)
        attr.st_nlink = 1 if node.type == DIR else node.links
        virtual = inode.snapshot == 0 or (ino == inode.snapshot and not self._view.single)
        attr.st_uid, attr.st_gid = (self._uid, self._gid) if virtual else (node.uid, node.gid)
        attr.st_rdev = node.rdev
        sizes = {DIR: 0, SYMLINK: len(node.target)}
        attr.st_size = sizes.get(node.type, node.size)
        attr.st_blksize = 128 * 1024
        attr.st_blocks = (attr.st_size + 511) // 512
        attr.st_mtime_ns = attr.st_atime_ns = node.mtime_ns
        attr.st_ctime_ns = node.ctime_ns
        timeout = _LAYOUT_TIMEOUT if inode.snapshot == 0 else _SNAPSHOT_TIMEOUT
        attr.entry_timeout = attr.attr_timeout = timeout
        return attr

    def _inode(self, ino: int) -> Inode:
        try:
            return self.inodes.get(ino)
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attributes(inode, self._inode(inode))

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._inode(parent_inode)
        if name == b".":
            ino = parent_inode
        elif name == b"..":
            ino = parent.parent
        else:
            if isinstance(parent.item, VirtualDir) and self._view.stale:
                await _off_loop(self._view.refresh)
            if self._view.ready(parent.item):
                item = self._view.child(parent.item, name)
            else:
                item = await _off_loop(self._view.child, parent.item, name)
            if item is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            ino = self.inodes.child(parent_inode, item)
        self.inodes.remember(ino)
        return self._attributes(ino, self.inodes.get(ino))

    def forget(self, inode_list: list[tuple[int, int]]) -> None:  # type: ignore[override]
        for ino, count in inode_list:
            if self.inodes.forget(ino, count):
                self._walks.pop(ino, None)  # per directory: kept no longer than its inode

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        node = node_of(self._inode(inode).item)
        if node.type != SYMLINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return node.target

    # -- directories --------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        item = self._inode(inode).item
        if node_of(item).type != DIR:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if isinstance(item, VirtualDir) and self._view.stale:
            await _off_loop(self._view.refresh)
        entries = await _off_loop(self._view.children, item)
        handle = self._handle()
        self._dirs[handle] = (inode, entries)
        return handle

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        ino, entries = self._dirs[fh]
        for i in range(start_id, len(entries)):
            item = entries[i]
            child = self.inodes.child(ino, item)
            attr = self._attributes(child, self.inodes.get(child))
            if not pyfuse3.readdir_reply(token, node_of(item).name, attr, i + 1):
                self.inodes.forget(child, 0)  # not reported: drop it unless the kernel holds it
                return
            self.inodes.remember(child)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # -- files --------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & _WRITE_FLAGS:
            raise pyfuse3.FUSEError(errno.EROFS)
        node = node_of(self._inode(inode).item)
        if node.type != FILE:
            raise pyfuse3.FUSEError(errno.EISDIR if node.type == DIR else errno.EACCES)
        if len(node.content) <= _INLINE_CHUNKS:
            starts = self._view.chunk_starts(node)  # index lookups only: microseconds
        else:
            starts = await _off_loop(self._view.chunk_starts, node)
        handle = self._handle()
        self._files[handle] = f = OpenFile(node.content, starts)
        prefetch_opened(self._cache, f)
        self._prefetch_next_files(inode, node)
        return pyfuse3.FileInfo(fh=handle, keep_cache=True)

    def _prefetch_next_files(self, ino: int, node: Node) -> None:
        """A reader opening a directory's files in name order (cp -r, tar, a query over a
        partition) gets the next files' first chunks decoded ahead of its opens."""
        parent = self.inodes.get(ino).parent
        try:
            at, siblings = self._view.position(self.inodes.get(parent).item, node.name)
        except KeyError:  # the kernel has let go of the directory
            return
        if at < 0:
            return
        previous, fetched = self._walks.get(parent, (None, 0))
        if previous is not None and previous != at - 1:
            self._walks[parent] = (at, 0)
            return  # not walking in order: guessing would only waste decoding
        if fetched - at > _NEXT_FILES // 2:
            self._walks[parent] = (at, fetched)
            return
        # Many files at once: one task, one range read, one thread hand-off for all of them
        # (a task per small file cost more than decoding it).
        start, end = max(at + 1, fetched), at + 1 + _NEXT_FILES
        self._walks[parent] = (at, end)
        prefetch_heads(self._cache, [n.content for n in siblings[start:end] if n.type == FILE])

    async def read(self, fh: int, off: int, size: int) -> bytes:
        try:
            return await read(self._cache, self._files[fh], off, size)
        except SnapfsError as e:
            log.error("%s", e)
            raise pyfuse3.FUSEError(errno.EIO) from None

    async def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    def _handle(self) -> int:
        self._next_handle += 1
        return self._next_handle

    # -- extended attributes ------------------------------------------------------------
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        for key, value in node_of(self._inode(inode).item).xattrs:
            if key == name:
                return value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [key for key, _ in node_of(self._inode(inode).item).xattrs]

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        stats = pyfuse3.StatvfsData()
        stats.f_bsize = stats.f_frsize = 4096
        stats.f_namemax = 255
        return stats

    # -- every change -------------------------------------------------------------------
    setattr = mknod = mkdir = unlink = rmdir = symlink = rename = link = _erofs  # type: ignore[assignment]
    create = write = setxattr = removexattr = _erofs  # type: ignore[assignment]


def _serving(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler``, answering EIO (and logging one warning) where it would raise anything
    but a FUSEError: one crafted or damaged object costs the request that met it, and the
    mount keeps serving (pyfuse3 ends ``main`` on an exception a handler lets out)."""
    name = handler.__name__

    def failed(e: Exception) -> pyfuse3.FUSEError:
        log.warning("%s failed: %s: %s", name, type(e).__name__, e)
        return pyfuse3.FUSEError(errno.EIO)

    if not inspect.iscoroutinefunction(handler):  # forget: a reply the kernel does not wait for

        @functools.wraps(handler)
        def serve_sync(*args: Any) -> Any:
            try:
                return handler(*args)
            except Exception as e:
                failed(e)
                return None

        return serve_sync

    @functools.wraps(handler)
    async def serve(*args: Any) -> Any:
        try:
            return await handler(*args)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            raise failed(e) from None

    return serve


# Every handler the class defines, wrapped once here rather than by a decorator on each.
for _name in (
    "getattr", "lookup", "forget", "readlink", "opendir", "readdir", "releasedir", "open",
    "read", "release", "getxattr", "listxattr", "statfs",
):  # fmt: skip
    setattr(SnapshotOperations, _name, _serving(getattr(SnapshotOperations, _name)))
