"""A stream from standard input against the same bytes as a file.

    ./scripts/bench --stdin              # 2 GB
    ./scripts/bench --stdin --scale 200  # MB

The bytes: blocks of 512 KiB random and 512 KiB hex text (compressible by half), so zstd,
the AEAD and the chunker all work as on a dump, and nothing deduplicates. Each run backs them
up into a fresh repository twice: ``snapfs backup FILE`` and ``cat FILE | snapfs backup
--stdin``, alternating which goes first; GNU time measures snapfs alone (not cat): wall time,
CPU time (user + sys) and peak RSS. Figures are medians of --runs; the page cache is warm
(the file is read once before).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench import PASSWORD

_BLOCK = 512 * 1024


def make_stream(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        written = 0
        while written < size:
            block = os.urandom(_BLOCK) + os.urandom(_BLOCK // 2).hex().encode()
            f.write(block[: size - written])
            written += len(block)


def timed(
    cmd: list[str], env: dict[str, str], stdin: int | None = None
) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of ``cmd``, by GNU time."""
    with tempfile.NamedTemporaryFile("r") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S %M", "-o", out.name, *cmd], env=env, stdin=stdin,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:5])}… exited {proc.returncode}: {proc.stderr!r}")
        wall, user, sys_, rss = out.read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss) / 1024


def one(kind: str, data: Path, work: Path, env: dict[str, str]) -> tuple[float, float, float]:
    repo = work / f"repo-{kind}"
    shutil.rmtree(repo, ignore_errors=True)
    subprocess.run(["snapfs", "-q", "-r", str(repo), "init"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    if kind == "file":
        return timed(["snapfs", "-q", "-r", str(repo), "backup", str(data)], env)
    cat = subprocess.Popen(["cat", str(data)], stdout=subprocess.PIPE)
    assert cat.stdout is not None
    try:
        backup = ["snapfs", "-q", "-r", str(repo), "backup", "--stdin"]
        return timed(backup, env, cat.stdout.fileno())
    finally:
        cat.stdout.close()
        if cat.wait() != 0:
            raise RuntimeError("cat failed")


def bench(scale_mb: float, runs: int, workdir: Path | None) -> None:
    size = int(scale_mb * 1e6)
    work = Path(tempfile.mkdtemp(prefix="snapfs-bench-stdin-", dir=workdir or "/var/tmp"))
    env = {**os.environ, "SNAPFS_PASSWORD": PASSWORD}
    rows: dict[str, list[tuple[float, float, float]]] = {"file": [], "stdin": []}
    try:
        data = work / "stream.bin"
        make_stream(data, size)
        subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)  # warm
        for i in range(runs):
            for kind in ("file", "stdin") if i % 2 == 0 else ("stdin", "file"):
                rows[kind].append(one(kind, data, work, env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in rows.items()}
    print(f"Stream: {size / 1e6:.0f} MB (half random, half hex text); median of {runs} run(s); "
          "page cache warm; snapfs measured alone (cat apart).")  # fmt: skip
    print("| backup | seconds | MB/s | CPU s | peak RSS MB |\n| --- | --- | --- | --- | --- |")
    for kind, (wall, cpu, rss) in med.items():
        label = "backup FILE" if kind == "file" else "cat FILE, piped to backup --stdin"
        print(f"| {label} | {wall:.2f} | {size / 1e6 / wall:.0f} | {cpu:.2f} | {rss:.0f} |")
    ratio = med["file"][0] / med["stdin"][0]
    cpu_ratio = med["file"][1] / med["stdin"][1]
    print(f"\nstdin / file throughput: {ratio:.2f}x by wall time, {cpu_ratio:.2f}x by CPU time "
          "(target >= 0.9x; on a shared machine wall time also counts the wait for cat's "
          f"turn); peak RSS of --stdin: {med['stdin'][2]:.0f} MB (target <= 200 MB)")  # fmt: skip
