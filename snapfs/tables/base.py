"""What every table format's pin gives the backup (pinning.py): the version, its commit time,
the files it needs, the files kept beside them, and files stored as they read at the pin."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Pin:
    """One table of ``format`` ("delta", "iceberg") pinned at one committed ``version``.
        Paths are relative to the table's directory (``path``, relative to the Files root).
        ``log``: the log or metadata files of versions up to the pin; ``live``: every file the
        pinned version reads (a missing one tears the table); ``history``: files only older
        versions read (kept where present); ``fixed``: files kept with the bytes read at the
        pin, whatever they hold when the walk reaches them (a hint a later commit rewrites to
        name what the snapshot leaves out). ``metadata``: the file a reader opens for this
        version, when the format names one (Iceberg). ``files``/``bytes``: the version's data
        files and their size. ``commit_time_ns``: when the version was committed. ``deletes``: the
    Parquet position delete files of the kept versions (Iceberg), which name data files by
    absolute path inside, so a move rewrites them with the metadata."""

    format: str
    path: str
    version: int
    commit_time_ns: int
    log: frozenset[str]
    live: frozenset[str]
    history: frozenset[str]
    files: int
    bytes: int
    fixed: Mapping[str, builtins.bytes] = field(default_factory=dict)  # "bytes" is a field
    metadata: str | None = None
    deletes: frozenset[str] = frozenset()

    @property
    def kept(self) -> frozenset[str]:
        """Every file the snapshot keeps of the table."""
        return self.live | self.log | self.history | frozenset(self.fixed)


def join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name
