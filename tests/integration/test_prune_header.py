"""A condemned pack whose header cannot be read for a passing reason (the store failed
after its retries) is never deleted on that account: the sweep stops, the plan stays, and a
later prune, the store healthy again, keeps the pack a snapshot came to use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from snapfs.errors import BackendError
from snapfs.pack import BlobKind, pack_key
from snapfs.prune import PruneReport, sweep
from snapfs.repository import Repository
from snapfs.restore import restore
from snapfs.store.base import Backend, ObjectInfo
from snapfs.store.url import open_backend
from tests.conftest import PASSWORD, condemned_backup, reopened
from tests.helpers import assert_same_tree


class _Unreachable:
    """The store, except that range reads of ``keys`` fail as a dropped connection does."""

    def __init__(self, inner: Backend, keys: set[str]) -> None:
        self._inner, self.keys = inner, keys
        self.connections = inner.connections

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if key in self.keys:
            raise BackendError(f"{key}: connection reset by peer (after 5 attempts)")
        return self._inner.get_range(key, offset, length)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self._inner.list(prefix)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_a_condemned_pack_whose_header_read_fails_is_kept_for_a_later_sweep(
    repo: Repository, repo_location: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    snap = condemned_backup(repo, repo_location, src, "kept.bin")
    # A backup running at marking time deduplicated against them: its snapshot names them.
    with reopened(repo_location) as racer, racer.writer() as w:
        w.save_snapshot(snap)
    condemned = repo.load_records("prune", dict)[0][1]["condemned"]
    data_packs = {
        pack_key(p) for p in condemned if repo.read_pack_header(p)[0].kind == BlobKind.DATA
    }
    assert data_packs

    failing = _Unreachable(open_backend(repo_location), data_packs)
    pruning = Repository.open(failing, PASSWORD)  # type: ignore[arg-type]
    with pruning, pytest.raises(BackendError, match="connection reset by peer"):
        sweep(pruning, PruneReport(), lambda event: None)
    assert data_packs <= {info.key for info in open_backend(repo_location).list("data/")}

    with reopened(repo_location) as healthy:
        report = PruneReport()
        sweep(healthy, report, lambda event: None)
        assert (report.kept_again, report.deleted_packs) == (len(condemned), 0)
    with reopened(repo_location) as reader:
        restore(reader, snap, str(tmp_path / "out"))
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
