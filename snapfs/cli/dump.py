from __future__ import annotations

import sys

import click

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.errors import IntegrityError, PathNotFound
from snapfs.snapshot import SnapshotFilter
from snapfs.tree import FILE
from snapfs.walk import resolve


@click.command("dump")
@click.argument("snapshot")
@click.argument("path")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, snapshot: str, path: str, snapshot_filter: SnapshotFilter) -> None:
    """Write the contents of file PATH in SNAPSHOT (an id, a unique prefix, or 'latest':
    the newest that passes --host/--tag/--path) to standard output.

    Exit 1 when a chunk of the file is damaged or missing: the error names the file and
    how many bytes were written before it (what came before is intact).

    \b
    Examples:
      snapfs dump latest /data/lake/exports/customers.csv > customers.csv
      snapfs dump latest --host db1 /etc/db.conf
    """
    with ctx.open() as repo:
        snap = repo.find_snapshot(snapshot, snapshot_filter)
        node = resolve(repo, bytes.fromhex(snap.tree), path)
        if node is None or node.type != FILE:
            raise PathNotFound(f"{path}: not a regular file")
        out = sys.stdout.buffer
        written = 0
        for blob_id in node.content:
            try:
                data = repo.read_blob(blob_id)
            except IntegrityError as e:
                out.flush()
                raise IntegrityError(f"{path}: {e}; {written} bytes written before it") from None
            out.write(data)
            written += len(data)
        out.flush()
