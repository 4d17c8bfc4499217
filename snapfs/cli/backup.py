from __future__ import annotations

from typing import TYPE_CHECKING

import click

from snapfs.backup import Scan, backup
from snapfs.cli.main import EXIT_OK, EXIT_PARTIAL, Context, exclude_option, pass_ctx
from snapfs.cli.render import emit_json, progress, progress_shown, say, size
from snapfs.events import Event, FileWarning
from snapfs.progress import Tally

if TYPE_CHECKING:  # boto3 loads only for an S3 source
    from snapfs.sources.s3 import S3Source

# Threads reading objects at once: a GET is mostly waiting, so more than the cores.
S3_WORKERS = 16


@click.command("backup")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@click.option("--host", help="Host name to record (default: this machine's).")
@exclude_option
@click.option(
    "--json", "as_json", is_flag=True, help="JSON lines: status while running, then a summary."
)
@click.option(
    "--source-endpoint",
    metavar="URL",
    help="S3 sources: the server they are on, when not the repository's (else AWS_ENDPOINT_URL).",
)
@click.option(
    "--source-profile",
    metavar="NAME",
    help="S3 sources: the AWS profile whose credentials read them (else the standard chain).",
)
@click.option(
    "--no-tables",
    is_flag=True,
    help="Back up Delta and Iceberg tables as plain files, every file, instead of pinned at "
    "one version.",
)
@pass_ctx
def command(
    ctx: Context,
    paths: tuple[str, ...],
    tags: tuple[str, ...],
    host: str | None,
    excludes: tuple[str, ...],
    as_json: bool,
    source_endpoint: str | None,
    source_profile: str | None,
    no_tables: bool,
) -> int:
    """Back up PATHS into a new snapshot.

    PATHS are local paths, or S3 prefixes (s3://BUCKET/PREFIX: the object s3://B/P/K is
    stored at B/P/K), not both in one snapshot. Files unchanged since the last snapshot of
    the same host and paths are not read again (objects: same key, size, ETag and
    LastModified). A Delta table (a directory holding _delta_log/) is pinned at its newest
    committed version, an Iceberg table (metadata/ holding *.metadata.json) at its current
    metadata file: its directory keeps the log or metadata up to that version and the files
    it and its older versions read, nothing a later commit wrote (snapfs tables lists
    them). Exit
    code 3: the snapshot was saved but some files could not be read, or a table is torn (a
    file its version needs was deleted during the backup).

    \b
    Examples:
      snapfs backup /data/lake --tag nightly
      snapfs backup /data/lake --exclude '*.tmp' --exclude '/data/lake/scratch'
      snapfs backup s3://lake/raw --source-endpoint https://s3.other.example
    """
    source = _s3_source(paths, source_endpoint, source_profile)
    tally = Tally()

    def on_event(event: Event) -> None:
        tally(event)
        if isinstance(event, FileWarning):
            if as_json:
                emit_json({"message_type": "error", "item": event.path, "error": event.error})
            else:
                say(f"warning: {event.path}: {event.error}")

    # While the repository unlocks; an S3 source is not counted ahead (a second listing).
    scan = Scan(list(paths), list(excludes), tally) if source is None else None
    try:
        repo = ctx.open()
    except BaseException:
        if scan is not None:
            scan.stop()
        if source is not None:
            source.close()
        raise
    shown = progress_shown(enabled=not ctx.quiet, json_lines=as_json)
    with repo, progress(tally, "backup", enabled=not ctx.quiet, json_lines=as_json):
        try:
            snap = backup(
                repo,
                list(paths),
                tags=list(tags),
                host=host,
                excludes=list(excludes),
                on_event=on_event,
                estimate=shown and source is None,
                scan=scan,
                source=source,
                workers=S3_WORKERS if source is not None else None,
                tables=not no_tables,
            )
        finally:
            if source is not None:
                source.close()
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


def _s3_source(
    paths: tuple[str, ...], endpoint: str | None, profile: str | None
) -> S3Source | None:
    """The S3 source PATHS name, None when they are local paths."""
    remote = [p.startswith("s3://") for p in paths]
    if any(remote) and not all(remote):
        raise click.UsageError("a snapshot holds S3 sources or local paths, not both")
    if not any(remote):
        if endpoint or profile:
            raise click.UsageError("--source-endpoint and --source-profile are for s3:// sources")
        return None
    from snapfs.sources.s3 import S3Source

    return S3Source(list(paths), endpoint_url=endpoint, profile=profile, callers=S3_WORKERS)
