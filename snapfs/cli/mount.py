"""``snapfs mount`` and ``snapfs umount``.

In the background (the default) the command starts itself again with ``--foreground`` in a
new session, and returns once that child has mounted, or prints the child's one-line error.
The password reaches the child in its environment, never in its argv.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from snapfs.cli.main import Context, pass_ctx, snapshot_filter_options
from snapfs.errors import SnapfsError
from snapfs.snapshot import SnapshotFilter

_READY = b"ready\n"


@click.command("mount")
@click.argument("mountpoint", type=click.Path(file_okay=False))
@click.argument("snapshot", required=False)
@click.option("-f", "--foreground", is_flag=True, help="Stay in the foreground until unmounted.")
@click.option(
    "--cache-size", default=128, show_default=True, metavar="MB", help="Decoded-chunk cache."
)
@click.option("--allow-other", is_flag=True, help="Let other users read the mount.")
@click.option("--ready-fd", type=int, hidden=True)
@snapshot_filter_options
@pass_ctx
def command(
    ctx: Context,
    mountpoint: str,
    snapshot: str | None,
    foreground: bool,
    cache_size: int,
    allow_other: bool,
    ready_fd: int | None,
    snapshot_filter: SnapshotFilter,
) -> None:
    """Mount the repository, or one SNAPSHOT, read-only at MOUNTPOINT.

    Without SNAPSHOT the mount shows snapshots/<time>_<id>/, latest, tags/<tag>/ and
    hosts/<host>/, of the snapshots that pass --host/--tag/--path. SNAPSHOT 'latest' is
    the newest that passes them. It stays until 'snapfs umount MOUNTPOINT' (or fusermount3 -u).

    \b
    Examples:
      snapfs mount /mnt/backups
      snapfs mount /mnt/tuesday 1a2b3c4d
      snapfs mount /mnt/db1 --host db1
      duckdb -c "select count(*) from '/mnt/tuesday/data/lake/sales/*.parquet'"
      snapfs umount /mnt/tuesday
    """
    if foreground or ready_fd is not None:
        _serve(ctx, mountpoint, snapshot, snapshot_filter, cache_size << 20, allow_other, ready_fd)
    else:
        _start_in_background(ctx, mountpoint, snapshot, snapshot_filter)


def _serve(
    ctx: Context,
    mountpoint: str,
    selector: str | None,
    snapshot_filter: SnapshotFilter,
    cache_bytes: int,
    allow_other: bool,
    ready_fd: int | None,
) -> None:
    from snapfs.fuse.mount import serve  # pyfuse3 and trio load only for a mount

    def ready() -> None:
        if ready_fd is None:
            click.echo(f"mounted at {mountpoint}; ctrl-c or 'snapfs umount' to unmount", err=True)
        else:
            os.write(ready_fd, _READY)
            os.close(ready_fd)

    try:
        with ctx.open() as repo:
            snap = repo.find_snapshot(selector, snapshot_filter) if selector else None
            serve(repo, mountpoint, snap, cache_bytes=cache_bytes, allow_other=allow_other,
                  on_ready=ready, snapshot_filter=snapshot_filter)  # fmt: skip
    except SnapfsError as e:
        if ready_fd is None:
            raise
        os.write(ready_fd, f"{e}\n".encode())
        raise SystemExit(1) from None


def _start_in_background(
    ctx: Context, mountpoint: str, selector: str | None, snapshot_filter: SnapshotFilter
) -> None:
    from snapfs.fuse.mount import check_mountpoint

    check_mountpoint(mountpoint)
    with ctx.open() as repo:  # a wrong password or selector fails here, with its exit code
        if selector:
            repo.find_snapshot(selector, snapshot_filter)
    env = {**os.environ, "SNAPFS_PASSWORD": ctx.password()}
    env.pop("SNAPFS_PASSWORD_FILE", None)
    read_end, write_end = os.pipe()
    args = [a for a in sys.argv[1:] if a not in ("-f", "--foreground")]
    argv = [sys.executable, "-m", "snapfs", *_without_password_file(args)]
    child = subprocess.Popen(
        [*argv, "--ready-fd", str(write_end)],
        env=env,
        pass_fds=(write_end,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    if answer != _READY:
        child.wait()
        reason = answer.decode(errors="replace").strip() or f"exited with {child.returncode}"
        raise SnapfsError(f"mount failed: {reason}")
    if not ctx.quiet:
        click.echo(f"mounted {selector or 'the repository'} at {mountpoint}", err=True)


def _without_password_file(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--password-file":
            skip = True
        elif not arg.startswith("--password-file="):
            out.append(arg)
    return out


@click.command("umount")
@click.argument("mountpoint", type=click.Path())
def umount_command(mountpoint: str) -> None:
    """Unmount a snapfs mount.

    \b
    Example:
      snapfs umount /mnt/backups
    """
    from snapfs.fuse.mount import unmount

    unmount(mountpoint)
