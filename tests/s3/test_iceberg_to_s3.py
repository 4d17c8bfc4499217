"""A pinned Iceberg table (pyiceberg, a SQL catalog on SQLite) restored into a bucket
(SeaweedFS): its metadata JSON, manifest lists and manifests name the new place, so
pyiceberg's StaticTable reads it there through the S3 FileIO, equal to the pinned snapshot
and its history, with the source gone; a second restore uploads nothing."""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.table import StaticTable, Table

from snapfs.tables.iceberg import Move, relocate
from tests.conftest import Cli
from tests.iceberg_deletes import table_with_position_deletes
from tests.integration.test_iceberg_tables import KEPT, _dir, _read, table  # noqa: F401
from tests.s3.seaweed import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS


def _s3_io(seaweedfs: SeaweedFS) -> dict[str, str]:
    """pyiceberg's S3 FileIO (pyarrow's) pointed at the server."""
    return {"s3.endpoint": seaweedfs.endpoint, "s3.access-key-id": ACCESS_KEY,
            "s3.secret-access-key": SECRET_KEY, "s3.region": "us-east-1"}  # fmt: skip


def _read_s3(seaweedfs: SeaweedFS, metadata: str, snapshot_id: int | None = None) -> pa.Table:
    static = StaticTable.from_metadata(metadata, properties=_s3_io(seaweedfs))
    scan = static.scan(snapshot_id=snapshot_id)
    return scan.to_arrow().select(["id", "amount", "day"]).sort_by("id")


def _named_paths(name: str, data: bytes) -> list[str]:
    """Every path a metadata file names: the JSON's strings that look like paths, the
    manifest lists' manifests, the manifests' data and delete files."""
    if name.endswith(".metadata.json"):
        found: list[str] = []

        def strings(value: object) -> None:
            if isinstance(value, str) and ("/" in value):
                found.append(value)
            elif isinstance(value, list):
                for v in value:
                    strings(v)
            elif isinstance(value, dict):
                for v in value.values():
                    strings(v)

        strings(json.loads(data))
        return found
    records: list[Any] = list(fastavro.reader(io.BytesIO(data)))
    return [r["manifest_path"] if "manifest_path" in r else r["data_file"]["file_path"]
            for r in records]  # fmt: skip


def test_a_table_restored_into_a_bucket_reads_there_with_every_path_moved(
    cli: Cli,
    table: Table,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    seaweedfs: SeaweedFS,
    client: Any,
) -> None:
    path = _dir(table)
    pinned = table.metadata_location.removeprefix("file://")
    older = [s.snapshot_id for s in table.metadata.snapshots][2:7:2]  # appends, the delete
    expected = [_read(pinned)] + [_read(pinned, s) for s in older]
    cli.run("backup", str(path.parent), check=True)
    stored = set(os.listdir(path / "metadata"))
    table.append(_rows_after())  # the live table moves on: not in the snapshot
    path.rename(tmp_path / "moved-away")
    prefix = f"restored-{uuid.uuid4().hex[:8]}"
    home = f"s3://{BUCKET}/{prefix}/{path.name}"
    restore = ("restore", f"latest:{path.parent}", "--target", f"s3://{BUCKET}/{prefix}",
               "--json")  # fmt: skip
    cli.run(*restore, check=True, env=seaweedfs.env())
    metadata = f"{home}/metadata/{os.path.basename(pinned)}"
    assert [_read_s3(seaweedfs, metadata)] + [
        _read_s3(seaweedfs, metadata, s) for s in older
    ] == expected
    # By the table's directory: the version hint the restore added names the pinned file.
    by_hint = StaticTable.from_metadata(home, properties=_s3_io(seaweedfs))
    assert by_hint.metadata.current_snapshot_id == table.metadata.snapshots[9].snapshot_id
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/{path.name}/metadata/")
    objects = {o["Key"].rsplit("/", 1)[-1]: o["Key"] for o in listed["Contents"]}
    assert objects.keys() == stored | {"version-hint.text"}
    named = 0
    for name, key in objects.items():
        data = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        if name == "version-hint.text":
            assert data == os.path.basename(pinned).removesuffix(".metadata.json").encode()
            continue
        paths = _named_paths(name, data)
        named += len(paths)
        assert all(p.startswith(f"{home}/") or p == home for p in paths), (name, paths)
        assert str(path).encode() not in data, name
    assert named > 50
    again = cli.run(*restore, check=True, env=seaweedfs.env())
    summary = json.loads(again.stdout.splitlines()[-1])
    assert summary["skipped"] == summary["files"]


