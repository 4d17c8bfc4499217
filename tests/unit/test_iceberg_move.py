"""tables.iceberg's moves on hand-made tables in memory: every path of the metadata, manifest
lists and manifests taken below the new directory in its own spelling, manifest lengths
those of the moved manifests, the same bytes each time; the moved table pins as the stored
one did, at its new place."""

from __future__ import annotations

import gzip
import io
from typing import Any, cast

import fastavro
import pyarrow.parquet as pq
import pytest

from snapfs.errors import TableUnreadable
from snapfs.tables.iceberg import Move, MovedTable, pin, relocate_deletes, version_hint
from tests.unit.test_delta_pin import MemoryFiles
from tests.unit.test_iceberg_pin import M2, MANIFEST, ROOT, _avro, _entry, _table, position_deletes

NEW = "/mnt/x/lake/t"
SIZED_LIST: dict[str, object] = {"type": "record", "name": "manifest_file", "fields": [
    {"name": "manifest_path", "type": "string"},
    {"name": "manifest_length", "type": "long"}]}  # fmt: skip


def _moved(files: dict[str, bytes]) -> tuple[MovedTable, dict[str, bytes]]:
    """The table at "t" moved from ROOT to NEW, and every file of it as it then reads."""
    moved = MovedTable(MemoryFiles(files), "t", ROOT, NEW, capacity=1 << 20)
    out = {}
    for key, data in files.items():
        rel = key.removeprefix("t/")
        found = moved.read(rel) if rel.startswith("metadata/") else None
        out[key] = data if found is None else found
    return moved, out


def test_each_spelling_of_a_path_below_the_table_moves_and_nothing_else() -> None:
    move = Move(ROOT, NEW)
    assert [move.path(p) for p in (f"file://{ROOT}/a", f"file:{ROOT}/a", f"{ROOT}/a", ROOT)] == [
        f"file://{NEW}/a", f"file:{NEW}/a", f"{NEW}/a", NEW]  # fmt: skip
    assert [move.path(p) for p in (f"{ROOT}x/a", "s3://b/lake/t/a", "lake/t")] == [
        f"{ROOT}x/a", "s3://b/lake/t/a", "lake/t"]  # fmt: skip


def test_the_moved_table_pins_at_its_new_place_as_the_stored_one_did() -> None:
    files = _table()
    files["t/metadata/l2.avro"] = _avro(
        SIZED_LIST, [{"manifest_path": f"{ROOT}/metadata/m2.avro", "manifest_length": 1}]
    )
    stored = pin(MemoryFiles(files), "t", ROOT)
    moved_table, moved = _moved(files)
    again = pin(MemoryFiles(moved), "t", NEW)
    assert (again.version, again.metadata, again.live, again.history, again.log) == (
        stored.version, stored.metadata, stored.live, stored.history, stored.log)  # fmt: skip
    [listed] = fastavro.reader(io.BytesIO(moved["t/metadata/l2.avro"]))
    assert listed == {"manifest_path": f"{NEW}/metadata/m2.avro",
                      "manifest_length": len(moved["t/metadata/m2.avro"])}  # fmt: skip
    assert moved["t/metadata/00002-bb.metadata.json"].count(NEW.encode()) == 3
    assert ROOT.encode() not in moved["t/metadata/00002-bb.metadata.json"].replace(
        NEW.encode(), b"")  # fmt: skip
    assert moved["t/data/b.parquet"] == files["t/data/b.parquet"]
    assert moved_table.size("metadata/m2.avro") == len(moved["t/metadata/m2.avro"])


def test_a_move_gives_the_same_bytes_each_time_and_keeps_gzip() -> None:
    files = _table()
    files["t/metadata/v3.gz.metadata.json"] = gzip.compress(files.pop(
        "t/metadata/00002-bb.metadata.json"))  # fmt: skip
    files["t/metadata/m3.avro"] = _avro(MANIFEST, [_entry(f"{ROOT}/d/{i}", i) for i in range(999)])
    first, second = _moved(files)[1], _moved(files)[1]
    assert first == second
    assert gzip.decompress(first["t/metadata/v3.gz.metadata.json"]).count(NEW.encode()) == 3
    entries = cast(
        list[dict[str, Any]], list(fastavro.reader(io.BytesIO(first["t/metadata/m3.avro"])))
    )
    assert [e["data_file"]["file_path"] for e in entries] == [f"{NEW}/d/{i}" for i in range(999)]


