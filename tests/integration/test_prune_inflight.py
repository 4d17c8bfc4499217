"""A backup whose packs stay unindexed for longer than prune's grace period (a slow upload
before its index file is written): prune must neither condemn them while young, nor delete
them once the backup has indexed them. Local only: packs are aged by setting their mtimes,
which an S3 server keeps to itself."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.conftest import Cli, small_packs
from tests.helpers import assert_same_tree


def _prune(cli: Cli) -> dict[str, int]:
    return dict(json.loads(cli.run("prune", "--json", check=True).stdout))


def test_packs_of_a_backup_in_flight_survive_prune_however_old(cli: Cli, tmp_path: Path) -> None:
    cli.repo, src = small_packs(tmp_path, files=8)
    # Its first pack is stored; the index naming its packs comes only at the end.
    held = cli.hold("pack-stored:1", tmp_path / "held", "backup", str(src), "--json")
    assert _prune(cli)["unreferenced_packs"] == 0  # young: maybe a backup in flight
    then = time.time() - 2 * 3600
    for pack in (cli.repo / "data").rglob("*"):
        if pack.is_file():
            os.utime(pack, (then, then))
    marked = _prune(cli)
    assert marked["unreferenced_packs"] > 0  # old and unindexed: condemned, the plan waits
    out, _err = held.release()
    sid = json.loads(out.splitlines()[-1])["snapshot_id"]
    swept = _prune(cli)
    assert (swept["waiting_plans"], swept["deleted_packs"]) == (0, 0)
    checked = cli.run("check", "--read-data")
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()
    out_dir = tmp_path / "out"
    cli.run("restore", sid, "--target", str(out_dir), "--verify", check=True)
    assert_same_tree(src, out_dir / str(src).lstrip("/"))
