from __future__ import annotations

import click

from snapfs.cli.main import Context, pass_ctx


@click.command("tui")
@pass_ctx
def command(ctx: Context) -> None:
    """Browse, back up, restore, diff, prune and mount in a terminal UI.

    The password comes from SNAPFS_PASSWORD_FILE or SNAPFS_PASSWORD, else the TUI asks.
    Press j for the jobs of the config file (--config, as for `snapfs jobs`).

    \b
    Example:
      snapfs -r /backups/lake tui
    """
    location = ctx.location()
    password = ctx.known_password()
    from tui.app import SnapfsApp  # here, so only this command loads Textual

    SnapfsApp(location, password, s3_endpoint=ctx.s3_endpoint, config_file=ctx.config_file).run()
