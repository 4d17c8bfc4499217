from __future__ import annotations

import os
import struct
import tracemalloc

import msgspec
import pytest

from snapfs.index import Index, decode_index_file, encode_index_file
from snapfs.pack import BlobKind, PackEntry


def _entries(n: int, seed: int = 0) -> list[PackEntry]:
    return [
        PackEntry(os.urandom(32), BlobKind(i % 2), i * 100, 90 + i % 7, 1000 + i) for i in range(n)
    ]


@pytest.mark.parametrize("expected", [0, 10_000])
def test_lookup_returns_what_was_added_across_growth(expected: int) -> None:
    index = Index(expected=expected)
    packs = {f"{p:064x}": _entries(500) for p in range(20)}
    for pack_id, entries in packs.items():
        index.add_pack(pack_id, entries)
    assert len(index) == 10_000
    for pack_id, entries in packs.items():
        for e in entries:
            found = index.lookup(e.blob_id)
            assert found is not None
            assert (found.pack_id, found.kind, found.offset, found.length, found.raw_length) == (
                pack_id, e.kind, e.offset, e.length, e.raw_length,
            )  # fmt: skip
    assert index.lookup(os.urandom(32)) is None
    assert sorted(b for b, _ in index.entries()) == sorted(
        e.blob_id for es in packs.values() for e in es
    )


def test_dropped_packs_leave_only_their_own_blobs_behind() -> None:
    """What a run took over leaves the overlay; the other packs answer as before, and a
    dropped pack added again is found again."""
    index = Index()
    packs = {f"{p:064x}": _entries(300) for p in range(6)}
    for pack_id, entries in packs.items():
        index.add_pack(pack_id, entries)
    dropped = list(packs)[1::2]
    index.drop_packs([*dropped, "f" * 64])  # one it never held
    assert len(index) == 900
    assert index.pack_ids == list(packs)[0::2]
    for pack_id, entries in packs.items():
        assert index.has_pack(pack_id) == (pack_id not in dropped)
        for e in entries:
            found = index.lookup(e.blob_id)
            assert (found is None) if pack_id in dropped else (found and found.pack_id == pack_id)
    index.add_pack(dropped[0], packs[dropped[0]])
    assert len(index) == 1200
    assert index.lookup(packs[dropped[0]][7].blob_id) is not None


def test_a_blob_keeps_its_first_home() -> None:
    index = Index()
    e = _entries(1)[0]
    index.add_pack("a" * 64, [e])
    index.add_pack("b" * 64, [e])
    assert len(index) == 1
    found = index.lookup(e.blob_id)
    assert found is not None and found.pack_id == "a" * 64


def test_index_costs_at_most_64_bytes_per_blob() -> None:
    entries = _entries(200_000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = Index()
    index.add_pack("c" * 64, entries)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert (after - before) / len(index) <= 64


def test_an_id_met_across_two_records_is_still_a_new_blob() -> None:
    """Records sit back to back in a bucket: the bytes of a new id may appear straddling two
    stored records, which must not count as that id being indexed."""
    first = PackEntry(bytes(4) + b"\x01" * 28, BlobKind.DATA, 7, 8, 9)
    second = PackEntry(bytes(4) + b"\x02" * 28, BlobKind.DATA, 1, 2, 3)
    straddling = bytes(4) + struct.pack("<III", 7, 8, 9) + second.blob_id[:16]
    index = Index()
    index.add_pack("a" * 64, [first, second])
    index.add_pack("b" * 64, [PackEntry(straddling, BlobKind.TREE, 4, 5, 6)])
    assert len(index) == 3
    found = index.lookup(straddling)
    assert found is not None and (found.pack_id, found.kind, found.offset) == ("b" * 64, 1, 4)


def test_index_files_keep_the_format_v1_layout() -> None:
    """[pack id, [[blob id, kind, offset, length, raw length], ...]] as FORMAT.md says."""
    entry = PackEntry(b"\x07" * 32, BlobKind.TREE, 1, 2, 3)
    v1 = msgspec.msgpack.encode([["ab" * 32, [[b"\x07" * 32, 1, 1, 2, 3]]]])
    assert encode_index_file([("ab" * 32, [entry])]) == v1
    assert decode_index_file(v1) == [("ab" * 32, [entry])]
    assert decode_index_file(v1)[0][1][0].kind is BlobKind.TREE
