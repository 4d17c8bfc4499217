"""Snapshot manifests, the filters that choose among them (host, tag, path), and the
selectors that name them (``latest``, unique id prefixes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

import msgspec

from snapfs.buffers import Data
from snapfs.errors import IntegrityError, SnapshotNotFound
from snapfs.prefix import match_prefix


class Summary(msgspec.Struct, frozen=True):
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    bytes_added: int = 0
    blobs_added: int = 0
    stored_bytes_added: int = 0
    warnings: int = 0
    seconds: float = 0.0


class TableRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A table the backup pinned (docs/FORMAT.md, "Tables"): its directory as backed up,
        its format ("delta", "iceberg"), the version pinned, that commit's time, the data files
        of that version and their bytes; ``torn`` when some file the version needs was gone;
        ``metadata``: the pinned metadata file's path in the snapshot (Iceberg); ``deletes``: the
    Parquet position delete files of the versions kept, relative to the table's directory
    (Iceberg: a mount or restore elsewhere rewrites the paths they hold)."""

    path: str
    format: str
    version: int
    commit_time: str
    files: int
    bytes: int
    torn: bool = False
    metadata: str | None = None
    deletes: list[str] = []  # Iceberg: Parquet position delete files, relative to ``path``


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    time: str
    host: str
    user: str
    paths: list[str]
    tree: str
    tags: list[str] = []
    parent: str | None = None
    summary: Summary = Summary()
    program_version: str = ""
    source: str = "local"
    original: str | None = None  # copy, tag, rewrite: the id of the snapshot a backup made
    tables: list[TableRecord] = []  # since format 1.1: the tables pinned (FORMAT.md "Tables")
    id: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.time)


def encode_snapshot(snap: Snapshot) -> bytes:
    """Without ``original`` unless it is a copy, without ``tables`` when it pinned none, and
    a table's ``metadata`` and ``deletes`` only when it has them (Iceberg): snapshots made
    before the fields existed encode, and so are named, as they were."""
    fields = msgspec.structs.asdict(msgspec.structs.replace(snap, id=""))
    if fields["original"] is None:
        del fields["original"]
    if not fields["tables"]:
        del fields["tables"]
    else:  # a Delta record as format 1.1 wrote it: without ``metadata``
        fields["tables"] = [_table_fields(t) for t in snap.tables]
    return msgspec.msgpack.encode(fields)


def _table_fields(table: TableRecord) -> dict[str, object]:
    fields = msgspec.structs.asdict(table)
    if fields["metadata"] is None:
        del fields["metadata"]
    if not fields["deletes"]:
        del fields["deletes"]
    return fields


def decode_snapshot(data: Data, snapshot_id: str) -> Snapshot:
    """IntegrityError naming the snapshot when it does not decode, or its time or root tree
    id could not be used (sorting by time and reading the tree would fail far from here)."""
    try:
        snap = msgspec.msgpack.decode(data, type=Snapshot)
        snap.datetime.utcoffset()
        bytes.fromhex(snap.tree)
    except (msgspec.MsgspecError, ValueError, OverflowError) as e:
        raise IntegrityError(f"snapshot {snapshot_id[:8]} is damaged: {e}") from None
    return msgspec.structs.replace(snap, id=snapshot_id)


def original_id(snap: Snapshot) -> str:
    """The id of the snapshot a backup made: a copy, a retagged or a rewritten snapshot
    (and a copy of one of those) names the first."""
    return snap.original or snap.id


def sort_by_time(snaps: list[Snapshot]) -> list[Snapshot]:
    return sorted(snaps, key=lambda s: (s.datetime, s.id))


def table_history(snaps: list[Snapshot], path: str) -> list[tuple[Snapshot, TableRecord]]:
    """Oldest first, each snapshot of ``snaps`` that pinned the table at directory ``path``
    (absolute, as the backup recorded it) with its record."""
    found = []
    for snap in sort_by_time(snaps):
        for record in snap.tables:
            if record.path.rstrip("/") == path.rstrip("/"):
                found.append((snap, record))
                break
    return found


@dataclass(frozen=True)
class SnapshotFilter:
    """restic's snapshot filter: a snapshot passes when its host is one of ``hosts``, it has
    every tag of at least one group of ``tags`` (the group ``{""}`` means no tags at all),
    and its paths include every one of ``paths``. An empty field lets every snapshot pass."""

    hosts: tuple[str, ...] = ()
    tags: tuple[frozenset[str], ...] = ()
    paths: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...]
    ) -> SnapshotFilter:
        """From the options as typed: ``--tag a,b`` is one group; a local path is made
        absolute and clean as backup records it (an ``s3://`` one is taken as given)."""
        groups = tuple(frozenset(t.strip() for t in spec.split(",")) for spec in tags)
        return cls(tuple(hosts), groups, tuple(_as_recorded(p) for p in paths))

    def __bool__(self) -> bool:
        return bool(self.hosts or self.tags or self.paths)

    def passes(self, snap: Snapshot) -> bool:
        if self.hosts and snap.host not in self.hosts:
            return False
        if self.tags and not any(_has_tags(snap, group) for group in self.tags):
            return False
        return not self.paths or set(self.paths) <= set(snap.paths)

    def describe(self) -> str:
        """The filter as options, for messages: ``--host db1 --tag old,weekly``."""
        words = [f"--host {h}" for h in self.hosts]
        words += [f"--tag {','.join(sorted(g)) or repr('')}" for g in self.tags]
        words += [f"--path {p}" for p in self.paths]
        return " ".join(words)


NO_FILTER = SnapshotFilter()


def _as_recorded(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _has_tags(snap: Snapshot, group: frozenset[str]) -> bool:
    if group == {""}:
        return not snap.tags
    return group - {""} <= set(snap.tags)


def filter_snapshots(snaps: list[Snapshot], snapshot_filter: SnapshotFilter) -> list[Snapshot]:
    """The snapshots that pass ``snapshot_filter``, in their order: what every command that
    takes --host/--tag/--path works on."""
    return [s for s in snaps if snapshot_filter.passes(s)] if snapshot_filter else snaps


def select(
    snaps: list[Snapshot], selector: str, snapshot_filter: SnapshotFilter = NO_FILTER
) -> Snapshot:
    """``latest`` (the newest snapshot that passes ``snapshot_filter``) or a unique prefix
    of an id, which names its snapshot whatever the filter (as in restic)."""
    if selector == "latest":
        chosen = filter_snapshots(snaps, snapshot_filter)
        if not chosen:
            if snapshot_filter:
                raise SnapshotNotFound(f"no snapshot matches {snapshot_filter.describe()}")
            raise SnapshotNotFound("no snapshots in the repository")
        return sort_by_time(chosen)[-1]
    by_id = {s.id: s for s in snaps}
    return by_id[match_prefix(by_id, selector, "snapshot", SnapshotNotFound)]


def find_parent(
    snaps: list[Snapshot], host: str, paths: list[str], source: str = "local"
) -> Snapshot | None:
    """The newest snapshot of the same host, paths and kind of source: its unchanged files
    are not read again (a stream's "/db.sql" is not the local file /db.sql)."""
    same = [
        s
        for s in snaps
        if s.host == host and sorted(s.paths) == sorted(paths) and s.source == source
    ]
    return sort_by_time(same)[-1] if same else None
