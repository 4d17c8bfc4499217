"""Heal: the plaintext of blobs a repository lost, read from a replica of it (a repository
kept by ``snapfs copy``, in either direction).

Blob ids are keyed per repository, so a lost blob cannot be looked up in the replica by its
id: it is found by where the repository's own snapshots use it. A snapshot and its copy
share an original (``snapshot.original_id``), and a copy keeps every path, every node's
metadata and every file's chunk boundaries; so the blob at (path, chunk i) of a snapshot is
the replica's at the same path and position in the paired snapshot. When the chunks do not
line up (a replica that backed the same file up with its own chunker), the same byte range
of the replica's file is read instead (the lost blob's offset and length are the index's:
a damaged or missing pack's blobs are still indexed, so re-chunking the replica's file is
never needed). A lost tree is the replica's tree at that path with every id translated
into the repository's (its blobs read and named with the repository's key). Whatever
comes from the replica is trusted only once its plaintext hashes, with the repository's
key, to the lost blob's id: a replica cannot plant anything.

Memory: the places of the lost blobs, the trees healed, and the replica-to-repository ids
of the trees translated. Time: each round walks the repository's paired snapshots, each
tree once, so healing costs one pass over the trees however few blobs are lost.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass

import msgspec

from snapfs.buffers import Data
from snapfs.errors import IntegrityError, PathNotFound, SnapfsError
from snapfs.index import IndexEntry
from snapfs.pack import BlobKind
from snapfs.repository import Repository
from snapfs.snapshot import Snapshot, original_id
from snapfs.tree import DIR, FILE, Node, Tree, decode_tree, encode_tree, validate
from snapfs.walk import bottom_up, join, resolve, shown_path

_PLACES_KEPT = 4  # places tried for one lost blob: more only repeat what failed
Healed = tuple[BlobKind, Data]  # a lost blob's kind and plaintext
_ROUNDS = 64  # a healed tree may show lost trees below it: one level a round


@dataclass(frozen=True)
class _Place:
    """Where a snapshot of the repository uses a lost blob: the file node and its chunk
    ``index``, or (``node`` None) the directory whose tree it is."""

    snap: Snapshot
    path: bytes
    node: Node | None = None
    index: int = 0


class Healer:
    """The plaintext of lost blobs of ``repo``, from ``replica``, for the snapshots
    ``snapshots`` of ``repo`` (default: all). Thread-safe: one heal at a time."""

    def __init__(
        self, repo: Repository, replica: Repository, snapshots: list[Snapshot] | None = None
    ) -> None:
        self.repo, self.replica = repo, replica
        self._snapshots = snapshots
        self._pairs: dict[str, list[Snapshot]] | None = None
        self._trees: dict[bytes, Data] = {}  # healed trees: repository id -> plaintext
        self._translated: dict[bytes, bytes] = {}  # replica tree id -> repository's
        self._lock = threading.Lock()

    def lock(self) -> AbstractContextManager[object]:
        return self.replica.lock("read")

    def heal(self, wanted: Iterable[bytes]) -> tuple[dict[bytes, Healed], dict[bytes, str]]:
        """(healed: id -> (kind, plaintext), lost: id -> why not) for the ids of ``wanted``."""
        with self._lock:
            todo = set(wanted)
            healed: dict[bytes, Healed] = {}
            lost: dict[bytes, str] = {}
            for _round in range(_ROUNDS):
                places = self._locate(todo)
                progress = False
                for blob_id, where in places.items():
                    found = self._from_replica(blob_id, where)
                    if isinstance(found, str):
                        lost[blob_id] = found
                        continue
                    healed[blob_id] = found
                    lost.pop(blob_id, None)
                    if found[0] == BlobKind.TREE:
                        self._trees[blob_id] = found[1]
                        progress = True  # what lies below it can now be found
                todo -= set(healed)
                if not progress or not todo:
                    break
            for blob_id in todo:
                lost.setdefault(blob_id, "no snapshot uses it")
            return healed, lost

    def tree(self, tree_id: bytes) -> Tree | None:
        """A tree this healer healed, decoded, or None."""
        data = self._trees.get(tree_id)
        return None if data is None else validate(decode_tree(data))

    # -- where the repository uses them --------------------------------------------------
    def _paired(self) -> dict[str, list[Snapshot]]:
        if self._pairs is None:
            pairs: dict[str, list[Snapshot]] = defaultdict(list)
            for snap in self.replica.snapshots():
                pairs[original_id(snap)].append(snap)
            self._pairs = dict(pairs)
        return self._pairs

    def _load(self, tree_id: bytes) -> Tree | None:
        healed = self.tree(tree_id)
        if healed is not None:
            return healed
        try:
            return self.repo.load_tree(tree_id)
        except IntegrityError:
            return None

    def _locate(self, wanted: set[bytes]) -> dict[bytes, list[_Place]]:
        """Up to _PLACES_KEPT places of each wanted blob in the snapshots that have a
        pair in the replica; each tree walked once."""
        places: dict[bytes, list[_Place]] = defaultdict(list)
        snaps = self.repo.snapshots() if self._snapshots is None else self._snapshots
        pairs = self._paired()
        seen: set[bytes] = set()

        def note(blob_id: bytes, place: _Place) -> None:
            if len(places[blob_id]) < _PLACES_KEPT:
                places[blob_id].append(place)

        for snap in snaps:
            if original_id(snap) not in pairs:
                continue
            stack = [(bytes.fromhex(snap.tree), b"")]
            while stack:
                tid, path = stack.pop()
                if tid in seen:
                    continue
                seen.add(tid)
                if tid in wanted:
                    note(tid, _Place(snap, path))
                tree = self._load(tid)
                if tree is None:
                    continue
                for node in tree.nodes:
                    where = join(path, node.name)
                    if node.subtree is not None:
                        stack.append((node.subtree, where))
                    for i, blob_id in enumerate(node.content):
                        if blob_id in wanted:
                            note(blob_id, _Place(snap, where, node, i))
        return places

    # -- what the replica holds there ----------------------------------------------------
    def _from_replica(self, blob_id: bytes, places: list[_Place]) -> Healed | str:
        why = "not in the replica"
        for place in places:
            for other in self._paired()[original_id(place.snap)]:
                data: Data | None
                try:
                    if place.node is None:
                        data = self._tree_from(other, place.path)
                        kind = BlobKind.TREE
                    else:
                        data = self._chunk_from(other, place, blob_id)
                        kind = BlobKind.DATA
                except (SnapfsError, msgspec.MsgspecError) as e:
                    why = f"the replica's {shown_path(place.path)}: {e}"
                    continue
                if data is not None and self.repo.key.blob_id(data) == blob_id:
                    return kind, data
                why = f"the replica's {shown_path(place.path)} differs"
        return why

    def _chunk_from(self, other: Snapshot, place: _Place, blob_id: bytes) -> Data | None:
        assert place.node is not None
        node = resolve(self.replica, bytes.fromhex(other.tree), place.path)
        if node is None or node.type != FILE or node.size != place.node.size:
            return None
        if len(node.content) == len(place.node.content):  # a copy: the chunks line up
            data = self.replica.read_blob(node.content[place.index])
            if self.repo.key.blob_id(data) == blob_id:
                return data
        span = self._span(place.node, place.index)
        return None if span is None else self._range(node, *span)

    def _span(self, node: Node, index: int) -> tuple[int, int] | None:
        """(offset, length) of chunk ``index`` of ``node`` in the file, as far as the
        repository's index knows the lengths (a lost blob is still indexed, unless the
        index lost it too)."""
        offset = 0
        try:
            for blob_id in node.content[:index]:
                offset += self.repo.blob_entry(blob_id).raw_length
            return offset, self.repo.blob_entry(node.content[index]).raw_length
        except IntegrityError:
            return None

    def _range(self, node: Node, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of the replica's file ``node``: only its chunks
        that cover them are read."""
        out = bytearray()
        at = 0
        for blob_id in node.content:
            size = self.replica.blob_entry(blob_id).raw_length
            if at + size > offset and at < offset + length:
                data = self.replica.read_blob(blob_id)
                out += data[max(0, offset - at) : offset + length - at]
            at += size
            if at >= offset + length:
                break
        return bytes(out)

    def _tree_from(self, other: Snapshot, path: bytes) -> bytes:
        """The replica's tree at ``path`` in ``other``, encoded with the repository's ids."""
        root = bytes.fromhex(other.tree)
        if path:
            node = resolve(self.replica, root, path)
            if node is None or node.type != DIR or node.subtree is None:
                raise PathNotFound("not a directory")
            root = node.subtree
        return self._translate(root)

    def _translate(self, root: bytes) -> bytes:
        """Replica tree ``root`` re-encoded with the repository's ids, bottom-up without
        recursion; every subtree's id is remembered, for the next lost tree."""
        out = b""

        def visit(tid: bytes, nodes: list[Node]) -> None:
            nonlocal out
            data = encode_tree([self._node(n) for n in nodes])
            self._translated[tid] = self.repo.key.blob_id(data)
            if tid == root:
                out = data

        bottom_up(root, lambda t: self.replica.load_tree(t).nodes, self._translated, visit,
                  root_again=True)  # fmt: skip
        return out

    def _node(self, node: Node) -> Node:
        if node.subtree is not None:
            return msgspec.structs.replace(node, subtree=self._translated[node.subtree])
        if node.content:
            ids = [self.repo.key.blob_id(self.replica.read_blob(c)) for c in node.content]
            return msgspec.structs.replace(node, content=ids)
        return node


