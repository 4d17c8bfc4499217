"""Repair: rebuild what damage took from what is left (restic's ``repair index``,
``repair snapshots`` and ``repair packs``, the last healing from a replica).

``repair_index`` rebuilds the index when index files are lost or damaged: the listings of
the index files that still open and decode are kept for the packs that are stored and cover
what they list; every other stored pack is indexed from its own header (docs/FORMAT.md,
"Packs"). The new index files are written before any old one is deleted, so a crash leaves
the old and the new, whose union is still a correct index. Packs a pending prune plan
condemned stay out of the index, as prune left them (indexing them again would let a backup
depend on blobs the plan's sweep deletes); the sweep indexes again those still in use.

``repair_snapshots`` rewrites each snapshot that names what is lost (restic's ``repair
snapshots``): a file with a missing chunk (not in the index; with ``read_data``, also one
whose bytes do not verify) is dropped, a directory whose tree does not load becomes empty,
and entries tree validation refuses are left out. The new snapshot is tagged ``repaired``;
the original moves to ``forgotten/`` (``snapfs undelete`` brings it back until a prune).
Run ``repair index`` first: a blob only the index lost is not lost.

``repair_packs`` heals damaged and missing packs from a replica (heal.Healer finds each
lost blob there and verifies it by this repository's id): their intact blobs and the healed
ones go into new packs, the index is rewritten without the damaged packs, and only then
are those deleted. What no replica has is named and left for ``repair_snapshots``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

from snapfs.crypto import content_id
from snapfs.errors import IntegrityError, ShortRead, SnapfsError
from snapfs.events import EventHandler, FileWarning, ignore
from snapfs.faults import fault_point
from snapfs.heal import Healer
from snapfs.pack import PackEntry
from snapfs.plans import PLANS, Plan
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot, sort_by_time
from snapfs.tree import Node, TreeProblem
from snapfs.walk import MAX_DEPTH, join, shown_path, walk

REPAIRED_TAG = "repaired"


@dataclass
class IndexRepair:
    packs: int = 0  # packs the new index names
    blobs: int = 0
    headers_read: int = 0  # packs indexed from their own header
    index_files_written: int = 0
    index_files_removed: int = 0
    damaged_index_files: list[str] = field(default_factory=list)  # names that did not read
    dropped_packs: list[str] = field(default_factory=list)  # indexed, but not stored (lost)
    unreadable_packs: list[str] = field(default_factory=list)  # "pack ID: why"; not indexed

    @property
    def complete(self) -> bool:
        """Every stored pack is indexed (lost ones are named in ``dropped_packs``)."""
        return not self.unreadable_packs


def repair_index(
    repo: Repository, *, read_all_packs: bool = False, on_event: EventHandler = ignore
) -> IndexRepair:
    """Rebuild the index from the index files that still read and the packs' headers
    (``read_all_packs``: from every pack's header alone, trusting no index file). Under the
    exclusive ``prune`` lock, so no prune or check runs meanwhile; backups may: an index file
    one writes after the listing here is left alone. Idempotent: a second run rewrites the
    same listings. A pack whose header does not read is named and left stored, unindexed."""
    report = IndexRepair()
    with repo.lock("prune"):
        condemned = {p for _key, plan in repo.load_records(PLANS, Plan) for p in plan.condemned}
        stored = repo.list_packs()
        old = [info.key for info in repo.backend.list("index/")]
        listings = _listings(repo, [] if read_all_packs else old, stored, condemned, report)
        written = repo.store_index_files(_counted(listings, report))
        report.index_files_written = len(written)
        for key in old:
            if key.rpartition("/")[2] not in written:
                repo.backend.delete(key)
                report.index_files_removed += 1
        for problem in report.unreadable_packs:
            on_event(FileWarning(problem.partition(":")[0], problem))
        repo.reload_index()  # this process's index, and the shared cache's, are the new one
    return report


def _listings(
    repo: Repository,
    index_keys: list[str],
    stored: dict[str, int],
    condemned: set[str],
    report: IndexRepair,
) -> Iterator[tuple[str, list[PackEntry]]]:
    """Each stored pack once, not condemned: from the index files that read, when what they
    list fits in the pack, else from the pack's header. One index file's listings in memory
    at a time, and the set of pack ids seen."""
    seen: set[str] = set()
    for key in index_keys:
        try:
            listed = list(repo.index_packs([key]))
        except IntegrityError:
            report.damaged_index_files.append(key.rpartition("/")[2])
            continue
        for pack_id, entries in listed:
            if pack_id in seen or pack_id in condemned:
                continue
            size = stored.get(pack_id)
            if size is None:
                if pack_id not in report.dropped_packs:
                    report.dropped_packs.append(pack_id)
                continue
            if max((e.offset + e.length for e in entries), default=0) <= size:
                seen.add(pack_id)
                yield pack_id, entries
    for pack_id in sorted(stored):
        if pack_id in seen or pack_id in condemned:
            continue
        try:
            entries = repo.read_pack_header(pack_id)
        except (IntegrityError, ShortRead) as e:
            shown = str(e).removeprefix(f"pack {pack_id[:16]} ")
            report.unreadable_packs.append(f"pack {pack_id[:16]}: {shown}")
            continue
        report.headers_read += 1
        if entries:
            yield pack_id, entries


def _counted(
    listings: Iterator[tuple[str, list[PackEntry]]], report: IndexRepair
) -> Iterator[tuple[str, list[PackEntry]]]:
    for pack_id, entries in listings:
        report.packs += 1
        report.blobs += len(entries)
        yield pack_id, entries


@dataclass(frozen=True)
class RepairedSnapshot:
    original: Snapshot
    repaired: Snapshot | None  # None on a dry run
    lost: list[str]  # "PATH: why", each path at the first place it was met


@dataclass
class SnapshotRepair:
    repaired: list[RepairedSnapshot] = field(default_factory=list)
    intact: int = 0  # snapshots that name nothing lost: left as they are


def repair_snapshots(
    repo: Repository,
    snapshots: list[Snapshot] | None = None,
    *,
    read_data: bool = False,
    dry_run: bool = False,
    on_event: EventHandler = ignore,
) -> SnapshotRepair:
    """Rewrite ``snapshots`` (default: all) without what is lost, under the ``prune`` lock.
    Each tree is rewritten once however many snapshots share it; an intact one keeps its
    id, so a repaired snapshot stores only the trees on the paths to what was lost.
    ``read_data`` reads every data blob the snapshots use once (as ``check --read-data``)
    and counts those that do not verify as lost; memory: their ids, as a set. A crash
    leaves the original in ``snapshots/`` (or both, the original and its repair)."""
    report = SnapshotRepair()
    with repo.lock("prune"), repo.writer() as writer:
        snaps = sort_by_time(repo.snapshots() if snapshots is None else snapshots)
        bad: set[bytes] = _damaged_blobs(repo, snaps) if read_data else set()
        fixer = _Rewriter(repo, writer, bad)
        for snap in snaps:
            root = bytes.fromhex(snap.tree)
            new_root, lost = fixer.tree(root)
            if not lost:
                report.intact += 1
                continue
            for line in lost:
                on_event(FileWarning(f"{snap.short_id}:{line.partition(': ')[0]}", line))
            repaired = None
            if not dry_run:
                tags = [*snap.tags, REPAIRED_TAG] if REPAIRED_TAG not in snap.tags else snap.tags
                repaired = writer.save_snapshot(
                    msgspec.structs.replace(snap, tree=new_root.hex(), tags=tags, id="")
                )
                repo.forget_snapshot(snap.id)
            report.repaired.append(RepairedSnapshot(snap, repaired, lost))
    return report


def _damaged_blobs(repo: Repository, snaps: list[Snapshot]) -> set[bytes]:
    """The data blobs of ``snaps`` whose bytes do not verify (missing ones included)."""
    wanted: dict[bytes, None] = {}
    seen: set[bytes] = set()
    for snap in snaps:
        for _path, node in walk(repo, bytes.fromhex(snap.tree), on_problem=_skip, seen=seen):
            wanted.update(dict.fromkeys(node.content))
    bad: set[bytes] = set()

    def drain(blobs: Iterator[tuple[bytes, object]]) -> None:
        for _ in blobs:
            pass

    repo.read_blob_ranges(list(wanted), drain, on_damaged=lambda b, _e: bad.add(b))
    return bad


def _skip(_path: bytes, _message: str) -> None:
    pass


class _Rewriter:
    """Source tree id -> repaired tree id (the same id when nothing below it is lost), and
    what each rewrite dropped; bottom-up without recursion (trees nest past Python's
    stack), each tree once for every snapshot of the run."""

    def __init__(self, repo: Repository, writer: Writer, bad: set[bytes]) -> None:
        self.repo, self.writer, self.bad = repo, writer, bad
        self.done: dict[bytes, tuple[bytes, list[str]]] = {}

    def tree(self, root: bytes) -> tuple[bytes, list[str]]:
        """The repaired id of ``root``, and every loss below it ("PATH: why")."""
        stack: list[tuple[bytes, bytes, int]] = [(root, b"", 0)]
        while stack:
            tid, path, depth = stack[-1]
            if tid in self.done:
                stack.pop()
                continue
            try:
                tree = self.repo.load_tree(tid)
            except IntegrityError as e:  # its entries are lost: an empty directory stands
                self.done[tid] = (self.writer.save_tree([]), [f"{shown_path(path)}: {e}"])
                stack.pop()
                continue
            below = [
                (n.subtree, join(path, n.name), depth + 1)
                for n in tree.nodes
                if n.subtree is not None and n.subtree not in self.done and depth < MAX_DEPTH
            ]
            if below:
                stack.extend(below)
                continue
            stack.pop()
            self.done[tid] = self._rewrite(tid, path, tree.nodes, tree.problems)
        return self.done[root]

    def _rewrite(
        self, tid: bytes, path: bytes, nodes: list[Node], problems: Sequence[TreeProblem]
    ) -> tuple[bytes, list[str]]:
        lost = [
            f"{shown_path(path if p.name is None else join(path, p.name))}: {p.message}: left out"
            for p in problems
        ]
        kept: list[Node] = []
        for node in nodes:
            where = shown_path(join(path, node.name))
            if node.subtree is not None:
                if node.subtree not in self.done:  # nested past MAX_DEPTH: left out
                    lost.append(f"{where}: nested deeper than {MAX_DEPTH} levels: left out")
                    continue
                new, below = self.done[node.subtree]
                lost += below
                kept.append(node if new == node.subtree else
                            msgspec.structs.replace(node, subtree=new))  # fmt: skip
                continue
            why = self._content_lost(node)
            if why:
                lost.append(f"{where}: {why}: dropped")
                continue
            kept.append(node)
        if not lost:
            return tid, []
        return self.writer.save_tree(kept), lost

    def _content_lost(self, node: Node) -> str:
        for blob_id in node.content:
            if blob_id in self.bad:
                return f"blob {blob_id.hex()[:16]} is damaged"
            if not self.repo.has_blob(blob_id):
                return f"blob {blob_id.hex()[:16]} is not in the index"
        return ""


@dataclass
class PackRepair:
    packs_read: int = 0
    damaged_packs: list[str] = field(default_factory=list)  # "pack ID: the first problem"
    damaged_blobs: int = 0  # damaged or missing blobs of those packs
    salvaged: int = 0  # intact blobs of the damaged packs, moved into new packs
    elsewhere: int = 0  # damaged here, intact in another pack: nothing to heal
    healed: int = 0  # read from the replica
    lost: list[str] = field(default_factory=list)  # "blob ID (pack P): why": no replica has it
    packs_removed: list[str] = field(default_factory=list)
    packs_kept: list[str] = field(default_factory=list)  # damaged, kept for the lost blobs
    stored_bytes: int = 0
    dry_run: bool = False

    @property
    def complete(self) -> bool:
        return not self.lost


@dataclass
class _PackDamage:
    entries: dict[bytes, PackEntry]  # what the index lists in it
    bad: set[bytes]  # those that do not read and verify
    problem: str


def repair_packs(
    repo: Repository,
    healer: Healer,
    packs: list[str] | None = None,
    *,
    dry_run: bool = False,
    on_event: EventHandler = ignore,
) -> PackRepair:
    """Read every indexed pack (or ``packs``) as ``check --read-data`` does; for each that
    is damaged or missing, move its intact blobs into new packs and heal its damaged ones
    from the replica through ``healer``, same ids (so no tree or snapshot changes). Under
    the exclusive ``prune`` lock.

    Crash-safe order: the new packs and their index file are stored first; then the index
    is rewritten without the damaged packs' entries (new files before old ones go; a pack
    with a blob no replica has keeps that blob's entry); only then are the damaged packs
    deleted (those kept for lost blobs stay). A crash before the rewrite leaves each healed
    blob indexed twice (the damaged copy and the new one), one before the deletions leaves
    damaged packs that no index names: never less readable than before."""
    report = PackRepair(dry_run=dry_run)
    with repo.lock("prune"), healer.lock(), repo.uncached():
        repo.reload_index()
        old_keys = list(repo.index_keys)
        damage = _find_damage(repo, packs, report, on_event)
        if not damage:
            return report
        rest = repo.index.without(damage)  # what the other packs hold
        needed: dict[bytes, str] = {}
        for pack_id, d in damage.items():
            report.damaged_blobs += len(d.bad)
            for blob_id in d.bad:
                if blob_id in rest:
                    report.elsewhere += 1
                else:
                    needed[blob_id] = pack_id
        # Found with the whole index: the intact trees of a damaged pack lead to the rest.
        healed, why = healer.heal(needed)
        repo.set_index(rest)
        report.healed = len(healed)
        lost = {b: p for b, p in needed.items() if b not in healed}
        for blob_id, pack_id in sorted(lost.items()):
            line = f"blob {blob_id.hex()[:16]} (pack {pack_id[:16]}): {why.get(blob_id, '?')}"
            report.lost.append(line)
            on_event(FileWarning(blob_id.hex(), line))
        kept = {p for p in lost.values()}
        report.packs_kept = sorted(kept)
        report.packs_removed = sorted(set(damage) - kept)
        if dry_run:
            report.salvaged = sum(len(d.entries) - len(d.bad) for d in damage.values())
            repo.reload_index()
            return report
        with repo.writer() as writer:
            for pack_id, d in damage.items():
                report.salvaged += _salvage(repo, writer, pack_id, d)
            for kind, data in healed.values():
                writer.add_blob(kind, data)
            writer.flush()
            report.stored_bytes = writer.stored_bytes
        fault_point("repair-packs-written")
        _rewrite_index(repo, old_keys, damage, set(lost))
        fault_point("repair-index-written")
        for pack_id in report.packs_removed:
            repo.delete_pack(pack_id)
        repo.reload_index()
    return report


def _find_damage(
    repo: Repository, packs: list[str] | None, report: PackRepair, on_event: EventHandler
) -> dict[str, _PackDamage]:
    """The damaged or missing packs among ``packs`` (default: every indexed one), each read
    whole once (one pack in memory at a time)."""
    listed: dict[str, dict[bytes, PackEntry]] = defaultdict(dict)
    for pack_id, entries in repo.index_packs():
        if packs is None or pack_id in packs:
            listed[pack_id].update((e.blob_id, e) for e in entries)
    stored = repo.list_packs()
    damage: dict[str, _PackDamage] = {}
    for pack_id in sorted(listed):
        blobs = listed[pack_id]
        report.packs_read += 1
        problem, bad = _pack_problem(repo, pack_id, blobs, pack_id in stored)
        if problem:
            damage[pack_id] = _PackDamage(blobs, bad, problem)
            report.damaged_packs.append(f"pack {pack_id[:16]}: {problem}")
            on_event(FileWarning(pack_id, problem))
    return damage


def _pack_problem(
    repo: Repository, pack_id: str, entries: dict[bytes, PackEntry], stored: bool
) -> tuple[str, set[bytes]]:
    """What is wrong with the pack ("" when nothing), and its blobs that do not verify."""
    if not stored:
        return "missing", set(entries)
    try:
        data = repo.read_pack_bytes(pack_id)
    except SnapfsError as e:
        return str(e), set(entries)
    bad = set()
    first = ""
    for blob_id, entry in entries.items():
        try:
            repo.open_blob_in_pack(data, pack_id, entry)
        except IntegrityError as e:
            bad.add(blob_id)
            first = first or str(e)
    if first:
        return first, bad
    if content_id(data) != pack_id:
        return "does not match its id", bad
    try:
        header = {e.blob_id: (e.offset, e.length) for e in repo.pack_header(data)}
    except SnapfsError as e:
        return f"header unreadable: {e}", bad
    if any(header.get(b) != (e.offset, e.length) for b, e in entries.items()):
        return "the index disagrees with the pack header", bad
    return "", bad


def _salvage(repo: Repository, writer: Writer, pack_id: str, d: _PackDamage) -> int:
    """The intact blobs of a damaged pack, into new packs (unless stored elsewhere)."""
    good = [e for b, e in d.entries.items() if b not in d.bad]
    if not good:
        return 0
    data = repo.read_pack_bytes(pack_id)
    moved = 0
    for entry in good:
        if writer.add_blob(entry.kind, repo.open_blob_in_pack(data, pack_id, entry))[1]:
            moved += 1
    return moved


def _rewrite_index(
    repo: Repository, old_keys: list[str], damage: dict[str, _PackDamage], lost: set[bytes]
) -> None:
    """The listings of ``old_keys`` into new index files, without the damaged packs'
    entries but for the blobs in ``lost`` (still named where they were); then the old
    files go (those the same listings rewrote identically stay)."""
    seen: set[str] = set()

    def listings() -> Iterator[tuple[str, list[PackEntry]]]:
        for pack_id, entries in repo.index_packs(old_keys):
            if pack_id in seen:
                continue
            seen.add(pack_id)
            if pack_id in damage:
                entries = [e for e in entries if e.blob_id in lost]
            if entries:
                yield pack_id, entries

    written = repo.store_index_files(listings())
    for key in old_keys:
        if key.rpartition("/")[2] not in written:
            repo.backend.delete(key)
