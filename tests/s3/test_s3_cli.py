"""The CLI on S3 when things go wrong: a flaky network, a server that dies mid-backup, wrong
credentials, a missing bucket, an endpoint nobody answers. Each failure is one line on
stderr with a documented exit code; each success is byte-identical."""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Cli
from tests.helpers import assert_same_tree
from tests.s3.faultproxy import FaultPlan, FaultProxy
from tests.s3.seaweed import BUCKET, SeaweedFS

MB = 1024 * 1024
# The flaky-network backup; SNAPFS_TEST_S3_MB makes it smaller on slow machines.
FLAKY_MB = int(os.environ.get("SNAPFS_TEST_S3_MB", "200"))


def _one_line(stderr: bytes) -> str:
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def _cli(location: str, env: dict[str, str]) -> Cli:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPFS_", "AWS_"))}
    return Cli(location, {**base, **env, "SNAPFS_PASSWORD": PASSWORD})


def _new_location() -> str:
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/repo"


def make_lake(root: Path, megabytes: int, seed: int = 0) -> None:
    """Half random bytes (incompressible, never deduplicated), half CSV-like text."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(max(1, megabytes // 10)):
        if i % 2 == 0:
            data = os.urandom(10 * MB)
        else:
            row = b",".join(str(rng.randrange(10**9)).encode() for _ in range(8)) + b"\n"
            lines = [row.replace(b"1", str(n % 10).encode()) for n in range(10 * MB // len(row))]
            data = b"".join(lines)
        (root / f"part-{seed}-{i:03}.bin").write_bytes(data)


@pytest.mark.slow
def test_backup_check_restore_with_one_request_in_ten_failing(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    src = tmp_path / "lake"
    make_lake(src, FLAKY_MB)
    plan = FaultPlan(rate=0.10, delay=0.5, seed=3)
    with FaultProxy(seaweedfs.s3_port, plan) as proxy:
        cli = _cli(_new_location(), seaweedfs.env(proxy.url))
        cli.run("init", check=True)
        cli.run("backup", str(src), check=True)
        checked = cli.run("check", "--read-data")
        assert checked.returncode == 0, checked.stderr
        out = tmp_path / "out"
        cli.run("restore", "latest", "--target", str(out), "--verify", check=True)
    assert_same_tree(src, out / str(src).lstrip("/"))
    faults = sum(proxy.counts[k] for k in ("500", "503", "reset", "delay"))
    assert faults > 0.05 * proxy.counts["requests"], proxy.counts


def test_server_killed_mid_backup_then_restarted(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "weed")
    server.start()
    try:
        location = _new_location()
        cli = _cli(location, {**server.env(), "AWS_MAX_ATTEMPTS": "3"})
        cli.run("init", check=True)
        src = tmp_path / "lake"
        make_lake(src, 20, seed=1)
        cli.run("backup", str(src), check=True)
        make_lake(src, 240, seed=2)
        before = _packs(server, location)
        backup = cli.popen("backup", str(src))
        while _packs(server, location) < before + 2:  # kill it once it is well under way
            assert backup.poll() is None, "the backup finished before the server was killed"
            time.sleep(0.05)
        server.kill()
        _, stderr = backup.communicate(timeout=120)
        assert backup.returncode == 1
        line = _one_line(stderr)
        assert line.startswith("snapfs: ") and "S3" in line and "3 attempts" in line, line

        server.start()
        assert json.loads(cli.run("snapshots", "--json", check=True).stdout)[0]["id"]
        checked = cli.run("check", "--read-data")
        assert checked.returncode == 0, checked.stderr
        cli.run("backup", str(src), check=True)
        out = tmp_path / "out"
        cli.run("restore", "latest", "--target", str(out), check=True)
        assert_same_tree(src, out / str(src).lstrip("/"))
    finally:
        server.stop()


def _packs(server: SeaweedFS, location: str) -> int:
    prefix = location.removeprefix(f"s3://{BUCKET}/") + "/data/"
    listing = server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return int(listing.get("KeyCount", 0))


@pytest.fixture
def s3_cli(seaweedfs: SeaweedFS, tmp_path: Path) -> Cli:
    cli = _cli(_new_location(), seaweedfs.env())
    cli.run("init", check=True)
    return cli


def test_wrong_secret_key_exits_1(s3_cli: Cli) -> None:
    result = s3_cli.run("snapshots", env={"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert result.returncode == 1
    assert _one_line(result.stderr).startswith(
        f"snapfs: S3 refused access to bucket '{BUCKET}' at "
    )
    assert "SignatureDoesNotMatch" in result.stderr.decode()


def test_unknown_access_key_exits_1(s3_cli: Cli) -> None:
    result = s3_cli.run("backup", "/etc/hostname", env={"AWS_ACCESS_KEY_ID": "nobody"})
    assert result.returncode == 1
    assert "(InvalidAccessKeyId)" in _one_line(result.stderr)


def test_no_credentials_exits_1(s3_cli: Cli) -> None:
    env = {k: v for k, v in s3_cli.env.items() if not k.startswith("AWS_ACCESS")}
    env = {k: v for k, v in env.items() if k != "AWS_SECRET_ACCESS_KEY"}
    s3_cli.env = {**env, "HOME": "/nonexistent"}
    result = s3_cli.run("snapshots")
    assert result.returncode == 1
    assert _one_line(result.stderr).startswith("snapfs: no S3 credentials")


def test_missing_bucket_exits_10(seaweedfs: SeaweedFS) -> None:
    cli = _cli("s3://snapfs-no-such-bucket/repo", seaweedfs.env())
    result = cli.run("snapshots")
    assert result.returncode == 10
    assert _one_line(result.stderr) == (
        "snapfs: no repository at s3://snapfs-no-such-bucket/repo: bucket "
        f"'snapfs-no-such-bucket' does not exist at {seaweedfs.endpoint}"
    )


def test_missing_prefix_exits_10(seaweedfs: SeaweedFS) -> None:
    location = _new_location()
    result = _cli(location, seaweedfs.env()).run("snapshots")
    assert result.returncode == 10
    assert _one_line(result.stderr) == f"snapfs: no repository at {location}"


def test_unreachable_endpoint_exits_1(seaweedfs: SeaweedFS) -> None:
    cli = _cli(_new_location(), {**seaweedfs.env("http://127.0.0.1:9"), "AWS_MAX_ATTEMPTS": "2"})
    result = cli.run("snapshots")
    assert result.returncode == 1
    assert _one_line(result.stderr) == (
        "snapfs: cannot reach S3 endpoint http://127.0.0.1:9: connection refused "
        "(gave up after 2 attempts)"
    )


def test_s3_endpoint_option_beats_the_environment(seaweedfs: SeaweedFS) -> None:
    cli = _cli(_new_location(), seaweedfs.env("http://127.0.0.1:9"))
    cli.run("--s3-endpoint", seaweedfs.endpoint, "init", check=True)
    assert cli.run("--s3-endpoint", seaweedfs.endpoint, "snapshots", check=True).returncode == 0


def test_init_creates_a_missing_bucket(seaweedfs: SeaweedFS) -> None:
    bucket = f"snapfs-init-{uuid.uuid4().hex[:8]}"
    cli = _cli(f"s3://{bucket}/lake", seaweedfs.env())
    created = cli.run("init", check=True)
    assert f"at s3://{bucket}/lake" in created.stdout.decode()
    again = cli.run("init")
    assert again.returncode == 1
    assert _one_line(again.stderr) == "snapfs: a repository already exists there"
