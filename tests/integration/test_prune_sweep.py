"""The sweep never deletes a pack that an index names: a condemned pack that a backup
running at marking time has indexed since is left to the next marking, so no index entry
is ever left naming a pack that is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapfs.prune import PruneReport, sweep
from snapfs.repository import Repository
from tests.conftest import BACKENDS, condemned_backup, reopened

pytestmark = pytest.mark.parametrize("backend_kind", BACKENDS)


def _indexed_but_missing(repo: Repository) -> list[str]:
    stored = repo.list_packs()
    return sorted({pack_id for pack_id, _ in repo.index_packs() if pack_id not in stored})


def test_a_condemned_pack_indexed_again_is_not_swept(
    repo: Repository, repo_location: str, tmp_path: Path
) -> None:
    condemned_backup(repo, repo_location, tmp_path / "src", "gone.bin")
    repo = reopened(repo_location)
    plan = repo.load_records("prune", dict)[0][1]
    assert plan["condemned"]
    # A backup that stored one of them before the marking indexes it now.
    again = plan["condemned"][0]
    repo.write_index([(again, repo.read_pack_header(again))])
    repo.reload_index()

    report = PruneReport()
    sweep(repo, report, lambda event: None)
    repo.reload_index()

    assert again in repo.list_packs()
    assert _indexed_but_missing(repo) == []
    assert report.deleted_packs == len(plan["condemned"]) - 1
    repo.close()
