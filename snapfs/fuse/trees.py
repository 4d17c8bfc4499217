"""Trees decoded ahead of a walk: when a directory is opened, the trees of the directories
in it are decoded on a worker thread, several to a task, so that a reader going down the
tree (find, du, cp -r) finds each one decoded when it opens it and the trio loop answers
without a thread hand-off of its own (a hand-off cost about as much as decoding the tree).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger("snapfs.fuse")

_GROUP = 16  # trees one task decodes


class TreesAhead:
    """``load`` decodes a tree into the repository's bounded LRU and says whether to go on
    with the next trees wanted with it (a reader may not open those before the LRU has
    let them go); ``cached`` says whether a tree is there. Each tree is decoded once
    however many ask (in-flight de-duplication)."""

    def __init__(self, load: Callable[[bytes], bool], cached: Callable[[bytes], bool]) -> None:
        self._load = load
        self._cached = cached
        self._pending: dict[bytes, Future[None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="snapfs-trees")

    def want(self, tree_ids: list[bytes]) -> None:
        """Start decoding those of ``tree_ids`` neither decoded nor being decoded."""
        todo = []
        with self._lock:
            for tree_id in tree_ids:
                if tree_id not in self._pending and not self._cached(tree_id):
                    self._pending[tree_id] = Future()
                    todo.append(tree_id)
        stop = threading.Event()  # set: the rest of these are not decoded
        for start in range(0, len(todo), _GROUP):
            self._pool.submit(self._decode, todo[start : start + _GROUP], stop)

    def pending(self, tree_id: bytes) -> Future[None] | None:
        """The decoding of ``tree_id`` in flight, if it is."""
        with self._lock:
            return self._pending.get(tree_id)

    def _decode(self, tree_ids: list[bytes], stop: threading.Event) -> None:
        for tree_id in tree_ids:
            try:
                if not stop.is_set() and not self._load(tree_id):
                    stop.set()
            except Exception as e:  # whoever opens it meets the error and reports it
                log.debug("tree %s not decoded ahead: %s", tree_id.hex()[:16], e)
            with self._lock:
                fut = self._pending.pop(tree_id)
            fut.set_result(None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
