from __future__ import annotations

import re

import click

from snapfs.check import check
from snapfs.cli.main import EXIT_ERROR, EXIT_OK, Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import emit_json, say
from snapfs.snapshot import SnapshotFilter


def _subset(value: str | None) -> tuple[int, int] | float | None:
    if value is None:
        return None
    if m := re.fullmatch(r"(\d+)/(\d+)", value):
        n, t = int(m[1]), int(m[2])
        if not 1 <= n <= t:
            raise click.BadParameter("n/t needs 1 <= n <= t", param_hint="--read-data-subset")
        return n, t
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)%", value):
        return float(m[1]) / 100
    raise click.BadParameter("use n/t or a percentage such as 10%", param_hint="--read-data-subset")


@click.command("check")
@click.option("--read-data", is_flag=True, help="Also read, decrypt and verify every blob.")
@click.option("--read-data-subset", metavar="n/t|P%", help="Verify a slice or share of packs.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, read_data: bool, read_data_subset: str | None, as_json: bool,
            snapshot_filter: SnapshotFilter) -> int:  # fmt: skip
    """Check the repository's structure and, with --read-data, every byte of it.

    With --host/--tag/--path, only the snapshots that pass are walked, and --read-data
    (or --read-data-subset) reads only the packs holding their trees and files; keys and
    the index are checked whole.

    \b
    Examples:
      snapfs check
      snapfs check --read-data-subset 1/10
      snapfs check --read-data --host db1
    """
    with ctx.open() as repo:
        report = check(repo, read_data=read_data, subset=_subset(read_data_subset),
                       snapshot_filter=snapshot_filter)  # fmt: skip
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "snapshots": report.snapshots,
                "packs": report.packs,
                "packs_read": report.packs_read,
                "errors": report.errors,
                "damaged_packs": report.damaged_packs,
                "affected_files": report.affected_files,
            }
        )
    else:
        for line in report.errors:
            say(f"error: {line}")
        verdict = "no errors were found" if report.ok else f"{len(report.errors)} errors found"
        click.echo(
            f"checked {report.snapshots} snapshots, {report.packs} packs"
            f" ({report.packs_read} read): {verdict}"
        )
    return EXIT_OK if report.ok else EXIT_ERROR
