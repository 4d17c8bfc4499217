"""Pinned Iceberg tables moved: as a mount shows them, and where a restore puts them.

On a mount, their metadata files moved to the mount
(tables.iceberg.MovedTable), so that a reader of the mount finds every path it names below
the mount, not at the source the backup read (which may be gone); and a
``version-hint.text`` naming the pinned metadata file where the snapshot holds none.

A table's ``metadata/`` directory is recognised by its tree id. Its entries keep their
names, modes and times; the metadata files' sizes are their moved sizes, worked out when a
file is first looked up or the directory listed, so the first query reads only the files it
opens. Data files are not touched: they read as stored.

A restore of a table to another directory rewrites its restored metadata files there the
same way (``move_restored``), so the table reads at its new home.
"""

from __future__ import annotations

import bisect
import os
import stat
import threading

import msgspec

from snapfs.errors import PathNotFound, SnapfsError
from snapfs.snapshot import Snapshot, TableRecord
from snapfs.sources.files import LocalFiles
from snapfs.tables.iceberg import MovedTable, version_hint
from snapfs.tree import DIR, FILE, Node
from snapfs.treefiles import TreeFiles, TreeReader
from snapfs.walk import resolve

_HINT = b"version-hint.text"
_METADATA_BYTES = 64 << 20  # moved metadata files kept decoded, per table


class MovedMetadata:
    """One directory of a table whose files move: its nodes, sized as moved, in name order.
    ``where``: the directory relative to the table (``metadata``); ``names``: the files
    that move (None: every file, as in ``metadata/``; a data directory: its position
    delete files)."""

    def __init__(
        self,
        nodes: list[Node],
        table: MovedTable,
        hint: bytes | None,
        where: str = "metadata",
        names: frozenset[str] | None = None,
    ) -> None:
        self._table = table
        self._where = where
        self._names = names
        self._nodes = list(nodes)
        self._sized = [False] * len(nodes)
        self._hint = hint
        if hint is not None:
            at = bisect.bisect_left([n.name for n in nodes], _HINT)
            self._nodes.insert(at, _hint_node(nodes, hint))
            self._sized.insert(at, True)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def as_stored(self) -> bool:
        """Whether its entries are the stored tree's, in its slots, most read as stored (a
        data directory moving only its delete files): a reader's next files may be guessed
        from the tree."""
        return self._names is not None and self._hint is None

    def node(self, at: int) -> Node:
        """The entry at index ``at``, with its moved size (reads and moves it the first
        time: call off the trio loop)."""
        with self._lock:
            node, sized = self._nodes[at], self._sized[at]
        if sized or not self._moves(node):
            return node
        size = self._table.size(self._rel(node))
        moved = node if size is None else msgspec.structs.replace(node, size=size)
        with self._lock:
            self._nodes[at], self._sized[at] = moved, True
        return moved

    def nodes(self) -> list[Node]:
        return [self.node(i) for i in range(len(self._nodes))]

    def index_of(self, name: bytes) -> int:
        at = bisect.bisect_left(self._nodes, name, key=lambda n: n.name)
        return at if at < len(self._nodes) and self._nodes[at].name == name else -1

    def contents(self, node: Node) -> bytes | None:
        """What the file ``node`` of this directory reads as; None: as stored."""
        if node.name == _HINT and self._hint is not None:
            return self._hint
        if not self._moves(node):
            return None
        return self._table.read(self._rel(node))

    def _moves(self, node: Node) -> bool:
        return node.type == FILE and (self._names is None or node.display_name in self._names)

    def _rel(self, node: Node) -> str:
        return f"{self._where}/{node.display_name}".lstrip("/")


def _hint_node(nodes: list[Node], hint: bytes) -> Node:
    """A read-only file dated as the newest entry of the directory."""
    newest = max(nodes, key=lambda n: n.mtime_ns)
    mode = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    return Node(name=_HINT, type=FILE, mode=mode, uid=newest.uid, gid=newest.gid,
                user=newest.user, group=newest.group, mtime_ns=newest.mtime_ns,
                ctime_ns=newest.ctime_ns, size=len(hint))  # fmt: skip


