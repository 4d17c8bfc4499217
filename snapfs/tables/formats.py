"""Which directories are tables, of which format, and pinning one whatever its format."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from snapfs.sources.files import Files
from snapfs.tables import delta, iceberg
from snapfs.tables.base import Pin, join


def table_format(files: Files, path: str, subdirs: Collection[str]) -> str | None:
    """The format of the table at directory ``path`` ("delta", "iceberg"), None when it is
    none; ``subdirs``: the names of its subdirectories, as its listing gave them."""
    if delta.DELTA_LOG in subdirs:
        return "delta"
    if iceberg.METADATA in subdirs and iceberg.is_table(files, path):
        return "iceberg"
    return None


def find_tables(files: Files, path: str = "") -> Iterator[tuple[str, str]]:
    """Every table at or below directory ``path`` and its format, depth first in name
    order; a table's own directories are not searched for more tables."""
    stack = [path]
    while stack:
        here = stack.pop()
        subdirs = sorted((e.name for e in files.list(here) if e.is_dir), reverse=True)
        found = table_format(files, here, subdirs)
        if found is not None:
            yield here, found
            continue
        stack.extend(join(here, name) for name in subdirs)


def pin(files: Files, table: str, fmt: str, location: str) -> Pin:
    """The table at ``table`` pinned at its newest committed version (``location``: where
    its directory is, as absolute paths in its metadata name it). TableUnreadable when no
    version can be pinned (each format's ``pin`` says when)."""
    if fmt == "iceberg":
        return iceberg.pin(files, table, location)
    return delta.pin(files, table)
