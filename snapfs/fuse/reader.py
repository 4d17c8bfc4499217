"""File reads for the mount: decoded chunks in a size-bounded LRU, each chunk decoded once
however many readers want it, and the chunks after a sequential reader fetched ahead.

Decoding (read, decrypt, decompress, hash) runs on a thread pool; the trio loop only waits
on futures, so a slow chunk never holds up other requests.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import trio

from snapfs.buffers import Data
from snapfs.view import chunk_at

_PREFETCH_BYTES = 8 << 20


class ChunkCache:
    def __init__(self, decode: Callable[[bytes], Data], capacity: int, workers: int = 4) -> None:
        self._decode = decode
        self._capacity = capacity
        self._size = 0
        self._done: OrderedDict[bytes, Data] = OrderedDict()
        self._pending: dict[bytes, Future[Data]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="snapfs-decode")

    def get(self, blob_id: bytes) -> Future[Data]:
        """The chunk's plaintext, decoded now, already being decoded, or cached."""
        with self._lock:
            data = self._done.get(blob_id)
            if data is not None:
                self._done.move_to_end(blob_id)
                fut: Future[Data] = Future()
                fut.set_result(data)
                return fut
            fut_or_none = self._pending.get(blob_id)
            if fut_or_none is not None:
                return fut_or_none
            fut = self._pending[blob_id] = self._pool.submit(self._decode, blob_id)
        fut.add_done_callback(lambda f: self._settle(blob_id, f))
        return fut

    def _settle(self, blob_id: bytes, fut: Future[Data]) -> None:
        with self._lock:
            self._pending.pop(blob_id, None)
            if fut.cancelled() or fut.exception() is not None:
                return  # the next reader tries again
            data = fut.result()
            self._done[blob_id] = data
            self._size += len(data)
            while self._size > self._capacity and len(self._done) > 1:
                _, old = self._done.popitem(last=False)
                self._size -= len(old)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def wait_for(fut: Future[Data]) -> Data:
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

    @property
    def size(self) -> int:
        return self.starts[-1]


async def read(cache: ChunkCache, f: OpenFile, offset: int, size: int) -> bytes:
    end = min(offset + size, f.size)
    if offset >= end:
        return b""
    first, last = chunk_at(f.starts, offset), chunk_at(f.starts, end - 1)
    wanted = [cache.get(f.content[i]) for i in range(first, last + 1)]
    if offset == f.next_offset or first == 0:
        _prefetch(cache, f, last + 1)
    f.next_offset = end
    parts = []
    for i, fut in zip(range(first, last + 1), wanted, strict=True):
        data = await wait_for(fut)
        lo = max(offset - f.starts[i], 0)
        hi = min(end - f.starts[i], len(data))
        parts.append(data[lo:hi] if lo or hi < len(data) else data)
    return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


def _prefetch(cache: ChunkCache, f: OpenFile, start: int) -> None:
    """Ask for the chunks that follow, up to a window ahead of the reader."""
    i = max(start, f.fetched_to)
    limit = f.starts[start] + _PREFETCH_BYTES if start < len(f.content) else 0
    while i < len(f.content) and f.starts[i] < limit:
        cache.get(f.content[i])
        i += 1
    f.fetched_to = max(f.fetched_to, i)
