"""Delta tables written by deltalake, backed up pinned at one version: restored and mounted,
deltalake reads exactly that version (and older ones: time travel); a commit after the pin
is left out; a data file deleted after the pin makes the table torn (exit 3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from snapfs.backup import backup
from snapfs.events import Event, FileStarted, FileWarning
from snapfs.repository import Repository
from tests.conftest import Cli
from tests.duckdb_ext import connect
from tests.helpers import assert_same_tree
from tests.integration.test_mount import Mount, mount  # noqa: F401  (a fixture)

LOG = "_delta_log"


def _rows(start: int, n: int, day: str) -> pa.Table:
    return pa.table({"id": list(range(start, start + n)), "amount": [i * 0.5 for i in range(n)],
                     "day": [day] * n})  # fmt: skip


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A partitioned table of 14 versions: appends, a checkpoint at 8, a delete (removes
    and a rewritten file) at 11, an overwrite of one partition at 12, an append at 13."""
    path = tmp_path / "lake" / "sales"
    for v in range(11):
        write_deltalake(path, _rows(v * 10, 10, f"d{v % 3}"), mode="append",
                        partition_by=["day"])  # fmt: skip
        if v == 8:
            DeltaTable(path).create_checkpoint()
    DeltaTable(path).delete("id % 7 = 0")
    write_deltalake(path, _rows(500, 5, "d1"), mode="overwrite", predicate="day = 'd1'")
    write_deltalake(path, _rows(600, 5, "d2"), mode="append")
    assert DeltaTable(path).version() == 13
    return path


def _sorted(t: pa.Table) -> pa.Table:
    return t.select(["id", "amount", "day"]).sort_by("id")


def _read(path: Path, version: int | None = None) -> pa.Table:
    return _sorted(DeltaTable(path, version=version).to_pyarrow_table())


def _restored(cli: Cli, tmp_path: Path, src: Path, name: str = "restored") -> Path:
    target = tmp_path / name
    cli.run("restore", "latest", "--target", str(target), check=True)
    return target / src.relative_to("/")


def _tables(cli: Cli) -> list[dict[str, object]]:
    out = cli.run("tables", "latest", "--json", check=True).stdout
    tables: list[dict[str, object]] = json.loads(out)
    return tables


def test_a_table_restored_and_mounted_reads_as_its_version_and_its_history(
    cli: Cli,
    mount: Mount,  # noqa: F811  (the fixture imported above)
    table: Path,
    tmp_path: Path,
) -> None:
    (table / "day=d0" / "part-uncommitted.parquet").write_bytes(b"a failed writer's leftover")
    cli.run("backup", str(table.parent), check=True)
    restored = _restored(cli, tmp_path, table)
    assert _read(restored).equals(_read(table))
    for version in (3, 8, 11):  # before the checkpoint, at it, at the delete
        assert _read(restored, version).equals(_read(table, version))
    assert not (restored / "day=d0" / "part-uncommitted.parquet").exists()
    for commit in (table / LOG).iterdir():  # TIMESTAMP AS OF reads the commits' mtimes
        assert (restored / LOG / commit.name).stat().st_mtime_ns == commit.stat().st_mtime_ns
    with mount("latest") as mnt:
        mounted = mnt / table.relative_to("/")
        assert _read(mounted).equals(_read(table))
        assert _read(mounted, 11).equals(_read(table, 11))
    [record] = _tables(cli)
    live = DeltaTable(table)
    assert record == {
        "path": str(table), "format": "delta", "version": 13,
        "commit_time": record["commit_time"], "files": len(live.file_uris()),
        "bytes": sum(os.path.getsize(u.removeprefix("file://")) for u in live.file_uris()),
        "torn": False,
    }  # fmt: skip
    listed = cli.run("tables", "latest", check=True).stdout.decode().splitlines()
    assert listed[0].split() == ["Path", "Format", "Version", "Committed", "Files", "Size", "State"]
    assert listed[1].split()[:3] == [str(table), "delta", "13"] and listed[1].split()[-1] == "whole"


