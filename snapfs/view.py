"""The read-only namespace a mount shows: one snapshot's tree, or the whole repository laid
out as ``snapshots/<time>_<id8>/``, ``latest``, ``tags/<tag>/`` and ``hosts/<host>/``.

An item is either a Node of a snapshot (loaded lazily, one tree blob per directory) or a
VirtualDir made here. Virtual directories are updated in place when the snapshot list changes,
so an inode that points at one stays valid.
"""

from __future__ import annotations

import bisect
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from snapfs.buffers import Data
from snapfs.index import IndexEntry
from snapfs.snapshot import Snapshot, sort_by_time
from snapfs.tree import DIR, SYMLINK, Node, Tree

_REFRESH_SECONDS = 10.0


class ViewSource(Protocol):
    def snapshots(self) -> list[Snapshot]: ...
    def load_tree(self, tree_id: bytes) -> Tree: ...
    def tree_if_cached(self, tree_id: bytes) -> Tree | None: ...
    def blob_entry(self, blob_id: bytes) -> IndexEntry: ...
    def read_blob_group(self, ids: Iterable[bytes]) -> dict[bytes, Data]: ...


@dataclass(eq=False)
class VirtualDir:
    node: Node
    entries: dict[bytes, Item] = field(default_factory=dict)


Item = Node | VirtualDir


def node_of(item: Item) -> Node:
    return item.node if isinstance(item, VirtualDir) else item


def snapshot_dir_name(snap: Snapshot) -> str:
    """``2026-11-24T10:15:00_1a2b3c4d``: local time to the second, then the short id."""
    return f"{snap.datetime.astimezone().strftime('%Y-%m-%dT%H:%M:%S')}_{snap.short_id}"


def _dir_node(name: bytes, mtime_ns: int, subtree: bytes | None = None) -> Node:
    mode = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    return Node(name=name, type=DIR, mode=mode, uid=0, gid=0, user="", group="",
                mtime_ns=mtime_ns, ctime_ns=mtime_ns, subtree=subtree)  # fmt: skip


def _link_node(name: bytes, target: str, mtime_ns: int) -> Node:
    raw = target.encode()
    return Node(name=name, type=SYMLINK, mode=0o777, uid=0, gid=0, user="", group="",
                mtime_ns=mtime_ns, ctime_ns=mtime_ns, size=len(raw), target=raw)  # fmt: skip


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


def snapshot_root(snap: Snapshot, name: str = "") -> Node:
    """The directory node standing for a snapshot's root tree."""
    return _dir_node(name.encode(), _ns(snap.datetime), bytes.fromhex(snap.tree))


def repository_layout(snaps: list[Snapshot]) -> VirtualDir:
    """The whole-repository tree, built from the snapshot list alone (no tree is read)."""
    ordered = sort_by_time(snaps)
    now = time.time_ns()
    newest = _ns(ordered[-1].datetime) if ordered else now
    root = VirtualDir(_dir_node(b"", newest))
    by_time = VirtualDir(_dir_node(b"snapshots", newest))
    tags = VirtualDir(_dir_node(b"tags", newest))
    hosts = VirtualDir(_dir_node(b"hosts", newest))
    root.entries.update({b"snapshots": by_time, b"tags": tags, b"hosts": hosts})
    for snap in ordered:
        name = snapshot_dir_name(snap)
        by_time.entries[name.encode()] = snapshot_root(snap, name)
        when = _ns(snap.datetime)
        for tag in snap.tags:
            _group(tags, tag, when).entries[name.encode()] = _link_node(
                name.encode(), f"../../snapshots/{name}", when
            )
        _group(hosts, snap.host, when).entries[name.encode()] = _link_node(
            name.encode(), f"../../snapshots/{name}", when
        )
    if ordered:
        latest = snapshot_dir_name(ordered[-1])
        root.entries[b"latest"] = _link_node(b"latest", f"snapshots/{latest}", newest)
    return root


