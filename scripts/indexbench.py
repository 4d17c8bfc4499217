"""How long opening an index of N blobs takes from its index files (as stored, unsealed):
building the in-memory index (what every command did before the index cache), and building
the index cache's run (what the first open on a machine does now; later opens read none).

    .venv/bin/python scripts/indexbench.py [BLOBS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from snapfs.index import Index, decode_index_file, encode_index_file
from snapfs.index.cache import IndexCache
from snapfs.pack import BlobKind, PackEntry

_BLOBS_PER_PACK = 250  # 16 MiB packs of 64 KiB chunks
_PACKS_PER_FILE = 512
_FILE_BYTES_PER_BLOB = 48  # about, in an index file: sizes the table before loading


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
    index = Index(expected=stored // _FILE_BYTES_PER_BLOB)
    for data in files:
        for pack_id, entries in decode_index_file(data):
            index.add_pack(pack_id, entries)
    seconds = time.perf_counter() - started
    print(f"{len(index)} blobs, {stored / len(index):.1f} bytes a blob in index files: "
          f"in memory {seconds:.2f} s, {seconds / len(index) * 1e6:.2f} µs a blob")  # fmt: skip
    del index
    named = {f"{i:064x}": data for i, data in enumerate(files)}
    with tempfile.TemporaryDirectory() as directory:
        cache = IndexCache(Path(directory), "00" * 16, lambda body: bytes(32))
        started = time.perf_counter()
        runs = cache.open_runs(named, lambda names: ((n, named[n]) for n in names))
        seconds = time.perf_counter() - started
    count = sum(run.count for run in runs)
    print(f"index cache: {len(runs)} run(s) of {count} blobs in {seconds:.2f} s, "
          f"{seconds / count * 1e6:.2f} µs a blob")  # fmt: skip


if __name__ == "__main__":
    main()
