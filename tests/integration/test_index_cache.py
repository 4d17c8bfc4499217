"""The index cache through the CLI: kill -9 while it is updated leaves the next command
correct, and every command agrees with an index read afresh from the index files."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import msgspec
import pytest

from tests.conftest import BACKENDS, Cli

pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)


def _grow(root: Path, files: int, seed: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"part-{seed}-{i:03}.bin").write_bytes(os.urandom(200_000 + i * 1000))


def _covered(cli: Cli) -> set[str]:
    """The index files the local index cache's manifest says its runs hold."""
    (manifest,) = Path(cli.env["XDG_CACHE_HOME"], "snapfs").glob("*/index-cache/manifest")
    runs = msgspec.msgpack.decode(manifest.read_bytes()[32:])["runs"]
    return {name for run in runs for name in run[4]}


def _stats(cli: Cli, **env: str) -> dict[str, int]:
    out = cli.run("stats", "--json", check=True, env=env).stdout
    return {k: v for k, v in json.loads(out).items() if k.endswith("blobs")}


@pytest.mark.parametrize("fault", ["index-cache-run-written:1", "index-cache-published:1"])
def test_kill_while_the_cache_is_built_leaves_the_next_command_correct(
    cli: Cli, tmp_path: Path, fault: str
) -> None:
    src = tmp_path / "src"
    _grow(src, 10, seed=1)
    cli.run("backup", str(src), check=True)
    shutil.rmtree(Path(cli.env["XDG_CACHE_HOME"], "snapfs"))  # as on another machine
    killed = cli.run("stats", "--json", env={"SNAPFS_FAULT": fault})  # builds it, dies
    assert killed.returncode == -signal.SIGKILL
    fresh = _stats(cli, SNAPFS_CACHE_DIR="off")
    assert fresh["data_blobs"] > 0
    assert _stats(cli) == fresh
    _grow(src, 5, seed=2)
    cli.run("backup", str(src), check=True)
    assert _stats(cli) == _stats(cli, SNAPFS_CACHE_DIR="off")
    assert cli.run("check").returncode == 0


def test_kill_while_a_backup_adds_its_run_leaves_the_next_command_correct(
    cli: Cli, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _grow(src, 10, seed=1)
    cli.run("backup", str(src), check=True)
    assert _stats(cli)["data_blobs"] > 0  # the cache exists now
    _grow(src, 10, seed=2)
    killed = cli.run("backup", str(src), env={"SNAPFS_FAULT": "index-cache-published:1"})
    assert killed.returncode == -signal.SIGKILL  # its index file stored, the run published
    assert _stats(cli) == _stats(cli, SNAPFS_CACHE_DIR="off")
    cli.run("backup", str(src), check=True)
    assert _stats(cli) == _stats(cli, SNAPFS_CACHE_DIR="off")
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), "--verify", check=True)
    assert cli.run("check", "--read-data").returncode == 0


def test_a_pruned_index_is_seen_by_the_next_command(cli: Cli, tmp_path: Path) -> None:
    """prune replaces the index files: runs covering the old ones are rebuilt."""
    src = tmp_path / "src"
    _grow(src, 6, seed=1)
    cli.run("backup", str(src), check=True)
    for p in src.iterdir():
        p.unlink()
    _grow(src, 3, seed=2)
    cli.run("backup", str(src), check=True)
    before = _stats(cli)
    cli.run("forget", "--keep-last", "1", check=True)
    cli.run("prune", check=True)
    if not str(cli.repo).startswith("s3://"):  # prune gave the cache what it wrote
        assert {p.name for p in Path(cli.repo, "index").iterdir()} <= _covered(cli)
    after = _stats(cli)
    assert after == _stats(cli, SNAPFS_CACHE_DIR="off")
    assert after["data_blobs"] < before["data_blobs"]


def test_commands_racing_to_build_the_cache_all_answer_right(cli: Cli, tmp_path: Path) -> None:
    """Four processes open a repository whose cache is missing: the lock serialises the
    builders, and each sees every blob."""
    src = tmp_path / "src"
    for seed in range(3):
        _grow(src, 4, seed=seed)
        cli.run("backup", str(src), check=True)
    expected = _stats(cli, SNAPFS_CACHE_DIR="off")
    cache = tmp_path / "shared-cache"
    procs = [cli.popen("stats", "--json", env={"SNAPFS_CACHE_DIR": str(cache)}) for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        got = {k: v for k, v in json.loads(out).items() if k.endswith("blobs")}
        assert got == expected
    assert (cache / "CACHEDIR.TAG").exists()
