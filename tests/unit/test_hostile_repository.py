"""What the repository does with objects an attacker holding a password wrote: trees that
are not trees, blobs that expand past what is recorded, places no blob can have, walks that
nest or fan out without end. All on a repository in memory."""

from __future__ import annotations

import re
import resource
from collections.abc import Iterator

import msgspec
import pytest
import zstandard

from snapfs.buffers import Data
from snapfs.copy import copy_snapshots
from snapfs.crypto import SEAL_OVERHEAD, MasterKey
from snapfs.diff import Change, diff_trees
from snapfs.errors import IntegrityError, UnsupportedFormat
from snapfs.pack import MAX_DATA_RAW, BlobKind, PackEntry, PackWriter, pack_key
from snapfs.repository import Repository
from snapfs.store.memory import MemoryBackend
from snapfs.tree import TreeProblem
from snapfs.walk import MAX_DEPTH, walk
from tests.conftest import CHEAP_KDF
from tests.crafted import (
    directory,
    file,
    nested,
    node,
    raw_tree,
    seal_as_is,
    shared_levels,
    snapshot,
    store_pack,
    zeros_frame,
)

BOMB = 2 << 30  # what the crafted blob expands to
RECORDED = 100_000  # what its index entry and pack header say


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def frame() -> bytes:
    return zeros_frame(BOMB)


def _bomb(repo: Repository, body: bytes) -> bytes:
    blob_id = repo.key.blob_id(b"what the file claims to hold")
    store_pack(repo, [(blob_id, BlobKind.DATA, seal_as_is(repo, body), RECORDED)])
    return blob_id


def test_a_zstd_bomb_is_damage_and_never_expands(memory_repo: Repository, frame: bytes) -> None:
    bomb = _bomb(memory_repo, frame)
    before = _peak_rss_mib()
    with pytest.raises(
        IntegrityError, match=r"^blob [0-9a-f]{16} in pack [0-9a-f]{16} is damaged$"
    ):
        memory_repo.read_blob(bomb)
    assert _peak_rss_mib() - before < 256


