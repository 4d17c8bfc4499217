"""A bucket as the backup source: the bench lake uploaded to SeaweedFS on loopback.

    ./scripts/bench --s3-source --scale 1000

Rows: ``rclone copy`` of the prefix to local disk (the rate this server can be read at),
snapfs's first backup of the prefix, and its re-backup after 1% of the objects were
rewritten; the object GETs of each backup, counted by a pass-through proxy in front of the
server (so no GET of an unchanged object shows as a count, not as a guess). The repository
is on local disk, so only the source's requests go to the server.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lakegen
from bench import PASSWORD, du, run

BUCKET = "lake"


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
    print(f"Lake: {size / 1e6:.0f} MB in {rows.pop('objects'):.0f} objects, SeaweedFS on loopback.")
    print("| step | seconds | MB/s | peak RSS MB | object GETs |\n| --- | --- | --- | --- | --- |")
    for step, (seconds, rss, gets) in rows.items():
        rate = size / 1e6 / seconds if seconds else 0
        print(f"| {step} | {seconds:.2f} | {rate:.0f} | {rss:.0f} | {gets} |")


def _measure(server: Any, proxy_type: Any, work: Path, lake: Path) -> dict[str, Any]:
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    keys = upload(client, lake, "raw")
    rows: dict[str, Any] = {"objects": len(keys)}
    env = {**os.environ, **server.env(), "SNAPFS_PASSWORD": PASSWORD}
    if shutil.which("rclone"):
        creds = server.env()
        rclone_env = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}  # it trips 1.60
        rclone_env.update(
            RCLONE_S3_PROVIDER="Other", RCLONE_S3_ENDPOINT=server.endpoint,
            RCLONE_S3_ACCESS_KEY_ID=creds["AWS_ACCESS_KEY_ID"],
            RCLONE_S3_SECRET_ACCESS_KEY=creds["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        m = run(["rclone", "copy", f":s3:{BUCKET}/raw", str(work / "copy")], rclone_env)
        rows["rclone copy to local disk"] = (m.seconds, m.peak_rss_mb, "-")
        shutil.rmtree(work / "copy", ignore_errors=True)
    repo = str(work / "repo")
    run(["snapfs", "-q", "-r", repo, "init"], env)
    with proxy_type(server.s3_port) as proxy:
        source = ["--source-endpoint", proxy.url]
        backup = ["snapfs", "-q", "-r", repo, "backup", f"s3://{BUCKET}/raw", *source]
        m = run(backup, env)
        rows["snapfs first backup"] = (m.seconds, m.peak_rss_mb, object_gets(proxy))
        changed = random.Random(1).sample(keys, max(1, len(keys) // 100))
        for key in changed:
            client.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(4096))
        proxy.requests.clear()
        m = run(backup, env)
        gets = object_gets(proxy)
        rows[f"snapfs re-backup, {len(changed)} objects changed"] = (m.seconds, m.peak_rss_mb, gets)
    return rows
