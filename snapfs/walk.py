"""The one tree walker: ls, diff, restore and check all see a snapshot through it."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Protocol

from snapfs.errors import PathNotFound
from snapfs.tree import DIR, Node, Tree


class TreeSource(Protocol):
    def load_tree(self, tree_id: bytes) -> Tree: ...


def walk(
    repo: TreeSource, tree_id: bytes, prefix: bytes = b"", *, prune: PathFilter | None = None
) -> Iterator[tuple[bytes, Node]]:
    """Every node under ``tree_id``, depth first, parents before children, names sorted.
    Paths are relative bytes joined with ``/``. A directory that ``prune`` rejects is
    neither yielded nor entered."""
    for node in repo.load_tree(tree_id).nodes:
        path = prefix + node.name if not prefix else prefix + b"/" + node.name
        if prune is not None and not prune.descend(path):
            continue
        yield path, node
        if node.type == DIR and node.subtree is not None:
            yield from walk(repo, node.subtree, path, prune=prune)


def resolve(repo: TreeSource, tree_id: bytes, path: str | bytes) -> Node | None:
    """The node at ``path`` (relative or absolute, ``/``-separated), or None for the root."""
    raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
    node: Node | None = None
    current = tree_id
    for part in (p for p in raw.split(b"/") if p):
        if node is not None and (node.type != DIR or node.subtree is None):
            raise PathNotFound(f"{raw.decode('utf-8', 'replace')}: not a directory")
        found = repo.load_tree(current).find(part)
        if found is None:
            raise PathNotFound(f"{raw.decode('utf-8', 'replace')}: no such file or directory")
        node = found
        if node.subtree is not None:
            current = node.subtree
    return node


def _matches(pattern: str, path: str) -> bool:
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rpartition("/")[2], pattern)
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern.rstrip("/"))


class PathFilter:
    """``--include`` / ``--exclude`` globs, restic-style. A pattern without ``/`` matches a
    base name; with ``/`` it matches the whole path (given as ``/a/b``). Excluding a
    directory excludes what is below it; including a path brings the directories above it."""

    def __init__(self, includes: list[str] | None = None, excludes: list[str] | None = None):
        self.includes = list(includes or [])
        self.excludes = list(excludes or [])

    def __bool__(self) -> bool:
        return bool(self.includes or self.excludes)

    def excluded(self, path: str) -> bool:
        return any(_matches(p, path) for p in self.excludes)

    def descend(self, relpath: bytes) -> bool:
        return not self.excluded("/" + relpath.decode("utf-8", "surrogateescape"))

    def selected(self, relpath: bytes) -> bool:
        """Whether the node itself is restored (its ancestors are checked by ``descend``)."""
        if not self.includes:
            return True
        path = "/" + relpath.decode("utf-8", "surrogateescape")
        ancestors = [path[:i] for i in range(1, len(path) + 1) if i == len(path) or path[i] == "/"]
        return any(_matches(p, a) for p in self.includes for a in ancestors)
