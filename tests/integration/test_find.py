"""find across many snapshots that share trees: each tree is loaded once in a run (counted
through the repository's load_tree), the matches are those a plain walk of every snapshot
finds, and the CLI prints them, grouped per snapshot, exactly."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from snapfs.backup import backup
from snapfs.find import Finder
from snapfs.repository import Repository
from snapfs.snapshot import Snapshot, sort_by_time
from snapfs.tree import Tree
from snapfs.walk import matches, shown_path, walk
from tests.conftest import Cli

MTIME = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC


class CountingLoads:
    """The repository's tree reads, counted per tree id."""

    def __init__(self, repo: Repository) -> None:
        self.repo, self.loads = repo, Counter[bytes]()

    def load_tree(self, tree_id: bytes) -> Tree:
        self.loads[tree_id] += 1
        return self.repo.load_tree(tree_id)


def _lake(src: Path, repo: Repository) -> list[Snapshot]:
    """Eight snapshots of 20 partitions: each backup changes one partition, so the rest of
    the tree is shared with the snapshot before; and one directory at two paths."""
    for p in range(20):
        part = src / f"part={p:02}"
        part.mkdir(parents=True)
        for name in ("data.parquet", "notes.txt"):
            (part / name).write_text(f"{name} {p}")
        os.utime(part / "data.parquet", ns=(MTIME, MTIME))
    for twin in ("twin-a", "twin-b"):  # one tree at two paths: one file, hardlinked
        (src / twin).mkdir()
        if twin == "twin-a":
            (src / twin / "same.txt").write_text("same")
            os.utime(src / twin / "same.txt", ns=(MTIME, MTIME))
        else:
            os.link(src / "twin-a" / "same.txt", src / twin / "same.txt")
    snaps = []
    for i in range(8):
        changed = src / f"part={i:02}" / "data.parquet"
        changed.write_text(f"changed in {i}")
        os.utime(changed, ns=(MTIME + i * 10**9, MTIME + i * 10**9))
        snaps.append(backup(repo, [str(src)], host="db1" if i % 2 else "web1"))
    return sort_by_time(snaps)


def _walked(repo: Repository, snap: Snapshot, patterns: list[str]) -> list[tuple[str, int]]:
    """What find must give for one snapshot: a whole walk, every node tested."""
    return [
        (shown_path(p), n.size)
        for p, n in walk(repo, bytes.fromhex(snap.tree))
        if any(matches(pat, shown_path(p)) for pat in patterns)
    ]


def _places(repo: Repository, snaps: list[Snapshot], *, by_path: bool) -> Counter[bytes]:
    """Each tree of ``snaps`` and the number of paths it lies at (1 unless ``by_path``)."""
    places = {(bytes.fromhex(s.tree), b"") for s in snaps}
    for s in snaps:
        places.update(
            (n.subtree, p if by_path else b"")
            for p, n in walk(repo, bytes.fromhex(s.tree))
            if n.subtree is not None
        )
    return Counter(tree for tree, _path in places)


PATTERNS = [["*.parquet"], ["part=0[3-5]"], ["/*/part=07/*", "n*"], ["/*/twin-b/*"]]


@pytest.mark.parametrize("patterns", PATTERNS)
def test_shared_trees_load_once(repo: Repository, tmp_path: Path, patterns: list[str]) -> None:
    snaps = _lake(tmp_path / "src", repo)
    counting = CountingLoads(repo)
    tree = repo.load_tree(bytes.fromhex(snaps[0].tree))
    for name in (p for p in str(tmp_path / "src").encode().split(b"/") if p):
        node = tree.find(name)
        assert node is not None and node.subtree is not None
        tree = repo.load_tree(node.subtree)
    twins = [n.subtree for n in tree.nodes if n.name.startswith(b"twin-")]
    assert len(twins) == 2 and twins[0] == twins[1]
    found = list(Finder(counting, patterns).find(snaps))
    assert [f.snapshot.id for f in found] == [s.id for s in snaps]
    for f, snap in zip(found, snaps, strict=True):
        assert [(m.path, m.node.size) for m in f.matches] == _walked(repo, snap, patterns)
    # every tree of the eight snapshots once (the 20 partitions and the path's directories
    # of the first, then 1 partition and the path's directories a backup); with a pattern
    # holding '/' once at each of its paths (the twins' tree twice)
    by_path = any("/" in p for p in patterns)
    assert counting.loads == _places(repo, snaps, by_path=by_path)


def test_cli_output(cli: Cli, repo: Repository, tmp_path: Path) -> None:
    snaps = _lake(tmp_path / "src", repo)
    env = {"TZ": "UTC"}
    out = cli.run("find", "data.parquet", "--oldest", "2023-11-14 22:13:25",
                  "--host", "db1", check=True, env=env).stdout.decode()  # fmt: skip
    part = f"{tmp_path}/src"
    expected = ""
    for s in snaps[1::2]:  # db1's: the 2nd, 4th, 6th and 8th backups
        i = snaps.index(s)
        lines = [(j, MTIME // 10**9 + j) for j in range(1, i + 1) if j >= 5]
        if not lines:
            continue
        expected += (
            f"Found matching entries in snapshot {s.short_id} from "
            f"{s.datetime.strftime('%Y-%m-%d %H:%M:%S')} (db1)\n"
            "Size  Modified             Path\n"
        )
        for j, _t in lines:
            expected += f"  12  2023-11-14 22:13:{20 + j}  {part}/part={j:02}/data.parquet\n"
        expected += "\n"
    assert out == expected

    got = [json.loads(line) for line in cli.run(
        "find", "/*/part=07/*.parquet", "--json", "--oldest", "2023-11-15T00:13:27+02:00",
        "--newest", "2023-11-14 22:13:27", check=True, env=env).stdout.splitlines()]  # fmt: skip
    assert got == [{
        "snapshot": snaps[7].id, "snapshot_time": snaps[7].time, "host": "db1",
        "path": f"{part}/part=07/data.parquet", "type": "file", "size": 12,
        "mtime_ns": MTIME + 7 * 10**9, "mtime": "2023-11-14T22:13:27+00:00",
    }]  # fmt: skip


def test_bad_time(cli: Cli) -> None:
    r = cli.run("find", "x", "--newest", "yesterday")
    assert r.returncode == 2
    assert r.stderr.decode().splitlines()[-1] == (
        "Error: Invalid value for '--newest': 'yesterday' is not a time: "
        "use YYYY-MM-DD[ HH:MM[:SS]]"
    )
