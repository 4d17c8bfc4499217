"""The tree walker of ls, diff and check, and the path lookup of ls and dump. Restore,
copy and prune's ``reachable_blobs`` walk trees on their own: restore holding a directory
descriptor a level, copy translating trees bottom up, prune marking each tree once."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Protocol

from snapfs.errors import IntegrityError, PathNotFound
from snapfs.tree import DIR, Node, Tree

# Deeper than any real file system: a path of PATH_MAX (4096) bytes holds at most 2048
# levels. A crafted snapshot may nest further; walks stop there.
MAX_DEPTH = 2048

ProblemHandler = Callable[[bytes, str], None]
"""Told (path, message) of each entry a walk refuses: what ``Tree.problems`` lists, a
subtree that does not load, nesting past MAX_DEPTH. The walk goes on past it."""


class TreeSource(Protocol):
    def load_tree(self, tree_id: bytes) -> Tree: ...


def raise_problem(path: bytes, message: str) -> None:
    """The ProblemHandler of a caller that gives none: the first problem is an error."""
    raise IntegrityError(f"{shown_path(path)}: {message}")


def shown_path(path: bytes) -> str:
    """A walk's path as people read it: absolute, and never a bare "" for the root."""
    return "/" + path_text(path).lstrip("/")


def path_text(path: bytes) -> str:
    """A path as text, as it is: bytes that are not UTF-8 kept as surrogate escapes."""
    return path.decode("utf-8", "surrogateescape")


def join(prefix: bytes, name: bytes) -> bytes:
    return prefix + b"/" + name if prefix else name


def walk(
    repo: TreeSource,
    tree_id: bytes,
    prefix: bytes = b"",
    *,
    prune: PathFilter | None = None,
    on_problem: ProblemHandler | None = None,
    seen: set[bytes] | None = None,
    depth: int = 0,
) -> Iterator[tuple[bytes, Node]]:
    """Every node under ``tree_id``, depth first, parents before children, names sorted.
    Paths are relative bytes joined with ``/``. A directory that ``prune`` rejects is
    neither yielded nor entered.

    The trees come validated from ``load_tree``: entries it refused are never yielded, and
    go with every other problem to ``on_problem`` (which, when None, raises IntegrityError
    for the first). With ``seen``, a walk enters each tree once: a directory whose tree is
    in ``seen`` is yielded but not entered, and every tree entered is added (for answers
    that do not depend on the path, such as check's). Memory is one iterator per level of
    the current path, and levels stop at MAX_DEPTH, counted from ``depth`` (the level of
    ``tree_id`` in a walk of a caller's, such as diff's, so both stop at one depth)."""
    report = on_problem or raise_problem
    levels: list[Iterator[Node]] = []
    paths: list[bytes] = []

    def enter(tid: bytes, path: bytes) -> None:
        if seen is not None:
            if tid in seen:
                return
            seen.add(tid)
        if depth + len(levels) >= MAX_DEPTH:
            report(path, f"directories nested deeper than {MAX_DEPTH} levels")
            return
        try:
            tree = repo.load_tree(tid)
        except IntegrityError as e:
            report(path, str(e))
            return
        for problem in tree.problems:
            where = path if problem.name is None else join(path, problem.name)
            if prune is None or not where or prune.descend(where):
                report(where, problem.message)
        levels.append(iter(tree.nodes))
        paths.append(path)

    enter(tree_id, prefix)
    while levels:
        node = next(levels[-1], None)
        if node is None:
            levels.pop()
            paths.pop()
            continue
        path = join(paths[-1], node.name)
        if prune is not None and not prune.descend(path):
            continue
        yield path, node
        if node.type == DIR and node.subtree is not None:
            enter(node.subtree, path)


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


def matches(pattern: str, path: str) -> bool:
    """restic's rule: a pattern without ``/`` is a glob on the base name of ``path`` (given
    as ``/a/b``), one with ``/`` a glob on the whole path."""
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
        return any(matches(p, path) for p in self.excludes)

    def descend(self, relpath: bytes) -> bool:
        return not self.excluded("/" + relpath.decode("utf-8", "surrogateescape"))

    def selected(self, relpath: bytes) -> bool:
        """Whether the node itself is restored (its ancestors are checked by ``descend``)."""
        if not self.includes:
            return True
        path = "/" + relpath.decode("utf-8", "surrogateescape")
        ancestors = [path[:i] for i in range(1, len(path) + 1) if i == len(path) or path[i] == "/"]
        return any(matches(p, a) for p in self.includes for a in ancestors)
