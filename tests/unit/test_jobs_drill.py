"""The restore drill checks what restore wrote against the snapshot: content (as blob ids),
size, mode, mtime, user.* xattrs and (as root) owner; a file restore got wrong fails it,
named."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from snapfs.backup import backup
from snapfs.jobs import drill as drill_module
from snapfs.jobs.drill import DrillFailed, DrillReport, drill
from snapfs.repository import Repository
from snapfs.restore import RestoreSummary, restore

OWNER = f"{os.getuid()}:{os.getgid()}"


@pytest.fixture
def backed_up(repo: Repository, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "one.txt").write_bytes(b"one\n" * 1000)
    os.setxattr(src / "d" / "one.txt", "user.origin", b"warehouse")
    (src / "odd [name]*?.txt").write_bytes(b"globs in a name")  # restore's include escapes
    os.symlink("one.txt", src / "d" / "link")  # not a regular file: never drilled
    backup(repo, [str(src)])
    return src


def test_the_drill_restores_and_checks_every_file_chosen(
    repo: Repository, backed_up: Path, tmp_path: Path
) -> None:
    (snap,) = repo.snapshots()
    work = tmp_path / "work"
    work.mkdir()
    assert drill(repo, snap, 10, workdir=str(work)) == DrillReport(2, 4000 + 15)
    assert drill(repo, snap, 1, rng=random.Random(1), workdir=str(work)).files == 1
    assert list(work.iterdir()) == []  # removed after


def _spoiled(change: Callable[[Path], None]) -> Callable[..., RestoreSummary]:
    def run(repo: Repository, snapshot: object, target: str, **kw: object) -> RestoreSummary:
        summary = restore(repo, snapshot, target, **kw)  # type: ignore[arg-type]
        (one,) = Path(target).glob("**/one.txt")
        change(one)
        return summary

    return run


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.chmod(0o600), "mode 600, the snapshot has 644"),
        (lambda p: os.utime(p, ns=(0, 0)), "modification time differs from the snapshot's"),
        (lambda p: p.write_bytes(b"ONE\n" * 1000), "content differs from the snapshot's"),
        (lambda p: p.write_bytes(b"one\n"), "size 4, the snapshot has 4000"),
        (lambda p: p.unlink(), "not restored"),
        (
            lambda p: os.setxattr(p, "user.origin", b"lake"),
            "extended attributes differ from the snapshot's",
        ),
        (
            lambda p: os.removexattr(p, "user.origin"),
            "extended attributes differ from the snapshot's",
        ),
        (lambda p: os.chown(p, 1234, 4321), f"owner 1234:4321, the snapshot has {OWNER}"),
    ],
)
def test_a_file_restored_wrong_fails_the_drill(
    repo: Repository, backed_up: Path, monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Path], None], message: str,
) -> None:  # fmt: skip
    if "owner" in message and os.geteuid() != 0:
        pytest.fail("the owner check runs only as root: run this test as root")
    (backed_up / "d" / "one.txt").chmod(0o644)
    (snap,) = repo.snapshots()
    node_mtime = os.stat(backed_up / "d" / "one.txt").st_mtime_ns

    def keep_mtime(p: Path) -> None:
        change(p)
        if "modification" not in message and p.exists():
            os.utime(p, ns=(node_mtime, node_mtime))

    monkeypatch.setattr(drill_module, "restore", _spoiled(keep_mtime))
    with pytest.raises(DrillFailed) as e:
        drill(repo, snap, 10)
    assert str(e.value) == f"{backed_up / 'd' / 'one.txt'}: {message}"
