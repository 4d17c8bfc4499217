"""File reads for the mount: decoded chunks in a size-bounded LRU, each chunk decoded once
however many readers want it, and the chunks after a sequential reader fetched ahead.

Decoding (read, decrypt, decompress, hash) runs on a thread pool; the trio loop only waits
on futures, so a slow chunk never holds up other requests.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar, cast

import trio

from snapfs.buffers import Data
from snapfs.view import chunk_at

_PREFETCH_BYTES = 8 << 20
_GROUP_CHUNKS = 8  # about 600 KiB decoded by one task
_HEAD_CHUNKS = 4  # about 300 KiB: all of a small file, the footer-free start of a big one


T = TypeVar("T")
# Chunks by id; a chunk that cannot be decoded (damaged) maps to its error, for its readers.
DecodeGroup = Callable[[list[bytes]], Mapping[bytes, Data | Exception]]


class ChunkCache:
    """Decoded chunks by id. Chunks asked for together are decoded by one task with one
    coalesced read: a task per chunk would cost more in thread hand-offs than the decoding
    (about 10 µs a 64 KiB chunk for AES-GCM)."""

    def __init__(self, decode: DecodeGroup, capacity: int, workers: int = 4) -> None:
        self._decode = decode
        self._capacity = capacity
        self._size = 0
        self._done: OrderedDict[bytes, Data] = OrderedDict()
        self._pending: dict[bytes, Future[Data]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="snapfs-decode")

    def get(self, blob_id: bytes) -> Future[Data]:
        """The chunk's plaintext, decoded now, already being decoded, or cached."""
        return self.get_many([blob_id])[0]

    def get_many(self, ids: list[bytes]) -> list[Future[Data]]:
        """A future for each chunk; those neither cached nor pending are decoded together."""
        futures: list[Future[Data]] = []
        todo: dict[bytes, Future[Data]] = {}
        with self._lock:
            for blob_id in ids:
                fut = self._pending.get(blob_id) or todo.get(blob_id)
                if fut is None:
                    fut = Future()
                    data = self._done.get(blob_id)
                    if data is not None:
                        self._done.move_to_end(blob_id)
                        fut.set_result(data)
                    else:
                        todo[blob_id] = self._pending[blob_id] = fut
                futures.append(fut)
        if todo:
            self._pool.submit(self._decode_group, todo)
        return futures

    def want(self, ids: list[bytes]) -> None:
        """Start decoding, together, the chunks neither cached nor pending (read-ahead)."""
        todo: dict[bytes, Future[Data]] = {}
        with self._lock:
            for blob_id in ids:
                if blob_id not in self._pending and blob_id not in self._done:
                    todo[blob_id] = self._pending[blob_id] = Future()
        if todo:
            self._pool.submit(self._decode_group, todo)

    def cached(self, ids: list[bytes]) -> list[Data] | None:
        """The chunks when every one is decoded already; else None."""
        with self._lock:
            found = [self._done.get(blob_id) for blob_id in ids]
            if None in found:
                return None
            for blob_id in ids:
                self._done.move_to_end(blob_id)
        return cast(list[Data], found)

    def _decode_group(self, todo: dict[bytes, Future[Data]]) -> None:
        try:
            decoded = self._decode(list(todo))
        except BaseException as e:  # every waiter hears of it; the next reader tries again
            with self._lock:
                for blob_id in todo:
                    self._pending.pop(blob_id, None)
            for fut in todo.values():
                fut.set_exception(e)
            return
        with self._lock:
            for blob_id, data in decoded.items():
                self._pending.pop(blob_id, None)
                if not isinstance(data, Exception):  # an error is not kept: tried again
                    self._done[blob_id] = data
                    self._size += len(data)
            while self._size > self._capacity and len(self._done) > 1:
                _, old = self._done.popitem(last=False)
                self._size -= len(old)
        for blob_id, fut in todo.items():
            got = decoded[blob_id]
            if isinstance(got, Exception):  # this chunk only: its neighbours read
                fut.set_exception(got)
            else:
                fut.set_result(got)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def wait_for(fut: Future[T]) -> T:
    """Await a thread-pool future from trio without a thread of trio's own."""
    if not fut.done():
        token = trio.lowlevel.current_trio_token()
        event = trio.Event()
        fut.add_done_callback(lambda _f: token.run_sync_soon(event.set))
        await event.wait()
    return fut.result()


@dataclass(eq=False)
class OpenFile:
    """One open file: its chunks, and where a sequential reader will ask next."""

    content: list[bytes]
    starts: list[int]
    next_offset: int = 0
    fetched_to: int = 0  # chunks below this index were asked for already
    data: bytes | None = None  # the whole file, when it is not read from its chunks

    @property
    def size(self) -> int:
        return self.starts[-1]


async def read(cache: ChunkCache, f: OpenFile, offset: int, size: int) -> bytes:
    end = min(offset + size, f.size)
    if offset >= end:
        return b""
    if f.data is not None:
        return f.data[offset:end]
    first, last = chunk_at(f.starts, offset), chunk_at(f.starts, end - 1)
    ids = f.content[first : last + 1]
    chunks = cache.cached(ids)  # then no future and no hand-off: most reads of small files
    wanted = cache.get_many(ids) if chunks is None else []
    if (offset == f.next_offset or first == 0) and f.fetched_to < len(f.content):
        _prefetch(cache, f, last + 1)
    f.next_offset = end
    if chunks is None:
        chunks = [await wait_for(fut) for fut in wanted]
    parts = []
    for i, data in zip(range(first, last + 1), chunks, strict=True):
        lo = max(offset - f.starts[i], 0)
        hi = min(end - f.starts[i], len(data))
        parts.append(data[lo:hi] if lo or hi < len(data) else data)
    return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


def prefetch_opened(cache: ChunkCache, f: OpenFile) -> None:
    """A file was just opened: its first chunks are wanted before its first read arrives."""
    _prefetch(cache, f, 0)


def prefetch_heads(cache: ChunkCache, contents: list[list[bytes]]) -> None:
    """The first chunks of the files a reader walking a directory will open next, decoded
    together."""
    cache.want([blob_id for content in contents for blob_id in content[:_HEAD_CHUNKS]])


def _prefetch(cache: ChunkCache, f: OpenFile, start: int) -> None:
    """Ask for the chunks that follow, up to a window ahead of the reader."""
    first = i = max(start, f.fetched_to)
    limit = f.starts[start] + _PREFETCH_BYTES if start < len(f.content) else 0
    while i < len(f.content) and f.starts[i] < limit:
        i += 1
    for group in range(first, i, _GROUP_CHUNKS):  # groups, so that several threads decode
        cache.want(f.content[group : min(group + _GROUP_CHUNKS, i)])
    f.fetched_to = max(f.fetched_to, i)
