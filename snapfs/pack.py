"""Pack files: sealed blobs back to back, then a sealed header naming them, then the header's
length as 4 bytes little-endian. A pack is written whole, named by the BLAKE3 of its bytes,
and never changed."""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

import msgspec

from snapfs.buffers import Buffer
from snapfs.crypto import SEAL_OVERHEAD, MasterKey, content_id
from snapfs.errors import IntegrityError

_TRAILER = struct.Struct("<I")
# What a blob may decode to, whatever an index file or a pack header says (both can be
# planted by anyone who holds a password): a data blob is one chunk, and the chunker's
# maximum is held below this (config); a tree is one directory.
MAX_DATA_RAW = 64 * 1024 * 1024
MAX_TREE_RAW = 256 * 1024 * 1024
MAX_HEADER = 64 * 1024 * 1024  # sealed header bytes: ~1.3 million blobs
_SMALL = 4096


class BlobKind(IntEnum):
    DATA = 0
    TREE = 1


class PackEntry(NamedTuple):
    """Where one blob sits in its pack: ``length`` sealed bytes at ``offset``. A tuple, so that
    headers and index files decode straight into it and the index unpacks it at C speed."""

    blob_id: bytes
    kind: BlobKind
    offset: int
    length: int
    raw_length: int


def entry_problem(kind: int, length: int, raw_length: int) -> str:
    """Why a blob's recorded place cannot be true (so it is not read), or "": its raw length
    above its kind's bound, or a sealed length that sealing could not have made."""
    limit = MAX_TREE_RAW if kind == BlobKind.TREE else MAX_DATA_RAW
    if not 0 <= raw_length <= limit:
        return f"a raw length of {raw_length} bytes (the limit is {limit})"
    if not SEAL_OVERHEAD <= length <= raw_length + SEAL_OVERHEAD:
        return f"a sealed length of {length} bytes for {raw_length} raw"
    return ""


def pack_key(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


class PackWriter:
    """Accumulates sealed blobs in memory until ``finish``. Not thread-safe; callers lock."""

    def __init__(self) -> None:
        self._parts: list[Buffer] = []
        self._small = bytearray()  # small blobs, copied together: an object each cost 3x them
        self.entries: list[PackEntry] = []
        self.size = 0

    def add(self, blob_id: bytes, kind: BlobKind, sealed: Buffer, raw_length: int) -> None:
        self.entries.append(PackEntry(blob_id, kind, self.size, len(sealed), raw_length))
        if len(sealed) < _SMALL:
            self._small += sealed
        else:
            self._end_small()
            self._parts.append(sealed)
        self.size += len(sealed)

    def _end_small(self) -> None:
        if self._small:
            self._parts.append(self._small)
            self._small = bytearray()

    def __len__(self) -> int:
        return len(self.entries)

    def finish(self, key: MasterKey) -> tuple[str, bytes]:
        """The pack's id and bytes."""
        self._end_small()
        header = key.seal(msgspec.msgpack.encode(self.entries))
        self._parts += [header, _TRAILER.pack(len(header))]
        data = b"".join(self._parts)
        self._parts = []
        return content_id(data), data


def read_header(key: MasterKey, pack: Buffer) -> list[PackEntry]:
    """The entries of a whole pack, from its own header (check compares them with the index)."""
    if len(pack) < _TRAILER.size:
        raise IntegrityError("pack too short")
    (hlen,) = _TRAILER.unpack_from(pack, len(pack) - _TRAILER.size)
    start = header_start(len(pack), hlen)
    return decode_header(key, memoryview(pack)[start : len(pack) - _TRAILER.size], start)


def header_start(pack_size: int, header_length: int) -> int:
    """Where a pack's sealed header starts, given the length its last 4 bytes state."""
    start = pack_size - _TRAILER.size - header_length
    if start < 0 or header_length > MAX_HEADER:
        raise IntegrityError("pack header length out of range")
    return start


def decode_header(key: MasterKey, sealed: Buffer, blobs_end: int) -> list[PackEntry]:
    """The entries of a pack's sealed header; IntegrityError when one lies outside the pack's
    first ``blobs_end`` bytes (where its blobs are) or is out of bounds (``entry_problem``)."""
    try:
        entries = msgspec.msgpack.decode(key.open(sealed, MAX_HEADER), type=list[PackEntry])
    except msgspec.MsgspecError:
        raise IntegrityError("pack header does not decode") from None
    for e in entries:
        why = entry_problem(e.kind, e.length, e.raw_length)
        if why or e.offset < 0 or e.offset + e.length > blobs_end:
            raise IntegrityError(f"pack header places blob {e.blob_id.hex()[:16]} out of bounds")
    return entries
