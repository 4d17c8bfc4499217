from __future__ import annotations

import os

import msgspec
import pytest

from snapfs.crypto import MasterKey
from snapfs.errors import SnapshotNotFound
from snapfs.pack import BlobKind, PackWriter, read_header
from snapfs.snapshot import (
    Snapshot,
    SnapshotFilter,
    TableRecord,
    decode_snapshot,
    encode_snapshot,
    filter_snapshots,
    find_parent,
    select,
)
from snapfs.tree import Node, decode_tree, encode_tree


def test_pack_header_lists_blobs() -> None:
    key = MasterKey.generate()
    w = PackWriter()
    blobs = [b"one" * 50, b"two" * 70]
    for data in blobs:
        w.add(key.blob_id(data), BlobKind.DATA, key.seal(data), len(data))
    pack_id, raw = w.finish(key)
    entries = read_header(key, raw)
    assert [(e.blob_id, e.raw_length) for e in entries] == [(key.blob_id(b), len(b)) for b in blobs]
    assert [key.open(raw[e.offset : e.offset + e.length]) for e in entries] == blobs
    assert len(pack_id) == 64


def _node(name: bytes) -> Node:
    return Node(name=name, type="file", mode=0o644, uid=0, gid=0, user="root", group="root",
                mtime_ns=1, ctime_ns=2)  # fmt: skip


def test_tree_encoding_is_canonical_and_sorted_by_bytes() -> None:
    names = [b"b", b"\xff", b"a", b"caf\xc3\xa9"]
    one = encode_tree([_node(n) for n in names])
    two = encode_tree([_node(n) for n in reversed(names)])
    assert one == two
    tree = decode_tree(one)
    assert [n.name for n in tree.nodes] == sorted(names)
    assert tree.find(b"\xff") == _node(b"\xff")
    assert tree.find(b"zz") is None


def _snap(sid: str, time: str) -> Snapshot:
    return Snapshot(time=time, host="h", user="u", paths=["/p"], tree="00", id=sid)


def test_selectors() -> None:
    snaps = [_snap("abc1", "2024-01-01T00:00:00+00:00"), _snap("abd2", "2024-02-01T00:00:00+00:00")]
    assert select(snaps, "latest").id == "abd2"
    assert select(snaps, "abc").id == "abc1"
    with pytest.raises(SnapshotNotFound, match="'ab' matches 2 snapshots; give more of the id"):
        select(snaps, "ab")
    with pytest.raises(SnapshotNotFound, match="no snapshot matches 'zz'"):
        select(snaps, "zz")


def test_only_a_copy_encodes_its_original() -> None:
    """Snapshots made before ``original`` (and ``tables``) existed must keep their bytes,
    hence their ids."""
    snap = Snapshot(time="2024-05-01T02:00:00+00:00", host="h", user="u", paths=["/a"], tree="ab")
    plain = msgspec.msgpack.decode(encode_snapshot(snap))
    assert "original" not in plain and "tables" not in plain and "id" in plain
    assert list(plain) == [f for f in Snapshot.__struct_fields__ if f not in ("original", "tables")]
    copy = msgspec.structs.replace(snap, original="ff" * 32)
    assert decode_snapshot(encode_snapshot(copy), "c1") == msgspec.structs.replace(copy, id="c1")


def test_a_snapshot_that_pinned_tables_encodes_them_and_an_older_one_reads_none() -> None:
    record = TableRecord(path="/lake/sales", format="delta", version=13,
                         commit_time="2026-12-03T10:00:00+00:00", files=4, bytes=3600)  # fmt: skip
    snap = Snapshot(time="2026-12-03T10:01:00+00:00", host="h", user="u", paths=["/lake"],
                    tree="ab", tables=[record])  # fmt: skip
    assert decode_snapshot(encode_snapshot(snap), "s1").tables == [record]
    older = msgspec.msgpack.encode({"time": snap.time, "host": "h", "user": "u",
                                    "paths": ["/lake"], "tree": "ab"})  # fmt: skip
    assert decode_snapshot(older, "s0").tables == []


