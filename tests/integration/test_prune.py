"""forget, prune, undelete and locks against real repositories and real processes:
kill -9 of prune at its fault points, backups racing prune, two backups at once — on the
local store and on S3 (SeaweedFS)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from snapfs.repository import Repository
from snapfs.store.url import open_backend
from tests.conftest import BACKENDS, CHEAP_KDF, PASSWORD, Cli
from tests.helpers import assert_same_tree

pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)


def _write(root: Path, name: str, size: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(os.urandom(size))


@pytest.fixture
def prune_repo(new_location: Callable[[str], str], cli: Cli) -> str:
    """A repository with small packs, so that a few MB of data make many of them."""
    location = new_location("prune-repo")
    backend = open_backend(location)
    Repository.init(backend, PASSWORD, kdf=CHEAP_KDF, pack_size=256 * 1024).close()
    cli.repo = location
    return location


def _backup(cli: Cli, src: Path, *extra: str) -> str:
    out = cli.run("backup", str(src), "--json", *extra, check=True).stdout.splitlines()[-1]
    return str(json.loads(out)["snapshot_id"])


def _history(cli: Cli, tmp_path: Path) -> dict[str, Path]:
    """Three snapshots of a changing tree; a copy of the source as each one saw it."""
    src, kept = tmp_path / "src", {}
    for i in range(3):
        for j in range(6):
            _write(src, f"gen{i}-{j}.bin", 150_000)
        if i > 0:
            for old in sorted(src.glob(f"gen{i - 1}-*"))[:4]:
                old.unlink()
        sid = _backup(cli, src)
        copy = tmp_path / f"seen-{i}"
        os.system(f"cp -a {src} {copy}")
        kept[sid] = copy
    return kept


def _assert_restores(cli: Cli, snaps: dict[str, Path], tmp_path: Path, tag: str) -> None:
    src = tmp_path / "src"
    for n, (sid, copy) in enumerate(snaps.items()):
        out = tmp_path / f"restore-{tag}-{n}"
        cli.run("restore", sid, "--target", str(out), "--verify", check=True)
        assert_same_tree(copy, out / str(src).lstrip("/"))


def _check(cli: Cli) -> None:
    result = cli.run("check", "--read-data")
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


def _age_packs(location: str, hours: int) -> bool:
    """Make every pack look ``hours`` old; False where the store keeps its own times (S3)."""
    if "://" in location:
        return False
    then = time.time() - hours * 3600
    for p in (Path(location) / "data").rglob("*"):
        if p.is_file():
            os.utime(p, (then, then))
    return True


def _stored(location: str) -> int:
    return sum(info.size for info in open_backend(location).list("data/"))


POINTS = ["prune-marked", "prune-repacked", "prune-index-written", "prune-plan-written",
          "prune-pack-deleted", "prune-plan-done"]  # fmt: skip


@pytest.mark.parametrize("point", POINTS)
def test_kill_prune_at_fault_points(cli: Cli, prune_repo: str, tmp_path: Path, point: str) -> None:
    history = _history(cli, tmp_path)
    first = next(iter(history))
    cli.run("forget", first, check=True)
    survivors = {sid: p for sid, p in history.items() if sid != first}
    phase2 = point in ("prune-pack-deleted", "prune-plan-done")
    if phase2:
        cli.run("prune", check=True)  # phase 1 completes; the next run sweeps
    killed = cli.run("prune", env={"SNAPFS_FAULT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cli.run("unlock", check=True)  # the killed prune's lock: its pid is gone
    _check(cli)
    _assert_restores(cli, survivors, tmp_path, "after-kill")
    aged = True
    if point == "prune-index-written":
        # Killed before its plan was saved: the condemned packs are now unindexed, and
        # unindexed packs are left alone for an hour (they may be a backup in flight).
        aged = _age_packs(prune_repo, hours=2)
    for _ in range(2):
        cli.run("prune", check=True)
    _check(cli)
    _assert_restores(cli, survivors, tmp_path, "after-rerun")
    report = json.loads(cli.run("prune", "--dry-run", "--json", check=True).stdout)
    assert report["condemned_packs"] == 0
    if aged:  # on S3 the hour of grace has not passed: those packs rightly stay
        assert _stored(prune_repo) < 3 * 6 * 150_000  # the first snapshot's data is gone


def test_forget_then_undelete_before_sweep(cli: Cli, prune_repo: str, tmp_path: Path) -> None:
    history = _history(cli, tmp_path)
    first = next(iter(history))
    cli.run("forget", first, check=True)
    cli.run("prune", check=True)  # phase 1 condemned the first snapshot's data
    assert cli.run("undelete", first[:8], check=True).stdout.decode().strip() == (
        f"snapshot {first[:8]} is back"
    )
    cli.run("prune", check=True)
    cli.run("prune", check=True)
    _check(cli)
    _assert_restores(cli, history, tmp_path, "undeleted")


def test_backup_racing_prune_loses_nothing(cli: Cli, prune_repo: str, tmp_path: Path) -> None:
    history = _history(cli, tmp_path)
    first = next(iter(history))
    cli.run("forget", first, check=True)
    src2 = tmp_path / "src2"
    for j in range(40):
        _write(src2, f"racer-{j}.bin", 200_000)
    os.system(f"cp -a {tmp_path / 'seen-0'}/. {src2}/")
    racer = cli.popen("backup", str(src2), "--json")
    pruned = cli.run("prune")
    out, err = racer.communicate(timeout=120)
    assert racer.returncode == 0, err
    assert pruned.returncode == 0, pruned.stderr
    racer_id = json.loads(out.splitlines()[-1])["snapshot_id"]
    for _ in range(3):
        cli.run("prune", check=True)
    _check(cli)
    out_dir = tmp_path / "racer-restore"
    cli.run("restore", racer_id, "--target", str(out_dir), "--verify", check=True)
    assert_same_tree(src2, out_dir / str(src2).lstrip("/"))


def test_two_backups_at_once(cli: Cli, prune_repo: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for j in range(20):
        _write(a, f"a{j}", 100_000)
        _write(b, f"b{j}", 100_000)
    (b / "shared").write_bytes((a / "a0").read_bytes())
    procs = [cli.popen("backup", str(a)), cli.popen("backup", str(b))]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    _check(cli)
    snaps = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    assert sorted(s["paths"][0] for s in snaps) == [str(a), str(b)]
    for s in snaps:
        out = tmp_path / f"r-{s['short_id']}"
        cli.run("restore", s["id"], "--target", str(out), check=True)
        src = Path(s["paths"][0])
        assert_same_tree(src, out / str(src).lstrip("/"))


def test_second_prune_is_refused_with_exit_11(cli: Cli, prune_repo: str) -> None:
    repo = Repository.open(open_backend(prune_repo), PASSWORD)
    with repo.lock("prune"):
        result = cli.run("prune")
    repo.close()
    assert result.returncode == 11
    line = result.stderr.decode().strip()
    assert line.startswith(f"snapfs: repository is locked by prune (pid {os.getpid()} on ")


def test_stale_lock_of_dead_process_is_ignored_and_unlocked(cli: Cli, prune_repo: str) -> None:
    child = cli.popen("prune", env={"SNAPFS_FAULT": "prune-marked"})
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert cli.run("prune").returncode == 0  # the dead holder does not block
    time.sleep(0)
    out = cli.run("unlock", check=True).stdout.decode()
    assert out.splitlines()[-1] in ("0 locks removed", "1 locks removed")
