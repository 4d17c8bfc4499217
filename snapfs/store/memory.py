"""A dict-backed Backend for unit tests of pure logic."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from snapfs.buffers import Buffer
from snapfs.errors import ShortRead
from snapfs.store.base import AlreadyExists, NotFound, ObjectInfo


class MemoryBackend:
    connections = 4

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        with self._lock:
            if exclusive and key in self.objects:
                raise AlreadyExists(key)
            self.objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise NotFound(key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        data = self.get(key)[offset : offset + length]
        if len(data) != length:
            raise ShortRead(f"short read of {key}")
        return data

    def stat(self, key: str) -> ObjectInfo:
        return ObjectInfo(key, len(self.get(key)))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            items = [(k, len(v)) for k, v in self.objects.items() if k.startswith(prefix)]
        for key, size in items:
            yield ObjectInfo(key, size)

    def delete(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)

    def close(self) -> None:
        pass
