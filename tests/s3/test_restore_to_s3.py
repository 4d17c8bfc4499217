"""`restore SNAPSHOT[:PATH]` into a directory and into a bucket (SeaweedFS): a subtree only,
keys decoded for S3-backup nodes with their metadata, local files under their path names,
identical objects skipped on a second run (PUTs counted), clear errors."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from snapfs.repository import Repository
from snapfs.restore_s3 import restore_to_s3
from snapfs.snapshot import Snapshot
from snapfs.store.url import open_backend
from snapfs.targets.s3 import S3Target, Written
from snapfs.tree import Node
from tests.conftest import PASSWORD, Cli
from tests.crafted import directory, file, raw_tree
from tests.helpers import assert_same_tree
from tests.s3.faultproxy import FaultProxy
from tests.s3.seaweed import BUCKET, SeaweedFS
from tests.s3.test_s3_cli import _cli, _one_line

S3_META = [  # as sources/s3.py names them, sorted
    (b"user.s3.cache-control", b"max-age=60"),
    (b"user.s3.content-encoding", b"gzip"),
    (b"user.s3.content-type", b"text/csv"),
    (b"user.s3.meta.team", b"lake"),
]
# key below s3://src/p -> body; the tree below names them as sources/keys.py does
KEYS = {"a/%2E": b"dot-looking", "dir": b"dir object", "dir/in": b"inner", "x/100%": b"percent",
        "f/": b"", "f/x": b"in f"}  # fmt: skip


def _s3_snapshot(location: str) -> Snapshot:
    """A snapshot as an S3 backup of s3://src/p makes one: ``src/p/<encoded key>``."""
    with Repository.open(open_backend(location), PASSWORD) as repo, repo.writer() as w:

        def f(name: bytes, key: str) -> Node:
            # SeaweedFS keeps a key ending in "/" (a folder marker) as a directory, without
            # Content-Encoding, Cache-Control or user metadata: this one has none to lose.
            meta = [] if key.endswith("/") else S3_META
            return msgspec.structs.replace(file(w, name, KEYS[key]), xattrs=meta)

        a = raw_tree(w, [f(b"%252E", "a/%2E")])
        p = raw_tree(w, [
            directory(b"a", a), directory(b"dir", raw_tree(w, [f(b"in", "dir/in")])),
            f(b"dir%=", "dir"), directory(b"f", raw_tree(w, [f(b"%", "f/"), f(b"x", "f/x")])),
            directory(b"x", raw_tree(w, [f(b"100%25", "x/100%")])),
        ])  # fmt: skip
        root = raw_tree(w, [directory(b"src", raw_tree(w, [directory(b"p", p)]))])
        snap = Snapshot(time="2026-12-03T10:00:00+00:00", host="h", user="u",
                        paths=["s3://src/p"], tree=root.hex(), source="s3")  # fmt: skip
        return w.save_snapshot(snap)


