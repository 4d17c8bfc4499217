from __future__ import annotations

import click

from snapfs.cli.main import Context, exclude_option, pass_ctx, snapshot_filter_options
from snapfs.cli.render import emit_json, escaped
from snapfs.rewrite import Replaced, chosen, rewrite
from snapfs.snapshot import SnapshotFilter


def read_exclude_file(path: str) -> list[str]:
    """One pattern a line, as restic's --exclude-file: blank lines and '#' comments skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror}",
                                 param_hint="'--exclude-file'") from None  # fmt: skip
    return [line for line in lines if line and not line.startswith("#")]


@click.command("rewrite")
@click.argument("selectors", metavar="[SNAPSHOT]...", nargs=-1)
@exclude_option
@click.option(
    "--exclude-file",
    "exclude_files",
    multiple=True,
    metavar="FILE",
    help="Patterns from FILE, one a line ('#' comments; repeatable).",
)
@click.option("--forget", is_flag=True, help="Forget each snapshot rewritten.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be left out; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot rewritten.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, selectors: tuple[str, ...], excludes: tuple[str, ...],
            exclude_files: tuple[str, ...], forget: bool, dry_run: bool, as_json: bool,
            snapshot_filter: SnapshotFilter) -> None:  # fmt: skip
    """Write new snapshots without the paths --exclude matches: of the snapshots named, or
    with none named of every snapshot that passes --host/--tag/--path, as restic.

    New trees are stored; file data is neither read nor written. Each new snapshot keeps
    the old one's time, host, paths and tags and names it as 'original'; a snapshot
    holding no match is left alone. With --forget the old snapshots go to forgotten/, so
    that two runs of 'snapfs prune --repack-threshold 1' remove the bytes left out from the
    repository (README: "Erasing a file").

    \b
    Examples:
      snapfs rewrite --exclude '/home/*/.aws' --exclude '*.pem' --dry-run
      snapfs rewrite --host db1 --exclude-file erase.txt --forget
    """
    patterns = list(excludes) + [p for f in exclude_files for p in read_exclude_file(f)]
    if not patterns:
        raise click.UsageError("nothing to leave out: give --exclude or --exclude-file")
    with ctx.open() as repo:
        snaps = chosen(repo, selectors, snapshot_filter)
        done = rewrite(repo, snaps, patterns, forget=forget, dry_run=dry_run)
    for r in done:
        _show(r, dry_run=dry_run, forget=forget, as_json=as_json)
    if not as_json:
        verb = "would be rewritten" if dry_run else "rewritten"
        click.echo(f"{len(done)} of {len(snaps)} snapshots {verb}")


def _show(r: Replaced, *, dry_run: bool, forget: bool, as_json: bool) -> None:
    if as_json:
        emit_json({"old": r.old.id, "new": r.new.id if r.new else None,
                   "forgotten": forget and not dry_run, "removed": list(r.removed)})  # fmt: skip
        return
    if r.new is None:
        click.echo(f"snapshot {r.old.short_id} would lose:")
    else:
        then = ", forgotten" if forget else ""
        click.echo(f"snapshot {r.old.short_id} rewritten as {r.new.short_id}{then}; left out:")
    for path in r.removed:
        click.echo(f"  {escaped(path)}")
