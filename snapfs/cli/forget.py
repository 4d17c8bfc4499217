from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.table import Table

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import cell, emit_json, stdout
from snapfs.cli.snapshots import snapshot_json
from snapfs.forget import forget, forget_ids
from snapfs.prune import prune
from snapfs.retention import Decision, Duration, Policy
from snapfs.snapshot import SnapshotFilter


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Duration:
    try:
        return Duration.parse(value) if value else Duration()
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_WITHINS = ("within", "within-hourly", "within-daily", "within-weekly", "within-monthly",
            "within-yearly")  # fmt: skip


F = TypeVar("F", bound=Callable[..., Any])


def _options(f: F) -> F:
    """The --keep-* options, added in one place."""
    for name in reversed(_WITHINS):
        f = click.option(
            f"--keep-{name}",
            metavar="DURATION",
            callback=_duration,
            help=f"Keep {name.replace('-', ' ')} the newest (e.g. 1y6m7d2h).",
        )(f)
    for name in reversed(_COUNTS):
        f = click.option(
            f"--keep-{name}",
            type=int,
            default=0,
            metavar="N",
            help=f"Keep the last N {name} snapshots (-1: all).",
        )(f)
    return f


@click.command("forget")
@click.argument("snapshot_ids", nargs=-1)
@_options
@click.option(
    "--keep-tag",
    "keep_tags",
    multiple=True,
    metavar="TAGS",
    help="Keep snapshots with all of these comma-separated tags (repeatable).",
)
@click.option(
    "--group-by",
    default="host,paths",
    show_default=True,
    help="Apply the policy per group of host, paths and/or tags ('' for one group).",
)
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--prune", "then_prune", is_flag=True, help="Run prune afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Decisions as JSON.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, /, snapshot_ids: tuple[str, ...], keep_tags: tuple[str, ...],
            group_by: str, dry_run: bool, then_prune: bool, as_json: bool,
            snapshot_filter: SnapshotFilter, **keep: object) -> None:  # fmt: skip
    """Remove snapshots by policy (restic's rules) or by id, and say which rule kept each.
    With --host/--tag/--path the policy sees only the snapshots that pass (the others
    are neither counted nor removed); ids name their snapshots whatever the filter.

    Removed snapshots can be brought back with 'snapfs undelete ID' until a prune has
    swept their data (prune's second phase, in a later run).

    \b
    Examples:
      snapfs forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
      snapfs forget --keep-within 30d --keep-tag release --prune
      snapfs forget --tag old --keep-last 1
      snapfs forget 1a2b3c4d
    """
    policy = Policy(
        **{n: keep[f"keep_{n}"] for n in _COUNTS},  # type: ignore[arg-type]
        **{n.replace("-", "_"): keep[f"keep_{n.replace('-', '_')}"] for n in _WITHINS},  # type: ignore[arg-type]
        tags=tuple(frozenset(t.split(",")) for t in keep_tags),
    )
    with ctx.open() as repo:
        if snapshot_ids:
            gone = forget_ids(
                repo, list(snapshot_ids), dry_run=dry_run, snapshot_filter=snapshot_filter
            )
            _show_removed(gone, dry_run, as_json)
        else:
            if policy.empty():
                raise click.UsageError("no policy given: use --keep-* options or snapshot ids")
            groups = tuple(g for g in group_by.split(",") if g)
            plan = forget(
                repo, policy, group_by=groups, dry_run=dry_run, snapshot_filter=snapshot_filter
            )
            _show_plan(plan, groups, dry_run, as_json)
        if then_prune and not dry_run:
            report = prune(repo)
            click.echo(f"prune: condemned {report.condemned_packs} packs; "
                       f"deleted {report.deleted_packs} from earlier runs")  # fmt: skip


def _show_removed(gone: list, dry_run: bool, as_json: bool) -> None:  # type: ignore[type-arg]
    if as_json:
        emit_json([snapshot_json(s) for s in gone])
        return
    verb = "would remove" if dry_run else "removed"
    for s in gone:
        click.echo(f"{verb} snapshot {s.short_id}")


def _show_plan(plan: dict[tuple[object, ...], list[Decision]], groups: tuple[str, ...],
               dry_run: bool, as_json: bool) -> None:  # fmt: skip
    if as_json:
        emit_json([
            {"group": dict(zip(groups, key, strict=True)),
             "keep": [snapshot_json(d.snapshot) for d in ds if d.keep],
             "remove": [snapshot_json(d.snapshot) for d in ds if not d.keep],
             "reasons": [{"snapshot": d.snapshot.id, "matches": d.reasons} for d in ds if d.keep]}
            for key, ds in plan.items()
        ])  # fmt: skip
        return
    for key, decisions in plan.items():
        label = ", ".join(f"{g} {v}" for g, v in zip(groups, key, strict=True)) or "all"
        table = Table(title=cell(label), box=None, header_style="bold", title_justify="left")
        for col in ("ID", "Time", "Tags", "Decision", "Reasons"):
            table.add_column(col)
        for d in decisions:
            verdict = "keep" if d.keep else ("would remove" if dry_run else "remove")
            when = d.snapshot.datetime.strftime("%Y-%m-%d %H:%M:%S")
            tags = cell(",".join(d.snapshot.tags))
            table.add_row(d.snapshot.short_id, when, tags, verdict, ", ".join(d.reasons))
        stdout().print(table)
        kept = sum(d.keep for d in decisions)
        stdout().print(
            f"{kept} kept, {len(decisions) - kept} {'to remove' if dry_run else 'removed'}\n"
        )
