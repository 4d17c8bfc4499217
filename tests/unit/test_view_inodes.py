"""The mount's namespace and inode numbering, as pure logic (the real mounts are in
tests/integration/test_mount.py)."""

from __future__ import annotations

import tracemalloc
from datetime import datetime

import pytest

from snapfs import view
from snapfs.fuse import inodes
from snapfs.fuse.inodes import ROOT_INODE, InodeTable
from snapfs.index import IndexEntry
from snapfs.pack import BlobKind
from snapfs.snapshot import Snapshot
from snapfs.tree import DIR, FILE, Node, Tree
from snapfs.view import VirtualDir, repository_layout, snapshot_dir_name


def _snap(sid: str, when: str, host: str, tags: list[str]) -> Snapshot:
    return Snapshot(time=when, host=host, user="u", paths=["/d"], tree="00" * 32, tags=tags,
                    id=sid)  # fmt: skip


def _file(name: bytes, *, inode: int = 0, links: int = 1) -> Node:
    return Node(name=name, type=FILE, mode=0o644, uid=0, gid=0, user="", group="",
                mtime_ns=0, ctime_ns=0, inode=inode, device=7, links=links)  # fmt: skip


def test_snapshot_directories_are_named_by_local_time_and_short_id() -> None:
    snap = _snap("1a2b3c4d" + "0" * 56, "2026-11-24T10:15:00+00:00", "h", [])
    local = datetime.fromisoformat(snap.time).astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    assert snapshot_dir_name(snap) == f"{local}_1a2b3c4d"


def test_layout_has_latest_tags_and_hosts_pointing_into_snapshots() -> None:
    old = _snap("aa" * 32, "2026-11-01T00:00:00+00:00", "db1", ["nightly", "a/b"])
    new = _snap("bb" * 32, "2026-11-02T00:00:00+00:00", "db2", [])
    root = repository_layout([new, old])
    assert sorted(root.entries) == [b"hosts", b"latest", b"snapshots", b"tags"]
    snaps = root.entries[b"snapshots"]
    assert isinstance(snaps, VirtualDir)
    assert [n.decode()[-8:] for n in snaps.entries] == ["aaaaaaaa", "bbbbbbbb"]
    latest = root.entries[b"latest"]
    assert isinstance(latest, Node)
    assert latest.target == f"snapshots/{snapshot_dir_name(new)}".encode()
    tags = root.entries[b"tags"]
    assert isinstance(tags, VirtualDir)
    assert sorted(tags.entries) == [b"a_b", b"nightly"]  # a tag with "/" still one name
    nightly = tags.entries[b"nightly"]
    assert isinstance(nightly, VirtualDir)
    link = nightly.entries[snapshot_dir_name(old).encode()]
    assert isinstance(link, Node)
    assert link.target == f"../../snapshots/{snapshot_dir_name(old)}".encode()


def test_an_empty_repository_has_no_latest() -> None:
    assert b"latest" not in repository_layout([]).entries


def _root() -> Node:
    return _dir(b"")


def _dir(name: bytes) -> Node:
    return Node(name=name, type=DIR, mode=0o755, uid=0, gid=0, user="", group="", mtime_ns=0,
                ctime_ns=0, subtree=b"t" * 32)  # fmt: skip


def test_inode_numbers_are_stable_and_hardlinks_share_one() -> None:
    table = InodeTable(_root(), single_snapshot=True)
    a = table.number(table.root, 1, _file(b"a", inode=11, links=2))
    b = table.number(table.root, 2, _file(b"b", inode=11, links=2))
    c = table.number(table.root, 3, _file(b"c", inode=12))
    assert a == b != c
    assert table.number(table.root, 3, _file(b"c", inode=12)) == c
    assert table.place(c) == (table.root, 3)  # a plain file's number says where it lies


def test_a_directory_lives_while_the_kernel_holds_it_or_anything_in_it() -> None:
    table = InodeTable(_root(), single_snapshot=True)
    sub = table.number(table.root, 1, _dir(b"sub"))
    table.remember(sub, 2)
    inner = table.number(table.dir(sub), 5, _file(b"x"))
    table.remember(inner)
    table.forget(sub, 2)
    assert table.place(inner)[0] is table.dir(sub)  # its file is still held
    assert table.forget(inner, 1)
    assert len(table) == 1  # only the root is live
    assert table.number(table.root, 1, _dir(b"sub")) == sub  # the same number again
    table.forget(ROOT_INODE, 5)  # the root is never forgotten
    assert table.dir(ROOT_INODE) is table.root


