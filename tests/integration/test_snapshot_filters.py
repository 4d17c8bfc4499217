"""--host, --tag and --path on every command that chooses snapshots: two hosts back up the
same directory into one repository, so a filter that is ignored picks the other host's
(newer) snapshot and the test sees the wrong data. forget's decisions under a filter are
restic's own, from restic run on the same snapshots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapfs.repository import Repository
from snapfs.store.url import open_backend
from snapfs.walk import resolve
from tests.conftest import CHEAP_KDF, PASSWORD, SNAPFS, Cli

# (host, tags, whether "extra" is backed up too), oldest first; s5, the newest, is web1's.
SNAPSHOTS = [
    ("db1", ["old"], False),
    ("db1", ["old", "weekly"], False),
    ("web1", ["old"], False),
    ("db1", [], True),
    ("db1", ["new"], False),
    ("web1", ["new"], False),
]


@dataclass
class Lake:
    cli: Cli
    base: Path
    data: Path
    extra: Path
    ids: list[str]  # of s0..s5, in SNAPSHOTS' order

    def label(self, snapshot_id: str) -> str:
        return f"s{self.ids.index(snapshot_id)}"

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return self.cli.run(*args, check=True)


def _write(data: Path, label: str) -> None:
    """The file says which snapshot holds it, and so does a marker only that snapshot has."""
    for old in data.glob("mark-*"):
        old.unlink()
    (data / "f.txt").write_text(label)
    (data / f"mark-{label}").write_text("")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    base = tmp_path_factory.mktemp("filters")
    data, extra = base / "data", base / "extra"
    data.mkdir()
    extra.mkdir()
    (extra / "e.txt").write_text("extra")
    Repository.init(open_backend(str(base / "repo")), PASSWORD, kdf=CHEAP_KDF).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_")}
    cli = Cli(base / "repo", {**env, "SNAPFS_PASSWORD": PASSWORD})
    ids = []
    for i, (host, tags, with_extra) in enumerate(SNAPSHOTS):
        _write(data, f"s{i}")
        paths = [str(data), str(extra)] if with_extra else [str(data)]
        tag_args = [a for t in tags for a in ("--tag", t)]
        out = cli.run("backup", *paths, "--host", host, *tag_args, "--json", check=True).stdout
        ids.append(json.loads(out.splitlines()[-1])["snapshot_id"])
    return Lake(cli, base, data, extra, ids)


# filter -> the snapshots that pass it, oldest first; the last is what 'latest' means.
FILTERS: list[tuple[list[str], list[str]]] = [
    (["--host", "db1"], ["s0", "s1", "s3", "s4"]),
    (["--host", "web1"], ["s2", "s5"]),
    (["--tag", "old"], ["s0", "s1", "s2"]),
    (["--tag", "old,weekly"], ["s1"]),
    (["--tag", "old,weekly", "--tag", "new"], ["s1", "s4", "s5"]),
    (["--tag", ""], ["s3"]),
    (["--path", "EXTRA"], ["s3"]),
    (["--path", "DATA", "--path", "EXTRA"], ["s3"]),
    (["--path", "DATA"], ["s0", "s1", "s2", "s3", "s4", "s5"]),  # includes, not equals
    (["--host", "db1", "--tag", "old"], ["s0", "s1"]),
    (["--host", "db1", "--host", "web1", "--tag", "new"], ["s4", "s5"]),
    (["-H", "web1", "--tag", "old"], ["s2"]),  # restic's short option
]
IDS = [" ".join(f) or "''" for f, _ in FILTERS]


def _args(lake: Lake, flags: list[str]) -> list[str]:
    names = {"DATA": str(lake.data), "EXTRA": str(lake.extra)}
    return [names.get(f, f) for f in flags]


@pytest.mark.parametrize(("flags", "passing"), FILTERS, ids=IDS)
def test_snapshots_lists_exactly_those_that_pass(
    lake: Lake, flags: list[str], passing: list[str]
) -> None:
    listed = json.loads(lake.run("snapshots", "--json", *_args(lake, flags)).stdout)
    assert [lake.label(s["id"]) for s in listed] == passing


@pytest.mark.parametrize(("flags", "passing"), FILTERS, ids=IDS)
def test_dump_ls_and_tables_of_latest_take_the_newest_that_passes(
    lake: Lake, flags: list[str], passing: list[str]
) -> None:
    args, newest = _args(lake, flags), passing[-1]
    assert lake.run("dump", "latest", str(lake.data / "f.txt"), *args).stdout == newest.encode()
    listing = lake.run("ls", "latest", str(lake.data), *args).stdout.decode().splitlines()
    assert [p for p in listing if "mark-" in p] == [f"{lake.data}/mark-{newest}"]
    short = lake.ids[int(newest[1:])][:8]
    tables = lake.run("tables", "latest", *args).stdout.decode()
    assert tables.splitlines()[-1] == f"0 tables in snapshot {short}"


def test_restore_latest_of_a_host_gets_that_hosts_data_though_another_is_newer(
    lake: Lake, tmp_path: Path
) -> None:
    lake.run("restore", "latest", "--host", "db1", "--target", str(tmp_path / "r"))
    restored = tmp_path / "r" / lake.data.relative_to("/")
    assert (restored / "f.txt").read_text() == "s4"
    assert sorted(p.name for p in restored.glob("mark-*")) == ["mark-s4"]


def test_an_id_names_its_snapshot_whatever_the_filter(lake: Lake) -> None:
    """As in restic: the filters choose what 'latest' means, never replace a named id."""
    out = lake.run("dump", lake.ids[5][:8], str(lake.data / "f.txt"), "--host", "db1").stdout
    assert out == b"s5"


def test_diff_resolves_latest_through_the_filter(lake: Lake) -> None:
    out = lake.run("diff", lake.ids[0], "latest", "--host", "db1", "--json").stdout
    changes = {(c["kind"], c["path"].rsplit("/", 1)[1]) for c in map(json.loads, out.splitlines())}
    changes.discard(("U", ""))  # the directory's mtime
    assert changes == {("-", "mark-s0"), ("+", "mark-s4"), ("M", "f.txt")}


def test_stats_counts_the_snapshots_that_pass(lake: Lake) -> None:
    every = json.loads(lake.run("stats", "--json").stdout)
    web = json.loads(lake.run("stats", "--json", "--host", "web1").stdout)
    assert (every["snapshots"], web["snapshots"]) == (6, 2)
    assert web["packs"] == every["packs"]  # packs are shared: the whole repository's


@pytest.mark.parametrize(
    "flags",
    [["--host", "nobody"], ["--host", "db1", "--tag", "new,old"], ["--path", "/nowhere"]],
    ids=["host", "host+tag", "path"],
)
def test_a_filter_that_leaves_nothing_for_latest_says_so_in_one_line(
    lake: Lake, flags: list[str]
) -> None:
    shown = " ".join(flags)
    for verb in (["ls", "latest"], ["dump", "latest", "/x"], ["tables", "latest"]):
        done = lake.cli.run(*verb, *flags)
        assert (done.returncode, done.stderr.decode()) == (
            1,
            f"snapfs: no snapshot matches {shown}\n",
        )


def _copied(lake: Lake, tmp_path: Path, *args: str) -> list[str]:
    dest = tmp_path / "dest"
    Repository.init(open_backend(str(dest)), PASSWORD, kdf=CHEAP_KDF).close()
    env = {**lake.cli.env, "SNAPFS_FROM_PASSWORD": PASSWORD}
    done = subprocess.run(
        [*SNAPFS, "-r", str(dest), "copy", "--from-repo", str(lake.cli.repo), "--json", *args],
        capture_output=True, env=env, check=True, timeout=240,
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return [lake.label(m["original"]) for m in lines if m["message_type"] == "snapshot"]


def test_copy_takes_the_snapshots_that_pass(lake: Lake, tmp_path: Path) -> None:
    assert _copied(lake, tmp_path, "--host", "web1") == ["s2", "s5"]


def test_copy_of_latest_takes_the_newest_that_passes(lake: Lake, tmp_path: Path) -> None:
    assert _copied(lake, tmp_path, "latest", "--tag", "old") == ["s2"]


@contextmanager
def _mounted(lake: Lake, point: Path, *args: str) -> Iterator[Path]:
    point.mkdir()
    lake.run("mount", str(point), *args)
    try:
        yield point
    finally:
        subprocess.run([*SNAPFS, "umount", str(point)], capture_output=True, check=False)


def test_mount_shows_only_the_snapshots_that_pass(lake: Lake, tmp_path: Path) -> None:
    with _mounted(lake, tmp_path / "mnt", "--host", "db1") as mnt:
        shown = sorted(n.rsplit("_", 1)[1] for n in os.listdir(mnt / "snapshots"))
        assert shown == sorted(lake.ids[i][:8] for i in (0, 1, 3, 4))
        assert os.listdir(mnt / "hosts") == ["db1"]
        latest = mnt / "latest" / lake.data.relative_to("/") / "f.txt"
        assert latest.read_text() == "s4"


def test_mount_of_latest_mounts_the_newest_that_passes(lake: Lake, tmp_path: Path) -> None:
    with _mounted(lake, tmp_path / "mnt", "latest", "--tag", "old") as mnt:
        assert (mnt / lake.data.relative_to("/") / "f.txt").read_text() == "s2"


# -- forget: restic's decisions on the same snapshots ---------------------------------------


def _restic_removes(lake: Lake, flags: list[str]) -> list[str]:
    """Labels of the snapshots restic's forget removes, on the same hosts, tags, paths and
    order of snapshots (times a minute apart)."""
    repo = lake.base / "restic"
    env = {**os.environ, "RESTIC_PASSWORD": "pw", "RESTIC_REPOSITORY": str(repo), "TZ": "UTC"}
    if not repo.exists():
        subprocess.run(["restic", "init", "-q"], env=env, check=True, capture_output=True)
        for i, (host, tags, with_extra) in enumerate(SNAPSHOTS):
            paths = [str(lake.data), str(lake.extra)] if with_extra else [str(lake.data)]
            tag_args = [a for t in tags for a in ("--tag", t)]
            when = f"2026-01-01 00:{i:02d}:00"
            cmd = ["restic", "backup", "-q", "--host", host, "--time", when, *tag_args, *paths]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
    out = subprocess.run(["restic", "forget", "--dry-run", "--json", *_args(lake, flags)],
                         env=env, check=True, capture_output=True).stdout  # fmt: skip
    removed = [s["time"] for group in json.loads(out) for s in group.get("remove") or []]
    return sorted(f"s{int(t[14:16])}" for t in removed)


FORGETS = [
    ["--tag", "old", "--keep-last", "1"],
    ["--host", "db1", "--keep-last", "1"],
    ["--tag", "old,weekly", "--tag", "new", "--keep-last", "1", "--group-by", "host"],
    ["--host", "web1", "--tag", "old", "--tag", "new", "--keep-last", "1", "--group-by", ""],
    ["--path", "DATA", "--path", "EXTRA", "--keep-last", "1", "--group-by", ""],  # s3 alone
]


@pytest.mark.parametrize("flags", FORGETS, ids=[" ".join(f) for f in FORGETS])
def test_forget_decides_what_restic_decides_on_the_filtered_snapshots(
    lake: Lake, tmp_path: Path, flags: list[str]
) -> None:
    """Run for real on a copy of the repository: exactly restic's snapshots are gone."""
    expected = _restic_removes(lake, flags)
    shutil.copytree(lake.cli.repo, tmp_path / "repo")
    mine = Cli(tmp_path / "repo", lake.cli.env)
    mine.run("forget", *_args(lake, flags), check=True)
    left = {s["id"] for s in json.loads(mine.run("snapshots", "--json", check=True).stdout)}
    assert sorted(lake.label(i) for i in set(lake.ids) - left) == expected


