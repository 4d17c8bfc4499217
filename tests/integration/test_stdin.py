"""``snapfs backup --stdin`` and ``--stdin-from-command``: a stream stored as one file at the
snapshot's root, given back byte for byte by ``dump``; a failing command saves nothing and
says why; a stream far larger than the memory bound streams."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
from pathlib import Path

from snapfs.backup import backup
from snapfs.repository import Repository
from snapfs.sources.stream import stdin_source
from snapfs.walk import resolve
from tests.conftest import SNAPFS, Cli

MEMORY_BOUND_MB = 200


def snapshots(cli: Cli) -> list[dict[str, object]]:
    out = cli.run("snapshots", "--json", check=True).stdout
    result: list[dict[str, object]] = json.loads(out)
    return result


def summary(result: subprocess.CompletedProcess[bytes]) -> dict[str, int]:
    """The --json summary's counts."""
    last = json.loads(result.stdout.splitlines()[-1])
    assert last.pop("message_type") == "summary"
    last.pop("snapshot_id")
    counts: dict[str, int] = last
    return counts


def test_stdin_round_trip(cli: Cli) -> None:
    data = random.Random(1).randbytes(3_000_000)
    cli.run("backup", "--stdin", "--stdin-filename", "db.sql", input=data, check=True)
    assert cli.run("dump", "latest", "/db.sql", check=True).stdout == data
    [snap] = snapshots(cli)
    assert (snap["source"], snap["paths"]) == ("stdin", ["/db.sql"])
    listing = cli.run("ls", "latest", check=True).stdout.decode().splitlines()
    assert listing == ["/db.sql"]


def test_default_name_and_an_empty_stream(cli: Cli) -> None:
    cli.run("backup", "--stdin", input=b"", check=True)
    assert cli.run("dump", "latest", "/stdin", check=True).stdout == b""


def test_command_output_with_its_environment(cli: Cli) -> None:
    """The command gets our environment (its secrets go there, not into an argv)."""
    script = 'printf "%s\\n" "$DUMP_SECRET"; head -c 2000000 /dev/zero'
    result = cli.run(
        "backup", "--json", "--stdin-from-command", "--", "sh", "-c", script,
        env={"DUMP_SECRET": "s3cr3t"}, check=True,
    )  # fmt: skip
    assert summary(result)["bytes"] == 7 + 2_000_000
    assert cli.run("dump", "latest", "/stdin", check=True).stdout == b"s3cr3t\n" + bytes(2_000_000)


def test_failing_command_saves_nothing_and_says_why(cli: Cli) -> None:
    lines = "; ".join(f"echo line {i} >&2" for i in range(1, 13))
    script = f"head -c 3000000 /dev/urandom; {lines}; exit 3"
    result = cli.run("backup", "--stdin-from-command", "--", "sh", "-c", script)
    assert result.returncode == 1
    tail = "".join(f"line {i}\n" for i in range(3, 13))  # the last ten
    assert result.stderr.decode() == "snapfs: sh exited with status 3: no snapshot saved\n" + tail
    assert snapshots(cli) == []


def test_killed_command_saves_nothing(cli: Cli) -> None:
    result = cli.run("backup", "--stdin-from-command", "--", "sh", "-c", "echo x; kill -9 $$")
    assert (result.returncode, result.stderr) == (
        1, b"snapfs: sh was killed by SIGKILL: no snapshot saved\n",
    )  # fmt: skip
    assert snapshots(cli) == []


def test_command_that_cannot_run(cli: Cli) -> None:
    result = cli.run("backup", "--stdin-from-command", "--", "/nonexistent/pg_dump")
    assert (result.returncode, result.stderr) == (
        1, b"snapfs: cannot run pg_dump: no such file or directory\n",
    )  # fmt: skip
    assert snapshots(cli) == []


def test_usage_errors(cli: Cli, tmp_path: Path) -> None:
    cases = {
        ("backup", "--stdin", str(tmp_path)): "--stdin backs up standard input: give no PATHS",
        ("backup", "--stdin-from-command"): "--stdin-from-command needs a command: -- CMD ARG...",
        ("backup", "--stdin", "--stdin-from-command", "--", "true"):
            "--stdin and --stdin-from-command exclude each other",
        ("backup", "--stdin-filename", "x", str(tmp_path)):
            "--stdin-filename is for --stdin and --stdin-from-command",
        ("backup", "--stdin", "--stdin-filename", "a/b"):
            "bad --stdin-filename 'a/b': one file name (1-255 bytes, no '/', not . or ..)",
        ("backup", "--stdin", "--exclude", "*.tmp"): "--exclude is for paths, not a stream",
        ("backup",): "missing PATHS (or --stdin, --stdin-from-command)",
    }  # fmt: skip
    for args, message in cases.items():
        result = cli.run(*args, input=b"")
        assert result.returncode == 2, args
        assert result.stderr.decode().splitlines()[-1] == f"Error: {message}", args
    assert snapshots(cli) == []


def test_nightly_dumps_deduplicate(cli: Cli, tmp_path: Path) -> None:
    """The chunker sees one long stream: a dump with a few rows changed adds little."""
    rng = random.Random(2)
    rows = [f"{i}\t{rng.randbytes(40).hex()}\n".encode() for i in range(400_000)]
    first = b"".join(rows)
    for i in rng.sample(range(len(rows)), 10):
        rows[i] = f"{i}\tchanged\n".encode()
    second = b"".join(rows)
    cli.run("backup", "--stdin", input=first, check=True)
    again = summary(cli.run("backup", "--json", "--stdin", input=second, check=True))
    assert again["bytes"] == len(second)
    assert again["bytes_added"] < len(second) * 0.1  # ~2 chunks of ~80 KiB a row changed
    assert cli.run("dump", "latest", "/stdin", check=True).stdout == second


def test_a_stream_larger_than_memory_streams(cli: Cli, tmp_path: Path) -> None:
    """1 GiB of random bytes from a command, peak RSS of the backup under the bound (GNU
    time measures it, the command's own pages apart)."""
    rss = tmp_path / "rss"
    generator = ["head", "-c", "1G", "/dev/urandom"]
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss), *SNAPFS, "-r", str(cli.repo),
           "backup", "--json", "--stdin-from-command", "--", *generator]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, env=cli.env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert summary(result)["bytes"] == 1 << 30
    peak_mb = int(rss.read_text().split()[-1]) / 1024
    assert peak_mb <= MEMORY_BOUND_MB, f"peak RSS {peak_mb:.0f} MB"


def test_library_backup_of_a_stream(repo: Repository) -> None:
    """The library's backup takes a stream source as any other: a pipe here."""
    read, write = os.pipe()
    data = random.Random(3).randbytes(1_000_000)

    def feed() -> None:
        with open(write, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with stdin_source("x.bin", fd=read) as source:
            snap = backup(repo, [], source=source)
    finally:
        writer.join()
        os.close(read)
    assert (snap.source, snap.paths, snap.summary.files, snap.summary.bytes) == (
        "stdin", ["/x.bin"], 1, len(data),
    )  # fmt: skip
    node = resolve(repo, bytes.fromhex(snap.tree), "/x.bin")
    assert node is not None
    assert b"".join(repo.read_blob(b) for b in node.content) == data
    assert (node.mode, node.uid, node.gid) == (0o600, os.getuid(), os.getgid())
