from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from snapfs.cli.main import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    Context,
    pass_ctx,
    replica_password_option,
    snapshot_filter_options,
)
from snapfs.cli.render import emit_json, progress, say, size
from snapfs.events import Event, FileWarning
from snapfs.progress import Tally
from snapfs.restore import DamagedFile, RestoreSource, RestoreSummary, restore
from snapfs.snapshot import Snapshot, SnapshotFilter
from snapfs.tables.catalog import CatalogError, IcebergCatalog

if TYPE_CHECKING:
    from snapfs.repository import Repository


@click.command("restore")
@click.argument("snapshot", metavar="SNAPSHOT[:PATH]")
@click.option(
    "-t",
    "--target",
    required=True,
    help="Directory, or s3://BUCKET/PREFIX, to restore into; PATH/a/b comes back as TARGET/a/b.",
)
@click.option(
    "--target-endpoint",
    metavar="URL",
    help="The S3 server of an s3:// target, when it is not the repository's.",
)
@click.option(
    "--target-profile", metavar="NAME", help="The AWS profile of an s3:// target's credentials."
)
@click.option("--include", "includes", multiple=True, metavar="GLOB", help="Restore only matches.")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="Leave out matches.")
@click.option(
    "--verify",
    is_flag=True,
    help="Reread restored files, and those kept from an earlier run, and check every chunk.",
)
@click.option(
    "--allow-damaged",
    is_flag=True,
    help="Write files that have damaged or missing chunks too, those byte ranges zero-filled "
    "(each named in a warning); by default such files are left out.",
)
@click.option(
    "--from-replica",
    metavar="REPLICA",
    help="Read what is damaged or missing here from REPLICA (a repository kept by "
    "'snapfs copy', either way), each blob verified against this repository's id.",
)
@replica_password_option
@click.option(
    "--iceberg-catalog",
    metavar="URI",
    help="Register each Iceberg table restored in the pyiceberg SQL catalog at URI (a "
    "SQLAlchemy URI, e.g. sqlite:////lake/catalog.db) as NS.NAME, from its directory "
    ".../NS/NAME; a directory target only.",
)
@click.option(
    "--iceberg-catalog-name",
    metavar="NAME",
    default="default",
    show_default=True,
    help="The catalog's name in that database (pyiceberg's load_catalog(NAME)).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: status, then a summary.")
