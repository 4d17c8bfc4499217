"""A file of a snapshot read through the repository API, for previews. Only the chunks a
reader touches are fetched, so a Parquet footer costs one or two chunks, not the file."""

from __future__ import annotations

import bisect
import io
from collections import OrderedDict
from dataclasses import dataclass
from itertools import accumulate

from snapfs import Repository
from snapfs.tree import Node

TEXT_PREVIEW_BYTES = 64 * 1024
PARQUET_ROWS = 20
_CACHED_CHUNKS = 4


class ContentReader(io.RawIOBase):
    """A seekable, read-only file over a node's chunks (a few decoded chunks are cached)."""

    def __init__(self, repo: Repository, node: Node) -> None:
        super().__init__()
        self._repo = repo
        self._ids = list(node.content)
        sizes = [repo.blob_entry(blob_id).raw_length for blob_id in self._ids]
        self._starts = [0, *accumulate(sizes)]
        self._size = self._starts[-1]
        self._pos = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out) and self._pos < self._size:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            chunk = self._chunk(index)
            skip = self._pos - self._starts[index]
            take = min(len(out) - done, len(chunk) - skip)
            out[done : done + take] = chunk[skip : skip + take]
            done += take
            self._pos += take
        return done

    def _chunk(self, index: int) -> bytes:
        chunk = self._cache.get(index)
        if chunk is None:
            chunk = bytes(self._repo.read_blob(self._ids[index]))
            self._cache[index] = chunk
            if len(self._cache) > _CACHED_CHUNKS:
                self._cache.popitem(last=False)
        return chunk


@dataclass(frozen=True)
class TextPreview:
    text: str
    truncated: bool


@dataclass(frozen=True)
class TablePreview:
    """A Parquet file: its schema, row count, and its first rows as strings."""

    schema: list[tuple[str, str]]
    rows: int
    columns: list[str]
    first_rows: list[list[str]]


@dataclass(frozen=True)
class NoPreview:
    reason: str


Preview = TextPreview | TablePreview | NoPreview


def preview(repo: Repository, node: Node) -> Preview:
    """What the browser shows for a file. Blocking: call it from a worker thread."""
    if node.type != "file":
        return NoPreview(f"{node.type}: no contents to show")
    if not node.content:
        return NoPreview("empty file")
    if node.name.lower().endswith(b".parquet"):
        return parquet_preview(ContentReader(repo, node))
    return text_preview(ContentReader(repo, node))


def text_preview(reader: ContentReader) -> Preview:
    head = reader.read(TEXT_PREVIEW_BYTES + 1)
    truncated = len(head) > TEXT_PREVIEW_BYTES
    head = head[:TEXT_PREVIEW_BYTES]
    if b"\0" in head:
        return NoPreview("binary file")
    try:
        # A multi-byte character may be cut at the end of the window: ignore only that.
        text = head.decode("utf-8") if not truncated else _decode_prefix(head)
    except UnicodeDecodeError:
        return NoPreview("binary file (not UTF-8)")
    return TextPreview(text, truncated)


def _decode_prefix(head: bytes) -> str:
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", head, 0, len(head), "not text")


def parquet_preview(reader: ContentReader) -> Preview:
    try:
        import pyarrow.parquet as pq  # optional: the preview says so when it is missing
    except ImportError:
        return NoPreview("Parquet preview needs pyarrow (pip install pyarrow)")
    try:
        parquet = pq.ParquetFile(reader)
        schema = [(field.name, str(field.type)) for field in parquet.schema_arrow]
        batch = next(parquet.iter_batches(batch_size=PARQUET_ROWS), None)
    except Exception as e:  # pyarrow raises its own types for damaged or non-Parquet files
        return NoPreview(f"not a readable Parquet file: {e}")
    rows = [] if batch is None else batch.to_pylist()
    names = [name for name, _type in schema]
    return TablePreview(
        schema=schema,
        rows=parquet.metadata.num_rows,
        columns=names,
        first_rows=[[str(row.get(name)) for name in names] for row in rows],
    )