def test_a_delta_record_encodes_as_format_1_1_did_and_an_iceberg_one_with_its_metadata() -> None:
    """A Delta record has no ``metadata``: encoded without the key, its snapshot keeps the
    bytes (and id) it had before Iceberg records existed."""
    delta = TableRecord(path="/lake/d", format="delta", version=13,
                        commit_time="2026-12-03T10:00:00+00:00", files=4, bytes=3600)  # fmt: skip
    meta = "/lake/i/metadata/00003-a.metadata.json"
    iceberg = msgspec.structs.replace(delta, path="/lake/i", format="iceberg", metadata=meta)
    snap = Snapshot(time="2026-12-03T10:01:00+00:00", host="h", user="u", paths=["/lake"],
                    tree="ab", tables=[delta, iceberg])  # fmt: skip
    plain = msgspec.msgpack.decode(encode_snapshot(snap))
    assert [list(t) for t in plain["tables"]] == [
        ["path", "format", "version", "commit_time", "files", "bytes", "torn"],
        ["path", "format", "version", "commit_time", "files", "bytes", "torn", "metadata"],
    ]
    assert decode_snapshot(encode_snapshot(snap), "s1").tables == [delta, iceberg]


def test_a_filter_parses_as_typed_and_describes_itself_as_given() -> None:
    f = SnapshotFilter.parse(("db1",), ("old,weekly", ""), ("rel/dir", "s3://b/p", "/a//b/"))
    assert f.tags == (frozenset({"old", "weekly"}), frozenset({""}))
    assert f.paths == (os.path.abspath("rel/dir"), "s3://b/p", "/a/b")  # as backup records
    assert f.describe() == (
        f"--host db1 --tag old,weekly --tag '' --path {os.path.abspath('rel/dir')} "
        "--path s3://b/p --path /a/b"
    )
    assert not SnapshotFilter.parse((), (), ()) and f


def test_latest_is_the_newest_that_passes_and_an_id_is_taken_whatever_the_filter() -> None:
    def snap(i: int, host: str, tags: list[str]) -> Snapshot:
        return Snapshot(time=f"2024-01-0{i}T00:00:00+00:00", host=host, user="u",
                        paths=["/d"], tree="00", tags=tags, id=f"{i}" * 8)  # fmt: skip

    snaps = [snap(1, "db1", ["old"]), snap(2, "db1", []), snap(3, "web1", ["old"])]
    db1 = SnapshotFilter(hosts=("db1",))
    assert select(snaps, "latest", db1).id == "2" * 8
    assert select(snaps, "latest", SnapshotFilter(tags=(frozenset({""}),))).id == "2" * 8
    assert select(snaps, "3333", db1).id == "3" * 8
    assert filter_snapshots(snaps, SnapshotFilter(hosts=("db1",), tags=(frozenset({"old"}),))) == [
        snaps[0]
    ]
    with pytest.raises(SnapshotNotFound, match=r"^no snapshot matches --host nobody$"):
        select(snaps, "latest", SnapshotFilter(hosts=("nobody",)))


def test_find_parent_keeps_to_the_kind_of_source() -> None:
    """A stream's "/db.sql" is not the local file /db.sql: neither is the other's parent."""

    def made(time: str, source: str) -> Snapshot:
        return Snapshot(time=time, host="h", user="u", paths=["/db.sql"], tree="00",
                        id=time[-4:] + source, source=source)  # fmt: skip

    local = made("2026-12-03T10:00:00+00:00", "local")
    stream = made("2026-12-03T09:00:00+00:00", "stdin")
    snaps = [local, stream]
    assert find_parent(snaps, "h", ["/db.sql"], "stdin") is stream
    assert find_parent(snaps, "h", ["/db.sql"]) is local
    assert find_parent([local], "h", ["/db.sql"], "stdin") is None
