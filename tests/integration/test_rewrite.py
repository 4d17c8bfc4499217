"""``snapfs rewrite``: the erasure of a file backed up by mistake. After ``rewrite --exclude
... --forget`` and two runs of ``prune --repack-threshold 1``, no snapshot (kept or
forgotten), index entry or stored pack holds the excluded files' blobs, nor the trees that
named them (checked by blob id through the repository API), and every rewritten snapshot
restores byte-identical to its original without them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from snapfs.repository import Repository
from snapfs.snapshot import sort_by_time
from snapfs.tree import DIR
from snapfs.walk import shown_path, walk
from tests.conftest import Cli, reopened
from tests.helpers import describe


def _lake(src: Path, cli: Cli) -> None:
    """Three backups sharing trees; a secret directory and a key file in every one, next
    to files kept (all random, so no kept file shares a blob with a secret)."""
    (src / "sales").mkdir(parents=True)
    (src / "secret").mkdir()
    (src / "secret" / "id_rsa").write_bytes(os.urandom(400_000))
    (src / "creds.pem").write_bytes(os.urandom(5_000))
    for day in range(3):
        (src / "sales" / f"day{day}.csv").write_bytes(os.urandom(200_000))
        (src / "sales" / "deep" / "er").mkdir(parents=True, exist_ok=True)
        (src / "sales" / "deep" / "er" / "creds.pem").write_bytes(os.urandom(3_000 + day))
        cli.run("backup", str(src), "--host", "db1", check=True)


def _secret_blobs(repo: Repository) -> set[bytes]:
    """Every blob of an excluded file, and every tree that names one: the excluded
    directories' and every directory's above an excluded entry, root included."""
    out: set[bytes] = set()
    for snap in repo.snapshots():
        trees = {b"": bytes.fromhex(snap.tree)}
        for path, node in walk(repo, trees[b""]):
            if node.subtree is not None:
                trees[path] = node.subtree
            shown = shown_path(path)
            if shown.endswith(".pem") or "/secret" in shown:
                out.update(node.content)
                parts = path.split(b"/")
                out.update(trees[b"/".join(parts[:i])] for i in range(len(parts)))
                if node.subtree is not None:
                    out.add(node.subtree)
    return out


def test_erasure_end_to_end(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _lake(src, cli)
    with reopened(str(cli.repo)) as repo:
        before = sort_by_time(repo.snapshots())
        gone = _secret_blobs(repo)
    for i, snap in enumerate(before):
        cli.run("restore", snap.id, "--target", str(tmp_path / f"old{i}"), check=True)

    dry = cli.run("rewrite", "--exclude", "*.pem", "--exclude", f"{src}/secret", "-n",
                  check=True).stdout.decode()  # fmt: skip
    lost = f"  {src}/creds.pem\n  {src}/sales/deep/er/creds.pem\n  {src}/secret\n"
    assert dry == "".join(f"snapshot {s.short_id} would lose:\n{lost}" for s in before) + (
        "3 of 3 snapshots would be rewritten\n"
    )
    with reopened(str(cli.repo)) as repo:
        assert sorted(s.id for s in repo.snapshots()) == sorted(s.id for s in before)

    lines = cli.run("rewrite", "--exclude", "*.pem", "--exclude", f"{src}/secret", "--forget",
                    "--json", check=True).stdout.splitlines()  # fmt: skip
    done = [json.loads(line) for line in lines]
    assert [d["old"] for d in done] == [s.id for s in before]
    assert {d["forgotten"] for d in done} == {True}
    for _ in range(2):
        cli.run("prune", "--repack-threshold", "1", check=True)

    with reopened(str(cli.repo)) as repo:
        after = sort_by_time(repo.snapshots())
        assert [s.id for s in after] == [d["new"] for d in done]
        assert [s.original for s in after] == [s.id for s in before]
        assert repo.forgotten() == []
        for i, (old_snap, new_snap) in enumerate(zip(before, after, strict=True)):
            o, n = old_snap.summary, new_snap.summary  # 3 files and a dir less: the csv left
            assert (n.files, n.dirs, n.bytes) == (o.files - 3, o.dirs - 1, 200_000 * (i + 1))
        held: set[bytes] = set()
        for snap in after:
            held.add(bytes.fromhex(snap.tree))
            for _path, node in walk(repo, bytes.fromhex(snap.tree)):
                held.update(node.content)
                if node.type == DIR and node.subtree is not None:
                    held.add(node.subtree)
        assert held and not held & gone
        assert not {b for b in gone if repo.has_blob(b)}
        indexed = {e.blob_id for _pack, entries in repo.index_packs() for e in entries}
        assert indexed and not indexed & gone
        packed = {e.blob_id for p in repo.list_packs() for e in repo.read_pack_header(p)}
        assert packed == indexed  # the repository holds exactly what its index says
        assert held <= packed

    for i, snap in enumerate(after):
        cli.run("restore", snap.id, "--target", str(tmp_path / f"new{i}"), check=True)
        old = describe(tmp_path / f"old{i}")
        kept = {
            path: entry
            for path, entry in old.items()
            if not path.endswith(b".pem") and b"/secret" not in b"/" + path
        }
        assert describe(tmp_path / f"new{i}") == kept
        assert len(kept) < len(old)
    assert cli.run("check", "--read-data", check=True).returncode == 0


def test_rewrite_keeps_a_pinned_table_true_to_what_is_left(cli: Cli, tmp_path: Path) -> None:
    """A table that lost a file to the rewrite is recorded torn (its version may need the
    file); one whose directory went is no longer recorded; the others stay as they were."""
    from deltalake import write_deltalake

    from tests.integration.test_delta_tables import _rows

    lake = tmp_path / "lake"
    for name in ("sales", "people", "kept"):
        write_deltalake(lake / name, _rows(0, 10, "d1"), partition_by=["day"])
    cli.run("backup", str(lake), check=True)
    (data,) = (lake / "sales" / "day=d1").iterdir()
    cli.run("rewrite", "--forget", "--exclude", str(data), "--exclude", str(lake / "people"),
            check=True)  # fmt: skip

    listed = cli.run("tables", "latest", "--json", check=True)
    tables = {t["path"]: t["torn"] for t in json.loads(listed.stdout)}
    assert tables == {str(lake / "kept"): False, str(lake / "sales"): True}
