from __future__ import annotations

import click

from snapfs.cli.main import Context, pass_ctx
from snapfs.repository import Repository
from snapfs.store.url import open_backend


@click.command("init")
@pass_ctx
def command(ctx: Context) -> None:
    """Create a new encrypted repository at REPO.

    \b
    Example:
      SNAPFS_PASSWORD_FILE=~/.snapfs-pass snapfs -r /backups/lake init
    """
    location = ctx.location()
    repo = Repository.init(open_backend(location), ctx.password(confirm=True))
    click.echo(f"created snapfs repository {repo.config.id[:10]} at {location}")
    click.echo("Keep the password safe: without it the data cannot be recovered.")
