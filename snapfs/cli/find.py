from __future__ import annotations

from datetime import datetime

import click

from snapfs.cli.main import EXIT_OK, EXIT_PARTIAL, Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import Warnings, emit_json, escaped
from snapfs.find import Finder, Found, Match
from snapfs.snapshot import SnapshotFilter, filter_snapshots, select, sort_by_time
from snapfs.tree import DIR, SYMLINK


def _time_ns(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """``YYYY-MM-DD[ HH:MM[:SS]]`` (or any ISO 8601 time), local unless it names an offset."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time: use YYYY-MM-DD[ HH:MM[:SS]]") from None
    when = when.astimezone()
    return int(when.replace(microsecond=0).timestamp()) * 1_000_000_000 + when.microsecond * 1000


@click.command("find")
@click.argument("patterns", metavar="PATTERN...", nargs=-1, required=True)
@click.option("-s", "--snapshot", "selectors", multiple=True, metavar="ID",
              help="Search only this snapshot (repeatable; 'latest': the newest that passes "
              "the filters). Default: every snapshot that passes them.")  # fmt: skip
@click.option(
    "--oldest",
    metavar="TIME",
    callback=_time_ns,
    help="Only entries modified at TIME or later (YYYY-MM-DD[ HH:MM[:SS]]).",
)
@click.option(
    "--newest", metavar="TIME", callback=_time_ns, help="Only entries modified at TIME or earlier."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry found.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, patterns: tuple[str, ...], selectors: tuple[str, ...],
            oldest: int | None, newest: int | None, as_json: bool,
            snapshot_filter: SnapshotFilter) -> int:  # fmt: skip
    """Find the snapshots and paths whose name matches a PATTERN (a glob such as '*.csv';
    a PATTERN with '/' matches the whole path, such as '/data/*/secret.key'), with their
    size and modification time, oldest snapshot first.

    A directory shared by several snapshots is searched once.

    \b
    Examples:
      snapfs find '*.parquet' --newest '2026-11-30 12:00'
      snapfs find 'secret*' '/home/*/.ssh/*' --host db1 --json
    """
    warn = Warnings()
    with ctx.open() as repo:
        snaps = repo.snapshots()
        if selectors:
            chosen = [select(snaps, s, snapshot_filter) for s in selectors]
        else:
            chosen = filter_snapshots(snaps, snapshot_filter)
        finder = Finder(repo, list(patterns), oldest=oldest, newest=newest, on_problem=warn)
        for found in finder.find(sort_by_time(chosen)):
            if as_json:
                for m in found.matches:
                    emit_json(_as_json(found, m))
            else:
                _print(found)
    return EXIT_PARTIAL if warn.count else EXIT_OK


def _print(found: Found) -> None:
    """restic's heading, then one line per entry: size, modification time, path."""
    s = found.snapshot
    when = s.datetime.strftime("%Y-%m-%d %H:%M:%S")
    click.echo(f"Found matching entries in snapshot {s.short_id} from {when} ({escaped(s.host)})")
    width = max(len("Size"), *(len(str(m.node.size)) for m in found.matches))
    click.echo(f"{'Size':>{width}}  {'Modified':<19}  Path")
    for m in found.matches:
        click.echo(f"{m.node.size:>{width}}  {_mtime(m.node.mtime_ns)}  {_shown(m)}")
    click.echo("")


def _mtime(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def _shown(m: Match) -> str:
    if m.node.type == DIR:
        return escaped(m.path) + "/"
    if m.node.type == SYMLINK:
        return f"{escaped(m.path)} -> {escaped(m.node.target)}"
    return escaped(m.path)


def _as_json(found: Found, m: Match) -> dict[str, object]:
    return {
        "snapshot": found.snapshot.id,
        "snapshot_time": found.snapshot.time,
        "host": found.snapshot.host,
        "path": m.path,
        "type": m.node.type,
        "size": m.node.size,
        "mtime_ns": m.node.mtime_ns,
        "mtime": datetime.fromtimestamp(m.node.mtime_ns // 1_000_000_000).astimezone().isoformat(),
    }
