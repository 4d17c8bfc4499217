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
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.s3, for SeaweedFS
import lakegen

PASSWORD = "bench-password-not-secret"


@dataclass
class Measure:
    seconds: float
    peak_rss_mb: float


def run(
    cmd: list[str], env: dict[str, str], cwd: Path | None = None, out: Path | None = None
) -> Measure:
    """Run ``cmd``; its wall time and peak RSS. GNU time measures the RSS: a child forked
    from this process would count this process's own pages. Its output goes to ``out``, else
    nowhere. Raises on failure."""
    with (
        tempfile.NamedTemporaryFile("r") as rss,
        open(out or os.devnull, "wb") as stdout,
    ):
        started = time.perf_counter()
        timed = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd]
        proc = subprocess.run(timed, env=env, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE)
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
    prune: Callable[[Tool, int], list[list[str]]]
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
            # Two runs: the second deletes what the first condemned (two-phase prune).
            prune=lambda t, keep: [["snapfs", "-q", "-r", str(t.repo), "forget", "--keep-last",
                                    str(keep), "--prune"], ["snapfs", "-q", "-r", str(t.repo),
                                    "prune"]],
        ),
        "restic": Tool(
            "restic", work / "repo-restic",
            {**base, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(work / "cache-restic")},
            init=lambda t: ["restic", "-q", "-r", str(t.repo), "init"],
            backup=lambda t, src, tag: ["restic", "-q", "-r", str(t.repo), "backup", str(src)],
            restore=lambda t, src, out: (["restic", "-q", "-r", str(t.repo), "restore", "latest",
                                          "--target", str(out)], None),
            prune=lambda t, keep: [["restic", "-q", "-r", str(t.repo), "forget", "--keep-last",
                                    str(keep), "--prune"]],
        ),
        "borg": Tool(
            "borg", work / "repo-borg",
            {**base, "BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(work / "borg-base"),
             "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"},
            init=lambda t: ["borg", "init", "--encryption=repokey-blake2", str(t.repo)],
            backup=lambda t, src, tag: ["borg", "create", "--compression", "zstd,3",
                                        f"{t.repo}::{tag}", str(src)],
            restore=lambda t, src, out: (["borg", "extract", f"{t.repo}::day1"], out),
            prune=lambda t, keep: [["borg", "prune", "--keep-last", str(keep), str(t.repo)],
                                   ["borg", "compact", str(t.repo)]],
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


def prune_run(tools: list[Tool], lake: Path, snapshots: int) -> None:
    """Grow each repository to ``snapshots`` snapshots, one evolved day each, then forget all
    but the last 10 and prune: the time, peak RSS and size freed of that last step."""
    for day in range(2, snapshots - 1):  # one_run made 3 snapshots
        lakegen.evolve_day(lake, day)
        for tool in tools:
            run(tool.backup(tool, lake, f"day{day}"), tool.env)
    for tool in tools:
        before = du(tool.repo)
        seconds, peak = 0.0, 0.0
        for cmd in tool.prune(tool, 10):
            m = run(cmd, tool.env)
            seconds, peak = seconds + m.seconds, max(peak, m.peak_rss_mb)
        tool.record("prune s", seconds)
        tool.record("prune peak RSS MB", peak)
        tool.record("prune freed MB", (before - du(tool.repo)) / 1e6)


def init_repos(tools: list[Tool]) -> None:
    for tool in tools:
        shutil.rmtree(tool.repo, ignore_errors=True)
        run(tool.init(tool), tool.env)


def timed_backups(tools: list[Tool], src: Path, step: str, tag: str) -> bool:
    """Each tool backs ``src`` up, caches dropped first: "``step`` s" and "``step`` peak RSS
    MB". Whether the caches could be dropped."""
    cold = True
    for tool in tools:
        cold &= drop_caches()
        m = run(tool.backup(tool, src, tag), tool.env)
        tool.record(f"{step} s", m.seconds)
        tool.record(f"{step} peak RSS MB", m.peak_rss_mb)
    return cold


def timed_restores(tools: list[Tool], work: Path, src: Path) -> bool:
    """Each tool restores its latest snapshot of ``src`` into an empty directory, caches
    dropped first ("full restore s", "restore peak RSS MB"); the result is compared with
    ``src`` ("restore identical") and removed. Whether the caches could be dropped."""
    cold = True
    for tool in tools:
        out = work / f"restore-{tool.name}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        cmd, cwd = tool.restore(tool, src, out)
        cold &= drop_caches()
        m = run(cmd, tool.env, cwd=cwd)
        tool.record("full restore s", m.seconds)
        tool.record("restore peak RSS MB", m.peak_rss_mb)
        restored = out / str(src).lstrip("/")
        same = subprocess.run(["diff", "-rq", str(src), str(restored)], capture_output=True)
        if same.returncode != 0:
            print(f"{tool.name}: restore differs from the source!", file=sys.stderr)
        tool.record("restore identical", float(same.returncode == 0))
        shutil.rmtree(out)
    return cold


def one_run(tools: list[Tool], work: Path, scale: float, with_s3: bool) -> dict[str, object]:
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    lakegen.generate(lake, scale)
    size = du(lake)
    files = sum(1 for p in lake.rglob("*") if p.is_file())
    init_repos(tools)
    cold = True
    for step, tag in (
        ("first backup", "day0"),
        ("unchanged re-backup", "day0b"),
        ("day-1 backup", "day1"),
    ):
        if tag == "day1":
            lakegen.evolve_day(lake, 1)
        cold &= timed_backups(tools, lake, step, tag)
        for tool in tools:
            tool.record(f"repo size after {step} MB", du(tool.repo) / 1e6)
    cold &= timed_restores(tools, work, lake)
    for tool in tools:
        cold &= mount_reads(tool, work, lake)
    snapfs = [t for t in tools if t.name == "snapfs"]
    s3_info = s3_run(snapfs[0], work, lake, size) if snapfs and with_s3 else {}
    info: dict[str, object] = {"lake_bytes": size, "lake_files": files, "cold_cache": cold}
    info.update(s3_info)
    info["bare pyfuse3 MB/s"] = memfs_read(work, min(int(size / 1e6), 1024))
    return info


# -- reads through each tool's FUSE mount ------------------------------------------------
def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)


