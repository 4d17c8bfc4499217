"""A local cache of a remote repository's index and snapshot files, and of the packs that
hold its trees, as restic keeps one.

Every command reads all index and snapshot files, and a re-backup, a restore or a mount
reads trees one by one; on S3 each read is a request that waits a round trip and is billed.
All are immutable and named by their content (a snapshot by its id), so a copy kept under
its name is never stale: a listing of the store is always asked of the store itself, and
sweeps away copies of what it no longer holds (kept packs: of what the index no longer
names). Copies stay sealed, as stored, each behind the BLAKE3 of its bytes, so a damaged copy
of an index or snapshot file is noticed and fetched again; a kept pack is read by ranges
unchecked, since every blob is authenticated, and its reader drops it (``forget``) when a
blob fails. ``check`` bypasses the cache: it must judge what is stored, not what was once
copied."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3

from snapfs.buffers import Buffer
from snapfs.store.base import Backend, ObjectInfo

CACHED_PREFIXES = ("index/", "snapshots/")
_SUM = 32
_TMP = ".tmp-"
# A cache write is one small file: a temporary file this old was left by a crashed writer.
TMP_STALE_AFTER = 3600.0
# https://bford.info/cachedir/: backup tools (restic, borg, tar) can skip the folder.
_CACHEDIR_TAG = b"Signature: 8a477f597d28d172789f06886806bc55\n# A cache made by snapfs.\n"


def default_cache_dir() -> Path:
    """$SNAPFS_CACHE_DIR, else $XDG_CACHE_HOME/snapfs, else ~/.cache/snapfs."""
    explicit = os.environ.get("SNAPFS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "snapfs"


def tag_cache_root(root: Path) -> None:
    """Mark the cache root as a cache, so that backup tools can skip it (best effort)."""
    tag = root / "CACHEDIR.TAG"
    if not tag.exists():
        try:
            tag.write_bytes(_CACHEDIR_TAG)
        except OSError:
            pass


def cache_dir_for(root: Path, location: str, endpoint: str | None) -> Path:
    """One folder per repository address (the same bucket on two servers is two caches)."""
    import hashlib  # ~15 ms to load cold (OpenSSL's libcrypto); only S3 repositories get here

    name = hashlib.sha256(f"{endpoint or ''}\n{location}".encode()).hexdigest()[:24]
    return root / name


class CachedBackend:
    """A Backend in front of ``inner``. Thread-safe if ``inner`` is. A cache that cannot be
    written (read-only home, full disk) only costs the GETs it would have saved."""

    def __init__(self, inner: Backend, directory: Path) -> None:
        self.inner = inner
        self.directory = directory
        self.connections = inner.connections
        self.bypass = False  # for every thread: an index loads on the repository's pool

    def _cached(self, key: str) -> Path | None:
        if self.bypass or not key.startswith(CACHED_PREFIXES) or "/" in key.split("/", 1)[1]:
            return None
        return self.directory / key

    def _load(self, path: Path) -> bytes | None:
        try:
            stored = path.read_bytes()
        except OSError:
            return None
        data = stored[_SUM:]
        if stored[:_SUM] != blake3.blake3(data).digest():
            path.unlink(missing_ok=True)
            return None
        return data

    def _keep(self, path: Path, data: Buffer) -> None:
        tmp = path.with_name(f"{_TMP}{os.getpid()}-{threading.get_ident()}")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tag_cache_root(self.directory.parent)
            with open(tmp, "wb") as f:
                f.write(blake3.blake3(data).digest())
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    # -- Backend -------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        path = self._cached(key)
        if path is None:
            return self.inner.get(key)
        data = self._load(path)
        if data is None:
            data = self.inner.get(key)
            self._keep(path, data)
        return data

    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        self.inner.put(key, data, exclusive=exclusive)
        path = self._cached(key)
        if path is not None:
            self._keep(path, data)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        infos = list(self.inner.list(prefix))
        if prefix in CACHED_PREFIXES:
            self._sweep(prefix, {info.key for info in infos})
        yield from infos

    def _sweep(self, prefix: str, stored: set[str]) -> None:
        try:
            names = os.listdir(self.directory / prefix)
        except OSError:
            return
        for name in names:
            path = self.directory / prefix / name
            if name.startswith(_TMP):
                if not _left_by_a_crash(path):  # else a writer may be in flight
                    continue
            elif prefix + name in stored:
                continue
            path.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        path = self._cached(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    # -- kept packs ----------------------------------------------------------------------
    def get_range_kept(self, key: str, offset: int, length: int) -> bytes:
        """A range of a pack kept here whole: kept when stored (``keep``), else fetched whole
        the first time it is read."""
        if self.bypass:
            return self.inner.get_range(key, offset, length)
        path = self.directory / key
        try:
            with open(path, "rb") as f:
                data = os.pread(f.fileno(), length, _SUM + offset)
            if len(data) == length:
                return data
        except OSError:
            pass
        whole = self.inner.get(key)
        self._keep(path, whole)
        return whole[offset : offset + length]

    def keep(self, key: str, data: Buffer) -> None:
        """Keep a pack just stored (one of trees), to be read by ``get_range_kept``."""
        self._keep(self.directory / key, data)

    def forget(self, key: str) -> None:
        """Drop the kept copy of ``key`` (a blob in it failed authentication)."""
        (self.directory / key).unlink(missing_ok=True)

    def sweep_kept(self, live: Callable[[str], bool]) -> None:
        """Drop kept packs whose id is not ``live`` (not named by the index)."""
        root = self.directory / "data"
        try:
            folders = os.listdir(root)
        except OSError:
            return
        for folder in folders:
            try:
                names = os.listdir(root / folder)
            except OSError:  # not a folder of ours, or another process removed it meanwhile
                continue
            for name in names:
                if not live(name) and not name.startswith(_TMP):
                    (root / folder / name).unlink(missing_ok=True)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def close(self) -> None:
        self.inner.close()


def _left_by_a_crash(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime > TMP_STALE_AFTER
    except OSError:  # gone meanwhile
        return False


def pack_cache(backend: Backend) -> CachedBackend | None:
    """The cache that keeps packs for ``backend``, when it has one and is not bypassed."""
    if isinstance(backend, CachedBackend) and not backend.bypass:
        return backend
    return None


@contextmanager
def bypassing(backend: Backend) -> Iterator[None]:
    """Read ``backend``'s store itself, not its local cache, if it has one."""
    if not isinstance(backend, CachedBackend):
        yield
        return
    before, backend.bypass = backend.bypass, True
    try:
        yield
    finally:
        backend.bypass = before
