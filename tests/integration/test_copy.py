"""``snapfs copy``: snapshots move between repositories with different keys, byte-identical
and with their metadata; a copy is never made twice, and a later copy reads only what
changed since the last one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from snapfs.repository import Repository
from snapfs.snapshot import Snapshot, Summary
from snapfs.store.url import open_backend
from tests.conftest import BACKENDS, CHEAP_KDF, PASSWORD, Cli
from tests.crafted import directory, file, raw_tree
from tests.helpers import assert_same_tree

SOURCE_PASSWORD = "the source repository's own password"


@pytest.fixture
def source(tmp_path: Path, cli: Cli) -> Cli:
    """A local repository with a key of its own, beside the (destination) ``cli`` one."""
    location = tmp_path / "source-repo"
    Repository.init(open_backend(str(location)), SOURCE_PASSWORD, kdf=CHEAP_KDF).close()
    return Cli(location, {**cli.env, "SNAPFS_PASSWORD": SOURCE_PASSWORD})


def _copy(cli: Cli, source: Cli, *args: str) -> list[dict[str, object]]:
    out = cli.run("copy", "--from-repo", str(source.repo), "--json", *args, check=True,
                  env={"SNAPFS_FROM_PASSWORD": SOURCE_PASSWORD})  # fmt: skip
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    # Progress lines come too when the copy takes long enough (a loaded machine).
    return [m for m in lines if m["message_type"] in ("snapshot", "summary")]


def _snapshots(cli: Cli) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    return result


@pytest.mark.parametrize("backend_kind", BACKENDS)
def test_a_copy_restores_byte_identical(
    cli: Cli, source: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    source.run("backup", str(lake_tree), "--tag", "nightly", "--host", "lake-01", check=True)
    *_, summary = _copy(cli, source)
    assert (summary["copied"], summary["skipped"]) == (1, 0)
    (original,), (copy,) = _snapshots(source), _snapshots(cli)
    assert copy["original"] == original["id"] != copy["id"]
    for field in ("time", "host", "user", "tags", "paths", "summary"):
        assert copy[field] == original[field], field
    cli.run("restore", "latest", "--target", str(tmp_path / "out"), check=True)
    assert_same_tree(lake_tree, tmp_path / "out" / str(lake_tree).lstrip("/"))
    assert cli.run("check", "--read-data", check=True).returncode == 0


def test_copying_again_reads_only_what_changed(cli: Cli, source: Cli, lake_tree: Path) -> None:
    source.run("backup", str(lake_tree), check=True)
    first = _copy(cli, source)[-1]
    stored = json.loads(source.run("stats", "--json", check=True).stdout)
    assert first["bytes_read"] == stored["raw_data_bytes"]  # each distinct chunk, once
    again = _copy(cli, source)
    assert again[0]["existed"] is True
    assert (again[-1]["copied"], again[-1]["skipped"], again[-1]["bytes_read"]) == (0, 1, 0)
    with open(lake_tree / "small.txt", "a") as f:
        f.write("one more line\n")
    source.run("backup", str(lake_tree), check=True)
    later = _copy(cli, source)[-1]
    assert (later["copied"], later["skipped"]) == (1, 1)
    assert later["bytes_read"] == len("hello lake\none more line\n")
    assert [s["original"] for s in _snapshots(cli)] == [s["id"] for s in _snapshots(source)]


def test_a_copy_lends_blobs_only_to_files_that_match_it(
    cli: Cli, source: Cli, tmp_path: Path
) -> None:
    """A destination snapshot that names an original but holds other bytes at a file's name
    (same mtime, one blob, another size: made by hand) lends that blob to no later copy."""
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "f.csv").write_bytes(b"the original bytes\n")
    source.run("backup", str(lake), check=True)
    (first,) = _snapshots(source)
    with Repository.open(open_backend(str(cli.repo)), PASSWORD) as repo, repo.writer() as w:
        other = file(w, b"f.csv", b"other bytes, of another length\n")
        tree = raw_tree(
            w, [msgspec.structs.replace(other, mtime_ns=(lake / "f.csv").stat().st_mtime_ns)]
        )
        for name in reversed(lake.parts[1:]):
            tree = raw_tree(w, [directory(name.encode(), tree)])
        counts = {k: first["summary"][k] for k in ("files", "dirs", "bytes")}  # type: ignore[index]
        w.save_snapshot(  # a copy as copy_key sees it: same original, tags and counts
            Snapshot(time=str(first["time"]), host=str(first["host"]), user="u",
                     paths=[str(lake)], tree=tree.hex(), original=str(first["id"]),
                     summary=Summary(**counts))
        )  # fmt: skip
    (lake / "g.csv").write_bytes(b"a new file\n")
    source.run("backup", str(lake), check=True)
    assert _copy(cli, source)[-1]["copied"] == 1
    cli.run("restore", "latest", "--target", str(tmp_path / "out"), check=True)
    assert_same_tree(lake, tmp_path / "out" / str(lake).lstrip("/"))


def test_a_copy_of_a_copy_names_the_first_original(
    cli: Cli, source: Cli, tmp_path: Path, lake_tree: Path
) -> None:
    source.run("backup", str(lake_tree), check=True)
    _copy(cli, source)
    third = Cli(tmp_path / "third", {**cli.env, "SNAPFS_PASSWORD": "third"})
    Repository.init(open_backend(str(third.repo)), "third", kdf=CHEAP_KDF).close()
    from_second = {"SNAPFS_FROM_PASSWORD": cli.env["SNAPFS_PASSWORD"]}
    third.run("copy", "--from-repo", str(cli.repo), check=True, env=from_second)
    (original,) = _snapshots(source)
    (copy,) = _snapshots(third)
    assert copy["original"] == original["id"]


def test_a_bad_source_gets_one_line_and_its_exit_code(cli: Cli, source: Cli) -> None:
    wrong = cli.run("copy", "--from-repo", str(source.repo),
                    env={"SNAPFS_FROM_PASSWORD": "not it"})  # fmt: skip
    assert (wrong.returncode, wrong.stderr.decode()) == (
        12,
        "snapfs: source repository: wrong password or no key found for it\n",
    )
    missing = Path(str(source.repo) + "-missing")
    absent = cli.run("copy", "--from-repo", str(missing), env={"SNAPFS_FROM_PASSWORD": "x"})
    assert (absent.returncode, absent.stderr.decode()) == (
        10,
        f"snapfs: no source repository at {missing}\n",
    )
    unnamed = cli.run("copy", env={k: "" for k in os.environ if k.startswith("SNAPFS_FROM")})
    assert unnamed.returncode == 2
    assert unnamed.stderr.decode().endswith(
        "Error: no source repository given: use --from-repo REPO or set SNAPFS_FROM_REPOSITORY\n"
    )


def test_copied_chunker_params_let_backups_dedup_against_copies(
    cli: Cli, source: Cli, tmp_path: Path, lake_tree: Path
) -> None:
    source.run("backup", str(lake_tree), check=True)
    for name, flags in (("own-chunking", []), ("same-chunking", ["--copy-chunker-params"])):
        dest = Cli(tmp_path / name, cli.env)
        dest.run("init", "--from-repo", str(source.repo), *flags, check=True,
                 env={"SNAPFS_FROM_PASSWORD": SOURCE_PASSWORD})  # fmt: skip
        _copy(dest, source)
        added = json.loads(dest.run("backup", str(lake_tree), "--host", "elsewhere", "--json",
                                    check=True).stdout.splitlines()[-1])["bytes_added"]  # fmt: skip
        random_bin = (lake_tree / "random.bin").stat().st_size
        if flags:
            assert added == 0, "same cuts, same blobs"
        else:
            assert added >= random_bin, "other cuts: the random file is stored again"


@pytest.mark.parametrize("fault", ["pack-stored:2", "index-stored:1", "before-snapshot:2"])
def test_a_killed_copy_leaves_the_destination_checkable_and_resumes(
    cli: Cli, source: Cli, tmp_path: Path, fault: str
) -> None:
    dest = Cli(tmp_path / "small-packs", cli.env)
    Repository.init(open_backend(str(dest.repo)), cli.env["SNAPFS_PASSWORD"], kdf=CHEAP_KDF,
                    pack_size=1 << 20).close()  # fmt: skip
    src = tmp_path / "data"
    src.mkdir()
    for day in range(2):
        for i in range(4):
            (src / f"day{day}-{i}.bin").write_bytes(os.urandom(700_000))
        source.run("backup", str(src), check=True)
    env = {"SNAPFS_FROM_PASSWORD": SOURCE_PASSWORD, "SNAPFS_FAULT": fault}
    killed = dest.run("copy", "--from-repo", str(source.repo), env=env)
    assert killed.returncode == -9
    survivors = len(_snapshots(dest))
    assert survivors == (1 if fault == "before-snapshot:2" else 0)
    assert dest.run("check", "--read-data").returncode == 0
    *_, summary = _copy(dest, source)
    assert (summary["copied"], summary["skipped"]) == (2 - survivors, survivors)
    dest.run("restore", "latest", "--target", str(tmp_path / "out"), check=True)
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
    assert dest.run("check", "--read-data").returncode == 0


def test_named_and_tagged_snapshots_are_the_ones_copied(
    cli: Cli, source: Cli, lake_tree: Path
) -> None:
    for tag in ("daily", "monthly", "daily"):
        source.run("backup", str(lake_tree), "--tag", tag, check=True)
    first, monthly, latest = _snapshots(source)
    *copied, summary = _copy(cli, source, "latest", str(latest["id"])[:8])
    assert [c["original"] for c in copied] == [latest["id"]]
    assert summary["copied"] == 1
    *copied, summary = _copy(cli, source, "--tag", "daily")
    assert [(c["original"], c["existed"]) for c in copied] == [
        (first["id"], False), (latest["id"], True)
    ]  # fmt: skip
    assert monthly["id"] not in {s["original"] for s in _snapshots(cli)}


@pytest.mark.parametrize("backend_kind", BACKENDS)
def test_a_copy_live_while_prune_marks_restores_as_soon_as_it_ends(
    cli: Cli, source: Cli, tmp_path: Path
) -> None:
    """The copy is held after storing its packs and index, before its snapshot, while prune
    marks the destination: the marking condemns the copy's packs (used by no snapshot yet)
    and those of a forgotten snapshot it deduplicated against; saving its snapshot, the copy
    indexes again what it needs of them, so it restores at once."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "old.bin").write_bytes(os.urandom(300_000))
    cli.run("forget", _backup_id(cli, src), check=True)
    (src / "new.bin").write_bytes(os.urandom(300_000))
    source.run("backup", str(src), check=True)
    cli.env["SNAPFS_FROM_PASSWORD"] = SOURCE_PASSWORD
    held = cli.hold("before-snapshot", tmp_path / "copy.held", "copy", "--from-repo",
                    str(source.repo), "--json")  # fmt: skip
    planned = json.loads(cli.run("prune", "--json", check=True).stdout)
    assert planned["condemned_packs"] >= 2  # the forgotten snapshot's and the copy's own
    with Repository.open(open_backend(str(cli.repo)), cli.env["SNAPFS_PASSWORD"]) as dest:
        [(_key, plan)] = dest.load_records("prune", dict)
    assert len(plan["waiting_for"]) == 1  # the copy, provably live: held at its fault point
    held.release()
    checked = cli.run("check", "--read-data")
    assert checked.returncode == 0, checked.stderr.decode()
    cli.run("restore", "latest", "--target", str(tmp_path / "out"), "--verify", check=True)
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))


def _backup_id(cli: Cli, src: Path) -> str:
    out = cli.run("backup", str(src), "--json", check=True).stdout.splitlines()[-1]
    return str(json.loads(out)["snapshot_id"])
