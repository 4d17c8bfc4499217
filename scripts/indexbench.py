"""How long opening an index of N blobs takes: decode index files (as stored, unsealed) and
build the in-memory index, as Repository does at every command.

    .venv/bin/python scripts/indexbench.py [BLOBS]
"""

from __future__ import annotations

import os
import sys
import time

from snapfs.index import FILE_BYTES_PER_BLOB, Index, decode_index_file, encode_index_file
from snapfs.pack import BlobKind, PackEntry

_BLOBS_PER_PACK = 250  # 16 MiB packs of 64 KiB chunks
_PACKS_PER_FILE = 512


def main() -> None:
    blobs = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    packs = [
        (os.urandom(32).hex(), [
            PackEntry(os.urandom(32), BlobKind(i % 2), i * 65_600, 65_600, 65_536)
            for i in range(_BLOBS_PER_PACK)
        ])
        for _ in range(blobs // _BLOBS_PER_PACK)
    ]  # fmt: skip
    files = [
        encode_index_file(packs[i : i + _PACKS_PER_FILE])
        for i in range(0, len(packs), _PACKS_PER_FILE)
    ]
    stored = sum(map(len, files))
    started = time.perf_counter()
    index = Index(expected=stored // FILE_BYTES_PER_BLOB)
    for data in files:
        for pack_id, entries in decode_index_file(data):
            index.add_pack(pack_id, entries)
    seconds = time.perf_counter() - started
    print(f"{len(index)} blobs, {stored / len(index):.1f} bytes a blob in index files: "
          f"{seconds:.2f} s, {seconds / len(index) * 1e6:.2f} µs a blob")  # fmt: skip


if __name__ == "__main__":
    main()
