"""snapfs: deduplicating, encrypted backups of data lakes, mountable read-only through FUSE.

The public API, for scripts and the TUI: open or create a repository, then run operations on
it. Importing snapfs loads no UI toolkit (rich, click, textual, pyfuse3, trio), and nothing at
all until a name is used: the command line starts unlocking the repository (its password
KDF, on a thread) before the modules a verb needs have loaded.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from snapfs.version import __version__

if TYPE_CHECKING:
    from snapfs.backup import backup
    from snapfs.check import CheckReport, check
    from snapfs.diff import Change, diff_trees
    from snapfs.errors import (
        IntegrityError,
        PathNotFound,
        RepositoryExists,
        RepositoryLocked,
        RepositoryNotFound,
        SnapfsError,
        SnapshotNotFound,
        WrongPassword,
    )
    from snapfs.events import (
        BytesDone,
        Event,
        FileDone,
        FilesReused,
        FileStarted,
        FileWarning,
        Planned,
    )
    from snapfs.progress import Tally
    from snapfs.repair import IndexRepair, SnapshotRepair, repair_index, repair_snapshots
    from snapfs.repository import Repository
    from snapfs.restore import RestoreSummary, restore
    from snapfs.snapshot import Snapshot, SnapshotFilter, Summary
    from snapfs.stats import RepoStats, stats
    from snapfs.store.url import open_backend

# public name -> the module that defines it
_LAZY = {
    "backup": "backup",
    "check": "check",
    "CheckReport": "check",
    "Change": "diff",
    "diff_trees": "diff",
    "IndexRepair": "repair",
    "repair_index": "repair",
    "repair_snapshots": "repair",
    "SnapshotRepair": "repair",
    "IntegrityError": "errors",
    "PathNotFound": "errors",
    "RepositoryExists": "errors",
    "RepositoryLocked": "errors",
    "RepositoryNotFound": "errors",
    "SnapfsError": "errors",
    "SnapshotNotFound": "errors",
    "WrongPassword": "errors",
    "BytesDone": "events",
    "Event": "events",
    "FileDone": "events",
    "FilesReused": "events",
    "FileStarted": "events",
    "FileWarning": "events",
    "Planned": "events",
    "Tally": "progress",
    "Repository": "repository",
    "RestoreSummary": "restore",
    "restore": "restore",
    "Snapshot": "snapshot",
    "SnapshotFilter": "snapshot",
    "Summary": "snapshot",
    "RepoStats": "stats",
    "stats": "stats",
    "open_backend": "store.url",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'snapfs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"snapfs.{module}"), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """backup, check, restore and stats are functions here and modules below: importing the
    module must not rebind the package's name to it (the import system sets it after
    loading), so ``snapfs.backup(...)`` stays the function, as with eager imports."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def open_repository(location: str, password: str, *, s3_endpoint: str | None = None) -> Repository:
    """Open the repository at ``location`` (a path, or s3://bucket/prefix; the S3 server is
    ``s3_endpoint``, else AWS_ENDPOINT_URL, else AWS)."""
    from snapfs.repository import Repository
    from snapfs.store.url import open_backend

    return Repository.open(open_backend(location, s3_endpoint=s3_endpoint), password)


def init_repository(location: str, password: str, *, s3_endpoint: str | None = None) -> Repository:
    """Create a repository at ``location`` (and its S3 bucket if missing); return it open."""
    from snapfs.repository import Repository
    from snapfs.store.url import open_backend

    backend = open_backend(location, s3_endpoint=s3_endpoint, create=True)
    return Repository.init(backend, password)


__all__ = [
    "BytesDone",
    "Change",
    "CheckReport",
    "Event",
    "FileDone",
    "FileStarted",
    "FileWarning",
    "FilesReused",
    "IndexRepair",
    "IntegrityError",
    "PathNotFound",
    "Planned",
    "RepoStats",
    "Repository",
    "RepositoryExists",
    "RepositoryLocked",
    "RepositoryNotFound",
    "RestoreSummary",
    "SnapfsError",
    "Snapshot",
    "SnapshotFilter",
    "SnapshotNotFound",
    "SnapshotRepair",
    "Summary",
    "Tally",
    "WrongPassword",
    "__version__",
    "backup",
    "check",
    "diff_trees",
    "init_repository",
    "open_backend",
    "open_repository",
    "repair_index",
    "repair_snapshots",
    "restore",
    "stats",
]