def _rows_after() -> pa.Table:
    return pa.table({"id": pa.array([900], pa.int64()), "amount": [1.0], "day": ["d9"]})


def test_relocate_takes_every_spelling_of_a_local_path_to_the_bucket() -> None:
    move = Move("/lake/t", "s3://b/p/t")
    assert [move.path(p) for p in ("file:///lake/t/data/a.parquet", "file:/lake/t/m",
                                   "/lake/t", "/lake/tx/a", "s3://other/lake/t")] == [
        "s3://b/p/t/data/a.parquet", "s3://b/p/t/m", "s3://b/p/t", "/lake/tx/a",
        "s3://other/lake/t",
    ]  # fmt: skip
    assert relocate("notes.txt", b"/lake/t", move, len) is None


def test_rows_deleted_by_position_stay_deleted_restored_into_a_bucket(
    cli: Cli, tmp_path: Path, seaweedfs: SeaweedFS, client: Any
) -> None:
    """The delete file goes up rewritten, its rows naming the data file's new key, at the
    size its manifest records; pyiceberg applies it there with the source gone; a second
    restore uploads nothing."""
    made = table_with_position_deletes(tmp_path)
    path = _dir(made)
    pinned = os.path.basename(made.metadata_location)
    before = made.metadata.snapshots[0].snapshot_id
    [task] = made.scan().plan_files()
    data = os.path.relpath(task.file.file_path.removeprefix("file://"), path)
    cli.run("backup", str(path), check=True)
    path.rename(tmp_path / "moved-away")
    prefix = f"restored-{uuid.uuid4().hex[:8]}"
    home = f"s3://{BUCKET}/{prefix}"
    restore = ("restore", f"latest:{path}", "--target", home, "--json")
    cli.run(*restore, check=True, env=seaweedfs.env())
    static = StaticTable.from_metadata(f"{home}/metadata/{pinned}", properties=_s3_io(seaweedfs))
    assert sorted(static.scan().to_arrow()["id"].to_pylist()) == KEPT
    whole = static.scan(snapshot_id=before).to_arrow()["id"].to_pylist()
    assert sorted(whole) == list(range(10))
    [task] = static.scan().plan_files()
    [deletes] = task.delete_files
    assert deletes.file_path == f"{home}/data/00000-position-deletes.parquet"
    key = f"{prefix}/data/00000-position-deletes.parquet"
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert deletes.file_size_in_bytes == len(body)
    assert pq.read_table(io.BytesIO(body))["file_path"].to_pylist() == [f"{home}/{data}"] * 2
    again = cli.run(*restore, check=True, env=seaweedfs.env())
    summary = json.loads(again.stdout.splitlines()[-1])
    assert summary["skipped"] == summary["files"]


def test_a_table_whose_delete_file_cannot_be_rewritten_goes_up_as_stored(
    cli: Cli, tmp_path: Path, seaweedfs: SeaweedFS, client: Any
) -> None:
    """Not half moved: every file as stored, no version hint added, one warning, exit 3."""
    path = _dir(table_with_position_deletes(tmp_path))
    (path / "data" / "00000-position-deletes.parquet").write_bytes(b"not Parquet")
    cli.run("backup", str(path), check=True)
    prefix = f"restored-{uuid.uuid4().hex[:8]}"
    done = cli.run("restore", f"latest:{path}", "--target", f"s3://{BUCKET}/{prefix}",
                   env=seaweedfs.env())  # fmt: skip
    assert done.returncode == 3, done.stderr.decode()
    [line] = done.stderr.decode().splitlines()
    assert line.startswith(
        "warning: /: Iceberg table not moved to its new place: "
        "00000-position-deletes.parquet: not an Iceberg position delete file: "
    ), line
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")["Contents"]
    objects = {o["Key"].removeprefix(f"{prefix}/"): o["Key"] for o in listed}
    assert objects.keys() == {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}
    for rel, key in objects.items():
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == (path / rel).read_bytes(), rel
