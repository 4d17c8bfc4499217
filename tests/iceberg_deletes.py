"""An Iceberg table with a position delete file (v2 merge-on-read), which pyiceberg 0.12
cannot write itself (its ``delete`` with ``write.delete.mode=merge-on-read`` warns and
rewrites files instead): the delete file is written here with pyarrow as Spark writes one
(the spec's ``file_path`` and ``pos`` columns with their reserved field ids, the data
file's path as its manifest names it, the ``file_path`` bounds in the manifest entry) and
committed in a delete manifest through pyiceberg's fast append, whose manifest writer (data
only) is given the ``deletes`` content. pyiceberg and DuckDB's iceberg_scan both apply
it."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestWriterV2,
)
from pyiceberg.table import Table
from pyiceberg.typedef import Record

PATH_FIELD_ID = 2147483546  # the position delete schema's file_path (Iceberg spec)
POS_FIELD_ID = 2147483545  # and its pos
DELETED = [2, 5]  # positions deleted in the one data file: ids 2 and 5


class _DeleteManifestWriter(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


def table_with_position_deletes(root: Path) -> Table:
    """A table of ids 0..9 in one data file, then a snapshot deleting DELETED by position."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{root / 'catalog.db'}",
                         warehouse=f"file://{root / 'lake'}")  # fmt: skip
    catalog.create_namespace("shop")
    rows = pa.table({"id": pa.array(range(10), pa.int64())})
    made = catalog.create_table("shop.orders", schema=rows.schema)
    made.append(rows)
    [task] = made.scan().plan_files()
    data_path = task.file.file_path
    deletes = f"{made.location()}/data/00000-position-deletes.parquet"
    local = deletes.removeprefix("file://")
    schema = pa.schema([
        pa.field("file_path", pa.string(), False, {"PARQUET:field_id": str(PATH_FIELD_ID)}),
        pa.field("pos", pa.int64(), False, {"PARQUET:field_id": str(POS_FIELD_ID)}),
    ])  # fmt: skip
    rows_deleted = pa.table([[data_path] * len(DELETED), DELETED], schema=schema)
    pq.write_table(rows_deleted, local)
    bound = {PATH_FIELD_ID: data_path.encode()}
    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES, file_path=deletes,
        file_format=FileFormat.PARQUET, partition=Record(), record_count=len(DELETED),
        file_size_in_bytes=os.path.getsize(local), lower_bounds=bound, upper_bounds=bound,
    )  # fmt: skip
    delete_file.spec_id = 0
    with made.transaction() as tx, tx.update_snapshot().fast_append() as append:
        append.new_manifest_writer = lambda spec: _DeleteManifestWriter(  # type: ignore[method-assign]
            spec, append.schema(), append.new_manifest_output(), append.snapshot_id,
            append._compression,
        )  # fmt: skip
        append.append_data_file(delete_file)
    return catalog.load_table("shop.orders")