def test_the_version_hint_names_the_pinned_file_as_readers_complete_it() -> None:
    assert version_hint("v12.metadata.json") == b"12"
    assert version_hint("00003-ab-cd.metadata.json") == b"00003-ab-cd"


def test_a_table_moved_already_moves_to_the_same_bytes() -> None:
    moved = _moved(_table())[1]
    assert _moved(moved)[1] == moved


def test_a_position_delete_file_names_the_moved_data_file_at_its_moved_size() -> None:
    """Its rows name data files by absolute path: moved with the manifests that name it,
    which record its new size; as a mount knows it beforehand (``deletes``) too."""
    files = _table()
    for deletes in (None, frozenset({"data/b-deletes.parquet"})):
        moved = MovedTable(MemoryFiles(files), "t", ROOT, NEW, 1 << 20, deletes)
        manifest = moved.read("metadata/m2.avro")
        assert manifest is not None
        assert moved.deletes() == ["data/b-deletes.parquet"]
        rewritten = moved.read("data/b-deletes.parquet")
        assert rewritten is not None
        assert pq.read_table(io.BytesIO(rewritten)).to_pylist() == [
            {"file_path": f"file://{NEW}/data/b.parquet", "pos": 0}
        ]
        assert pq.read_schema(io.BytesIO(rewritten)).field("pos").metadata == {
            b"PARQUET:field_id": b"2147483545"
        }
        entries = cast(list[dict[str, Any]], list(fastavro.reader(io.BytesIO(manifest))))
        assert [(e["data_file"]["file_path"], e["data_file"]["file_size_in_bytes"])
                for e in entries if e["data_file"]["content"] == 1] == [
            (f"{NEW}/data/b-deletes.parquet", len(rewritten))]  # fmt: skip
    assert moved.read("data/b.parquet") is None  # a data file reads as stored


def test_delete_files_it_cannot_rewrite_make_the_table_unmovable() -> None:
    """Deletion vectors (Puffin) name their data file in the manifest and the Puffin
    footer, not rewritten yet; a delete file the snapshot did not record (one made before
    snapfs recorded them) would show stored on a mount: neither is moved half."""
    files = _table()
    puffin = dict(_entry(f"{ROOT}/data/b-dv.puffin", 40, content=1))
    puffin["data_file"] = {**cast(dict[str, Any], puffin["data_file"]), "file_format": "PUFFIN"}
    files["t/metadata/m2.avro"] = _avro(MANIFEST, [*M2[:2], puffin])
    with pytest.raises(TableUnreadable) as e:
        MovedTable(MemoryFiles(files), "t", ROOT, NEW, 1 << 20).read("metadata/m2.avro")
    assert str(e.value) == (
        "m2.avro: names position delete files in PUFFIN (deletion vectors), whose data file "
        "paths snapfs cannot move yet"
    )
    with pytest.raises(TableUnreadable) as e:
        MovedTable(MemoryFiles(_table()), "t", ROOT, NEW, 1 << 20, frozenset()).read(
            "metadata/m2.avro"
        )
    assert str(e.value) == (
        f"{ROOT}/data/b-deletes.parquet: a position delete file the snapshot does not record "
        "(a snapshot made before snapfs recorded them): its paths cannot be moved"
    )


def test_a_moved_delete_file_keeps_its_codec_and_moves_to_the_same_bytes() -> None:
    for codec, named in (("none", "UNCOMPRESSED"), ("zstd", "ZSTD"), ("gzip", "GZIP")):
        stored = position_deletes([(f"{ROOT}/data/b.parquet", 3)], codec)
        moved = relocate_deletes("d.parquet", stored, Move(ROOT, NEW))
        column = pq.ParquetFile(io.BytesIO(moved)).metadata.row_group(0).column(0)
        assert column.compression == named
        assert column.path_in_schema == "file_path"
        assert relocate_deletes("d.parquet", stored, Move(ROOT, NEW)) == moved
        assert relocate_deletes("d.parquet", moved, Move(ROOT, NEW)) == moved  # moved already
    with pytest.raises(TableUnreadable) as e:
        relocate_deletes("d.parquet", _avro(MANIFEST, M2), Move(ROOT, NEW))
    assert str(e.value).startswith("d.parquet: not an Iceberg position delete file: ")
