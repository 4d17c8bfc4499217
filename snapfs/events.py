"""Progress and warning events that operations emit from worker threads.

Handlers must be cheap and thread-safe; they never decide what happens next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Planned:
    """The operation knows how much work lies ahead (sent once, when known)."""

    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class FileStarted:
    path: str


@dataclass(frozen=True, slots=True)
class FileDone:
    path: str
    size: int
    new_bytes: int


@dataclass(frozen=True, slots=True)
class FilesReused:
    """Files done without being read (unchanged since the parent snapshot), told once a
    directory: an event per file cost a re-backup more than settling the file did."""

    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class BytesDone:
    """Bytes processed within a file still in progress (large files, restore writes)."""

    bytes: int


@dataclass(frozen=True, slots=True)
class FileWarning:
    path: str
    error: str


Event = Planned | FileStarted | FileDone | FilesReused | BytesDone | FileWarning
EventHandler = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default handler: operations run silently unless a face listens."""
