from __future__ import annotations

import click

from snapfs.cli.main import Context, pass_ctx
from snapfs.cli.render import printable


@click.command("unlock")
@click.option("--remove-all", is_flag=True, help="Remove every lock, not only stale ones.")
@pass_ctx
def command(ctx: Context, remove_all: bool) -> None:
    """Remove stale locks (not refreshed for 30 minutes, or whose process is gone)."""
    with ctx.open() as repo:
        removed = repo.remove_stale_locks(everything=remove_all)
    for held in removed:
        click.echo(printable(f"removed lock {held.describe()}"))
    click.echo(f"{len(removed)} locks removed")