def moved_tables(repo: TreeReader, snap: Snapshot, root: str) -> dict[bytes, MovedMetadata]:
    """The ``metadata/`` directories of ``snap``'s pinned Iceberg tables, by tree id, moved
    to ``root`` + their path (the snapshot mounted at ``root``). A table whose directory
    the snapshot does not hold as one is left as stored."""
    snapshot_tree = bytes.fromhex(snap.tree)
    moved: dict[bytes, MovedMetadata] = {}
    for record in snap.tables:
        if record.format != "iceberg" or record.metadata is None:
            continue
        try:
            table = resolve(repo, snapshot_tree, record.path)
            meta = resolve(repo, snapshot_tree, f"{record.path.rstrip('/')}/metadata")
        except PathNotFound:
            continue
        if table is None or meta is None or meta.type != DIR or meta.subtree is None:
            continue
        assert table.subtree is not None
        nodes = repo.load_tree(meta.subtree).nodes
        pinned = record.metadata.rsplit("/", 1)[-1]
        hint = None if any(n.name == _HINT for n in nodes) else version_hint(pinned)
        files = TreeFiles(repo, table.subtree)
        new = f"{root.rstrip('/')}/{record.path.strip('/')}"
        moving = MovedTable(files, "", record.path, new, _METADATA_BYTES,
                            frozenset(record.deletes))  # fmt: skip
        moved[meta.subtree] = MovedMetadata(nodes, moving, hint)
        moved.update(_delete_dirs(repo, table.subtree, record, moving))
    return moved


def _delete_dirs(
    repo: TreeReader, table_tree: bytes, record: TableRecord, moving: MovedTable
) -> dict[bytes, MovedMetadata]:
    """The directories of the table holding its position delete files, by tree id, each
    moving just those files (their rows name data files by absolute path)."""
    by_dir: dict[str, set[str]] = {}
    for rel in record.deletes:
        where, _slash, name = rel.rpartition("/")
        by_dir.setdefault(where, set()).add(name)
    moved = {}
    for where, names in by_dir.items():
        try:
            found = resolve(repo, table_tree, where)  # None: the table's own directory
        except PathNotFound:
            continue  # left out by --exclude: nothing to show
        if found is not None and (found.type != DIR or found.subtree is None):
            continue
        tree = table_tree if found is None else found.subtree
        assert tree is not None
        nodes = repo.load_tree(tree).nodes
        moved[tree] = MovedMetadata(nodes, moving, None, where, frozenset(names))
    return moved


def _restored(snap: Snapshot, path: str) -> list[tuple[TableRecord, str]]:
    """The pinned Iceberg tables a restore of ``snap``'s directory ``path`` brings back,
    each with its path below that directory ("" for the directory itself, else
    ``/x/y``)."""
    base = "/" + path.strip("/") if path.strip("/") else ""
    below = []
    for record in snap.tables:
        if record.format != "iceberg" or record.metadata is None:
            continue
        where = "/" + record.path.strip("/")
        if not base or where == base or where.startswith(base + "/"):
            below.append((record, where[len(base) :]))
    return below


def restored_places(
    snap: Snapshot, path: str, target: str, *, moved_only: bool = True
) -> list[tuple[TableRecord, str]]:
    """The pinned Iceberg tables a restore of ``snap``'s directory ``path`` under
    ``target`` brings back, each with the directory it comes back at (``path/x`` comes
    back as ``target/x``); with ``moved_only``, those restored where they were are left
    out (nothing moves)."""
    places = []
    for record, rest in _restored(snap, path):
        new = os.path.abspath(target) + rest
        if not moved_only or new.rstrip("/") != "/" + record.path.strip("/"):
            places.append((record, new))
    return places


