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
from snapfs.errors import IntegrityError
from snapfs.events import BytesDone, EventHandler, FileDone, Planned, ignore
from snapfs.pack import BlobKind
from snapfs.plans import claim_for
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot, find_parent, original_id, sort_by_time
from snapfs.tree import DIR, Node
from snapfs.walk import MAX_DEPTH, bottom_up, join, refuse_damaged, shown_path


@dataclass(frozen=True)
class Copied:
    original: Snapshot
    copy: Snapshot
    existed: bool  # the destination had this copy before the run


@dataclass(frozen=True)
class NotCopied:
    original: Snapshot
    error: str  # why: a damaged or missing blob or tree, or an entry validation refuses


@dataclass(frozen=True)
class CopyResult:
    copied: list[Copied]
    bytes_read: int  # plaintext read from the source
    blobs_added: int
    stored_bytes: int
    not_copied: list[NotCopied]


def copy_key(snap: Snapshot) -> tuple[object, ...]:
    """What a snapshot and its copy share, as restic's ``similarSnapshots`` compares (tree
    ids differ between repositories, being keyed): the original, the tags and the summary's
    counts, so a retagged or rewritten snapshot (same original) is copied again, as restic
    does, and a copy is paired (``learn``) only with what it was copied from."""
    s = snap.summary
    return (original_id(snap), tuple(snap.tags), s.files, s.dirs, s.bytes)


def copy_snapshots(
    source: Repository,
    dest: Repository,
    choose: Callable[[list[Snapshot]], list[Snapshot]] = list,
    *,
    on_event: EventHandler = ignore,
) -> CopyResult:
    """Copy the snapshots ``choose`` picks from the source's (all, by default) into
    ``dest``, oldest first; those ``dest`` holds a copy of already are left alone. Each copy
    is saved as soon as it is complete. A snapshot that cannot be copied whole is not
    copied, and the others still are: one with a damaged or missing blob or tree, or with an
    entry that tree validation refuses (a name such as '..', a duplicate, an unknown type,
    nesting past MAX_DEPTH); ``not_copied`` names each, and why (the first path or blob).
    What it added before the damage was found stays, stored and indexed: the next copy (or
    a later snapshot sharing it) uses it, and prune removes what nothing does."""
    with source.lock("read"), dest.lock("backup") as lock, dest.writer() as writer:
        everything = source.snapshots()  # read once: the choice and the earlier copies
        snaps = choose(everything)
        present = {copy_key(s): s for s in dest.snapshots()}
        todo = [s for s in sort_by_time(snaps) if copy_key(s) not in present]
        on_event(Planned(sum(s.summary.files for s in todo), sum(s.summary.bytes for s in todo)))
        ids = _Translation(source, dest, writer, on_event)
        done: list[Copied] = []
        failed: list[NotCopied] = []
        for snap in sort_by_time(snaps):
            copy = present.get(copy_key(snap))
            if copy is not None:
                done.append(Copied(snap, copy, existed=True))
                continue
            ids.learn(_copy_of_parent(snap, everything, present))
            try:
                tree = ids.tree(bytes.fromhex(snap.tree))
            except IntegrityError as e:
                failed.append(NotCopied(snap, str(e)))
                continue
            copy = msgspec.structs.replace(
                snap, tree=tree.hex(), parent=None, original=original_id(snap), id=""
            )
            copy = present[copy_key(snap)] = writer.save_snapshot(copy)
            claim_for(dest, lock.id, [copy])  # what a prune that ran meanwhile condemned
            done.append(Copied(snap, copy, existed=False))
        return CopyResult(done, ids.bytes_read, writer.blobs_added, writer.stored_bytes, failed)


def _copy_of_parent(
    snap: Snapshot, everything: list[Snapshot], present: dict[tuple[object, ...], Snapshot]
) -> tuple[Snapshot, Snapshot] | None:
    """The newest (original, copy) pair of the same host and paths, whose blobs are likely
    ``snap``'s too."""
    copied = [s for s in everything if copy_key(s) in present and s.id != snap.id]
    parent = find_parent(copied, snap.host, snap.paths, snap.source)
    return (parent, present[copy_key(parent)]) if parent else None


def _same_file(node: Node, other: Node) -> bool:
    """Whether ``other`` (in a copy) holds ``node``'s bytes as far as its metadata tells:
    a copy that names an original but was made otherwise (by hand, by another tool) must
    never lend its blobs to files that only share a name."""
    return (node.size, node.mtime_ns, len(node.content)) == (
        other.size, other.mtime_ns, len(other.content),
    )  # fmt: skip


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
                elif _same_file(node, other):
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
        """The data blobs below ``tree_id`` not translated yet; IntegrityError naming the
        first path whose tree validation refused something: a copy carries no such tree."""
        missing: dict[bytes, None] = {}
        stack: list[tuple[bytes, bytes, int]] = [(tree_id, b"", 0)]
        seen = set()
        while stack:
            tid, path, depth = stack.pop()
            if tid in self.trees or tid in seen:
                continue
            seen.add(tid)
            if depth > MAX_DEPTH:
                raise IntegrityError(f"{shown_path(path)}: nested deeper than {MAX_DEPTH} levels")
            tree = self.source.load_tree(tid)
            refuse_damaged(tree, path)
            for node in tree.nodes:
                if node.subtree is not None:
                    stack.append((node.subtree, join(path, node.name), depth + 1))
                missing.update((c, None) for c in node.content if c not in self.blobs)
        return list(missing)

    def _translate(self, tree_id: bytes) -> bytes:
        """The source's tree ``tree_id`` saved here, its subtrees first."""

        def visit(tid: bytes, nodes: list[Node]) -> None:
            self.trees[tid] = self.writer.save_tree([self._node(n) for n in nodes])

        bottom_up(tree_id, lambda t: self.source.load_tree(t).nodes, self.trees, visit)
        return self.trees[tree_id]

    def _node(self, node: Node) -> Node:
        if node.type == DIR and node.subtree is not None:
            return msgspec.structs.replace(node, subtree=self.trees[node.subtree])
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
