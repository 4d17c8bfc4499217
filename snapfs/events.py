"""Progress and warning events that operations emit from worker threads.

Handlers must be cheap and thread-safe; they never decide what happens next. Events are
frozen msgspec Structs, not dataclasses: a backup makes a few per file, and a frozen
dataclass took 0.7 us to make (a setattr per field), a Struct 0.07.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec


class Planned(msgspec.Struct, frozen=True):
    """The operation knows how much work lies ahead (sent once, when known)."""

    files: int
    bytes: int


class FileStarted(msgspec.Struct, frozen=True):
    path: str


class FileDone(msgspec.Struct, frozen=True):
    path: str
    size: int
    new_bytes: int


class FilesReused(msgspec.Struct, frozen=True):
    """Files done without being read (unchanged since the parent snapshot), told once a
    directory: an event per file cost a re-backup more than settling the file did."""

    files: int
    bytes: int


class BytesDone(msgspec.Struct, frozen=True):
    """Bytes processed within a file still in progress (large files, restore writes)."""

    bytes: int


class FileWarning(msgspec.Struct, frozen=True):
    path: str
    error: str


Event = Planned | FileStarted | FileDone | FilesReused | BytesDone | FileWarning
EventHandler = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default handler: operations run silently unless a face listens."""
