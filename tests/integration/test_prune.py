"""forget, prune, undelete and locks against real repositories and real processes:
kill -9 of prune at its fault points, backups racing prune, two backups at once — on the
local store and on S3 (SeaweedFS)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from snapfs.locks import STALE_AFTER, LockRecord
from snapfs.plans import Plan
from snapfs.repository import Repository
from snapfs.store.url import open_backend
from snapfs.tree import FILE
from snapfs.walk import walk
from tests.conftest import BACKENDS, PASSWORD, Cli, init_small_packs
from tests.helpers import assert_same_tree

pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)


def _write(root: Path, name: str, size: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(os.urandom(size))


@pytest.fixture
def prune_repo(new_location: Callable[[str], str], cli: Cli) -> str:
    """A repository with small packs, so that a few MB of data make many of them."""
    location = init_small_packs(new_location("prune-repo"))
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
    _check(cli)  # at once: its condemned packs are indexed again, before any prune
    _assert_restores(cli, {first: history[first]}, tmp_path, "at-once")
    cli.run("prune", check=True)
    cli.run("prune", check=True)
    _check(cli)
    _assert_restores(cli, history, tmp_path, "undeleted")


def test_undelete_refuses_a_snapshot_a_killed_sweep_has_begun_deleting(
    cli: Cli, prune_repo: str, tmp_path: Path
) -> None:
    """A sweep killed after deleting one of a forgotten snapshot's packs leaves the snapshot
    listed as forgotten, and its plan pending: undelete refuses it rather than bring back a
    snapshot that cannot be restored, and a prune run again finishes the sweep."""
    history = _history(cli, tmp_path)
    first = next(iter(history))
    survivors = {sid: p for sid, p in history.items() if sid != first}
    cli.run("forget", first, check=True)
    cli.run("prune", check=True)  # phase 1 condemns the first snapshot's data
    killed = cli.run("prune", env={"SNAPFS_FAULT": "prune-pack-deleted"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # after its first deletion
    cli.run("unlock", check=True)
    assert len(_plans(prune_repo)) == 1  # the sweep did not finish its plan

    refused = cli.run("undelete", first[:8])
    assert (refused.returncode, refused.stderr.decode(), refused.stdout) == (
        1, f"snapfs: snapshot {first[:8]} cannot be undeleted: an interrupted prune already "
        "deleted some of its data; run prune to finish removing it\n", b""
    )  # fmt: skip
    assert len(_plans(prune_repo)) == 1  # nothing cancelled: the sweep is still to finish
    _check(cli)
    _assert_restores(cli, survivors, tmp_path, "refused")

    cli.run("prune", check=True)  # finishes the sweep, then marks nothing new
    assert _plans(prune_repo) == []
    assert _stored(prune_repo) < 3 * 6 * 150_000  # the first snapshot's data is gone
    gone = cli.run("undelete", first[:8])
    assert (gone.returncode, gone.stderr.decode()) == (
        1, f"snapfs: no snapshot matches '{first[:8]}'\n"
    )  # fmt: skip
    _check(cli)
    _assert_restores(cli, survivors, tmp_path, "swept")


def _packs(location: str) -> set[str]:
    return {info.key for info in open_backend(location).list("data/")}


def test_prune_sweeps_nothing_while_a_backup_that_ran_as_it_marked_is_live(
    cli: Cli, prune_repo: str, tmp_path: Path
) -> None:
    """The racer is held just before it stores its snapshot, so it is provably live while
    prune plans and while it sweeps, and it reuses blobs that only a forgotten snapshot
    names: the packs holding them must outlive the sweep, and the racer must restore."""
    history = _history(cli, tmp_path)
    first = next(iter(history))
    cli.run("forget", first, check=True)
    src2 = _racer_source(tmp_path)
    racer = cli.hold("before-snapshot", tmp_path / "racer.held", "backup", str(src2), "--json")
    before = _packs(prune_repo)
    planned = json.loads(cli.run("prune", "--json", check=True).stdout)
    assert planned["condemned_packs"] + planned["repacked_packs"] > 0  # the race is on
    swept = json.loads(cli.run("prune", "--json", check=True).stdout)
    assert (swept["waiting_plans"], swept["deleted_packs"]) == (1, 0)
    assert before <= _packs(prune_repo)  # nothing the racer may use was deleted
    out, _err = racer.release()
    racer_id = json.loads(out.splitlines()[-1])["snapshot_id"]
    last = {}
    for _ in range(3):
        last = json.loads(cli.run("prune", "--json", check=True).stdout)
    assert last["waiting_plans"] == 0
    _check(cli)
    out_dir = tmp_path / "racer-restore"
    cli.run("restore", racer_id, "--target", str(out_dir), "--verify", check=True)
    assert_same_tree(src2, out_dir / str(src2).lstrip("/"))
    survivors = {sid: p for sid, p in history.items() if sid != first}
    _assert_restores(cli, survivors, tmp_path, "after-race")


def _racer_source(tmp_path: Path) -> Path:
    """New files, and the files of the first snapshot (forgotten): a backup of it stores
    packs of its own and deduplicates against packs that a marking condemns."""
    src2 = tmp_path / "src2"
    for j in range(6):
        _write(src2, f"racer-{j}.bin", 200_000)
    os.system(f"cp -a {tmp_path / 'seen-0'}/. {src2}/")
    return src2


def _plans(location: str) -> list[Plan]:
    with Repository.open(open_backend(location), PASSWORD) as repo:
        return [plan for _key, plan in repo.load_records("prune", Plan)]


def _indexed(location: str) -> set[str]:
    with Repository.open(open_backend(location), PASSWORD) as repo:
        return {pack_id for pack_id, _entries in repo.index_packs()}


def _restores_at_once(cli: Cli, out: bytes, src: Path, tmp_path: Path) -> None:
    """The snapshot restores byte-identical and check passes, with no prune run since."""
    snapshot_id = json.loads(out.splitlines()[-1])["snapshot_id"]
    _check(cli)
    out_dir = tmp_path / "at-once"
    cli.run("restore", snapshot_id, "--target", str(out_dir), "--verify", check=True)
    assert_same_tree(src, out_dir / str(src).lstrip("/"))


def test_a_backup_live_while_prune_marks_restores_as_soon_as_it_ends(
    cli: Cli, prune_repo: str, tmp_path: Path
) -> None:
    """The racer is held after storing its packs and index, before its snapshot, while
    prune marks: the marking condemns the racer's own packs (indexed, used by no snapshot)
    and those of the forgotten files it reused, and the plan waits for it. Saving its
    snapshot, the racer indexes again what it needs of them, so it restores at once."""
    history = _history(cli, tmp_path)
    cli.run("forget", next(iter(history)), check=True)
    src2 = _racer_source(tmp_path)
    racer = cli.hold("before-snapshot", tmp_path / "racer.held", "backup", str(src2), "--json")
    planned = json.loads(cli.run("prune", "--json", check=True).stdout)
    assert planned["condemned_packs"] > 0
    [plan] = _plans(prune_repo)
    assert len(plan.waiting_for) == 1  # the racer, provably live: it waits at its fault point
    assert not set(plan.condemned) & _indexed(prune_repo)
    out, _err = racer.release()
    _restores_at_once(cli, out, src2, tmp_path)
    assert set(plan.condemned) & _indexed(prune_repo)  # given back by the racer


def test_a_backup_that_ends_while_prune_marks_restores_as_soon_as_prune_ends(
    cli: Cli, prune_repo: str, tmp_path: Path
) -> None:
    """The racer is live while prune marks, and saves its snapshot after the marking listed
    snapshots but before the plan is saved (prune held between the two): it finds no plan
    waiting for it, so prune, once its plan is saved, indexes again what the racer needs."""
    history = _history(cli, tmp_path)
    cli.run("forget", next(iter(history)), check=True)
    src2 = _racer_source(tmp_path)
    racer = cli.hold("before-snapshot", tmp_path / "racer.held", "backup", str(src2), "--json")
    pruning = cli.hold("prune-index-written", tmp_path / "prune.held", "prune", "--json")
    assert _plans(prune_repo) == []
    out, _err = racer.release()  # its snapshot is saved while prune still marks
    planned, _err = pruning.release()
    assert json.loads(planned)["condemned_packs"] > 0
    [plan] = _plans(prune_repo)
    assert plan.waiting_for == []  # the racer had ended when the plan was saved
    _restores_at_once(cli, out, src2, tmp_path)
    assert set(plan.condemned) & _indexed(prune_repo)  # given back by prune itself


def _half_forgotten(cli: Cli, tmp_path: Path) -> str:
    """Eight files, then a snapshot of every other one, and the first snapshot forgotten: the
    packs hold live and dead blobs side by side. The surviving snapshot's id."""
    src = tmp_path / "src"
    for j in range(8):
        _write(src, f"f{j}.bin", 150_000)
    first = _backup(cli, src)
    for j in range(0, 8, 2):
        (src / f"f{j}.bin").unlink()
    second = _backup(cli, src)
    cli.run("forget", first, check=True)
    return second


