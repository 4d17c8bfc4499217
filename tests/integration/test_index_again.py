"""Packs prune indexes again (kept because a racing backup came to use them) reach the
index cache: the next open merges no index file, and answers as the index files do."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapfs.prune import PruneReport, sweep, undelete
from snapfs.repository import Repository
from tests.conftest import condemned_backup, index_files_read, reopened


def _merged_at_next_open(location: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The index files the next open reads (none when runs cover them all); checks that
    its index names the packs the index files do."""
    with index_files_read(monkeypatch) as merged, reopened(location) as reader:
        opened = reader.index
        at_open = list(merged)
        assert opened.pack_ids == sorted({pack_id for pack_id, _ in reader.index_packs()})
    return at_open


def test_packs_kept_again_reach_the_index_cache(
    repo: Repository, repo_location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = condemned_backup(repo, repo_location, tmp_path / "src", "kept.bin")
    with reopened(repo_location) as racer, racer.writer() as w:
        w.save_snapshot(snap)  # the racer deduplicated against the condemned packs
    with reopened(repo_location) as pruning:
        report = PruneReport()
        sweep(pruning, report, lambda event: None)
    assert report.kept_again > 0 and report.deleted_packs == 0
    assert _merged_at_next_open(repo_location, monkeypatch) == []


def test_packs_an_undelete_indexes_again_reach_the_index_cache(
    repo: Repository, repo_location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = condemned_backup(repo, repo_location, tmp_path / "src", "back.bin")
    with reopened(repo_location) as undeleting:
        assert undelete(undeleting, snap.id).id == snap.id
    assert _merged_at_next_open(repo_location, monkeypatch) == []
