"""Turns a repository location ("PATH" or "s3://bucket/prefix") into a Backend."""

from __future__ import annotations

from snapfs.store.base import Backend
from snapfs.store.cache import CachedBackend, cache_dir_for, default_cache_dir
from snapfs.store.local import LocalBackend


def open_backend(
    location: str, *, s3_endpoint: str | None = None, create: bool = False, cache: bool = True
) -> Backend:
    """The Backend for ``location``. ``s3_endpoint`` overrides AWS_ENDPOINT_URL for S3;
    ``create`` (for init) creates a missing S3 bucket. Nothing is contacted otherwise.
    S3 repositories keep their index and snapshot files in a local cache unless ``cache``
    is False or SNAPFS_CACHE_DIR is "off"; a local repository needs none."""
    if location.startswith("s3://"):
        return _open_s3(location, s3_endpoint, create=create, cache=cache)
    return LocalBackend(location)


def _open_s3(location: str, endpoint: str | None, *, create: bool, cache: bool) -> Backend:
    # boto3 takes a few hundred milliseconds to import: only S3 repositories pay for it.
    from snapfs.store.retry import RetryBackend, RetryPolicy, attempts_from_env
    from snapfs.store.s3 import S3Backend

    s3 = S3Backend(location, endpoint_url=endpoint)
    policy = RetryPolicy(attempts=attempts_from_env())
    if create:
        policy.call(s3.create_bucket)
    backend = RetryBackend(s3, policy)
    root = default_cache_dir()
    if not cache or str(root) == "off":
        return backend
    return CachedBackend(backend, cache_dir_for(root, location, s3.endpoint_url))
