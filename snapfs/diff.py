"""Diff of two snapshots: added, removed and changed paths, skipping identical subtrees."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from snapfs.tree import DIR, Node
from snapfs.walk import TreeSource, walk


@dataclass(frozen=True)
class Change:
    kind: str  # "+", "-", "M" (contents), "U" (metadata only)
    path: str
    size_before: int
    size_after: int


def diff_trees(
    repo: TreeSource, a: bytes | None, b: bytes | None, prefix: bytes = b""
) -> Iterator[Change]:
    if a == b:
        return
    old = {n.name: n for n in repo.load_tree(a).nodes} if a else {}
    new = {n.name: n for n in repo.load_tree(b).nodes} if b else {}
    for name in sorted(old.keys() | new.keys()):
        path = prefix + b"/" + name
        yield from _diff_node(repo, path, old.get(name), new.get(name))


def _diff_node(
    repo: TreeSource, path: bytes, old: Node | None, new: Node | None
) -> Iterator[Change]:
    shown = path.decode("utf-8", "surrogateescape")
    if old is None or new is None:
        node = old or new
        assert node is not None
        yield from _whole(repo, path, node, "+" if old is None else "-")
        return
    if old.type != new.type:
        yield from _whole(repo, path, old, "-")
        yield from _whole(repo, path, new, "+")
        return
    if new.type == DIR:
        if _meta(old) != _meta(new):
            yield Change("U", shown + "/", 0, 0)
        yield from diff_trees(repo, old.subtree, new.subtree, path)
    elif old.content != new.content or old.target != new.target:
        yield Change("M", shown, old.size, new.size)
    elif _meta(old) != _meta(new):
        yield Change("U", shown, old.size, new.size)


def _whole(repo: TreeSource, path: bytes, node: Node, kind: str) -> Iterator[Change]:
    shown = path.decode("utf-8", "surrogateescape")
    before, after = (node.size, 0) if kind == "-" else (0, node.size)
    yield Change(kind, shown + ("/" if node.type == DIR else ""), before, after)
    if node.type == DIR and node.subtree:
        for rel, child in walk(repo, node.subtree):
            sub = shown + "/" + rel.decode("utf-8", "surrogateescape")
            size = child.size
            yield Change(
                kind,
                sub + ("/" if child.type == DIR else ""),
                *((size, 0) if kind == "-" else (0, size)),
            )


def _meta(n: Node) -> tuple[object, ...]:
    return (n.mode, n.uid, n.gid, n.mtime_ns, n.xattrs)
