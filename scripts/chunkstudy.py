"""Which FastCDC min/avg/max suits lakes: bytes reused after typical edits, against blobs per
GB and compressed size. The table in docs/FORMAT.md ("Chunk size") comes from this script.

    python scripts/chunkstudy.py [--scale 200]     # prints a Markdown table

Edits measured, each on deterministic data from scripts/lakegen.py:
- a Parquet partition rewritten with 1% of its rows deleted at random (lakegen's evolve);
- the same partition with one contiguous 1% of its rows deleted (a day purged);
- a CSV export with 1% of its rows deleted at random;
- 100 bytes inserted 4 KiB into a 64 MB file (a header grown);
- 3 bytes prepended to 3 MiB of random data, over 200 data and chunker seeds (the tail
  matters: tests/integration/test_dedup.py asks for less than 10% added, every time);
and over a whole generated lake: blobs per GB and the bytes stored after zstd level 1.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import lakegen

from snapfs.chunker import Chunker, ChunkerParams

KIB = 1024
CANDIDATES = [
    ChunkerParams(16 * KIB, 64 * KIB, 128 * KIB),
    ChunkerParams(16 * KIB, 64 * KIB, 512 * KIB),
    ChunkerParams(32 * KIB, 128 * KIB, 256 * KIB),
    ChunkerParams(32 * KIB, 128 * KIB, 1024 * KIB),  # half the blobs of ours, max 8 × avg
    ChunkerParams(64 * KIB, 256 * KIB, 512 * KIB),
    ChunkerParams(128 * KIB, 512 * KIB, 1024 * KIB),
    ChunkerParams(256 * KIB, 1024 * KIB, 2048 * KIB),
    ChunkerParams(512 * KIB, 1024 * KIB, 8192 * KIB),  # restic's choice
]


def _label(p: ChunkerParams) -> str:
    return "/".join(f"{v // KIB}K" if v < 1024 * KIB else f"{v // (1024 * KIB)}M"
                    for v in (p.min_size, p.avg_size, p.max_size))  # fmt: skip


def _chunks(params: ChunkerParams, data: bytes) -> list[bytes]:
    return [bytes(c) for c in Chunker(params).chunk_buffer(data)]


def reused(params: ChunkerParams, before: bytes, after: bytes) -> float:
    """Share of ``after``'s bytes that are in chunks ``before`` already has."""
    known = {blake3.blake3(c).digest() for c in _chunks(params, before)}
    hit = sum(len(c) for c in _chunks(params, after) if blake3.blake3(c).digest() in known)
    return hit / len(after)


def prepend_worst(params: ChunkerParams, seeds: int = 200) -> tuple[float, float]:
    """Added share when 3 bytes are prepended to 3 MiB of random data, over random data and
    chunker seeds (each repository has its own): (mean, worst)."""
    rng = np.random.default_rng(9)
    shares = []
    for seed in range(seeds):
        data = rng.bytes(3 << 20)
        p = ChunkerParams(params.min_size, params.avg_size, params.max_size, seed=seed + 1)
        shares.append(1 - reused(p, data, b"xyz" + data))
    return sum(shares) / len(shares), max(shares)


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def edits() -> dict[str, tuple[bytes, bytes]]:
    sales = lakegen.sales_table(1_500_000, 3, 1)
    r = np.random.default_rng(7)
    random_rows = sales.filter(pa.array(r.random(sales.num_rows) >= 0.01))
    cut = sales.num_rows // 2
    contiguous = pa.concat_tables([sales.slice(0, cut), sales.slice(cut + sales.num_rows // 100)])
    csv_table = lakegen.sales_table(400_000, 1000, 1).drop_columns(["note"])
    csv_out, csv_after = io.BytesIO(), io.BytesIO()
    pacsv.write_csv(csv_table, csv_out)
    keep = pa.array(np.random.default_rng(8).random(csv_table.num_rows) >= 0.01)
    pacsv.write_csv(csv_table.filter(keep), csv_after)
    big = (csv_out.getvalue() * 4)[: 64 << 20]
    return {
        "Parquet, 1% rows deleted at random": (_parquet(sales), _parquet(random_rows)),
        "Parquet, 1% contiguous rows deleted": (_parquet(sales), _parquet(contiguous)),
        "CSV, 1% rows deleted at random": (csv_out.getvalue(), csv_after.getvalue()),
        "100 bytes inserted at 4 KiB of 64 MB": (big, big[:4096] + b"x" * 100 + big[4096:]),
    }


def lake_figures(params: ChunkerParams, lake: Path) -> tuple[float, float]:
    """(blobs per GB, stored MB per GB after zstd level 1) over every file of ``lake``."""
    zstd = zstandard.ZstdCompressor(level=1)
    blobs = raw = stored = 0
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        for chunk in _chunks(params, path.read_bytes()):
            blobs += 1
            raw += len(chunk)
            stored += min(len(zstd.compress(chunk)), len(chunk))
    return blobs / (raw / 1e9), stored / raw * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=200, help="lake size in MB")
    parser.add_argument("--only", help="comma-separated min/avg/max labels, e.g. 16K/64K/512K")
    args = parser.parse_args()
    chosen = [p for p in CANDIDATES if not args.only or _label(p) in args.only.split(",")]
    cases = edits()
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        lakegen.generate(lake, args.scale)
        rows = []
        for params in chosen:
            shares = [reused(params, a, b) for a, b in cases.values()]
            mean, worst = prepend_worst(params)
            per_gb, stored = lake_figures(params, lake)
            rows.append((params, shares, f"{mean:.1%} / {worst:.1%}", per_gb, stored))
    head = ["min/avg/max", *cases, "3 B prepended to 3 MiB: added, mean / worst of 200",
            "blobs per GB", "stored MB per GB (zstd 1)"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for params, shares, prepend, per_gb, stored in rows:
        cells = [f"{s:.1%}" for s in shares] + [prepend, f"{per_gb:,.0f}", f"{stored:.0f}"]
        print(f"| {_label(params)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
