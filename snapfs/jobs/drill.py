"""The restore drill: restore some randomly chosen files of a snapshot through the restore
operation into a temporary directory, check each against the snapshot (its content's blob
ids, size, mode, mtime, user.* extended attributes, and, when running as root, owner), and
remove them. Recovery is tested, not assumed."""

from __future__ import annotations

import os
import random
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from snapfs.errors import SnapfsError
from snapfs.metadata import read_xattrs
from snapfs.repository import Repository
from snapfs.restore import restore
from snapfs.snapshot import Snapshot
from snapfs.tree import Node
from snapfs.walk import path_text, walk


class DrillFailed(SnapfsError):
    pass


@dataclass(frozen=True)
class DrillReport:
    files: int  # restored and checked
    bytes: int


def drill(
    repo: Repository, snapshot: Snapshot, files: int, *, rng: random.Random | None = None,
    workdir: str | None = None,
) -> DrillReport:  # fmt: skip
    """Restore ``files`` regular files of ``snapshot`` (all, when it has fewer) and check them;
    DrillFailed names the first file that did not come back as the snapshot has it."""
    rng = rng or random.SystemRandom()
    chosen = _sample(_regular_files(repo, snapshot), files, rng)
    target = tempfile.mkdtemp(prefix="snapfs-drill-", dir=workdir)
    try:
        includes = ["/" + _escape(path_text(path)) for path, _ in chosen]
        summary = restore(repo, snapshot, target, includes=includes or ["/"])
        if summary.damaged:  # named as in the snapshot, not below the passing target
            d = summary.damaged[0]
            where = "/" + os.path.relpath(d.path, target) if d.path.startswith(target) else d.path
            raise DrillFailed(f"{where}: cannot be restored: {d.error}")
        for path, node in chosen:
            _compare(repo, os.path.join(os.fsencode(target), path), "/" + path_text(path), node)
        return DrillReport(len(chosen), sum(node.size for _, node in chosen))
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _regular_files(repo: Repository, snapshot: Snapshot) -> Iterator[tuple[bytes, Node]]:
    for path, node in walk(repo, bytes.fromhex(snapshot.tree)):
        if node.type == "file":
            yield path, node


def _sample(
    items: Iterator[tuple[bytes, Node]], k: int, rng: random.Random
) -> list[tuple[bytes, Node]]:
    """Reservoir sampling: k of a walk of any length, in memory bounded by k."""
    chosen: list[tuple[bytes, Node]] = []
    for i, item in enumerate(items):
        if i < k:
            chosen.append(item)
        elif (j := rng.randrange(i + 1)) < k:
            chosen[j] = item
    return chosen


def _escape(path: str) -> str:
    """``path`` as a glob matching only itself (restore's --include is a glob)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def _user_xattrs(xattrs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The attributes any restore can set: other namespaces need privileges (trusted.*,
    security.*) or follow from the mode (system.posix_acl_*), so they are not drilled."""
    return sorted(x for x in xattrs if x[0].startswith(b"user."))


def _compare(repo: Repository, restored: bytes, shown: str, node: Node) -> None:
    try:
        st = os.lstat(restored)
    except FileNotFoundError:
        raise DrillFailed(f"{shown}: not restored") from None
    if not stat.S_ISREG(st.st_mode):
        raise DrillFailed(f"{shown}: restored, but not as a regular file")
    if st.st_size != node.size:
        raise DrillFailed(f"{shown}: size {st.st_size}, the snapshot has {node.size}")
    if stat.S_IMODE(st.st_mode) != stat.S_IMODE(node.mode):
        raise DrillFailed(f"{shown}: mode {stat.S_IMODE(st.st_mode):o}, the snapshot has "
                          f"{stat.S_IMODE(node.mode):o}")  # fmt: skip
    if st.st_mtime_ns != node.mtime_ns:
        raise DrillFailed(f"{shown}: modification time differs from the snapshot's")
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (node.uid, node.gid):
        raise DrillFailed(f"{shown}: owner {st.st_uid}:{st.st_gid}, the snapshot has "
                          f"{node.uid}:{node.gid}")  # fmt: skip
    if _user_xattrs(read_xattrs(restored)) != _user_xattrs(node.xattrs):
        raise DrillFailed(f"{shown}: extended attributes differ from the snapshot's")
    with open(restored, "rb") as f:  # chunked as backup chunks: the same ids, or damage
        ids = [repo.key.blob_id(chunk) for chunk in repo.chunker().chunks(f)]
    if ids != list(node.content):
        raise DrillFailed(f"{shown}: content differs from the snapshot's")