@snapshot_filter_options
@pass_ctx
def command(
    ctx: Context,
    snapshot: str,
    target: str,
    target_endpoint: str | None,
    target_profile: str | None,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    verify: bool,
    allow_damaged: bool,
    from_replica: str | None,
    from_password_file: str | None,
    iceberg_catalog: str | None,
    iceberg_catalog_name: str,
    as_json: bool,
    snapshot_filter: SnapshotFilter,
) -> int:
    """Restore SNAPSHOT (an id, a unique prefix, or 'latest': the newest that passes
    --host/--tag/--path) into TARGET; with :PATH,
    only the directory PATH of the snapshot (its files come back below TARGET as they are
    below PATH; --include/--exclude then match paths below PATH).

    Files already restored (same size and mtime) are skipped, so an interrupted restore
    can simply be run again. Nothing is written outside TARGET: no symlink below it (from
    the snapshot or already there) is followed, and one that stands where the snapshot has
    an entry is replaced.

    An s3://BUCKET/PREFIX target gets each file as the object PREFIX/<its path below PATH>:
    the original key and metadata for files of an S3 backup; objects already identical
    there are left alone (resume). Only regular files go; the bucket must exist.

    A file with a damaged or missing chunk (see 'snapfs check --read-data') is named in a
    warning and left out of TARGET (no partial file is left under its name); every other
    file is restored exactly. With --allow-damaged it is written, the damaged byte ranges
    zero-filled, and the warning names the ranges (a later restore into TARGET takes it as
    restored: remove it first once the repository is repaired). With --from-replica,
    what is damaged here is read from the replica instead (same path in the snapshot's
    copy there, verified against this repository's blob ids): only what neither has is
    named.

    Exit 3 when some entries were not restored or are damaged (each is named in a warning,
    and in the --json summary's "damaged"); 1 when --verify finds a difference, PATH is no
    directory of the snapshot, or the target bucket is missing or refuses the credentials.

    \b
    Examples:
      snapfs restore latest --target /tmp/r
      snapfs restore latest --host db1 --target /tmp/db1
      snapfs restore 1a2b3c4d --target /tmp/r --include '/data/lake/warehouse/sales/*'
      snapfs restore latest:/data/lake/sales --target /tmp/sales
      snapfs restore latest:lake/raw --target s3://restored/raw --target-endpoint http://h:8333
      snapfs restore latest --target /tmp/r --from-replica /mnt/offsite/lake
      snapfs restore latest:/lake/shop/orders --target /new/shop/orders \\
        --iceberg-catalog sqlite:////new/catalog.db
    """
    spec, _, path = snapshot.partition(":")
    to_s3 = target.startswith("s3://")
    if not to_s3 and (target_endpoint or target_profile):
        raise click.UsageError("--target-endpoint and --target-profile need an s3:// target")
    if to_s3 and allow_damaged:
        raise click.UsageError("--allow-damaged writes to a directory, not to an s3:// target")
    if to_s3 and from_replica:
        raise click.UsageError("--from-replica restores to a directory, not to an s3:// target")
    if to_s3 and iceberg_catalog:
        raise click.UsageError("--iceberg-catalog registers tables restored to a directory")
    if not to_s3 and os.path.isfile(target):
        raise click.BadParameter(f"{target} is a file", param_hint="'--target'")
    catalog = _catalog(iceberg_catalog, iceberg_catalog_name) if iceberg_catalog else None
    tally = Tally()

    def on_event(event: Event) -> None:
        tally(event)
        if isinstance(event, FileWarning):
            say(f"warning: {event.path}: {event.error}")

    with ExitStack() as stack:
        repo = stack.enter_context(ctx.open())
        snap = repo.find_snapshot(spec, snapshot_filter)
        source: RestoreSource = repo
        if from_replica:
            from snapfs.heal import Healer, ReplicaReads

            replica = stack.enter_context(ctx.replica(from_replica, from_password_file).open())
            source = ReplicaReads(repo, Healer(repo, replica, [snap]))
        if to_s3:
            endpoint = target_endpoint or ctx.s3_endpoint  # else the repository's server
            run = _to_s3(snap, target, endpoint, target_profile, repo)
        else:
            run = _to_disk(source, snap, target, verify, allow_damaged, catalog)
        with progress(tally, "restore", enabled=not ctx.quiet, json_lines=as_json):
            summary = run(path, list(includes), list(excludes), on_event)
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
                "damaged": [_damaged_json(d) for d in summary.damaged],
            }
        )
    elif not ctx.quiet:
        click.echo(
            f"restored {summary.files} files ({size(summary.bytes)}), "
            f"{summary.dirs} directories from {snap.short_id} to {target}"
            + (f"; {summary.skipped} already there" if summary.skipped else "")
            + _damaged_note(summary.damaged)
        )
    if summary.verify_errors:
        return EXIT_ERROR
    return EXIT_PARTIAL if summary.warnings else EXIT_OK


def _damaged_json(d: DamagedFile) -> dict[str, object]:
    ranges = [{"offset": offset, "length": length} for offset, length in d.ranges]
    return {"path": d.path, "error": d.error, "ranges": ranges, "written": d.written}


def _damaged_note(damaged: list[DamagedFile]) -> str:
    written = sum(d.written for d in damaged)
    if not damaged:
        return ""
    if written:
        return f"; {written} damaged files written with zero-filled ranges"
    return f"; {len(damaged)} damaged files not restored"


Run = Callable[[str, list[str], list[str], Callable[[Event], None]], RestoreSummary]


def _catalog(uri: str, name: str) -> IcebergCatalog:
    """Opened before the restore: a wrong URI is said before anything is written."""
    try:
        return IcebergCatalog(uri, name)
    except CatalogError as e:
        raise click.BadParameter(str(e), param_hint="'--iceberg-catalog'") from None


def _to_disk(
    repo: RestoreSource,
    snap: Snapshot,
    target: str,
    verify: bool,
    damaged: bool,
    catalog: IcebergCatalog | None,
) -> Run:
    def run(
        path: str, inc: list[str], exc: list[str], on: Callable[[Event], None]
    ) -> RestoreSummary:
        return restore(repo, snap, target, includes=inc, excludes=exc, verify=verify,
                       on_event=on, path=path, allow_damaged=damaged,
                       catalog=catalog)  # fmt: skip

    return run


def _to_s3(
    snap: Snapshot, url: str, endpoint: str | None, profile: str | None, repo: Repository
) -> Run:
    from snapfs.restore_s3 import restore_to_s3  # boto3 loads for S3 targets only
    from snapfs.targets.s3 import S3Target

    def run(
        path: str, inc: list[str], exc: list[str], on: Callable[[Event], None]
    ) -> RestoreSummary:
        with S3Target(url, endpoint_url=endpoint, profile=profile) as t:
            return restore_to_s3(repo, snap, t, path=path, includes=inc, excludes=exc, on_event=on)

    return run
