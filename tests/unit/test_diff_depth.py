"""diff stops at the walker's depth wherever the tree it meets was added or removed: the
walk of a whole new subtree goes on counting from the level where diff found it."""

from __future__ import annotations

from snapfs.diff import diff_trees
from snapfs.repository import Repository
from snapfs.tree import DIR, Node
from snapfs.walk import MAX_DEPTH, walk


def _dir(name: bytes, subtree: bytes) -> Node:
    return Node(name=name, type=DIR, mode=0o755, uid=0, gid=0, user="root", group="root",
                mtime_ns=1, ctime_ns=1, subtree=subtree)  # fmt: skip


def test_an_added_chain_deeper_than_max_depth_stops_where_the_walker_stops(
    memory_repo: Repository,
) -> None:
    """Old: a root holding "top" (empty). New: "top" holding a chain of 2100 directories.
    diff enters "top" as a changed directory, then lists the chain as added: exactly the
    levels the walker lists of the new tree, and one problem at the same path."""
    with memory_repo.writer() as w:
        chain = w.save_tree([])
        for _level in range(2100):
            chain = w.save_tree([_dir(b"d", chain)])
        old = w.save_tree([_dir(b"top", w.save_tree([]))])
        new = w.save_tree([_dir(b"top", chain)])
    walked: list[bytes] = []
    listed = [path for path, _ in walk(memory_repo, new, on_problem=lambda p, m: walked.append(p))]
    problems: list[bytes] = []

    changes = list(diff_trees(memory_repo, old, new, on_problem=lambda p, m: problems.append(p)))

    added = [c.path.rstrip("/") for c in changes if c.kind == "+"]
    assert added == ["/" + p.decode() for p in listed if p != b"top"]
    assert len(added) == MAX_DEPTH - 1
    assert [p.lstrip(b"/") for p in problems] == walked
