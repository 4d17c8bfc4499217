"""Real FUSE mounts of real repositories, read by real clients (os, threads, pyarrow)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from snapfs.repository import Repository
from snapfs.store.url import open_backend
from snapfs.walk import resolve
from tests.conftest import BACKENDS, PASSWORD, SNAPFS, Cli
from tests.helpers import assert_same_tree

Mount = Callable[..., AbstractContextManager[Path]]


def _is_mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == str(path) for line in f)


def _force_unmount(path: Path) -> None:
    if _is_mounted(path):
        subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, check=False)
    if _is_mounted(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture
def mount(cli: Cli, tmp_path: Path) -> Iterator[Mount]:
    """Mounts in the background as a user would; every mount is gone after the test, even
    when it fails."""
    made: list[Path] = []

    @contextmanager
    def mounted(*args: str, name: str = "mnt") -> Iterator[Path]:
        point = (tmp_path / name).resolve()
        point.mkdir(exist_ok=True)
        made.append(point)
        cli.run("mount", str(point), *args, check=True)
        try:
            yield point
        finally:
            done = subprocess.run(
                [*SNAPFS, "umount", str(point)], capture_output=True, env=cli.env, check=False
            )
            assert done.returncode == 0, done.stderr
            assert not _is_mounted(point)

    yield mounted
    for point in made:
        _force_unmount(point)


def _inside(mnt: Path, source: Path) -> Path:
    """Where an absolute source path appears in a mounted snapshot."""
    return mnt / source.relative_to("/")


@pytest.mark.parametrize("backend_kind", BACKENDS)
def test_every_file_and_attribute_reads_back_through_the_mount(
    cli: Cli, mount: Mount, lake_tree: Path
) -> None:
    cli.run("backup", str(lake_tree), check=True)
    with mount("latest") as mnt:
        assert_same_tree(lake_tree, _inside(mnt, lake_tree), sparseness=False)
        small, hard = _inside(mnt, lake_tree) / "small.txt", _inside(mnt, lake_tree) / "dir"
        assert os.lstat(small).st_ino == os.lstat(hard / "hardlink.txt").st_ino
        assert os.lstat(small).st_nlink == 2
        assert os.lstat(small).st_size == (lake_tree / "small.txt").stat().st_size


def test_the_whole_repository_shows_snapshots_latest_tags_and_hosts(
    cli: Cli, mount: Mount, lake_tree: Path
) -> None:
    cli.run("backup", str(lake_tree), "--tag", "nightly", "--host", "db1", check=True)
    (lake_tree / "small.txt").write_text("changed\n")
    cli.run("backup", str(lake_tree), "--host", "db2", check=True)
    listed = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    snaps = sorted(listed, key=lambda s: s["time"])
    with mount() as mnt:
        names = {n.rsplit("_", 1)[1]: n for n in os.listdir(mnt / "snapshots")}
        assert sorted(names) == sorted(s["short_id"] for s in snaps)
        first, second = names[snaps[0]["short_id"]], names[snaps[1]["short_id"]]
        assert sorted(os.listdir(mnt)) == ["hosts", "latest", "snapshots", "tags"]
        assert os.readlink(mnt / "latest") == f"snapshots/{second}"
        assert os.listdir(mnt / "tags") == ["nightly"]
        assert os.listdir(mnt / "tags" / "nightly") == [first]
        assert os.listdir(mnt / "hosts" / "db2") == [second]
        assert sorted(os.listdir(mnt / "hosts")) == ["db1", "db2"]
        old = _inside(mnt / "tags" / "nightly" / first, lake_tree) / "small.txt"
        new = _inside(mnt / "latest", lake_tree) / "small.txt"
        assert old.read_text() == "hello lake\n"
        assert new.read_text() == "changed\n"


def test_every_kind_of_write_fails_with_erofs(cli: Cli, mount: Mount, lake_tree: Path) -> None:
    cli.run("backup", str(lake_tree), check=True)
    with mount("latest") as mnt:
        root = _inside(mnt, lake_tree)
        attempts: dict[str, Callable[[], object]] = {
            "open for writing": lambda: os.open(root / "small.txt", os.O_RDWR),
            "create": lambda: os.open(root / "new.txt", os.O_CREAT | os.O_WRONLY, 0o644),
            "truncate": lambda: os.truncate(root / "small.txt", 0),
            "mkdir": lambda: os.mkdir(root / "newdir"),
            "rmdir": lambda: os.rmdir(root / "empty-dir"),
            "unlink": lambda: os.unlink(root / "small.txt"),
            "rename": lambda: os.rename(root / "small.txt", root / "moved.txt"),
            "symlink": lambda: os.symlink("x", root / "newlink"),
            "link": lambda: os.link(root / "small.txt", root / "newhard"),
            "chmod": lambda: os.chmod(root / "small.txt", 0o777),
            "chown": lambda: os.chown(root / "small.txt", 1, 1),
            "utime": lambda: os.utime(root / "small.txt", (1, 1)),
            "setxattr": lambda: os.setxattr(root / "small.txt", "user.x", b"y"),
            "removexattr": lambda: os.removexattr(root / "small.txt", "user.origin"),
            "mknod": lambda: os.mkfifo(root / "newfifo"),
        }
        for what, attempt in attempts.items():
            with pytest.raises(OSError) as info:
                attempt()
            assert info.value.errno == errno.EROFS, what


def test_a_directory_of_100000_entries_lists_completely_and_once(
    cli: Cli, mount: Mount, tmp_path: Path
) -> None:
    big = tmp_path / "wide"
    big.mkdir()
    names = [f"part-{i:06d}.json" for i in range(100_000)]
    for name in names:
        os.close(os.open(big / name, os.O_CREAT | os.O_WRONLY, 0o644))
    cli.run("backup", str(big), check=True)
    with mount("latest") as mnt:
        listed = os.listdir(_inside(mnt, big))
        assert len(listed) == 100_000
        assert sorted(listed) == names
        with os.scandir(_inside(mnt, big)) as it:
            sizes = {e.name: e.stat(follow_symlinks=False).st_size for e in it}
        assert len(sizes) == 100_000 and set(sizes.values()) == {0}


def test_eight_threads_reading_different_files_all_get_the_right_bytes(
    cli: Cli, mount: Mount, tmp_path: Path
) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(8):
        # Part random, part repeated: chunks that dedup across files, read by many at once.
        (src / f"f{i}.bin").write_bytes(os.urandom(1_500_000) + b"shared" * 300_000)
    cli.run("backup", str(src), check=True)
    with mount("latest", "--cache-size", "4") as mnt:

        def read(i: int) -> bool:
            got = (_inside(mnt, src) / f"f{i}.bin").read_bytes()
            return got == (src / f"f{i}.bin").read_bytes()

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(read, range(8)))


def test_pyarrow_reads_parquet_through_the_mount_with_the_same_rows(
    cli: Cli, mount: Mount, tmp_path: Path
) -> None:
    src = tmp_path / "lake" / "sales"
    src.mkdir(parents=True)
    n = 200_000
    table = pa.table({"id": list(range(n)), "amount": [i * 0.25 for i in range(n)],
                      "region": [f"r{i % 17}" for i in range(n)]})  # fmt: skip
    pq.write_table(table, src / "part-0.parquet", row_group_size=20_000)
    cli.run("backup", str(src.parent), check=True)
    with mount("latest") as mnt:
        through_mount = pq.read_table(_inside(mnt, src) / "part-0.parquet")
        filtered = pq.read_table(
            _inside(mnt, src) / "part-0.parquet", filters=[("region", "=", "r3")]
        )
    assert through_mount.equals(pq.read_table(src / "part-0.parquet"))
    assert filtered.num_rows == len([i for i in range(n) if i % 17 == 3])


def test_sigterm_unmounts_a_foreground_mount_cleanly(
    cli: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    cli.run("backup", str(lake_tree), check=True)
    point = (tmp_path / "fg").resolve()
    point.mkdir()
    proc = cli.popen("mount", str(point), "latest", "--foreground")
    try:
        deadline = time.monotonic() + 30
        while not _is_mounted(point) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _is_mounted(point)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert not _is_mounted(point)
    finally:
        proc.kill()
        proc.communicate()
        _force_unmount(point)


def test_mount_errors_are_one_line_with_their_exit_codes(
    cli: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    cli.run("backup", str(lake_tree), check=True)
    point = tmp_path / "mnt"
    point.mkdir()
    wrong = cli.run("mount", str(point), env={"SNAPFS_PASSWORD": "nope"})
    assert wrong.returncode == 12
    assert wrong.stderr == b"snapfs: wrong password or no key found for it\n"
    missing = cli.run("mount", str(tmp_path / "absent"))
    assert missing.returncode == 1
    assert (
        missing.stderr == f"snapfs: mount point {tmp_path / 'absent'} is not a directory\n".encode()
    )
    nosnap = cli.run("mount", str(point), "ffffffff")
    assert nosnap.returncode == 1 and nosnap.stderr.count(b"\n") == 1
    not_mounted = cli.run("umount", str(point))
    assert (not_mounted.returncode, not_mounted.stderr) == (
        1, f"snapfs: {point} is not a snapfs mount\n".encode(),
    )  # fmt: skip
    assert not _is_mounted(point)


def test_only_the_damaged_range_of_a_file_reads_as_an_io_error(
    cli: Cli, mount: Mount, tmp_path: Path
) -> None:
    """One chunk of a file of many is damaged: a read inside it gets EIO; reads before it,
    after it, and of the file's other chunks on the same handle return the right bytes."""
    src = tmp_path / "src"
    src.mkdir()
    content = os.urandom(3 * 1024 * 1024)
    (src / "big.bin").write_bytes(content)
    (src / "other.txt").write_bytes(b"other\n")
    cli.run("backup", str(src), check=True)
    with Repository.open(open_backend(str(cli.repo)), PASSWORD) as repo:
        node = resolve(repo, bytes.fromhex(repo.snapshots()[0].tree), f"{src}/big.bin")
        assert node is not None and len(node.content) > 3
        lengths = [repo.blob_entry(b).raw_length for b in node.content]
        entry = repo.blob_entry(node.content[1])
    pack = Path(cli.repo) / "data" / entry.pack_id[:2] / entry.pack_id
    raw = bytearray(pack.read_bytes())
    raw[entry.offset + entry.length // 2] ^= 0x01
    pack.chmod(0o644)
    pack.write_bytes(bytes(raw))
    start, end = lengths[0], lengths[0] + lengths[1]  # the damaged chunk's bytes
    with mount("latest") as mnt:
        fd = os.open(_inside(mnt, src) / "big.bin", os.O_RDONLY)
        try:
            assert os.pread(fd, 4096, 0) == content[:4096]
            for at in (start, (start + end) // 2, end - 10):
                with pytest.raises(OSError) as info:
                    os.pread(fd, 10, at)
                assert info.value.errno == errno.EIO, at
            # The kernel reads whole pages: those clear of the damaged chunk read.
            first, after = start // 4096 * 4096, -(-end // 4096) * 4096
            for at in (after, after + lengths[2] + 4096, len(content) - 4096, first - 4096):
                assert os.pread(fd, 4096, at) == content[at : at + 4096], at
        finally:
            os.close(fd)
        assert (_inside(mnt, src) / "other.txt").read_bytes() == b"other\n"


def test_a_damaged_chunk_reads_as_an_io_error_and_the_rest_still_reads(
    cli: Cli, mount: Mount, lake_tree: Path, repo_path: Path, tmp_path: Path
) -> None:
    cli.run("backup", str(lake_tree), "--tag", "damaged", check=True)
    first_packs = {p for p in (repo_path / "data").rglob("*") if p.is_file()}
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    content = os.urandom(3 * 1024 * 1024 + 5)
    (healthy / "big.bin").write_bytes(content)
    cli.run("backup", str(healthy), check=True)  # its data is in packs of its own
    biggest = max(first_packs, key=lambda p: p.stat().st_size)
    raw = bytearray(biggest.read_bytes())
    for at in range(100, len(raw) - 4096, 4096):  # a flipped byte in every 4 KiB
        raw[at] ^= 0xFF
    biggest.chmod(0o644)
    biggest.write_bytes(bytes(raw))
    with mount() as mnt:
        damaged = next((mnt / "tags" / "damaged").iterdir())
        with pytest.raises(OSError) as info:
            (_inside(damaged, lake_tree) / "random.bin").read_bytes()
        assert info.value.errno == errno.EIO
        assert (_inside(damaged, lake_tree) / "empty").read_bytes() == b""
        # After the error, another file reads: several reads at offsets on one handle
        # (far apart and backwards, so each is a read of its own, not the kernel's
        # read-ahead), then the whole of it.
        fd = os.open(_inside(mnt / "latest", healthy) / "big.bin", os.O_RDONLY)
        try:
            for off in (3 * 1024 * 1024 - 1000, 2_000_003, 1_000_000, 17, 0):
                assert os.pread(fd, 1005, off) == content[off : off + 1005], off
        finally:
            os.close(fd)
        assert (_inside(mnt / "latest", healthy) / "big.bin").read_bytes() == content
