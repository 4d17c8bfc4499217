"""A pinned table of a snapshot, as the Tables screen shows it: the pinned version's schema,
its row count and its first rows, read from the Parquet footers and first row group of the
version's data files through the repository (no mount, no copy)."""

from __future__ import annotations

from dataclasses import dataclass

from snapfs import Repository, Snapshot
from snapfs.snapshot import TableRecord
from snapfs.tables import pin
from snapfs.treefiles import TreeFiles
from snapfs.walk import resolve
from tui.content import PARQUET_ROWS, ContentReader, NoPreview, Preview, TablePreview

MAX_FOOTERS = 2_000  # data files whose footers are read for the row count
_LOG_DIRS = ("_delta_log/", "metadata/")
_POSITION_DELETE_COLUMNS = {"file_path", "pos"}  # an Iceberg position delete file's


@dataclass(frozen=True)
class TablePeek:
    preview: Preview
    note: str  # how the row count was made, and what it leaves out


def peek(repo: Repository, snap: Snapshot, table: TableRecord) -> TablePeek:
    """``table`` of ``snap`` at its pinned version. Blocking: call it from a worker thread."""
    node = resolve(repo, bytes.fromhex(snap.tree), table.path)
    if node is None or node.subtree is None:
        return TablePeek(NoPreview("the table's directory is not in this snapshot"), "")
    files = TreeFiles(repo, node.subtree)
    pinned = pin(files, "", table.format, table.path)
    data_dir = [p for p in pinned.live if not p.startswith(_LOG_DIRS)]
    parquet = sorted(p for p in data_dir if p.endswith(".parquet"))
    vectors = [p for p in data_dir if p.endswith(".bin")]
    import pyarrow.parquet as pq  # a dependency of snapfs (Delta checkpoints)

    rows = deleted = data_files = 0
    first: TablePreview | None = None
    for path in parquet[:MAX_FOOTERS]:
        data = resolve(repo, node.subtree, path)
        assert data is not None  # the pin listed it from these very trees
        reader = ContentReader(repo, data)
        footer = pq.ParquetFile(reader)
        if set(footer.schema_arrow.names) >= _POSITION_DELETE_COLUMNS:
            deleted += footer.metadata.num_rows
            continue
        rows += footer.metadata.num_rows
        data_files += 1
        if first is None:
            first = _first_rows(footer)
    if first is None:
        return TablePeek(NoPreview(f"version {pinned.version} has no data files"), "")
    return TablePeek(
        TablePreview(first.schema, rows - deleted, first.columns, first.first_rows),
        _note(data_files, len(parquet), deleted, len(vectors)),
    )


def _first_rows(footer: object) -> TablePreview:
    import pyarrow.parquet as pq

    assert isinstance(footer, pq.ParquetFile)
    schema = [(field.name, str(field.type)) for field in footer.schema_arrow]
    batch = next(footer.iter_batches(batch_size=PARQUET_ROWS), None)
    names = [name for name, _type in schema]
    rows = [] if batch is None else batch.to_pylist()
    return TablePreview(schema, 0, names, [[str(r.get(n)) for n in names] for r in rows])


def _note(data_files: int, parquet: int, deleted: int, vectors: int) -> str:
    read = f"rows counted in {data_files:,} data file{'' if data_files == 1 else 's'}"
    if parquet > MAX_FOOTERS:
        read += f" (of the first {MAX_FOOTERS:,} of its {parquet:,} Parquet files)"
    if deleted:
        read += f", less {deleted:,} rows its position delete files remove"
    if vectors:
        read += f"; {vectors:,} deletion vectors are not subtracted (query the mount for that)"
    return read
