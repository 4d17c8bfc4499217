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

import msgspec

from snapfs.buffers import Buffer
from snapfs.pack import BlobKind, PackEntry

_REC = struct.Struct("<32sIIII")
_RECORD = _REC.size
_PER_BUCKET = 16
IndexFile = list[tuple[str, list[PackEntry]]]  # (pack id, its blobs) for each pack


def encode_index_file(packs: IndexFile) -> bytes:
    return msgspec.msgpack.encode(packs)


def decode_index_file(data: Buffer) -> IndexFile:
    """Straight into PackEntry tuples, in C: no per-blob Python code."""
    return msgspec.msgpack.decode(data, type=IndexFile)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    pack_id: str
    kind: BlobKind
    offset: int
    length: int
    raw_length: int


class Index:
    def __init__(self, expected: int = 0) -> None:
        """``expected``: about how many blobs will be added (sizes the table once)."""
        self._packs: list[str] = []
        self._pack_no: dict[str, int] = {}
        bits = max(4, (expected // _PER_BUCKET).bit_length())
        self._table: tuple[int, list[bytearray]] = (bits, [bytearray() for _ in range(1 << bits)])
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def pack_ids(self) -> list[str]:
        return list(self._pack_no)  # the packs held (``_packs`` keeps dropped ones' numbers)

    def has_pack(self, pack_id: str) -> bool:
        return pack_id in self._pack_no

    def add_pack(self, pack_id: str, entries: Iterable[PackEntry]) -> None:
        """Index the blobs of one pack. A blob already indexed elsewhere keeps its first home.
        The loop is written out (no per-blob calls): every blob a backup writes passes here,
        and a bucket's ``in`` (C) settles the common case, an id not there yet, at once."""
        pno = self._pack_no.get(pack_id)
        if pno is None:
            pno = self._pack_no[pack_id] = len(self._packs)
            self._packs.append(pack_id)
        pack, home = _REC.pack, pno << 1
        bits, buckets = self._table
        shift, room = 32 - bits, _PER_BUCKET * len(buckets)
        for blob_id, kind, offset, length, raw in entries:
            bucket = buckets[int.from_bytes(blob_id[:4]) >> shift]
            if blob_id in bucket and _record_at(bucket, blob_id) >= 0:
                continue
            bucket += pack(blob_id, home | kind, offset, length, raw)
            self._count += 1
            if self._count > room:
                self._grow()
                bits, buckets = self._table
                shift, room = 32 - bits, _PER_BUCKET * len(buckets)

    def drop_packs(self, pack_ids: Iterable[str]) -> None:
        """Forget the blobs of ``pack_ids``, record by record, making no per-blob objects.
        Each bucket is swapped whole, so a lookup on another thread sees it before or after,
        never half changed; callers serialise this with ``add_pack``."""
        gone = {self._pack_no.pop(p) for p in pack_ids if p in self._pack_no}
        if not gone:
            return
        _bits, buckets = self._table
        for i, bucket in enumerate(buckets):
            kept = bytearray()
            for pos in range(0, len(bucket), _RECORD):
                if int.from_bytes(bucket[pos + 32 : pos + 36], "little") >> 1 not in gone:
                    kept += bucket[pos : pos + _RECORD]
            if len(kept) != len(bucket):
                self._count -= (len(bucket) - len(kept)) // _RECORD
                buckets[i] = kept

    def _grow(self) -> None:
        """Twice the buckets: each splits in two by the next bit of its ids, in order."""
        bits, buckets = self._table
        shift = 31 - bits
        grown: list[bytearray] = []
        for bucket in buckets:
            low, high = bytearray(), bytearray()
            for pos in range(0, len(bucket), _RECORD):
                half = high if (int.from_bytes(bucket[pos : pos + 4]) >> shift) & 1 else low
                half += bucket[pos : pos + _RECORD]
            grown += (low, high)
        self._table = (bits + 1, grown)

    def _find(self, blob_id: bytes) -> tuple[int, int, int, int] | None:
        bits, buckets = self._table
        bucket = buckets[int.from_bytes(blob_id[:4]) >> (32 - bits)]
        if blob_id not in bucket:  # most lookups of a backup: a new blob
            return None
        pos = _record_at(bucket, blob_id)
        if pos < 0:
            return None
        _id, packkind, offset, length, raw = _REC.unpack_from(bucket, pos)
        return packkind, offset, length, raw

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


def _record_at(bucket: bytearray, blob_id: bytes) -> int:
    """Where the record of ``blob_id`` starts in ``bucket``, or -1 (the id's bytes may also
    be met across two records: only a record's start counts)."""
    pos = bucket.find(blob_id)
    while pos > 0 and pos % _RECORD:
        pos = bucket.find(blob_id, pos + 1)
    return pos
