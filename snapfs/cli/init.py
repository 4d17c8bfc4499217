from __future__ import annotations

import click

from snapfs.cli.main import Context, new_password, pass_ctx
from snapfs.repository import Repository


@click.command("init")
@pass_ctx
def command(ctx: Context) -> None:
    """Create a new encrypted repository at REPO.

    For s3://bucket/prefix the bucket is created if it does not exist yet.

    \b
    Example:
      SNAPFS_PASSWORD_FILE=~/.snapfs-pass snapfs -r /backups/lake init
      snapfs -r s3://backups/lake --s3-endpoint http://127.0.0.1:8333 init
    """
    location = ctx.location()
    password = new_password(ctx.password(confirm=True))
    repo = Repository.init(ctx.backend(create=True), password)
    click.echo(f"created snapfs repository {repo.config.id[:10]} at {location}")
    click.echo("Keep the password safe: without it the data cannot be recovered.")