def test_duckdb_scans_a_mounted_table_at_its_pinned_version(
    cli: Cli,
    mount: Mount,  # noqa: F811  (the fixture imported above)
    table: Path,
) -> None:
    """DuckDB's delta_scan over the mount, after the live table moved on a version: the
    pinned version's aggregate, partitions and all."""
    cli.run("backup", str(table), check=True)
    write_deltalake(table, _rows(900, 50, "d9"), mode="append", partition_by=["day"])
    aggregate = "SELECT day, count(*), sum(id), sum(amount) FROM {} GROUP BY day ORDER BY day"
    con = connect("delta")
    con.register("pinned", _read(table, 13))
    with mount("latest") as mnt:
        scan = f"delta_scan('{mnt / table.relative_to('/')}')"
        got = con.execute(aggregate.format(scan)).fetchall()
    assert got == con.execute(aggregate.format("pinned")).fetchall()
    live = con.execute(aggregate.format(f"delta_scan('{table}')")).fetchall()
    assert [row[0] for row in live] == [row[0] for row in got] + ["d9"]


def test_a_commit_after_the_pin_is_left_out_of_the_snapshot(
    cli: Cli, table: Path, tmp_path: Path
) -> None:
    last_checkpoint = (table / LOG / "_last_checkpoint").read_bytes()
    held = cli.hold("table-pinned", tmp_path / "held", "backup", str(table))
    write_deltalake(table, _rows(900, 50, "d9"), mode="append", partition_by=["day"])
    DeltaTable(table).create_checkpoint()  # _last_checkpoint now names version 14
    assert DeltaTable(table).version() == 14
    held.release()
    restored = _restored(cli, tmp_path, table)
    assert DeltaTable(restored).version() == 13
    assert _read(restored).equals(_read(table, 13))
    assert not (restored / "day=d9").exists()
    assert not (restored / LOG / f"{14:020d}.json").exists()
    assert (restored / LOG / "_last_checkpoint").read_bytes() == last_checkpoint
    assert [t["version"] for t in _tables(cli)] == [13]


def test_a_data_file_deleted_after_the_pin_makes_the_table_torn(
    cli: Cli, table: Path, tmp_path: Path
) -> None:
    victim = sorted(u.removeprefix("file://") for u in DeltaTable(table).file_uris())[0]
    held = cli.hold("table-pinned", tmp_path / "held", "backup", str(table))
    os.unlink(victim)  # as a VACUUM (with a retention of 0) racing the backup would
    held.flag.unlink()
    _out, err = held.proc.communicate(timeout=240)
    assert held.proc.returncode == 3, err.decode()
    rel = os.path.relpath(victim, table)
    assert err.decode().splitlines() == [
        f"warning: {table}: Delta table torn: version 13 needs {rel}, which is gone "
        "(deleted during the backup?)"
    ]
    [record] = _tables(cli)
    assert (record["version"], record["torn"]) == (13, True)
    assert cli.run("tables", "latest", check=True).stdout.decode().split()[-6] == "torn"


def test_no_tables_backs_up_every_file_as_it_is(cli: Cli, table: Path, tmp_path: Path) -> None:
    (table / "day=d0" / "part-uncommitted.parquet").write_bytes(b"a failed writer's leftover")
    (table / LOG / "_commits").mkdir()
    (table / LOG / "_commits" / f"{14:020d}.uuid.json").write_bytes(b"{}")
    cli.run("backup", "--no-tables", str(table), check=True)
    assert_same_tree(table, _restored(cli, tmp_path, table))
    assert _tables(cli) == []


def test_a_table_whose_log_was_cleaned_up_is_pinned_from_its_checkpoint(
    cli: Cli, table: Path, tmp_path: Path
) -> None:
    for version in range(8):  # as log cleanup does once the commits are past retention
        (table / LOG / f"{version:020d}.json").unlink()
    assert _read(table).num_rows == DeltaTable(table).to_pyarrow_table().num_rows
    cli.run("backup", str(table), check=True)
    restored = _restored(cli, tmp_path, table)
    assert _read(restored).equals(_read(table))
    assert _read(restored, 11).equals(_read(table, 11))
    assert sorted(p.name for p in (restored / LOG).iterdir()) == sorted(
        p.name for p in (table / LOG).iterdir()
    )
    assert [t["version"] for t in _tables(cli)] == [13]


