"""Inode numbers for view items: stable for the life of a mount, shared by hardlinks, and
decoded rather than remembered, so that a file the kernel holds costs this process nothing.

A number names where its item lies: ``directory id << 23 | slot``, the slot being the item's
place in its directory (its index in the tree, plus one; a virtual directory numbers its
names once and for all, ``VirtualDir.number``). The kernel asks again with the number alone,
so the item is found in the directory's tree, which the repository's bounded LRU holds or
reads again. Only live directories (those the kernel holds an inode in or below, found by
their lookup counts) have a record here: its id, its tree, and the count. A hardlinked file
of a snapshot is numbered from (snapshot, device, inode) instead, with the top bit set, so
all its names share one number; each live one keeps its node.

A directory's id is a hash of its own number (a link's, of its key), so the same directory
always gets it back. Two live ones whose hashes meet (40 bits: at 100,000 live directories,
about one chance in 200) are told apart by probing: the later one gets the next free id of
its probe sequence and keeps it for the life of the mount (``_moved``, rare items only).
"""

from __future__ import annotations

from dataclasses import dataclass

from snapfs.tree import DIR, Node
from snapfs.view import Item, VirtualDir, node_of

ROOT_INODE = 1
SLOT_BITS = 23  # a slot is at most MAX_TREE_ENTRIES (2^22)
SLOT_MASK = (1 << SLOT_BITS) - 1
_ID_BITS = 40
_LINK = 1 << 63
_ROOT_ID = 1
_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads numbers that differ in low bits

_Key = int | tuple[object, ...]


@dataclass(slots=True, eq=False)
class Dir:
    """A live directory. ``refs``: the kernel's lookups on it and on every item in it."""

    id: int
    ino: int
    parent: Dir | None
    source: bytes | VirtualDir  # its tree id, or the virtual directory itself
    snapshot: int  # id of the snapshot root it lies in; 0 in the virtual layout
    refs: int = 0
    # The order-of-opens guess (ops): position of the last open, siblings asked for below.
    walk: tuple[int, int] | None = None
    # Trees decoded ahead (ops): (entries scanned, slot whose opening queues the next ones)
    ahead: tuple[int, int] | None = None

    @property
    def layout(self) -> bool:
        """Whether its items are the virtual layout's (owned by the mounting user)."""
        return self.snapshot == 0


@dataclass(slots=True, eq=False)
class Link:
    """A live hardlinked file of a snapshot: one number for all its names."""

    node: Node
    key: _Key
    lookups: int = 0


class InodeTable:
    """Not thread-safe: the trio loop alone calls it."""

    def __init__(self, root: Item, *, single_snapshot: bool) -> None:
        source = root.subtree if isinstance(root, Node) else root
        assert source is not None
        self.root = Dir(_ROOT_ID, ROOT_INODE, None, source, _ROOT_ID if single_snapshot else 0, 1)
        self._dirs: dict[int, Dir] = {_ROOT_ID: self.root}  # by id
        self._dir_ids: dict[int, int] = {ROOT_INODE: _ROOT_ID}  # inode number -> id
        self._links: dict[int, Link] = {}
        self._moved: dict[_Key, int] = {}

    def __len__(self) -> int:
        """Live records: directories and hardlinked files (plain files have none)."""
        return len(self._dirs) + len(self._links)

    def dir(self, ino: int) -> Dir:
        """The live directory numbered ``ino``; KeyError when it is none (or forgotten)."""
        return self._dirs[self._dir_ids[ino]]

    def link(self, ino: int) -> Link | None:
        """The hardlinked file numbered ``ino``, or None when ``ino`` is not a link's number;
        KeyError when the kernel asks for one it has forgotten."""
        return self._links[ino] if ino & _LINK else None

    def place(self, ino: int) -> tuple[Dir, int]:
        """(the live directory an item lies in, its slot there); KeyError when ``ino``
        names no item of a live directory."""
        return self._dirs[ino >> SLOT_BITS], ino & SLOT_MASK

    def number(self, parent: Dir, slot: int, item: Item) -> int:
        """The inode number of ``item``, at ``slot`` of ``parent``, made live when it is a
        directory or a hardlinked file. Counts no lookup."""
        node = node_of(item)
        if parent.snapshot and node.type != DIR and node.links > 1 and node.inode:
            return self._link_number(("link", parent.snapshot, node.device, node.inode), node)
        ino = parent.id << SLOT_BITS | slot
        if node.type == DIR and ino not in self._dir_ids:
            self._add_dir(parent, ino, item)
        return ino

    def _add_dir(self, parent: Dir, ino: int, item: Item) -> None:
        if isinstance(item, VirtualDir):
            source: bytes | VirtualDir = item
        else:
            assert item.subtree is not None  # tree.validate: every directory has one
            source = item.subtree
        dir_id = self._free_id(ino, lambda live: live.ino == ino)
        # A snapshot root in the layout is its own snapshot (hardlinks do not cross it).
        root = parent.layout and not isinstance(item, VirtualDir)
        snapshot = dir_id if root else parent.snapshot
        self._dirs[dir_id] = Dir(dir_id, ino, parent, source, snapshot)
        self._dir_ids[ino] = dir_id

    def _link_number(self, key: _Key, node: Node) -> int:
        ino = _LINK | self._free_id(key, lambda live: live.key == key, links=True)
        if ino not in self._links:
            self._links[ino] = Link(node, key)
        return ino

    def _free_id(self, key: _Key, same: object, *, links: bool = False) -> int:
        """The id of ``key``: its hash unless a live record of another key holds it."""
        moved = self._moved.get(key)
        if moved is not None:
            return moved
        taken: dict[int, object] = self._links if links else self._dirs  # type: ignore[assignment]
        base = hash(key) if isinstance(key, tuple) else key
        probe = 0
        while True:
            mixed = ((base + probe) * _MIX) & ((1 << 64) - 1)
            found = mixed >> (64 - _ID_BITS)
            live = taken.get(_LINK | found if links else found)
            if found > _ROOT_ID and (live is None or same(live)):  # type: ignore[operator]
                if probe:
                    self._moved[key] = found
                return found
            probe += 1

    def remember(self, ino: int, count: int = 1) -> None:
        """The kernel took ``count`` lookups on ``ino``."""
        if ino & _LINK:
            self._links[ino].lookups += count
            return
        if ino == ROOT_INODE:
            return
        dir_id = self._dir_ids.get(ino)
        if dir_id is not None:
            self._dirs[dir_id].refs += count
        self._dirs[ino >> SLOT_BITS].refs += count

    def forget(self, ino: int, count: int) -> bool:
        """Drop ``count`` lookups; True when that made the kernel let go of a record."""
        if ino == ROOT_INODE:
            return False
        if ino & _LINK:
            link = self._links.get(ino)
            if link is None:
                return False
            link.lookups -= count
            if link.lookups <= 0:
                del self._links[ino]
                return True
            return False
        dropped = False
        dir_id = self._dir_ids.get(ino)
        if dir_id is not None:
            dropped = self._release(self._dirs[dir_id], count)
        parent = self._dirs.get(ino >> SLOT_BITS)
        if parent is not None:
            dropped = self._release(parent, count) or dropped
        return dropped

    def _release(self, d: Dir, count: int) -> bool:
        d.refs -= count
        if d.refs > 0 or d is self.root:
            return False
        del self._dirs[d.id]
        del self._dir_ids[d.ino]
        return True