def _group(parent: VirtualDir, name: str, when: int) -> VirtualDir:
    key = name.replace("/", "_").encode("utf-8", "surrogateescape") or b"_"
    group = parent.entries.get(key)
    if not isinstance(group, VirtualDir):
        group = parent.entries[key] = VirtualDir(_dir_node(key, when))
    return group


def _merge(old: VirtualDir, new: VirtualDir) -> None:
    """Make ``old`` show what ``new`` shows, keeping the VirtualDir objects that exist in both."""
    for name, item in new.entries.items():
        before = old.entries.get(name)
        if isinstance(item, VirtualDir) and isinstance(before, VirtualDir):
            _merge(before, item)
            new.entries[name] = before
    old.node, old.entries = new.node, new.entries


class View:
    """What a mount shows. ``snapshot`` given: that snapshot at the root; else the layout."""

    def __init__(self, repo: ViewSource, snapshot: Snapshot | None = None) -> None:
        self._repo = repo
        self.single = snapshot is not None
        if snapshot is not None:
            self.root: Item = snapshot_root(snapshot)
        else:
            self.root = repository_layout(repo.snapshots())
        self._refreshed = time.monotonic()

    @property
    def stale(self) -> bool:
        """Whether the snapshot list is due to be read again (the whole-repository layout)."""
        return not self.single and time.monotonic() - self._refreshed >= _REFRESH_SECONDS

    def refresh(self) -> None:
        """Re-read the snapshot list when it may be stale, updating the layout in place."""
        if not self.stale:
            return
        self._refreshed = time.monotonic()
        assert isinstance(self.root, VirtualDir)
        _merge(self.root, repository_layout(self._repo.snapshots()))

    def children(self, item: Item) -> list[Item]:
        """The entries of a directory, sorted by name as bytes."""
        if isinstance(item, VirtualDir):
            return [item.entries[name] for name in sorted(item.entries)]
        if item.type != DIR or item.subtree is None:
            return []
        return list(self._repo.load_tree(item.subtree).nodes)

    def child(self, item: Item, name: bytes) -> Item | None:
        if isinstance(item, VirtualDir):
            return item.entries.get(name)
        if item.type != DIR or item.subtree is None:
            return None
        return self._repo.load_tree(item.subtree).find(name)

    def ready(self, item: Item) -> bool:
        """Whether ``children`` and ``child`` of ``item`` answer without I/O."""
        if isinstance(item, VirtualDir) or item.subtree is None:
            return True
        return self._repo.tree_if_cached(item.subtree) is not None

    def position(self, parent: Item, name: bytes) -> tuple[int, list[Node]]:
        """Where ``name`` stands among its siblings, and the siblings, when the parent's tree
        is decoded already; (-1, []) otherwise. For guessing what a reader opens next."""
        if isinstance(parent, VirtualDir) or parent.subtree is None:
            return -1, []
        tree = self._repo.tree_if_cached(parent.subtree)
        if tree is None:
            return -1, []
        nodes = tree.nodes
        at = bisect.bisect_left(nodes, name, key=lambda n: n.name)
        return (at, nodes) if at < len(nodes) and nodes[at].name == name else (-1, [])

    def chunk_starts(self, node: Node) -> list[int]:
        """Offset of each chunk of a file, then its size: ``starts[i]`` to ``starts[i+1]``.
        A backup records as the size the bytes it chunked, so the last chunk needs no lookup
        (and a file of one chunk none)."""
        starts = [0]
        for blob_id in node.content[:-1]:
            starts.append(starts[-1] + self._repo.blob_entry(blob_id).raw_length)
        if node.content:
            starts.append(node.size)
        return starts

    def read_chunks(self, ids: list[bytes]) -> dict[bytes, Data]:
        """Chunks by id, neighbours in a pack read with one range read."""
        return self._repo.read_blob_group(ids)


def chunk_at(starts: list[int], offset: int) -> int:
    """Index of the chunk holding byte ``offset``."""
    return bisect.bisect_right(starts, offset) - 1
