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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from snapfs.buffers import Data
from snapfs.errors import IntegrityError
from snapfs.index import IndexEntry
from snapfs.snapshot import NO_FILTER, Snapshot, SnapshotFilter, filter_snapshots, sort_by_time
from snapfs.tableview import MovedMetadata, moved_tables
from snapfs.tree import DIR, SYMLINK, Node, Tree

_REFRESH_SECONDS = 10.0
_PRELOAD_RAW = 1 << 20  # about 10,000 entries


class ViewSource(Protocol):
    def snapshots(self) -> list[Snapshot]: ...
    def load_tree(self, tree_id: bytes) -> Tree: ...
    def tree_if_cached(self, tree_id: bytes) -> Tree | None: ...
    def tree_entry(self, tree_id: bytes) -> IndexEntry: ...
    def blob_entry(self, blob_id: bytes) -> IndexEntry: ...
    def read_blob_group(
        self,
        ids: Iterable[bytes],
        on_damaged: Callable[[bytes, IntegrityError], None] | None = None,
    ) -> dict[bytes, Data]: ...


@dataclass(eq=False)
class VirtualDir:
    node: Node
    entries: dict[bytes, Item] = field(default_factory=dict)
    # Each name ever shown here keeps one number (1, 2, ...) for the life of the view,
    # whatever the snapshot list does meanwhile: inode numbers are made from it.
    _numbers: dict[bytes, int] = field(default_factory=dict)
    _names: list[bytes] = field(default_factory=list)

    def number(self, name: bytes) -> int:
        found = self._numbers.get(name)
        if found is None:
            self._names.append(name)
            found = self._numbers[name] = len(self._names)
        return found

    def named(self, number: int) -> Item | None:
        """The entry that ``number`` stands for, while it is still shown."""
        if not 0 < number <= len(self._names):
            return None
        return self.entries.get(self._names[number - 1])


Item = Node | VirtualDir
# What a directory's entries come from: a tree id of a snapshot, or a virtual directory.
Source = bytes | VirtualDir


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

    def __init__(
        self,
        repo: ViewSource,
        snapshot: Snapshot | None = None,
        snapshot_filter: SnapshotFilter = NO_FILTER,
        *,
        mounted_at: str | None = None,
    ) -> None:
        """The layout shows only the snapshots that pass ``snapshot_filter``. A snapshot
        ``mounted_at`` a directory shows its pinned Iceberg tables moved there (tableview)."""
        self._repo = repo
        self._filter = snapshot_filter
        self.single = snapshot is not None
        self._moved: dict[bytes, MovedMetadata] = {}
        if snapshot is not None:
            self.root: Item = snapshot_root(snapshot)
            if mounted_at is not None and snapshot.tables:
                self._moved = moved_tables(repo, snapshot, mounted_at)
        else:
            self.root = repository_layout(self._snapshots())
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
        _merge(self.root, repository_layout(self._snapshots()))

    def _snapshots(self) -> list[Snapshot]:
        return filter_snapshots(self._repo.snapshots(), self._filter)

    def preload(self, tree_id: bytes) -> bool:
        """Decode a tree into the repository's LRU to have it ready, unless it is big:
        decoding ahead is a guess, and a guess must cost little (a crafted tree of millions
        of entries is decoded only when someone opens it). Whether it was decoded."""
        if self._repo.tree_entry(tree_id).raw_length > _PRELOAD_RAW:
            return False
        self._repo.load_tree(tree_id)
        return True

    def ready(self, source: Source) -> bool:
        """Whether ``listing``, ``find`` and ``at`` of ``source`` answer without I/O (a
        moved table's metadata may have to be read first)."""
        if isinstance(source, VirtualDir):
            return True
        return source not in self._moved and self._repo.tree_if_cached(source) is not None

    def moves(self, source: Source) -> bool:
        """Whether ``source`` is a moved table's metadata (``contents`` may differ)."""
        return isinstance(source, bytes) and source in self._moved

    def contents(self, source: Source, node: Node) -> bytes | None:
        """What the file ``node`` of directory ``source`` reads as when it is not its
        stored chunks (a moved table's metadata file); else None."""
        moved = self._moved.get(source) if isinstance(source, bytes) else None
        return None if moved is None else moved.contents(node)

    def listing(self, source: Source) -> tuple[list[Item], list[int] | None]:
        """A directory's entries sorted by name as bytes, and their slots (None: the
        entry at ``i`` has slot ``i + 1``, as in a tree)."""
        if isinstance(source, VirtualDir):
            names = sorted(source.entries)
            return [source.entries[n] for n in names], [source.number(n) for n in names]
        if (moved := self._moved.get(source)) is not None:
            return list(moved.nodes()), None
        return list(self._repo.load_tree(source).nodes), None

    def find(self, source: Source, name: bytes) -> tuple[int, Item] | None:
        """The entry called ``name`` and its slot; None when there is none."""
        if isinstance(source, VirtualDir):
            item = source.entries.get(name)
            return None if item is None else (source.number(name), item)
        if (moved := self._moved.get(source)) is not None:
            at = moved.index_of(name)
            return None if at < 0 else (at + 1, moved.node(at))
        tree = self._repo.load_tree(source)
        at = tree.index_of(name)
        return None if at < 0 else (at + 1, tree.nodes[at])

    def at(self, source: Source, slot: int) -> Item | None:
        """The entry at ``slot``; None when there is none (any more)."""
        if isinstance(source, VirtualDir):
            return source.named(slot)
        if (moved := self._moved.get(source)) is not None:
            return moved.node(slot - 1) if 0 < slot <= len(moved) else None
        nodes = self._repo.load_tree(source).nodes
        return nodes[slot - 1] if 0 < slot <= len(nodes) else None

    def decoded(self, source: Source) -> list[Node] | None:
        """A snapshot directory's nodes when its tree is decoded already; else None (and
        for a virtual directory). For guessing what a reader opens next."""
        if isinstance(source, VirtualDir):
            return None
        if (moved := self._moved.get(source)) is not None and not moved.as_stored:
            return None
        tree = self._repo.tree_if_cached(source)
        return None if tree is None else tree.nodes

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

    def read_chunks(self, ids: list[bytes]) -> dict[bytes, Data | IntegrityError]:
        """Chunks by id, neighbours in a pack read with one range read; a damaged or missing
        chunk maps to its error, so that its neighbours still read."""
        out: dict[bytes, Data | IntegrityError] = {}
        out.update(self._repo.read_blob_group(ids, out.__setitem__))
        return out


def chunk_at(starts: list[int], offset: int) -> int:
    """Index of the chunk holding byte ``offset``."""
    return bisect.bisect_right(starts, offset) - 1
