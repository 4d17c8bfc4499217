"""Index files as run records: the decoding that building the index cache spends its time on.

All per-blob work runs in C: msgspec decodes each pack's entries (about 0.25 µs a blob
here), ``struct`` packs them straight into records. A columnar parse of the msgpack with
numpy (find the entries' first bytes, prove the chain of their widths) was measured beside
it and cost as much CPU and more memory, so msgspec stays.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from snapfs.buffers import Buffer
from snapfs.errors import IntegrityError
from snapfs.index.runs import record_dtype

if TYPE_CHECKING:
    import numpy as np

BlobIdBytes = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_PACKS = msgspec.msgpack.Decoder(list[tuple[str, msgspec.Raw]])
_ENTRIES = msgspec.msgpack.Decoder(list[tuple[BlobIdBytes, int, int, int, int]])


@lru_cache(maxsize=512)
def _entries_struct(n: int) -> struct.Struct:
    return struct.Struct("<" + "32sIIII" * n)


def records_of_index_file(plain: Buffer, name: str) -> tuple[np.ndarray[Any, Any], list[bytes]]:
    """One index file as records (pack numbers counting from 0 in file order, one per
    listing) and the pack ids they number: kind where the pack number goes, then numpy adds
    the pack numbers. IntegrityError names the file when it does not hold what FORMAT.md
    says."""
    import numpy as np

    try:
        listing = _PACKS.decode(plain)
        packed, counts, packs = [], [], []
        for pack_hex, raw in listing:
            entries = _ENTRIES.decode(raw)
            if len(pack_hex) != 64:
                raise ValueError("pack id")
            packs.append(bytes.fromhex(pack_hex))
            counts.append(len(entries))
            packed.append(_entries_struct(len(entries)).pack(*chain.from_iterable(entries)))
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, struct.error):
        raise IntegrityError(f"index file {name[:16]} is damaged") from None
    out = np.frombuffer(bytearray().join(packed), record_dtype())  # one copy, writable
    if len(out) and int(out["pk"].max()) > 1:
        raise IntegrityError(f"index file {name[:16]} is damaged")
    numbers = np.repeat(np.arange(len(packs), dtype=np.uint32), counts)
    out["pk"] |= numbers << 1
    return out, packs
