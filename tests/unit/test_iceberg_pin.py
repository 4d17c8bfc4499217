"""tables.iceberg on hand-made tables in memory (Avro written by fastavro): which metadata
file is pinned, how its absolute paths map into the table, which files make it."""

from __future__ import annotations

import gzip
import io
import json

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from snapfs.errors import TableUnreadable
from snapfs.tables import find_tables
from snapfs.tables.iceberg import pin
from tests.unit.test_delta_pin import MemoryFiles

ROOT = "/lake/t"  # where the table's directory is, as its metadata names it
MANIFEST_LIST: dict[str, object] = {"type": "record", "name": "manifest_file",
                 "fields": [{"name": "manifest_path", "type": "string"}]}  # fmt: skip
DATA_FILE: dict[str, object] = {"type": "record", "name": "r2", "fields": [
    {"name": "content", "type": "int"}, {"name": "file_path", "type": "string"},
    {"name": "file_size_in_bytes", "type": "long"},
    {"name": "file_format", "type": "string", "default": "PARQUET"}]}  # fmt: skip
MANIFEST: dict[str, object] = {"type": "record", "name": "manifest_entry",
            "fields": [{"name": "status", "type": "int"},
                       {"name": "data_file", "type": DATA_FILE}]}  # fmt: skip


def _avro(schema: dict[str, object], records: list[dict[str, object]]) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    return out.getvalue()


def _entry(path: str, size: int, *, status: int = 1, content: int = 0) -> dict[str, object]:
    data_file = {"content": content, "file_path": path, "file_size_in_bytes": size}
    return {"status": status, "data_file": data_file}


def _metadata(current: int | None, *snapshots: tuple[int, str], updated: int = 5) -> bytes:
    return json.dumps({
        "format-version": 2, "location": f"file://{ROOT}", "last-updated-ms": updated,
        "current-snapshot-id": current,
        "snapshots": [{"snapshot-id": sid, "timestamp-ms": sid * 1000, "manifest-list": ml}
                      for sid, ml in snapshots],
    }).encode()  # fmt: skip


M2: list[dict[str, object]] = [
    _entry(f"{ROOT}/data/a.parquet", 7, status=2),
    _entry(f"{ROOT}/data/b.parquet", 11),
    _entry(f"{ROOT}/data/b-deletes.parquet", 3, content=1),
]


def _table() -> dict[str, bytes]:
    """Snapshot 1 adds a.parquet; snapshot 2 deletes it and adds b.parquet with a position
    delete file; the paths spelled in each URI form (file:///, file:/, plain)."""
    return {
        "t/metadata/00001-aa.metadata.json": _metadata(1, (1, f"file://{ROOT}/metadata/l1.avro")),
        "t/metadata/00002-bb.metadata.json": _metadata(
            2, (1, f"file://{ROOT}/metadata/l1.avro"), (2, f"file:{ROOT}/metadata/l2.avro")
        ),
        "t/metadata/l1.avro": _avro(MANIFEST_LIST, [{"manifest_path": f"{ROOT}/metadata/m1.avro"}]),
        "t/metadata/m1.avro": _avro(MANIFEST, [_entry(f"file://{ROOT}/data/a.parquet", 7)]),
        "t/metadata/l2.avro": _avro(MANIFEST_LIST, [{"manifest_path": f"{ROOT}/metadata/m2.avro"}]),
        "t/metadata/m2.avro": _avro(MANIFEST, M2),
        "t/data/a.parquet": b"a",
        "t/data/b.parquet": b"b",
        "t/data/stray.parquet": b"s",
        "t/data/b-deletes.parquet": position_deletes([(f"file://{ROOT}/data/b.parquet", 0)]),
    }


def position_deletes(rows: list[tuple[str, int]], compression: str = "snappy") -> bytes:
    """A Parquet position delete file of (data file path, position) rows, as Spark writes."""
    schema = pa.schema([
        pa.field("file_path", pa.string(), False, {"PARQUET:field_id": "2147483546"}),
        pa.field("pos", pa.int64(), False, {"PARQUET:field_id": "2147483545"}),
    ])  # fmt: skip
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"file_path": f, "pos": p} for f, p in rows], schema),
                   out, compression=compression)  # fmt: skip
    return out.getvalue()


