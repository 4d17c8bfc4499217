"""Healing from a replica, met by the CLI in subprocesses: ``repair packs --from`` and
``restore --from-replica`` read what a repository lost from a repository kept by ``snapfs
copy`` (in either direction), verified by the repository's own blob ids; what no replica
has is named (exit 3); a kill -9 in the middle of a repair leaves what was intact intact."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from snapfs.backup import backup
from snapfs.chunker import ChunkerParams
from snapfs.index import IndexEntry
from snapfs.repository import Repository
from snapfs.store.url import open_backend
from snapfs.walk import resolve, walk
from tests.conftest import CHEAP_KDF, SNAPFS, Cli, init_small_packs
from tests.helpers import describe
from tests.integration.test_damage import (
    _assert_intact_except,
    _assert_whole,
    _chunk,
    _file_node,
    _flip,
    _pack_file,
    _repo,
    _restore,
)

REPLICA_PASSWORD = "replica password"


def _copy(into: str, into_password: str, source: str, source_password: str,
          env: dict[str, str]) -> None:  # fmt: skip
    done = subprocess.run(
        [*SNAPFS, "-r", into, "copy", "--from-repo", source],
        capture_output=True,
        env={**env, "SNAPFS_PASSWORD": into_password, "SNAPFS_FROM_PASSWORD": source_password},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def healthy(cli: Cli, lake_tree: Path, tmp_path: Path) -> tuple[Cli, Path]:
    """``cli`` on a repository of small packs holding one backup of ``lake_tree``, and a
    replica of it made by ``snapfs copy`` (its own key and chunker seed)."""
    cli.repo = init_small_packs(str(tmp_path / "small"))
    cli.run("backup", str(lake_tree), check=True)
    replica = tmp_path / "replica"
    Repository.init(open_backend(str(replica)), REPLICA_PASSWORD, kdf=CHEAP_KDF).close()
    _copy(str(replica), REPLICA_PASSWORD, str(cli.repo), cli.env["SNAPFS_PASSWORD"], cli.env)
    return cli, replica


def _heal(cli: Cli, replica: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    return cli.run("repair", "packs", "--from", str(replica), *args,
                   env={"SNAPFS_FROM_PASSWORD": REPLICA_PASSWORD, **(env or {})})  # fmt: skip


def _checked(cli: Cli) -> subprocess.CompletedProcess[bytes]:
    return cli.run("check", "--read-data")


def _stored_packs(cli: Cli) -> set[str]:
    return {p.name for p in (Path(cli.repo) / "data").rglob("*") if p.is_file()}


def _data_chunk(cli: Cli, lake_tree: Path) -> tuple[bytes, str, int]:
    """(blob id, pack id, offset in the pack) of random.bin's second chunk."""
    with _repo(cli) as repo:
        node = _file_node(repo, lake_tree / "random.bin")
        entry, _ = _chunk(repo, node, 1)
    return node.content[1], entry.pack_id, entry.offset + entry.length // 2


