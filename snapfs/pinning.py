"""What a backup keeps of the tables it meets: each table directory limited to the files of
its pinned version (tables/: Delta, Iceberg), which of them went missing, and the snapshot's
records.

The walk asks ``PinnedTable.wanted`` for every entry below a table's directory: directories
on the way to a kept file, the log or metadata of versions up to the pin, the files that
version reads (``live``) and those older versions still in the log or metadata read; files
written by later commits, and anything else, are left out. A live file that is not there when
listed or read makes the table torn. Thread-safe: workers report lost files while the walk
goes on.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from snapfs.snapshot import TableRecord

if TYPE_CHECKING:  # loaded with the first table met: a backup without tables starts as fast
    from snapfs.tables.base import Pin

# The subdirectory that may make its parent a table (Delta's log, Iceberg's metadata).
TABLE_MARKS = frozenset((b"_delta_log", b"metadata"))


class PinnedTable:
    """One table directory of the backup, pinned at ``pin.version``. ``shown``: its path
    as warnings show it."""

    def __init__(self, shown: str, pinned: Pin) -> None:
        self.shown = shown
        self.pin = pinned
        self._name = pinned.format.capitalize()  # as warnings name the format
        self._kept = pinned.kept
        self._dirs = frozenset(_parents(self._kept))
        self._seen: set[str] = set()
        self._torn: set[str] = set()
        self._lock = threading.Lock()

    def wanted(self, rel: str, is_dir: bool) -> bool:
        """Whether the entry at ``rel`` (relative to the table) goes into the snapshot; a
        kept file counts as seen by the walk."""
        if is_dir:
            return rel in self._dirs
        if rel not in self._kept:
            return False
        if rel in self.pin.live:
            with self._lock:
                self._seen.add(rel)
        return True

    def lost(self, rel: str) -> str | None:
        """A kept file gone when read: the warning that names the table torn when the
        pinned version needs it, None when only history lost it (VACUUM may remove that)."""
        if rel not in self.pin.live:
            return None
        with self._lock:
            self._torn.add(rel)
        return self._torn_message(rel)

    def excluded(self, rel: str, is_dir: bool) -> list[str]:
        """An entry ``--exclude`` leaves out: the warnings for the live files it holds (the
        table is then not whole, as torn; the warning says why)."""
        if is_dir:
            below = rel + "/"
            lost = sorted(p for p in self.pin.live if p.startswith(below))
        else:
            lost = [rel] if rel in self.pin.live else []
        with self._lock:
            self._torn.update(lost)
        return [
            f"{self._name} table incomplete: version {self.pin.version} needs {p}, which --exclude "
            "leaves out"
            for p in lost
        ]

    def unseen(self) -> list[str]:
        """After the walk of the table: the warnings for live files the walk never listed
        (removed between the pin and the listing of their directory)."""
        with self._lock:
            missing = sorted(self.pin.live - self._seen - self._torn)
            self._torn.update(missing)
        return [self._torn_message(rel) for rel in missing]

    def _torn_message(self, rel: str) -> str:
        return (
            f"{self._name} table torn: version {self.pin.version} needs {rel}, "
            "which is gone (deleted during the backup?)"
        )

    def record(self) -> TableRecord:
        when = datetime.fromtimestamp(self.pin.commit_time_ns / 1e9, UTC)
        with self._lock:
            torn = bool(self._torn)
        metadata = self.pin.metadata
        return TableRecord(
            path=self.shown,
            format=self.pin.format,
            version=self.pin.version,
            metadata=f"{self.shown.rstrip('/')}/{metadata}" if metadata is not None else None,
            commit_time=when.isoformat(),
            files=self.pin.files,
            bytes=self.pin.bytes,
            torn=torn,
            deletes=sorted(self.pin.deletes),
        )


class TablePins:
    """The tables of one backup run, by their directory's absolute path."""

    def __init__(self) -> None:
        self._tables: dict[bytes, PinnedTable] = {}  # pinned, some files not read yet
        self._done: list[TableRecord] = []
        self._lock = threading.Lock()

    def format_of(self, path: bytes, subdirs: list[bytes]) -> str | None:
        """The format of the table at directory ``path``, whose subdirectories include
        ``subdirs`` (those of its entries named in TABLE_MARKS); None when it is no table.
        OSError when its metadata cannot be listed."""
        if not subdirs:
            return None
        from snapfs.sources.files import LocalFiles
        from snapfs.tables import table_format

        return table_format(LocalFiles(path), "", [os.fsdecode(d) for d in subdirs])

    def pin(self, path: bytes, shown: str, fmt: str) -> PinnedTable:
        """Pin the table of format ``fmt`` at ``path``. TableUnreadable as ``tables.pin``."""
        from snapfs.sources.files import LocalFiles
        from snapfs.tables import pin

        table = PinnedTable(shown, pin(LocalFiles(path), "", fmt, os.fsdecode(path)))
        with self._lock:
            self._tables[path.rstrip(b"/")] = table
        return table

    def owner(self, path: bytes) -> tuple[PinnedTable, str] | None:
        """The table ``path`` lies in and its path relative to the table, if any."""
        with self._lock:
            if not self._tables:
                return None
            head = path
            while b"/" in head.strip(b"/"):
                head = head.rsplit(b"/", 1)[0]
                table = self._tables.get(head)
                if table is not None:
                    return table, os.fsdecode(path[len(head) + 1 :])
        return None

    def finish(self, path: bytes) -> None:
        """The table at ``path`` is complete: every file of it read or lost. Its record is
        kept, its file set dropped, so memory holds the sets of the tables in progress."""
        with self._lock:
            table = self._tables.pop(path.rstrip(b"/"), None)
        if table is not None:
            record = table.record()
            with self._lock:
                self._done.append(record)

    def records(self) -> list[TableRecord]:
        """Every table's record, sorted by path (those not finished as they stand)."""
        with self._lock:
            tables, done = list(self._tables.values()), list(self._done)
        return sorted(done + [t.record() for t in tables], key=lambda r: r.path)


def _parents(paths: frozenset[str]) -> set[str]:
    dirs = set()
    for path in paths:
        while "/" in path:
            path = path.rsplit("/", 1)[0]
            if path in dirs:
                break
            dirs.add(path)
    return dirs
