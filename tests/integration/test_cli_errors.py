"""Bad input gets one line on stderr and a documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from snapfs.repository import Repository
from snapfs.store.local import LocalBackend
from snapfs.store.url import open_backend
from tests.conftest import BACKENDS, CHEAP_KDF, PASSWORD, SNAPFS, Cli
from tests.helpers import tmpfs


def _one_line(stderr: bytes) -> str:
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def test_wrong_password_exits_12(cli: Cli) -> None:
    result = cli.run("snapshots", env={"SNAPFS_PASSWORD": "nope"})
    assert result.returncode == 12
    assert _one_line(result.stderr) == "snapfs: wrong password or no key found for it"


def test_missing_repository_exits_10(cli: Cli, tmp_path: Path) -> None:
    cli.repo = tmp_path / "nowhere"
    result = cli.run("snapshots")
    assert result.returncode == 10
    assert _one_line(result.stderr) == f"snapfs: no repository at {tmp_path / 'nowhere'}"


def test_unknown_snapshot_exits_1(cli: Cli) -> None:
    result = cli.run("ls", "deadbeef")
    assert result.returncode == 1
    assert _one_line(result.stderr) == "snapfs: no snapshot matches 'deadbeef'"


def test_missing_source_path_exits_1(cli: Cli, tmp_path: Path) -> None:
    result = cli.run("backup", str(tmp_path / "absent"))
    assert result.returncode == 1
    assert _one_line(result.stderr) == f"snapfs: {tmp_path / 'absent'}: no such file or directory"


def _flip_a_byte_in_biggest_pack(location: str) -> str:
    """Damage the largest pack in place, through the store, so it works on S3 too."""
    backend = open_backend(location)
    biggest = max(backend.list("data/"), key=lambda info: info.size)
    data = bytearray(backend.get(biggest.key))
    data[len(data) // 3] ^= 0x01
    backend.put(biggest.key, data, exclusive=False)
    backend.close()
    return biggest.key.rpartition("/")[2]


@pytest.mark.parametrize("backend_kind", BACKENDS)
def test_flipped_byte_is_found_by_check_and_names_files(
    cli: Cli, lake_tree: Path, repo_location: str, tmp_path: Path
) -> None:
    cli.run("backup", str(lake_tree), check=True)
    assert cli.run("check", "--read-data").returncode == 0
    biggest = _flip_a_byte_in_biggest_pack(repo_location)

    assert cli.run("check").returncode == 0  # structure is intact; only the bytes are bad
    result = cli.run("check", "--read-data", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["damaged_packs"] == [biggest]
    assert any(f.endswith("/random.bin") for f in report["affected_files"])
    text = cli.run("check", "--read-data")
    assert f"pack {biggest[:16]}" in text.stderr.decode()
    assert "random.bin: data damaged" in text.stderr.decode()

    # Restore what is intact: each file with a damaged blob is one warning, and exit 3.
    restored = cli.run("restore", "latest", "--target", str(tmp_path / "out"))
    assert restored.returncode == 3
    lines = restored.stderr.decode().splitlines()
    assert lines and all(
        line.startswith("warning: ")
        and line.endswith(f"in pack {biggest[:16]} is damaged: not restored")
        for line in lines
    )
    assert any("/random.bin: blob " in line for line in lines)


@contextmanager
def _traversable_by_others(*paths: Path) -> Iterator[None]:
    """Let another user reach these paths (a checkout in a mode-700 temp dir, as CI makes);
    the modes are put back afterwards."""
    changed: list[tuple[Path, int]] = []
    for path in paths:
        for d in [path, *path.parents]:
            mode = d.stat().st_mode
            if d.is_dir() and not mode & stat.S_IXOTH:
                changed.append((d, mode))
                os.chmod(d, mode | stat.S_IXOTH)
    try:
        yield
    finally:
        for d, mode in reversed(changed):
            os.chmod(d, stat.S_IMODE(mode))


def test_unreadable_file_warns_and_exits_3(cli: Cli) -> None:
    """Run as nobody (root reads everything), in a directory nobody may enter."""
    base = Path(tempfile.mkdtemp(prefix="snapfs-nobody-", dir="/tmp"))
    checkout = Path(__file__).resolve().parents[2]
    with _traversable_by_others(checkout, Path(sys.prefix)):
        _unreadable_file_as_nobody(cli, base)


def _unreadable_file_as_nobody(cli: Cli, base: Path) -> None:
    try:
        os.chmod(base, 0o777)
        src, repo = base / "src", base / "repo"
        src.mkdir(mode=0o755)
        (src / "ok.txt").write_text("fine")
        (src / "secret.txt").write_text("no")
        os.chmod(src / "secret.txt", 0)
        Repository.init(LocalBackend(repo), PASSWORD, kdf=CHEAP_KDF).close()
        subprocess.run(["chown", "-R", "65534:65534", str(repo)], check=True)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        result = subprocess.run([*nobody, *SNAPFS, "-r", str(repo), "backup", str(src)],
                                capture_output=True, env={**cli.env, "HOME": str(base)},
                                timeout=120)  # fmt: skip
        assert result.returncode == 3, result.stderr
        assert f"warning: {src}/secret.txt: permission denied" in result.stderr.decode()
        cli.repo = repo
        listing = cli.run("ls", "latest", str(src), check=True).stdout.decode().split()
        assert listing == [f"{src}/ok.txt"]
    finally:
        shutil.rmtree(base)


def test_snapshots_json_lists_required_fields(cli: Cli, lake_tree: Path) -> None:
    cli.run("backup", str(lake_tree), "--tag", "nightly", "--host", "lakehost", check=True)
    snaps = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    assert len(snaps) == 1
    s = snaps[0]
    assert s["short_id"] == s["id"][:8]
    assert (s["host"], s["tags"], s["paths"]) == ("lakehost", ["nightly"], [str(lake_tree)])
    assert set(s["summary"]) >= {"files", "bytes", "bytes_added"}
    assert s["summary"]["files"] == 7  # regular files, the hardlink counted once more


def test_dump_writes_file_bytes(cli: Cli, lake_tree: Path) -> None:
    cli.run("backup", str(lake_tree), check=True)
    out = cli.run("dump", "latest", str(lake_tree / "random.bin"), check=True).stdout
    assert out == (lake_tree / "random.bin").read_bytes()


def test_diff_lists_changes(cli: Cli, lake_tree: Path) -> None:
    cli.run("backup", str(lake_tree), check=True)
    (lake_tree / "small.txt").write_text("changed\n")
    (lake_tree / "new.txt").write_text("new\n")
    os.unlink(lake_tree / "fifo")
    cli.run("backup", str(lake_tree), check=True)
    snaps = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    out = cli.run("diff", snaps[0]["id"][:8], "latest", check=True).stdout.decode().splitlines()
    assert f"M    {lake_tree}/small.txt" in out
    assert f"+    {lake_tree}/new.txt" in out
    assert f"-    {lake_tree}/fifo" in out


def test_repository_init_twice_fails(repo_path: Path) -> None:
    from snapfs.errors import RepositoryExists

    try:
        Repository.init(LocalBackend(repo_path), PASSWORD, kdf=CHEAP_KDF)
    except RepositoryExists as e:
        assert str(e) == "a repository already exists there"
    else:
        raise AssertionError("init over an existing repository succeeded")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small-disk", "4m") as where:
        yield where


def test_a_full_disk_is_one_line_and_loses_nothing(
    cli: Cli, small_disk: Path, tmp_path: Path
) -> None:
    repo = small_disk / "repo"
    Repository.init(LocalBackend(repo), PASSWORD, kdf=CHEAP_KDF).close()
    cli.repo = repo
    src = tmp_path / "src"
    src.mkdir()
    (src / "small.txt").write_text("fits\n")
    cli.run("backup", str(src), check=True)
    (src / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    full = cli.run("backup", str(src))
    assert full.returncode == 1
    line = _one_line(full.stderr)
    assert line.startswith(f"snapfs: cannot write {repo}/data/"), line
    assert line.endswith(": No space left on device"), line
    assert not [p for p in repo.rglob("*") if ".tmp" in p.name]  # no half-written objects
    assert cli.run("check").returncode == 0
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    assert (out / str(src).lstrip("/") / "small.txt").read_text() == "fits\n"
    assert not (out / str(src).lstrip("/") / "big.bin").exists()
    # And a restore onto a full disk says so in one line too.
    target = small_disk / "target"
    bigsrc = tmp_path / "bigsrc"
    bigsrc.mkdir()
    (bigsrc / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    cli.repo = tmp_path / "repo2"
    Repository.init(LocalBackend(cli.repo), PASSWORD, kdf=CHEAP_KDF).close()
    cli.run("backup", str(bigsrc), check=True)
    restored = cli.run("restore", "latest", "--target", str(target))
    assert restored.returncode == 1
    where = target / str(bigsrc).lstrip("/") / "big.bin"
    assert _one_line(restored.stderr) == f"snapfs: {where}: No space left on device"


def test_an_undecodable_prune_plan_is_one_line_naming_it(cli: Cli, repo_location: str) -> None:
    """A plan record that opens but is not a plan: prune (and undelete, which reads plans
    through the same ``load_records``) names its key, exit 1."""
    with Repository.open(open_backend(repo_location), PASSWORD) as repo:
        repo.backend.put("prune/" + "ab" * 16, repo.key.seal(b"not msgpack of a plan"))

    result = cli.run("prune")

    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"snapfs: prune/{'ab' * 16}: a damaged record")