def test_a_data_file_deleted_as_it_is_opened_makes_the_table_torn(
    repo: Repository, table: Path
) -> None:
    big = pa.table({"id": list(range(5000)), "amount": [i / 7 for i in range(5000)],
                    "day": ["d5"] * 5000})  # fmt: skip
    write_deltalake(table, big, mode="append")  # version 14: one file above the chunker's min
    [victim] = (table / "day=d5").iterdir()
    assert victim.stat().st_size > repo.config.chunker.min_size  # so not opened ahead
    warnings: list[FileWarning] = []

    def on_event(event: Event) -> None:
        if isinstance(event, FileStarted) and event.path == str(victim):
            victim.unlink()  # listed, about to be opened: as VACUUM deleting it right then
        elif isinstance(event, FileWarning):
            warnings.append(event)

    snap = backup(repo, [str(table)], on_event=on_event)
    rel = victim.relative_to(table)
    torn = f"Delta table torn: version 14 needs {rel}, which is gone (deleted during the backup?)"
    assert warnings == [FileWarning(str(table), torn)]
    assert [(t.version, t.torn) for t in snap.tables] == [(14, True)]
    assert snap.summary.warnings == 1


def test_a_table_file_left_out_by_exclude_is_named_and_the_table_not_whole(
    cli: Cli, table: Path
) -> None:
    victim = next((table / "day=d2").glob("*.zstd.parquet"))  # a file the delete rewrote
    assert str(victim) in {u.removeprefix("file://") for u in DeltaTable(table).file_uris()}
    done = cli.run("backup", str(table), "--exclude", victim.name)
    assert done.returncode == 3, done.stderr.decode()
    rel = victim.relative_to(table)
    assert done.stderr.decode().splitlines() == [
        f"warning: {table}: Delta table incomplete: version 13 needs {rel}, which --exclude "
        "leaves out"
    ]
    assert [(t["version"], t["torn"]) for t in _tables(cli)] == [(13, True)]


def test_history_lists_the_version_each_snapshot_holds(cli: Cli, table: Path) -> None:
    """Oldest first; the snapshots the filters leave out, and those without the table, are
    not listed; a trailing / and a relative PATH name the same table."""
    cli.run("backup", str(table), "--host", "a", check=True)
    write_deltalake(table, _rows(700, 5, "d0"), mode="append")
    cli.run("backup", str(table.parent), "--host", "b", check=True)
    cli.run("backup", str(table / LOG), "--host", "b", "--no-tables", check=True)
    write_deltalake(table, _rows(800, 5, "d0"), mode="append")
    cli.run("backup", str(table), "--host", "a", check=True)
    snaps = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    found = json.loads(cli.run("tables", "--history", f"{table}/", "--json", check=True).stdout)
    assert [(h["snapshot"], h["time"], h["version"], h["path"]) for h in found] == [
        (snaps[i]["id"], snaps[i]["time"], version, str(table))
        for i, version in ((0, 13), (1, 14), (3, 15))
    ]
    assert found[0] == {"snapshot": snaps[0]["id"], "time": snaps[0]["time"],
                        **_tables_of(cli, snaps[0]["id"])[0]}  # fmt: skip
    only_a = cli.run("tables", "--history", os.path.relpath(table), "--host", "a", "--json",
                     check=True).stdout  # fmt: skip
    assert [h["version"] for h in json.loads(only_a)] == [13, 15]
    lines = cli.run("tables", "--history", str(table), check=True).stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "Time", "Version", "Committed", "Files", "Size", "State"]
    assert [line.split()[0] for line in lines[1:-1]] == [snaps[i]["short_id"] for i in (0, 1, 3)]
    assert [line.split()[3] for line in lines[1:-1]] == ["13", "14", "15"]
    assert lines[-1] == f"3 snapshots hold {table}"
    both = cli.run("tables", "latest", "--history", str(table))
    assert (both.returncode, both.stderr.decode().splitlines()[-1]) == (
        2, "Error: give SNAPSHOT or --history PATH (one of them)")  # fmt: skip


def _tables_of(cli: Cli, snapshot: str) -> list[dict[str, object]]:
    tables: list[dict[str, object]] = json.loads(
        cli.run("tables", snapshot, "--json", check=True).stdout
    )
    return tables
