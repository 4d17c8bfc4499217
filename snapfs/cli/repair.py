from __future__ import annotations

import click

from snapfs.cli.main import (
    EXIT_OK,
    EXIT_PARTIAL,
    Context,
    pass_ctx,
    replica_password_option,
    snapshot_filter_options,
)
from snapfs.cli.render import emit_json, say
from snapfs.errors import SnapfsError
from snapfs.heal import Healer
from snapfs.prefix import match_prefix
from snapfs.repair import repair_index, repair_packs, repair_snapshots
from snapfs.snapshot import SnapshotFilter, filter_snapshots, select


@click.group("repair")
def command() -> None:
    """Rebuild what damage took from what is left (see 'snapfs check')."""


@command.command("index")
@click.option(
    "--read-all-packs",
    is_flag=True,
    help="Index every pack from its own header, trusting no index file (when check says "
    "the index disagrees with a pack header).",
)
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@pass_ctx
def index_command(ctx: Context, read_all_packs: bool, as_json: bool) -> int:
    """Rebuild the index from the index files that still read and the packs' own headers,
    when index files are lost or damaged. The new index files are written before the old
    ones are removed; packs a pending prune condemned stay out (prune decides on them).

    Exit 3 when some pack's header does not read (each is named: its blobs stay unindexed,
    the pack stored); 0 otherwise. Then run 'snapfs check --read-data'.

    \b
    Examples:
      snapfs repair index
      snapfs repair index --read-all-packs
    """
    with ctx.open() as repo:
        r = repair_index(repo, read_all_packs=read_all_packs)
    if as_json:
        emit_json(r.__dict__)
    else:
        for name in r.damaged_index_files:
            say(f"warning: index file {name[:16]} is damaged: replaced")
        for pack_id in r.dropped_packs:
            say(f"warning: pack {pack_id[:16]} is in the index but not stored: dropped")
        for line in r.unreadable_packs:
            say(f"warning: {line}: its blobs are not indexed")
        if not ctx.quiet:
            click.echo(
                f"indexed {r.blobs} blobs in {r.packs} packs ({r.headers_read} from their "
                f"headers) into {r.index_files_written} index files; "
                f"{r.index_files_removed} old index files removed"
            )
    return EXIT_OK if r.complete else EXIT_PARTIAL


@command.command("snapshots")
@click.argument("snapshots", nargs=-1)
@click.option("--read-data", is_flag=True, help="Also drop files whose chunks do not verify.")
@click.option("-n", "--dry-run", is_flag=True, help="Name what would be dropped; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per repaired snapshot.")
@snapshot_filter_options
@pass_ctx
def snapshots_command(ctx: Context, snapshots: tuple[str, ...], read_data: bool, dry_run: bool,
                      as_json: bool, snapshot_filter: SnapshotFilter) -> int:  # fmt: skip
    """Rewrite SNAPSHOTS (default: all that pass --host/--tag/--path) without what is lost:
    files with a chunk the index lacks (with --read-data, also one whose bytes are damaged)
    are dropped, directories whose tree is lost become empty. Each rewritten snapshot is
    tagged 'repaired'; its original moves to forgotten/ ('snapfs undelete ID' brings it
    back until a prune). Run 'snapfs repair index' first: what only the index lost is not
    lost.

    A snapshot whose own file is damaged cannot be rewritten: it is named, and left as it
    is (every command passes over it).

    Exit 3 when some snapshot was rewritten (each loss is named) or some snapshot file is
    damaged, 0 when none needed it.

    \b
    Examples:
      snapfs repair snapshots --dry-run
      snapfs repair snapshots --read-data latest
    """
    with ctx.open() as repo:
        everything = repo.snapshots()
        if snapshots:
            chosen = [select(everything, name, snapshot_filter) for name in snapshots]
        else:
            chosen = filter_snapshots(everything, snapshot_filter)
        r = repair_snapshots(repo, chosen, read_data=read_data, dry_run=dry_run)
        unreadable = bool(repo.snapshot_problems)  # named by the command's last lines
    for done in r.repaired:
        new = done.repaired
        if as_json:
            emit_json({"message_type": "repaired", "original": done.original.id,
                       "repaired": new.id if new else None, "lost": done.lost})  # fmt: skip
            continue
        for line in done.lost:
            say(f"warning: snapshot {done.original.short_id}: {line}")
        if not ctx.quiet:
            sid = done.original.short_id
            if new is None:
                click.echo(f"snapshot {sid} would be rewritten ({len(done.lost)} losses)")
            else:
                click.echo(f"snapshot {sid} rewritten as {new.short_id} ({len(done.lost)} "
                           "losses); the original is in forgotten/")  # fmt: skip
    if not as_json and not ctx.quiet:
        click.echo(f"{len(r.repaired)} snapshots repaired, {r.intact} intact")
    return EXIT_PARTIAL if r.repaired or unreadable else EXIT_OK


