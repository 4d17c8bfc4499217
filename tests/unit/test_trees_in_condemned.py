"""Trees read from condemned packs that no index names (a backup live while prune marked
stored them there): each from its own pack, whichever order the packs come in, though only
the last pack read is kept in memory."""

from __future__ import annotations

from snapfs.pack import BlobKind
from snapfs.plans import TreesInCondemned
from snapfs.prune import prune
from snapfs.repository import Repository
from tests.crafted import file, snapshot


def test_trees_of_two_condemned_packs_read_in_either_order(memory_repo: Repository) -> None:
    repo = memory_repo
    trees: dict[str, tuple[bytes, bytes]] = {}  # pack id -> its one tree, the name in it
    for name in (b"a", b"b"):
        before = set(repo.list_packs())
        with repo.writer() as w:
            snap = snapshot(w, w.save_tree([file(w, name, name * 3)]))
        repo.forget_snapshot(snap.id)
        [tree_pack] = [p for p in set(repo.list_packs()) - before
                       if repo.read_pack_header(p)[0].kind == BlobKind.TREE]  # fmt: skip
        trees[tree_pack] = (bytes.fromhex(snap.tree), name)
    prune(repo)  # condemns and unindexes every pack
    indexed = set(repo.reload_index().pack_ids)
    assert not indexed & set(trees)
    headers = {p: repo.read_pack_header(p) for p in trees}
    for order in (sorted(trees), sorted(trees, reverse=True)):
        load = TreesInCondemned(repo, headers, indexed).load
        assert [load(trees[p][0]).nodes[0].name for p in order] == [trees[p][1] for p in order]
