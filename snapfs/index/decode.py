"""Index files as run records: the decoding that building the index cache spends its time on.

msgspec checks an index file's outline (a pack id and its entries' msgpack a pack); numpy
then reads every pack's entries at once. An entry is ``95 c4 20``, a 32-byte id and four
unsigned integers of 1, 2, 3 or 5 bytes: numpy finds every place those three bytes start,
reads the widths found there and proves, pack by pack, that the entries chain from the
pack's array header exactly to its end, as many as the header says. A pack it cannot prove
(an id that holds those three bytes, an integer msgpack writes another way) is decoded by
msgspec instead, so both give the same records and the same errors.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from snapfs.buffers import Buffer
from snapfs.errors import IntegrityError
from snapfs.index.runs import RECORD, record_dtype

if TYPE_CHECKING:
    import numpy as np

BlobIdBytes = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_PACKS = msgspec.msgpack.Decoder(list[tuple[str, msgspec.Raw]])
_ENTRIES = msgspec.msgpack.Decoder(list[tuple[BlobIdBytes, int, int, int, int]])
_PAD = 64  # zeros after the entries, so reads past a false start stay in the buffer


@lru_cache(maxsize=512)
def _entries_struct(n: int) -> struct.Struct:
    return struct.Struct("<" + "32sIIII" * n)


def _array_head(raw: memoryview) -> tuple[int, int]:
    """(entries, header bytes) of a msgpack array header; (-1, 0) for anything else."""
    first = raw[0] if len(raw) else 0
    if 0x90 <= first <= 0x9F:
        return first & 0x0F, 1
    if first == 0xDC and len(raw) >= 3:
        return int.from_bytes(raw[1:3], "big"), 3
    if first == 0xDD and len(raw) >= 5:
        return int.from_bytes(raw[1:5], "big"), 5
    return -1, 0


@lru_cache(maxsize=1)
def _widths() -> np.ndarray[Any, Any]:
    """The bytes an unsigned msgpack integer takes, by its first byte; 0 where numpy does not
    read it (negative and signed forms, uint 64), so its pack goes to msgspec."""
    import numpy as np

    widths = np.zeros(256, np.int64)
    widths[:0x80] = 1
    widths[[0xCC, 0xCD, 0xCE]] = [2, 3, 5]
    return widths


def _by_msgspec(raw: memoryview) -> bytes:
    entries = _ENTRIES.decode(raw)
    return _entries_struct(len(entries)).pack(*chain.from_iterable(entries))


def _fast_records(
    body: bytes,
    starts: np.ndarray[Any, Any],
    counts: np.ndarray[Any, Any],
    ends: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Records of every pack numpy can prove in ``body`` (the packs' entries back to back,
    each from ``starts`` after its header to ``ends``), and which packs those are."""
    import numpy as np

    a = np.frombuffer(body, np.uint8)
    n = len(a) - _PAD
    at = np.flatnonzero(a[:n] == 0x95)  # one pass over the bytes; the rest on the few found
    at = at[(a[at + 1] == 0xC4) & (a[at + 2] == 0x20)]
    pack = np.searchsorted(ends, at, "right")  # the pack each candidate lies in
    good = np.bincount(pack, minlength=len(counts))[: len(counts)] == counts
    keep = good[pack]
    at, pack = at[keep], pack[keep]
    widths = _widths()
    fields = []
    q = at + 35
    u4 = np.ndarray((n + _PAD - 4,), ">u4", body, 0, (1,))
    for _ in range(4):
        w = widths[a[q]]
        v = u4[q + 1]
        fields.append(
            np.where(w == 1, a[q], np.where(w == 2, v >> 24, np.where(w == 3, v >> 16, v)))
        )
        q = np.where(w == 0, n, q + w)  # a width numpy does not read breaks the chain
    # the chain: each entry ends where the next in its pack starts, the last at the pack's end
    last = np.ones(len(at), bool)
    last[:-1] = pack[1:] != pack[:-1]
    first = np.ones(len(at), bool)
    first[1:] = last[:-1]
    nxt = np.empty_like(at)
    nxt[:-1] = at[1:]
    nxt[last] = ends[pack[last]]
    broken = (q != nxt) | (first & (at != starts[pack]))
    good[pack[broken]] = False
    keep = good[pack]
    out = np.empty(int(keep.sum()), record_dtype())
    out["id"] = np.ndarray((n + _PAD - 32,), "V32", body, 0, (1,))[at[keep] + 3]
    for name, values in zip(("pk", "offset", "length", "raw"), fields, strict=True):
        out[name] = values[keep]
    return out, good


def records_of_index_file(plain: Buffer, name: str) -> tuple[np.ndarray[Any, Any], list[bytes]]:
    """One index file as records (pack numbers counting from 0 in file order, one per
    listing) and the pack ids they number: kind where the pack number goes, then numpy adds
    the pack numbers. IntegrityError names the file when it does not hold what FORMAT.md
    says."""
    import numpy as np

    try:
        listing = _PACKS.decode(plain)
        raws, heads, packs = [], [], []
        for pack_hex, raw in listing:
            if len(pack_hex) != 64:
                raise ValueError("pack id")
            packs.append(bytes.fromhex(pack_hex))
            view = memoryview(raw)
            raws.append(view)
            heads.append(_array_head(view))
        body = b"".join(raws) + bytes(_PAD)
        sizes = np.fromiter((len(r) for r in raws), np.int64, len(raws))
        ends = np.cumsum(sizes)
        head = np.array(heads, np.int64).reshape(-1, 2)
        counts = head[:, 0].copy()
        fast, good = _fast_records(body, ends - sizes + head[:, 1], counts, ends)
        slow = {int(i): _by_msgspec(raws[i]) for i in np.flatnonzero(~good)}
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, struct.error):
        raise IntegrityError(f"index file {name[:16]} is damaged") from None
    for i, records in slow.items():
        counts[i] = len(records) // RECORD
    numbers = np.repeat(np.arange(len(packs), dtype=np.uint32), counts)
    if slow:  # the records of each pack in file order, whichever way it was read
        out = np.empty(len(numbers), record_dtype())
        fast_here = good[numbers]
        out[fast_here] = fast
        out[~fast_here] = np.frombuffer(b"".join(slow.values()), record_dtype())
    else:
        out = fast
    if len(out) and int(out["pk"].max()) > 1:
        raise IntegrityError(f"index file {name[:16]} is damaged")
    out["pk"] |= numbers << 1
    return out, packs
