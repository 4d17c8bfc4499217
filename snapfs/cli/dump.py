from __future__ import annotations

import sys

import click

from snapfs.cli.main import Context, pass_ctx
from snapfs.errors import PathNotFound
from snapfs.tree import FILE
from snapfs.walk import resolve


@click.command("dump")
@click.argument("snapshot")
@click.argument("path")
@pass_ctx
def command(ctx: Context, snapshot: str, path: str) -> None:
    """Write the contents of file PATH in SNAPSHOT to standard output.

    \b
    Example:
      snapfs dump latest /data/lake/exports/customers.csv > customers.csv
    """
    with ctx.open() as repo:
        snap = repo.find_snapshot(snapshot)
        node = resolve(repo, bytes.fromhex(snap.tree), path)
        if node is None or node.type != FILE:
            raise PathNotFound(f"{path}: not a regular file")
        out = sys.stdout.buffer
        for blob_id in node.content:
            out.write(repo.read_blob(blob_id))
        out.flush()
