"""The tree walker of ls, diff and check, and the path lookup of ls and dump. Restore,
copy and prune's ``reachable_blobs`` walk trees on their own: restore holding a directory
descriptor a level, copy translating trees bottom up, prune marking each tree once."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Container, Iterator
from typing import Generic, Protocol, TypeVar

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


def bottom_up(
    root: bytes,
    nodes_of: Callable[[bytes], list[Node]],
    done: Container[bytes],
    visit: Callable[[bytes, list[Node]], None],
    *,
    root_again: bool = False,
) -> None:
    """``visit(tree, nodes)`` each tree below ``root`` not in ``done`` (visit puts it there),
    every one after its subtrees, without recursion (a snapshot may nest deeper than
    Python's stack). ``root_again``: visit ``root`` even when it is done already."""
    stack = [root]
    while stack:
        tid = stack[-1]
        if tid in done and not (root_again and tid == root):
            stack.pop()
            continue
        nodes = nodes_of(tid)
        below = [n.subtree for n in nodes if n.subtree and n.subtree not in done]
        if below:
            stack.extend(below)
            continue
        visit(tid, nodes)
        stack.pop()


def refuse_damaged(tree: Tree, path: bytes) -> None:
    """IntegrityError naming the first entry of ``tree`` (at ``path``) that validation
    refused: for operations that carry trees on (copy, rewrite), which must not drop
    what they were not asked to."""
    if tree.problems:
        bad = tree.problems[0]
        where = path if bad.name is None else join(path, bad.name)
        raise IntegrityError(f"{shown_path(where)}: {bad.message}")


T = TypeVar("T")


class BottomUp(Generic[T]):
    """A value per tree, made from its nodes once the values of its subtrees are known, and
    kept for the life of the object: a tree met again (in another snapshot) is neither
    loaded nor worked out again. With ``by_path`` the value depends on where the tree lies
    (patterns holding ``/``), so it is kept per (tree, path). No recursion: a snapshot may
    nest MAX_DEPTH levels. Subclasses give ``nodes`` (load, or refuse), ``make`` and, to
    leave subtrees out, ``enters``."""

    def __init__(self, *, by_path: bool) -> None:
        self._by_path = by_path
        self._done: dict[tuple[bytes, bytes], T] = {}

    def value(self, tree_id: bytes, path: bytes = b"") -> T:
        stack: list[tuple[bytes, bytes, int, list[Node] | None]] = [(tree_id, path, 0, None)]
        while stack:
            tid, where, depth, nodes = stack.pop()
            if self._key(tid, where) in self._done:
                continue
            if nodes is None:  # first met: load it, and work out its subtrees first
                nodes = self.nodes(tid, where, depth)
                stack.append((tid, where, depth, nodes))
                stack.extend(
                    (n.subtree, join(where, n.name), depth + 1, None)
                    for n in nodes
                    if n.type == DIR and n.subtree is not None
                    and self.enters(join(where, n.name))
                    and self._key(n.subtree, join(where, n.name)) not in self._done
                )  # fmt: skip
                continue
            self._done[self._key(tid, where)] = self.make(tid, where, nodes)
        return self._done[self._key(tree_id, path)]

    def below(self, node: Node, path: bytes) -> T | None:
        """The value of the subtree of ``node`` (at ``path``), inside ``make``: None when
        it was not entered."""
        if node.subtree is None:
            return None
        return self._done.get(self._key(node.subtree, path))

    def _key(self, tree_id: bytes, path: bytes) -> tuple[bytes, bytes]:
        return (tree_id, path if self._by_path else b"")

    def nodes(self, tree_id: bytes, path: bytes, depth: int) -> list[Node]:
        raise NotImplementedError

    def enters(self, path: bytes) -> bool:
        return True

    def make(self, tree_id: bytes, path: bytes, nodes: list[Node]) -> T:
        raise NotImplementedError


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
