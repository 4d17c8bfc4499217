"""Index at scale: a synthetic repository of N blobs (scripts/synthrepo.py) against an empty
one. Rows: the first open building the index cache (blobs/s), a warm open, `snapshots` and
`ls` (which must not touch the index), and a backup of a 100 MB tree into each (time and
peak RSS: the cache must cost at most 1 s and 100 MB more).

    .venv/bin/python scripts/bench.py --index-blobs 10000000
    .venv/bin/python scripts/bench_index.py 10000000 [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import synthrepo
from bench import PASSWORD, Measure, run

SNAPFS = [sys.executable, "-m", "snapfs"]


def _tree(root: Path, megabytes: int) -> None:
    """Incompressible files of 1 MB: every chunk is new to both repositories."""
    root.mkdir(parents=True)
    for i in range(megabytes):
        (root / f"f{i:04}.bin").write_bytes(os.urandom(1 << 20))


def _row(name: str, big: Measure, empty: Measure, extra: str = "") -> str:
    return (
        f"| {name} | {big.seconds:.2f} s, {big.peak_rss_mb:.0f} MB | "
        f"{empty.seconds:.2f} s, {empty.peak_rss_mb:.0f} MB | "
        f"{big.seconds - empty.seconds:+.2f} s, {big.peak_rss_mb - empty.peak_rss_mb:+.0f} MB "
        f"| {extra} |"
    )


def index_rows(blobs: int, work: Path) -> list[str]:
    """Markdown rows: each step on the N-blob repository, on an empty one, and the difference."""
    env = {**os.environ, "SNAPFS_PASSWORD": PASSWORD}
    big, empty = work / "big", work / "empty"
    started = time.perf_counter()
    run([sys.executable, synthrepo.__file__, str(big), "--blobs", str(blobs)], env)
    made = time.perf_counter() - started
    run([*SNAPFS, "-r", str(empty), "init"], env)
    src = work / "src"
    _tree(src, 100)
    rows = [
        f"Synthetic repository of {blobs:,} blobs made in {made:.0f} s.",
        "",
        "| step | N-blob repository | empty repository | difference | |",
        "| --- | --- | --- | --- | --- |",
    ]
    measures: dict[str, dict[str, Measure]] = {}
    steps = [
        ("first open (stats, builds the cache)", ["stats", "--json"]),
        ("warm open (stats)", ["stats", "--json"]),
        ("snapshots", ["snapshots"]),
        ("backup of 100 MB, cache built", ["backup", str(src)]),
        ("ls latest", ["ls", "latest"]),
    ]
    for kind, repo in (("big", big), ("empty", empty)):
        step_env = {**env, "SNAPFS_CACHE_DIR": str(work / f"cache-{kind}")}
        for name, args in steps:
            measures.setdefault(name, {})[kind] = run([*SNAPFS, "-r", str(repo), *args], step_env)
    for name, _args in steps:
        extra = ""
        if name.startswith("first open"):
            rate = blobs / measures[name]["big"].seconds
            extra = f"{rate / 1e6:.2f} M blobs/s"
        rows.append(_row(name, measures[name]["big"], measures[name]["empty"], extra))
    return rows


def bench(blobs: int, workdir: Path | None) -> None:
    """Print the rows for ``blobs``, working in a temporary directory under ``workdir``."""
    work = Path(tempfile.mkdtemp(prefix="snapfs-index-bench-", dir=workdir or "/var/tmp"))
    try:
        print("\n".join(index_rows(blobs, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("blobs", type=int)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    bench(args.blobs, args.workdir)


if __name__ == "__main__":
    main()