def _peak_rss_of_mount(mnt: Path) -> float:
    """VmHWM of the process serving ``mnt`` (found by its command line), in MB."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if str(mnt).encode() in cmdline and b"umount" not in cmdline:
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue
    return 0.0


@contextmanager
def mounted(tool: Tool, mnt: Path, lake: Path) -> Iterator[Path]:
    """The lake's directory inside a fresh mount of the tool's latest snapshot."""
    mnt.mkdir(exist_ok=True)
    rel = lake.relative_to("/")
    proc = None
    if tool.name == "snapfs":
        run(["snapfs", "-q", "-r", str(tool.repo), "mount", str(mnt), "latest"], tool.env)
        root, stop = mnt / rel, ["snapfs", "umount", str(mnt)]
    elif tool.name == "restic":
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        cmd = ["restic", "-q", "-r", str(tool.repo), "mount", str(mnt)]
        proc = subprocess.Popen(cmd, env=tool.env, **quiet)  # type: ignore[call-overload]
        _wait_for(mnt / "snapshots" / "latest")
        root, stop = mnt / "snapshots" / "latest" / rel, ["fusermount3", "-u", str(mnt)]
    else:
        run(["borg", "mount", f"{tool.repo}::day1", str(mnt)], tool.env)
        root, stop = mnt / rel, ["borg", "umount", str(mnt)]
    try:
        _wait_for(root)
        yield root
    finally:
        tool.record("mount peak RSS MB", _peak_rss_of_mount(mnt))
        subprocess.run(stop, env=tool.env, capture_output=True)
        if proc is not None:
            proc.wait(timeout=60)


def _read_file(path: Path) -> int:
    buf = bytearray(1 << 20)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return total


def _read_files(files: list[Path], readers: int) -> float:
    """MB/s reading every file, with ``readers`` threads taking files in turn."""
    started = time.perf_counter()
    with ThreadPoolExecutor(readers) as pool:
        total = sum(pool.map(_read_file, files))
    return total / 1e6 / (time.perf_counter() - started)


def _random_reads_ms(path: Path, count: int = 200) -> float:
    """Median latency of 4 KiB reads at random offsets, as a query engine seeks in Parquet."""
    rng = random.Random(42)
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            os.pread(fd, 4096, rng.randrange(max(size - 4096, 1)))
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
    return statistics.median(times)


def mount_reads(tool: Tool, work: Path, lake: Path) -> bool:
    """Cold sequential read of every file, 4 parallel readers, random 4 KiB reads."""
    cold = True
    files = sorted(p.relative_to(lake) for p in lake.rglob("*") if p.is_file())
    parquet = max(lake.rglob("*.parquet"), key=lambda p: p.stat().st_size).relative_to(lake)
    mnt = work / f"mnt-{tool.name}"
    for key, readers in (("mount sequential MB/s", 1), ("mount 4 readers MB/s", 4)):
        with mounted(tool, mnt, lake) as root:
            cold &= drop_caches()
            tool.record(key, _read_files([root / f for f in files], readers))
    with mounted(tool, mnt, lake) as root:
        cold &= drop_caches()
        tool.record("mount random 4 KiB read ms", _random_reads_ms(root / parquet))
    return cold


def s3_run(tool: Tool, work: Path, lake: Path, size: int) -> dict[str, object]:
    """snapfs against SeaweedFS on loopback (the test suite's server): backup and restore
    times, and the S3 requests per GB backed up (counted by a pass-through proxy, in a
    second run so that the proxy does not slow the timed one)."""
    from tests.s3.faultproxy import FaultProxy
    from tests.s3.seaweed import BUCKET, SeaweedFS, weed_binary

    if weed_binary() is None:
        return {}
    shutil.rmtree(work / "seaweedfs", ignore_errors=True)  # each run starts from empty
    server = SeaweedFS(work / "seaweedfs")
    server.start()
    try:
        env = {**tool.env, **server.env()}
        repo = f"s3://{BUCKET}/bench"
        run(["snapfs", "-q", "-r", repo, "init"], env)
        drop_caches()
        m = run(["snapfs", "-q", "-r", repo, "backup", str(lake)], env)
        tool.record("S3 first backup s", m.seconds)
        tool.record("S3 backup peak RSS MB", m.peak_rss_mb)
        out = work / "restore-s3"
        out.mkdir()
        drop_caches()
        m = run(["snapfs", "-q", "-r", repo, "restore", "latest", "--target", str(out)], env)
        tool.record("S3 full restore s", m.seconds)
        tool.record("S3 restore peak RSS MB", m.peak_rss_mb)
        shutil.rmtree(out)
        with FaultProxy(server.s3_port) as proxy:
            counted = {**tool.env, **server.env(proxy.url)}
            run(["snapfs", "-q", "-r", f"s3://{BUCKET}/count", "init"], counted)
            before = proxy.counts["requests"]
            run(["snapfs", "-q", "-r", f"s3://{BUCKET}/count", "backup", str(lake)], counted)
            requests = proxy.counts["requests"] - before
        return {"S3 requests per GB backed up": requests / (size / 1e9)}
    finally:
        server.stop()


def memfs_read(work: Path, size_mb: int) -> float:
    """MB/s of one file served from memory by a bare pyfuse3 filesystem: the ceiling."""
    mnt = work / "mnt-memfs"
    mnt.mkdir(exist_ok=True)
    memfs = Path(__file__).resolve().parent / "memfs.py"
    proc = subprocess.Popen([sys.executable, str(memfs), str(mnt), str(max(size_mb, 64))])
    try:
        _wait_for(mnt / "data")
        drop_caches()
        return _read_files([mnt / "data"], 1)
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        proc.wait(timeout=60)


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
    ("mount: cold sequential read MB/s", "mount sequential MB/s", "rate"),
    ("mount: 4 parallel readers MB/s", "mount 4 readers MB/s", "rate"),
    ("mount: random 4 KiB read ms (median)", "mount random 4 KiB read ms", "time"),
    ("peak RSS, mount MB", "mount peak RSS MB", "size"),
    ("S3 (SeaweedFS, loopback): first backup MB/s", "S3 first backup s", "throughput"),
    ("S3 (SeaweedFS, loopback): full restore MB/s", "S3 full restore s", "throughput"),
    ("peak RSS, S3 backup MB", "S3 backup peak RSS MB", "size"),
    ("peak RSS, S3 restore MB", "S3 restore peak RSS MB", "size"),
    ("forget --keep-last 10 + prune s", "prune s", "time"),
    ("peak RSS, prune MB", "prune peak RSS MB", "size"),
    ("prune freed MB", "prune freed MB", "size"),
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
    parser.add_argument("--files", type=int, help="N small files instead of the lake")
    parser.add_argument("--no-s3", action="store_true", help="leave out the SeaweedFS rows")
    parser.add_argument(
        "--prune-snapshots",
        type=int,
        default=50,
        help="grow to N snapshots, then time forget --keep-last 10 + prune",
    )
    parser.add_argument("--index-blobs", type=int, help="only the index rows (bench_index.py)")
    parser.add_argument(
        "--s3-source",
        action="store_true",
        help="only the bucket-as-source rows",
    )
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="only the stream rows: --scale MB (default 2000) from stdin vs as a file",
    )
    parser.add_argument(
        "--find",
        action="store_true",
        help="only the find rows: --snapshots of --files (default 1,000 of 1,000,000)",
    )
    parser.add_argument("--snapshots", type=int, default=1000, help="with --find")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    if args.stdin:
        import bench_stdin  # a stream against a file: a table of its own

        scale = 8 if args.quick else (args.scale if "--scale" in sys.argv else 2000)
        bench_stdin.bench(scale, args.runs, args.workdir)
        return
    if args.find:
        import bench_find  # find across shared trees: a table of its own

        files = 10_000 if args.quick else (args.files or 1_000_000)
        bench_find.bench(files, 10 if args.quick else args.snapshots, args.workdir)
        return
    if args.s3_source:
        import bench_s3_source  # a bucket backed up: a table of its own

        bench_s3_source.bench(8 if args.quick else args.scale, args.workdir)
        return
    if args.index_blobs:
        import bench_index  # the index at scale: a table of its own

        bench_index.bench(args.index_blobs, args.workdir)
        return
    if args.files:
        import bench_files  # many small files: a table of its own

        bench_files.bench(args.files, args.tools, args.workdir)
        return
    if args.quick:
        args.scale, args.runs, args.prune_snapshots = 8, 1, 4
    work = Path(tempfile.mkdtemp(prefix="snapfs-bench-", dir=args.workdir or "/var/tmp"))
    try:
        tools = make_tools(work, args.tools.split(","))
        info: dict[str, object] = {}
        for _ in range(args.runs):
            info = one_run(tools, work, args.scale, not args.no_s3)
        if args.prune_snapshots:
            prune_run(tools, work / "lake", args.prune_snapshots)
            info["prune snapshots"] = args.prune_snapshots
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text, figures = table(tools, info)
    cache = "cold (caches dropped before each step)" if info["cold_cache"] else "warm"
    header = (
        f"Lake: {int(info['lake_bytes']) / 1e6:.0f} MB in {info['lake_files']} files; "  # type: ignore[call-overload]
        f"median of {args.runs} run(s); page cache {cache}.\nMachine: {machine()}.\n"
        f"Tools: {'; '.join(t.version for t in tools)}.\n"
        "Throughput rows: higher is better; time, size and RSS rows: lower is better.\n"
        "Bare pyfuse3 file served from memory (the ceiling of a Python FUSE mount here): "
        f"{info['bare pyfuse3 MB/s']:.0f} MB/s.\n"
    )
    if "S3 requests per GB backed up" in info:
        header += (
            "S3: SeaweedFS on loopback, sharing the 2 cores with snapfs; "
            f"{info['S3 requests per GB backed up']:.0f} requests per GB backed up.\n"
        )
    print(header)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    versions = {t.name: t.version for t in tools}
    result = {"info": info, "machine": machine(), "figures": figures, "versions": versions}
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
