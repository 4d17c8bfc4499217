"""scripts/bench --quick runs end to end (a smoke test: no figures are asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
S3_SOURCE_ROWS = (
    "| rclone copy to local disk |",
    "| restic backup through rclone mount",  # or mount2, where mount fails xattr calls
    "| snapfs first backup |",
    "| snapfs restore to S3 (another bucket) |",
    "| rclone copy of the local lake to S3 |",
    "| snapfs re-backup, 2 objects changed |",
)


def _bench(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``scripts/bench.py ARGS... --workdir TMP``, which must end with status 0."""
    cmd = [sys.executable, str(ROOT / "scripts/bench.py"), *args, "--workdir", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


def test_quick_bench_produces_a_table_and_json(tmp_path: Path) -> None:
    if shutil.which("restic") is None:  # a failure, not a skip: CI would compare nothing
        pytest.fail("restic is not installed (./scripts/test installs it)")
    out = tmp_path / "bench.json"
    result = _bench(tmp_path, "--quick", "--tools", "snapfs,restic", "--json", str(out))
    assert "| first backup MB/s |" in result.stdout
    figures = json.loads(out.read_text())["figures"]
    assert set(figures["first backup MB/s"]) == {"snapfs", "restic"}
    assert set(figures["mount: cold sequential read MB/s"]) == {"snapfs", "restic"}
    assert "Bare pyfuse3 file served from memory" in result.stdout


def test_quick_s3_source_bench_prints_every_row(tmp_path: Path) -> None:
    for tool in ("restic", "rclone"):  # a failure, not a skip: the rows would be left out
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (./scripts/test installs it)")
    result = _bench(tmp_path, "--s3-source", "--quick", timeout=120)
    for row in S3_SOURCE_ROWS:
        assert row in result.stdout
    assert "not run:" not in result.stdout  # the machine of ./scripts/test has FUSE
    assert "restic through rclone mount throughput: " in result.stdout
    assert "restore to S3 / rclone upload throughput: " in result.stdout
    assert "re-backup time / first backup time: " in result.stdout
    assert "differ from the source" not in result.stderr


def test_quick_stdin_bench_produces_its_table(tmp_path: Path) -> None:
    result = _bench(tmp_path, "--stdin", "--quick")
    assert "| backup FILE |" in result.stdout
    assert "| cat FILE, piped to backup --stdin |" in result.stdout
    assert "stdin / file throughput:" in result.stdout


def test_quick_find_bench_finds_every_snapshot_s_match(tmp_path: Path) -> None:
    result = _bench(tmp_path, "--find", "--quick")
    assert "10 snapshots of 10,000 files in directories of 100; 138 distinct trees" in result.stdout
    # Ten snapshots: each a heading, a column header, its matches and a blank line.
    assert "| one name (1 match a snapshot) |" in result.stdout
    assert (
        result.stdout.split("| one name (1 match a snapshot) |")[1].split("\n")[0].endswith(" 40 |")
    )
    assert " | 1,030 |" in result.stdout