def test_the_highest_metadata_is_pinned_with_its_files_and_its_history() -> None:
    pinned = pin(MemoryFiles(_table()), "t", ROOT)
    assert (pinned.format, pinned.version, pinned.metadata) == (
        "iceberg", 2, "metadata/00002-bb.metadata.json")  # fmt: skip
    assert (pinned.commit_time_ns, pinned.files, pinned.bytes) == (2_000_000_000, 1, 11)
    assert pinned.live == {"metadata/l2.avro", "metadata/m2.avro", "data/b.parquet",
                           "data/b-deletes.parquet"}  # fmt: skip
    assert pinned.deletes == {"data/b-deletes.parquet"}  # rewritten when the table moves
    assert pinned.history == {"metadata/l1.avro", "metadata/m1.avro", "data/a.parquet"}
    assert pinned.log == {"metadata/00001-aa.metadata.json", "metadata/00002-bb.metadata.json"}
    assert pinned.fixed == {}


def test_without_history_only_the_current_snapshot_is_kept() -> None:
    pinned = pin(MemoryFiles(_table()), "t", ROOT, history=False)
    assert pinned.history == frozenset()


def test_of_two_metadata_files_of_one_number_the_later_is_pinned_and_the_other_left_out() -> None:
    files = _table()
    files["t/metadata/00002-cc.metadata.json"] = _metadata(
        1, (1, f"{ROOT}/metadata/l1.avro"), updated=9
    )
    pinned = pin(MemoryFiles(files), "t", ROOT)
    assert (pinned.metadata, pinned.version) == ("metadata/00002-cc.metadata.json", 1)
    assert pinned.log == {"metadata/00001-aa.metadata.json", "metadata/00002-cc.metadata.json"}


def test_a_version_hint_names_vn_gzip_metadata_reads_and_a_torn_newest_gives_way() -> None:
    files = {
        "t/metadata/v1.metadata.json": _metadata(None),
        "t/metadata/v2.gz.metadata.json": gzip.compress(_metadata(None, updated=42)),
        "t/metadata/v3.metadata.json": b"not yet whole",
        "t/metadata/version-hint.text": b"2\n",
    }
    pinned = pin(MemoryFiles(files), "t", ROOT)
    assert (pinned.metadata, pinned.version, pinned.commit_time_ns) == (
        "metadata/v2.gz.metadata.json", -1, 42_000_000)  # fmt: skip
    assert pinned.live == frozenset() and pinned.files == 0
    assert pinned.log == {"metadata/v1.metadata.json", "metadata/v2.gz.metadata.json"}
    assert pinned.fixed == {"metadata/version-hint.text": b"2\n"}
    del files["t/metadata/version-hint.text"]  # v3 is still being written: v2 is the last
    assert pin(MemoryFiles(files), "t", ROOT).log == pinned.log
    for name in ("v1.metadata.json", "v2.gz.metadata.json"):
        del files[f"t/metadata/{name}"]
    with pytest.raises(TableUnreadable) as e:
        pin(MemoryFiles(files), "t", ROOT)
    assert str(e.value) == (
        "t/metadata/v3.metadata.json: not Iceberg metadata: JSON is malformed: invalid "
        "character (byte 4)"
    )


def test_a_path_outside_the_table_or_a_current_manifest_gone_makes_it_unpinnable() -> None:
    files = _table()
    files["t/metadata/m2.avro"] = _avro(MANIFEST, [_entry("s3://bucket/t/data/b.parquet", 1)])
    with pytest.raises(TableUnreadable) as e:
        pin(MemoryFiles(files), "t", ROOT)
    assert str(e.value) == (
        "its metadata names s3://bucket/t/data/b.parquet, outside the table's directory"
    )
    del files["t/metadata/m2.avro"]
    with pytest.raises(TableUnreadable) as e:
        pin(MemoryFiles(files), "t", ROOT)
    assert str(e.value) == f"{ROOT}/metadata/m2.avro: gone while the table was read"
    files = _table()
    del files["t/metadata/m1.avro"]  # an older snapshot's: its files are not known, not kept
    assert pin(MemoryFiles(files), "t", ROOT).history == {"metadata/l1.avro", "metadata/m1.avro"}


def test_tables_of_both_formats_are_found_and_not_searched_inside() -> None:
    files = MemoryFiles({
        "lake/ice/metadata/v1.metadata.json": b"{}", "lake/ice/data/metadata/v1.metadata.json": b"",
        "lake/delta/_delta_log/00000000000000000000.json": b"",
        "lake/plain/metadata/notes.txt": b"",
    })  # fmt: skip
    assert list(find_tables(files, "lake")) == [("lake/delta", "delta"), ("lake/ice", "iceberg")]
