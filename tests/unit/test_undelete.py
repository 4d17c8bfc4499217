"""What ``undelete`` indexes again: exactly the condemned packs that are stored and that no
index names. A pack a running backup had indexed again since (``index_needed``) is not
indexed a second time, and a pack a sweep killed midway had deleted (of another forgotten
snapshot) is passed over, not read: the snapshot asked for comes back whole all the same,
and the other one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapfs.errors import SnapshotNotFound
from snapfs.plans import PLANS, Plan
from snapfs.prune import prune, undelete
from snapfs.repository import Repository, Writer
from snapfs.restore import restore
from snapfs.snapshot import Snapshot
from tests.crafted import file, snapshot


def _snapshot(w: Writer, files: dict[bytes, bytes]) -> Snapshot:
    nodes = []
    for name, data in files.items():
        nodes.append(file(w, name, data))
        w.flush()  # a pack for each file
    return snapshot(w, w.save_tree(nodes))


def _indexed_by(repo: Repository, keys: list[str]) -> list[str]:
    return sorted(pack_id for pack_id, _entries in repo.index_packs(keys))


def test_undelete_indexes_again_exactly_the_condemned_packs_no_index_names(
    memory_repo: Repository, tmp_path: Path
) -> None:
    repo = memory_repo
    with repo.writer() as w:
        wanted = _snapshot(w, {b"a": b"one\n", b"b": b"two\n"})
    own = set(repo.list_packs())  # two data packs and a tree pack
    with repo.writer() as w:
        other = _snapshot(w, {b"c": b"three\n"})
    others = set(repo.list_packs()) - own
    for snap in (wanted, other):
        repo.forget_snapshot(snap.id)
    prune(repo)  # phase 1: condemns all five packs, unindexes them, leaves a plan
    [(_key, plan)] = repo.load_records(PLANS, Plan)
    assert set(plan.condemned) == own | others and not set(repo.reload_index().pack_ids)
    again = min(own)  # indexed again by a backup that deduplicated against it
    repo.write_index([(again, repo.read_pack_header(again))])
    other_data = next(p for p in others if repo.read_pack_header(p)[0].kind.name == "DATA")
    repo.delete_pack(other_data)  # the sweep was killed after deleting this one
    before = {info.key for info in repo.backend.list("index/")}
    repo.reload_index()  # as the undelete command, a process of its own, finds it

    assert undelete(repo, wanted.id[:8]) == wanted

    written = sorted({info.key for info in repo.backend.list("index/")} - before)
    assert _indexed_by(repo, written) == sorted((own | others) - {again, other_data})
    assert repo.load_records(PLANS, Plan) == []
    assert [s.id for s in repo.snapshots()] == [wanted.id]
    repo.reload_index()
    restore(repo, wanted, str(tmp_path / "out"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == {
        "a": b"one\n", "b": b"two\n"
    }  # fmt: skip
    # The other one's data pack is gone and no plan is left: it stays forgotten.
    with pytest.raises(SnapshotNotFound) as refused:
        undelete(repo, other.id[:8])
    assert str(refused.value) == (
        f"snapshot {other.short_id} cannot be undeleted: an interrupted prune already deleted "
        "some of its data; run prune to finish removing it"
    )
    assert [s.id for s in repo.forgotten()] == [other.id]


def test_a_snapshot_whose_data_was_swept_cannot_be_undeleted(memory_repo: Repository) -> None:
    """The sweep that deletes a plan's packs also drops the plan's forgotten snapshots:
    none of them can come back naming data that is gone."""
    with memory_repo.writer() as w:
        gone = _snapshot(w, {b"a": b"one\n"})
    memory_repo.forget_snapshot(gone.id)
    prune(memory_repo)  # condemns
    assert prune(memory_repo).deleted_packs == 2  # sweeps: its data pack and its tree pack
    assert memory_repo.forgotten() == []
    with pytest.raises(SnapshotNotFound):
        undelete(memory_repo, gone.id[:8])
