from __future__ import annotations

import click

from snapfs.cli.main import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, Context, pass_ctx
from snapfs.cli.render import emit_json, progress, say, size
from snapfs.events import Event, FileWarning
from snapfs.progress import Tally
from snapfs.restore import restore


@click.command("restore")
@click.argument("snapshot")
@click.option(
    "-t",
    "--target",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to restore into; /a/b comes back as TARGET/a/b.",
)
@click.option("--include", "includes", multiple=True, metavar="GLOB", help="Restore only matches.")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="Leave out matches.")
@click.option(
    "--verify",
    is_flag=True,
    help="Reread restored files, and those kept from an earlier run, and check every chunk.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: status, then a summary.")
@pass_ctx
def command(
    ctx: Context,
    snapshot: str,
    target: str,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    verify: bool,
    as_json: bool,
) -> int:
    """Restore SNAPSHOT (an id, a unique prefix, or 'latest') into TARGET.

    Files already restored (same size and mtime) are skipped, so an interrupted restore
    can simply be run again. Nothing is written outside TARGET: no symlink below it (from
    the snapshot or already there) is followed, and one that stands where the snapshot has
    an entry is replaced. Exit 3 when some entries were not restored (each is named in a
    warning); 1 when --verify finds a difference.

    \b
    Examples:
      snapfs restore latest --target /tmp/r
      snapfs restore 1a2b3c4d --target /tmp/r --include '/data/lake/warehouse/sales/*'
    """
    tally = Tally()

    def on_event(event: Event) -> None:
        tally(event)
        if isinstance(event, FileWarning):
            say(f"warning: {event.path}: {event.error}")

    with ctx.open() as repo:
        snap = repo.find_snapshot(snapshot)
        with progress(tally, "restore", enabled=not ctx.quiet, json_lines=as_json):
            summary = restore(
                repo,
                snap,
                target,
                includes=list(includes),
                excludes=list(excludes),
                verify=verify,
                on_event=on_event,
            )
    for line in summary.verify_errors:
        say(f"verify: {line}")
    if as_json:
        emit_json(
            {
                "message_type": "summary",
                "snapshot_id": snap.id,
                "files": summary.files,
                "dirs": summary.dirs,
                "bytes": summary.bytes,
                "skipped": summary.skipped,
                "warnings": summary.warnings,
                "verify_errors": summary.verify_errors,
            }
        )
    elif not ctx.quiet:
        click.echo(
            f"restored {summary.files} files ({size(summary.bytes)}), "
            f"{summary.dirs} directories from {snap.short_id} to {target}"
            + (f"; {summary.skipped} already there" if summary.skipped else "")
        )
    if summary.verify_errors:
        return EXIT_ERROR
    return EXIT_PARTIAL if summary.warnings else EXIT_OK
