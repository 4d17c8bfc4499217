"""Comparing trees entry by entry: what a round trip must preserve."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def describe(root: Path, *, sparseness: bool = True) -> dict[bytes, dict[str, object]]:
    """Every entry below ``root`` with the fields a restore must reproduce (a mount reports
    no holes, so its callers leave ``sparseness`` out)."""
    out: dict[bytes, dict[str, object]] = {}
    base = os.fsencode(root)
    inode_groups: dict[int, list[bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            entry: dict[str, object] = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "mtime_ns": st.st_mtime_ns,
                "xattrs": sorted(
                    (n, os.getxattr(full, n, follow_symlinks=False))
                    for n in os.listxattr(full, follow_symlinks=False)
                )
                if not stat.S_ISLNK(st.st_mode)
                else [],
            }
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    entry["content"] = f.read()
                if sparseness:
                    entry["sparse"] = st.st_blocks * 512 < st.st_size // 2
                if st.st_nlink > 1:
                    inode_groups.setdefault(st.st_ino, []).append(rel)
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(full)
            out[rel] = entry
    for group in inode_groups.values():
        for rel in group:
            out[rel]["hardlinked_with"] = sorted(group)
    return out


def assert_same_tree(a: Path, b: Path, *, sparseness: bool = True) -> None:
    left, right = describe(a, sparseness=sparseness), describe(b, sparseness=sparseness)
    assert sorted(left) == sorted(right)
    for rel in left:
        assert left[rel] == right[rel], rel


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's spelling: 3m) mounted at the new directory ``where``: a
    real small disk, for root (the test machines run as root). A failure, never a skip,
    where it cannot be mounted: the fault it stands for would go untested."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {where} (this test needs root): "
                    f"{mounted.stderr.decode().strip()}")  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