def _s3_repo(seaweedfs: SeaweedFS, env: dict[str, str] | None = None) -> Cli:
    cli = _cli(f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/repo", env or seaweedfs.env())
    cli.run("init", check=True)
    return cli


def _objects(client: Any, prefix: str) -> dict[str, Any]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"]) for o in listed}


def test_s3_nodes_go_back_to_their_keys_with_metadata_and_resume(
    seaweedfs: SeaweedFS, s3_env: SeaweedFS, client: Any
) -> None:
    with FaultProxy(seaweedfs.s3_port) as proxy:
        cli = _s3_repo(seaweedfs, seaweedfs.env(proxy.url))
        snap = _s3_snapshot(str(cli.repo))
        out = f"restored-{uuid.uuid4().hex[:8]}"
        puts = proxy.counts["PUT"]
        first = cli.run("restore", f"{snap.id}:/src/p", "--target", f"s3://{BUCKET}/{out}",
                        "--json", check=True)  # fmt: skip
        assert proxy.counts["PUT"] - puts == len(KEYS) + 1  # and the read lock
        assert _heads(proxy, out) == 0  # the prefix was empty: nothing to compare with
        summary = json.loads(first.stdout.splitlines()[-1])
        assert (summary["files"], summary["skipped"], summary["warnings"]) == (len(KEYS), 0, 0)
        puts = proxy.counts["PUT"]
        again = cli.run("restore", f"{snap.id}:/src/p", "--target", f"s3://{BUCKET}/{out}",
                        "--json", check=True)  # fmt: skip
        assert proxy.counts["PUT"] - puts == 1  # the lock: every object was there already
        assert _heads(proxy, out) == len(KEYS)
        assert json.loads(again.stdout.splitlines()[-1])["skipped"] == len(KEYS)
    got = _objects(client, f"{out}/")
    assert {k.removeprefix(f"{out}/"): o["Body"].read() for k, o in got.items()} == KEYS
    for key, o in got.items():
        if key.endswith("/"):
            assert (o.get("ContentEncoding"), o.get("CacheControl"), o["Metadata"]) == (
                None, None, {},
            )  # fmt: skip
            continue
        assert (o["ContentType"], o["ContentEncoding"], o["CacheControl"]) == (
            "text/csv", "gzip", "max-age=60",
        )  # fmt: skip
        assert o["Metadata"] == {"team": "lake"}


def _heads(proxy: FaultProxy, prefix: str) -> int:
    """HEAD requests of objects below ``prefix`` so far."""
    return sum(1 for method, path in proxy.requests if method == "HEAD" and f"/{prefix}/" in path)


class _Recording(S3Target):
    """Records when each write starts and ends; the writes of ``slow`` take half a second
    more, so a write that overlaps one shows."""

    slow = ("dir/in", "f/x")

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.events: list[tuple[str, str]] = []

    def write(self, key: str, node: Node, content: Any) -> Written:
        below = key.removeprefix(self.prefix)
        self.events.append(("start", below))
        if below in self.slow:
            time.sleep(0.5)
        written = super().write(key, node, content)
        self.events.append(("end", below))
        return written


def test_an_object_beside_a_directory_goes_up_after_the_directory_objects(
    seaweedfs: SeaweedFS, s3_env: SeaweedFS, client: Any
) -> None:
    """SeaweedFS may keep only one of the objects ``dir`` and ``dir/in`` PUT at once, and of
    ``f/`` and ``f/x``, so ``dir`` (the file ``dir%=``) starts only when ``dir/in`` is
    written, and ``f/`` (the file ``f/%``, sorted first in its directory) when ``f/x`` is."""
    cli = _s3_repo(seaweedfs)
    snap = _s3_snapshot(str(cli.repo))
    out = f"restored-{uuid.uuid4().hex[:8]}"
    with (
        Repository.open(open_backend(str(cli.repo)), PASSWORD) as repo,
        _Recording(f"s3://{BUCKET}/{out}") as target,
    ):
        restore_to_s3(repo, snap, target, path="/src/p")
    events = target.events
    assert sorted(k for what, k in events if what == "end") == sorted(KEYS)
    assert events.index(("start", "dir")) > events.index(("end", "dir/in"))
    assert events.index(("start", "f/")) > events.index(("end", "f/x"))
    got = _objects(client, f"{out}/")
    assert {k.removeprefix(f"{out}/"): o["Body"].read() for k, o in got.items()} == KEYS


def test_local_snapshot_to_a_bucket_object_by_object(
    seaweedfs: SeaweedFS, client: Any, tmp_path: Path
) -> None:
    src = tmp_path / "lake"
    (src / "sales" / "2026").mkdir(parents=True)
    files = {"sales/2026/a.csv": os.urandom(6 * 1024 * 1024), "sales/b.txt": b"b",
             "top.json": b"{}", "100% é.txt": b"odd name"}  # fmt: skip
    for name, data in files.items():
        (src / name).write_bytes(data)
    cli = _s3_repo(seaweedfs)
    cli.run("backup", str(src), check=True)
    out = f"lake-{uuid.uuid4().hex[:8]}"
    cli.run("restore", f"latest:{src}", "--target", f"s3://{BUCKET}/{out}", "--exclude",
            "*.txt", check=True)  # fmt: skip
    got = {k.removeprefix(f"{out}/"): o["Body"].read() for k, o in _objects(client, out).items()}
    assert got == {k: v for k, v in files.items() if not k.endswith(".txt")}


def test_path_selects_a_subtree_on_disk_and_a_missing_one_is_one_line(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    src = tmp_path / "lake"
    (src / "sales").mkdir(parents=True)
    (src / "sales" / "a.csv").write_bytes(b"a,b\n1,2\n")
    (src / "other.bin").write_bytes(os.urandom(1000))
    os.utime(src / "sales" / "a.csv", ns=(1_600_000_000_000_000_000,) * 2)
    cli = _s3_repo(seaweedfs)
    cli.run("backup", str(src), check=True)
    out = tmp_path / "out"
    cli.run("restore", f"latest:{src}/sales", "--target", str(out), check=True)
    assert_same_tree(src / "sales", out)
    missing = cli.run("restore", f"latest:{src}/nope", "--target", str(out))
    assert missing.returncode == 1
    assert _one_line(missing.stderr).startswith(f"snapfs: {src}/nope: no such file or directory")
    assert " in snapshot " in missing.stderr.decode()


def test_missing_target_bucket_and_wrong_target_credentials(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    cli = _s3_repo(seaweedfs)
    cli.run("backup", "/etc/hostname", check=True)
    gone = cli.run("restore", "latest", "--target", "s3://no-such-restore-bucket/p")
    assert gone.returncode == 1
    assert _one_line(gone.stderr) == (
        f"snapfs: no S3 bucket 'no-such-restore-bucket' at {seaweedfs.endpoint}"
    )
    creds = tmp_path / "credentials"
    key_id = seaweedfs.env()["AWS_ACCESS_KEY_ID"]
    creds.write_text(f"[wrong]\naws_access_key_id = {key_id}\naws_secret_access_key = nope\n")
    refused = cli.run("restore", "latest", "--target", f"s3://{BUCKET}/r", "--target-profile",
                      "wrong", env={"AWS_SHARED_CREDENTIALS_FILE": str(creds)})  # fmt: skip
    assert refused.returncode == 1
    assert _one_line(refused.stderr).startswith(
        f"snapfs: S3 refused access to target bucket {BUCKET!r} at {seaweedfs.endpoint} ("
    )
