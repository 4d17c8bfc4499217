"""Damage in a real repository (a flipped byte, a truncated pack, a missing pack, a damaged
tree), met by the CLI in subprocesses: restore brings back every intact file exactly and
names each damaged one; dump and copy name what they cannot carry."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapfs.index import IndexEntry
from snapfs.repository import Repository
from snapfs.store.url import open_backend
from snapfs.tree import FILE, Node
from snapfs.walk import resolve, walk
from tests.conftest import CHEAP_KDF, SNAPFS, Cli, init_small_packs, reopened
from tests.helpers import describe, tmpfs


@pytest.fixture
def small(cli: Cli, lake_tree: Path, tmp_path: Path) -> Cli:
    """``cli`` on a repository of 256 KiB packs holding one backup of ``lake_tree``, so a
    pack holds a few of random.bin's chunks and little else."""
    cli.repo = init_small_packs(str(tmp_path / "small"))
    cli.run("backup", str(lake_tree), check=True)
    return cli


def _repo(cli: Cli) -> Repository:
    return reopened(str(cli.repo))


def _file_node(repo: Repository, path: Path) -> Node:
    """The file at ``path`` in the oldest snapshot (that of ``lake_tree``)."""
    first = min(repo.snapshots(), key=lambda s: s.time)
    node = resolve(repo, bytes.fromhex(first.tree), str(path))
    assert node is not None and node.type == FILE
    return node


def _chunk(repo: Repository, node: Node, i: int) -> tuple[IndexEntry, int]:
    """The index entry of the file's chunk ``i`` and the chunk's offset in the file."""
    offset = sum(repo.blob_entry(b).raw_length for b in node.content[:i])
    return repo.blob_entry(node.content[i]), offset


def _pack_file(cli: Cli, pack_id: str) -> Path:
    path = Path(cli.repo) / "data" / pack_id[:2] / pack_id
    path.chmod(0o644)
    return path


def _flip(cli: Cli, pack_id: str, at: int) -> None:
    path = _pack_file(cli, pack_id)
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


def _files_using(repo: Repository, hurt: object) -> set[str]:
    """The snapshot's files (paths as restore names them below the target) with a chunk for
    which ``hurt(entry)`` holds."""
    root = bytes.fromhex(repo.snapshots()[0].tree)
    return {
        os.fsdecode(path)
        for path, node in walk(repo, root)
        if node.type == FILE and any(hurt(repo.blob_entry(b)) for b in node.content)  # type: ignore[operator]
    }


def _restore(cli: Cli, out: Path, *args: str) -> tuple[int, list[str], dict[str, object]]:
    """``restore latest`` into ``out`` with --json: exit status, stderr lines, summary."""
    done = cli.run("restore", "latest", "--target", str(out), "--json", *args)
    summary = json.loads(done.stdout.decode().splitlines()[-1])
    return done.returncode, done.stderr.decode().splitlines(), summary