def test_forget_latest_takes_the_newest_that_passes(lake: Lake) -> None:
    out = lake.run("forget", "latest", "--host", "db1", "--dry-run", "--json").stdout
    assert [lake.label(s["id"]) for s in json.loads(out)] == ["s4"]


def test_check_read_data_reads_only_the_packs_of_the_snapshots_that_pass(
    lake: Lake, tmp_path: Path
) -> None:
    """A pack that only db1's newest snapshot uses is damaged: a check of web1's snapshots
    does not read it and passes; a check of db1's reads it and names it."""
    copied = tmp_path / "repo"
    shutil.copytree(lake.cli.repo, copied)
    mine = Cli(copied, lake.cli.env)
    with Repository.open(open_backend(str(copied)), PASSWORD) as repo:
        root = bytes.fromhex(repo.find_snapshot(lake.ids[4]).tree)
        f = resolve(repo, root, str(lake.data / "f.txt"))
        assert f is not None
        pack_id = repo.blob_entry(f.content[0]).pack_id
    pack = copied / "data" / pack_id[:2] / pack_id
    damaged = bytearray(pack.read_bytes())
    damaged[0] ^= 0xFF
    pack.write_bytes(bytes(damaged))
    web = mine.run("check", "--read-data", "--json", "--host", "web1")
    assert web.returncode == 0, web.stdout
    web_report = json.loads(web.stdout)
    assert web_report["snapshots"] == 2
    assert 0 < web_report["packs_read"] < web_report["packs"]
    db = mine.run("check", "--read-data", "--json", "--host", "db1")
    assert db.returncode == 1
    assert json.loads(db.stdout)["damaged_packs"] == [pack_id]
