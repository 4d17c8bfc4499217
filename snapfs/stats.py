"""Repository statistics: what is stored, and what it would take to restore."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from snapfs.pack import BlobKind
from snapfs.repository import Repository


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


def stats(repo: Repository) -> RepoStats:
    snaps = repo.snapshots()
    data = trees = raw = 0
    for _blob_id, entry in repo.index.entries():
        if entry.kind == BlobKind.TREE:
            trees += 1
        else:
            data += 1
            raw += entry.raw_length
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
