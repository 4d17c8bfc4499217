"""What a backup reads: the Source protocol, its records and its errors.

A Source shows a tree of directories and files, one directory at a time, each directory's
entries sorted by name (bytes), as a tree blob holds them. An entry carries the metadata a
``tree.Node`` needs (its ``node``: type, mode, owner, times, size, xattrs as far as the
listing knows them; no content, no subtree) and the source's own ``handle``, which is given
back to ``entries`` (a directory) or ``open`` (a file). The backup compares a file with the
parent snapshot's node through ``unchanged`` (the source knows which fields prove identity)
and reuses that node without opening the file when it says so.

Every method is safe to call from several threads at once. A Source holds connections and
threads until ``close``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, Self

from snapfs.errors import PathNotFound, SnapfsError
from snapfs.tree import DIR, Node

S3_BACKUP_WORKERS = 16
"""A backup's workers on an S3 source: a GET is mostly waiting, so more than the cores."""


class SourceNotFound(PathNotFound):
    """What the source names does not exist (an S3 bucket, say): nothing can be backed up."""


class ObjectVanished(SnapfsError):
    """The file was listed but is gone when read (S3: NoSuchKey). The backup leaves it out
    and warns, as it does for a local file deleted meanwhile."""


class ObjectReplaced(SnapfsError):
    """The file is no longer the one listed, or changed while being read (S3: the ETag
    given as If-Match no longer matches). Reading the entry again from a fresh listing, or
    warning, is the caller's choice."""


class Closing(ABC):
    """``with thing:`` calls ``thing.close()`` on the way out, for the sources, their open
    files and the targets, which all hold threads or connections until closed."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a directory. ``name`` equals ``node.name``; ``handle`` belongs to the
    source that made the entry."""

    name: bytes
    node: Node
    handle: object


class Content(Protocol):
    """An open file: its bytes in order through ``readinto`` (a BinaryIO enough for
    ``Chunker.chunks``), and ``node``, the entry's node completed by what opening it told
    (S3: the object's headers as xattrs), still without content. ``readinto`` raises
    ObjectVanished or ObjectReplaced when the file stops being the one opened; it never
    returns a short file as if whole. Memory held is bounded by the source, not the size."""

    node: Node

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from the current position; the count, 0 at the end."""

    def close(self) -> None:
        """Stop reading; idempotent. Pending reads ahead are dropped."""


class Source(Protocol):
    kind: str
    """The snapshot's ``source``: "local", "s3"."""

    paths: list[str]
    """The snapshot's ``paths``: what the user named, as given."""

    def entries(self, directory: Entry | None = None) -> Iterator[Entry]:
        """The entries of ``directory`` (an entry of type dir this source gave), or of the
        root with None, sorted by name. Raises SourceNotFound or AccessDenied when the
        source cannot be read at all, BackendError when retrying gave up."""

    def unchanged(self, old: Node, entry: Entry) -> bool:
        """Whether the file ``entry`` is provably the one ``old`` (a node of the parent
        snapshot at the same path) describes, so that ``old`` may stand for it unread."""

    def refresh(self, entry: Entry) -> Entry | None:
        """The file ``entry`` as the source shows it now, None if it is gone: to read again
        a file that was replaced (ObjectReplaced)."""

    def open(self, entry: Entry) -> Content:
        """The file's contents. ObjectVanished, ObjectReplaced as ``Content.readinto``."""

    def close(self) -> None:
        """Release threads and connections; idempotent."""


def walk(source: Source, directory: Entry | None = None) -> Iterator[tuple[bytes, Entry]]:
    """Every entry below ``directory`` (the root with None) depth first in name order, with
    its path (names joined by ``/``, relative to the root): for tests and tools; a backup
    walks with ``entries`` itself to know when a directory is complete."""
    stack = [(b"", source.entries(directory))]
    while stack:
        base, level = stack[-1]
        entry = next(level, None)
        if entry is None:
            stack.pop()
            continue
        path = base + entry.name
        yield path, entry
        if entry.node.type == DIR:
            stack.append((path + b"/", source.entries(entry)))
