"""Many small files: snapfs, restic and borg on a deterministic tree of N files.

    ./scripts/bench --files 100000
    python scripts/bench_files.py generate DIR --files 50000     # the tree alone

The tree: N files of 0.2-1.5 KB (JSON lines, CSV, a tiny Parquet file in ten), 100 to a
directory, 100 directories to a group. Steps per tool: first backup, unchanged re-backup,
re-backup after 1% of the files changed and 1% were added, full restore, ``find`` through a
fresh mount, reading 2% of the files through a fresh mount; caches dropped before each.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from bench import (
    Tool,
    _ratio,
    drop_caches,
    du,
    init_repos,
    machine,
    make_tools,
    mounted,
    timed_backups,
    timed_restores,
)

PER_DIR = 100
DIRS_PER_GROUP = 100
EVENTS = ["click", "view", "purchase", "login", "logout", "search", "refund"]
CITIES = [f"city-{i:03d}" for i in range(200)]


def file_path(root: Path, i: int) -> Path:
    d = i // PER_DIR
    kind = ("jsonl", "csv", "jsonl", "csv", "jsonl", "csv", "jsonl", "csv", "jsonl", "parquet")
    return root / f"g{d // DIRS_PER_GROUP:04d}" / f"d{d:06d}" / f"f{i % PER_DIR:03d}.{kind[i % 10]}"


def content(rng: random.Random, path: Path) -> bytes:
    """0.2-1.5 KB of the file's kind, drawn from ``rng``."""
    target = rng.randint(200, 1500)
    base = rng.randrange(1_700_000_000, 1_800_000_000)
    if path.suffix == ".parquet":
        rows = max(1, target // 60)
        table = pa.table({
            "ts": [base + k for k in range(rows)],
            "city": [rng.choice(CITIES) for _ in range(rows)],
            "amount": [rng.random() * 100 for _ in range(rows)],
        })  # fmt: skip
        out = io.BytesIO()
        pq.write_table(table, out, compression="none", write_statistics=False)
        return out.getvalue()
    lines: list[str] = [] if path.suffix == ".jsonl" else ["ts,event,user,city,value\n"]
    size = sum(map(len, lines))
    while size < target:
        ev, user, city = rng.choice(EVENTS), rng.randrange(100_000), rng.choice(CITIES)
        value = round(rng.random() * 1000, 2)
        if path.suffix == ".jsonl":
            line = (f'{{"ts": {base}, "event": "{ev}", "user": {user}, "city": "{city}", '
                    f'"value": {value}}}\n')  # fmt: skip
        else:
            line = f"{base},{ev},{user},{city},{value}\n"
        base += rng.randrange(1, 30)
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()


def generate(root: Path, files: int, seed: int = 15) -> None:
    """The same ``files`` and ``seed`` always give the same names and bytes."""
    rng = random.Random(seed)
    made: set[Path] = set()
    for i in range(files):
        path = file_path(root, i)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(content(rng, path))


def evolve(root: Path, files: int, seed: int = 16) -> tuple[int, int]:
    """Change 1% of the files (a line appended, or a new Parquet file) and add 1% (one new
    file in each directory): the counts changed and added."""
    rng = random.Random(seed)
    changed = added = 0
    for i in range(37, files, 100):
        path = file_path(root, i)
        if path.suffix == ".parquet":
            path.write_bytes(content(rng, path))
        else:
            with path.open("ab") as f:
                f.write(content(rng, path).splitlines(keepends=True)[-1])
        changed += 1
    for d in range((files + PER_DIR - 1) // PER_DIR):
        path = file_path(root, d * PER_DIR).parent / "added.jsonl"
        path.write_bytes(content(rng, path))
        added += 1
    return changed, added


def _all_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _dirs, names in os.walk(root):
        out.extend(Path(dirpath, n) for n in names)
    return sorted(out)


def _read_all(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            total += len(f.read())
    return total


def _mount_steps(tool: Tool, work: Path, tree: Path, sample: list[Path]) -> None:
    """``find`` over the whole tree, then reading ``sample``: each on a fresh, cold mount."""
    mnt = work / f"mnt-{tool.name}"
    with mounted(tool, mnt, tree) as root:
        drop_caches()
        started = time.perf_counter()
        subprocess.run(["find", str(root)], check=True, stdout=subprocess.DEVNULL)
        tool.record("find s", time.perf_counter() - started)
    tool.record("find mount RSS MB", tool.results.pop("mount peak RSS MB")[-1])
    with mounted(tool, mnt, tree) as root:
        drop_caches()
        started = time.perf_counter()
        _read_all([root / p for p in sample])
        tool.record("read 2% s", time.perf_counter() - started)
    tool.record("read mount RSS MB", tool.results.pop("mount peak RSS MB")[-1])


def one_run(tools: list[Tool], work: Path, files: int) -> dict[str, object]:
    tree = work / "files"
    shutil.rmtree(tree, ignore_errors=True)
    started = time.perf_counter()
    generate(tree, files)
    info: dict[str, object] = {"generate s": time.perf_counter() - started}
    init_repos(tools)
    timed_backups(tools, tree, "first backup", "day0")
    timed_backups(tools, tree, "unchanged re-backup", "day0b")
    for tool in tools:
        tool.record("repo size MB", du(tool.repo) / 1e6)
    info["changed"], info["added"] = evolve(tree, files)
    timed_backups(tools, tree, "changed re-backup", "day1")
    timed_restores(tools, work, tree)
    listing = _all_files(tree)
    info["files"] = len(listing)
    sample = [p.relative_to(tree) for p in listing[::50]]
    for tool in tools:
        _mount_steps(tool, work, tree, sample)
    return info


ROWS = [
    ("first backup s", "first backup s"),
    ("peak RSS, first backup MB", "first backup peak RSS MB"),
    ("unchanged re-backup s", "unchanged re-backup s"),
    ("peak RSS, unchanged re-backup MB", "unchanged re-backup peak RSS MB"),
    ("re-backup, 1% changed + 1% added s", "changed re-backup s"),
    ("peak RSS, that re-backup MB", "changed re-backup peak RSS MB"),
    ("repository size MB", "repo size MB"),
    ("full restore s", "full restore s"),
    ("peak RSS, restore MB", "restore peak RSS MB"),
    ("`find` through the mount (cold) s", "find s"),
    ("peak RSS, mount during find MB", "find mount RSS MB"),
    ("reading 2% of the files through the mount (cold) s", "read 2% s"),
    ("peak RSS, mount during those reads MB", "read mount RSS MB"),
]


def table(tools: list[Tool]) -> str:
    names = [t.name for t in tools]
    ratios = [n for n in ("restic", "borg") if n in names and "snapfs" in names]
    head = ["what", *names, *[f"snapfs/{n}" for n in ratios]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key in ROWS:
        row = {t.name: t.results[key][-1] for t in tools if t.results.get(key)}
        if not row:
            continue
        cells = [f"{row[n]:.1f}" if n in row else "—" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells + [_ratio(row, n) for n in ratios]) + " |")
    return "\n".join(lines)


def bench(files: int, tools: str, workdir: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="snapfs-files-", dir=workdir or "/var/tmp"))
    try:
        chosen = make_tools(work, tools.split(","))
        cold = drop_caches()
        info = one_run(chosen, work, files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{info['files']} small files (0.2-1.5 KB; {files} at first, then {info['changed']} "
        f"changed and {info['added']} added), {PER_DIR} to a directory; page cache "
        f"{'cold (dropped before each step)' if cold else 'warm'}.\nMachine: {machine()}.\n"
        f"Tools: {'; '.join(t.version for t in chosen)}.\n"
    )
    print(table(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["generate", "evolve"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.dir, args.files)
    else:
        evolve(args.dir, args.files)


if __name__ == "__main__":
    main()
