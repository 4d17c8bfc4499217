"""``snapfs daemon``: run the config file's jobs on their schedules, in the foreground."""

from __future__ import annotations

import os
import shutil
import sys

import click

from snapfs.cli.main import Context, pass_ctx
from snapfs.jobs.config import load_config
from snapfs.jobs.daemon import run_daemon, systemd_unit


@click.command("daemon")
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="The jobs' config file (as the global --config; else $SNAPFS_CONFIG, "
    "~/.config/snapfs/snapfs.toml, /etc/snapfs/snapfs.toml).",
)
@click.option(
    "--print-systemd-unit", is_flag=True, help="Print a systemd unit running this daemon; exit."
)
@pass_ctx
def command(ctx: Context, config_file: str | None, print_systemd_unit: bool) -> None:
    """Run the jobs on their schedules until SIGTERM or SIGINT (a step running finishes
    first). Logs a line per event to stderr; one job at a time, the one due first first;
    an overdue job runs once; a job running elsewhere is skipped to its next slot.

    \b
    Examples:
      snapfs daemon --config /etc/snapfs/snapfs.toml
      snapfs daemon --config /etc/snapfs/snapfs.toml --print-systemd-unit \\
        > /etc/systemd/system/snapfs.service
    """
    config = load_config(config_file or ctx.config_file)  # a bad file: exit 2, before anything
    if print_systemd_unit:
        click.echo(systemd_unit(_snapfs_path(), str(config.path.absolute())), nl=False)
        return
    run_daemon(config)


def _snapfs_path() -> str:
    """The absolute path of the ``snapfs`` this is, for ExecStart."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "snapfs" and os.path.exists(argv0):
        return os.path.abspath(argv0)
    found = shutil.which("snapfs")
    return os.path.abspath(found) if found else f"{sys.executable} -m snapfs"
