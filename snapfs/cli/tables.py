from __future__ import annotations

import click
from rich.table import Table

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import cell, emit_json, size, stdout
from snapfs.snapshot import SnapshotFilter, TableRecord


def table_json(t: TableRecord) -> dict[str, object]:
    """``metadata`` only for a format that has one (Iceberg): Delta's records read as before."""
    fields: dict[str, object] = {"path": t.path, "format": t.format, "version": t.version,
                                 "commit_time": t.commit_time, "files": t.files,
                                 "bytes": t.bytes, "torn": t.torn}  # fmt: skip
    if t.metadata is not None:
        fields["metadata"] = t.metadata
    return fields


@click.command("tables")
@click.argument("snapshot")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of the tables.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, snapshot: str, as_json: bool, snapshot_filter: SnapshotFilter) -> None:
    """List the tables SNAPSHOT (an id, a unique prefix, or 'latest': the newest that
    passes --host/--tag/--path) pinned: each table's path, format, the version it holds
    (Delta: the log version; Iceberg: the current snapshot's id), that version's commit
    time, data files and bytes; --json gives an Iceberg table's pinned metadata file as
    "metadata". A torn table lost, during the backup, a file its version needs (the
    backup exited 3).

    \b
    Example:
      snapfs tables latest --host lake-01
    """
    with ctx.open() as repo:
        snap = repo.find_snapshot(snapshot, snapshot_filter)
    if as_json:
        emit_json([table_json(t) for t in snap.tables])
        return
    table = Table(box=None, header_style="bold")
    for col in ("Path", "Format", "Version", "Committed", "Files", "Size", "State"):
        right = col in ("Version", "Files", "Size")
        table.add_column(
            col, justify="right" if right else "left", no_wrap=col != "Path", overflow="fold"
        )
    for t in snap.tables:
        table.add_row(
            cell(t.path),
            cell(t.format),
            str(t.version),
            cell(t.commit_time[:19].replace("T", " ")),  # text from the repository: escaped
            str(t.files),
            size(t.bytes),
            "torn" if t.torn else "whole",
        )
    stdout().print(table)
    stdout().print(f"{len(snap.tables)} tables in snapshot {snap.short_id}")
