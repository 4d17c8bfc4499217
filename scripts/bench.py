"""Benchmark snapfs, restic and borg on the same generated lake, in the same run.

Every figure is the median of --runs; caches are dropped before each timed step when the
machine allows it (root), and the table says whether they were. Output: a Markdown table on
stdout and the same figures as JSON (--json, default bench-results/latest.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lakegen

PASSWORD = "bench-password-not-secret"


@dataclass
class Measure:
    seconds: float
    peak_rss_mb: float


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Measure:
    """Run ``cmd``; its wall time and peak RSS. GNU time measures the RSS: a child forked
    from this process would count this process's own pages. Raises on failure."""
    with tempfile.NamedTemporaryFile("r") as rss:
        started = time.perf_counter()
        timed = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd]
        proc = subprocess.run(
            timed, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        seconds = time.perf_counter() - started
        peak_kb = float(rss.read().strip().splitlines()[-1] or 0)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace")[-400:]
        raise RuntimeError(f"{' '.join(cmd[:3])}… exited {proc.returncode}: {tail}")
    return Measure(seconds, peak_kb / 1024)


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class Tool:
    """How one tool does each step; ``repo`` lives under the work directory."""

    name: str
    repo: Path
    env: dict[str, str]
    init: Callable[[Tool], list[str]]
    backup: Callable[[Tool, Path, str], list[str]]
    restore: Callable[[Tool, Path, Path], tuple[list[str], Path | None]]
    version: str = ""
    results: dict[str, list[float]] = field(default_factory=dict)

    def record(self, key: str, value: float) -> None:
        self.results.setdefault(key, []).append(value)


def make_tools(work: Path, names: list[str]) -> list[Tool]:
    base = {**os.environ}
    tools = {
        "snapfs": Tool(
            "snapfs", work / "repo-snapfs", {**base, "SNAPFS_PASSWORD": PASSWORD},
            init=lambda t: ["snapfs", "-q", "-r", str(t.repo), "init"],
            backup=lambda t, src, tag: ["snapfs", "-q", "-r", str(t.repo), "backup", str(src)],
            restore=lambda t, src, out: (["snapfs", "-q", "-r", str(t.repo), "restore", "latest",
                                          "--target", str(out)], None),
        ),
        "restic": Tool(
            "restic", work / "repo-restic",
            {**base, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(work / "cache-restic")},
            init=lambda t: ["restic", "-q", "-r", str(t.repo), "init"],
            backup=lambda t, src, tag: ["restic", "-q", "-r", str(t.repo), "backup", str(src)],
            restore=lambda t, src, out: (["restic", "-q", "-r", str(t.repo), "restore", "latest",
                                          "--target", str(out)], None),
        ),
        "borg": Tool(
            "borg", work / "repo-borg",
            {**base, "BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(work / "borg-base"),
             "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"},
            init=lambda t: ["borg", "init", "--encryption=repokey-blake2", str(t.repo)],
            backup=lambda t, src, tag: ["borg", "create", "--compression", "zstd,3",
                                        f"{t.repo}::{tag}", str(src)],
            restore=lambda t, src, out: (["borg", "extract", f"{t.repo}::day1"], out),
        ),
    }  # fmt: skip
    chosen = []
    for name in names:
        if shutil.which(name) is None:
            print(f"{name}: not installed, left out", file=sys.stderr)
            continue
        tool = tools[name]
        flag = "version" if name == "restic" else "--version"
        version = subprocess.run([name, flag], capture_output=True, text=True, env=tool.env)
        tool.version = (version.stdout or version.stderr).strip().splitlines()[0]
        chosen.append(tool)
    return chosen


def one_run(tools: list[Tool], work: Path, scale: float) -> dict[str, object]:
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    lakegen.generate(lake, scale)
    size = du(lake)
    files = sum(1 for p in lake.rglob("*") if p.is_file())
    cold = True
    for tool in tools:
        shutil.rmtree(tool.repo, ignore_errors=True)
        run(tool.init(tool), tool.env)
    for step, tag in (("first backup", "day0"), ("unchanged re-backup", "day0b")):
        for tool in tools:
            cold &= drop_caches()
            m = run(tool.backup(tool, lake, tag), tool.env)
            tool.record(f"{step} s", m.seconds)
            tool.record(f"{step} peak RSS MB", m.peak_rss_mb)
            tool.record(f"repo size after {step} MB", du(tool.repo) / 1e6)
    lakegen.evolve_day(lake, 1)
    for tool in tools:
        cold &= drop_caches()
        m = run(tool.backup(tool, lake, "day1"), tool.env)
        tool.record("day-1 backup s", m.seconds)
        tool.record("repo size after day-1 backup MB", du(tool.repo) / 1e6)
    for tool in tools:
        out = work / f"restore-{tool.name}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        cmd, cwd = tool.restore(tool, lake, out)
        cold &= drop_caches()
        m = run(cmd, tool.env, cwd=cwd)
        tool.record("full restore s", m.seconds)
        tool.record("restore peak RSS MB", m.peak_rss_mb)
        restored = out / str(lake).lstrip("/")
        same = subprocess.run(["diff", "-rq", str(lake), str(restored)], capture_output=True)
        if same.returncode != 0:
            print(f"{tool.name}: restore differs from the source!", file=sys.stderr)
        tool.record("restore identical", float(same.returncode == 0))
        shutil.rmtree(out)
    return {"lake_bytes": size, "lake_files": files, "cold_cache": cold}


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, {system}"


ROWS = [
    ("first backup MB/s", "first backup s", "throughput"),
    ("unchanged re-backup s", "unchanged re-backup s", "time"),
    ("day-1 backup s", "day-1 backup s", "time"),
    ("repo size after first backup MB", "repo size after first backup MB", "size"),
    ("repo size after day-1 backup MB", "repo size after day-1 backup MB", "size"),
    ("full restore MB/s", "full restore s", "throughput"),
    ("peak RSS, first backup MB", "first backup peak RSS MB", "size"),
    ("peak RSS, restore MB", "restore peak RSS MB", "size"),
]


def _ratio(row: dict[str, float], other: str) -> str:
    if "snapfs" not in row or not row.get(other):
        return "—"
    return f"{row['snapfs'] / row[other]:.2f}×"


def table(tools: list[Tool], info: dict[str, object]) -> tuple[str, dict[str, dict[str, float]]]:
    size_mb = float(info["lake_bytes"]) / 1e6  # type: ignore[arg-type]
    figures: dict[str, dict[str, float]] = {}
    for label, key, kind in ROWS:
        for tool in tools:
            values = tool.results.get(key)
            if not values:
                continue
            median = statistics.median(values)
            figures.setdefault(label, {})[tool.name] = (
                size_mb / median if kind == "throughput" else median
            )
    names = [t.name for t in tools]
    ratios = [n for n in ("restic", "borg") if n in names and "snapfs" in names]
    head = ["what", *names, *[f"snapfs/{n}" for n in ratios]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in figures.items():
        cells = [f"{row[n]:.2f}" if n in row else "—" for n in names]
        cells += [_ratio(row, n) for n in ratios]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines), figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1000, help="lake size in MB")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a few MB, one run: a smoke test")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, default=Path("bench-results/latest.json"))
    parser.add_argument("--tools", default="snapfs,restic,borg")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.runs = 8, 1
    work = Path(tempfile.mkdtemp(prefix="snapfs-bench-", dir=args.workdir or "/var/tmp"))
    try:
        tools = make_tools(work, args.tools.split(","))
        info: dict[str, object] = {}
        for _ in range(args.runs):
            info = one_run(tools, work, args.scale)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text, figures = table(tools, info)
    cache = "cold (caches dropped before each step)" if info["cold_cache"] else "warm"
    header = (
        f"Lake: {int(info['lake_bytes']) / 1e6:.0f} MB in {info['lake_files']} files; "  # type: ignore[call-overload]
        f"median of {args.runs} run(s); page cache {cache}.\nMachine: {machine()}.\n"
        f"Tools: {'; '.join(t.version for t in tools)}.\n"
        "Throughput rows: higher is better; time, size and RSS rows: lower is better.\n"
    )
    print(header)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    versions = {t.name: t.version for t in tools}
    result = {"info": info, "machine": machine(), "figures": figures, "versions": versions}
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
