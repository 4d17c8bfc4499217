"""Shared fixtures: cheap-KDF repositories on real disk, the CLI as a subprocess, and a
source tree holding every kind of file a backup must keep."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapfs.crypto import KdfParams
from snapfs.repository import Repository
from snapfs.store.local import LocalBackend
from snapfs.store.memory import MemoryBackend

PASSWORD = "correct horse battery staple"
CHEAP_KDF = KdfParams(n=2**10, r=8, p=1)
SNAPFS = [sys.executable, "-m", "snapfs"]


@pytest.fixture
def memory_repo() -> Iterator[Repository]:
    repo = Repository.init(MemoryBackend(), PASSWORD, kdf=CHEAP_KDF)
    yield repo
    repo.close()


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    """A path holding an initialised repository (cheap KDF, so tests stay fast)."""
    path = tmp_path / "repo"
    Repository.init(LocalBackend(path), PASSWORD, kdf=CHEAP_KDF).close()
    return path


@pytest.fixture
def repo(repo_path: Path) -> Iterator[Repository]:
    r = Repository.open(LocalBackend(repo_path), PASSWORD)
    yield r
    r.close()


@dataclass
class Cli:
    repo: Path
    env: dict[str, str]

    def run(self, *args: str, input: bytes | None = None, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
        result = subprocess.run(
            [*SNAPFS, "-r", str(self.repo), *args],
            input=input,
            capture_output=True,
            env={**self.env, **(env or {})},
            timeout=240,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"snapfs {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
            )
        return result

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*SNAPFS, "-r", str(self.repo), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**self.env, **(env or {})},
        )


@pytest.fixture
def cli(repo_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_")}
    env["SNAPFS_PASSWORD"] = PASSWORD
    return Cli(repo_path, env)


def make_every_kind(root: Path) -> None:
    """Regular, empty, sparse and hardlinked files, symlinks (one dangling), a FIFO, xattrs,
    a name that is not UTF-8, empty and nested directories, odd modes and times."""
    root.mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello lake\n")
    (root / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "dir" / "nested" / "deeper").mkdir(parents=True)
    (root / "dir" / "nested" / "deeper" / "leaf.csv").write_text("a,b\n1,2\n" * 1000)
    (root / "empty-dir").mkdir()
    with open(root / "sparse.img", "wb") as f:
        f.truncate(20 * 1024 * 1024)
        f.seek(8 * 1024 * 1024)
        f.write(b"data in the middle" * 100)
    os.link(root / "small.txt", root / "dir" / "hardlink.txt")
    os.symlink("small.txt", root / "link")
    os.symlink("/nonexistent/target", root / "dangling")
    os.mkfifo(root / "fifo")
    (root / os.fsdecode(b"caf\xe9-\xff.bin")).write_bytes(b"latin-1 name")
    os.setxattr(root / "small.txt", "user.origin", b"warehouse")
    os.setxattr(root / "dir", "user.team", b"data-eng")
    os.chmod(root / "random.bin", 0o640)
    os.chmod(root / "dir" / "nested", 0o750)
    os.chown(root / "small.txt", 1234, 5678)
    os.utime(root / "random.bin", ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
    os.utime(root / "link", ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_002),
             follow_symlinks=False)  # fmt: skip
    os.utime(root / "dir" / "nested", ns=(1_400_000_000_000_000_003, 1_400_000_000_000_000_004))


@pytest.fixture
def lake_tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    make_every_kind(root)
    return root


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNAPFS_FAULT", raising=False)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)
