"""The mount's chunk cache as pure logic: one decode per chunk however many want it, errors
reach every waiter and do not stick, and the size bound holds."""

from __future__ import annotations

import threading

import pytest

from snapfs.buffers import Data
from snapfs.errors import IntegrityError
from snapfs.fuse.reader import ChunkCache


class SlowDecoder:
    """Decodes to the id repeated; blocks until released, and counts what it was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[bytes]] = []
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, ids: list[bytes]) -> dict[bytes, Data]:
        self.calls.append(list(ids))
        self.release.wait(5)
        if self.fail:
            raise OSError("disk on fire")
        return {i: i * 1000 for i in ids}


def test_two_readers_of_one_chunk_decode_it_once() -> None:
    decoder = SlowDecoder()
    cache = ChunkCache(decoder, capacity=1 << 20)
    first = cache.get_many([b"a", b"b"])
    second = cache.get_many([b"b", b"c"])
    assert second[0] is first[1]  # b was pending: shared, not decoded again
    decoder.release.set()
    assert [f.result(5) for f in first + second] == [b"a" * 1000, b"b" * 1000, b"b" * 1000,
                                                     b"c" * 1000]  # fmt: skip
    assert sorted(map(sorted, decoder.calls)) == [[b"a", b"b"], [b"c"]]
    assert cache.get(b"a").result(0) == b"a" * 1000  # cached now: no third call
    assert len(decoder.calls) == 2
    cache.close()


def test_an_error_reaches_every_waiter_and_the_next_reader_tries_again() -> None:
    decoder = SlowDecoder(fail=True)
    cache = ChunkCache(decoder, capacity=1 << 20)
    waiters = [cache.get(b"x"), cache.get(b"x")]
    decoder.release.set()
    for fut in waiters:
        with pytest.raises(OSError, match="disk on fire"):
            fut.result(5)
    decoder.fail = False
    assert cache.get(b"x").result(5) == b"x" * 1000
    assert len(decoder.calls) == 2
    cache.close()


def test_the_cache_keeps_to_its_size() -> None:
    decoder = SlowDecoder()
    decoder.release.set()
    cache = ChunkCache(decoder, capacity=2500)  # room for two 1000-byte chunks
    for name in (b"a", b"b", b"c"):
        cache.get(name).result(5)
    cache.get(b"a").result(5)  # evicted as the oldest: decoded again
    assert [c for call in decoder.calls for c in call] == [b"a", b"b", b"c", b"a"]
    cache.close()


def test_read_ahead_decodes_only_what_is_neither_cached_nor_pending() -> None:
    decoder = SlowDecoder()
    cache = ChunkCache(decoder, capacity=1 << 20)
    pending = cache.get(b"a")
    cache.want([b"a", b"b", b"b", b"c"])
    assert cache.cached([b"b"]) is None  # wanted, not decoded yet
    decoder.release.set()
    assert pending.result(5) == b"a" * 1000
    assert cache.get(b"c").result(5) == b"c" * 1000  # joins the read-ahead's decode
    assert sorted(map(sorted, decoder.calls)) == [[b"a"], [b"b", b"c"]]
    cache.want([b"a", b"b"])  # all cached: nothing more to decode
    assert cache.cached([b"b", b"a"]) == [b"b" * 1000, b"a" * 1000]
    assert cache.cached([b"a", b"z"]) is None
    assert len(decoder.calls) == 2
    cache.close()


def test_a_damaged_chunk_fails_its_readers_only_and_its_group_still_reads() -> None:
    """The decoder maps a chunk it cannot decode to its error: that chunk's future fails,
    its neighbours decoded in the same task resolve, and the damaged one is not kept."""
    calls: list[list[bytes]] = []

    def decode(ids: list[bytes]) -> dict[bytes, Data | Exception]:
        calls.append(list(ids))
        return {i: IntegrityError("damaged") if i == b"b" else i * 10 for i in ids}

    cache = ChunkCache(decode, capacity=1 << 20)
    a, b, c = cache.get_many([b"a", b"b", b"c"])
    assert (a.result(5), c.result(5)) == (b"a" * 10, b"c" * 10)
    with pytest.raises(IntegrityError, match="damaged"):
        b.result(5)
    with pytest.raises(IntegrityError):
        cache.get(b"b").result(5)  # decoded again, not served from the cache
    assert cache.cached([b"a", b"c"]) == [b"a" * 10, b"c" * 10]
    assert calls == [[b"a", b"b", b"c"], [b"b"]]
    cache.close()
