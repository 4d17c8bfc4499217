from __future__ import annotations

import click

from snapfs.cli.main import Context, new_password, pass_ctx, source_options
from snapfs.repository import Repository


@click.command("init")
@click.option(
    "--copy-chunker-params",
    is_flag=True,
    help="Cut files as the --from-repo repository does, so that backups made here and "
    "snapshots copied from there deduplicate against each other.",
)
@source_options
@pass_ctx
def command(
    ctx: Context, copy_chunker_params: bool, from_repo: str | None, from_password_file: str | None
) -> None:
    """Create a new encrypted repository at REPO.

    For s3://bucket/prefix the bucket is created if it does not exist yet.

    \b
    Examples:
      SNAPFS_PASSWORD_FILE=~/.snapfs-pass snapfs -r /backups/lake init
      snapfs -r s3://backups/lake --s3-endpoint http://127.0.0.1:8333 init
      snapfs -r s3://offsite/lake init --copy-chunker-params --from-repo /backups/lake
    """
    location = ctx.location()
    chunker = None
    if copy_chunker_params:
        with ctx.source(from_repo, from_password_file).open() as source:
            chunker = source.config.chunker
    password = new_password(ctx.password(confirm=True))
    repo = Repository.init(ctx.backend(create=True), password, chunker=chunker)
    click.echo(f"created snapfs repository {repo.config.id[:10]} at {location}")
    click.echo("Keep the password safe: without it the data cannot be recovered.")
