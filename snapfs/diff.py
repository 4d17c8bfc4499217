"""Diff of two snapshots: added, removed and changed paths, skipping identical subtrees."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from snapfs.errors import IntegrityError
from snapfs.tree import DIR, Node
from snapfs.walk import MAX_DEPTH, ProblemHandler, TreeSource, raise_problem, shown_path, walk


@dataclass(frozen=True)
class Change:
    kind: str  # "+", "-", "M" (contents), "U" (metadata only)
    path: str
    size_before: int
    size_after: int


_Pair = tuple[bytes, Node | None, Node | None]


def diff_trees(
    repo: TreeSource,
    a: bytes | None,
    b: bytes | None,
    prefix: bytes = b"",
    *,
    on_problem: ProblemHandler | None = None,
) -> Iterator[Change]:
    """Changes from tree ``a`` to ``b``, in path order, streamed. Entries either tree's
    validation refused, and directories that do not load, go to ``on_problem`` (None: the
    first raises IntegrityError) and are left out. One iterator per level of the current
    path: no recursion, and levels stop at MAX_DEPTH."""
    report = on_problem or raise_problem
    levels = [_pairs(repo, a, b, prefix, report)]
    while levels:
        step = next(levels[-1], None)
        if step is None:
            levels.pop()
            continue
        path, old, new = step
        if old is None or new is None or old.type != new.type or new.type != DIR:
            yield from _leaf(repo, path, old, new, report, len(levels))
            continue
        if _meta(old) != _meta(new):
            yield Change("U", shown_path(path) + "/", 0, 0)
        if old.subtree == new.subtree:
            continue
        if len(levels) >= MAX_DEPTH:
            report(path, f"directories nested deeper than {MAX_DEPTH} levels")
            continue
        levels.append(_pairs(repo, old.subtree, new.subtree, path, report))


def _pairs(
    repo: TreeSource, a: bytes | None, b: bytes | None, prefix: bytes, report: ProblemHandler
) -> Iterator[_Pair]:
    """(path, node in a, node in b) for every name in either directory, sorted."""
    try:
        old, new = _nodes(repo, a, prefix, report), _nodes(repo, b, prefix, report)
    except IntegrityError as e:
        report(prefix, str(e))
        return
    for name in sorted(old.keys() | new.keys()):
        yield prefix + b"/" + name, old.get(name), new.get(name)


def _nodes(
    repo: TreeSource, tree_id: bytes | None, prefix: bytes, report: ProblemHandler
) -> dict[bytes, Node]:
    if not tree_id:
        return {}
    tree = repo.load_tree(tree_id)
    for problem in tree.problems:
        where = prefix if problem.name is None else prefix + b"/" + problem.name
        report(where, problem.message)
    return {n.name: n for n in tree.nodes}


def _leaf(
    repo: TreeSource,
    path: bytes,
    old: Node | None,
    new: Node | None,
    report: ProblemHandler,
    depth: int,
) -> Iterator[Change]:
    if old is None or new is None:
        node = old or new
        assert node is not None
        yield from _whole(repo, path, node, "+" if old is None else "-", report, depth)
    elif old.type != new.type:
        yield from _whole(repo, path, old, "-", report, depth)
        yield from _whole(repo, path, new, "+", report, depth)
    elif old.content != new.content or old.target != new.target:
        yield Change("M", shown_path(path), old.size, new.size)
    elif _meta(old) != _meta(new):
        yield Change("U", shown_path(path), old.size, new.size)


def _whole(
    repo: TreeSource, path: bytes, node: Node, kind: str, report: ProblemHandler, depth: int
) -> Iterator[Change]:
    """``node`` and all below it, added or removed; its subtree is at level ``depth`` of
    the diff, which the walk goes on counting from."""
    shown = shown_path(path)
    before, after = (node.size, 0) if kind == "-" else (0, node.size)
    yield Change(kind, shown + ("/" if node.type == DIR else ""), before, after)
    if node.type == DIR and node.subtree:
        for rel, child in walk(repo, node.subtree, path, on_problem=report, depth=depth):
            size = child.size
            yield Change(
                kind,
                shown_path(rel) + ("/" if child.type == DIR else ""),
                *((size, 0) if kind == "-" else (0, size)),
            )


def _meta(n: Node) -> tuple[object, ...]:
    return (n.mode, n.uid, n.gid, n.mtime_ns, n.xattrs)
