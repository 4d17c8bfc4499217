from __future__ import annotations

import click

from snapfs.cli.main import EXIT_OK, EXIT_PARTIAL, Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import emit_json, say
from snapfs.repair import repair_index, repair_snapshots
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

    Exit 3 when some snapshot was rewritten (each loss is named), 0 when none needed it.

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
    return EXIT_PARTIAL if r.repaired else EXIT_OK