def test_a_frame_stating_a_size_past_the_recorded_one_is_refused_before_allocating(
    memory_repo: Repository,
) -> None:
    """zstd allocates what a frame states, whatever bound it is given: the size is read first."""
    out = zstandard.ZstdCompressor(level=1).compressobj(size=BOMB)
    piece = bytes(1 << 24)
    stated = b"".join([*(out.compress(piece) for _ in range(BOMB // len(piece))), out.flush()])
    assert zstandard.frame_content_size(stated) == BOMB
    before = _peak_rss_mib()
    with pytest.raises(IntegrityError, match=r"is damaged$"):
        memory_repo.read_blob(_bomb(memory_repo, stated))
    with pytest.raises(IntegrityError, match=r"^compressed data expands past its limit of 10 "):
        MasterKey.open(memory_repo.key, seal_as_is(memory_repo, stated), 10)
    assert _peak_rss_mib() - before < 256


def test_a_blob_shorter_than_recorded_is_damage(memory_repo: Repository) -> None:
    """Offsets in files follow from recorded lengths: a blob must be exactly as long."""
    data = b"short" * 100
    blob_id = memory_repo.key.blob_id(data)
    sealed = memory_repo.key.seal(data)
    store_pack(memory_repo, [(blob_id, BlobKind.DATA, sealed, len(data) + 1)])
    with pytest.raises(IntegrityError, match=r"is damaged$"):
        memory_repo.read_blob(blob_id)


def test_read_blob_ranges_hands_a_damaged_blob_aside_and_delivers_the_rest(
    memory_repo: Repository, frame: bytes
) -> None:
    bomb = _bomb(memory_repo, frame)
    with memory_repo.writer() as w:
        good, _ = w.add_blob(BlobKind.DATA, b"fine data" * 100)
    got: list[bytes] = []
    damaged: list[tuple[bytes, str]] = []

    def consume(blobs: Iterator[tuple[bytes, Data]]) -> None:
        got.extend(blob_id for blob_id, _data in blobs)

    memory_repo.read_blob_ranges(
        [bomb, good, b"\x07" * 32], consume, on_damaged=lambda b, e: damaged.append((b, str(e)))
    )
    assert got == [good]
    assert sorted(b for b, _ in damaged) == sorted([bomb, b"\x07" * 32])
    with pytest.raises(IntegrityError, match=r"is damaged$"):
        memory_repo.read_blob_ranges([bomb, good], consume)


@pytest.mark.parametrize(
    ("length", "raw_length", "why"),
    [
        (1 << 20, MAX_DATA_RAW + 1, f"a raw length of {MAX_DATA_RAW + 1} bytes"),
        ((1 << 31) - 1, 1000, f"a sealed length of {(1 << 31) - 1} bytes for 1000 raw"),
        (SEAL_OVERHEAD - 1, 0, f"a sealed length of {SEAL_OVERHEAD - 1} bytes for 0 raw"),
    ],
)
def test_an_index_entry_no_blob_can_have_is_refused_before_reading(
    memory_repo: Repository, length: int, raw_length: int, why: str
) -> None:
    """Else a read of the length it states would allocate that much (os.pread)."""
    blob_id = b"\x01" * 32
    entry = PackEntry(blob_id, BlobKind.DATA, 0, length, raw_length)
    memory_repo.index.add_pack("ab" * 32, [entry])
    with pytest.raises(IntegrityError, match=f"is damaged: the index records {why}"):
        memory_repo.read_blob(blob_id)


def test_a_pack_header_placing_a_blob_outside_the_pack_is_damage(
    memory_repo: Repository,
) -> None:
    pack = PackWriter()
    pack.add(b"\x02" * 32, BlobKind.DATA, memory_repo.key.seal(b"x" * 100), 100)
    pack.entries[0] = pack.entries[0]._replace(offset=10_000)
    pack_id, data = pack.finish(memory_repo.key)
    memory_repo.backend.put(pack_key(pack_id), data)
    with pytest.raises(IntegrityError, match="has a damaged header: pack header places blob"):
        memory_repo.read_pack_header(pack_id)


def test_a_tree_id_naming_a_data_blob_is_not_a_tree(memory_repo: Repository) -> None:
    with memory_repo.writer() as w:
        data_id, _ = w.add_blob(BlobKind.DATA, msgspec.msgpack.encode([[node(b"x")]]))
        root = w.save_tree([directory(b"sub", data_id), file(w, b"kept", b"k")])
    with pytest.raises(IntegrityError, match=f"^blob {data_id.hex()[:16]} is not a tree$"):
        memory_repo.load_tree(data_id)
    tree = memory_repo.load_tree(root)
    assert [n.name for n in tree.nodes] == [b"kept"]
    assert tree.problems == (TreeProblem(b"sub", "a subtree that is not a tree"),)


def test_a_tree_blob_that_does_not_decode_names_the_tree(memory_repo: Repository) -> None:
    with memory_repo.writer() as w:
        bad, _ = w.add_blob(BlobKind.TREE, b"\x92\x01\x02")
    with pytest.raises(IntegrityError, match=rf"^tree {bad.hex()[:16]} is damaged: not a valid"):
        memory_repo.load_tree(bad)


def test_walk_reports_each_refused_entry_with_its_path_or_raises_without_a_handler(
    memory_repo: Repository,
) -> None:
    with memory_repo.writer() as w:
        broken, _ = w.add_blob(BlobKind.TREE, b"garbage")
        evil = raw_tree(w, [node(b".."), directory(b"broken", broken), file(w, b"ok", b"o")])
        root = w.save_tree([directory(b"evil", evil)])
    seen: list[tuple[bytes, str]] = []
    paths = [p for p, _n in walk(memory_repo, root, on_problem=lambda p, m: seen.append((p, m)))]
    assert paths == [b"evil", b"evil/broken", b"evil/ok"]
    assert seen[0] == (b"evil/..", "a name no file system allows")
    assert seen[1][0] == b"evil/broken" and "is damaged: not a valid tree" in seen[1][1]
    with pytest.raises(IntegrityError, match=r"^/evil/\.\.: a name no file system allows$"):
        list(walk(memory_repo, root))


def test_walk_with_a_memo_enters_each_shared_subtree_once(memory_repo: Repository) -> None:
    """48 levels of two names for one subtree: 2**48 paths, 97 trees."""
    with memory_repo.writer() as w:
        root = shared_levels(w, 48)
    entries = list(walk(memory_repo, root, seen=set()))
    assert len(entries) == 2 * 48 + 1


def test_walk_stops_past_the_deepest_real_path_and_says_where(memory_repo: Repository) -> None:
    with memory_repo.writer() as w:
        root = nested(w, MAX_DEPTH + 3, [file(w, b"bottom", b"b")])
    problems: list[tuple[bytes, str]] = []
    count = sum(1 for _ in walk(memory_repo, root, on_problem=lambda p, m: problems.append((p, m))))
    assert count == MAX_DEPTH
    assert problems == [(b"/".join([b"d"] * MAX_DEPTH), f"directories nested deeper than "
                         f"{MAX_DEPTH} levels")]  # fmt: skip


def test_diff_of_deep_trees_needs_no_recursion(memory_repo: Repository) -> None:
    with memory_repo.writer() as w:
        one = nested(w, MAX_DEPTH - 1, [file(w, b"f", b"one")])
        two = nested(w, MAX_DEPTH - 1, [file(w, b"f", b"two")])
    changes = list(diff_trees(memory_repo, one, two))
    deep = "/" + "/".join(["d"] * (MAX_DEPTH - 1)) + "/f"
    assert changes == [Change("M", deep, 3, 3)]


def test_diff_reports_refused_entries_and_leaves_them_out(memory_repo: Repository) -> None:
    with memory_repo.writer() as w:
        clean = w.save_tree([file(w, b"a", b"a")])
        evil = raw_tree(w, [file(w, b"a", b"a"), node(b"a/../../x")])
    problems: list[tuple[bytes, str]] = []
    changes = list(
        diff_trees(memory_repo, clean, evil, on_problem=lambda p, m: problems.append((p, m)))
    )
    assert changes == []
    assert problems == [(b"/a/../../x", "a name no file system allows")]


def test_a_tree_larger_than_any_reader_accepts_is_never_written(
    memory_repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("snapfs.repository.MAX_TREE_ENTRIES", 2)
    with memory_repo.writer() as w, pytest.raises(UnsupportedFormat, match=r"^a directory of 3 "):
        w.save_tree([node(b"a"), node(b"b"), node(b"c")])


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (b"\x93\x01\x02\x03", "Expected `object`, got `array`"),
        (msgspec.msgpack.encode({"time": "yesterday", "host": "h", "user": "u", "paths": [],
                                 "tree": "00" * 32}), "Invalid isoformat string: 'yesterday'"),
        (msgspec.msgpack.encode({"time": "2026-11-30T10:00:00+00:00", "host": "h", "user": "u",
                                 "paths": [], "tree": "not hex"}), "non-hexadecimal number "
         "found in fromhex() arg at position 0"),
    ],
)  # fmt: skip
def test_a_snapshot_that_cannot_be_used_is_damage_naming_it(
    memory_repo: Repository, record: bytes, why: str
) -> None:
    """Left out of the listing and named in ``snapshot_problems``: the others still list."""
    memory_repo.backend.put("snapshots/" + "cd" * 32, memory_repo.key.seal(record))
    with memory_repo.writer() as w:
        kept = snapshot(w, nested(w, 1, [file(w, b"f", b"fine\n")]))
    assert [s.id for s in memory_repo.snapshots()] == [kept.id]
    (problem,) = memory_repo.snapshot_problems
    assert re.match(rf"^snapshot cdcdcdcd is damaged: {re.escape(why)}", problem)
    with pytest.raises(IntegrityError, match=rf"^snapshot cdcdcdcd is damaged: {re.escape(why)}"):
        memory_repo._load_snapshot("snapshots/" + "cd" * 32)


def test_copy_carries_deep_trees_without_recursion(memory_repo: Repository) -> None:
    with memory_repo.writer() as w:
        snapshot(w, nested(w, MAX_DEPTH - 1, [file(w, b"bottom", b"deep down\n")]))
    dest = Repository.init(MemoryBackend(), "dest", kdf=CHEAP_KDF)
    result = copy_snapshots(memory_repo, dest)
    root = bytes.fromhex(result.copied[0].copy.tree)
    paths = [p for p, _n in walk(dest, root)]
    assert paths[-1] == b"/".join([b"d"] * (MAX_DEPTH - 1)) + b"/bottom"