def _files(repo: Repository, snapshot_id: str) -> dict[str, list[bytes]]:
    root = bytes.fromhex(repo.find_snapshot(snapshot_id).tree)
    return {os.fsdecode(rel): n.content for rel, n in walk(repo, root) if n.type == FILE}


def test_readers_opened_before_prune_find_the_blobs_it_moved(
    cli: Cli, prune_repo: str, tmp_path: Path
) -> None:
    """Two readers load the index, then prune repacks and deletes the packs it names: one
    reads blob by blob (read_blob), the other by coalesced ranges (read_blob_group); both
    must find each blob where prune moved it."""
    second = _half_forgotten(cli, tmp_path)
    one, group = (Repository.open(open_backend(prune_repo), PASSWORD) for _ in range(2))
    try:
        files = _files(one, second)
        assert _files(group, second) == files  # both have loaded the index now
        seen = _packs(prune_repo)
        marked = json.loads(cli.run("prune", "--json", check=True).stdout)
        assert marked["repacked_packs"] > 0
        cli.run("prune", check=True)
        assert seen - _packs(prune_repo)  # packs the readers' indexes name are gone
        for name, content in files.items():
            want = (Path("/") / name).read_bytes()
            assert b"".join(bytes(one.read_blob(c)) for c in content) == want
            blobs = group.read_blob_group(content)
            assert b"".join(bytes(blobs[c]) for c in content) == want
    finally:
        one.close()
        group.close()


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


