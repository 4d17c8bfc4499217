"""forget: apply a retention policy (or explicit ids) and move the removed snapshots aside.
They stay recoverable with ``undelete`` until a prune's second phase deletes any of their data."""

from __future__ import annotations

from snapfs.repository import Repository
from snapfs.retention import Decision, Policy, plan_forget
from snapfs.snapshot import NO_FILTER, Snapshot, SnapshotFilter, filter_snapshots, select


def forget(
    repo: Repository,
    policy: Policy,
    *,
    group_by: tuple[str, ...] = ("host", "paths"),
    dry_run: bool = False,
    snapshot_filter: SnapshotFilter = NO_FILTER,
) -> dict[tuple[object, ...], list[Decision]]:
    """Decisions per group over the snapshots that pass ``snapshot_filter`` (the others are
    neither counted nor forgotten); unless ``dry_run``, those not kept are forgotten."""
    with repo.lock("forget"):
        plan = plan_forget(filter_snapshots(repo.snapshots(), snapshot_filter), policy, group_by)
        if not dry_run:
            for decisions in plan.values():
                for d in decisions:
                    if not d.keep:
                        repo.forget_snapshot(d.snapshot.id)
    return plan


def forget_ids(
    repo: Repository,
    selectors: list[str],
    *,
    dry_run: bool = False,
    snapshot_filter: SnapshotFilter = NO_FILTER,
) -> list[Snapshot]:
    """Forget the snapshots named by ids or unique prefixes (or ``latest``: the newest that
    passes ``snapshot_filter``)."""
    with repo.lock("forget"):
        snaps = repo.snapshots()
        chosen = [select(snaps, s, snapshot_filter) for s in selectors]
        if not dry_run:
            for snap in chosen:
                repo.forget_snapshot(snap.id)
    return chosen
