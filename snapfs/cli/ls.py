from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import datetime

import click

from snapfs.cli.main import EXIT_OK, EXIT_PARTIAL, Context, pass_ctx, snapshot_filter_options
from snapfs.cli.render import Warnings, emit_json, escaped
from snapfs.metadata import full_mode
from snapfs.repository import Repository
from snapfs.snapshot import SnapshotFilter
from snapfs.tree import DIR, SYMLINK, Node
from snapfs.walk import ProblemHandler, resolve, walk


@click.command("ls")
@click.argument("snapshot")
@click.argument("path", required=False, default="/")
@click.option("-l", "--long", "long_", is_flag=True, help="Mode, owner, size and time too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
@snapshot_filter_options
@pass_ctx
def command(ctx: Context, snapshot: str, path: str, long_: bool, as_json: bool,
            snapshot_filter: SnapshotFilter) -> int:  # fmt: skip
    """List the files of SNAPSHOT (an id, a unique prefix, or 'latest': the newest that
    passes --host/--tag/--path) below PATH.

    Names are printed as `ls -b` prints them (control characters and bytes that are not
    UTF-8 escaped, backslashes doubled); --json carries them exactly. Entries a damaged
    or crafted snapshot holds that no file system could (such as a name '..') are left
    out with a warning, and the exit code is then 3.

    \b
    Example:
      snapfs ls latest /data/lake/warehouse --long
      snapfs ls latest --host db1 /var/lib/db
    """
    warn = Warnings()
    with ctx.open() as repo:
        snap = repo.find_snapshot(snapshot, snapshot_filter)
        for shown, n in _entries(repo, bytes.fromhex(snap.tree), path, warn):
            if as_json:
                emit_json(_as_json(shown, n))
            elif long_:
                click.echo(_long_line(shown, n))
            else:
                click.echo(escaped(shown))
    return EXIT_PARTIAL if warn.count else EXIT_OK


def _entries(
    repo: Repository, root: bytes, path: str, warn: ProblemHandler
) -> Iterator[tuple[bytes, Node]]:
    """(path as bytes, node) below ``path``, streamed as the walk finds them."""
    node = resolve(repo, root, path)
    prefix = "/".join(p for p in path.split("/") if p).encode("utf-8", "surrogateescape")
    if node is not None and node.type != DIR:
        yield b"/" + prefix, node
        return
    start = node.subtree if node is not None and node.subtree else root
    for rel, n in walk(repo, start, prefix, on_problem=warn):
        yield b"/" + rel, n


def _as_json(shown: bytes, n: Node) -> dict[str, object]:
    return {
        "path": shown.decode("utf-8", "surrogateescape"),
        "name": n.display_name,
        "type": n.type,
        "mode": n.mode,
        "uid": n.uid,
        "gid": n.gid,
        "user": n.user,
        "group": n.group,
        "size": n.size,
        "mtime_ns": n.mtime_ns,
        "links": n.links,
        "target": n.target.decode("utf-8", "surrogateescape") or None,
    }


def _long_line(shown: bytes, n: Node) -> str:
    when = datetime.fromtimestamp(n.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")
    link = " -> " + escaped(n.target) if n.type == SYMLINK else ""
    return (
        f"{stat.filemode(full_mode(n))} {escaped(n.user) or n.uid:>8} "
        f"{escaped(n.group) or n.gid:>8} {n.size:>12} {when} {escaped(shown)}{link}"
    )