class BucketTables:
    """The pinned Iceberg tables a restore of ``snap``'s directory ``path`` into a bucket
    brings back, moved to ``home`` (``s3://BUCKET/PREFIX``, where that directory goes):
    their metadata files as they read there (``contents``), and a ``version-hint.text``
    naming the pinned file for each table whose snapshot holds none (``hints``). Paths are
    relative to the restored directory, as the restore's walk gives them. Each table's
    metadata files are all moved once here, so that a table one of them cannot be moved
    for goes up wholly as stored (``failed``), never half moved. Thread-safe."""

    def __init__(self, repo: TreeReader, snap: Snapshot, path: str, home: str) -> None:
        self._moved: dict[bytes, tuple[MovedTable, str]] = {}  # restored path -> table, rel
        self._hints: list[tuple[bytes, Node]] = []
        self._hint_bytes: dict[bytes, bytes] = {}
        self.failed: list[tuple[bytes, str]] = []  # (the table's path, why it is not moved)
        snapshot_tree = bytes.fromhex(snap.tree)
        for record, rest in _restored(snap, path):
            try:
                table = resolve(repo, snapshot_tree, record.path)
                meta = resolve(repo, snapshot_tree, f"{record.path.rstrip('/')}/metadata")
            except PathNotFound:
                continue
            if table is None or table.subtree is None or meta is None or meta.subtree is None:
                continue  # not held as a directory: left as stored
            files = TreeFiles(repo, table.subtree)
            moving = MovedTable(files, "", record.path, home + rest, _METADATA_BYTES)
            nodes = repo.load_tree(meta.subtree).nodes
            names = [f"metadata/{n.display_name}" for n in nodes if n.type == FILE]
            try:
                for rel in names:
                    moving.read(rel)
                names += moving.deletes()  # those the manifests name, moved with them
                for rel in names:
                    moving.read(rel)
            except (SnapfsError, OSError) as e:
                self.failed.append((os.fsencode(rest.lstrip("/")), str(e)))
                continue
            for rel in names:
                self._moved[os.fsencode(f"{rest}/{rel}".lstrip("/"))] = (moving, rel)
            assert record.metadata is not None
            if nodes and not any(n.name == _HINT for n in nodes):
                hint = version_hint(record.metadata.rsplit("/", 1)[-1])
                at = os.fsencode(f"{rest}/metadata".lstrip("/")) + b"/" + _HINT
                self._hints.append((at, _hint_node(nodes, hint)))
                self._hint_bytes[at] = hint

    def hints(self) -> list[tuple[bytes, Node]]:
        """The ``version-hint.text`` files to add, as (path, node)."""
        return list(self._hints)

    def contents(self, rel: bytes) -> bytes | None:
        """What the file at ``rel`` reads as at the new place; None: as stored.
        TableUnreadable as ``relocate``, OSError when it cannot be read."""
        if (hint := self._hint_bytes.get(rel)) is not None:
            return hint
        found = self._moved.get(rel)
        return None if found is None else found[0].read(found[1])


def move_restored(record: TableRecord, new: str) -> None:
    """Rewrite, in place, the metadata files of the table ``record`` restored at ``new``
    (a local directory) for that place: every path below ``record.path`` moved below
    ``new``, in its Parquet position delete files too; each file keeps its mode and times.
    A ``version-hint.text`` naming the pinned file is written where none was restored.
    Idempotent: a file moved already is moved again to the same bytes. TableUnreadable or
    OSError when a file is not what its name says (none is written then) or cannot be
    rewritten (the files before it are moved already)."""
    meta = os.path.join(new, "metadata")
    if not os.path.isdir(meta):
        return  # left out by --include/--exclude
    moving = MovedTable(LocalFiles(new), "", record.path, new, _METADATA_BYTES)
    names = sorted(os.listdir(meta))
    # Every file moved before any is written: a manifest list's lengths are those of its
    # manifests moved from the restored bytes, a manifest's those of its delete files,
    # not moved twice.
    moved = {f"metadata/{name}": moving.read(f"metadata/{name}") for name in names}
    for rel in moving.deletes():  # those the manifests name, their rows naming data files
        if os.path.lexists(os.path.join(new, rel)):  # else left out by --include/--exclude
            moved[rel] = moving.read(rel)
    for rel, data in moved.items():
        file = os.path.join(new, rel)
        if data is not None and data != _contents(file):  # else moved already
            _rewrite(file, data)
    assert record.metadata is not None
    if "version-hint.text" not in names:
        hint = os.path.join(meta, "version-hint.text")
        with open(hint, "xb") as f:
            f.write(version_hint(record.metadata.rsplit("/", 1)[-1]))


def _contents(file: str) -> bytes:
    with open(os.open(file, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
        return f.read()


def _rewrite(file: str, data: bytes) -> None:
    """``file``'s contents replaced by ``data`` through a temporary file renamed over it,
    with its mode and times."""
    st = os.lstat(file)
    temp = f"{file}.snapfs-move"
    fd = os.open(
        temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, stat.S_IMODE(st.st_mode)
    )
    with open(fd, "wb") as f:
        f.write(data)
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    os.replace(temp, file)
