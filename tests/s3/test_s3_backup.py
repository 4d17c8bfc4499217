"""Backups of S3 prefixes through the CLI, the source on a second SeaweedFS
(``--source-endpoint``) and the repository on the first: odd keys and metadata round-trip
through restore and the mount, an incremental backup GETs only what changed (counted at a
proxy), objects deleted or replaced during the backup are warnings, and a user's mistakes
are one line each with the documented exit code."""

from __future__ import annotations

import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from snapfs.sources.keys import decode_names
from tests.conftest import Cli
from tests.integration.test_mount import Mount, mount  # noqa: F401  (the fixture)
from tests.s3.conftest import SOURCE_BUCKET
from tests.s3.faultproxy import FaultPlan, FaultProxy
from tests.s3.seaweed import SeaweedFS, put_objects

pytestmark = pytest.mark.parametrize("backend_kind", ["s3"])  # the repository on S3 too

# The keys SeaweedFS keeps as given (it folds "a//b" and refuses "." and ".." segments:
# tests/unit/test_source_keys.py covers those names).
ODD_KEYS = {
    "dir": b"a file named like a directory",
    "dir/inner": b"inside",
    "folder/": b"",
    "folder/x.csv": b"a,b\n",
    "100%.txt": b"percent",
    "%2E": b"looks like an escape",
    "%25": b"looks like an escaped percent",
    "sp ace/q?x=1&y#z": b"query-ish",
    "tab\tand\x01ctl": b"control characters",
    "\u00e9/\u65e5\u672c/\u00df.json": b"{}",
    ".hidden": b"dot",
    "big.bin": os.urandom(3 * 1024 * 1024 + 5),
}
META = {"ContentType": "text/csv", "CacheControl": "max-age=60", "ContentEncoding": "identity",
        "Metadata": {"owner": "team-a", "run": "42"}}  # fmt: skip
MANY = 10_000 - len(ODD_KEYS)  # objects beside the odd ones: 10,000 in all


@pytest.fixture
def prefix() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def src(source_server: SeaweedFS) -> Any:
    return source_server.client()


def put(client: Any, objects: dict[str, bytes], prefix: str, **extra: Any) -> None:
    put_objects(client, SOURCE_BUCKET, {f"{prefix}/{k}": v for k, v in objects.items()}, **extra)


def url(prefix: str) -> str:
    return f"s3://{SOURCE_BUCKET}/{prefix}"


def backup(cli: Cli, endpoint: str, *args: str, code: int = 0) -> Any:
    done = cli.run("backup", "--json", *args, "--source-endpoint", endpoint)
    assert done.returncode == code, done.stderr.decode()
    return done


