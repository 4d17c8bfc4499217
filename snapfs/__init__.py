"""snapfs: deduplicating, encrypted backups of data lakes, mountable read-only through FUSE.

The public API, for scripts and the TUI: open or create a repository, then run operations on
it. Importing snapfs loads no UI toolkit (rich, click, textual, pyfuse3, trio).
"""

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
from snapfs.events import BytesDone, Event, FileDone, FileStarted, FileWarning, Planned
from snapfs.progress import Tally
from snapfs.repository import Repository
from snapfs.restore import RestoreSummary, restore
from snapfs.snapshot import Snapshot, Summary
from snapfs.stats import RepoStats, stats
from snapfs.store.url import open_backend
from snapfs.version import __version__


def open_repository(location: str, password: str, *, s3_endpoint: str | None = None) -> Repository:
    """Open the repository at ``location`` (a path, or s3://bucket/prefix; the S3 server is
    ``s3_endpoint``, else AWS_ENDPOINT_URL, else AWS)."""
    return Repository.open(open_backend(location, s3_endpoint=s3_endpoint), password)


def init_repository(location: str, password: str, *, s3_endpoint: str | None = None) -> Repository:
    """Create a repository at ``location`` (and its S3 bucket if missing); return it open."""
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
    "SnapshotNotFound",
    "Summary",
    "Tally",
    "WrongPassword",
    "__version__",
    "backup",
    "check",
    "diff_trees",
    "init_repository",
    "open_repository",
    "restore",
    "stats",
]
