"""Prune: free the space of forgotten snapshots without ever making a backup wait.

Two phases, in two runs:

Phase 1 (mark) -- every blob reachable from a snapshot is marked. Packs with nothing reachable
are condemned; packs whose reachable share is below the threshold are repacked (their live
blobs copied into new packs) and condemned; packs no index names, older than the grace
period, are condemned. The new index, without the condemned packs, is written before the old
index files are deleted. Then a plan records the condemned packs and the backups running now.
Nothing is deleted: backups started from here on no longer see condemned blobs, so they
cannot come to depend on them.

Phase 2 (sweep, at the start of a later run) -- a plan is carried out once every backup it
waits for has finished. Reachability is computed again: a condemned pack that a snapshot uses
after all (a backup that was running at marking time deduplicated against it, or an
``undelete``) is indexed again from its own header; the others are deleted.

A crash at any point leaves every snapshot restorable: deletions happen only in phase 2, of
packs unreachable at that moment, and a rerun finishes what was started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from snapfs.errors import IntegrityError, SnapshotNotFound
from snapfs.events import EventHandler, FileWarning, ignore
from snapfs.faults import fault_point
from snapfs.pack import PackEntry
from snapfs.plans import (
    PLANS,
    Plan,
    TreesInCondemned,
    index_needed,
    reachable_blobs,
    used_blobs,
)
from snapfs.repository import Repository
from snapfs.snapshot import Snapshot, select
from snapfs.store.base import NotFound, ObjectInfo

GRACE_SECONDS = 3600.0
WRITER_KINDS = frozenset({"backup"})


@dataclass
class PruneReport:
    deleted_packs: int = 0
    deleted_bytes: int = 0
    kept_again: int = 0
    waiting_plans: int = 0
    condemned_packs: int = 0
    condemned_bytes: int = 0
    repacked_packs: int = 0
    repacked_bytes: int = 0
    unreferenced_packs: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)


# -- phase 2 ---------------------------------------------------------------------------------
def sweep(repo: Repository, report: PruneReport, on_event: EventHandler) -> None:
    """Carry out the plans of earlier runs whose backups have all finished."""
    plans = repo.load_records(PLANS, Plan)
    if not plans:
        return
    live = repo.live_lock_ids(WRITER_KINDS)
    ready = [(key, plan) for key, plan in plans if not live & set(plan.waiting_for)]
    report.waiting_plans = len(plans) - len(ready)
    if not ready:
        return
    stored = repo.list_packs()
    indexed = set(repo.index.pack_ids)
    headers = {
        pack_id: _header(repo, pack_id, on_event)
        for _key, plan in ready
        for pack_id in plan.condemned
        if pack_id in stored
    }
    trees = TreesInCondemned(repo, headers, indexed)
    reachable = reachable_blobs(repo, repo.snapshots(every=True), trees.load)
    for key, plan in ready:
        for pack_id in plan.condemned:
            if pack_id in headers:
                entries = headers.pop(pack_id)
                _sweep_pack(repo, pack_id, entries, stored[pack_id], reachable, indexed, report)
        for snapshot_id in plan.forgotten:
            repo.drop_forgotten(snapshot_id)
        repo.delete_record(key)
        fault_point("prune-plan-done")


def _header(repo: Repository, pack_id: str, on_event: EventHandler) -> list[PackEntry]:
    """The pack's blobs; none when its header is damaged (its blobs are unreadable: garbage
    either way) or it is gone. Any other failure (the store unreachable) ends the sweep, its
    plans kept: without the header, the sweep cannot tell whether a snapshot needs the pack."""
    try:
        return repo.read_pack_header(pack_id)
    except (IntegrityError, NotFound) as e:
        on_event(FileWarning(pack_id, f"unreadable condemned pack: {e}"))
        return []


def _sweep_pack(
    repo: Repository, pack_id: str, entries: list[PackEntry], size: int, reachable: set[bytes],
    indexed: set[str], report: PruneReport,
) -> None:  # fmt: skip
    # An index names it again (a backup that was running at marking time indexed it since):
    # deleting it would leave that entry naming nothing, and a backup deduplicating against
    # it would lose data. The marking that follows decides about it afresh.
    if pack_id in indexed:
        return
    # Needed for a used blob that no other indexed pack holds (a repacked pack's live blobs
    # live on in the new packs; a blob or tree a racing backup reused or stored lives only
    # here).
    if any(e.blob_id in reachable and _only_here(repo, e.blob_id, pack_id) for e in entries):
        repo.index_again([(pack_id, entries)])
        report.kept_again += 1
        return
    repo.delete_pack(pack_id)
    report.deleted_packs += 1
    report.deleted_bytes += size
    fault_point("prune-pack-deleted")


def _only_here(repo: Repository, blob_id: bytes, pack_id: str) -> bool:
    return not repo.has_blob(blob_id) or repo.blob_entry(blob_id).pack_id == pack_id


# -- phase 1 ---------------------------------------------------------------------------------
@dataclass
class _Marking:
    condemn: list[str] = field(default_factory=list)
    repack: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)


@dataclass
class _Usage:
    """Per pack: sealed bytes of reachable blobs, and of all its blobs (a pack listed by
    two index files counts both listings: the share is the same)."""

    used: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)


def _usage(repo: Repository, keys: list[str], reachable: set[bytes]) -> _Usage:
    usage = _Usage()
    for pack_id, entries in repo.index_packs(keys):
        used = sum(e.length for e in entries if e.blob_id in reachable)
        usage.used[pack_id] = usage.used.get(pack_id, 0) + used
        usage.total[pack_id] = usage.total.get(pack_id, 0) + sum(e.length for e in entries)
    return usage


def _classify(usage: _Usage, stored: dict[str, ObjectInfo], threshold: float) -> _Marking:
    marking = _Marking()
    for pack_id, total in usage.total.items():
        used = usage.used[pack_id]
        if used == 0:
            marking.condemn.append(pack_id)
        elif used < threshold * total:
            marking.repack.append(pack_id)
    now = time.time()
    for pack_id in stored.keys() - usage.total.keys():
        if now - stored[pack_id].mtime > GRACE_SECONDS:
            marking.unreferenced.append(pack_id)
    return marking


def _repack(repo: Repository, keys: list[str], marking: _Marking, reachable: set[bytes]) -> None:
    """Copy the live blobs of the packs to repack into new packs."""
    listed: dict[str, dict[bytes, PackEntry]] = {pack_id: {} for pack_id in marking.repack}
    for pack_id, entries in repo.index_packs(keys):
        if pack_id in listed:
            listed[pack_id].update((e.blob_id, e) for e in entries if e.blob_id in reachable)
    with repo.writer() as writer:
        for pack_id in marking.repack:
            data = repo.read_pack_bytes(pack_id)
            for entry in listed[pack_id].values():
                if entry.blob_id not in repo.index:
                    writer.add_blob(entry.kind, repo.open_blob_in_pack(data, pack_id, entry))
        fault_point("prune-repacked")


def mark(
    repo: Repository, threshold: float, report: PruneReport, *, dry_run: bool,
    without: frozenset[str] = frozenset(),
) -> None:  # fmt: skip
    # Snapshots before the index: every blob they use is then in it.
    snaps = [s for s in repo.snapshots(every=True) if s.id not in without]
    forgotten = [s.id for s in repo.forgotten()]
    repo.index  # noqa: B018 - loaded now, after the snapshots were listed
    old_keys = list(repo.index_keys)
    reachable = reachable_blobs(repo, snaps)
    fault_point("prune-marked")
    stored = repo.stored_packs()
    marking = _classify(_usage(repo, old_keys, reachable), stored, threshold)
    _tally(report, marking, stored)
    if dry_run or not (marking.condemn or marking.repack or marking.unreferenced):
        return
    gone = set(marking.condemn) | set(marking.repack)
    repo.set_index(repo.index.without(gone))
    _repack(repo, old_keys, marking, reachable)
    repo.rewrite_index(lambda pack_id: pack_id not in gone, old_keys)
    fault_point("prune-index-written")
    waiting = sorted(repo.live_lock_ids(WRITER_KINDS))
    condemned = sorted(gone | set(marking.unreferenced))
    repo.save_record(PLANS, Plan(time.time(), condemned, waiting, forgotten))
    fault_point("prune-plan-written")
    # A backup that finished while this marked may need condemned packs and found no plan
    # waiting for it when it looked (snapfs/plans.py): give it what it needs now.
    marked = {s.id for s in snaps}
    late = [s for s in repo.snapshots() if s.id not in marked]
    if late:
        index_needed(repo, late, condemned)


def _tally(report: PruneReport, marking: _Marking, stored: dict[str, ObjectInfo]) -> None:
    def size(packs: list[str]) -> int:  # a pack indexed but not stored counts nothing
        return sum(stored[p].size for p in packs if p in stored)

    report.condemned_packs = len(marking.condemn) + len(marking.unreferenced)
    report.condemned_bytes = size(marking.condemn + marking.unreferenced)
    report.repacked_packs = len(marking.repack)
    report.repacked_bytes = size(marking.repack)
    report.unreferenced_packs = len(marking.unreferenced)


def prune(
    repo: Repository,
    *,
    repack_threshold: float = 0.8,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    on_lock_wait: Callable[[str], None] | None = None,
    on_event: EventHandler = ignore,
    assume_forgotten: frozenset[str] = frozenset(),
) -> PruneReport:
    """Sweep what earlier runs condemned, then mark for the next run. Holds the exclusive
    prune lock; backups keep running. ``assume_forgotten`` (snapshot ids, dry runs only)
    answers "what would prune condemn once these are forgotten?", so a forget can be
    previewed with the space it frees before anything changes."""
    if assume_forgotten and not dry_run:
        raise ValueError("assume_forgotten is only for dry runs")
    report = PruneReport(dry_run=dry_run)
    with repo.lock("prune", wait=lock_wait, on_wait=on_lock_wait):
        if not dry_run:
            sweep(repo, report, on_event)
            repo.reload_index()
        mark(repo, repack_threshold, report, dry_run=dry_run, without=assume_forgotten)
    return report


def undelete(repo: Repository, selector: str) -> Snapshot:
    """Bring back a forgotten snapshot. Pending prune plans are cancelled and their condemned
    packs indexed again, so every blob the snapshot needs is readable; the next prune marks
    afresh. SnapshotNotFound when a sweep has deleted any of its data: either the sweep
    finished its plan (the snapshot is no longer listed) or it was killed after deleting a
    pack the snapshot needs (it stays listed until a prune finishes that sweep). Nothing is
    changed before that is known, so a kill at any point leaves the plans to the sweep."""
    with repo.lock("prune"):
        snap = select(repo.forgotten(), selector)
        plans = repo.load_records(PLANS, Plan)
        stored = repo.list_packs()
        indexed = set(repo.index.pack_ids)
        headers = {
            pack_id: repo.read_pack_header(pack_id)
            for _key, plan in plans
            for pack_id in plan.condemned
            if pack_id in stored and pack_id not in indexed
        }
        _assert_whole(repo, snap, headers, indexed)
        if headers:
            repo.index_again(list(headers.items()))
        for key, _plan in plans:
            repo.delete_record(key)
        repo.restore_forgotten(snap.id)
        return snap


def _assert_whole(
    repo: Repository, snap: Snapshot, headers: dict[str, list[PackEntry]], indexed: set[str]
) -> None:
    """Refuse a snapshot that names a blob neither indexed nor in a stored condemned pack:
    a sweep killed midway deleted it, and brought back the snapshot would not restore."""
    condemned = {e.blob_id for entries in headers.values() for e in entries}
    used = used_blobs(repo, [snap], headers, indexed)
    if any(b not in condemned and not repo.has_blob(b) for b in used):
        raise SnapshotNotFound(
            f"snapshot {snap.short_id} cannot be undeleted: an interrupted prune already "
            f"deleted some of its data; run prune to finish removing it"
        )
