from __future__ import annotations

import click

from snapfs.backup import Scan, backup
from snapfs.cli.main import EXIT_OK, EXIT_PARTIAL, Context, pass_ctx
from snapfs.cli.render import emit_json, progress, progress_shown, say, size
from snapfs.events import Event, FileWarning
from snapfs.progress import Tally


@click.command("backup")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@click.option("--host", help="Host name to record (default: this machine's).")
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out paths matching GLOB (repeatable); no '/' matches base names.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="JSON lines: status while running, then a summary."
)
@pass_ctx
def command(
    ctx: Context,
    paths: tuple[str, ...],
    tags: tuple[str, ...],
    host: str | None,
    excludes: tuple[str, ...],
    as_json: bool,
) -> int:
    """Back up PATHS into a new snapshot.

    Files unchanged since the last snapshot of the same host and paths are not read again.
    Exit code 3: the snapshot was saved but some files could not be read.

    \b
    Examples:
      snapfs backup /data/lake --tag nightly
      snapfs backup /data/lake --exclude '*.tmp' --exclude '/data/lake/scratch'
    """
    tally = Tally()

    def on_event(event: Event) -> None:
        tally(event)
        if isinstance(event, FileWarning):
            if as_json:
                emit_json({"message_type": "error", "item": event.path, "error": event.error})
            else:
                say(f"warning: {event.path}: {event.error}")

    scan = Scan(list(paths), list(excludes), tally)  # while the repository unlocks
    try:
        repo = ctx.open()
    except BaseException:
        scan.stop()
        raise
    shown = progress_shown(enabled=not ctx.quiet, json_lines=as_json)
    with repo, progress(tally, "backup", enabled=not ctx.quiet, json_lines=as_json):
        snap = backup(
            repo,
            list(paths),
            tags=list(tags),
            host=host,
            excludes=list(excludes),
            on_event=on_event,
            estimate=shown,
            scan=scan,
        )
    s = snap.summary
    if as_json:
        emit_json(
            {
                "message_type": "summary",
                "snapshot_id": snap.id,
                "files": s.files,
                "dirs": s.dirs,
                "bytes": s.bytes,
                "bytes_added": s.bytes_added,
                "stored_bytes_added": s.stored_bytes_added,
                "warnings": s.warnings,
                "seconds": s.seconds,
            }
        )
    elif not ctx.quiet:
        click.echo(
            f"{s.files} files, {size(s.bytes)} in {s.seconds:.1f}s; "
            f"added {size(s.bytes_added)} ({size(s.stored_bytes_added)} stored)"
        )
        click.echo(f"snapshot {snap.short_id} saved")
    return EXIT_PARTIAL if s.warnings else EXIT_OK
