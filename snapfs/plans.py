"""Prune plans, and the condemned packs that a snapshot saved beside a marking still needs.

Phase 1 of prune (prune.py) unindexes the packs it condemns and leaves a plan naming them
and the backups it saw running; a later sweep deletes them. A backup that was running while
prune marked may name blobs of those packs (it deduplicated against them, or stored them
itself before the marking listed its packs), and its snapshot is saved after the marking
listed snapshots, so nothing reachable made them stay indexed. ``index_needed`` gives them
back: every condemned pack holding a blob such a snapshot uses, and that no indexed pack
holds, is indexed again from its own header, so the snapshot restores at once. Two calls
close the race between a writer saving snapshot S and prune saving plan P:

- the writer, after saving S and still holding its lock, runs it for the plans that wait
  for that lock (``claim_for``);
- prune, after saving P, runs it for the snapshots it did not mark (``mark`` in prune.py).

The writer saves S, then lists plans; prune saves P, then lists snapshots. So whichever
listing comes last sees the other's record. If prune's does, S is among the snapshots it did
not mark (had the marking seen S, S's blobs were reachable and nothing S needs is condemned).
If the writer's does, P waits for the writer: S needs condemned blobs only when the writer
loaded its index before the marking rewrote it, or had indexed its own packs before the
marking read the index; either way its lock, taken before that, was alive when P recorded
the live locks, and it is held until after this listing. (A writer that started later can
name such blobs only through its parent, a snapshot prune did not mark: prune's own listing
gives that parent's blobs back.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from snapfs.errors import IntegrityError
from snapfs.pack import PackEntry
from snapfs.repository import Repository
from snapfs.snapshot import Snapshot
from snapfs.tree import DIR, Tree, decode_tree, validate

PLANS = "prune"  # the records' prefix: prune/<id>


class Plan(msgspec.Struct, frozen=True):
    time: float
    condemned: list[str]
    waiting_for: list[str]
    forgotten: list[str] = []


def reachable_blobs(
    repo: Repository, snaps: list[Snapshot], load_tree: Callable[[bytes], Tree] | None = None
) -> set[bytes]:
    """Every tree and data blob that some snapshot uses (trees shared between snapshots
    are walked once)."""
    load = load_tree or repo.load_tree
    seen: set[bytes] = set()
    for snap in snaps:
        root = bytes.fromhex(snap.tree)
        if root in seen:
            continue
        seen.add(root)
        stack = [root]
        while stack:
            for node in load(stack.pop()).nodes:
                seen.update(node.content)
                if node.type == DIR and node.subtree and node.subtree not in seen:
                    seen.add(node.subtree)
                    stack.append(node.subtree)
    return seen


class TreesInCondemned:
    """Loads trees from the index, or else from the condemned packs that no index names: a
    backup that was running while prune marked stored its trees in packs that the marking
    condemned (no snapshot used them yet), and its snapshot names them now."""

    def __init__(
        self, repo: Repository, headers: dict[str, list[PackEntry]], indexed: set[str]
    ) -> None:
        self._repo = repo
        self._where = {
            e.blob_id: (pack_id, e)
            for pack_id, entries in headers.items()
            if pack_id not in indexed
            for e in entries
        }
        self._pack: tuple[str, bytes] = ("", b"")  # the last pack read: trees come in runs

    def load(self, tree_id: bytes) -> Tree:
        found = self._where.get(tree_id)
        if found is None or self._repo.has_blob(tree_id):
            return self._repo.load_tree(tree_id)
        pack_id, entry = found
        if self._pack[0] != pack_id:
            self._pack = (pack_id, self._repo.read_pack_bytes(pack_id))
        # Validated as load_tree's are: the same entries count, wherever the tree is read.
        return validate(decode_tree(self._repo.open_blob_in_pack(self._pack[1], pack_id, entry)))


def used_blobs(
    repo: Repository, snaps: list[Snapshot], headers: dict[str, list[PackEntry]], indexed: set[str]
) -> set[bytes]:
    """The blobs ``snaps`` use, their trees read from the index or else from the condemned
    packs of ``headers``. A tree that reads from neither is walked as empty: whether it is
    damaged is not ours to judge here (check does), and the caller sees its id is missing."""
    trees = TreesInCondemned(repo, headers, indexed)

    def load(tree_id: bytes) -> Tree:
        try:
            return trees.load(tree_id)
        except IntegrityError:
            return Tree([])

    return reachable_blobs(repo, snaps, load)


def index_needed(repo: Repository, snaps: list[Snapshot], condemned: Iterable[str]) -> int:
    """Index again each of the ``condemned`` packs that is stored, named by no index file,
    and holds a blob that ``snaps`` use and no indexed pack holds; how many were. The index
    is loaded afresh first (this process's may still name condemned packs). A condemned
    pack whose header does not read is passed over: check reports it."""
    indexed = set(repo.reload_index().pack_ids)
    stored = repo.list_packs()
    headers = {}
    for pack_id in dict.fromkeys(condemned):
        if pack_id in stored and pack_id not in indexed:
            try:
                headers[pack_id] = repo.read_pack_header(pack_id)
            except IntegrityError:
                continue
    if not headers or not snaps:
        return 0
    used = used_blobs(repo, snaps, headers, indexed)
    again = [
        (pack_id, entries)
        for pack_id, entries in headers.items()
        if any(e.blob_id in used and not repo.has_blob(e.blob_id) for e in entries)
    ]
    if again:
        repo.index_again(again)
    return len(again)


def claim_for(repo: Repository, lock_id: str, snaps: list[Snapshot]) -> int:
    """After a writer holding lock ``lock_id`` saved ``snaps``: index again what they need
    of the packs condemned by the plans that wait for it (see the module's docstring)."""
    condemned = [
        pack_id
        for _key, plan in repo.load_records(PLANS, Plan)
        if lock_id in plan.waiting_for
        for pack_id in plan.condemned
    ]
    return index_needed(repo, snaps, condemned) if condemned else 0
