"""kill -9 of a backup at chosen points, by itself there or from outside while its other
threads work on: afterwards the repository checks clean, every earlier snapshot restores
byte-identical, and the next backup succeeds."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from snapfs.repository import Repository
from snapfs.store.url import open_backend
from tests.conftest import BACKENDS, CHEAP_KDF, PASSWORD, Cli
from tests.helpers import assert_same_tree

pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)


def _grow(root: Path, files: int, seed: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"part-{seed}-{i:03}.bin").write_bytes(os.urandom(300_000 + i * 1000))


@pytest.fixture
def small_pack_repo(new_location: Callable[[str], str]) -> str:
    location = new_location("small-pack-repo")
    Repository.init(open_backend(location), PASSWORD, kdf=CHEAP_KDF, pack_size=1 << 20).close()
    return location


@pytest.mark.parametrize(
    "fault", ["pack-stored:1", "pack-stored:4", "index-stored:1", "before-snapshot:1"]
)
def test_kill_at_fault_point_keeps_repository_intact(
    cli: Cli, small_pack_repo: str, tmp_path: Path, fault: str
) -> None:
    cli.repo = small_pack_repo
    src = tmp_path / "src"
    _grow(src, 20, seed=1)
    first = json.loads(cli.run("backup", str(src), "--json", check=True).stdout.splitlines()[-1])
    _grow(src, 30, seed=2)
    killed = cli.run("backup", str(src), env={"SNAPFS_FAULT": fault})
    assert killed.returncode == -signal.SIGKILL
    snaps = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    assert [s["id"] for s in snaps] == [first["snapshot_id"]]
    (src / "part-2-000.bin").unlink()  # a later state: restore must give the first one
    cli.run("backup", str(src), check=True)
    out = tmp_path / "first"
    cli.run("restore", first["snapshot_id"], "--target", str(out), "--verify", check=True)
    restored = out / str(src).lstrip("/")
    assert sorted(p.name for p in restored.iterdir()) == [f"part-1-{i:03}.bin" for i in range(20)]
    for p in restored.iterdir():
        assert p.read_bytes() == (src / p.name).read_bytes()
    assert cli.run("check", "--read-data").returncode == 0


@pytest.mark.parametrize(
    "fault", ["pack-stored:1", "pack-stored:6", "index-stored:1", "before-snapshot:1"]
)
def test_kill_while_a_backup_runs(
    cli: Cli, small_pack_repo: str, tmp_path: Path, fault: str
) -> None:
    """kill -9 from outside, of a backup provably running: one thread waits at the fault
    point while the others go on reading, chunking, sealing and uploading, so the kill lands
    in the middle of their work, not at a clean point."""
    cli.repo = small_pack_repo
    src = tmp_path / "src"
    _grow(src, 10, seed=1)
    cli.run("backup", str(src), check=True)
    baseline = tmp_path / "baseline"
    shutil.copytree(src, baseline)
    first = json.loads(cli.run("snapshots", "--json", check=True).stdout)[0]["id"]
    _grow(src, 60, seed=3)
    cli.hold(fault, tmp_path / "held", "backup", str(src)).kill()
    snaps = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    assert [s["id"] for s in snaps] == [first]  # the killed backup left no snapshot
    checked = cli.run("check", "--read-data")
    assert checked.returncode == 0, checked.stderr
    out = tmp_path / "out"
    cli.run("restore", first, "--target", str(out), "--verify", check=True)
    assert_same_tree(baseline, out / str(src).lstrip("/"))
    cli.run("unlock", check=True)  # the killed backup's lock: its pid is gone
    second = json.loads(cli.run("backup", str(src), "--json", check=True).stdout.splitlines()[-1])
    assert cli.run("check", "--read-data").returncode == 0
    again = tmp_path / "again"
    cli.run("restore", second["snapshot_id"], "--target", str(again), "--verify", check=True)
    assert_same_tree(src, again / str(src).lstrip("/"))
