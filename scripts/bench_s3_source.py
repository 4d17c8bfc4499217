"""A bucket as the backup source: the bench lake uploaded to SeaweedFS on loopback.

    ./scripts/bench --s3-source --scale 1000

Rows: ``rclone copy`` of the prefix to local disk (the rate this server can be read at);
restic backing the prefix up through ``rclone mount`` (the way to back a bucket up with a
tool that reads only files); snapfs's first backup of the prefix; snapfs's restore of that
snapshot into another bucket on the same server, against ``rclone copy`` of the local lake
into a third (the rate this server can be written at); and snapfs's re-backup after 1% of
the objects were rewritten. Every row is timed straight against the server. The object
GETs of snapfs's backups are counted by a pass-through proxy in front of the server, in a
second, untimed backup into another repository (so no GET of an unchanged object shows as
a count, not as a guess): the proxy slows a client that reads one object at a time
severalfold (restic through the mount 5x), so no timed row goes through it. The
repositories are on local disk, so only the source's (or the restore target's) requests go
to the server.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lakegen
from bench import PASSWORD, _peak_rss_of_mount, du, run

BUCKET = "lake"
RESTORED = "restored"  # snapfs restore --target s3://restored/raw
UPLOADED = "uploaded"  # rclone copy LAKE :s3:uploaded/raw
COPY_DOWN = "rclone copy to local disk"
RESTIC = "restic backup through rclone mount"
FIRST = "snapfs first backup"
RESTORE = "snapfs restore to S3 (another bucket)"
UPLOAD = "rclone copy of the local lake to S3"
REBACKUP = "snapfs re-backup"  # the label gets ", N objects changed"


def upload(client: Any, lake: Path, prefix: str) -> list[str]:
    """Every file below ``lake`` as ``prefix/<its path>``; the keys."""
    files = sorted(p for p in lake.rglob("*") if p.is_file())
    keys = [f"{prefix}/{p.relative_to(lake)}" for p in files]

    def put(item: tuple[Path, str]) -> None:
        client.put_object(Bucket=BUCKET, Key=item[1], Body=item[0].read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, zip(files, keys, strict=True)))
    return keys


def object_gets(proxy: Any) -> int:
    return sum(1 for m, path in proxy.requests if m == "GET" and "list-type=" not in path)


def listing(client: Any, bucket: str, prefix: str) -> dict[str, int]:
    """Key below ``prefix``: size, of every object there."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def bench(scale: float, workdir: Path | None) -> None:
    from tests.s3.faultproxy import FaultProxy
    from tests.s3.seaweed import SeaweedFS

    work = Path(tempfile.mkdtemp(prefix="snapfs-bench-s3src-", dir=workdir or "/var/tmp"))
    try:
        lake = work / "lake"
        lakegen.generate(lake, scale)
        size = du(lake)
        server = SeaweedFS(work / "seaweedfs")
        server.start()
        try:
            rows = _measure(server, FaultProxy, work, lake)
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mount_rss = rows.pop("rclone mount peak RSS MB", None)
    print(f"Lake: {size / 1e6:.0f} MB in {rows.pop('objects'):.0f} objects, SeaweedFS on loopback.")
    print("| step | seconds | MB/s | peak RSS MB | object GETs |\n| --- | --- | --- | --- | --- |")
    for step, row in rows.items():
        if isinstance(row, str):  # why the step could not run here
            print(f"| {step} | not run: {row} | — | — | — |")
            continue
        seconds, rss, gets = row
        rate = size / 1e6 / seconds if seconds else 0
        print(f"| {step} | {seconds:.2f} | {rate:.0f} | {rss:.0f} | {gets} |")
    print()
    for line in summary(rows, mount_rss):
        print(line)


def _seconds(rows: dict[str, Any], prefix: str) -> float | None:
    row = next((v for k, v in rows.items() if k.startswith(prefix)), None)
    return row[0] if isinstance(row, tuple) and row[0] else None


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return f"{numerator / denominator:.2f}x" if numerator and denominator else "—"


