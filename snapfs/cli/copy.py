from __future__ import annotations

import click

from snapfs.cli.main import (
    EXIT_OK,
    EXIT_PARTIAL,
    Context,
    pass_ctx,
    snapshot_filter_options,
    source_options,
)
from snapfs.cli.render import emit_json, printable, progress, say, size
from snapfs.copy import copy_snapshots
from snapfs.progress import Tally
from snapfs.snapshot import Snapshot, SnapshotFilter, filter_snapshots, select


@click.command("copy")
@click.argument("snapshots", nargs=-1)
@source_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot.")
@snapshot_filter_options
@pass_ctx
def command(
    ctx: Context,
    snapshots: tuple[str, ...],
    from_repo: str | None,
    from_password_file: str | None,
    as_json: bool,
    snapshot_filter: SnapshotFilter,
) -> int:
    """Copy SNAPSHOTS (ids, unique prefixes or 'latest': the newest that passes
    --host/--tag/--path; when none are named, all that pass) from the --from-repo
    repository into REPO.

    Snapshots REPO holds a copy of already are skipped, so the same command can run every
    night; it then reads only the files that changed since the last copy. The copies are
    encrypted with REPO's key and deduplicated against what REPO stores.

    A snapshot with a damaged or missing part (or an entry no file system allows) is not
    copied: a warning names it and why, the others are copied, and the exit status is 3.

    \b
    Examples:
      export SNAPFS_FROM_REPOSITORY=/backups/lake SNAPFS_FROM_PASSWORD_FILE=~/.snapfs-pass
      snapfs -r s3://offsite/lake copy
      snapfs -r /mnt/usb/lake copy latest --from-repo /backups/lake
      snapfs -r s3://offsite/lake copy --host db1 --tag nightly
    """
    source_ctx = ctx.source(from_repo, from_password_file)
    tally = Tally()

    def choose(snaps: list[Snapshot]) -> list[Snapshot]:
        if not snapshots:
            return filter_snapshots(snaps, snapshot_filter)
        chosen = (select(snaps, n, snapshot_filter) for n in snapshots)
        return list({s.id: s for s in chosen}.values())

    shown = progress(tally, "copy", enabled=not ctx.quiet, json_lines=as_json)
    with source_ctx.open() as source, ctx.open() as dest, shown:
        result = copy_snapshots(source, dest, choose, on_event=tally)
    for c in result.copied:
        if as_json:
            emit_json({"message_type": "snapshot", "original": c.original.id,
                       "copy": c.copy.id, "existed": c.existed})  # fmt: skip
        elif not ctx.quiet:
            what = f"{c.original.short_id} ({c.original.time[:19]}, {', '.join(c.original.paths)})"
            verb = "was copied already, as" if c.existed else "copied as"
            click.echo(printable(f"snapshot {what} {verb} {c.copy.short_id}"))
    for n in result.not_copied:
        if as_json:
            emit_json({"message_type": "not_copied", "original": n.original.id,
                       "error": n.error})  # fmt: skip
        say(f"warning: snapshot {n.original.short_id} is not copied: {n.error}")
    new = sum(not c.existed for c in result.copied)
    if as_json:
        emit_json({"message_type": "summary", "copied": new,
                   "skipped": len(result.copied) - new, "bytes_read": result.bytes_read,
                   "blobs_added": result.blobs_added, "not_copied": len(result.not_copied),
                   "stored_bytes_added": result.stored_bytes})  # fmt: skip
    elif not ctx.quiet:
        click.echo(
            f"{new} snapshots copied, {len(result.copied) - new} there already; "
            f"{size(result.stored_bytes)} added to {ctx.location()}"
            + (f"; {len(result.not_copied)} not copied" if result.not_copied else "")
        )
    return EXIT_PARTIAL if result.not_copied else EXIT_OK
