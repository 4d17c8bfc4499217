"""find: which snapshots hold a path whose name (or whole path) matches a pattern.

Snapshots of the same data share most of their trees, so the matches below a tree are worked
out once per run and reused, with the path in front, wherever that tree appears again: a
thousand snapshots of an unchanged directory cost one walk of it, not a thousand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from snapfs.errors import IntegrityError
from snapfs.snapshot import Snapshot
from snapfs.tree import Node
from snapfs.walk import (
    MAX_DEPTH,
    BottomUp,
    ProblemHandler,
    TreeSource,
    join,
    matches,
    raise_problem,
    shown_path,
)

# A tree's matches, in walk order: (name, the node when it matches, the matches below it).
# Nested, not flattened: a match is held once, by its own directory's entry, however many
# ancestors and snapshots share that directory.
_Hits = tuple[tuple[bytes, "Node | None", "_Hits | None"], ...]


@dataclass(frozen=True)
class Match:
    path: str  # absolute, as ``shown_path`` gives it
    node: Node


@dataclass(frozen=True)
class Found:
    snapshot: Snapshot
    matches: list[Match]


class Finder(BottomUp[_Hits]):
    """Matches ``patterns`` (restic's rule, ``walk.matches``: a pattern without ``/`` is a
    glob on the name, one with ``/`` on the whole path) whose mtime lies within ``oldest``
    and ``newest`` (ns, inclusive; None: no bound). The matches found below each tree are
    kept for the life of the Finder (``BottomUp``), so a tree is loaded once however many
    snapshots hold it; with a pattern holding ``/`` the answer depends on where the tree
    lies, so it is kept per (tree, path), which still shares what snapshots of the same
    paths share. Memory: one entry per distinct tree met (its id, its path for such
    patterns, and its matches), which bounds what a run keeps."""

    def __init__(
        self,
        repo: TreeSource,
        patterns: list[str],
        *,
        oldest: int | None = None,
        newest: int | None = None,
        on_problem: ProblemHandler | None = None,
    ) -> None:
        super().__init__(by_path=any("/" in p for p in patterns))
        self.repo, self.patterns = repo, list(patterns)
        self.oldest, self.newest = oldest, newest
        self.report = on_problem or raise_problem

    def find(self, snaps: list[Snapshot]) -> Iterator[Found]:
        """Each snapshot of ``snaps`` that holds a match, in the order given, with its
        matches in walk order (parents before children, names sorted)."""
        for snap in snaps:
            hits = self.value(bytes.fromhex(snap.tree))
            if hits:
                yield Found(snap, [Match(shown_path(path), node) for path, node in _flat(hits)])

    def nodes(self, tree_id: bytes, path: bytes, depth: int) -> list[Node]:
        """The tree's nodes; none (and the problem told) when it is too deep or does not
        load. Tree problems are told once, where the tree is first met."""
        if depth >= MAX_DEPTH:
            self.report(path, f"directories nested deeper than {MAX_DEPTH} levels")
            return []
        try:
            tree = self.repo.load_tree(tree_id)
        except IntegrityError as e:
            self.report(path, str(e))
            return []
        for problem in tree.problems:
            self.report(path if problem.name is None else join(path, problem.name), problem.message)
        return tree.nodes

    def make(self, tree_id: bytes, path: bytes, nodes: list[Node]) -> _Hits:
        """The matches of a directory whose subtrees are all worked out: each node, then
        what lies below it, relative to the directory."""
        out: list[tuple[bytes, Node | None, _Hits | None]] = []
        for node in nodes:
            here = join(path, node.name)
            wanted = node if self._wanted(here, node) else None
            below = self.below(node, here) or None
            if wanted is not None or below is not None:
                out.append((node.name, wanted, below))
        return tuple(out)

    def _wanted(self, path: bytes, node: Node) -> bool:
        if self.oldest is not None and node.mtime_ns < self.oldest:
            return False
        if self.newest is not None and node.mtime_ns > self.newest:
            return False
        shown = shown_path(path)
        return any(matches(p, shown) for p in self.patterns)


def _flat(hits: _Hits) -> Iterator[tuple[bytes, Node]]:
    """(path relative to the tree, node) of every match, in walk order, without recursion."""
    stack: list[tuple[bytes, Iterator[tuple[bytes, Node | None, _Hits | None]]]] = [
        (b"", iter(hits))
    ]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        name, node, below = entry
        path = join(prefix, name)
        if node is not None:
            yield path, node
        if below:
            stack.append((path, iter(below)))