def summary(rows: dict[str, Any], mount_rss: float | None) -> list[str]:
    """The ratios issue #17's targets name, by wall time (same bytes in every row, so a
    throughput ratio is the inverse time ratio), and the peak RSS of each snapfs row."""
    first = _seconds(rows, FIRST)
    rss = "; ".join(f"{k.removeprefix('snapfs ')} {v[1]:.0f} MB" for k, v in rows.items()
                    if k.startswith("snapfs") and isinstance(v, tuple))  # fmt: skip
    mount = f"; rclone serving the mount: {mount_rss:.0f} MB peak RSS" if mount_rss else ""
    return [
        f"snapfs first backup / rclone copy down throughput: "
        f"{_ratio(_seconds(rows, COPY_DOWN), first)}",
        f"snapfs first backup / restic through rclone mount throughput: "
        f"{_ratio(_seconds(rows, RESTIC), first)} (target >= 3x){mount}",
        f"re-backup time / first backup time: {_ratio(_seconds(rows, REBACKUP), first)}",
        f"restore to S3 / rclone upload throughput: "
        f"{_ratio(_seconds(rows, UPLOAD), _seconds(rows, RESTORE))} (target >= 0.8x)",
        f"peak RSS of snapfs: {rss}",
    ]


def rclone_env(env: dict[str, str], server: Any) -> dict[str, str]:
    """An on-the-fly ``:s3:`` remote for ``server``: no config file."""
    creds = server.env()
    out = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}  # it trips 1.60
    out.update(
        RCLONE_S3_PROVIDER="Other", RCLONE_S3_ENDPOINT=server.endpoint,
        RCLONE_S3_ACCESS_KEY_ID=creds["AWS_ACCESS_KEY_ID"],
        RCLONE_S3_SECRET_ACCESS_KEY=creds["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    return out


def _measure(server: Any, proxy_type: Any, work: Path, lake: Path) -> dict[str, Any]:
    client = server.client()
    for bucket in (BUCKET, RESTORED, UPLOADED):
        client.create_bucket(Bucket=bucket)  # a restore never creates its bucket
    keys = upload(client, lake, "raw")
    rows: dict[str, Any] = {"objects": len(keys)}
    env = {**os.environ, **server.env(), "SNAPFS_PASSWORD": PASSWORD}
    has_rclone = shutil.which("rclone") is not None
    if has_rclone:
        down = rclone_env(env, server)
        m = run(["rclone", "copy", f":s3:{BUCKET}/raw", str(work / "copy")], down)
        rows[COPY_DOWN] = (m.seconds, m.peak_rss_mb, "-")
        shutil.rmtree(work / "copy", ignore_errors=True)
        rows.update(restic_through_mount(work, down))
    repos = (str(work / "repo"), str(work / "repo-counted"))
    for repo in repos:
        run(["snapfs", "-q", "-r", repo, "init"], env)
    with proxy_type(server.s3_port) as proxy:
        rows[FIRST] = backup_row(repos, env, server, proxy)
        rows.update(restore_rows(client, server, env, repos[0], lake, has_rclone))
        changed = random.Random(1).sample(keys, max(1, len(keys) // 100))
        for key in changed:
            client.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(4096))
        rows[f"{REBACKUP}, {len(changed)} objects changed"] = backup_row(repos, env, server, proxy)
    return rows


def backup_row(
    repos: tuple[str, str], env: dict[str, str], server: Any, proxy: Any
) -> tuple[float, float, int]:
    """snapfs backs the prefix up into ``repos[0]`` straight from the server (timed), then
    into ``repos[1]`` through the proxy (untimed) for its object GETs."""

    def backup(repo: str, endpoint: str) -> list[str]:
        source = [f"s3://{BUCKET}/raw", "--source-endpoint", endpoint]
        return ["snapfs", "-q", "-r", repo, "backup", *source]

    m = run(backup(repos[0], server.endpoint), env)
    proxy.requests.clear()
    run(backup(repos[1], proxy.url), env)
    return m.seconds, m.peak_rss_mb, object_gets(proxy)


def restore_rows(
    client: Any, server: Any, env: dict[str, str], repo: str, lake: Path, has_rclone: bool
) -> dict[str, Any]:
    """The first snapshot (still the latest) restored into RESTORED/raw, and the local lake
    copied into UPLOADED/raw by rclone: the same keys and bytes, straight to the server."""
    rows: dict[str, Any] = {}
    target = ["--target", f"s3://{RESTORED}/raw", "--target-endpoint", server.endpoint]
    m = run(["snapfs", "-q", "-r", repo, "restore", f"latest:{BUCKET}/raw", *target], env)
    rows[RESTORE] = (m.seconds, m.peak_rss_mb, "-")
    source = listing(client, BUCKET, "raw/")
    if listing(client, RESTORED, "raw/") != source:
        print(f"{RESTORE}: the objects differ from the source's!", file=sys.stderr)
    if has_rclone:
        up = rclone_env(env, server)
        m = run(["rclone", "copy", str(lake), f":s3:{UPLOADED}/raw"], up)
        rows[UPLOAD] = (m.seconds, m.peak_rss_mb, "-")
        if listing(client, UPLOADED, "raw/") != source:
            print(f"{UPLOAD}: the objects differ from the source's!", file=sys.stderr)
    return rows


def _fuse_missing() -> str | None:
    """Why ``rclone mount`` cannot work on this machine, or None."""
    if shutil.which("restic") is None:
        return "restic is not installed"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "no fusermount3"
    return None


def _mount(
    command: str, remote: str, mnt: Path, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``rclone COMMAND`` in the background, once the mount is there. Reads stream from
    the server (no VFS cache: nothing staged on local disk, as snapfs reads), each directory
    is listed once (the prefix does not change during the backup), and mtimes are the
    listing's LastModified (no HEAD per object for an mtime these uploads do not carry)."""
    cmd = ["rclone", command, remote, str(mnt), "--read-only", "--vfs-cache-mode", "off",
           "--dir-cache-time", "1h", "--use-server-modtime"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() > deadline:
            _unmount(proc, mnt)
            tail = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"rclone {command} did not come up: {' '.join(tail)}")
        time.sleep(0.1)
    return proc


def _xattrs_fail(mnt: Path) -> bool:
    """Whether listing a file's xattrs fails with EIO: restic 0.14 then leaves the file out
    of the snapshot (restic#1736); ENOTSUP it takes as "none"."""
    probe = next(p for p in mnt.rglob("*") if p.is_file())
    try:
        os.listxattr(probe)
    except OSError as e:
        return e.errno == errno.EIO
    return False


def mount_for_restic(
    remote: str, mnt: Path, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``rclone mount`` and the row's label; ``rclone mount2`` (the same VFS on go-fuse)
    where ``mount`` answers xattr calls on files with EIO, as 1.60's does, since restic
    would then back up no file at all."""
    proc = _mount("mount", remote, mnt, env, log)
    if not _xattrs_fail(mnt):
        return proc, RESTIC
    _unmount(proc, mnt)
    proc = _mount("mount2", remote, mnt, env, log)
    if _xattrs_fail(mnt):
        _unmount(proc, mnt)
        raise RuntimeError("rclone mount and mount2 fail xattr calls with EIO")
    return proc, f"{RESTIC}2 (mount: EIO on xattrs)"


def _unmount(proc: subprocess.Popen[bytes], mnt: Path) -> None:
    fusermount = "fusermount3" if shutil.which("fusermount3") else "fusermount"
    subprocess.run([fusermount, "-u", str(mnt)], capture_output=True)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.terminate()  # our own child: the unmount did not end it
        proc.wait(timeout=30)


def restic_through_mount(work: Path, env: dict[str, str]) -> dict[str, Any]:
    """restic backing ``BUCKET/raw`` up through ``rclone mount`` into a repository on local
    disk, timed like snapfs's backup; or the reason it could not run here."""
    reason = _fuse_missing()
    if reason:
        return {RESTIC: reason}
    mnt = work / "mnt-rclone"
    mnt.mkdir()
    repo = str(work / "repo-restic")
    restic_env = {**env, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(work / "cache")}
    run(["restic", "-q", "-r", repo, "init"], restic_env)
    try:
        proc, label = mount_for_restic(f":s3:{BUCKET}/raw", mnt, env, work / "rclone.log")
    except RuntimeError as e:
        return {RESTIC: str(e)}
    try:
        m = run(["restic", "-q", "-r", repo, "backup", str(mnt)], restic_env)
        rows = {label: (m.seconds, m.peak_rss_mb, "-")}
        return {**rows, "rclone mount peak RSS MB": _peak_rss_of_mount(mnt)}
    finally:
        _unmount(proc, mnt)
