"""S3 repositories keep their index and snapshot files in a local cache: a later command
fetches none of them again, a prune's replaced index files leave the cache, a damaged copy is
fetched again, and check judges the store itself, not the copies."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from snapfs.store.url import open_backend
from tests.conftest import PASSWORD, Cli
from tests.s3.faultproxy import FaultProxy
from tests.s3.seaweed import BUCKET, SeaweedFS


@pytest.fixture
def proxy(seaweedfs: SeaweedFS) -> Iterator[FaultProxy]:
    with FaultProxy(seaweedfs.s3_port) as p:
        yield p


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cli(seaweedfs: SeaweedFS, proxy: FaultProxy, cache: Path) -> Cli:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPFS_", "AWS_"))}
    env = {**base, **seaweedfs.env(proxy.url), "SNAPFS_PASSWORD": PASSWORD}
    env["SNAPFS_CACHE_DIR"] = str(cache)
    return Cli(f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/repo", env)


def _lake(root: Path, name: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.csv").write_bytes(os.urandom(300_000))
    return root


def _gets(proxy: FaultProxy, kind: str) -> int:
    return proxy.counts[f"GET {kind}"]


def _store_keys(cli: Cli, prefix: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    for name, value in cli.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    backend = open_backend(str(cli.repo), cache=False)
    try:
        return {info.key for info in backend.list(prefix)}
    finally:
        backend.close()


def _cached(cache: Path, prefix: str) -> set[str]:
    return {prefix + p.name for p in cache.glob(f"*/{prefix}*") if not p.name.startswith(".")}


def test_a_later_command_fetches_no_index_or_snapshot_file(
    cli: Cli, proxy: FaultProxy, cache: Path, tmp_path: Path
) -> None:
    cli.run("init", check=True)
    cli.run("backup", str(_lake(tmp_path / "src", "a")), check=True)
    before = dict(proxy.counts)
    assert cli.run("ls", "latest", check=True).returncode == 0
    assert _gets(proxy, "index") == before.get("GET index", 0)
    assert _gets(proxy, "snapshots") == before.get("GET snapshots", 0)
    assert (
        (cache / "CACHEDIR.TAG")
        .read_bytes()
        .startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    )
    cli.run("--no-cache", "ls", "latest", check=True)
    assert _gets(proxy, "snapshots") > before.get("GET snapshots", 0)
    # Index lookups come from the index cache's runs; with no cache at all, from the store.
    cli.run("--no-cache", "ls", "latest", check=True, env={"SNAPFS_CACHE_DIR": "off"})
    assert _gets(proxy, "index") > before.get("GET index", 0)


def test_prune_leaves_only_the_stored_index_files_in_the_cache(
    cli: Cli, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.run("init", check=True)
    for name in ("a", "b", "c"):
        cli.run("backup", str(_lake(tmp_path / "src", name)), check=True)
    cli.run("forget", "--keep-last", "1", "--prune", check=True)
    cli.run("prune", check=True)
    cli.run("snapshots", check=True)
    cli.run("ls", "latest", check=True)
    assert _cached(cache, "index/") == _store_keys(cli, "index/", monkeypatch)
    assert _cached(cache, "snapshots/") == _store_keys(cli, "snapshots/", monkeypatch)
    assert len(_cached(cache, "snapshots/")) == 1


def test_a_damaged_copy_is_fetched_again(
    cli: Cli, proxy: FaultProxy, cache: Path, tmp_path: Path
) -> None:
    cli.run("init", check=True)
    cli.run("backup", str(_lake(tmp_path / "src", "a")), check=True)
    (copy,) = [p for p in cache.glob("*/snapshots/*") if not p.name.startswith(".")]
    good = copy.read_bytes()
    copy.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    before = _gets(proxy, "snapshots")
    assert cli.run("snapshots", check=True).returncode == 0
    assert _gets(proxy, "snapshots") == before + 1
    assert copy.read_bytes() == good


def test_check_reads_the_store_not_the_cache(
    cli: Cli, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    cli.run("init", check=True)
    cli.run("backup", str(_lake(tmp_path / "src", "a")), check=True)
    s3 = boto3.client("s3", endpoint_url=seaweedfs.env()["AWS_ENDPOINT_URL"],
                      aws_access_key_id=cli.env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=cli.env["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    prefix = str(cli.repo).removeprefix(f"s3://{BUCKET}/") + "/index/"
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"damaged in the store")
    assert cli.run("ls", "latest").returncode == 0  # served from the cache
    checked = cli.run("check")
    assert checked.returncode == 1
    name = key.rpartition("/")[2][:16]
    assert checked.stderr.decode().strip() == f"snapfs: index file {name} is damaged"


def _tree(root: Path, name: str) -> Path:
    for folder in ("warehouse/sales", "warehouse/events", "logs"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{name}.bin").write_bytes(os.urandom(50_000))
    return root


def _kept(cache: Path) -> set[str]:
    return {f"data/{p.parent.name}/{p.name}" for p in cache.glob("*/data/*/*")
            if not p.name.startswith(".")}  # fmt: skip


def test_a_re_backup_reads_its_parents_trees_from_the_cache(
    cli: Cli, proxy: FaultProxy, cache: Path, tmp_path: Path
) -> None:
    cli.run("init", check=True)
    source = _tree(tmp_path / "src", "a")
    cli.run("backup", str(source), check=True)
    assert len(_kept(cache)) == 1  # kept as it was stored
    before = _gets(proxy, "data")
    cli.run("backup", str(source), check=True)
    listed = cli.run("ls", "latest", check=True).stdout
    assert _gets(proxy, "data") == before
    uncached = cli.run("--no-cache", "ls", "latest", check=True).stdout
    assert _gets(proxy, "data") > before
    assert uncached == listed


def test_a_damaged_kept_pack_is_dropped_and_the_store_answers(
    cli: Cli, proxy: FaultProxy, cache: Path, tmp_path: Path
) -> None:
    cli.run("init", check=True)
    cli.run("backup", str(_tree(tmp_path / "src", "a")), check=True)
    listed = cli.run("ls", "latest", check=True).stdout
    (key,) = _kept(cache)
    (copy,) = cache.glob(f"*/{key}")
    good = copy.read_bytes()
    copy.write_bytes(bytes(b ^ 0xFF for b in good))
    before = _gets(proxy, "data")
    assert cli.run("ls", "latest", check=True).stdout == listed
    assert _gets(proxy, "data") > before
    assert not copy.exists() or copy.read_bytes() == good


def test_kept_packs_leave_the_cache_once_pruned(
    cli: Cli, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.run("init", check=True)
    for name in ("a", "b", "c"):
        source = _tree(tmp_path / "src", name)
        cli.run("backup", str(source), check=True)
        (source / "logs" / f"{name}.bin").unlink()
    assert len(_kept(cache)) == 3
    cli.run("forget", "--keep-last", "1", "--prune", check=True)
    cli.run("ls", "latest", check=True)  # loads the index, which sweeps the cache
    # Every directory changed in every backup: each snapshot's trees are in a pack of their
    # own, and the packs of the two forgotten ones are gone from the store and the cache.
    assert len(_kept(cache)) == 1
    assert _kept(cache) <= _store_keys(cli, "data/", monkeypatch)