@command.command("packs")
@click.option(
    "--from",
    "replica_location",
    required=True,
    metavar="REPLICA",
    help="The replica to heal from: a repository kept by 'snapfs copy' (either way).",
)
@replica_password_option
@click.option(
    "--packs",
    "pack_ids",
    multiple=True,
    metavar="ID",
    help="Only these packs (ids or unique prefixes; repeatable); default: read every pack.",
)
@click.option(
    "-n", "--dry-run", is_flag=True, help="Find what is damaged, and match it; write nothing."
)
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@pass_ctx
def packs_command(ctx: Context, replica_location: str, from_password_file: str | None,
                  pack_ids: tuple[str, ...], dry_run: bool, as_json: bool) -> int:  # fmt: skip
    """Heal damaged or missing packs from REPLICA: every pack is read (as 'check
    --read-data' does; --packs: only those); each blob that does not verify is read from
    the replica at the same path of the same snapshot's copy there, and kept only if it
    hashes to this repository's id for it. The intact blobs of a damaged pack and the
    healed ones go into new packs; the index is rewritten; only then are the damaged packs
    removed. A blob no replica has is named, and its pack kept for it: then run 'snapfs
    repair snapshots --read-data'.

    Exit 3 when some blob could not be healed, 0 otherwise. Then 'snapfs check
    --read-data' passes.

    \b
    Examples:
      snapfs repair packs --from /mnt/offsite/lake --dry-run
      SNAPFS_FROM_PASSWORD_FILE=~/.offsite snapfs repair packs --from s3://offsite/lake
    """
    with ctx.open() as repo, ctx.replica(replica_location, from_password_file).open() as replica:
        chosen = None
        if pack_ids:
            known = sorted(set(repo.list_packs()) | set(repo.index.pack_ids))
            chosen = [match_prefix(known, p, "pack", SnapfsError) for p in pack_ids]
        r = repair_packs(repo, Healer(repo, replica), chosen, dry_run=dry_run)
    if as_json:
        emit_json(r.__dict__)
        return EXIT_OK if r.complete else EXIT_PARTIAL
    for line in r.damaged_packs:
        say(f"damaged: {line}")
    for line in r.lost:
        say(f"warning: {line}: not healed")
    if not ctx.quiet:
        would = "would be " if dry_run else ""
        click.echo(
            f"read {r.packs_read} packs: {len(r.damaged_packs)} damaged, {r.damaged_blobs} "
            f"blobs damaged or missing; {r.healed} {would}healed from the replica, "
            f"{r.elsewhere} stored elsewhere, {len(r.lost)} not healed; {r.salvaged} intact "
            f"blobs {would}moved; {len(r.packs_removed)} packs {would}removed"
            + (f", {len(r.packs_kept)} kept for what was not healed" if r.packs_kept else "")
        )
    return EXIT_OK if r.complete else EXIT_PARTIAL
