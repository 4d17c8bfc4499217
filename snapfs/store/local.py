"""Objects as files under a directory: temp file, fsync, link or rename, fsync of the directory.

Objects of 1 MiB and more (packs) are written with O_DIRECT from a reused page-aligned buffer:
they are written once and read rarely, and copying them into fresh page-cache pages cost a
backup more CPU time than compressing them."""

from __future__ import annotations

import errno
import mmap
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snapfs.buffers import Buffer
from snapfs.errors import BackendError, ShortRead
from snapfs.store.base import AlreadyExists, NotFound, ObjectInfo

_TMP_PREFIX = ".tmp-"
_DIRECT_MIN = 1 << 20
_ALIGN = 4096  # O_DIRECT wants buffer, offset and length aligned to the device's blocks
_GROW = 4 << 20  # packs vary in size by a chunk: one buffer serves them all


class _AlignedBuffer(threading.local):
    """One page-aligned buffer per writing thread, kept: its pages stay mapped."""

    buf: mmap.mmap | None = None

    def get(self, size: int) -> mmap.mmap:
        if self.buf is None or len(self.buf) < size:
            self.buf = mmap.mmap(-1, -(-size // _GROW) * _GROW)
        return self.buf


_aligned = _AlignedBuffer()


class LocalBackend:
    """A Backend on a local filesystem. Create-only puts use link(2), which fails atomically
    when the name exists, so an existing object is never overwritten, even by a racing writer."""

    connections = max(2, os.cpu_count() or 2)  # disk reads are cheap; decoding is the work

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._made_dirs: set[Path] = set()
        self._lock = threading.Lock()
        self._counter = 0

    def _path(self, key: str) -> Path:
        return self.root / key

    def _tmp_name(self, directory: Path) -> Path:
        with self._lock:
            self._counter += 1
            n = self._counter
        return directory / f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{n}"

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._made_dirs:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self._made_dirs.add(directory)

    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        path = self._path(key)
        self._ensure_dir(path.parent)
        tmp = self._tmp_name(path.parent)
        try:
            self._write_synced(tmp, data)
            if exclusive:
                self._link_exclusive(tmp, path, key)
            else:
                os.replace(tmp, path)
        except OSError as e:
            raise BackendError(f"cannot write {path}: {e.strerror or e}") from e
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)

    @staticmethod
    def _write_synced(tmp: Path, data: Buffer) -> None:
        if len(data) >= _DIRECT_MIN and _write_direct(tmp, data):
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _link_exclusive(tmp: Path, path: Path, key: str) -> None:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise AlreadyExists(key) from None

    def get(self, key: str) -> bytes:
        with self._reading(key), open(self._path(key), "rb") as f:
            return f.read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        with self._reading(key):
            fd = os.open(self._path(key), os.O_RDONLY)
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        if len(data) != length:
            raise ShortRead(f"short read of {key}: {len(data)} of {length} bytes at {offset}")
        return data

    def stat(self, key: str) -> ObjectInfo:
        with self._reading(key):
            st = os.stat(self._path(key))
        return ObjectInfo(key, st.st_size, st.st_mtime)

    @contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        """A missing file as NotFound, any other failure to read it as BackendError."""
        try:
            yield
        except FileNotFoundError:
            raise NotFound(key) from None
        except OSError as e:
            raise BackendError(f"cannot read {self._path(key)}: {e.strerror or e}") from e

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix.rpartition("/")[0]
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self.root)
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                yield ObjectInfo(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise BackendError(f"cannot delete {key}: {e.strerror or e}") from e

    def close(self) -> None:
        pass


def _write_direct(tmp: Path, data: Buffer) -> bool:
    """Write ``data`` to the new file ``tmp`` bypassing the page cache, padded to whole blocks
    and then truncated; False, with no file left, where the filesystem refuses O_DIRECT."""
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return False
    size = len(data)
    padded = -(-size // _ALIGN) * _ALIGN
    buf = _aligned.get(padded)
    buf[:size] = data
    buf[size:padded] = bytes(padded - size)
    try:
        view = memoryview(buf)[:padded]
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as e:
        os.close(fd)
        if e.errno != errno.EINVAL:
            raise
        os.unlink(tmp)
        return False
    os.close(fd)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
