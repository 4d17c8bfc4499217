"""Comparing trees entry by entry: what a round trip must preserve."""

from __future__ import annotations

import os
import stat
from pathlib import Path


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
