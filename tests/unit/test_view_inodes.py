"""The mount's namespace and inode numbering, as pure logic (the real mounts are in
tests/integration/test_mount.py)."""

from __future__ import annotations

import tracemalloc
from datetime import datetime

from snapfs.fuse.inodes import ROOT_INODE, InodeTable
from snapfs.snapshot import Snapshot
from snapfs.tree import DIR, FILE, Node
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
    return Node(name=b"", type=DIR, mode=0o755, uid=0, gid=0, user="", group="", mtime_ns=0,
                ctime_ns=0, subtree=b"t" * 32)  # fmt: skip


def test_inode_numbers_are_stable_and_hardlinks_share_one() -> None:
    table = InodeTable(_root(), single_snapshot=True)
    a = table.child(ROOT_INODE, _file(b"a", inode=11, links=2))
    b = table.child(ROOT_INODE, _file(b"b", inode=11, links=2))
    c = table.child(ROOT_INODE, _file(b"c", inode=12))
    assert a == b != c
    assert table.child(ROOT_INODE, _file(b"c", inode=12)) == c


def test_forget_drops_the_item_but_the_number_comes_back_for_the_same_name() -> None:
    table = InodeTable(_root(), single_snapshot=True)
    ino = table.child(ROOT_INODE, _file(b"x"))
    table.remember(ino, 2)
    table.forget(ino, 1)
    assert table.get(ino).lookups == 1
    table.forget(ino, 1)
    assert len(table) == 1  # only the root is live
    assert table.child(ROOT_INODE, _file(b"x")) == ino
    table.forget(ROOT_INODE, 5)  # the root is never forgotten
    assert table.get(ROOT_INODE).lookups == 1


def test_a_forgotten_item_leaves_nothing_behind_and_gets_its_number_back() -> None:
    table = InodeTable(_root(), single_snapshot=True)
    files = [_file(b"f%d" % i, inode=i + 2, links=1 + i % 2) for i in range(20_000)]
    first = {}
    for node in files[:100]:
        first[node.name] = table.child(ROOT_INODE, node)
        table.forget(first[node.name], 0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for node in files:
            ino = table.child(ROOT_INODE, node)
            table.remember(ino)
            assert table.forget(ino, 1)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table) == 1
    assert grown < 64 * 1024  # a map kept per name would hold 20,000 entries: megabytes
    assert {n.name: table.child(ROOT_INODE, n) for n in files[:100]} == first
