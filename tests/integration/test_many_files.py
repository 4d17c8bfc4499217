"""A snapshot of 200,000 files comes back exactly, through restore and through the mount:
contents, modes, owners, times, xattrs, symlinks and hardlinks. Compared as two sorted walks
side by side, so the comparison holds one entry at a time, not two trees of 200,000."""

from __future__ import annotations

import os
import stat
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.integration import test_mount
from tests.integration.test_mount import Mount

mount = test_mount.mount  # real mounts, always unmounted

FILES = 200_000
PER_DIR = 100
MTIME = 1_700_000_000_123_456_789


def _make_tree(root: Path) -> None:
    """FILES entries of every kind a small-file tree has, fast: mostly tiny files, some empty,
    some past the chunker's minimum, with varied modes, owners, times and xattrs."""
    for i in range(FILES):
        d = root / f"g{i // 10_000:02d}" / f"d{i // PER_DIR:05d}"
        if i % PER_DIR == 0:
            d.mkdir(parents=True)
        path = os.fsencode(d / f"f{i % PER_DIR:03d}")
        if i % 500 == 7:
            os.symlink(b"f%03d" % ((i - 1) % PER_DIR), path)
            continue
        if i % 1000 == 9:
            os.link(os.fsencode(d / f"f{(i - 1) % PER_DIR:03d}"), path)
            continue
        data = b"" if i % 997 == 0 else b"%d,%d\n" % (i, i * 7) * (1 + i % 40)
        if i % 20_000 == 11:
            data = os.urandom(40_000)  # chunked, not read whole
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600 | (i % 3) * 0o040)
        os.write(fd, data)
        if i % 1000 == 3:
            os.setxattr(fd, b"user.kind", b"small %d" % i)
        if i % 100 == 5:
            os.fchown(fd, 1000 + i % 7, 2000 + i % 5)
        os.close(fd)
        os.utime(path, ns=(MTIME, MTIME + i))
    for d in sorted(root.rglob("d*"), reverse=True):
        os.utime(d, ns=(MTIME, MTIME))


def _entries(root: Path) -> Generator[tuple[bytes, dict[str, object]], None, None]:
    """Every entry below ``root``, in name order, with what a round trip must keep. A
    hardlink names the first path (in this order) of its inode. Contents and xattrs are read
    by threads, a window at a time: through a mount each read waits for a round trip."""
    base = os.fsencode(root)
    first_of_inode: dict[int, bytes] = {}
    with ThreadPoolExecutor(8) as pool:
        window: list[tuple[bytes, bytes, os.stat_result]] = []
        for rel, full, st in _listing(base):
            window.append((rel, full, st))
            if len(window) == 2000:
                yield from _described(pool, window, first_of_inode)
                window = []
        yield from _described(pool, window, first_of_inode)


def _listing(base: bytes) -> Iterator[tuple[bytes, bytes, os.stat_result]]:
    stack = [base]
    while stack:
        top = stack.pop()
        listing = [(n, os.lstat(top + b"/" + n)) for n in sorted(os.listdir(top))]
        stack.extend(top + b"/" + n for n, st in reversed(listing) if stat.S_ISDIR(st.st_mode))
        for name, st in listing:
            full = top + b"/" + name
            yield full[len(base) :], full, st


def _described(
    pool: ThreadPoolExecutor,
    window: list[tuple[bytes, bytes, os.stat_result]],
    first_of_inode: dict[int, bytes],
) -> Iterator[tuple[bytes, dict[str, object]]]:
    for (rel, _full, st), entry in zip(window, pool.map(_describe, window), strict=True):
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            entry["link_of"] = first_of_inode.setdefault(st.st_ino, rel)
        yield rel, entry


def _describe(item: tuple[bytes, bytes, os.stat_result]) -> dict[str, object]:
    _rel, full, st = item
    entry: dict[str, object] = {
        "mode": st.st_mode,
        "owner": (st.st_uid, st.st_gid),
        "mtime_ns": st.st_mtime_ns,
    }
    if stat.S_ISLNK(st.st_mode):
        entry["target"] = os.readlink(full)
        return entry
    entry["xattrs"] = sorted(
        (n, os.getxattr(full, n, follow_symlinks=False))
        for n in os.listxattr(full, follow_symlinks=False)
    )
    if stat.S_ISREG(st.st_mode):
        fd = os.open(full, os.O_RDONLY)  # not open(): its isatty() is one more round trip
        try:
            entry["content"] = os.read(fd, st.st_size + 1)
        finally:
            os.close(fd)
    return entry


def _assert_same(source: Path, copy: Path) -> int:
    """Entry by entry; returns how many entries were compared. Both walks are closed (their
    threads joined) before it returns or raises, so a mount can be unmounted after."""
    count = 0
    with closing(_entries(source)) as left, closing(_entries(copy)) as right:
        for rel, entry in left:
            assert next(right, None) == (rel, entry), rel
            count += 1
        assert next(right, None) is None
    return count


# Two round trips of 200,000 files take about two minutes on an idle 2-core machine; the
# suite-wide 300 s limit is meant for hung tests, not for this one on a loaded machine.
@pytest.mark.timeout(900)
def test_two_hundred_thousand_files_round_trip_through_restore_and_mount(
    cli: Cli, tmp_path: Path, mount: Mount
) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    cli.run("backup", str(src), check=True)
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    relative = str(src.resolve()).lstrip("/")
    assert _assert_same(src, out / relative) == FILES + FILES // 10_000 + FILES // PER_DIR
    with mount("latest") as mnt:
        assert _assert_same(src, mnt / relative) == FILES + FILES // 10_000 + FILES // PER_DIR
