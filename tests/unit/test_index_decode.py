"""Index files into run records: exactly what the msgpack says, or the file named as damaged."""

from __future__ import annotations

import random

import pytest

from snapfs.errors import IntegrityError
from snapfs.index import encode_index_file
from snapfs.index.decode import records_of_index_file
from snapfs.pack import BlobKind, PackEntry

WIDTHS = [0, 1, 127, 128, 255, 256, 65_535, 65_536, (1 << 32) - 1]  # every msgpack uint size


def _listing(rng: random.Random, packs: int, blobs: int) -> list[tuple[str, list[PackEntry]]]:
    return [
        (
            rng.randbytes(32).hex(),
            [
                PackEntry(
                    rng.randbytes(32), BlobKind(rng.randrange(2)), rng.choice(WIDTHS),
                    rng.choice(WIDTHS), rng.randrange(1 << 32),
                )
                for _ in range(rng.choice([0, 1, 15, 16, 17, blobs]))
            ],
        )
        for _ in range(packs)
    ]  # fmt: skip


def _expected(listing: list[tuple[str, list[PackEntry]]]) -> list[tuple[bytes, int, int, int, int]]:
    return [
        (e.blob_id, (number << 1) | e.kind, e.offset, e.length, e.raw_length)
        for number, (_pack, entries) in enumerate(listing)
        for e in entries
    ]


def _got(plain: bytes) -> tuple[list[tuple[bytes, int, int, int, int]], list[bytes]]:
    records, packs = records_of_index_file(plain, "ab" * 32)
    rows = [(bytes(r["id"]), int(r["pk"]), int(r["offset"]), int(r["length"]), int(r["raw"]))
            for r in records]  # fmt: skip
    return rows, packs


@pytest.mark.parametrize("seed", range(40))
def test_records_are_what_the_file_says(seed: int) -> None:
    rng = random.Random(seed)
    listing = _listing(rng, rng.randrange(0, 6), rng.randrange(0, 400))
    plain = encode_index_file(listing)
    assert _got(plain) == (_expected(listing), [bytes.fromhex(p) for p, _e in listing])


def test_a_pack_of_more_than_65535_blobs() -> None:
    rng = random.Random(7)
    entries = [PackEntry(rng.randbytes(32), BlobKind.DATA, i, 100, 200) for i in range(70_000)]
    listing = [(rng.randbytes(32).hex(), entries)]
    plain = encode_index_file(listing)
    assert _got(plain)[0] == _expected(listing)


@pytest.mark.parametrize("at", [0, 1, 5, 13, 29])
def test_an_id_holding_an_entrys_first_bytes(at: int) -> None:
    """Blob ids are random: one in a few million holds 95 c4 20, where an entry begins."""
    rng = random.Random(at)
    listing = _listing(rng, 3, 50)
    fake = rng.randbytes(at) + b"\x95\xc4\x20" + rng.randbytes(29 - at)
    pack, entries = listing[1]
    entries = [
        PackEntry(fake, BlobKind.TREE, 1, 2, 3),
        *entries,
        PackEntry(fake, BlobKind.DATA, 4, 5, 6),
    ]
    listing[1] = (pack, entries)
    plain = encode_index_file(listing)
    assert _got(plain)[0] == _expected(listing)


def test_integers_written_wider_than_needed_still_decode() -> None:
    """Another encoder may write 5 as a uint32: msgspec reads it, so records do too."""
    blob_id = bytes(range(32))
    entry = (
        b"\x95\xc4\x20"
        + blob_id
        + b"\x01\xce\x00\x00\x00\x05\xd1\x00\x07\xcf"
        + (9).to_bytes(8, "big")
    )
    plain = b"\x91\x92\xd9\x40" + b"ab" * 32 + b"\x91" + entry
    assert _got(plain)[0] == [(blob_id, 1, 5, 7, 9)]


def test_an_entry_numpy_cannot_read_whose_id_looks_like_one() -> None:
    """An id written as bin 16 (95 c5 00 20), holding 95 c4 20 where an entry read from there
    would end right at the pack's end: the pack is one entry, the one msgspec reads."""
    blob_id = b"\x00\x95\xc4\x20" + bytes(range(28))
    entry = b"\x95\xc5\x00\x20" + blob_id + b"\x01\xce\x00\x00\x01\x05\x02\x03"
    plain = b"\x91\x92\xd9\x40" + b"ab" * 32 + b"\x91" + entry
    assert _got(plain)[0] == [(blob_id, 1, 261, 2, 3)]


@pytest.mark.parametrize(
    "entry",
    [
        b"\x95\xc4\x20" + bytes(32) + b"\x02\x01\x02\x03",  # kind 2
        b"\x95\xc4\x20" + bytes(32) + b"\x00\xcf" + (1 << 32).to_bytes(8, "big") + b"\x02\x03",
        b"\x95\xc4\x20" + bytes(32) + b"\x00\xff\x02\x03",  # negative
        b"\x95\xc4\x1f" + bytes(31) + b"\x00\x01\x02\x03",  # a 31-byte id
        b"\x94\xc4\x20" + bytes(32) + b"\x00\x01\x02",  # four fields
    ],
)
def test_a_damaged_file_is_named(entry: bytes) -> None:
    plain = b"\x91\x92\xd9\x40" + b"ab" * 32 + b"\x91" + entry
    with pytest.raises(IntegrityError, match=f"^index file {'cd' * 8} is damaged$"):
        records_of_index_file(plain, "cd" * 32)


def test_a_truncated_file_is_named() -> None:
    plain = encode_index_file(_listing(random.Random(3), 3, 100))
    for cut in (1, 40, len(plain) // 2, len(plain) - 1):
        with pytest.raises(IntegrityError, match=f"^index file {'cd' * 8} is damaged$"):
            records_of_index_file(plain[:cut], "cd" * 32)