def test_a_flipped_byte_in_a_data_pack_is_healed_from_a_copy(
    healthy: tuple[Cli, Path], lake_tree: Path, tmp_path: Path
) -> None:
    cli, replica = healthy
    blob, pack, at = _data_chunk(cli, lake_tree)
    _flip(cli, pack, at)
    assert _checked(cli).returncode == 1

    dry = _heal(cli, replica, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert (report["healed"], report["lost"], report["packs_removed"]) == (1, [], [pack])
    assert pack in _stored_packs(cli) and _checked(cli).returncode == 1  # nothing written

    packs = len(_stored_packs(cli))
    moved = report["salvaged"]
    healed = _heal(cli, replica)
    assert healed.returncode == 0, healed.stderr
    assert healed.stderr.decode() == (
        f"damaged: pack {pack[:16]}: blob {blob.hex()[:16]} in pack {pack[:16]} is damaged\n"
    )
    assert healed.stdout.decode() == (
        f"read {packs} packs: 1 damaged, 1 blobs damaged or missing; 1 healed from the "
        f"replica, 0 stored elsewhere, 0 not healed; {moved} intact blobs moved; 1 packs "
        "removed\n"
    )
    assert pack not in _stored_packs(cli)
    _assert_whole(cli, lake_tree, tmp_path / "out")
    again = _heal(cli, replica, "--json")
    assert json.loads(again.stdout)["damaged_packs"] == []


def test_a_flipped_byte_in_a_tree_pack_is_healed_from_a_copy(
    healthy: tuple[Cli, Path], lake_tree: Path, tmp_path: Path
) -> None:
    cli, replica = healthy
    with _repo(cli) as repo:
        nested = resolve(repo, bytes.fromhex(repo.snapshots()[0].tree), str(lake_tree / "dir"))
        assert nested is not None and nested.subtree is not None
        entry = repo.blob_entry(nested.subtree)
    _flip(cli, entry.pack_id, entry.offset + entry.length // 2)
    assert _checked(cli).returncode == 1

    healed = _heal(cli, replica, "--json")
    report = json.loads(healed.stdout)
    assert healed.returncode == 0, report["lost"]
    assert report["healed"] == 1 and report["packs_removed"] == [entry.pack_id]
    _assert_whole(cli, lake_tree, tmp_path / "out")


def test_a_missing_pack_is_healed_from_the_repository_it_was_copied_from(
    cli: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    """The other direction: the replica made the backup, this repository is its copy."""
    replica = tmp_path / "replica"
    Repository.init(open_backend(str(replica)), REPLICA_PASSWORD, kdf=CHEAP_KDF).close()
    subprocess.run([*SNAPFS, "-r", str(replica), "backup", str(lake_tree)], check=True,
                   env={**cli.env, "SNAPFS_PASSWORD": REPLICA_PASSWORD})  # fmt: skip
    cli.repo = init_small_packs(str(tmp_path / "small"))
    _copy(str(cli.repo), cli.env["SNAPFS_PASSWORD"], str(replica), REPLICA_PASSWORD, cli.env)
    _blob, pack, _at = _data_chunk(cli, lake_tree)
    _pack_file(cli, pack).unlink()
    assert _checked(cli).returncode == 1

    healed = _heal(cli, replica, "--json")
    assert healed.returncode == 0, healed.stderr
    report = json.loads(healed.stdout)
    assert report["damaged_packs"] == [f"pack {pack[:16]}: missing"]
    assert report["lost"] == [] and report["healed"] == report["damaged_blobs"] > 0
    _assert_whole(cli, lake_tree, tmp_path / "out")


def test_a_blob_the_replica_lost_too_is_named_and_its_pack_kept(
    healthy: tuple[Cli, Path], lake_tree: Path, tmp_path: Path
) -> None:
    cli, replica = healthy
    blob, pack, at = _data_chunk(cli, lake_tree)
    _flip(cli, pack, at)
    # The replica's copy of the same chunk is damaged too.
    with Repository.open(open_backend(str(replica)), REPLICA_PASSWORD) as theirs:
        snap = theirs.snapshots()[0]
        node = resolve(theirs, bytes.fromhex(snap.tree), str(lake_tree / "random.bin"))
        assert node is not None
        there = theirs.blob_entry(node.content[1])
    theirs_file = replica / "data" / there.pack_id[:2] / there.pack_id
    theirs_file.chmod(0o644)
    raw = bytearray(theirs_file.read_bytes())
    raw[there.offset + 5] ^= 0x01
    theirs_file.write_bytes(bytes(raw))

    healed = _heal(cli, replica)
    assert healed.returncode == 3
    lines = healed.stderr.decode().splitlines()
    assert lines[-1] == (
        f"warning: blob {blob.hex()[:16]} (pack {pack[:16]}): the replica's "
        f"{lake_tree}/random.bin: blob {node.content[1].hex()[:16]} in pack "
        f"{there.pack_id[:16]} is damaged: not healed"
    )
    assert pack in _stored_packs(cli)  # kept for what was not healed
    # What else the pack held was moved; the lost blob is all check names now.
    checked = cli.run("check", "--read-data", "--json")
    assert checked.returncode == 1
    affected = json.loads(checked.stdout)["affected_files"]
    assert [a.split(":", 1)[1] for a in affected] == [f"{lake_tree}/random.bin"]
    # Then repair snapshots drops it, and check passes but for the kept pack's bytes.
    assert cli.run("repair", "snapshots", "--read-data").returncode == 3


def test_restore_from_replica_brings_back_every_file_exactly(
    healthy: tuple[Cli, Path], lake_tree: Path, tmp_path: Path
) -> None:
    cli, replica = healthy
    _blob, pack, at = _data_chunk(cli, lake_tree)
    _flip(cli, pack, at)
    with _repo(cli) as repo:
        nested = resolve(repo, bytes.fromhex(repo.snapshots()[0].tree), str(lake_tree / "dir"))
        assert nested is not None and nested.subtree is not None
        tree = repo.blob_entry(nested.subtree)
    _flip(cli, tree.pack_id, tree.offset + tree.length // 2)
    code, lines, _summary = _restore(cli, tmp_path / "damaged")
    assert code == 3 and len(lines) == 2

    no_password = cli.run("restore", "latest", "--target", str(tmp_path / "x"),
                          "--from-replica", str(replica))  # fmt: skip
    assert (no_password.returncode, no_password.stderr.decode()) == (1, "snapfs: no password "
            "for the replica: set SNAPFS_FROM_PASSWORD or SNAPFS_FROM_PASSWORD_FILE\n")  # fmt: skip
    secret = tmp_path / "replica-password"
    secret.write_text(REPLICA_PASSWORD + "\n")
    out = tmp_path / "out"
    code, lines, summary = _restore(
        cli, out, "--from-replica", str(replica), "--from-password-file", str(secret)
    )
    assert (code, lines, summary["damaged"]) == (0, [], [])
    assert describe(out / lake_tree.relative_to("/")) == describe(lake_tree)
    # diff -r too (describe compares more; diff cannot compare a FIFO's contents)
    mine = out / lake_tree.relative_to("/")
    diffed = subprocess.run(["diff", "-r", "--no-dereference", "-x", "fifo", str(lake_tree),
                             str(mine)], capture_output=True)  # fmt: skip
    assert diffed.returncode == 0, diffed.stdout
    assert _checked(cli).returncode == 1  # the repository itself is as it was


def _shared_pack_blob(cli: Cli) -> tuple[str, int, str, set[str]]:
    """A data pack holding blobs of several files: (pack, an offset inside one blob, that
    file's path below the source, the other files of the pack)."""
    with _repo(cli) as repo:
        snap = repo.snapshots()[0]
        files: dict[str, dict[str, IndexEntry]] = {}
        for path, node in walk(repo, bytes.fromhex(snap.tree)):
            if node.links > 1 or not path.isascii():  # a hardlink's other name would be
                continue  # lost with it; warnings escape other names
            for blob_id in node.content:
                e = repo.blob_entry(blob_id)
                files.setdefault(e.pack_id, {})[os.fsdecode(path)] = e
    pack, used = next((p, u) for p, u in sorted(files.items()) if len(u) >= 2)
    hurt = sorted(used)[0]
    entry = used[hurt]
    root = snap.paths[0].lstrip("/")
    return (
        pack,
        entry.offset + entry.length // 2,
        hurt[len(root) + 1 :],
        {f[len(root) + 1 :] for f in used if f != hurt},
    )


@pytest.mark.parametrize("fault", ["repair-packs-written", "repair-index-written"])
def test_kill_9_during_repair_packs_loses_nothing_and_a_rerun_heals(
    healthy: tuple[Cli, Path], lake_tree: Path, tmp_path: Path, fault: str
) -> None:
    """The damaged pack also holds intact blobs of other files: at no instant may they be
    neither in it (indexed) nor in a new pack (indexed)."""
    cli, replica = healthy
    pack, at, hurt, others = _shared_pack_blob(cli)
    _flip(cli, pack, at)
    code, lines, _summary = _restore(cli, tmp_path / "before")
    assert code == 3
    before = {line.split(": ", 2)[1] for line in lines}
    assert {p.rpartition(str(lake_tree) + "/")[2] for p in before} == {hurt}
    killed = _heal(cli, replica, env={"SNAPFS_FAULT": fault})
    assert killed.returncode == -9
    # Everything restores at least as before: all but the damaged file, or all of it.
    code, lines, _summary = _restore(cli, tmp_path / "out")
    _assert_intact_except(lake_tree, tmp_path / "out", {hurt} if code else set())
    assert others and not others & {line.split(": ", 2)[1] for line in lines}
    checked = cli.run("check", "--read-data", "--json")
    report = json.loads(checked.stdout)
    if fault == "repair-packs-written":  # the damaged pack is still indexed: only it is named
        assert checked.returncode == 1
        assert report["damaged_packs"] == [pack]
    else:  # the index names the new packs only: what is left is an unindexed pack
        assert checked.returncode == 0, report["errors"]
        assert pack in _stored_packs(cli)
    rerun = _heal(cli, replica, "--json")
    assert rerun.returncode == 0, rerun.stderr
    _assert_whole(cli, lake_tree, tmp_path / "after")


def test_repair_packs_of_one_named_pack_and_a_wrong_replica_password(
    healthy: tuple[Cli, Path], lake_tree: Path
) -> None:
    cli, replica = healthy
    _blob, pack, at = _data_chunk(cli, lake_tree)
    _flip(cli, pack, at)
    wrong = cli.run("repair", "packs", "--from", str(replica),
                    env={"SNAPFS_FROM_PASSWORD": "nope"})  # fmt: skip
    assert wrong.returncode == 12
    assert wrong.stderr.decode() == "snapfs: replica: wrong password or no key found for it\n"
    other = sorted(_stored_packs(cli) - {pack})[0]
    only_other = _heal(cli, replica, "--packs", other[:12], "--json")
    assert only_other.returncode == 0
    assert json.loads(only_other.stdout)["packs_read"] == 1
    assert json.loads(only_other.stdout)["damaged_packs"] == []
    only_it = _heal(cli, replica, "--packs", pack[:12], "--json")
    assert json.loads(only_it.stdout)["healed"] == 1
    assert _checked(cli).returncode == 0


def test_a_replica_whose_file_differs_heals_nothing(
    healthy: tuple[Cli, Path], lake_tree: Path
) -> None:
    """A replica's snapshot that claims the same original but holds other bytes at the
    path (a planted one): nothing it gives is taken, as it hashes to no blob of ours."""
    cli, replica = healthy
    blob, pack, at = _data_chunk(cli, lake_tree)
    with _repo(cli) as repo:
        ours = repo.snapshots()[0]
    size = (lake_tree / "random.bin").stat().st_size
    (lake_tree / "random.bin").write_bytes(os.urandom(size))
    with Repository.open(open_backend(str(replica)), REPLICA_PASSWORD) as theirs:
        (copy,) = theirs.snapshots()
        planted = backup(theirs, [str(lake_tree)])
        with theirs.writer() as w:
            w.save_snapshot(msgspec.structs.replace(planted, original=ours.id, id=""))
        theirs.forget_snapshot(planted.id)
        theirs.forget_snapshot(copy.id)
    _flip(cli, pack, at)

    healed = _heal(cli, replica, "--json")
    assert healed.returncode == 3
    assert json.loads(healed.stdout)["lost"] == [
        f"blob {blob.hex()[:16]} (pack {pack[:16]}): the replica's {lake_tree}/random.bin differs"
    ]
    assert _checked(cli).returncode == 1


def test_a_replica_chunked_otherwise_heals_by_byte_range(
    healthy: tuple[Cli, Path], lake_tree: Path
) -> None:
    """The replica backed the same file up with its own chunker (its snapshot naming ours
    as its original): the lost chunk's bytes are the same range of its file."""
    cli, _copied = healthy
    _blob, pack, at = _data_chunk(cli, lake_tree)
    with _repo(cli) as repo:
        ours = repo.snapshots()[0]
        mine = len(_file_node(repo, lake_tree / "random.bin").content)
    replica = lake_tree.parent / "other-chunker"
    small = ChunkerParams(min_size=8 * 1024, avg_size=24 * 1024, max_size=96 * 1024)
    with Repository.init(open_backend(str(replica)), REPLICA_PASSWORD, kdf=CHEAP_KDF,
                         chunker=small) as theirs:  # fmt: skip
        own = backup(theirs, [str(lake_tree)])
        node = resolve(theirs, bytes.fromhex(own.tree), str(lake_tree / "random.bin"))
        assert node is not None and len(node.content) != mine  # nothing lines up
        with theirs.writer() as w:
            w.save_snapshot(msgspec.structs.replace(own, original=ours.id, id=""))
        theirs.forget_snapshot(own.id)
    _flip(cli, pack, at)

    healed = _heal(cli, replica, "--json")
    assert healed.returncode == 0, healed.stderr
    assert json.loads(healed.stdout)["healed"] == 1
    assert _checked(cli).returncode == 0


@pytest.mark.parametrize("backend_kind", ["s3"])
def test_a_missing_pack_is_healed_from_a_replica_on_s3(
    cli: Cli, lake_tree: Path, tmp_path: Path, new_location: Callable[[str], str]
) -> None:
    cli.repo = init_small_packs(str(tmp_path / "small"))
    cli.run("backup", str(lake_tree), check=True)
    replica = new_location("replica")
    Repository.init(open_backend(replica), REPLICA_PASSWORD, kdf=CHEAP_KDF).close()
    _copy(replica, REPLICA_PASSWORD, str(cli.repo), cli.env["SNAPFS_PASSWORD"], cli.env)
    _blob, pack, _at = _data_chunk(cli, lake_tree)
    _pack_file(cli, pack).unlink()

    healed = cli.run("repair", "packs", "--from", replica, "--json",
                     env={"SNAPFS_FROM_PASSWORD": REPLICA_PASSWORD})  # fmt: skip
    assert healed.returncode == 0, healed.stderr
    assert json.loads(healed.stdout)["packs_removed"] == [pack]
    checked = _checked(cli)
    assert checked.returncode == 0, checked.stderr
