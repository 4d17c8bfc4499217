"""Restore's own name check, for a source whose trees come unvalidated: a name that could
lead out of its directory is skipped with a warning, whatever the source hands over."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from snapfs.buffers import Data
from snapfs.crypto import MasterKey
from snapfs.errors import IntegrityError
from snapfs.events import Event, FileWarning
from snapfs.index import IndexEntry
from snapfs.restore import restore
from snapfs.snapshot import Snapshot
from snapfs.tree import Tree
from tests.crafted import node


class _Unvalidated:
    """Hands its one tree over as given (a repository validates; this source does not)."""

    key = MasterKey.generate()

    def __init__(self, tree: Tree) -> None:
        self._tree = tree

    def lock(self, kind: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def load_tree(self, tree_id: bytes) -> Tree:
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
