"""Check: the repository's structure, and with ``read_data`` every blob's bytes.

Structure: every key file parses and hashes to its name; every snapshot's trees load; every
blob they name is in the index; every pack the index names is stored with a size that covers
its blobs. Data: each pack hashes to its name, its header agrees with the index, and every
blob authenticates and hashes to its id. Damage is reported as the packs, snapshots and file
paths it affects."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from snapfs.crypto import content_id
from snapfs.errors import IntegrityError, SnapfsError
from snapfs.events import EventHandler, FileWarning, ignore
from snapfs.index import IndexEntry
from snapfs.pack import BlobKind, PackEntry, entry_problem
from snapfs.repository import Repository
from snapfs.snapshot import NO_FILTER, Snapshot, SnapshotFilter, filter_snapshots
from snapfs.walk import shown_path, walk


@dataclass
class CheckReport:
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    errors: list[str] = field(default_factory=list)
    damaged_packs: list[str] = field(default_factory=list)
    affected_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: tuple[int, int] | float | None = None,
    on_event: EventHandler = ignore,
    snapshot_filter: SnapshotFilter = NO_FILTER,
) -> CheckReport:
    """``subset`` is (n, t) for the n-th of t slices of packs, or a fraction for a random share.
    With ``snapshot_filter``, only the snapshots that pass are walked, and the data read is
    only that of the packs holding their trees and files; keys and the index are checked
    whole either way."""
    report = CheckReport()
    with repo.lock("check"), repo.uncached():
        # Snapshots, then the index, then the packs: each names only what the next holds.
        snaps = filter_snapshots(repo.snapshots(), snapshot_filter)
        report.errors += repo.snapshot_problems
        repo.snapshot_problems = []  # named here, as errors: not again as warnings
        repo.reload_index()
        stored = repo.list_packs()
        report.errors += repo.key_problems()
        _run_checks(repo, snaps, stored, report, read_data, subset, on_event, snapshot_filter)
    return report


def _run_checks(
    repo: Repository, snaps: list[Snapshot], stored: dict[str, int], report: CheckReport,
    read_data: bool, subset: tuple[int, int] | float | None, on_event: EventHandler,
    snapshot_filter: SnapshotFilter,
) -> None:  # fmt: skip
    used = _check_index(repo, stored, report)
    bad_blobs: set[bytes] = set()
    if read_data or subset is not None:
        if snapshot_filter:
            used &= _packs_of(repo, snaps)
        chosen = _choose(sorted(used), subset)
        listed = _blobs_in_packs(repo, set(chosen))
        for pack_id in chosen:
            bad_blobs |= _check_pack(repo, pack_id, listed.pop(pack_id, {}), report, on_event)
    _check_snapshots(repo, snaps, report, bad_blobs)


def _packs_of(repo: Repository, snaps: list[Snapshot]) -> set[str]:
    """The packs holding the trees and file data of ``snaps``, each tree read once. What
    cannot be read or found is left out here: the snapshots' own check names it."""
    packs: set[str] = set()
    trees: set[bytes] = set()

    def where(blob_id: bytes) -> None:
        try:
            packs.add(repo.blob_entry(blob_id).pack_id)
        except IntegrityError:
            pass  # not indexed, or indexed where no blob can be: the snapshots' check says so

    for snap in snaps:
        try:
            for _path, node in walk(repo, bytes.fromhex(snap.tree), on_problem=_skip, seen=trees):
                for blob_id in node.content:
                    where(blob_id)
        except SnapfsError:
            continue
    for tree_id in trees:
        where(tree_id)
    return packs


def _skip(_path: bytes, _message: str) -> None:
    pass


def _check_index(repo: Repository, stored: dict[str, int], report: CheckReport) -> set[str]:
    extents: dict[str, int] = defaultdict(int)
    for pack_id, entries in repo.index_packs():
        end = max((e.offset + e.length for e in entries), default=0)
        extents[pack_id] = max(extents[pack_id], end)
        for e in entries:
            why = entry_problem(e.kind, e.length, e.raw_length)
            if why:
                report.errors.append(f"blob {e.blob_id.hex()[:16]}: the index records {why}")
    for pack_id, end in sorted(extents.items()):
        size = stored.get(pack_id)
        if size is None:
            report.errors.append(f"pack {pack_id[:16]} is in the index but not stored")
            report.damaged_packs.append(pack_id)
        elif size < end:
            report.errors.append(f"pack {pack_id[:16]} is {size} bytes, shorter than its blobs")
            report.damaged_packs.append(pack_id)
    report.packs = len(extents)
    return set(extents)