def restored(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by the key its path names decode to."""
    out = {}
    for dirpath, _dirs, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(dirpath, name)
            parts = os.path.relpath(path, os.fsencode(root)).split(b"/")
            with open(path, "rb") as f:
                out[decode_names(parts)] = f.read()
    return out


@pytest.mark.timeout(900)  # 10,000 objects through four round trips: minutes when loaded
def test_objects_round_trip_through_restore_and_mount(
    cli: Cli,
    source_server: SeaweedFS,
    src: Any,
    prefix: str,
    tmp_path: Path,
    mount: Mount,  # noqa: F811  (the fixture, imported)
) -> None:
    many = {f"part={i % 20}/file-{i:05}.csv": f"row {i}\n".encode() * (i % 7) for i in range(MANY)}
    put(src, many, prefix)
    put(src, ODD_KEYS, prefix, **META)
    done = backup(cli, source_server.endpoint, url(prefix))
    target = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(target), check=True)
    assert sorted(os.listdir(target)) == [SOURCE_BUCKET]
    got = restored(target / SOURCE_BUCKET / prefix)
    assert sorted(set(got) ^ set(many) ^ set(ODD_KEYS)) == []
    assert got == {**many, **ODD_KEYS}
    on_disk = target / SOURCE_BUCKET / prefix / "folder" / "x.csv"
    assert os.getxattr(on_disk, "user.s3.meta.run") == b"42"  # restored as xattrs too
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["files"], summary["warnings"]) == (MANY + len(ODD_KEYS), 0)
    (snap,) = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    assert (snap["paths"], snap["source"]) == ([url(prefix)], "s3")

    src.create_bucket(Bucket=f"{SOURCE_BUCKET}-back")  # another bucket, key for key
    cli.run("restore", f"latest:/{SOURCE_BUCKET}/{prefix}", "--target",
            f"s3://{SOURCE_BUCKET}-back/{prefix}", "--target-endpoint", source_server.endpoint,
            check=True)  # fmt: skip
    assert _bucket(src, f"{SOURCE_BUCKET}-back", prefix) == {**many, **ODD_KEYS}

    with mount("latest") as mnt:
        here = mnt / SOURCE_BUCKET / prefix
        assert restored(here) == {**many, **ODD_KEYS}
        csv = here / "folder" / "x.csv"
        etag = src.head_object(Bucket=SOURCE_BUCKET, Key=f"{prefix}/folder/x.csv")["ETag"]
        assert sorted(os.listxattr(csv)) == [
            "user.s3.cache-control", "user.s3.content-encoding", "user.s3.content-type",
            "user.s3.etag", "user.s3.meta.owner", "user.s3.meta.run",
        ]  # fmt: skip
        assert os.getxattr(csv, "user.s3.etag") == etag.strip('"').encode()
        assert os.getxattr(csv, "user.s3.content-type") == b"text/csv"
        assert os.getxattr(csv, "user.s3.meta.owner") == b"team-a"
        plain = here / "part=3" / "file-00003.csv"
        assert os.getxattr(plain, "user.s3.content-type") == b"text/plain; charset=utf-8"  # guessed
        assert os.stat(plain).st_size == len(many["part=3/file-00003.csv"])


def object_gets(proxy: FaultProxy) -> list[str]:
    """The objects read through the proxy (GETs that are no listing), by key below their
    prefix."""
    return sorted(
        path.split("?")[0].split("/", 3)[-1]
        for method, path in proxy.requests
        if method == "GET" and "list-type=" not in path
    )


def test_incremental_backup_gets_only_what_changed(
    cli: Cli, source_server: SeaweedFS, src: Any, prefix: str
) -> None:
    objects = {f"d{i % 4}/o{i:03}": f"object {i}".encode() for i in range(200)}
    put(src, objects, prefix)
    with FaultProxy(source_server.s3_port) as proxy:
        backup(cli, proxy.url, url(prefix))
        assert len(object_gets(proxy)) == 200
        proxy.requests.clear()
        changed = {"d1/o001": b"new bytes", "d2/o002": b"object 2", "d3/new": b"added"}
        put(src, changed, prefix)  # o002 rewritten with the same bytes: a new LastModified
        src.delete_object(Bucket=SOURCE_BUCKET, Key=f"{prefix}/d0/o000")
        done = backup(cli, proxy.url, url(prefix))
        assert object_gets(proxy) == sorted(changed)
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["files"] == 200 + 1 - 1
    (first, second) = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    assert second["parent"] == first["id"]


def test_one_source_request_in_ten_failing_still_gives_every_object(
    cli: Cli, source_server: SeaweedFS, src: Any, prefix: str, tmp_path: Path
) -> None:
    """Listings and GETs of the source answered 500, 503 or a reset one time in ten are
    retried: the backup keeps every object, warns of none, and restores byte for byte."""
    objects = {f"d{i % 10}/o{i:03}": f"object {i}\n".encode() * (1 + i % 50) for i in range(400)}
    put(src, objects, prefix)
    plan = FaultPlan(rate=0.10, kinds=("500", "503", "reset"), seed=5)
    with FaultProxy(source_server.s3_port, plan) as proxy:
        done = backup(cli, proxy.url, url(prefix))
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["files"], summary["warnings"]) == (400, 0)
    faults = sum(proxy.counts[k] for k in plan.kinds)
    assert faults > 0.05 * proxy.counts["requests"], proxy.counts
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    assert restored(out / SOURCE_BUCKET / prefix) == objects


def test_a_source_that_keeps_failing_ends_the_backup_in_one_line(
    cli: Cli, source_server: SeaweedFS, src: Any, prefix: str
) -> None:
    """With AWS_MAX_ATTEMPTS=1 the first failed source request ends the backup while work is
    still queued: one line (the first failure's), exit 1, and no snapshot."""
    put(src, {f"d{i % 10}/o{i:03}": b"x" * i for i in range(400)}, prefix)
    plan = FaultPlan(rate=0.10, kinds=("500", "503"), seed=5)
    with FaultProxy(source_server.s3_port, plan) as proxy:
        done = cli.run("backup", url(prefix), "--source-endpoint", proxy.url,
                       env={"AWS_MAX_ATTEMPTS": "1"})  # fmt: skip
    line = one_line(done)
    assert done.returncode == 1, line
    failed = rf"S3 (list|get) s3://{SOURCE_BUCKET}/{prefix}/\S*: \w+: injected by faultproxy"
    assert re.fullmatch(rf"snapfs: {failed} \(gave up after 1 attempts\)", line), line
    assert json.loads(cli.run("snapshots", "--json", check=True).stdout) == []


def test_excludes_name_tree_paths(
    cli: Cli, source_server: SeaweedFS, src: Any, prefix: str, tmp_path: Path
) -> None:
    put(src, {"a/x": b"kept", "a/y.tmp": b"by name", "b/z": b"by path"}, prefix)
    excludes = ["--exclude", "*.tmp", "--exclude", f"/{SOURCE_BUCKET}/{prefix}/b"]
    backup(cli, source_server.endpoint, url(prefix), *excludes)
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    assert restored(out / SOURCE_BUCKET / prefix) == {"a/x": b"kept"}


def held_backup(cli: Cli, tmp_path: Path, endpoint: str, prefix: str) -> Any:
    """``snapfs backup`` waiting just before it reads its (only) object."""
    flag = tmp_path / "held"
    return cli.hold("source-open", flag, "backup", url(prefix), "--source-endpoint", endpoint)


def finish(held: Any) -> tuple[int, str]:
    held.flag.unlink()
    _out, err = held.proc.communicate(timeout=120)
    return held.proc.returncode, err.decode()


def test_object_deleted_after_listing_is_a_warning_exit_3(
    cli: Cli, source_server: SeaweedFS, src: Any, prefix: str, tmp_path: Path
) -> None:
    put(src, {"gone": b"soon deleted"}, prefix)
    held = held_backup(cli, tmp_path, source_server.endpoint, prefix)
    src.delete_object(Bucket=SOURCE_BUCKET, Key=f"{prefix}/gone")
    code, err = finish(held)
    assert (code, err) == (
        3,
        f"warning: {SOURCE_BUCKET}/{prefix}/gone: deleted since it was listed\n",
    )
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    assert os.listdir(out / SOURCE_BUCKET / prefix) == []


def test_object_replaced_before_its_read_is_read_again_and_warned_about(
    cli: Cli, source_server: SeaweedFS, src: Any, prefix: str, tmp_path: Path
) -> None:
    put(src, {"k": b"first version"}, prefix)
    held = held_backup(cli, tmp_path, source_server.endpoint, prefix)
    put(src, {"k": b"second version, longer"}, prefix)
    code, err = finish(held)
    shown = f"{SOURCE_BUCKET}/{prefix}/k"
    assert (code, err) == (3, f"warning: {shown}: replaced while being read: read again\n")
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    assert (out / shown).read_bytes() == b"second version, longer"


def one_line(done: Any) -> str:
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return str(lines[0])


def test_wrong_source_credentials_one_line_exit_1(
    cli: Cli, source_server: SeaweedFS, prefix: str, tmp_path: Path
) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[wrong]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n")
    done = cli.run(
        "backup", url(prefix), "--source-endpoint", source_server.endpoint,
        "--source-profile", "wrong", env={"AWS_SHARED_CREDENTIALS_FILE": str(creds)},
    )  # fmt: skip
    assert done.returncode == 1
    assert one_line(done) == (
        f"snapfs: S3 refused access to source bucket {SOURCE_BUCKET!r} at "
        f"{source_server.endpoint} (InvalidAccessKeyId): check the source's credentials "
        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, --source-profile) and the bucket policy"
    )
    assert json.loads(cli.run("snapshots", "--json", check=True).stdout) == []


def test_missing_source_bucket_one_line_exit_1(cli: Cli, source_server: SeaweedFS) -> None:
    done = cli.run("backup", "s3://no-such-bucket/p", "--source-endpoint", source_server.endpoint)
    assert done.returncode == 1
    assert one_line(done) == f"snapfs: no S3 bucket 'no-such-bucket' at {source_server.endpoint}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["s3://lake/p", "/tmp"], "a snapshot holds S3 sources or local paths, not both"),
        (["/tmp", "--source-profile", "x"],
         "--source-endpoint and --source-profile are for s3:// sources"),
    ],
)  # fmt: skip
def test_usage_mistakes_exit_2(cli: Cli, args: list[str], message: str) -> None:
    done = cli.run("backup", *args)
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines()[-1] == f"Error: {message}"


