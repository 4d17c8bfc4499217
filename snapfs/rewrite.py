"""Snapshots replaced by new ones, as restic's ``tag`` and ``rewrite`` do: the new snapshot
keeps the old one's time, host, paths and parent, records in ``original`` the id of the
snapshot a backup made, and is saved before the old one moves to ``forgotten/`` (so a crash
leaves both, never neither).

``tag`` changes the tags only: same tree, same data. ``rewrite`` stores new trees without the
entries ``--exclude`` matches; file data is never read (a file's node keeps its blob ids), and
trees shared between snapshots are rewritten once a run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from snapfs.errors import IntegrityError
from snapfs.plans import claim_for
from snapfs.repository import Repository, Writer
from snapfs.snapshot import (
    NO_FILTER,
    Snapshot,
    SnapshotFilter,
    TableRecord,
    filter_snapshots,
    original_id,
    select,
    sort_by_time,
)
from snapfs.tree import DIR, Node
from snapfs.walk import MAX_DEPTH, BottomUp, PathFilter, join, refuse_damaged, shown_path, walk


@dataclass(frozen=True)
class Replaced:
    old: Snapshot
    new: Snapshot | None  # None: a dry run, or the old one is kept too (rewrite without --forget)
    removed: tuple[str, ...] = ()  # rewrite: the paths left out (a directory stands for all below)


def chosen(
    repo: Repository, selectors: Iterable[str], snapshot_filter: SnapshotFilter = NO_FILTER
) -> list[Snapshot]:
    """The snapshots named (``latest``: the newest that passes the filter), or with none
    named every snapshot that passes it, as in restic; oldest first, each once."""
    snaps = repo.snapshots()
    names = list(selectors)
    picked = (
        [select(snaps, s, snapshot_filter) for s in names]
        if names
        else filter_snapshots(snaps, snapshot_filter)
    )
    return sort_by_time(list({s.id: s for s in picked}.values()))


def new_tags(
    tags: list[str], add: Iterable[str] = (), remove: Iterable[str] = (),
    set_to: Iterable[str] | None = None,
) -> list[str]:  # fmt: skip
    """restic's rules: ``set_to`` replaces the tags, then ``add`` appends those missing and
    ``remove`` drops its own; order kept, no duplicates, no empty tag."""
    result = list(dict.fromkeys(set_to)) if set_to is not None else list(tags)
    result += [t for t in dict.fromkeys(add) if t not in result]
    dropped = set(remove)
    return [t for t in result if t and t not in dropped]


def tag(
    repo: Repository,
    snaps: list[Snapshot],
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    set_to: Iterable[str] | None = None,
) -> list[Replaced]:
    """Give each of ``snaps`` its new tags (``new_tags``): a snapshot whose tags do not
    change is left alone, and not listed."""
    add, remove = list(add), list(remove)
    set_list = None if set_to is None else list(set_to)
    with repo.lock("backup") as lock, repo.writer() as writer:
        done = []
        for snap in snaps:
            tags = new_tags(snap.tags, add, remove, set_list)
            if tags != snap.tags:
                new = _replace(repo, writer, lock.id, snap, tags=tags)
                done.append(Replaced(snap, new))
        return done


def _replace(
    repo: Repository, writer: Writer, lock_id: str, old: Snapshot, *, forget: bool = True,
    **changes: object,
) -> Snapshot:  # fmt: skip
    """Save ``old`` with ``changes`` as a new snapshot (naming its original), give it back
    what a prune marking meanwhile condemned (as a backup does), then forget ``old``."""
    new = writer.save_snapshot(
        msgspec.structs.replace(old, **changes, original=original_id(old), id="")
    )
    claim_for(repo, lock_id, [new])
    if forget:
        repo.forget_snapshot(old.id)
    return new


@dataclass(frozen=True)
class _Done:
    """A tree rewritten: its new id (the old one when nothing changed; b"" in a dry run
    where something did), what it left out, and the files, dirs and bytes that went."""

    tree: bytes
    removed: tuple[bytes, ...]
    files: int
    dirs: int
    bytes: int


def rewrite(
    repo: Repository,
    snaps: list[Snapshot],
    excludes: list[str],
    *,
    forget: bool = False,
    dry_run: bool = False,
    on_removed: Callable[[Snapshot, str], None] | None = None,
) -> list[Replaced]:
    """A new snapshot of each of ``snaps`` that holds an entry ``excludes`` matches (restic's
    globs, as backup's --exclude), without those entries; ``forget``: the old ones are
    forgotten (so that prune can remove the data only they used). Snapshots without a
    match are left alone and not listed. The summary's files, dirs and bytes lose what
    was left out; the rest of it is the backup's. ``dry_run`` stores nothing."""
    paths = PathFilter(excludes=excludes)
    with repo.lock("backup") as lock, repo.writer() as writer:
        trees = _TreeRewriter(repo, writer, paths, dry_run=dry_run)
        done = []
        for snap in snaps:
            result = trees.value(bytes.fromhex(snap.tree))
            if not result.removed:
                continue
            removed = tuple(shown_path(p) for p in result.removed)
            if dry_run:
                done.append(Replaced(snap, None, removed))
                continue
            s = snap.summary
            summary = msgspec.structs.replace(
                s, files=s.files - result.files, dirs=s.dirs - result.dirs,
                bytes=s.bytes - result.bytes,
            )  # fmt: skip
            new = _replace(repo, writer, lock.id, snap, forget=forget, tree=result.tree.hex(),
                           summary=summary, tables=tables_after(snap.tables, removed))  # fmt: skip
            done.append(Replaced(snap, new, removed))
        return done


def tables_after(tables: list[TableRecord], removed: tuple[str, ...]) -> list[TableRecord]:
    """The pinned tables of a snapshot once ``removed`` are left out of it: a table whose
    directory went is no longer recorded; one that lost a file below it is torn (its
    version may need the file: readers are told, as when a backup found it gone)."""
    out = []
    for table in tables:
        if any(table.path == r or table.path.startswith(r.rstrip("/") + "/") for r in removed):
            continue
        inside = any(r.startswith(table.path.rstrip("/") + "/") for r in removed)
        out.append(msgspec.structs.replace(table, torn=True) if inside else table)
    return out


class _TreeRewriter(BottomUp[_Done]):
    """Rewritten trees, worked out once a run (per tree id, and per path too when an
    exclude holds ``/``, since the answer then depends on where the tree lies)."""

    def __init__(self, repo: Repository, writer: Writer, paths: PathFilter, *, dry_run: bool):
        super().__init__(by_path=any("/" in p for p in paths.excludes))
        self.repo, self.writer, self.paths, self.dry_run = repo, writer, paths, dry_run

    def nodes(self, tree_id: bytes, path: bytes, depth: int) -> list[Node]:
        """IntegrityError for a tree validation refused entries of, or nested too deep."""
        if depth >= MAX_DEPTH:
            raise IntegrityError(f"{shown_path(path)}: nested deeper than {MAX_DEPTH} levels")
        tree = self.repo.load_tree(tree_id)
        refuse_damaged(tree, path)
        return tree.nodes

    def enters(self, path: bytes) -> bool:
        return not self.paths.excluded(shown_path(path))

    def make(self, tree_id: bytes, path: bytes, nodes: list[Node]) -> _Done:
        kept: list[Node] = []
        removed: list[bytes] = []
        files = dirs = size = 0
        for node in nodes:
            here = join(path, node.name)
            if self.paths.excluded(shown_path(here)):
                removed.append(node.name)
                f, d, b = self._everything(node, here)
                files, dirs, size = files + f, dirs + d, size + b
                continue
            below = self.below(node, here)
            if below is not None and below.removed:
                removed += [join(node.name, p) for p in below.removed]
                files, dirs, size = files + below.files, dirs + below.dirs, size + below.bytes
                node = msgspec.structs.replace(node, subtree=below.tree)
            kept.append(node)
        if not removed:
            return _Done(tree_id, (), 0, 0, 0)
        new_id = b"" if self.dry_run else self.writer.save_tree(kept)
        return _Done(new_id, tuple(removed), files, dirs, size)

    def _everything(self, node: Node, path: bytes) -> tuple[int, int, int]:
        """Files, dirs and bytes of ``node`` and all below it, as backup counted them."""
        if node.type != DIR:
            return 1, 0, node.size
        if node.subtree is None:
            return 0, 1, 0
        files = dirs = size = 0
        for _p, n in walk(self.repo, node.subtree, path, depth=path.count(b"/") + 1):
            if n.type == DIR:
                dirs += 1
            else:
                files, size = files + 1, size + n.size
        return files, dirs + 1, size