def test_unlock_removes_exactly_the_stale_locks(cli: Cli, prune_repo: str) -> None:
    child = cli.popen("prune", env={"SNAPFS_FAULT": "prune-marked"})
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert cli.run("prune").returncode == 0  # the dead holder does not block
    repo = Repository.open(open_backend(prune_repo), PASSWORD)
    try:
        with repo.lock("backup"):  # live: this process, refreshed now
            out = cli.run("unlock", check=True).stdout.decode().splitlines()
            assert len(out) == 2 and out[-1] == "1 locks removed"
            assert out[0].startswith(f"removed lock prune (pid {child.pid} on ")
            assert [h.record.pid for h in repo.list_locks()] == [os.getpid()]
            again = cli.run("unlock", "--remove-all", check=True).stdout.decode().splitlines()
            assert again[0].startswith(f"removed lock backup (pid {os.getpid()} on ")
            assert again[-1] == "1 locks removed"
            assert repo.list_locks() == []
    finally:
        repo.close()


def _foreign_lock(location: str, kind: str, age: float) -> int:
    """A lock record as a process on another host writes it, last refreshed ``age`` ago;
    its pid is one that no process here has (on this host it would be stale at once)."""
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names no process here
    repo = Repository.open(open_backend(location), PASSWORD)
    then = time.time() - age
    record = LockRecord("0123456789abcdef", "elsewhere", child.pid, kind, then, then)
    repo.backend.put(f"locks/{os.urandom(16).hex()}", repo.key.seal(msgspec.msgpack.encode(record)))
    repo.close()
    return child.pid


