from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import cell, emit_json, size, stdout
from snapfs.cli.tables import table_json
from snapfs.snapshot import Snapshot, SnapshotFilter, filter_snapshots, sort_by_time


def snapshot_json(s: Snapshot) -> dict[str, object]:
    return {
        "id": s.id, "short_id": s.short_id, "time": s.time, "host": s.host, "user": s.user,
        "tags": s.tags, "paths": s.paths, "source": s.source, "tree": s.tree, "parent": s.parent,
        "tables": [table_json(t) for t in s.tables],
        "original": s.original, "program_version": s.program_version,
        "summary": {"files": s.summary.files, "dirs": s.summary.dirs, "bytes": s.summary.bytes,
                    "bytes_added": s.summary.bytes_added,
                    "stored_bytes_added": s.summary.stored_bytes_added},
    }  # fmt: skip


@click.command("snapshots")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of snapshots.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, as_json: bool, snapshot_filter: SnapshotFilter) -> None:
    """List snapshots, oldest first.

    \b
    Examples:
      snapfs snapshots
      snapfs snapshots --host db1 --tag nightly,db --tag weekly --path /var/lib/db
    """
    with ctx.open() as repo:
        snaps = sort_by_time(filter_snapshots(repo.snapshots(), snapshot_filter))
    if as_json:
        emit_json([snapshot_json(s) for s in snaps])
        return
    table = Table(box=None, header_style="bold")
    for col in ("ID", "Time", "Host", "Tags", "Paths", "Files", "Size", "Added"):
        right = col in ("Files", "Size", "Added")
        table.add_column(
            col, justify="right" if right else "left", no_wrap=col != "Paths", overflow="fold"
        )
    for s in snaps:
        table.add_row(
            s.short_id,
            s.datetime.strftime("%Y-%m-%d %H:%M:%S"),
            cell(s.host),
            cell(",".join(s.tags)),
            Text("\n").join(cell(p) for p in s.paths),
            str(s.summary.files),
            size(s.summary.bytes),
            size(s.summary.bytes_added),
        )
    stdout().print(table)
    stdout().print(f"{len(snaps)} snapshots")