def test_a_bucket_backed_up_restores_into_another_prefix_key_for_key(
    cli: Cli, source_server: SeaweedFS, src: Any, prefix: str
) -> None:
    """The whole loop through the CLI: the odd keys with their metadata, backed up from the
    source server, restored (``SNAPSHOT:PATH``) under another prefix of it: the same keys,
    bytes, content headers and user metadata."""
    put(src, ODD_KEYS, prefix, **META)
    backup(cli, source_server.endpoint, url(prefix))
    back = f"{prefix}-back"
    cli.run("restore", f"latest:/{SOURCE_BUCKET}/{prefix}", "--target", f"{url(back)}",
            "--target-endpoint", source_server.endpoint, check=True)  # fmt: skip

    listed = src.list_objects_v2(Bucket=SOURCE_BUCKET, Prefix=f"{back}/")["Contents"]
    keys = sorted(o["Key"].removeprefix(f"{back}/") for o in listed)
    assert keys == sorted(ODD_KEYS)
    for key, body in ODD_KEYS.items():
        was = src.get_object(Bucket=SOURCE_BUCKET, Key=f"{prefix}/{key}")
        got = src.get_object(Bucket=SOURCE_BUCKET, Key=f"{back}/{key}")
        assert got["Body"].read() == body, key
        assert _headers(got) == _headers(was), key
        if not key.endswith("/"):  # SeaweedFS keeps no headers on a folder marker
            assert _headers(was) == META, key


def _bucket(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object below ``prefix`` of ``bucket``, by its key below the prefix."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]

    def body(key: str) -> bytes:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(8) as pool:
        return {
            k.removeprefix(f"{prefix}/"): b for k, b in zip(keys, pool.map(body, keys), strict=True)
        }


def _headers(response: Any) -> dict[str, Any]:
    named = ("ContentType", "CacheControl", "ContentEncoding", "Metadata")
    return {h: response.get(h) for h in named}