def _choose(packs: list[str], subset: tuple[int, int] | float | None) -> list[str]:
    if subset is None:
        return packs
    if isinstance(subset, tuple):
        n, t = subset
        return [p for p in packs if int(p[:8], 16) % t == n - 1]
    count = max(1, round(len(packs) * subset)) if packs else 0
    return random.sample(packs, count)


def _check_pack(
    repo: Repository, pack_id: str, indexed: dict[bytes, IndexEntry], report: CheckReport,
    on_event: EventHandler,
) -> set[bytes]:  # fmt: skip
    """Blob ids of ``pack_id`` that are unreadable; the pack is named when any is."""
    report.packs_read += 1
    problems: list[str] = []
    try:
        data = repo.read_pack_bytes(pack_id)
    except SnapfsError as e:
        problems.append(f"pack {pack_id[:16]}: {e}")
        data = b""
    bad = set()
    if data:
        if content_id(data) != pack_id:
            problems.append(f"pack {pack_id[:16]} does not match its id")
        _compare_header(repo, pack_id, data, indexed, problems)
        for blob_id, entry in indexed.items():
            try:
                as_pack = PackEntry(
                    blob_id, entry.kind, entry.offset, entry.length, entry.raw_length
                )
                repo.open_blob_in_pack(data, pack_id, as_pack)
            except IntegrityError as e:
                problems.append(str(e))
                bad.add(blob_id)
    else:
        bad = set(indexed)
    if problems:
        report.errors.extend(problems)
        report.damaged_packs.append(pack_id)
        on_event(FileWarning(pack_id, problems[0]))
    return bad


def _compare_header(
    repo: Repository,
    pack_id: str,
    data: bytes,
    indexed: dict[bytes, IndexEntry],
    problems: list[str],
) -> None:
    """The index must agree with the pack's own header about every blob it places there."""
    try:
        header = {e.blob_id: e for e in repo.pack_header(data)}
    except SnapfsError as e:
        problems.append(f"pack {pack_id[:16]}: header unreadable: {e}")
        return
    for blob_id, entry in indexed.items():
        own = header.get(blob_id)
        if own is None or (own.offset, own.length) != (entry.offset, entry.length):
            problems.append(f"pack {pack_id[:16]}: index disagrees with the pack header about "
                            f"blob {blob_id.hex()[:16]}")  # fmt: skip


def _blobs_in_packs(repo: Repository, packs: set[str]) -> dict[str, dict[bytes, IndexEntry]]:
    """What the index files list in each of ``packs`` (every listing: a blob indexed in two
    packs is checked in both)."""
    out: dict[str, dict[bytes, IndexEntry]] = {}
    for pack_id, entries in repo.index_packs():
        if pack_id in packs:
            listed = out.setdefault(pack_id, {})
            for e in entries:
                listed[e.blob_id] = IndexEntry(pack_id, e.kind, e.offset, e.length, e.raw_length)
    return out


def _check_snapshots(
    repo: Repository, snaps: list[Snapshot], report: CheckReport, bad_blobs: set[bytes]
) -> None:
    """Each tree is checked once, at the first path that reaches it, however many paths and
    snapshots share it: a crafted snapshot of shared subtrees has 2^48 paths but few trees."""
    seen: set[bytes] = set()
    for snap in snaps:
        report.snapshots += 1

        def damaged(path: bytes, message: str, snap: Snapshot = snap) -> None:
            report.errors.append(f"snapshot {snap.short_id}: {shown_path(path)}: {message}")

        try:
            for path, node in walk(repo, bytes.fromhex(snap.tree), on_problem=damaged, seen=seen):
                why = _content_problem(repo, node.content, bad_blobs)
                if why:
                    damaged(path, why)
                    report.affected_files.append(f"{snap.short_id}:{shown_path(path)}")
        except SnapfsError as e:
            report.errors.append(f"snapshot {snap.short_id}: {e}")


def _content_problem(repo: Repository, content: list[bytes], bad_blobs: set[bytes]) -> str:
    for blob_id in content:
        if not repo.has_blob(blob_id):
            return "data missing"
        if blob_id in bad_blobs:
            return "data damaged"
        try:
            kind = repo.blob_entry(blob_id).kind
        except IntegrityError as e:
            return str(e)
        if kind != BlobKind.DATA:
            return "content that is not a data blob"
    return ""
