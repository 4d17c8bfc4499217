from __future__ import annotations

import click

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import emit_json, escaped
from snapfs.rewrite import chosen, tag
from snapfs.snapshot import SnapshotFilter


def _tags(values: tuple[str, ...]) -> list[str]:
    """``--add a,b --add c``: a, b, c (restic's comma-separated lists)."""
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


@click.command("tag")
@click.argument("selectors", metavar="[SNAPSHOT]...", nargs=-1)
@click.option("--add", multiple=True, metavar="T[,T2]", help="Add these tags (repeatable).")
@click.option("--remove", multiple=True, metavar="T[,T2]", help="Remove these tags (repeatable).")
@click.option(
    "--set",
    "set_",
    multiple=True,
    metavar="T[,T2]",
    help="Replace the tags with these (repeatable; --set '' removes every tag).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot changed.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, selectors: tuple[str, ...], add: tuple[str, ...],
            remove: tuple[str, ...], set_: tuple[str, ...], as_json: bool,
            snapshot_filter: SnapshotFilter) -> None:  # fmt: skip
    """Change the tags of snapshots: those named (ids, unique prefixes, 'latest'), or with
    none named every snapshot that passes --host/--tag/--path, as restic.

    A snapshot whose tags change is saved anew, with a new id, its time and data as they
    were and 'original' naming the snapshot its backup made; the old one goes to
    forgotten/ ('snapfs undelete' brings it back until a prune sweeps it).

    \b
    Examples:
      snapfs tag latest --add release
      snapfs tag --host db1 --tag nightly --set weekly
      snapfs tag 1a2b3c4d --remove old,tmp
    """
    if set_ and (add or remove):
        raise click.UsageError("--set replaces the tags: give it without --add and --remove")
    if not (set_ or add or remove):
        raise click.UsageError("nothing to change: give --add, --remove or --set")
    with ctx.open() as repo:
        snaps = chosen(repo, selectors, snapshot_filter)
        done = tag(repo, snaps, add=_tags(add), remove=_tags(remove),
                   set_to=_tags(set_) if set_ else None)  # fmt: skip
    for r in done:
        assert r.new is not None
        if as_json:
            emit_json({"old": r.old.id, "new": r.new.id, "tags": r.new.tags})
        else:
            tags = escaped(",".join(r.new.tags)) or "no tags"
            click.echo(f"snapshot {r.old.short_id} is now {r.new.short_id} ({tags})")
    if not as_json:
        click.echo(f"{len(done)} of {len(snaps)} snapshots changed")
