"""The Backend protocol: a flat key space of immutable objects.

Every backend gives: read-after-write consistency for a key it has put; atomic put (a reader
sees the whole object or none of it); thread-safe methods. Keys are strings such as
``data/ab/<id>``. Backends know nothing of blobs, packs or encryption.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from snapfs.buffers import Buffer
from snapfs.errors import BackendError


class NotFound(BackendError):
    """The key does not exist."""


class AlreadyExists(BackendError):
    """A create-only put found the key already there; nothing was written."""


class Transient(BackendError):
    """A failure that may pass if the same call is made again: throttling, a 5xx answer, a
    refused, reset or timed-out connection, a truncated body. RetryBackend retries these;
    users never see one, only the BackendError it becomes when retrying gives up."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float = 0.0


class Backend(Protocol):
    connections: int

    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        """Store ``data`` at ``key`` atomically. With ``exclusive`` (the default) an existing
        key raises AlreadyExists and is left untouched; without it, it is replaced atomically."""

    def get(self, key: str) -> bytes:
        """The whole object; NotFound if absent."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset``; NotFound if absent, ShortRead (a
        BackendError) if the object ends before."""

    def stat(self, key: str) -> ObjectInfo:
        """Size of the object; NotFound if absent."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in no particular order."""

    def delete(self, key: str) -> None:
        """Remove the object; idempotent (an absent key is not an error)."""

    def exists(self, key: str) -> bool:
        """Whether the key is stored."""

    def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""