class ReplicaReads:
    """A repository as restore reads it (restore.RestoreSource), with what it cannot read
    read from a replica through ``healer`` instead: a tree that does not load, blobs
    that are damaged or missing. What the replica lacks too is reported as before."""

    def __init__(self, repo: Repository, healer: Healer) -> None:
        self.repo, self.healer = repo, healer
        self.key = repo.key
        self.healed = 0  # blobs read from the replica

    def lock(self, kind: str) -> AbstractContextManager[object]:
        stack = ExitStack()
        stack.enter_context(self.repo.lock(kind))
        stack.enter_context(self.healer.lock())
        return stack

    def load_tree(self, tree_id: bytes, *, keep: bool = True) -> Tree:
        try:
            return self.repo.load_tree(tree_id, keep=keep)
        except IntegrityError:
            tree = self.healer.tree(tree_id)
            if tree is not None:
                return tree
            healed, _lost = self.healer.heal([tree_id])
            if tree_id not in healed:
                raise
            self.healed += 1
            tree = self.healer.tree(tree_id)
            assert tree is not None
            return tree

    def blob_entry(self, blob_id: bytes) -> IndexEntry:
        return self.repo.blob_entry(blob_id)

    def read_blob_ranges(
        self,
        ids: Iterable[bytes],
        consume: Callable[[Iterator[tuple[bytes, Data]]], None],
        threads: int | None = None,
        *,
        on_damaged: Callable[[bytes, IntegrityError], None] | None = None,
        known: Mapping[bytes, IndexEntry] | None = None,
    ) -> None:
        """The repository's reads, then, for what they could not give, the replica's."""
        lost: dict[bytes, IntegrityError] = {}
        lock = threading.Lock()

        def note(blob_id: bytes, error: IntegrityError) -> None:
            with lock:
                lost[blob_id] = error

        self.repo.read_blob_ranges(ids, consume, threads, on_damaged=note, known=known)
        if not lost:
            return
        healed, _why = self.healer.heal(lost)
        self.healed += len(healed)
        consume(iter((blob_id, data) for blob_id, (_kind, data) in healed.items()))
        for blob_id, error in lost.items():
            if blob_id not in healed:
                if on_damaged is None:
                    raise error
                on_damaged(blob_id, error)