def test_a_lock_held_on_another_host_is_stale_after_30_minutes(cli: Cli, prune_repo: str) -> None:
    pid = _foreign_lock(prune_repo, "prune", age=STALE_AFTER - 60)
    refused = cli.run("prune")
    assert refused.returncode == 11
    assert refused.stderr.decode().startswith(
        f"snapfs: repository is locked by prune (pid {pid} on elsewhere, since "
    )
    assert cli.run("unlock", check=True).stdout.decode() == "0 locks removed\n"
    cli.run("unlock", "--remove-all", check=True)
    pid = _foreign_lock(prune_repo, "prune", age=STALE_AFTER + 60)
    assert cli.run("prune").returncode == 0
    out = cli.run("unlock", check=True).stdout.decode().splitlines()
    assert out[0].startswith(f"removed lock prune (pid {pid} on elsewhere, since ")
    assert out[-1] == "1 locks removed"


def test_check_and_prune_exclude_each_other_but_not_backups(
    cli: Cli, prune_repo: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _write(src, "a.bin", 1000)
    repo = Repository.open(open_backend(prune_repo), PASSWORD)
    try:
        with repo.lock("prune"):
            checked = cli.run("check")
            _backup(cli, src)  # backups never wait for prune
        assert checked.returncode == 11, checked.stderr
        assert checked.stderr.decode().startswith(
            f"snapfs: repository is locked by prune (pid {os.getpid()} on "
        )
        with repo.lock("check"):
            pruned = cli.run("prune")
            _backup(cli, src)
        assert pruned.returncode == 11, pruned.stderr
        assert pruned.stderr.decode().startswith(
            f"snapfs: repository is locked by check (pid {os.getpid()} on "
        )
        with repo.lock("backup"):
            _check(cli)  # check reads what is stored; a running backup adds only new keys
    finally:
        repo.close()


def test_prune_retry_lock_waits_for_the_holder(cli: Cli, prune_repo: str) -> None:
    repo = Repository.open(open_backend(prune_repo), PASSWORD)
    try:
        with repo.lock("prune"):
            gave_up = cli.run("prune", "--retry-lock", "0.3")
            assert gave_up.returncode == 11
            waiter = cli.popen("prune", "--retry-lock", "120")
            assert waiter.stderr is not None
            line = waiter.stderr.readline().decode()  # it is waiting now, for us
            assert line.startswith(
                f"snapfs: waiting for the lock held by prune (pid {os.getpid()} on "
            )
        _out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
    finally:
        repo.close()


def test_repack_threshold_decides_which_packs_are_repacked(
    cli: Cli, prune_repo: str, tmp_path: Path
) -> None:
    _half_forgotten(cli, tmp_path)

    def report(threshold: str) -> dict[str, int]:
        out = cli.run("prune", "--dry-run", "--json", "--repack-threshold", threshold, check=True)
        return dict(json.loads(out.stdout))

    never, always = report("0"), report("1")
    assert never["repacked_packs"] == 0
    assert always["repacked_packs"] > 0  # every pack holding both kinds of file
    cli.run("prune", "--repack-threshold", "0", check=True)  # condemns, repacks nothing
    out = cli.run("prune", "--repack-threshold", "0", "--json", check=True).stdout
    swept = json.loads(out)
    assert swept["deleted_packs"] > 0 and swept["kept_again"] == 0
    assert report("0")["repacked_packs"] == 0
    assert report("1")["repacked_packs"] == always["repacked_packs"]  # they were kept as is
