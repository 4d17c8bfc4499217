from __future__ import annotations

import click

from snapfs.cli.main import Context, pass_ctx
from snapfs.cli.render import emit_json, say, size
from snapfs.prune import prune, undelete


@click.command("prune")
@click.option(
    "--repack-threshold",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="Repack packs whose live share is below this (lower: less I/O, more unused space).",
)
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be freed and repacked.")
@click.option(
    "--retry-lock",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Wait this long for another prune or check to finish.",
)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@pass_ctx
def command(ctx: Context, repack_threshold: float, dry_run: bool, retry_lock: float,
            as_json: bool) -> None:  # fmt: skip
    """Free the space of forgotten snapshots, safely and without stopping backups.

    Prune works in two phases: this run deletes what earlier runs condemned (once the
    backups they waited for have finished), then condemns what no snapshot uses now.

    \b
    Examples:
      snapfs prune --dry-run
      snapfs forget --keep-daily 14 && snapfs prune
    """
    with ctx.open() as repo:
        r = prune(repo, repack_threshold=repack_threshold, dry_run=dry_run, lock_wait=retry_lock,
                  on_lock_wait=lambda why: say(f"snapfs: {why}"))  # fmt: skip
    if as_json:
        emit_json(r.__dict__)
        return
    if dry_run:
        click.echo(f"would condemn {r.condemned_packs} packs ({size(r.condemned_bytes)}) and "
                   f"repack {r.repacked_packs} packs ({size(r.repacked_bytes)})")  # fmt: skip
        return
    click.echo(
        f"deleted {r.deleted_packs} packs ({size(r.deleted_bytes)}) condemned by "
        f"earlier runs" + (f"; {r.kept_again} were in use again and kept" if r.kept_again else "")
    )
    if r.waiting_plans:
        click.echo(f"{r.waiting_plans} earlier plans still wait for running backups")
    click.echo(
        f"condemned {r.condemned_packs} packs ({size(r.condemned_bytes)}), repacked "
        f"{r.repacked_packs} packs ({size(r.repacked_bytes)}); the next prune deletes them"
    )


@click.command("undelete")
@click.argument("snapshot")
@pass_ctx
def undelete_command(ctx: Context, snapshot: str) -> None:
    """Bring back a forgotten snapshot (until prune has swept its data).

    Refused (exit 1) when a prune killed while sweeping already deleted some of its data:
    run prune to finish removing it."""
    with ctx.open() as repo:
        snap = undelete(repo, snapshot)
    click.echo(f"snapshot {snap.short_id} is back")
