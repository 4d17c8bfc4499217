"""``snapfs find`` over many snapshots of a large tree that they mostly share.

    ./scripts/bench --find                                  # 1,000 snapshots of 1,000,000 files
    ./scripts/bench --find --files 100000 --snapshots 100

The repository is written through the repository API, not by backups (a million files a
thousand times would take hours): N files in directories of 100, those in directories of
100, all naming one data blob. Each snapshot after the first changes one file of one leaf
directory, so it brings a new leaf tree, a new parent and a new root, and shares every other
tree with the snapshot before it, as nightly backups of a lake do. Then, GNU time measures
``snapfs find`` for a name in every snapshot (one match a snapshot)
and for a glob matching a whole directory (100 a snapshot): wall time, peak RSS, and the
trees read against the trees there are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench import PASSWORD, run

from snapfs.pack import BlobKind
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot
from snapfs.store.local import LocalBackend
from snapfs.tree import DIR, FILE, Node

FANOUT = 100
_DAY_NS = 86_400 * 1_000_000_000
_START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01


def _file(leaf: int, i: int, blob: bytes, mtime_ns: int) -> Node:
    name = f"{leaf:06d}-{i:02d}.{('json', 'csv', 'parquet')[i % 3]}".encode()
    return Node(name, FILE, 0o644, 1000, 1000, "lake", "lake", mtime_ns, mtime_ns,
                size=4096, content=[blob])  # fmt: skip


def _dir(name: bytes, subtree: bytes) -> Node:
    return Node(name, DIR, 0o755, 1000, 1000, "lake", "lake", _START_NS, _START_NS,
                subtree=subtree)  # fmt: skip


class _Lake:
    """The trees of one snapshot, kept as ids so that the next one changes three."""

    def __init__(self, writer: Writer, files: int) -> None:
        self.writer = writer
        self.blob = writer.add_blob(BlobKind.DATA, b"x" * 4096)[0]
        self.leaves = [self._leaf(leaf, _START_NS) for leaf in range(max(1, files // FANOUT))]
        mids = range((len(self.leaves) + FANOUT - 1) // FANOUT)
        self.mids = [self._mid(m) for m in mids]
        self.trees = len(self.leaves) + len(self.mids)

    def _leaf(self, leaf: int, mtime_ns: int) -> bytes:
        nodes = [_file(leaf, 0, self.blob, mtime_ns)]
        nodes += [_file(leaf, i, self.blob, _START_NS) for i in range(1, FANOUT)]
        return self.writer.save_tree(sorted(nodes, key=lambda n: n.name))

    def _mid(self, m: int) -> bytes:
        names = range(m * FANOUT, min((m + 1) * FANOUT, len(self.leaves)))
        return self.writer.save_tree([_dir(f"{n:06d}".encode(), self.leaves[n]) for n in names])

    def change(self, night: int) -> None:
        """One file of one leaf gets a new mtime: a new leaf, its parent, the root."""
        leaf = (night * 7919) % len(self.leaves)
        self.leaves[leaf] = self._leaf(leaf, _START_NS + night * _DAY_NS)
        self.mids[leaf // FANOUT] = self._mid(leaf // FANOUT)
        self.trees += 3

    def root(self) -> bytes:
        top = [_dir(f"d{m:04d}".encode(), tree) for m, tree in enumerate(self.mids)]
        return self.writer.save_tree(top)


def build(repo_path: Path, files: int, snapshots: int) -> int:
    """The repository; returns how many distinct trees its snapshots hold."""
    repo = Repository.init(LocalBackend(str(repo_path)), PASSWORD)
    with repo, repo.lock("backup"), repo.writer() as writer:
        lake = _Lake(writer, files)
        for night in range(snapshots):
            if night:
                lake.change(night)
            when = time.gmtime((_START_NS + night * _DAY_NS) // 1_000_000_000)
            writer.save_snapshot(Snapshot(
                time=time.strftime("%Y-%m-%dT%H:%M:%SZ", when), host="lake", user="lake",
                paths=["/lake"], tree=lake.root().hex(),
            ))  # fmt: skip
        return lake.trees + snapshots


def timed(cmd: list[str], env: dict[str, str], work: Path) -> tuple[float, float, int]:
    """Wall seconds and peak RSS (MB) of ``cmd`` (bench.run), and its lines of output."""
    out = work / "find.out"
    measured = run(cmd, env, out=out)
    with open(out, "rb") as f:
        lines = sum(1 for _ in f)
    return measured.seconds, measured.peak_rss_mb, lines


def bench(files: int, snapshots: int, workdir: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="snapfs-bench-find-", dir=workdir or "/var/tmp"))
    env = {**os.environ, "SNAPFS_PASSWORD": PASSWORD, "SNAPFS_CACHE_DIR": str(work / "cache")}
    try:
        repo = work / "repo"
        started = time.monotonic()
        trees = build(repo, files, snapshots)
        built = time.monotonic() - started
        base = ["snapfs", "-q", "-r", str(repo), "find"]
        cases = {
            "one name (1 match a snapshot)": "000042-06.json",
            "a directory's files (100 a snapshot)": "/d0000/000042/*",
        }
        rows = [(label, *timed([*base, pattern], env, work)) for label, pattern in cases.items()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{snapshots} snapshots of {files:,} files in directories of {FANOUT}; "
          f"{trees:,} distinct trees (of {snapshots * (files // FANOUT):,} directory "
          f"listings the snapshots show); built in {built:.0f} s.")  # fmt: skip
    print("| snapfs find | seconds | peak RSS MB | lines out |\n| --- | --- | --- | --- |")
    for label, wall, rss, lines in rows:
        print(f"| {label} | {wall:.1f} | {rss:.0f} | {lines:,} |")