def test_held_files_cost_no_record_and_forgotten_links_leave_nothing() -> None:
    table = InodeTable(_root(), single_snapshot=True)
    files = [_file(b"f%d" % i, inode=i + 2, links=1 + i % 2) for i in range(20_000)]
    first = {n.name: table.number(table.root, i + 1, n) for i, n in enumerate(files[:100])}
    for ino in first.values():
        table.forget(ino, 0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, node in enumerate(files):
            ino = table.number(table.root, i + 1, node)
            table.remember(ino)
            if node.links > 1:
                assert table.forget(ino, 1)  # a hardlink's record goes with its last lookup
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table) == 1  # 10,000 plain files held, and no record for any of them
    assert grown < 64 * 1024  # a record per file would be megabytes
    assert {n.name: table.number(table.root, i + 1, n) for i, n in enumerate(files[:100])} == first


def test_directories_whose_ids_meet_are_told_apart_and_keep_their_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inodes, "_ID_BITS", 3)  # ids 2..7: six directories meet at once
    table = InodeTable(_root(), single_snapshot=True)
    subs = [table.number(table.root, slot, _dir(b"d%d" % slot)) for slot in range(1, 7)]
    for ino in subs:
        table.remember(ino)
    ids = [table.dir(ino).id for ino in subs]
    assert sorted(ids) == [2, 3, 4, 5, 6, 7]
    files = [table.number(table.dir(ino), 9, _file(b"x")) for ino in subs]
    assert [table.place(f)[0].ino for f in files] == subs  # each file finds its own directory
    for ino in subs:
        table.forget(ino, 1)
    assert len(table) == 1
    again = [table.number(table.root, slot, _dir(b"d%d" % slot)) for slot in reversed(range(1, 7))]
    for ino in again:
        table.remember(ino)
    assert [table.dir(ino).id for ino in reversed(again)] == ids  # moved ones kept theirs


def test_a_virtual_directory_keeps_each_name_s_number_across_refreshes() -> None:
    old = _snap("aa" * 32, "2026-11-01T00:00:00+00:00", "db1", [])
    new = _snap("bb" * 32, "2026-11-02T00:00:00+00:00", "db1", [])
    snaps = repository_layout([new]).entries[b"snapshots"]
    assert isinstance(snaps, VirtualDir)
    name_new = snapshot_dir_name(new).encode()
    numbered = snaps.number(name_new)
    _merge_into(snaps, repository_layout([old, new]).entries[b"snapshots"])
    assert snaps.number(snapshot_dir_name(old).encode()) != numbered
    assert snaps.number(name_new) == numbered
    _merge_into(snaps, repository_layout([old]).entries[b"snapshots"])
    assert snaps.named(numbered) is None  # gone from the list: its number names nothing


def _merge_into(old: object, new: object) -> None:
    assert isinstance(old, VirtualDir) and isinstance(new, VirtualDir)
    view._merge(old, new)


class _Trees:
    """Tree blobs by id, each of the raw length asked for; counts the trees decoded."""

    def __init__(self, raw_lengths: dict[bytes, int]) -> None:
        self.raw_lengths = raw_lengths
        self.decoded: list[bytes] = []

    def tree_entry(self, tree_id: bytes) -> IndexEntry:
        return IndexEntry("p" * 64, BlobKind.TREE, 0, 100, self.raw_lengths[tree_id])

    def load_tree(self, tree_id: bytes) -> Tree:
        self.decoded.append(tree_id)
        return Tree([])


def test_trees_are_decoded_ahead_only_when_small() -> None:
    trees = _Trees({b"s" * 32: 50_000, b"b" * 32: 64 << 20})
    snap = _snap("aa" * 32, "2026-11-01T00:00:00+00:00", "h", [])
    shown = view.View(trees, snap)  # type: ignore[arg-type]
    assert shown.preload(b"s" * 32) and not shown.preload(b"b" * 32)
    assert trees.decoded == [b"s" * 32]  # a crafted tree of millions waits to be opened
