from __future__ import annotations

import click

from snapfs.cli.main import Context, pass_ctx
from snapfs.cli.render import emit_json
from snapfs.diff import diff_trees


@click.command("diff")
@click.argument("first")
@click.argument("second")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@pass_ctx
def command(ctx: Context, first: str, second: str, as_json: bool) -> None:
    """Show what changed from snapshot FIRST to SECOND: + added, - removed, M modified,
    U metadata only.

    \b
    Example:
      snapfs diff 1a2b3c4d latest
    """
    with ctx.open() as repo:
        a, b = repo.find_snapshot(first), repo.find_snapshot(second)
        counts = {"+": 0, "-": 0, "M": 0, "U": 0}
        for change in diff_trees(repo, bytes.fromhex(a.tree), bytes.fromhex(b.tree)):
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
                click.echo(f"{change.kind}    {change.path}")
    if not as_json:
        click.echo(
            f"\nadded: {counts['+']}, removed: {counts['-']}, modified: {counts['M']}, "
            f"metadata only: {counts['U']}"
        )
