"""``snapfs tag``: a snapshot whose tags change is saved anew (new id, same time, tree and
data, ``original`` naming the snapshot its backup made) and the old one moves to
``forgotten/``; a copy made afterwards carries the new tags, as restic's does."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from snapfs.copy import copy_snapshots
from snapfs.repository import Repository
from snapfs.store.url import open_backend
from tests.conftest import CHEAP_KDF, PASSWORD, Cli, reopened


def _snaps(cli: Cli) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    return result


def test_tag_keeps_all_but_the_tags(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    cli.run("backup", str(src), "--tag", "nightly", "--host", "db1", check=True)
    cli.run("backup", str(src), "--host", "web1", check=True)
    (first, other) = _snaps(cli)

    out = cli.run("tag", "--host", "db1", "--add", "keep,release", "--remove", "nightly",
                  check=True).stdout.decode()  # fmt: skip
    (tagged,) = [s for s in _snaps(cli) if s["host"] == "db1"]
    assert out == (f"snapshot {first['short_id']} is now {tagged['short_id']} (keep,release)\n"
                   "1 of 1 snapshots changed\n")  # fmt: skip
    assert tagged["tags"] == ["keep", "release"]
    assert tagged["original"] == first["id"] != tagged["id"]
    for field in ("time", "host", "user", "paths", "tree", "parent", "summary", "source"):
        assert tagged[field] == first[field], field

    lines = cli.run("tag", str(tagged["short_id"]), "--set", "", "--json", check=True).stdout
    (line,) = [json.loads(x) for x in lines.splitlines()]
    (again,) = [s for s in _snaps(cli) if s["host"] == "db1"]
    assert line == {"old": tagged["id"], "new": again["id"], "tags": []}
    assert again["original"] == first["id"]  # the backup's, not the one retagged
    assert [s for s in _snaps(cli) if s["host"] == "web1"] == [other]

    with reopened(str(cli.repo)) as repo:
        assert sorted(s.id for s in repo.forgotten()) == sorted([first["id"], tagged["id"]])  # type: ignore[type-var]
    r = cli.run("tag", "--add", "x", "--set", "y")
    assert (r.returncode, r.stderr.decode().splitlines()[-1]) == (
        2, "Error: --set replaces the tags: give it without --add and --remove")  # fmt: skip
    r = cli.run("tag", "latest")
    assert (r.returncode, r.stderr.decode().splitlines()[-1]) == (
        2, "Error: nothing to change: give --add, --remove or --set")  # fmt: skip
    assert cli.run("tag", "--add", "x", "--tag", "nope", check=True).stdout == (
        b"0 of 0 snapshots changed\n")  # fmt: skip


def test_a_retagged_snapshot_is_copied_again(repo: Repository, tmp_path: Path) -> None:
    from snapfs.backup import backup
    from snapfs.rewrite import tag

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    snap = backup(repo, [str(src)], tags=["nightly"])
    dest_path = tmp_path / "dest"
    dest = Repository.init(open_backend(str(dest_path)), PASSWORD, kdf=CHEAP_KDF)
    assert [c.existed for c in copy_snapshots(repo, dest).copied] == [False]
    (retagged,) = [r.new for r in tag(repo, [snap], add=["release"])]
    assert retagged is not None
    result = copy_snapshots(repo, dest)
    assert [(c.original.id, c.existed) for c in result.copied] == [(retagged.id, False)]
    copies = sorted(dest.snapshots(), key=lambda s: s.tags)
    assert [s.tags for s in copies] == [["nightly"], ["nightly", "release"]]
    assert {s.original for s in copies} == {snap.id}
    assert copies[0].tree == copies[1].tree  # the same data: its translation reused
    assert msgspec.structs.replace(copies[1], tags=[], id="") == msgspec.structs.replace(
        copies[0], tags=[], id="")  # fmt: skip
    assert [c.existed for c in copy_snapshots(repo, dest).copied] == [True]
    dest.close()
