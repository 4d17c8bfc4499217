"""The in-memory index: blob id -> (pack, offset, length, kind), at 48 bytes a blob.

Entries are fixed 48-byte records in buckets chosen by the id's leading bits; a bucket is one
bytearray searched with ``bytearray.find`` (C speed), so a blob costs its record plus a few
bytes of bucket overhead, not the ~200 bytes of a dict entry. The table doubles as it fills.
Lookups may run on many threads while one thread adds (a bucket table swaps atomically).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from snapfs.pack import BlobKind, PackEntry

_REC = struct.Struct("<32sIIII")
_RECORD = _REC.size
_PER_BUCKET = 16


@dataclass(frozen=True, slots=True)
class IndexEntry:
    pack_id: str
    kind: BlobKind
    offset: int
    length: int
    raw_length: int


class Index:
    def __init__(self) -> None:
        self._packs: list[str] = []
        self._pack_no: dict[str, int] = {}
        self._table: tuple[int, list[bytearray]] = (4, [bytearray() for _ in range(16)])
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def pack_ids(self) -> list[str]:
        return list(self._packs)

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        """Index the blobs of one pack. A blob already indexed elsewhere keeps its first home."""
        pno = self._pack_no.get(pack_id)
        if pno is None:
            pno = self._pack_no[pack_id] = len(self._packs)
            self._packs.append(pack_id)
        for e in entries:
            if self._find(e.blob_id) is None:
                self._insert(
                    _REC.pack(e.blob_id, pno << 1 | e.kind, e.offset, e.length, e.raw_length)
                )

    def _insert(self, record: bytes) -> None:
        bits, buckets = self._table
        buckets[_bucket(record, bits)] += record
        self._count += 1
        if self._count > _PER_BUCKET * len(buckets):
            self._grow()

    def _grow(self) -> None:
        bits, buckets = self._table
        bits += 1
        grown = [bytearray() for _ in range(1 << bits)]
        for bucket in buckets:
            for pos in range(0, len(bucket), _RECORD):
                record = bucket[pos : pos + _RECORD]
                grown[_bucket(record, bits)] += record
        self._table = (bits, grown)

    def _find(self, blob_id: bytes) -> tuple[int, int, int, int] | None:
        bits, buckets = self._table
        bucket = buckets[_bucket(blob_id, bits)]
        pos = bucket.find(blob_id)
        while pos != -1:
            if pos % _RECORD == 0:
                _id, packkind, offset, length, raw = _REC.unpack_from(bucket, pos)
                return packkind, offset, length, raw
            pos = bucket.find(blob_id, pos + 1)
        return None

    def __contains__(self, blob_id: bytes) -> bool:
        return self._find(blob_id) is not None

    def lookup(self, blob_id: bytes) -> IndexEntry | None:
        found = self._find(blob_id)
        if found is None:
            return None
        packkind, offset, length, raw = found
        return IndexEntry(self._packs[packkind >> 1], BlobKind(packkind & 1), offset, length, raw)

    def entries(self) -> Iterator[tuple[bytes, IndexEntry]]:
        """Every indexed blob, in no particular order."""
        _bits, buckets = self._table
        for bucket in buckets:
            for blob_id, packkind, offset, length, raw in _REC.iter_unpack(bytes(bucket)):
                entry = IndexEntry(
                    self._packs[packkind >> 1], BlobKind(packkind & 1), offset, length, raw
                )
                yield blob_id, entry


def by_pack(index: Index) -> dict[str, list[PackEntry]]:
    """Every indexed blob grouped by the pack holding it."""
    out: dict[str, list[PackEntry]] = {}
    for blob_id, e in index.entries():
        entry = PackEntry(blob_id, e.kind, e.offset, e.length, e.raw_length)
        out.setdefault(e.pack_id, []).append(entry)
    return out


def _bucket(blob_id: bytes | bytearray, bits: int) -> int:
    return int.from_bytes(blob_id[:4], "big") >> (32 - bits)
