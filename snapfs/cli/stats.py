from __future__ import annotations

import click

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import emit_json, size
from snapfs.snapshot import SnapshotFilter
from snapfs.stats import stats


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, as_json: bool, snapshot_filter: SnapshotFilter) -> None:
    """How much the repository stores, and how much that represents. With --host/--tag/
    --path, the snapshots and their total are those that pass; packs and blobs stay the
    whole repository's.

    \b
    Example:
      snapfs stats --host db1
    """
    with ctx.open() as repo:
        st = stats(repo, snapshot_filter)
    if as_json:
        emit_json(st.as_dict())
        return
    click.echo(f"snapshots:          {st.snapshots}")
    click.echo(f"packs:              {st.packs} ({size(st.stored_bytes)} stored)")
    click.echo(f"blobs:              {st.data_blobs} data, {st.tree_blobs} tree")
    click.echo(
        f"unique data:        {size(st.raw_data_bytes)} "
        f"(compression ratio {st.compression_ratio:.2f})"
    )
    click.echo(f"total in snapshots: {size(st.snapshot_bytes)}")
