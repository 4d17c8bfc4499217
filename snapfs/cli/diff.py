from __future__ import annotations

import click

from snapfs.cli.main import EXIT_OK, EXIT_PARTIAL, Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import Warnings, emit_json, escaped
from snapfs.diff import diff_trees
from snapfs.snapshot import SnapshotFilter


@click.command("diff")
@click.argument("first")
@click.argument("second")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, first: str, second: str, as_json: bool,
            snapshot_filter: SnapshotFilter) -> int:  # fmt: skip
    """Show what changed from snapshot FIRST to SECOND: + added, - removed, M modified,
    U metadata only. 'latest' is the newest snapshot that passes --host/--tag/--path.

    \b
    Examples:
      snapfs diff 1a2b3c4d latest
      snapfs diff 1a2b3c4d latest --host db1

    Paths are printed as `ls -b` prints names; --json carries them exactly. Entries that
    no file system could hold are left out with a warning (exit code 3).
    """
    warn = Warnings()
    with ctx.open() as repo:
        a = repo.find_snapshot(first, snapshot_filter)
        b = repo.find_snapshot(second, snapshot_filter)
        counts = {"+": 0, "-": 0, "M": 0, "U": 0}
        changes = diff_trees(repo, bytes.fromhex(a.tree), bytes.fromhex(b.tree), on_problem=warn)
        for change in changes:
            counts[change.kind] += 1
            if as_json:
                emit_json(
                    {
                        "kind": change.kind,
                        "path": change.path,
                        "size_before": change.size_before,
                        "size_after": change.size_after,
                    }
                )
            else:
                click.echo(f"{change.kind}    {escaped(change.path)}")
    if not as_json:
        click.echo(
            f"\nadded: {counts['+']}, removed: {counts['-']}, modified: {counts['M']}, "
            f"metadata only: {counts['U']}"
        )
    return EXIT_PARTIAL if warn.count else EXIT_OK