def _second_backup(cli: Cli, tmp_path: Path) -> Path:
    """A backup of another directory, of one new file: a snapshot and an index file more."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "fine.txt").write_bytes(os.urandom(50_000))
    cli.run("backup", str(other), check=True)
    return other


def _assert_intact_except(src: Path, out: Path, damaged: set[str]) -> None:
    """Every entry of ``src`` is in ``out`` exactly (contents, modes, owners, times, xattrs,
    holes, hardlinks), but for the ``damaged`` files, which are absent."""
    restored = out / src.relative_to("/")
    left = {k: v for k, v in describe(src).items() if os.fsdecode(k) not in damaged}
    assert describe(restored) == left


def _assert_whole(cli: Cli, src: Path, out: Path) -> None:
    """The repository passes ``check --read-data`` and restores ``src`` into ``out`` whole,
    with not a line on stderr."""
    checked = cli.run("check", "--read-data")
    assert checked.returncode == 0, checked.stderr
    code, lines, _summary = _restore(cli, out)
    assert (code, lines) == (0, [])
    _assert_intact_except(src, out, set())


def test_a_flipped_byte_in_a_data_pack_fails_only_its_file(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    with _repo(small) as repo:
        node = _file_node(repo, lake_tree / "random.bin")
        entry, offset = _chunk(repo, node, 1)
    assert len(node.content) > 2
    _flip(small, entry.pack_id, entry.offset + entry.length // 2)
    blob, pack = node.content[1].hex()[:16], entry.pack_id[:16]
    error = f"blob {blob} in pack {pack} is damaged"

    out = tmp_path / "out"
    code, lines, summary = _restore(small, out)
    where = str(out / lake_tree.relative_to("/") / "random.bin")
    assert code == 3
    assert lines == [f"warning: {where}: {error}: not restored"]
    ranges = [{"offset": offset, "length": entry.raw_length}]
    assert summary["damaged"] == [
        {"path": where, "error": error, "written": False, "ranges": ranges}
    ]
    _assert_intact_except(lake_tree, out, {"random.bin"})

    # --allow-damaged: the file too, with exactly the damaged chunk's bytes zero-filled.
    out2 = tmp_path / "out2"
    code, lines, summary = _restore(small, out2, "--allow-damaged")
    where = str(out2 / lake_tree.relative_to("/") / "random.bin")
    end = offset + entry.raw_length
    assert code == 3
    assert lines == [
        f"warning: {where}: {error}: written with bytes {offset}-{end - 1} zero-filled"
    ]
    assert summary["damaged"] == [
        {"path": where, "error": error, "written": True, "ranges": ranges}
    ]
    original = (lake_tree / "random.bin").read_bytes()
    expected = original[:offset] + bytes(entry.raw_length) + original[end:]
    assert Path(where).read_bytes() == expected
    want, got = describe(lake_tree)[b"random.bin"], describe(out2 / lake_tree.relative_to("/"))
    assert got[b"random.bin"] == {**want, "content": expected}  # metadata all there
    assert {k: v for k, v in got.items() if k != b"random.bin"} == {
        k: v for k, v in describe(lake_tree).items() if k != b"random.bin"
    }


def test_a_truncated_pack_fails_the_files_with_chunks_past_its_end(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    with _repo(small) as repo:
        entry, _ = _chunk(repo, _file_node(repo, lake_tree / "random.bin"), 1)
        cut = entry.offset + 10
        lost = _files_using(
            repo, lambda e: e.pack_id == entry.pack_id and e.offset + e.length > cut
        )
    path = _pack_file(small, entry.pack_id)
    os.truncate(path, cut)
    root = lake_tree.relative_to("/")
    assert f"{root}/random.bin" in lost

    code, lines, summary = _restore(small, tmp_path / "out")
    assert code == 3
    damaged = summary["damaged"]
    assert isinstance(damaged, list)
    assert sorted(d["path"] for d in damaged) == sorted(str(tmp_path / "out" / p) for p in lost)
    assert all(d["error"].endswith(f"is lost: pack {entry.pack_id[:16]} is truncated")
               for d in damaged)  # fmt: skip
    assert len(lines) == len(lost)
    _assert_intact_except(lake_tree, tmp_path / "out", {p[len(str(root)) + 1 :] for p in lost})


def test_a_missing_pack_fails_only_the_files_that_use_it(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    with _repo(small) as repo:
        entry, _ = _chunk(repo, _file_node(repo, lake_tree / "random.bin"), 1)
        lost = _files_using(repo, lambda e: e.pack_id == entry.pack_id)
    _pack_file(small, entry.pack_id).unlink()
    root = lake_tree.relative_to("/")

    code, lines, summary = _restore(small, tmp_path / "out")
    assert code == 3
    out = tmp_path / "out"
    # small.txt is the second name of dir/hardlink.txt: when that is lost, so is the link.
    link = f"{root}/small.txt"
    assert sorted(lines) == sorted(
        f"warning: {out / p}: hardlink: its first name was not restored"
        if p == link
        else f"warning: {out / p}: pack {entry.pack_id[:16]} is missing: not restored"
        for p in lost
    )
    assert len(summary["damaged"]) == len(lost - {link})  # type: ignore[arg-type]
    _assert_intact_except(lake_tree, out, {p[len(str(root)) + 1 :] for p in lost})


def test_a_flipped_byte_in_a_tree_pack_skips_that_directory_only(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    with _repo(small) as repo:
        nested = resolve(repo, bytes.fromhex(repo.snapshots()[0].tree), str(lake_tree / "dir"))
        assert nested is not None and nested.subtree is not None
        entry = repo.blob_entry(nested.subtree)
    _flip(small, entry.pack_id, entry.offset + entry.length // 2)

    code, lines, _summary = _restore(small, tmp_path / "out")
    out = tmp_path / "out" / lake_tree.relative_to("/")
    tree, pack = nested.subtree.hex()[:16], entry.pack_id[:16]
    assert code == 3
    assert lines == [
        f"warning: /{lake_tree.relative_to('/')}/dir: blob {tree} in pack {pack} is damaged: "
        "its entries are skipped"
    ]
    # Its directory is made (empty: its entries are in the lost tree), every other entry
    # comes back exactly (small.txt without its second name, dir/hardlink.txt).
    assert list((out / "dir").iterdir()) == []
    want = {k: v for k, v in describe(lake_tree).items() if not k.startswith(b"dir")}
    del want[b"small.txt"]["hardlinked_with"]
    assert {k: v for k, v in describe(out).items() if not k.startswith(b"dir")} == want


def test_dump_of_a_damaged_file_names_it_and_exits_1(small: Cli, lake_tree: Path) -> None:
    with _repo(small) as repo:
        node = _file_node(repo, lake_tree / "random.bin")
        entry, offset = _chunk(repo, node, 1)
    _flip(small, entry.pack_id, entry.offset + entry.length // 2)
    path = f"{lake_tree}/random.bin"
    dumped = small.run("dump", "latest", path)
    assert dumped.returncode == 1
    assert dumped.stderr.decode() == (
        f"snapfs: {path}: blob {node.content[1].hex()[:16]} in pack {entry.pack_id[:16]} "
        f"is damaged; {offset} bytes written before it\n"
    )
    assert dumped.stdout == (lake_tree / "random.bin").read_bytes()[:offset]
    fine = small.run("dump", "latest", f"{lake_tree}/small.txt")
    assert (fine.returncode, fine.stdout) == (0, b"hello lake\n")


def test_copy_leaves_out_the_damaged_snapshot_and_copies_the_others(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    other = _second_backup(small, tmp_path)
    with _repo(small) as repo:
        first = min(repo.snapshots(), key=lambda s: s.time)
        node = _file_node(repo, lake_tree / "random.bin")
        entry, _ = _chunk(repo, node, 1)
    _flip(small, entry.pack_id, entry.offset + entry.length // 2)

    dest = tmp_path / "dest"
    Repository.init(open_backend(str(dest)), "dest password", kdf=CHEAP_KDF).close()
    env = {**small.env, "SNAPFS_PASSWORD": "dest password",
           "SNAPFS_FROM_PASSWORD": small.env["SNAPFS_PASSWORD"]}  # fmt: skip
    copied = subprocess.run([*SNAPFS, "-r", str(dest), "copy", "--from-repo", str(small.repo)],
                            capture_output=True, env=env, timeout=120)  # fmt: skip
    assert copied.returncode == 3
    assert copied.stderr.decode().splitlines() == [
        f"warning: snapshot {first.short_id} is not copied: blob "
        f"{node.content[1].hex()[:16]} in pack {entry.pack_id[:16]} is damaged"
    ]
    listed = subprocess.run([*SNAPFS, "-r", str(dest), "snapshots", "--json"],
                            capture_output=True, env=env, check=True)  # fmt: skip
    assert [s["paths"] for s in json.loads(listed.stdout)] == [[str(other)]]
    checked = subprocess.run([*SNAPFS, "-r", str(dest), "check", "--read-data"],
                             capture_output=True, env=env)  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_every_index_file_deleted_then_repair_index_and_all_is_back(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    """The shared index cache still holds the lost files' runs: it must notice both the loss
    and the new index files."""
    packs = {p.name for p in (Path(small.repo) / "data").rglob("*") if p.is_file()}
    for f in (Path(small.repo) / "index").iterdir():
        f.unlink()
    assert small.run("check").returncode == 1
    code, _lines, summary = _restore(small, tmp_path / "before")
    assert code == 3 and summary["files"] == 0

    repaired = small.run("repair", "index", "--json")
    assert repaired.returncode == 0, repaired.stderr
    report = json.loads(repaired.stdout)
    assert (report["packs"], report["headers_read"]) == (len(packs), len(packs))
    assert (report["index_files_written"], report["index_files_removed"]) == (1, 0)
    assert report["unreadable_packs"] == report["damaged_index_files"] == []
    _assert_whole(small, lake_tree, tmp_path / "after")


def test_repair_index_replaces_a_damaged_index_file_and_names_an_unreadable_pack(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    _second_backup(small, tmp_path)  # a second index file
    index = sorted((Path(small.repo) / "index").iterdir())
    assert len(index) == 2
    damaged = index[0]
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    damaged.chmod(0o644)
    damaged.write_bytes(bytes(raw))
    assert small.run("check").returncode == 1
    with _repo(small) as repo:
        entry, _ = _chunk(repo, _file_node(repo, lake_tree / "random.bin"), 1)
    os.truncate(_pack_file(small, entry.pack_id), entry.offset + 10)  # its header is gone

    repaired = small.run("repair", "index")
    assert repaired.returncode == 3
    assert repaired.stderr.decode().splitlines() == [
        f"warning: index file {damaged.name[:16]} is damaged: replaced",
        f"warning: pack {entry.pack_id[:16]}: has a damaged header: pack header length out of "
        "range: its blobs are not indexed",
    ]
    assert damaged.name not in {p.name for p in (Path(small.repo) / "index").iterdir()}
    # The truncated pack's blobs are not in the index now: check names what they held.
    checked = small.run("check", "--json")
    assert checked.returncode == 1
    lost = {f.split(":", 1)[1] for f in json.loads(checked.stdout)["affected_files"]}
    assert f"{lake_tree}/random.bin" in lost


def test_repair_snapshots_drops_what_is_lost_and_keeps_the_original_forgotten(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    with _repo(small) as repo:
        snap = repo.snapshots()[0]
        node = _file_node(repo, lake_tree / "random.bin")
        entry, _ = _chunk(repo, node, 1)
        nested = resolve(repo, bytes.fromhex(snap.tree), str(lake_tree / "dir" / "nested"))
        assert nested is not None and nested.subtree is not None
        tree = repo.blob_entry(nested.subtree)
    _flip(small, entry.pack_id, entry.offset + entry.length // 2)
    _flip(small, tree.pack_id, tree.offset + tree.length // 2)

    # Without --read-data only what the index lacks counts: the lost tree.
    dry = small.run("repair", "snapshots", "--dry-run")
    assert dry.returncode == 3
    assert dry.stderr.decode().splitlines() == [
        f"warning: snapshot {snap.short_id}: {lake_tree}/dir/nested: blob "
        f"{nested.subtree.hex()[:16]} in pack {tree.pack_id[:16]} is damaged"
    ]
    repaired = small.run("repair", "snapshots", "--read-data")
    assert repaired.returncode == 3, repaired.stderr
    assert sorted(repaired.stderr.decode().splitlines()) == sorted([
        f"warning: snapshot {snap.short_id}: {lake_tree}/dir/nested: blob "
        f"{nested.subtree.hex()[:16]} in pack {tree.pack_id[:16]} is damaged",
        f"warning: snapshot {snap.short_id}: {lake_tree}/random.bin: blob "
        f"{node.content[1].hex()[:16]} is damaged: dropped",
    ])  # fmt: skip
    with _repo(small) as repo:
        (new,) = repo.snapshots()
        assert [s.id for s in repo.forgotten()] == [snap.id]
    assert new.tags == ["repaired"] and new.id != snap.id
    assert small.run("repair", "snapshots", "--read-data").returncode == 0  # nothing left

    code, lines, _summary = _restore(small, tmp_path / "out")
    assert (code, lines) == (0, [])
    out = tmp_path / "out" / lake_tree.relative_to("/")
    assert list((out / "dir" / "nested").iterdir()) == []
    want = {k: v for k, v in describe(lake_tree).items()
            if k != b"random.bin" and not k.startswith(b"dir/nested/")}  # fmt: skip
    got = describe(out)
    assert {k: v for k, v in got.items() if k != b"dir/nested"} == {
        k: v for k, v in want.items() if k != b"dir/nested"
    }


def test_a_flipped_byte_in_a_snapshot_file_leaves_out_that_snapshot_only(
    small: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    other = _second_backup(small, tmp_path)
    with _repo(small) as repo:
        first = min(repo.snapshots(), key=lambda s: s.time)
    path = Path(small.repo) / "snapshots" / first.id
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    line = f"warning: snapshot {first.short_id} is damaged: authentication failed: left out"

    listed = small.run("snapshots", "--json")
    assert (listed.returncode, listed.stderr.decode().splitlines()) == (0, [line])
    assert [s["paths"] for s in json.loads(listed.stdout)] == [[str(other)]]
    code, lines, summary = _restore(small, tmp_path / "out")
    assert (code, lines, summary["files"]) == (0, [line], 1)
    assert (tmp_path / "out" / other.relative_to("/") / "fine.txt").read_bytes() == (
        other / "fine.txt"
    ).read_bytes()
    checked = small.run("check")
    assert checked.returncode == 1
    assert checked.stderr.decode().splitlines() == [
        f"error: snapshot {first.short_id} is damaged: authentication failed"
    ]
    packs = sorted((Path(small.repo) / "data").rglob("*"))
    pruned = small.run("prune")  # the damaged snapshot's data looks unused: kept all the same
    assert (pruned.returncode, pruned.stderr.decode().splitlines()) == (1, [
        f"snapfs: snapshot {first.short_id} is damaged: authentication failed: nothing is "
        "deleted while a snapshot cannot be read (heal it, or remove its file: see README, "
        "When check reports damage)"
    ])  # fmt: skip
    assert sorted((Path(small.repo) / "data").rglob("*")) == packs
    repaired = small.run("repair", "snapshots")
    assert (repaired.returncode, repaired.stderr.decode().splitlines()) == (3, [line])
    assert repaired.stdout.decode() == "0 snapshots repaired, 1 intact\n"
    backed = small.run("backup", str(lake_tree))  # a backup carries on, without a parent
    assert (backed.returncode, backed.stderr.decode().splitlines()) == (0, [line])


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tmpfs", "3m") as where:
        yield where


def test_the_disk_filling_up_during_a_backup(cli: Cli, full_disk: Path, tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(8_000_000))  # incompressible, past the 3 MiB
    (src / "small.txt").write_text("small\n")
    cli.repo = full_disk / "repo"
    Repository.init(open_backend(str(cli.repo)), cli.env["SNAPFS_PASSWORD"], kdf=CHEAP_KDF,
                    pack_size=1024 * 1024).close()  # fmt: skip
    before = {p.relative_to(cli.repo) for p in Path(cli.repo).rglob("*") if p.is_file()}

    done = cli.run("backup", str(src))
    assert done.returncode == 1
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith(f"snapfs: cannot write {cli.repo}/data/")
    assert line.endswith(": No space left on device")
    after = {p.relative_to(cli.repo) for p in Path(cli.repo).rglob("*") if p.is_file()}
    # Nothing half-written under any name: only whole packs, the index naming them, no
    # snapshot, no lock, no temporary file.
    added = after - before
    assert added and {p.parts[0] for p in added} <= {"data", "index"}
    assert all(len(p.name) == 64 for p in added)
    checked = cli.run("check", "--read-data")
    assert checked.returncode == 0, checked.stderr
    listed = cli.run("snapshots", "--json")
    assert json.loads(listed.stdout) == []
