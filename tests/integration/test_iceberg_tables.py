"""Iceberg tables written by pyiceberg (a SQL catalog on SQLite), backed up pinned at their
current metadata file: restored to their own place with the source moved away, pyiceberg's
StaticTable reads exactly the pinned snapshot (and older ones: time travel), and so does
DuckDB's iceberg_scan; a commit after the pin is left out; a data file deleted after the
pin makes the table torn (exit 3)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import StaticTable, Table

from snapfs.sources.files import LocalFiles
from snapfs.tables import pin
from tests.conftest import Cli
from tests.duckdb_ext import connect
from tests.helpers import assert_same_tree
from tests.iceberg_deletes import table_with_position_deletes
from tests.integration.test_mount import Mount, mount  # noqa: F401  (a fixture)


def _rows(start: int, n: int, day: str) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "amount": [i * 0.5 for i in range(n)], "day": [day] * n})  # fmt: skip


@pytest.fixture
def table(tmp_path: Path) -> Table:
    """A table partitioned by day, 10 snapshots: six appends, a delete (a rewritten file),
    an overwrite of one partition (a delete and an append), an append."""
    catalog = SqlCatalog(
        "test", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path / 'lake'}"
    )
    catalog.create_namespace("shop")
    made = catalog.create_table("shop.sales", schema=_rows(0, 1, "d0").schema)
    with made.update_spec() as spec:
        spec.add_identity("day")
    for v in range(6):
        made.append(_rows(v * 10, 10, f"d{v % 3}"))
    made.delete("id = 13")
    made.overwrite(_rows(500, 5, "d1"), overwrite_filter="day = 'd1'")
    made.append(_rows(600, 5, "d2"))
    assert len(made.metadata.snapshots) == 10
    return made


def _dir(table: Table) -> Path:
    return Path(table.location().removeprefix("file://"))


def _read(metadata: str | Path, snapshot_id: int | None = None) -> pa.Table:
    scan = StaticTable.from_metadata(str(metadata)).scan(snapshot_id=snapshot_id)
    return scan.to_arrow().select(["id", "amount", "day"]).sort_by("id")


def _metadata_files(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "metadata").glob("*.metadata.json"))


def _tables(cli: Cli) -> list[dict[str, object]]:
    tables: list[dict[str, object]] = json.loads(
        cli.run("tables", "latest", "--json", check=True).stdout
    )
    return tables


def _restore_in_place(cli: Cli, path: Path, tmp_path: Path) -> Path:
    """The source moved away, the table restored to its own absolute path (Iceberg metadata
    names absolute paths: only there does it read as is). Returns where the source went."""
    moved = tmp_path / "moved-away"
    path.rename(moved)
    cli.run("restore", f"latest:{path}", "--target", str(path), check=True)
    return moved


def _data_files(table: Table) -> list[str]:
    return sorted(t.file.file_path.removeprefix("file://") for t in table.scan().plan_files())


def test_a_table_restored_reads_as_its_snapshot_and_its_history(
    cli: Cli, table: Table, tmp_path: Path
) -> None:
    path = _dir(table)
    (path / "data" / "day=d0" / "00000-uncommitted.parquet").write_bytes(b"a failed writer's")
    pinned = table.metadata_location.removeprefix("file://")
    older = [s.snapshot_id for s in table.metadata.snapshots][2:7:2]  # appends, the delete
    expected = [_read(pinned)] + [_read(pinned, s) for s in older]
    live = _data_files(table)
    cli.run("backup", str(path.parent), check=True)
    moved = _restore_in_place(cli, path, tmp_path)
    assert [_read(pinned)] + [_read(pinned, s) for s in older] == expected
    query = f"SELECT count(*), sum(id), min(day) FROM iceberg_scan('{pinned}')"
    rows = expected[0]
    assert connect("avro", "iceberg").execute(query).fetchall() == [
        (rows.num_rows, pc.sum(rows["id"]).as_py(), pc.min(rows["day"]).as_py())
    ]
    assert not (path / "data" / "day=d0" / "00000-uncommitted.parquet").exists()
    assert _metadata_files(path) == _metadata_files(moved)
    [record] = _tables(cli)
    assert record == {
        "path": str(path), "format": "iceberg", "version": table.metadata.current_snapshot_id,
        "commit_time": record["commit_time"], "files": len(live),
        "bytes": sum(os.path.getsize(f) for f in live), "torn": False, "metadata": pinned,
    }  # fmt: skip
    listed = cli.run("tables", "latest", check=True).stdout.decode().splitlines()
    assert listed[1].split()[:3] == [str(path), "iceberg", str(record["version"])]


def test_a_mounted_table_reads_as_its_snapshot_with_the_source_moved_away(
    cli: Cli,
    table: Table,
    tmp_path: Path,
    mount: Mount,  # noqa: F811  (the fixture imported above)
) -> None:
    """Every path in the mounted metadata points into the mount: StaticTable (by the
    metadata file, and by the table's directory through the version hint the mount adds)
    and DuckDB's iceberg_scan read the pinned snapshot, and older ones, with the source
    gone; a commit after the backup is not seen."""
    path = _dir(table)
    pinned = table.metadata_location.removeprefix("file://")
    older = [s.snapshot_id for s in table.metadata.snapshots][2:7:2]
    expected = [_read(pinned)] + [_read(pinned, s) for s in older]
    cli.run("backup", str(path), check=True)
    table.append(_rows(900, 50, "d9"))  # the live table moves on
    path.rename(tmp_path / "moved-away")
    [record] = _tables(cli)
    assert record["metadata"] == pinned
    with mount("latest") as mnt:
        metadata = f"{mnt}{record['metadata']}"
        assert [_read(metadata)] + [_read(metadata, s) for s in older] == expected
        by_hint = StaticTable.from_metadata(f"{mnt}{path}")
        assert by_hint.metadata.current_snapshot_id == record["version"]
        hint = Path(f"{mnt}{path}/metadata/version-hint.text")
        assert hint.read_text() == os.path.basename(pinned).removesuffix(".metadata.json")
        rows = expected[0]
        want = [(rows.num_rows, pc.sum(rows["id"]).as_py(), pc.min(rows["day"]).as_py())]
        duck = connect("avro", "iceberg")
        for where in (metadata, f"{mnt}{path}"):
            query = f"SELECT count(*), sum(id), min(day) FROM iceberg_scan('{where}')"
            assert duck.execute(query).fetchall() == want, where
        for name in os.listdir(f"{mnt}{path}/metadata"):
            stored = Path(f"{mnt}{path}/metadata/{name}")
            assert stored.stat().st_size == len(stored.read_bytes()), name
            assert str(path).encode() not in stored.read_bytes().replace(
                str(mnt).encode() + str(path).encode(), b""
            ), name


def test_a_table_restored_to_another_place_reads_there_with_the_source_gone(
    cli: Cli, table: Table, tmp_path: Path
) -> None:
    """Its metadata rewritten for the new place (restored alone, and with its parent), each
    file with the mtime it had; a second restore over it changes nothing."""
    path = _dir(table)
    pinned = table.metadata_location.removeprefix("file://")
    older = [s.snapshot_id for s in table.metadata.snapshots][2:7:2]
    expected = [_read(pinned)] + [_read(pinned, s) for s in older]
    cli.run("backup", str(path.parent), check=True)
    moved = tmp_path / "moved-away"
    path.rename(moved)
    alone, whole = tmp_path / "new-home", tmp_path / "whole"
    cli.run("restore", f"latest:{path}", "--target", str(alone), check=True)
    cli.run("restore", f"latest:{path.parent}", "--target", str(whole), check=True)
    for home in (alone, whole / path.name):
        metadata = home / os.path.relpath(pinned, path)
        assert [_read(metadata)] + [_read(metadata, s) for s in older] == expected
        assert StaticTable.from_metadata(str(home)).metadata.current_snapshot_id == (
            table.metadata.current_snapshot_id
        )
        query = f"SELECT count(*), sum(id) FROM iceberg_scan('{home}')"
        rows = expected[0]
        assert connect("avro", "iceberg").execute(query).fetchall() == [
            (rows.num_rows, pc.sum(rows["id"]).as_py())
        ]
        for name in _metadata_files(moved):
            assert os.stat(home / "metadata" / name).st_mtime_ns == (
                os.stat(moved / "metadata" / name).st_mtime_ns
            )
    first = {p.name: p.read_bytes() for p in (alone / "metadata").iterdir()}
    cli.run("restore", f"latest:{path}", "--target", str(alone), check=True)
    assert {p.name: p.read_bytes() for p in (alone / "metadata").iterdir()} == first


def test_a_commit_after_the_pin_is_left_out_of_the_snapshot(
    cli: Cli, table: Table, tmp_path: Path
) -> None:
    path = _dir(table)
    pinned = table.metadata_location.removeprefix("file://")
    pinned_rows, pinned_id = _read(pinned), table.metadata.current_snapshot_id
    before = set(p.relative_to(path) for p in path.rglob("*") if p.is_file())
    held = cli.hold("table-pinned", tmp_path / "held", "backup", str(path))
    table.append(_rows(900, 50, "d9"))  # a new metadata file, manifest list, manifest, data
    assert table.metadata.current_snapshot_id != pinned_id
    held.release()
    _restore_in_place(cli, path, tmp_path)
    assert set(p.relative_to(path) for p in path.rglob("*") if p.is_file()) == before
    assert _read(pinned).equals(pinned_rows)
    assert [(t["version"], t["metadata"]) for t in _tables(cli)] == [(pinned_id, pinned)]


def test_a_data_file_deleted_after_the_pin_makes_the_table_torn(
    cli: Cli, table: Table, tmp_path: Path
) -> None:
    path = _dir(table)
    victim = _data_files(table)[0]
    held = cli.hold("table-pinned", tmp_path / "held", "backup", str(path))
    os.unlink(victim)  # as expire_snapshots and orphan removal racing the backup would
    held.flag.unlink()
    _out, err = held.proc.communicate(timeout=240)
    assert held.proc.returncode == 3, err.decode()
    version = table.metadata.current_snapshot_id
    assert err.decode().splitlines() == [
        f"warning: {path}: Iceberg table torn: version {version} needs "
        f"{os.path.relpath(victim, path)}, which is gone (deleted during the backup?)"
    ]
    assert [(t["version"], t["torn"]) for t in _tables(cli)] == [(version, True)]


def test_no_tables_backs_up_every_file_as_it_is(cli: Cli, table: Table, tmp_path: Path) -> None:
    path = _dir(table)
    (path / "data" / "day=d0" / "00000-uncommitted.parquet").write_bytes(b"a failed writer's")
    (path / "metadata" / "99999-not-yet-committed.metadata.json").write_bytes(b"{}")
    cli.run("backup", "--no-tables", str(path), check=True)
    cli.run("restore", f"latest:{path}", "--target", str(tmp_path / "restored"), check=True)
    assert_same_tree(path, tmp_path / "restored")
    assert _tables(cli) == []


def test_a_table_whose_metadata_names_files_elsewhere_is_backed_up_as_plain_files(
    cli: Cli, table: Table, tmp_path: Path
) -> None:
    copy = tmp_path / "copied"
    shutil.copytree(_dir(table), copy)  # its metadata still names the original's files
    done = cli.run("backup", str(copy))
    assert done.returncode == 3, done.stderr.decode()
    [line] = done.stderr.decode().splitlines()
    assert line.startswith(
        f"warning: {copy}: not pinned, backed up as plain files: its metadata names "
        f"file://{_dir(table)}/"
    ) and line.endswith(", outside the table's directory")
    cli.run("restore", f"latest:{copy}", "--target", str(tmp_path / "restored"), check=True)
    assert_same_tree(copy, tmp_path / "restored")
    assert _tables(cli) == []


def test_the_version_hint_names_the_metadata_pinned_and_is_kept_as_read(table: Table) -> None:
    path = _dir(table)
    history = table.metadata.metadata_log
    older = history[-3].metadata_file.removeprefix("file://")
    (path / "metadata" / "version-hint.text").write_text(os.path.basename(older))
    pinned = pin(LocalFiles(str(path)), "", "iceberg", str(path))
    assert pinned.metadata == os.path.relpath(older, path)
    assert pinned.version == StaticTable.from_metadata(older).metadata.current_snapshot_id
    assert pinned.fixed == {"metadata/version-hint.text": os.path.basename(older).encode()}
    assert f"metadata/{os.path.basename(table.metadata_location)}" not in pinned.kept


def test_a_file_only_older_snapshots_read_may_go_during_the_backup(
    cli: Cli, table: Table, tmp_path: Path
) -> None:
    path = _dir(table)
    gone = [f for f in _data_files(table) if "/day=d0/" in f]
    table.delete("day = 'd0'")  # its manifests name the d0 files as deleted: older ones read them
    assert gone and not set(gone) & set(_data_files(table))
    held = cli.hold("table-pinned", tmp_path / "held", "backup", str(path))
    for victim in gone:
        os.unlink(victim)  # as expire_snapshots would once the older snapshots expire
    held.flag.unlink()
    _out, err = held.proc.communicate(timeout=240)
    assert (held.proc.returncode, err.decode()) == (0, "")
    assert [(t["version"], t["torn"]) for t in _tables(cli)] == [
        (table.metadata.current_snapshot_id, False)
    ]


KEPT = [0, 1, 3, 4, 6, 7, 8, 9]  # the ids table_with_position_deletes leaves


def _ids(metadata: str | Path, snapshot_id: int | None = None) -> list[int]:
    scan = StaticTable.from_metadata(str(metadata)).scan(snapshot_id=snapshot_id)
    return sorted(scan.to_arrow()["id"].to_pylist())


def _duck_ids(where: str | Path) -> list[int]:
    query = f"SELECT list(id ORDER BY id) FROM iceberg_scan('{where}')"
    [(ids,)] = connect("avro", "iceberg").execute(query).fetchall()
    return list(ids)


def _delete_files(metadata: str | Path, home: str) -> list[tuple[list[str], int]]:
    """The current snapshot's delete files as its manifests name them: the data files
    their rows name, and (the manifest's size) == (the file's size), each read at ``home``
    (the mount or restore the metadata is at)."""
    found = []
    for task in StaticTable.from_metadata(str(metadata)).scan().plan_files():
        for deletes in task.delete_files:
            local = deletes.file_path.removeprefix("file://")
            assert local.startswith(f"{home}/"), local
            named = pq.read_table(local)["file_path"].to_pylist()
            found.append((named, deletes.file_size_in_bytes - os.path.getsize(local)))
    return found


def test_a_table_with_position_deletes_is_pinned_with_them(cli: Cli, tmp_path: Path) -> None:
    """Its delete file is kept (live, not counted as data) and recorded in the snapshot,
    to be rewritten where the table moves."""
    made = table_with_position_deletes(tmp_path)
    path = _dir(made)
    assert _ids(made.metadata_location) == KEPT
    assert _duck_ids(made.metadata_location) == KEPT
    pinned = pin(LocalFiles(str(path)), "", "iceberg", str(path))
    assert pinned.deletes == {"data/00000-position-deletes.parquet"}
    assert "data/00000-position-deletes.parquet" in pinned.live
    [data] = _data_files(made)
    assert (pinned.files, pinned.bytes) == (1, os.path.getsize(data))
    cli.run("backup", str(path), check=True)
    [snap] = json.loads(cli.run("snapshots", "--json", check=True).stdout)
    [record] = snap["tables"]
    assert (record["files"], record["version"]) == (1, made.metadata.current_snapshot_id)


def test_rows_deleted_by_position_stay_deleted_on_the_mount(
    cli: Cli,
    tmp_path: Path,
    mount: Mount,  # noqa: F811  (the fixture imported above)
) -> None:
    """The delete file's rows name the data file by its path on the mount, so pyiceberg and
    DuckDB apply it there with the source gone; the snapshot before the delete reads
    whole (time travel)."""
    made = table_with_position_deletes(tmp_path)
    path = _dir(made)
    pinned = made.metadata_location.removeprefix("file://")
    before = made.metadata.snapshots[0].snapshot_id
    [data] = [os.path.basename(f) for f in _data_files(made)]
    cli.run("backup", str(path), check=True)
    path.rename(tmp_path / "moved-away")
    with mount("latest") as mnt:
        metadata = f"{mnt}{pinned}"
        assert _ids(metadata) == KEPT
        assert _ids(metadata, before) == list(range(10))
        assert _duck_ids(metadata) == KEPT
        assert _duck_ids(f"{mnt}{path}") == KEPT
        assert _delete_files(metadata, f"{mnt}{path}") == [
            ([f"file://{mnt}{path}/data/{data}"] * 2, 0)
        ]
        deletes = Path(f"{mnt}{path}/data/00000-position-deletes.parquet")
        assert deletes.stat().st_size == len(deletes.read_bytes())


def test_rows_deleted_by_position_stay_deleted_restored_elsewhere(cli: Cli, tmp_path: Path) -> None:
    """The delete file rewritten with the metadata, keeping its mtime; a second restore
    over it changes nothing."""
    made = table_with_position_deletes(tmp_path)
    path = _dir(made)
    pinned = made.metadata_location.removeprefix("file://")
    before = made.metadata.snapshots[0].snapshot_id
    [data] = [os.path.basename(f) for f in _data_files(made)]
    cli.run("backup", str(path), check=True)
    moved = tmp_path / "moved-away"
    path.rename(moved)
    home = tmp_path / "new-home"
    cli.run("restore", f"latest:{path}", "--target", str(home), check=True)
    metadata = home / os.path.relpath(pinned, path)
    assert _ids(metadata) == KEPT
    assert _ids(metadata, before) == list(range(10))
    assert _duck_ids(metadata) == KEPT
    assert _delete_files(metadata, str(home)) == [([f"file://{home}/data/{data}"] * 2, 0)]
    deletes = "data/00000-position-deletes.parquet"
    assert os.stat(home / deletes).st_mtime_ns == os.stat(moved / deletes).st_mtime_ns
    first = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    cli.run("restore", f"latest:{path}", "--target", str(home), check=True)
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == first


def test_a_table_whose_delete_file_cannot_be_rewritten_is_not_moved_half(
    cli: Cli, tmp_path: Path
) -> None:
    """Its restore to another place leaves every file as stored with a warning, exit 3,
    rather than moving the manifests without the delete file's paths (its deletes would
    match no data file: the deleted rows would read again)."""
    path = _dir(table_with_position_deletes(tmp_path))
    (path / "data" / "00000-position-deletes.parquet").write_bytes(b"not Parquet")
    cli.run("backup", str(path), check=True)
    home = tmp_path / "new-home"
    done = cli.run("restore", f"latest:{path}", "--target", str(home))
    assert done.returncode == 3, done.stderr.decode()
    [line] = done.stderr.decode().splitlines()
    assert line.startswith(
        f"warning: {home}: Iceberg table not moved to its new place: "
        "00000-position-deletes.parquet: not an Iceberg position delete file: "
    ), line
    assert_same_tree(path, home)  # as stored, every byte


def test_a_table_restored_elsewhere_is_registered_in_a_catalog(cli: Cli, tmp_path: Path) -> None:
    """As NS.NAME from its new directory, reading its moved metadata (deleted rows stay
    deleted); again, nothing changes; a name another table holds is left as it is, with a
    warning (exit 3); a URI that is no catalog is one line before anything is restored."""
    made = table_with_position_deletes(tmp_path)
    path = _dir(made)
    pinned = os.path.basename(made.metadata_location)
    cli.run("backup", str(path), check=True)
    home = tmp_path / "restored" / "shop.db" / "orders"
    uri = f"sqlite:///{tmp_path / 'new-catalog.db'}"
    restore = ("restore", f"latest:{path}", "--target", str(home), "--iceberg-catalog", uri)
    cli.run(*restore, check=True)
    loaded = SqlCatalog("default", uri=uri).load_table("shop.orders")
    assert loaded.metadata_location == f"file://{home}/metadata/{pinned}"
    assert sorted(loaded.scan().to_arrow()["id"].to_pylist()) == KEPT
    assert cli.run(*restore).returncode == 0
    other = tmp_path / "other" / "shop" / "orders"
    done = cli.run("restore", f"latest:{path}", "--target", str(other), "--iceberg-catalog", uri)
    assert (done.returncode, done.stderr.decode()) == (3, (
        f"warning: {other}: Iceberg table not registered in the catalog: shop.orders is in "
        f"the catalog already, reading file://{home}/metadata/{pinned}: left as it is\n"
    ))  # fmt: skip
    assert SqlCatalog("default", uri=uri).load_table("shop.orders").metadata_location == (
        loaded.metadata_location
    )
    wrong = tmp_path / "never"
    bad = cli.run("restore", f"latest:{path}", "--target", str(wrong), "--iceberg-catalog", "x")
    assert bad.returncode == 2
    assert bad.stderr.decode().splitlines()[-1] == (
        "Error: Invalid value for '--iceberg-catalog': x: not a SQL catalog: Could not parse "
        "SQLAlchemy URL from given URL string"
    )
    assert not wrong.exists()
    to_s3 = cli.run("restore", f"latest:{path}", "--target", "s3://b/p", "--iceberg-catalog", uri)
    assert to_s3.returncode == 2
    assert to_s3.stderr.decode().splitlines()[-1] == (
        "Error: --iceberg-catalog registers tables restored to a directory"
    )
