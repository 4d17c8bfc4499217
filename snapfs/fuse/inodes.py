"""Inode numbers for view items: stable for the life of a mount, shared by hardlinks,
counted by lookups and released on ``forget``.

A number is derived from what names the item, as restic's mount does: a hash of (parent
inode, name), or for a hardlinked file of (snapshot, device, inode), so the same item always
gets it back and nothing is kept for items the kernel has forgotten. The table holds only the
live inodes (those the kernel holds a lookup on): memory follows the kernel's inode cache,
which the kernel shrinks under memory pressure, sending ``forget``.

Two live items whose hashes meet (at a million live items, about one chance in 10^7) are
told apart by probing: the later one gets the next free number of its probe sequence, and
keeps it for the life of the mount (``_moved``, which holds only such rare items).
"""

from __future__ import annotations

from dataclasses import dataclass

from snapfs.tree import DIR, Node
from snapfs.view import Item, VirtualDir, node_of

ROOT_INODE = 1
_MASK = (1 << 64) - 1

_Key = tuple[object, ...]


@dataclass(slots=True)
class Inode:
    item: Item
    parent: int
    snapshot: int  # the inode of the snapshot root it lies in; 0 in the virtual layout
    lookups: int = 0


class InodeTable:
    """Not thread-safe: the trio loop alone calls it."""

    def __init__(self, root: Item, *, single_snapshot: bool) -> None:
        self._inodes: dict[int, Inode] = {
            ROOT_INODE: Inode(root, ROOT_INODE, ROOT_INODE if single_snapshot else 0, 1)
        }
        self._moved: dict[_Key, int] = {}

    def __len__(self) -> int:
        return len(self._inodes)

    def get(self, ino: int) -> Inode:
        """The live inode; KeyError if the kernel asks for one it has forgotten."""
        return self._inodes[ino]

    def child(self, parent: int, item: Item) -> int:
        """The inode number of ``item`` in directory ``parent``, made live. Counts no lookup."""
        up = self._inodes[parent]
        node = node_of(item)
        snapshot = up.snapshot
        if not snapshot and not isinstance(item, VirtualDir) and node.subtree is not None:
            snapshot = -1  # a snapshot root in the layout: it is its own snapshot
        key = _key(parent, snapshot, node)
        ino = self._number(key)
        live = self._inodes.get(ino)
        if live is None:
            self._inodes[ino] = Inode(item, parent, ino if snapshot == -1 else snapshot)
        elif isinstance(item, VirtualDir) or live.item is not item:
            live.item = item
        return ino

    def _number(self, key: _Key) -> int:
        moved = self._moved.get(key)
        if moved is not None:
            return moved
        probe = 0
        while True:
            ino = hash(key if probe == 0 else (key, probe)) & _MASK
            live = self._inodes.get(ino)
            if ino > ROOT_INODE and (live is None or _key_of(live) == key):
                if probe:
                    self._moved[key] = ino
                return ino
            probe += 1

    def remember(self, ino: int, count: int = 1) -> None:
        self._inodes[ino].lookups += count

    def forget(self, ino: int, count: int) -> bool:
        """Drop ``count`` lookups; True when that made the kernel let go of the inode."""
        inode = self._inodes.get(ino)
        if inode is None or ino == ROOT_INODE:
            return False
        inode.lookups -= count
        if inode.lookups <= 0:
            del self._inodes[ino]
            return True
        return False


def _key_of(inode: Inode) -> _Key:
    return _key(inode.parent, inode.snapshot, node_of(inode.item))


def _key(parent: int, snapshot: int, node: Node) -> _Key:
    """What names an item: hardlinks of one snapshot are one item wherever they appear."""
    if snapshot > 0 and node.type != DIR and node.links > 1 and node.inode:
        return ("link", snapshot, node.device, node.inode)
    return (parent, node.name)
