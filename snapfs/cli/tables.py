from __future__ import annotations

import os

import click
from rich.table import Table
from rich.text import Text

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import cell, emit_json, size, stdout
from snapfs.snapshot import SnapshotFilter, TableRecord, filter_snapshots, table_history


def table_json(t: TableRecord) -> dict[str, object]:
    """``metadata`` only for a format that has one (Iceberg): Delta's records read as before."""
    fields: dict[str, object] = {"path": t.path, "format": t.format, "version": t.version,
                                 "commit_time": t.commit_time, "files": t.files,
                                 "bytes": t.bytes, "torn": t.torn}  # fmt: skip
    if t.metadata is not None:
        fields["metadata"] = t.metadata
    return fields


@click.command("tables")
@click.argument("snapshot", required=False)
@click.option(
    "--history",
    "history",
    metavar="PATH",
    help="Across snapshots, the version of the table at PATH each holds (no SNAPSHOT).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of the tables.")
@snapshot_filter_options
@pass_ctx
def command(
    ctx: Context,
    snapshot: str | None,
    history: str | None,
    as_json: bool,
    snapshot_filter: SnapshotFilter,
) -> None:
    """List the tables SNAPSHOT (an id, a unique prefix, or 'latest': the newest that
    passes --host/--tag/--path) pinned: each table's path, format, the version it holds
    (Delta: the log version; Iceberg: the current snapshot's id), that version's commit
    time, data files and bytes; --json gives an Iceberg table's pinned metadata file as
    "metadata". A torn table lost, during the backup, a file its version needs (the
    backup exited 3).

    With --history PATH instead of SNAPSHOT: every snapshot (that passes the filters,
    oldest first) holding the table at PATH, with the version it pinned and that commit's
    time; --json adds each snapshot's id and time to the table's fields.

    
    Examples:
      snapfs tables latest --host lake-01
      snapfs tables --history /data/lake/sales --json
    """
    if (snapshot is None) == (history is None):
        raise click.UsageError("give SNAPSHOT or --history PATH (one of them)")
    if history is not None:
        _history(ctx, os.path.abspath(history), as_json, snapshot_filter)
        return
    assert snapshot is not None
    with ctx.open() as repo:
        snap = repo.find_snapshot(snapshot, snapshot_filter)
    if as_json:
        emit_json([table_json(t) for t in snap.tables])
        return
    table = _columns("Path", "Format", "Version", "Committed", "Files", "Size", "State")
    for t in snap.tables:
        table.add_row(cell(t.path), cell(t.format), *_version_cells(t))
    stdout().print(table)
    stdout().print(f"{len(snap.tables)} tables in snapshot {snap.short_id}")


def _history(ctx: Context, path: str, as_json: bool, snapshot_filter: SnapshotFilter) -> None:
    with ctx.open() as repo:
        found = table_history(filter_snapshots(repo.snapshots(), snapshot_filter), path)
    if as_json:
        emit_json([{"snapshot": s.id, "time": s.time, **table_json(t)} for s, t in found])
        return
    table = _columns("ID", "Time", "Version", "Committed", "Files", "Size", "State")
    for s, t in found:
        table.add_row(s.short_id, s.datetime.strftime("%Y-%m-%d %H:%M:%S"), *_version_cells(t))
    stdout().print(table)
    stdout().print(Text(f"{len(found)} snapshots hold {path}"))


def _columns(*names: str) -> Table:
    table = Table(box=None, header_style="bold")
    for col in names:
        right = col in ("Version", "Files", "Size")
        table.add_column(
            col, justify="right" if right else "left", no_wrap=col != "Path", overflow="fold"
        )
    return table


def _version_cells(t: TableRecord) -> list[str | Text]:
    return [
        str(t.version),
        cell(t.commit_time[:19].replace("T", " ")),  # text from the repository: escaped
        str(t.files),
        size(t.bytes),
        "torn" if t.torn else "whole",
    ]
