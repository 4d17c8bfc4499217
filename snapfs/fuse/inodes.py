"""Inode numbers for view items: stable for the life of a mount, shared by hardlinks,
counted by lookups and released on ``forget``.

A number, once given to a (parent, name), is never given to anything else, and the same
(parent, name) always gets it back: the small key maps stay after ``forget``; the item itself
(a Node, possibly with a long content list) is dropped when the kernel lets go of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapfs.tree import DIR
from snapfs.view import Item, VirtualDir, node_of

ROOT_INODE = 1


@dataclass(slots=True)
class Inode:
    item: Item
    parent: int
    snapshot: int  # the inode of the snapshot root it lies in; 0 in the virtual layout
    lookups: int = 0


class InodeTable:
    def __init__(self, root: Item, *, single_snapshot: bool) -> None:
        self._inodes: dict[int, Inode] = {
            ROOT_INODE: Inode(root, ROOT_INODE, ROOT_INODE if single_snapshot else 0, 1)
        }
        self._by_name: dict[tuple[int, bytes], int] = {}
        self._by_link: dict[tuple[int, int, int], int] = {}
        self._next = ROOT_INODE + 1

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
        ino = self._number(parent, snapshot, item)
        live = self._inodes.get(ino)
        if live is None:
            self._inodes[ino] = Inode(item, parent, ino if snapshot == -1 else snapshot)
        elif isinstance(item, VirtualDir) or live.item is not item:
            live.item = item
        return ino

    def _number(self, parent: int, snapshot: int, item: Item) -> int:
        node = node_of(item)
        name_key = (parent, node.name)
        ino = self._by_name.get(name_key)
        if ino is not None:
            return ino
        link_key = (snapshot, node.device, node.inode)
        hardlinked = snapshot > 0 and node.type != DIR and node.links > 1 and node.inode
        if hardlinked and link_key in self._by_link:
            ino = self._by_link[link_key]
        else:
            ino, self._next = self._next, self._next + 1
            if hardlinked:
                self._by_link[link_key] = ino
        self._by_name[name_key] = ino
        return ino

    def remember(self, ino: int, count: int = 1) -> None:
        self._inodes[ino].lookups += count

    def forget(self, ino: int, count: int) -> None:
        inode = self._inodes.get(ino)
        if inode is None or ino == ROOT_INODE:
            return
        inode.lookups -= count
        if inode.lookups <= 0:
            del self._inodes[ino]
