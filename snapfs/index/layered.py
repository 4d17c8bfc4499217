"""What the repository's index answers: the blobs this process added (an in-memory ``Index``)
over the runs of the index cache (files read with pread).

Lookups are thread-safe and take no lock; ``add_pack`` and ``published`` serialise among
themselves. Memory: the overlay holds only packs whose index file this process has not yet
turned into a run (a backup's last 64 packs or so); runs cost a file descriptor each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from snapfs.index import Index, IndexEntry, by_pack
from snapfs.index.runs import Run, merged_chunks
from snapfs.pack import BlobKind, PackEntry


class LayeredIndex:
    def __init__(self, runs: Sequence[Run] = (), *, excluded: frozenset[str] = frozenset()):
        """``excluded``: pack ids whose blobs do not count (prune's view without the packs
        it condemns)."""
        self._runs = tuple(runs)
        self._overlay = Index()
        self._excluded = excluded
        self._lock = threading.Lock()

    @property
    def runs(self) -> tuple[Run, ...]:
        return self._runs

    def __len__(self) -> int:
        """About how many blobs: a blob in two runs counts twice until they merge."""
        return len(self._overlay) + sum(run.count for run in self._runs)

    def __contains__(self, blob_id: bytes) -> bool:
        if self._excluded:
            return self.lookup(blob_id) is not None
        if blob_id in self._overlay:  # the overlay first: ``published`` swaps it second
            return True
        if not self._runs:  # a new repository's: no generator for any() to make
            return False
        return any(run.find(blob_id) is not None for run in self._runs)

    def lookup(self, blob_id: bytes) -> IndexEntry | None:
        entry = self._overlay.lookup(blob_id)
        if entry is not None and entry.pack_id not in self._excluded:
            return entry
        for run in self._runs:
            found = run.find(blob_id)
            if found is None:
                continue
            packkind, offset, length, raw = found
            pack_id = run.pack_id(packkind >> 1)
            if pack_id not in self._excluded:
                return IndexEntry(pack_id, BlobKind(packkind & 1), offset, length, raw)
        return None

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        with self._lock:
            self._overlay.add_pack(pack_id, entries)

    def published(self, run: Run, pack_ids: Iterable[str]) -> None:
        """``run`` now holds the blobs of ``pack_ids``: they leave the overlay."""
        with self._lock:
            self._runs = (*self._runs, run)
            self._overlay.drop_packs(pack_ids)

    def without(self, packs: Iterable[str]) -> LayeredIndex:
        """The same index with the blobs of ``packs`` left out."""
        view = LayeredIndex(self._runs, excluded=self._excluded | frozenset(packs))
        for pack_id, entries in by_pack(self._overlay).items():
            view.add_pack(pack_id, entries)
        return view

    def has_pack(self, pack_id: str) -> bool:
        if pack_id in self._excluded:
            return False
        if self._overlay.has_pack(pack_id):
            return True
        raw = bytes.fromhex(pack_id)
        return any(run.has_pack(raw) for run in self._runs)

    @property
    def pack_ids(self) -> list[str]:
        """Every pack holding indexed blobs (32 bytes a pack in memory)."""
        packs = set(self._overlay.pack_ids)
        for run in self._runs:
            table = run.pack_table()
            packs.update(table[i : i + 32].hex() for i in range(0, len(table), 32))
        return sorted(packs - self._excluded)

    def entries(self) -> Iterator[tuple[bytes, IndexEntry]]:
        """Every indexed blob once, runs in id order, then the overlay's others. Memory is
        bounded (a merge chunk at a time), time is a few µs a blob: for small repositories
        and tests; ``totals`` counts at C speed."""
        table, chunks = merged_chunks(self._runs)
        for records in chunks:
            for rec in records.tolist():
                _k, blob_id, packkind, offset, length, raw = rec
                start = 32 * (packkind >> 1)
                pack_id = table[start : start + 32].hex()
                if pack_id not in self._excluded:
                    yield (
                        bytes(blob_id),
                        IndexEntry(pack_id, BlobKind(packkind & 1), offset, length, raw),
                    )
        for blob_id, entry in self._overlay.entries():
            if not any(run.find(blob_id) is not None for run in self._runs):
                yield blob_id, entry

    def totals(self) -> tuple[int, int, int]:
        """(data blobs, tree blobs, raw bytes of data blobs), each blob counted once (packs
        ``without`` left out are counted still)."""
        import numpy as np

        data = trees = raw = 0
        _table, chunks = merged_chunks(self._runs)
        for records in chunks:
            is_tree = (records["pk"] & 1).astype(bool)
            tree_count = int(np.count_nonzero(is_tree))
            trees += tree_count
            data += len(records) - tree_count
            raw += int(records["raw"][~is_tree].sum(dtype=np.uint64))
        for blob_id, e in self._overlay.entries():
            if not any(run.find(blob_id) is not None for run in self._runs):
                trees, data = trees + (e.kind == BlobKind.TREE), data + (e.kind == BlobKind.DATA)
                raw += e.raw_length if e.kind == BlobKind.DATA else 0
        return data, trees, raw
