"""Turns a repository location ("PATH" or "s3://bucket/prefix") into a Backend."""

from __future__ import annotations

from snapfs.errors import SnapfsError
from snapfs.store.base import Backend
from snapfs.store.local import LocalBackend


def open_backend(location: str) -> Backend:
    if location.startswith("s3://"):
        raise SnapfsError("S3 repositories are not supported yet")
    return LocalBackend(location)
