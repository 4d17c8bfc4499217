"""Index runs: a file of fixed-width blob records sorted by id, searched in place (the
layout is in docs/FORMAT.md, "Index cache").

A run never changes once written, and opening one reads only its 64-byte header, so opening
costs the same at a thousand blobs or a billion. A lookup is two ``pread``s and a
``bytes.find``: the fan-out table names the ~4-8 records whose ids share the id's leading
bits (ids are uniform, so that is interpolation with the guess precomputed), and ``find``
scans those few hundred bytes in C: one or two pages touched, a microsecond or two.
Building and merging runs sorts whole arrays of records with numpy (loaded only then):
per-blob Python code would cost more than everything else in opening a large repository.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

if TYPE_CHECKING:
    import numpy as np

MAGIC = b"SNAPRUN1"
RUN_VERSION = 1
_HEADER = struct.Struct("<8sIIQQ16s16x")  # magic, version, fan-out bits, records, packs, repo
HEADER_SIZE = _HEADER.size  # 64
RECORD = 48  # id (32), pack number × 2 + kind, offset, length, raw length (u32 each)
PACK_ID = 32
_FAN = struct.Struct("<QQ")
_VALUE = struct.Struct("<IIII")
_PER_BUCKET = 8  # records a fan-out bucket holds at most on average
_RAW = f"V{RECORD}"  # a record as opaque bytes: how numpy moves records without repacking
CHUNK_RECORDS = 1 << 19  # records a merge sorts at once (24 MB: as cache.BUILD_BATCH)


class DamagedRun(Exception):
    """A run file that is not what its header or the manifest says (truncated, foreign)."""


def fanout_bits(count: int) -> int:
    return max(0, (count // _PER_BUCKET).bit_length())


def run_size(count: int, bits: int, packs: int) -> int:
    return HEADER_SIZE + RECORD * count + 8 * ((1 << bits) + 1) + PACK_ID * packs


def checksum(path: Path) -> bytes:
    """BLAKE3 of a run file after its header (the manifest records it; merges verify it;
    the header's fields are checked against the file's size and the manifest)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb", buffering=0) as f:
        f.seek(HEADER_SIZE)
        while block := f.read(8 << 20):  # reads, not a mapping: RSS stays flat
            hasher.update(block)
    return hasher.digest()


