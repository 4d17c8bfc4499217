"""Copy snapshots into another repository (restic's ``copy``).

Blob ids are keyed per repository, so a blob's id in the destination is known only once its
plaintext has been read: every blob a snapshot needs is read from the source (verified on
the way), named with the destination's key and stored unless the destination has it, and
every tree is rewritten with the new ids. A copy records the id of its ``original``, so
copying again skips it; and the pairs (original, copy) already there tell the new ids of
their blobs without reading them, so a nightly copy reads only what changed since the last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgspec

from snapfs.buffers import Data
from snapfs.events import BytesDone, EventHandler, FileDone, Planned, ignore
from snapfs.pack import BlobKind
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot, find_parent, sort_by_time
from snapfs.tree import DIR, Node


@dataclass(frozen=True)
class Copied:
    original: Snapshot
    copy: Snapshot
    existed: bool  # the destination had this copy before the run


@dataclass(frozen=True)
class CopyResult:
    copied: list[Copied]
    bytes_read: int  # plaintext read from the source
    blobs_added: int
    stored_bytes: int


def original_id(snap: Snapshot) -> str:
    """The id of the snapshot a backup made: a copy of a copy still names the first."""
    return snap.original or snap.id


def copy_snapshots(
    source: Repository,
    dest: Repository,
    choose: Callable[[list[Snapshot]], list[Snapshot]] = list,
    *,
    on_event: EventHandler = ignore,
) -> CopyResult:
    """Copy the snapshots ``choose`` picks from the source's (all, by default) into
    ``dest``, oldest first; those ``dest`` holds a copy of already are left alone. Each copy
    is saved as soon as it is complete."""
    with source.lock("read"), dest.lock("backup"), dest.writer() as writer:
        everything = source.snapshots()  # read once: the choice and the earlier copies
        snaps = choose(everything)
        present = {original_id(s): s for s in dest.snapshots()}
        todo = [s for s in sort_by_time(snaps) if original_id(s) not in present]
        on_event(Planned(sum(s.summary.files for s in todo), sum(s.summary.bytes for s in todo)))
        ids = _Translation(source, dest, writer, on_event)
        done: list[Copied] = []
        for snap in sort_by_time(snaps):
            copy = present.get(original_id(snap))
            if copy is not None:
                done.append(Copied(snap, copy, existed=True))
                continue
            ids.learn(_copy_of_parent(snap, everything, present))
            copy = msgspec.structs.replace(
                snap, tree=ids.tree(bytes.fromhex(snap.tree)).hex(), parent=None,
                original=original_id(snap), id="",
            )  # fmt: skip
            copy = present[original_id(snap)] = writer.save_snapshot(copy)
            done.append(Copied(snap, copy, existed=False))
        return CopyResult(done, ids.bytes_read, writer.blobs_added, writer.stored_bytes)


def _copy_of_parent(
    snap: Snapshot, everything: list[Snapshot], present: dict[str, Snapshot]
) -> tuple[Snapshot, Snapshot] | None:
    """The newest (original, copy) pair of the same host and paths, whose blobs are likely
    ``snap``'s too."""
    copied = [s for s in everything if original_id(s) in present and s.id != snap.id]
    parent = find_parent(copied, snap.host, snap.paths)
    return (parent, present[original_id(parent)]) if parent else None


class _Translation:
    """Source ids to destination ids, for data blobs and trees, shared by every snapshot of
    a run."""

    def __init__(
        self, source: Repository, dest: Repository, writer: Writer, on_event: EventHandler
    ) -> None:
        self.source, self.dest, self.writer, self.emit = source, dest, writer, on_event
        self.blobs: dict[bytes, bytes] = {}
        self.trees: dict[bytes, bytes] = {}
        self.bytes_read = 0
        self._lock = threading.Lock()

    def learn(self, pair: tuple[Snapshot, Snapshot] | None) -> None:
        """Match the trees of an original and its copy, node by node: same names, same
        shape, so each blob of one pairs with the blob at the same place in the other."""
        if pair is None:
            return
        stack = [(bytes.fromhex(pair[0].tree), bytes.fromhex(pair[1].tree))]
        while stack:
            old, new = stack.pop()
            if old in self.trees:
                continue
            self.trees[old] = new
            theirs = {n.name: n for n in self.dest.load_tree(new).nodes}
            for node in self.source.load_tree(old).nodes:
                other = theirs.get(node.name)
                if other is None or other.type != node.type:
                    continue
                if node.subtree and other.subtree:
                    stack.append((node.subtree, other.subtree))
                elif len(node.content) == len(other.content):
                    self.blobs.update(zip(node.content, other.content, strict=True))

    def tree(self, tree_id: bytes) -> bytes:
        """The destination id of a source tree, stored with everything below it. The blobs
        no pair named are read first, all at once: small files of many directories share
        packs, and one plan reads each pack's share in few ranges."""
        missing = self._unknown_blobs(tree_id)
        if missing:
            self.source.read_blob_ranges(missing, self._store)
        return self._translate(tree_id)

    def _unknown_blobs(self, tree_id: bytes) -> list[bytes]:
        missing: dict[bytes, None] = {}
        stack, seen = [tree_id], set()
        while stack:
            tid = stack.pop()
            if tid in self.trees or tid in seen:
                continue
            seen.add(tid)
            for node in self.source.load_tree(tid).nodes:
                if node.subtree is not None:
                    stack.append(node.subtree)
                missing.update((c, None) for c in node.content if c not in self.blobs)
        return list(missing)

    def _translate(self, tree_id: bytes) -> bytes:
        done = self.trees.get(tree_id)
        if done is None:
            nodes = [self._node(n) for n in self.source.load_tree(tree_id).nodes]
            done = self.trees[tree_id] = self.writer.save_tree(nodes)
        return done

    def _node(self, node: Node) -> Node:
        if node.type == DIR and node.subtree is not None:
            return msgspec.structs.replace(node, subtree=self._translate(node.subtree))
        if node.content:
            self.emit(FileDone(node.display_name, node.size, 0))
            return msgspec.structs.replace(node, content=[self.blobs[c] for c in node.content])
        return node

    def _store(self, blobs: Iterator[tuple[bytes, Data]]) -> None:
        """On a read thread: name each blob with the destination's key and store it."""
        for old, data in blobs:
            new, _added = self.writer.add_blob(BlobKind.DATA, data)
            with self._lock:
                self.blobs[old] = new
                self.bytes_read += len(data)
            self.emit(BytesDone(len(data)))
