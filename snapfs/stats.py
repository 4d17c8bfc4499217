"""Repository statistics: what is stored, and what it would take to restore."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from snapfs.repository import Repository
from snapfs.snapshot import NO_FILTER, SnapshotFilter, filter_snapshots


@dataclass(frozen=True)
class RepoStats:
    snapshots: int
    packs: int
    stored_bytes: int
    data_blobs: int
    tree_blobs: int
    raw_data_bytes: int
    snapshot_bytes: int

    @property
    def compression_ratio(self) -> float:
        return self.raw_data_bytes / self.stored_bytes if self.stored_bytes else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "compression_ratio": round(self.compression_ratio, 3)}


def stats(repo: Repository, snapshot_filter: SnapshotFilter = NO_FILTER) -> RepoStats:
    """``snapshots`` and ``snapshot_bytes`` count the snapshots that pass ``snapshot_filter``;
    packs and blobs are the whole repository's (they are shared between snapshots)."""
    snaps = filter_snapshots(repo.snapshots(), snapshot_filter)
    data, trees, raw = repo.index.totals()  # from the runs, at C speed, memory bounded
    packs = repo.list_packs()
    return RepoStats(
        snapshots=len(snaps),
        packs=len(packs),
        stored_bytes=sum(packs.values()),
        data_blobs=data,
        tree_blobs=trees,
        raw_data_bytes=raw,
        snapshot_bytes=sum(s.summary.bytes for s in snaps),
    )