class Run:
    """One run file, held open. Thread-safe (it never changes; reads are positional). An
    open file stays readable after it is unlinked, so a reader keeps the runs it opened
    while another process compacts them away.

    Reads are ``pread``, not a mapping: a lookup jumps to a random page, and the kernel maps
    64 KB around every fault into the process (fault-around ignores MADV_RANDOM), which
    made a 100 MB backup's RSS grow by 300 MB of index pages it never needed."""

    def __init__(self, path: Path, repo_id: bytes) -> None:
        self.path = path
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE:
                raise DamagedRun(f"{path.name}: {size} bytes, shorter than a header")
            magic, version, bits, count, packs, rid = _HEADER.unpack(os.pread(fd, HEADER_SIZE, 0))
            if (
                (magic, version, rid) != (MAGIC, RUN_VERSION, repo_id)
                or bits > 40
                or size != (run_size(count, bits, packs))
            ):
                raise DamagedRun(f"{path.name}: not a complete run of this repository")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.size = size
        self.count: int = count
        self.packs: int = packs
        self.bits: int = bits
        self._shift = 64 - bits
        self._fan_at = HEADER_SIZE + RECORD * count
        self._packs_at = self._fan_at + 8 * ((1 << bits) + 1)

    def find(self, blob_id: bytes) -> tuple[int, int, int, int] | None:
        """(pack number × 2 + kind, offset, length, raw length) of ``blob_id``, or None."""
        fd = self._fd
        bucket = int.from_bytes(blob_id[:8], "big") >> self._shift
        lo, hi = _FAN.unpack(os.pread(fd, 16, self._fan_at + 8 * bucket))
        if lo == hi:
            return None
        records = os.pread(fd, RECORD * (hi - lo), HEADER_SIZE + RECORD * lo)
        pos = records.find(blob_id)
        while pos > 0 and pos % RECORD:  # met across two records
            pos = records.find(blob_id, pos + 1)
        if pos < 0:
            return None
        return _VALUE.unpack_from(records, pos + 32)

    def _read(self, length: int, offset: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise DamagedRun(f"{self.path.name}: shorter than its header says")
        return data

    def pack_id(self, number: int) -> str:
        return self._read(PACK_ID, self._packs_at + PACK_ID * number).hex()

    def pack_table(self) -> bytes:
        """Every pack id the run names, 32 bytes each, sorted and unique."""
        return self._read(PACK_ID * self.packs, self._packs_at)

    def has_pack(self, pack_id: bytes) -> bool:
        """Binary search of the sorted pack table."""
        lo, hi = 0, self.packs
        while lo < hi:
            mid = (lo + hi) // 2
            here = self._read(PACK_ID, self._packs_at + PACK_ID * mid)
            if here == pack_id:
                return True
            if here < pack_id:
                lo = mid + 1
            else:
                hi = mid
        return False

    def key_at(self, index: int) -> int:
        return int.from_bytes(self._read(8, HEADER_SIZE + RECORD * index), "big")

    def position(self, key: int) -> int:
        """The index of the first record whose id's leading 8 bytes are ``key`` or more."""
        if key >= 1 << 64:
            return self.count
        lo, hi = _FAN.unpack(self._read(16, self._fan_at + 8 * (key >> self._shift)))
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key_at(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return int(lo)

    def records(self, start: int, stop: int) -> np.ndarray[Any, Any]:
        """A copy of records [start, stop) as a numpy array of ``record_dtype()``."""
        import numpy as np

        data = bytearray(RECORD * (stop - start))
        if data and os.preadv(self._fd, [data], HEADER_SIZE + RECORD * start) != len(data):
            raise DamagedRun(f"{self.path.name}: shorter than its header says")
        return np.frombuffer(data, record_dtype())

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)


@lru_cache(maxsize=1)
def record_dtype() -> np.dtype[Any]:
    """A record as numpy sees it; ``k`` (the id's first 8 bytes, big-endian) orders runs."""
    import numpy as np

    return np.dtype({
        "names": ["k", "id", "pk", "offset", "length", "raw"],
        "formats": [">u8", "V32", "<u4", "<u4", "<u4", "<u4"],
        "offsets": [0, 0, 32, 36, 40, 44],
        "itemsize": RECORD,
    })  # fmt: skip


def sort_unique(records: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``records`` in key order, one record an id (of several, any: each names a valid copy)."""
    import numpy as np

    if len(records) < 2:
        return records
    keys = records["k"].astype(np.uint64)  # native and contiguous: sorts and compares faster
    order = np.argsort(keys)
    out = records.view(_RAW)[order].view(record_dtype())
    keys = keys[order]
    same_key = np.flatnonzero(keys[1:] == keys[:-1])
    if len(same_key) == 0:
        return out
    words = out.view(np.uint64).reshape(-1, RECORD // 8)[:, :4]
    dup = same_key[np.all(words[same_key + 1] == words[same_key], axis=1)] + 1
    return np.delete(out.view(_RAW), dup).view(record_dtype())


def concatenate(parts: Sequence[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """Records end to end (numpy's own concatenate would repack the overlapping fields)."""
    import numpy as np

    if not parts:
        return np.empty(0, record_dtype())
    return np.concatenate([part.view(_RAW) for part in parts]).view(record_dtype())


def renumber(
    records: np.ndarray[Any, Any], packs: Sequence[bytes]
) -> tuple[np.ndarray[Any, Any], bytes]:
    """Point ``records`` at a sorted, unique pack table made of ``packs``; the table."""
    import numpy as np

    table, inverse = np.unique(np.frombuffer(b"".join(packs), "S32"), return_inverse=True)
    pk = records["pk"]
    records["pk"] = (inverse.astype(np.uint32)[pk >> 1] << 1) | (pk & 1)
    return records, table.tobytes()


class RunWriter:
    """Writes one run at ``path`` from record chunks given in key order, sized for at most
    ``capacity`` records. Not fsynced: the cache fsyncs the runs it publishes (a run merged
    away before that never needs to reach the disk); the caller renames it.

    The fan-out is written as the chunks come (entry i, "records whose bucket is below i",
    is final once a record of bucket i or later arrived) into an unnamed temporary file,
    appended at ``finish``: memory stays a chunk's worth, where a table of 2^b counts held
    in memory cost 134 MB at 100 million records, three times over."""

    def __init__(self, path: Path, repo_id: bytes, capacity: int, packs: bytes) -> None:
        self.path = path
        self._repo_id = repo_id
        self._bits = fanout_bits(capacity)
        self._packs = packs
        self._count = 0
        self._next = 0  # the next fan-out entry to write
        self._file = open(path, "wb")  # noqa: SIM115 - closed by finish or abort
        self._fan = tempfile.TemporaryFile(dir=path.parent)  # noqa: SIM115 - as _file
        self._file.write(bytes(HEADER_SIZE))
        self._hash = blake3.blake3(max_threads=blake3.blake3.AUTO)

    def add(self, records: np.ndarray[Any, Any]) -> None:
        import numpy as np

        if not len(records):
            return
        if self._bits:
            buckets = records["k"] >> np.uint64(64 - self._bits)
        else:
            buckets = np.zeros(len(records), np.uint64)
        last = int(buckets[-1])
        entries = np.arange(self._next, last + 1, dtype=np.uint64)
        self._fan.write((np.searchsorted(buckets, entries) + self._count).astype("<u8").data)
        self._next = last + 1
        data = records.view(np.uint8).data
        self._hash.update(data)
        self._file.write(data)
        self._count += len(records)

    def finish(self) -> tuple[int, int, bytes]:
        """Write the fan-out and pack table; returns (records, file size, checksum)."""
        import numpy as np

        end = (1 << self._bits) + 1  # every entry after the last record's bucket: all of them
        while self._next < end:
            n = min(end - self._next, 1 << 20)
            self._fan.write(np.full(n, self._count, "<u8").data)
            self._next += n
        f = self._file
        self._fan.seek(0)
        while block := self._fan.read(8 << 20):
            self._hash.update(block)
            f.write(block)
        self._fan.close()
        self._hash.update(self._packs)
        f.write(self._packs)
        packs = len(self._packs) // PACK_ID
        f.seek(0)
        f.write(_HEADER.pack(MAGIC, RUN_VERSION, self._bits, self._count, packs, self._repo_id))
        f.close()
        return self._count, run_size(self._count, self._bits, packs), self._hash.digest()

    def abort(self) -> None:
        self._fan.close()
        self._file.close()
        self.path.unlink(missing_ok=True)


def write_run(
    path: Path, repo_id: bytes, records: np.ndarray[Any, Any], packs: bytes
) -> tuple[int, int, bytes]:
    """One run holding ``records`` (sorted, unique); (records, file size, checksum)."""
    writer = RunWriter(path, repo_id, len(records), packs)
    try:
        writer.add(records)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def merged_chunks(
    runs: Sequence[Run], chunk: int = CHUNK_RECORDS
) -> tuple[bytes, Iterator[np.ndarray[Any, Any]]]:
    """The union of ``runs`` as chunks of sorted, unique records numbered against one pack
    table (returned first); an id in several runs keeps the record of the first. Memory:
    about ``chunk`` records at a time, plus the pack tables (32 bytes a pack)."""
    import numpy as np

    tables = [np.frombuffer(run.pack_table(), "S32") for run in runs]
    table, inverse = np.unique(np.concatenate(tables or [np.empty(0, "S32")]), return_inverse=True)
    inverse = inverse.astype(np.uint32)
    bases = list(np.cumsum([0] + [len(t) for t in tables]))
    total = sum(run.count for run in runs)
    pieces = max(1, -(-total // chunk))

    def chunks() -> Iterator[np.ndarray[Any, Any]]:
        starts = [0] * len(runs)
        for i in range(pieces):
            upper = ((i + 1) << 64) // pieces
            parts = []
            for n, run in enumerate(runs):
                stop = run.position(upper)
                part = run.records(starts[n], stop)
                starts[n] = stop
                pk = part["pk"]
                part["pk"] = (inverse[bases[n] + (pk >> 1)] << 1) | (pk & 1)
                parts.append(part)
            parts = [part for part in parts if len(part)]
            # one run's slice is sorted and unique already: only a union needs the sort
            yield parts[0] if len(parts) == 1 else sort_unique(concatenate(parts))

    return table.tobytes(), chunks()


def merge_runs(
    runs: Sequence[Run], path: Path, *, repo_id: bytes, chunk: int = CHUNK_RECORDS
) -> tuple[int, int, bytes]:
    """Write the union of ``runs`` as one run at ``path``, sorting about ``chunk`` records
    at a time (memory: two chunks); (records, file size, checksum)."""
    table, chunks = merged_chunks(runs, chunk)
    writer = RunWriter(path, repo_id, sum(run.count for run in runs), table)
    try:
        # a chunk is written and hashed on a thread while the next is read and sorted
        with ThreadPoolExecutor(1, "snapfs-index-merge") as pool:
            writing: Future[None] | None = None
            for records in chunks:
                if writing is not None:
                    writing.result()
                writing = pool.submit(writer.add, records)
            if writing is not None:
                writing.result()
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
