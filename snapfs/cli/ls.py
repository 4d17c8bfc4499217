from __future__ import annotations

import stat
from datetime import datetime

import click

from snapfs.cli.main import Context, pass_ctx
from snapfs.cli.render import emit_json
from snapfs.metadata import full_mode
from snapfs.tree import DIR, SYMLINK
from snapfs.walk import resolve, walk


@click.command("ls")
@click.argument("snapshot")
@click.argument("path", required=False, default="/")
@click.option("-l", "--long", "long_", is_flag=True, help="Mode, owner, size and time too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
@pass_ctx
def command(ctx: Context, snapshot: str, path: str, long_: bool, as_json: bool) -> None:
    """List the files of SNAPSHOT (an id, a unique prefix, or 'latest') below PATH.

    \b
    Example:
      snapfs ls latest /data/lake/warehouse --long
    """
    with ctx.open() as repo:
        snap = repo.find_snapshot(snapshot)
        root = bytes.fromhex(snap.tree)
        node = resolve(repo, root, path)
        base = "/" + path.strip("/") if path.strip("/") else ""
        if node is not None and node.type != DIR:
            entries = [(base, node)]
        else:
            start = node.subtree if node is not None and node.subtree else root
            entries = [
                (base + "/" + rel.decode("utf-8", "surrogateescape"), n)
                for rel, n in walk(repo, start)
            ]
        for shown, n in entries:
            if as_json:
                emit_json(
                    {
                        "path": shown,
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
                )
            elif long_:
                when = datetime.fromtimestamp(n.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")
                link = (
                    " -> " + n.target.decode("utf-8", "surrogateescape")
                    if n.type == SYMLINK
                    else ""
                )
                click.echo(
                    f"{stat.filemode(full_mode(n))} {n.user or n.uid:>8} "
                    f"{n.group or n.gid:>8} {n.size:>12} {when} {shown}{link}"
                )
            else:
                click.echo(shown)
