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
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from snapfs.errors import SnapfsError
from snapfs.fuse.inodes import ROOT_INODE, SLOT_BITS, SLOT_MASK, Dir, InodeTable
from snapfs.fuse.reader import (
    ChunkCache,
    OpenFile,
    prefetch_heads,
    prefetch_opened,
    read,
    wait_for,
)
from snapfs.fuse.trees import TreesAhead
from snapfs.metadata import full_mode
from snapfs.tree import DIR, FILE, SYMLINK, Node
from snapfs.view import Item, Source, View, VirtualDir, node_of

log = logging.getLogger("snapfs.fuse")

_SNAPSHOT_TIMEOUT = 24 * 3600.0  # a snapshot never changes
_LAYOUT_TIMEOUT = 1.0  # the snapshot list does, when backups run
_INLINE_CHUNKS = 64
_TREES_AHEAD = 32  # directories whose trees are decoded ahead of their opening
_NEXT_FILES = 32  # siblings whose first chunks one task decodes ahead of their opens
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT

P = ParamSpec("P")
R = TypeVar("R")


async def _off_loop(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def _erofs(*_args: object, **_kwargs: object) -> None:
    raise pyfuse3.FUSEError(errno.EROFS)


class SnapshotOperations(pyfuse3.Operations):
    def __init__(self, view: View, cache: ChunkCache) -> None:
        super().__init__()
        self._view = view
        self._cache = cache
        self.inodes = InodeTable(view.root, single_snapshot=view.single)
        self._files: dict[int, OpenFile] = {}
        # open directory -> (it, its entries, their slots: None when entry i has slot i + 1)
        self._dirs: dict[int, tuple[Dir, list[Item], list[int] | None]] = {}
        self._trees = TreesAhead(self._decode_ahead, view.ready)
        self._next_handle = 1
        self._uid, self._gid = os.getuid(), os.getgid()

    # -- items and attributes -----------------------------------------------------------
    async def _item(self, ino: int) -> tuple[Item, Dir | None]:
        """The item numbered ``ino`` and the directory it lies in (None: the root, or a
        hardlinked file); ENOENT for a number the kernel has let go of."""
        try:
            if ino == ROOT_INODE:
                return self._view.root, None
            link = self.inodes.link(ino)
            if link is not None:
                return link.node, None
            parent, slot = self.inodes.place(ino)
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None
        item = await self._from_tree(self._view.at, parent.source, slot)
        if item is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return item, parent

    async def _from_tree(self, fn: Callable[..., R], source: Source, *args: object) -> R:
        """``fn(source, *args)``: here when the directory's tree is decoded already, else
        on a worker thread (it may read the repository)."""
        if self._view.ready(source):
            return fn(source, *args)
        return await _off_loop(fn, source, *args)

    async def _node(self, ino: int) -> Node:
        return node_of((await self._item(ino))[0])

    def _attributes(self, ino: int, item: Item, parent: Dir | None) -> pyfuse3.EntryAttributes:
        node = node_of(item)
        if parent is None:  # the root, or a hardlinked file of a snapshot
            virtual = layout = ino == ROOT_INODE and self.inodes.root.layout
        else:  # the layout's own items, and the snapshot roots it shows
            virtual = parent.layout
            layout = virtual and (isinstance(item, VirtualDir) or node.subtree is None)
        attr = _timed(pyfuse3.EntryAttributes(), _LAYOUT_TIMEOUT if layout else _SNAPSHOT_TIMEOUT)
        _fill(attr, ino, node)
        if virtual:
            attr.st_uid, attr.st_gid = self._uid, self._gid
        return attr

    def _dir(self, ino: int) -> Dir:
        try:
            return self.inodes.dir(ino)
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        item, parent = await self._item(inode)
        return self._attributes(inode, item, parent)

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        if name == b".":
            ino = parent_inode
        elif name == b"..":
            ino = parent.parent.ino if parent.parent is not None else ROOT_INODE
        else:
            if parent.layout and self._view.stale:
                await _off_loop(self._view.refresh)
            found = await self._from_tree(self._view.find, parent.source, name)
            if found is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            slot, item = found
            ino = self.inodes.number(parent, slot, item)
            self.inodes.remember(ino)
            return self._attributes(ino, item, parent)
        self.inodes.remember(ino)
        return await self.getattr(ino, ctx)

    def forget(self, inode_list: list[tuple[int, int]]) -> None:  # type: ignore[override]
        for ino, count in inode_list:
            self.inodes.forget(ino, count)

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        node = await self._node(inode)
        if node.type != SYMLINK:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return node.target

    # -- directories --------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        try:
            folder = self.inodes.dir(inode)
        except KeyError:
            await self._item(inode)  # ENOENT when it is nothing live
            raise pyfuse3.FUSEError(errno.ENOTDIR) from None
        source = folder.source
        if folder.layout and self._view.stale:
            await _off_loop(self._view.refresh)
        if isinstance(source, bytes) and (ahead := self._trees.pending(source)) is not None:
            await wait_for(ahead)
        entries, slots = await self._from_tree(self._view.listing, source)
        if not folder.layout:
            self._trees_ahead(folder, entries, 0)
            self._more_trees_ahead(folder)
        handle = self._handle()
        self._dirs[handle] = (folder, entries, slots)
        return handle

    def _trees_ahead(self, folder: Dir, entries: Sequence[Item], start: int) -> None:
        """Decode ahead the trees of the next directories in ``entries`` from ``start``: a
        reader that opened a directory usually goes into its directories next."""
        ids: list[bytes] = []
        mark = len(entries) + 1
        i = start
        while i < len(entries) and len(ids) < _TREES_AHEAD:
            item = entries[i]
            i += 1
            if isinstance(item, Node) and item.subtree is not None:
                ids.append(item.subtree)
                if len(ids) == _TREES_AHEAD // 2:
                    mark = i  # the slot of the directory half way
        folder.ahead = (i, mark)
        self._trees.want(ids)

    def _decode_ahead(self, tree_id: bytes) -> bool:
        """Decode a tree ahead (a small one); whether to go on with the next ones. Not after
        a directory of directories: a reader walks all that lies below it before it opens
        the next, and the trees decoded for those would leave the bounded LRU first (at
        300,000 files in groups of 100 directories, 27 of the 30 group trees were decoded
        twice, each checking its 100 subtrees again)."""
        if not self._view.preload(tree_id):
            return True
        nodes = self._view.decoded(tree_id)
        return nodes is None or all(n.type != DIR for n in nodes)

    def _more_trees_ahead(self, folder: Dir) -> None:
        """``folder`` was opened: when it is half way through the directories its parent
        had decoded ahead, the parent's next ones are queued."""
        parent = folder.parent
        if parent is None or parent.ahead is None or folder.ino & SLOT_MASK < parent.ahead[1]:
            return
        siblings = self._view.decoded(parent.source)
        if siblings is not None:  # from the one opened on, when the reader has jumped
            self._trees_ahead(parent, siblings, max(parent.ahead[0], folder.ino & SLOT_MASK))

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        folder, entries, slots = self._dirs[fh]
        base = folder.id << SLOT_BITS
        number, reply, attributes = self.inodes.number, pyfuse3.readdir_reply, self._attributes
        # In a snapshot every entry is a Node with the same timeouts: one attributes object,
        # refilled for each (the reply copies it), is the cost that counts in a 1M-file find.
        shared = None if folder.layout else _timed(pyfuse3.EntryAttributes(), _SNAPSHOT_TIMEOUT)
        replied = 0
        try:
            for i in range(start_id, len(entries)):
                item = entries[i]
                node = node_of(item)
                slot = i + 1 if slots is None else slots[i]
                # A plain file needs no record: its number says where it lies.
                plain = node.type != DIR and node.links == 1
                ino = base | slot if plain else number(folder, slot, item)
                attr = attributes(ino, item, folder) if shared is None else _fill(shared, ino, node)
                if not reply(token, node.name, attr, i + 1):
                    if not plain:
                        self.inodes.forget(ino, 0)  # not reported: drop it unless held
                    return
                if plain:
                    replied += 1
                else:
                    self.inodes.remember(ino)
        finally:
            folder.refs += replied

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # -- files --------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & _WRITE_FLAGS:
            raise pyfuse3.FUSEError(errno.EROFS)
        item, parent = await self._item(inode)
        node = node_of(item)
        if node.type != FILE:
            raise pyfuse3.FUSEError(errno.EISDIR if node.type == DIR else errno.EACCES)
        if parent is not None and self._view.moves(parent.source):
            data = await _off_loop(self._view.contents, parent.source, node)
            if data is not None:  # a moved table's metadata file: served from memory
                handle = self._handle()
                self._files[handle] = OpenFile([], [0, len(data)], data=data)
                return pyfuse3.FileInfo(fh=handle, keep_cache=True)
        if len(node.content) <= _INLINE_CHUNKS:
            starts = self._view.chunk_starts(node)  # index lookups only: microseconds
        else:
            starts = await _off_loop(self._view.chunk_starts, node)
        handle = self._handle()
        self._files[handle] = f = OpenFile(node.content, starts)
        prefetch_opened(self._cache, f)
        if parent is not None:
            self._prefetch_next_files(parent, inode & SLOT_MASK)
        return pyfuse3.FileInfo(fh=handle, keep_cache=True)

    def _prefetch_next_files(self, parent: Dir, slot: int) -> None:
        """A reader opening a directory's files in name order (cp -r, tar, a query over a
        partition) gets the next files' first chunks decoded ahead of its opens, from its
        second open in a row on."""
        siblings = self._view.decoded(parent.source)
        if siblings is None:
            return
        at = slot - 1
        previous, fetched = parent.walk or (None, 0)
        if previous != at - 1:
            parent.walk = (at, 0)
            # A first open in the directory, or a jump: not a walk in name order (yet).
            # Guessing on a first open decoded 32 files for each one a sampling reader
            # opened: a third of the CPU of reading 2% of a tree's files.
            return
        if fetched - at > _NEXT_FILES // 2:
            parent.walk = (at, fetched)
            return
        # Many files at once: one task, one range read, one thread hand-off for all of them
        # (a task per small file cost more than decoding it).
        start, end = max(at + 1, fetched), at + 1 + _NEXT_FILES
        parent.walk = (at, end)
        prefetch_heads(self._cache, [n.content for n in siblings[start:end] if n.type == FILE])

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await read(self._cache, self._files[fh], off, size)

    async def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    def close(self) -> None:
        self._trees.close()

    def _handle(self) -> int:
        self._next_handle += 1
        return self._next_handle

    # -- extended attributes ------------------------------------------------------------
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        for key, value in (await self._node(inode)).xattrs:
            if key == name:
                return value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [key for key, _ in (await self._node(inode)).xattrs]

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        stats = pyfuse3.StatvfsData()
        stats.f_bsize = stats.f_frsize = 4096
        stats.f_namemax = 255
        return stats

    # -- every change -------------------------------------------------------------------
    setattr = mknod = mkdir = unlink = rmdir = symlink = rename = link = _erofs  # type: ignore[assignment]
    create = write = setxattr = removexattr = _erofs  # type: ignore[assignment]


def _timed(attr: pyfuse3.EntryAttributes, timeout: float) -> pyfuse3.EntryAttributes:
    attr.entry_timeout = attr.attr_timeout = timeout
    attr.st_blksize = 128 * 1024
    return attr


def _fill(attr: pyfuse3.EntryAttributes, ino: int, node: Node) -> pyfuse3.EntryAttributes:
    """Every field that differs between entries, from the node (owner included)."""
    kind = node.type
    attr.st_ino = ino
    attr.st_mode = full_mode(node)
    attr.st_nlink = 1 if kind == DIR else node.links
    attr.st_uid = node.uid
    attr.st_gid = node.gid
    attr.st_rdev = node.rdev
    size = 0 if kind == DIR else len(node.target) if kind == SYMLINK else node.size
    attr.st_size = size
    attr.st_blocks = (size + 511) // 512
    attr.st_mtime_ns = attr.st_atime_ns = node.mtime_ns
    attr.st_ctime_ns = node.ctime_ns
    return attr


def _serving(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler``, answering EIO where it would raise anything but a FUSEError: a
    SnapfsError (a damaged or missing object) is logged as the error it is, anything else
    as one warning naming the handler. One crafted or damaged object costs the request that
    met it, and the mount keeps serving (pyfuse3 ends ``main`` on an exception a handler
    lets out)."""
    name = handler.__name__

    def failed(e: Exception) -> pyfuse3.FUSEError:
        if isinstance(e, SnapfsError):
            log.error("%s", e)
        else:
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


# Every request handler the class defines (a name pyfuse3.Operations knows), wrapped once
# here rather than by a decorator on each; the EROFS ones raise nothing else.
for _name, _handler in list(vars(SnapshotOperations).items()):
    if not _name.startswith("_") and hasattr(pyfuse3.Operations, _name) and _handler is not _erofs:
        setattr(SnapshotOperations, _name, _serving(_handler))
