"""Names restore cannot create: one that could lead out of its directory is skipped with a
warning whatever the source hands over (validated or not), and one longer than a file
system holds is skipped without ending the restore."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from snapfs.buffers import Data
from snapfs.crypto import MasterKey
from snapfs.errors import IntegrityError
from snapfs.events import Event, FileWarning
from snapfs.index import IndexEntry
from snapfs.repository import Repository
from snapfs.restore import restore
from snapfs.snapshot import Snapshot
from snapfs.tree import Tree
from tests.crafted import file, node, snapshot


class _Unvalidated:
    """Hands its one tree over as given (a repository validates; this source does not)."""

    key = MasterKey.generate()

    def __init__(self, tree: Tree) -> None:
        self._tree = tree

    def lock(self, kind: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def load_tree(self, tree_id: bytes, *, keep: bool = True) -> Tree:
        return self._tree

    def blob_entry(self, blob_id: bytes) -> IndexEntry:
        raise AssertionError("no file here has contents")

    def read_blob_ranges(
        self,
        ids: Iterable[bytes],
        consume: Callable[[Iterator[tuple[bytes, Data]]], None],
        threads: int | None = None,
        *,
        on_damaged: Callable[[bytes, IntegrityError], None] | None = None,
        known: Mapping[bytes, IndexEntry] | None = None,
    ) -> None:
        consume(iter(()))


def test_names_that_lead_elsewhere_are_skipped_even_from_an_unvalidated_tree(
    tmp_path: Path,
) -> None:
    tree = Tree([node(b"ok"), node(b".."), node(b"a/b"), node(b"ok")])
    snap = Snapshot(time="2026-11-30T10:00:00+00:00", host="h", user="u", paths=["/"],
                    tree="00" * 32)  # fmt: skip
    events: list[Event] = []
    target = tmp_path / "target"
    summary = restore(_Unvalidated(tree), snap, str(target), on_event=events.append)
    warnings = [(e.path, e.error) for e in events if isinstance(e, FileWarning)]
    assert warnings == [
        ("/..", "a name no file system allows: skipped"),
        ("/a/b", "a name no file system allows: skipped"),
        ("/ok", "a second entry of that name: skipped"),
    ]
    assert sorted(p.name for p in target.iterdir()) == ["ok"]
    assert summary.files == 1 and summary.warnings == 3


def test_a_name_longer_than_a_file_system_holds_is_skipped_and_the_rest_restored(
    memory_repo: Repository, tmp_path: Path
) -> None:
    long = b"x" * 256
    with memory_repo.writer() as w:
        snap = snapshot(w, w.save_tree([file(w, long, b"long\n"), file(w, b"ok", b"fine\n")]))
    events: list[Event] = []
    summary = restore(memory_repo, snap, str(tmp_path / "out"), on_event=events.append)
    warnings = [(e.path, e.error) for e in events if isinstance(e, FileWarning)]
    assert warnings == [("/" + "x" * 256, "a name no file system allows: skipped")]
    assert (tmp_path / "out" / "ok").read_bytes() == b"fine\n"
    assert summary.files == 1
