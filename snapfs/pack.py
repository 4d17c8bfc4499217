"""Pack files: sealed blobs back to back, then a sealed header naming them, then the header's
length as 4 bytes little-endian. A pack is written whole, named by the BLAKE3 of its bytes,
and never changed."""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

import msgspec

from snapfs.buffers import Buffer
from snapfs.crypto import MasterKey, content_id
from snapfs.errors import IntegrityError

_TRAILER = struct.Struct("<I")
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
    start = len(pack) - _TRAILER.size - hlen
    if start < 0:
        raise IntegrityError("pack header length out of range")
    return decode_header(key, memoryview(pack)[start : len(pack) - _TRAILER.size])


def decode_header(key: MasterKey, sealed: Buffer) -> list[PackEntry]:
    """The entries of a pack's sealed header."""
    return msgspec.msgpack.decode(key.open(sealed), type=list[PackEntry])
