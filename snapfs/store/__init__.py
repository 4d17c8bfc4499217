"""Blob backends: local files, S3, and an in-memory one for unit tests."""

from snapfs.store.base import AlreadyExists, Backend, NotFound, ObjectInfo, Transient

__all__ = ["AlreadyExists", "Backend", "NotFound", "ObjectInfo", "Transient"]
