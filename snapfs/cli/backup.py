from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from snapfs.backup import Scan, backup
from snapfs.cli.main import EXIT_OK, EXIT_PARTIAL, Context, exclude_option, pass_ctx
from snapfs.cli.render import emit_json, progress, progress_shown, say, size
from snapfs.errors import SnapfsError
from snapfs.events import Event, FileWarning
from snapfs.progress import Tally
from snapfs.sources.base import S3_BACKUP_WORKERS
from snapfs.sources.stream import (
    DEFAULT_NAME,
    StreamSource,
    check_name,
    command_source,
    stdin_source,
)

if TYPE_CHECKING:  # boto3 loads only for an S3 source
    from snapfs.sources.s3 import S3Source


@click.command("backup")
@click.argument("paths", nargs=-1, type=click.Path())
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
@click.option(
    "--stdin", "from_stdin", is_flag=True, help="Back up standard input as one file, /NAME."
)
@click.option(
    "--stdin-from-command",
    "from_command",
    is_flag=True,
    help="Run the command given after -- and back up its standard output as /NAME; "
    "one that exits non-zero saves no snapshot.",
)
@click.option(
    "--stdin-filename",
    "stdin_name",
    metavar="NAME",
    help=f"The file's name at the snapshot's root (default: {DEFAULT_NAME}).",
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
    from_stdin: bool,
    from_command: bool,
    stdin_name: str | None,
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

    With --stdin, standard input is stored as the file /NAME (--stdin-filename, default
    stdin); with --stdin-from-command, the standard output of the command after -- (its
    secrets belong in its environment, PGPASSWORD and the like, not in its arguments).
    Nightly dumps deduplicate against each other; snapfs dump latest /NAME gives the bytes
    back. A command that exits non-zero saves no snapshot: exit 1, its status and the last
    lines of its stderr.

    \b
    Examples:
      snapfs backup /data/lake --tag nightly
      snapfs backup /data/lake --exclude '*.tmp' --exclude '/data/lake/scratch'
      snapfs backup s3://lake/raw --source-endpoint https://s3.other.example
      snapfs backup --stdin-from-command --stdin-filename db.sql -- pg_dump -d shop
      mysqldump shop | snapfs backup --stdin --stdin-filename shop.sql
    """
    stream = _stream_source(paths, from_stdin, from_command, stdin_name, excludes)
    source = stream or _s3_source(paths, source_endpoint, source_profile)
    tally = Tally()

    def on_event(event: Event) -> None:
        tally(event)
        if isinstance(event, FileWarning):
            if as_json:
                emit_json({"message_type": "error", "item": event.path, "error": event.error})
            else:
                say(f"warning: {event.path}: {event.error}")

    # While the repository unlocks; an S3 source is not counted ahead (a second listing),
    # nor a stream (known once read).
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
                workers=S3_BACKUP_WORKERS if source is not None and stream is None else None,
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

    return S3Source(list(paths), endpoint_url=endpoint, profile=profile, callers=S3_BACKUP_WORKERS)


def _stream_source(
    paths: tuple[str, ...], from_stdin: bool, from_command: bool, name: str | None,
    excludes: tuple[str, ...],
) -> StreamSource | None:  # fmt: skip
    """The stream --stdin or --stdin-from-command names (PATHS then being the command), None
    when neither is given."""
    if from_stdin and from_command:
        raise click.UsageError("--stdin and --stdin-from-command exclude each other")
    if not (from_stdin or from_command):
        if name is not None:
            raise click.UsageError("--stdin-filename is for --stdin and --stdin-from-command")
        if not paths:
            raise click.UsageError("missing PATHS (or --stdin, --stdin-from-command)")
        return None
    if excludes:
        raise click.UsageError("--exclude is for paths, not a stream")
    try:
        check_name(name or DEFAULT_NAME)
    except SnapfsError as e:
        raise click.UsageError(str(e)) from None
    if from_stdin:
        if paths:
            raise click.UsageError("--stdin backs up standard input: give no PATHS")
        if sys.stdin.isatty():
            raise click.UsageError("--stdin: standard input is a terminal, not a stream")
        return stdin_source(name or DEFAULT_NAME)
    if not paths:
        raise click.UsageError("--stdin-from-command needs a command: -- CMD ARG...")
    return command_source(list(paths), name or DEFAULT_NAME)
