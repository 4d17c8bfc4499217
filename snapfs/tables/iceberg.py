"""Iceberg tables: which directories are tables, which metadata file to pin, which files make it.

An Iceberg table is a directory whose ``metadata/`` holds ``*.metadata.json`` files: each a
whole table state (its schemas, its snapshots, the current one), named ``vN.metadata.json``
(Hadoop tables) or ``NNNNN-UUID.metadata.json`` (catalogs), N growing with each commit.
``pin`` chooses the current one: the file ``metadata/version-hint.text`` names when it names
one that is there, else the highest N (a tie, two writers racing for one N, goes to the
later ``last-updated-ms``); one that does not parse (still being written) gives way to the
one before it. Its file set: the metadata file; for the current snapshot its
manifest list, the manifests it names and their data and delete files (``live``); for every
other snapshot the metadata keeps, the same (``history``: time travel inside a snapshot works
as far as ``expire_snapshots`` allowed); the older metadata files (those of lower N, the
metadata log, statistics files) too. Metadata files written after the pin (higher N) and
whatever only they name are left out.

Paths inside Iceberg metadata are absolute (``file:///a/b``, ``file:/a/b`` or ``/a/b``);
``location`` says where the table's directory is, and a path outside it makes the table
unpinnable (TableUnreadable): its snapshot would not hold what a reader opens. The metadata
JSON is decoded into the few fields a file set needs (msgspec); manifest lists and manifests
are Avro, read with fastavro: pyiceberg's reader converts each file's schema first, which
cost 8x the CPU on a table of 100 commits, and importing pyiceberg 0.5 s more. Everything
reads through ``Files``, so the same pin is computed from a local directory, an S3 prefix
or a snapshot's tree. Memory: the file set of one table (its paths), one manifest at a time,
the names of the manifests read.

``relocate`` and ``MovedTable`` move a table: its metadata files as they read with the
table's directory at another place (a mount, a restore), every path below the old directory
taken below the new one, manifest lists recording their manifests' new lengths.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, cast

import msgspec

from snapfs.errors import TableUnreadable
from snapfs.sources.files import FileInfo, Files
from snapfs.tables.base import Pin, join

METADATA = "metadata"
VERSION_HINT = "version-hint.text"
VERSION_HINT_PATH = f"{METADATA}/{VERSION_HINT}"

_METADATA_FILE = re.compile(r"(?:v(\d+)|(\d+)-[0-9A-Za-z-]+)(?:\.gz)?\.metadata\.json(?:\.gz)?")
_DATA = 0  # a data file's content: the files a row count and size are of
_POSITION_DELETES = 1  # a delete file's content: rows named by data file path and position
_DELETED = 2  # a manifest entry's status: removed by that snapshot
_DELETE_PATH_FIELD = 2147483546  # the field id of a position delete file's file_path


class _Snapshot(msgspec.Struct, rename="kebab"):
    """A snapshot as the metadata names it: format 2 has a manifest list, format 1 may list
    its manifests instead."""

    snapshot_id: int
    timestamp_ms: int
    manifest_list: str | None = None
    manifests: list[str] = []


class _MetadataFile(msgspec.Struct, rename="kebab"):
    metadata_file: str


class _Statistics(msgspec.Struct, rename="kebab"):
    statistics_path: str


class _Metadata(msgspec.Struct, rename="kebab"):
    """The fields of a table metadata file that name files, and the current snapshot."""

    last_updated_ms: int
    current_snapshot_id: int | None = None
    snapshots: list[_Snapshot] = []
    metadata_log: list[_MetadataFile] = []
    statistics: list[_Statistics] = []
    partition_statistics: list[_Statistics] = []

    def current(self) -> _Snapshot | None:
        for snap in self.snapshots:
            if snap.snapshot_id == self.current_snapshot_id:
                return snap
        return None  # null, or -1 (format 1's "none")


def is_table(files: Files, path: str) -> bool:
    """Whether the directory at ``path`` holds ``metadata/`` with a metadata file."""
    return any(
        not e.is_dir and _number(e.name) is not None for e in files.list(join(path, METADATA))
    )


def pin(files: Files, table: str, location: str, *, history: bool = True) -> Pin:
    """The current metadata file of the table at ``table`` (whose directory is at
    ``location``, an absolute path or ``file:`` URI, as its metadata names it) and its file
    set (with ``history``, the files of every snapshot it keeps too). The pin's ``version``
    is the current snapshot's id (-1: a table without snapshots), its commit time that
    snapshot's ``timestamp-ms`` (the metadata's ``last-updated-ms`` without one), its
    ``metadata`` the metadata file, ``fixed`` ``version-hint.text`` as read when it names
    that file. TableUnreadable when no metadata file parses, a manifest list or manifest of
    the current snapshot is gone or unreadable, or the metadata names a file outside
    ``location``."""
    meta_dir = join(table, METADATA)
    listing = {e.name: e for e in files.list(meta_dir) if not e.is_dir}
    hint = _read_hint(files, meta_dir, listing) if VERSION_HINT in listing else None
    name, state = _current(files, meta_dir, listing, hint)
    reader = _Reader(files, _Paths(location, table))
    live: dict[str, int] = {}
    data = files_count = 0
    current = state.current()
    if current is not None:
        for rel, content, size in reader.snapshot(current, strict=True):
            if content == _DATA and rel not in live:
                data += size
                files_count += 1
            live[rel] = size
    old: set[str] = set()
    if history:
        old |= _older(state, reader, current)
    # The metadata files before it; one of its own N is a racing writer's, left out.
    number = _number(name) or 0
    log = {join(METADATA, n) for n in listing if (k := _number(n)) is not None and k < number}
    log.add(join(METADATA, name))
    when_ms = current.timestamp_ms if current is not None else state.last_updated_ms
    # A later commit rewrites the hint to name a file the snapshot leaves out: kept as read.
    fixed = {VERSION_HINT_PATH: hint[1]} if hint is not None and hint[0] == name else {}
    return Pin(
        format="iceberg",
        path=table,
        version=current.snapshot_id if current is not None else -1,
        metadata=join(METADATA, name),
        commit_time_ns=when_ms * 1_000_000,
        log=frozenset(log),
        fixed=fixed,
        live=frozenset(live),
        history=frozenset(old - live.keys()),
        deletes=frozenset(reader.position_deletes),
        files=files_count,
        bytes=data,
    )


def _older(state: _Metadata, reader: _Reader, current: _Snapshot | None) -> set[str]:
    """The files of the snapshots other than the current one, and the metadata files and
    statistics the metadata names: where a manifest of them is gone (expired), its files
    are not known and not kept."""
    old: set[str] = set()
    for snap in state.snapshots:
        if snap is not current:
            old.update(rel for rel, _content, _size in reader.snapshot(snap, strict=False))
    relative = reader.paths.relative
    old.update(relative(e.metadata_file) for e in state.metadata_log)
    old.update(relative(st.statistics_path) for st in state.statistics + state.partition_statistics)
    return old


def _current(
    files: Files, meta_dir: str, listing: dict[str, FileInfo], hint: tuple[str, bytes] | None
) -> tuple[str, _Metadata]:
    """The metadata file to pin and its fields: the hint's when it reads, else the one of
    highest N that reads (of one N, the later ``last-updated-ms``). One that does not read
    is being written (writers do not write metadata files atomically: the catalog names
    the file once it is whole) or a wreck: the one before it is the table's last commit."""
    groups: dict[int, list[str]] = {}
    for name in listing:
        if (number := _number(name)) is not None:
            groups.setdefault(number, []).append(name)
    if not groups:
        raise TableUnreadable(f"{meta_dir}: no metadata file")
    order = [[hint[0]]] if hint is not None else []
    order += [sorted(groups[number]) for number in sorted(groups, reverse=True)]
    first: TableUnreadable | None = None
    for group in order:
        parsed = []
        for name in group:
            try:
                parsed.append((name, _parse_metadata(files, meta_dir, name)))
            except TableUnreadable as e:
                first = first or e
        if parsed:
            return max(parsed, key=lambda found: found[1].last_updated_ms)
    assert first is not None  # every group had a name, and none parsed
    raise first


def _read_hint(
    files: Files, meta_dir: str, listing: dict[str, FileInfo]
) -> tuple[str, bytes] | None:
    """``version-hint.text``: the name of the listed metadata file it stands for and its
    bytes; None when unreadable or naming none listed. It holds N (``vN.metadata.json``, or
    ``vN.gz.metadata.json``) or, from some writers, a file name."""
    try:
        data = files.read(join(meta_dir, VERSION_HINT))
        text = data.decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text.isdigit():
        named = [n for n in listing if n.startswith("v") and _number(n) == int(text)]
        return (named[0], data) if len(named) == 1 else None
    return (text, data) if text in listing and _number(text) is not None else None


def _parse_metadata(files: Files, meta_dir: str, name: str) -> _Metadata:
    """The metadata file's fields that matter here. TableUnreadable when it is gone or is
    not Iceberg metadata."""
    where = join(meta_dir, name)
    try:
        data = files.read(where)
        if ".gz." in name or name.endswith(".gz"):
            data = gzip.decompress(data)
        return msgspec.json.decode(data, type=_Metadata)
    except FileNotFoundError:
        raise TableUnreadable(f"{where}: removed while the table was read") from None
    except (OSError, EOFError, msgspec.MsgspecError) as e:  # gzip's errors are OSErrors
        raise TableUnreadable(f"{where}: not Iceberg metadata: {e}") from None


def _number(name: str) -> int | None:
    """N of a metadata file's name; None for any other name."""
    m = _METADATA_FILE.fullmatch(name)
    return None if m is None else int(m.group(1) or m.group(2))


class _Paths:
    """Absolute paths of the metadata as paths relative to the Files root."""

    def __init__(self, location: str, table: str) -> None:
        self.root = posixpath.normpath(_local(location))
        self.table = table

    def relative(self, uri: str) -> str:
        """The path relative to the table's directory. TableUnreadable outside it."""
        path = posixpath.normpath(_local(uri))
        if not path.startswith(self.root + "/"):
            raise TableUnreadable(f"its metadata names {uri}, outside the table's directory")
        return path[len(self.root) + 1 :]

    def files_path(self, uri: str) -> str:
        return join(self.table, self.relative(uri))


def _local(uri: str) -> str:
    """``file:///a``, ``file:/a`` and ``/a`` as ``/a``; other schemes stay as they are (so
    lie outside any local table)."""
    if uri.startswith("file:"):
        rest = uri[len("file:") :]
        return rest[2:] if rest.startswith("///") else rest
    return uri


class _Reader:
    """Manifest lists and manifests, read with fastavro; each manifest's entries once,
    however many snapshots share it."""

    def __init__(self, files: Files, paths: _Paths) -> None:
        self.files = files
        self.paths = paths
        self._seen: set[str] = set()
        self.position_deletes: set[str] = set()  # Parquet position delete files met

    def snapshot(self, snap: _Snapshot, *, strict: bool) -> Iterator[tuple[str, int, int]]:
        """The files of a snapshot not given before: (path, content, size), its manifest
        list and manifests as content -1. ``strict``: a file gone or unreadable is
        TableUnreadable, else its files are not known (history: expired, say)."""
        manifests = list(snap.manifests)
        if snap.manifest_list is not None:
            yield self.paths.relative(snap.manifest_list), -1, 0
            listed = self._records(snap.manifest_list, strict=strict)
            manifests += [_text(r, "manifest_path", snap.manifest_list) for r in listed]
        for manifest in manifests:
            if manifest in self._seen:
                continue
            self._seen.add(manifest)
            yield self.paths.relative(manifest), -1, 0
            for entry in self._records(manifest, strict=strict):
                if entry.get("status") == _DELETED:
                    continue
                data_file = entry.get("data_file")
                if not isinstance(data_file, dict):
                    raise TableUnreadable(f"{manifest}: an entry without data_file")
                path = self.paths.relative(_text(data_file, "file_path", manifest))
                if _rewritten_deletes(data_file):
                    self.position_deletes.add(path)
                size = data_file.get("file_size_in_bytes")
                yield path, data_file.get("content") or 0, size if isinstance(size, int) else 0

    def _records(self, uri: str, *, strict: bool) -> list[dict[str, object]]:
        import fastavro  # 40 ms to import: only for a backup meeting an Iceberg table

        try:
            data = self.files.read(self.paths.files_path(uri))
            return [r for r in fastavro.reader(io.BytesIO(data)) if isinstance(r, dict)]
        except FileNotFoundError:
            if strict:
                raise TableUnreadable(f"{uri}: gone while the table was read") from None
        except Exception as e:  # fastavro's errors for a torn or foreign file are many kinds
            if strict:
                raise TableUnreadable(f"{uri}: not an Iceberg manifest: {e}") from None
        return []


def _rewritten_deletes(data_file: dict[str, Any]) -> bool:
    """Whether a manifest entry's file is a Parquet position delete file: its rows name
    data files by absolute path, so a move rewrites it too (``relocate_deletes``)."""
    fmt = data_file.get("file_format")
    return data_file.get("content") == _POSITION_DELETES and str(fmt).upper() == "PARQUET"


def _text(record: dict[str, object], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise TableUnreadable(f"{where}: an entry without {key}")
    return value


# -- a table moved: its metadata as it reads below another directory ------------------------


class Move:
    """Absolute paths below directory ``old`` (the table's, as its metadata names it) taken
    to the same place below ``new``: a local path, each in the spelling it had
    (``file:///P``, ``file:/P``, ``/P``), or a URI of another scheme (``s3://B/P``: a
    restore into a bucket) that every spelling becomes; other strings stay as they are."""

    def __init__(self, old: str, new: str) -> None:
        old, new = old.rstrip("/"), new.rstrip("/")
        if "://" in new and not new.startswith("file:"):
            self._forms = [(f"file://{old}", new), (f"file:{old}", new), (old, new)]
        else:
            self._forms = [(f"file://{old}", f"file://{new}"), (f"file:{old}", f"file:{new}"),
                           (old, new)]  # fmt: skip

    def path(self, text: str) -> str:
        for before, after in self._forms:
            if text.startswith(before) and text[len(before) : len(before) + 1] in ("", "/"):
                return after + text[len(before) :]
        return text

    def json(self, value: object) -> object:
        """Every string in a decoded JSON value moved (keys too: none names a file)."""
        if isinstance(value, str):
            return self.path(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        return value


def relocate(
    name: str,
    data: bytes,
    move: Move,
    length: Callable[[str], int],
    on_deletes: Callable[[str], None] = lambda uri: None,
) -> bytes | None:
    """The bytes of the table's metadata file ``name`` with every path it names moved:
    a metadata JSON (gzip kept), a manifest list (each manifest's ``manifest_length``
    becomes ``length(its path as named)``: a moved manifest grows or shrinks with its
    paths), a manifest (a Parquet position delete file's path bounds and referenced data
    file moved too, and its ``file_size_in_bytes`` ``length`` of it, after
    ``on_deletes(its path as named)``: the file is rewritten, ``relocate_deletes``). None
    for any other file (nothing in it names a path). Pure and deterministic: the same
    bytes each time (Avro's sync marker is kept, gzip's time is 0), and a file with
    nothing to move comes back as it is (so moving twice is moving once).
    TableUnreadable when it does not decode as the kind its name says, or is a manifest
    naming position delete files in another format (v3 deletion vectors in Puffin, ORC or
    Avro deletes), which cannot be moved yet."""
    if _number(name) is not None:
        return _relocate_json(name, data, move)
    if name.endswith(".avro"):
        return _relocate_avro(name, data, move, length, on_deletes)
    return None


def _relocate_json(name: str, data: bytes, move: Move) -> bytes:
    packed = ".gz." in name or name.endswith(".gz")
    try:
        value = msgspec.json.decode(gzip.decompress(data) if packed else data)
    except (OSError, EOFError, msgspec.MsgspecError) as e:
        raise TableUnreadable(f"{name}: not Iceberg metadata: {e}") from None
    moved = move.json(value)
    if moved == value:  # moved already (a restore run again): as it is
        return data
    encoded = msgspec.json.encode(moved)
    return gzip.compress(encoded, mtime=0) if packed else encoded


def _relocate_avro(
    name: str,
    data: bytes,
    move: Move,
    length: Callable[[str], int],
    on_deletes: Callable[[str], None],
) -> bytes | None:
    import fastavro

    try:
        reader = fastavro.reader(io.BytesIO(data))
        records = cast(list[dict[str, Any]], list(reader))
    except Exception as e:  # fastavro's errors for a torn or foreign file are many kinds
        raise TableUnreadable(f"{name}: not an Iceberg manifest: {e}") from None
    schema = cast(dict[str, Any], reader.writer_schema)
    fields = {f["name"] for f in schema.get("fields", [])}
    if "manifest_path" in fields:  # a manifest list
        before = [dict(r) for r in records]
        sized = "manifest_length" in fields
        for record in records:
            if sized:
                record["manifest_length"] = length(record["manifest_path"])
            record["manifest_path"] = move.path(record["manifest_path"])
        changed = records != before
    elif "data_file" in fields:  # a manifest: its entries' data and delete files
        changed = False
        for record in records:
            data_file = record["data_file"]
            if data_file.get("content") == _POSITION_DELETES and record.get("status") != _DELETED:
                changed = _move_deletes(name, data_file, move, length, on_deletes) or changed
            path = move.path(data_file["file_path"])
            changed = changed or path != data_file["file_path"]
            data_file["file_path"] = path
    else:
        return None
    if not changed:  # moved already (a restore run again): as it is, not encoded anew
        return data
    kept = {k: v for k, v in reader.metadata.items() if not k.startswith("avro.")}
    out = io.BytesIO()
    # The file's own schema text (fastavro's parsed form lists keys in an order that varies
    # between processes) and sync marker: moved again, it must give the same bytes.
    own = msgspec.json.decode(reader.metadata["avro.schema"])
    fastavro.writer(out, own, records, codec=reader.codec, metadata=kept,
                    sync_marker=reader._header["sync"])  # fmt: skip
    return out.getvalue()


def _move_deletes(
    name: str,
    data_file: dict[str, Any],
    move: Move,
    length: Callable[[str], int],
    on_deletes: Callable[[str], None],
) -> bool:
    """A live position delete file's entry moved but for its own path: the bounds of its
    ``file_path`` column (readers skip a delete file whose bounds miss a data file's path)
    and ``referenced_data_file``, its size that of the file rewritten. Whether any changed.
    TableUnreadable for a format not rewritten."""
    if not _rewritten_deletes(data_file):
        raise TableUnreadable(
            f"{name}: names position delete files in {data_file.get('file_format')} "
            "(deletion vectors), whose data file paths snapfs cannot move yet"
        )
    changed = False
    for key in ("lower_bounds", "upper_bounds"):
        for bound in data_file.get(key) or []:
            if bound.get("key") == _DELETE_PATH_FIELD and isinstance(bound["value"], bytes):
                moved = move.path(bound["value"].decode("utf-8", "surrogateescape"))
                encoded = moved.encode("utf-8", "surrogateescape")
                changed = changed or encoded != bound["value"]
                bound["value"] = encoded
    if isinstance(referenced := data_file.get("referenced_data_file"), str):
        data_file["referenced_data_file"] = move.path(referenced)
        changed = changed or data_file["referenced_data_file"] != referenced
    on_deletes(data_file["file_path"])
    size = length(data_file["file_path"])
    changed = changed or size != data_file["file_size_in_bytes"]
    data_file["file_size_in_bytes"] = size
    return changed


# Parquet's codec names as pyarrow writes them; another (LZO) is written as Snappy.
_CODECS = {"UNCOMPRESSED": "none", "SNAPPY": "snappy", "GZIP": "gzip", "BROTLI": "brotli",
           "LZ4": "lz4", "LZ4_RAW": "lz4", "ZSTD": "zstd"}  # fmt: skip


def relocate_deletes(name: str, data: bytes, move: Move) -> bytes:
    """The bytes of the Parquet position delete file ``name`` with its ``file_path`` column
    moved (its other columns, field ids, key-value metadata and compression as they were).
    As it is when nothing moves; deterministic for one pyarrow. TableUnreadable when it is
    not a position delete file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        table = parquet.read()
        at = table.schema.get_field_index("file_path")
        if at < 0:
            raise ValueError("no file_path column")
        paths = table.column(at)
        if not pa.types.is_string(paths.type) and not pa.types.is_large_string(paths.type):
            raise ValueError(f"file_path is {paths.type}")
    except (OSError, ValueError, pa.ArrowException) as e:
        raise TableUnreadable(f"{name}: not an Iceberg position delete file: {e}") from None
    distinct = pc.unique(paths)
    moved = pa.array([move.path(p) for p in distinct.to_pylist()], paths.type)
    if moved.equals(distinct):  # moved already (a restore run again): as it is
        return data
    taken = pc.take(moved, pc.index_in(paths, value_set=distinct))
    table = table.set_column(at, table.schema.field(at), taken)
    meta = parquet.metadata
    codec = meta.row_group(0).column(0).compression if meta.num_row_groups else "SNAPPY"
    out = io.BytesIO()
    pq.write_table(table, out, compression=_CODECS.get(codec, "snappy"),
                   row_group_size=max(meta.row_group(0).num_rows, 1) if meta.num_row_groups
                   else None)  # fmt: skip
    return out.getvalue()


def version_hint(metadata_name: str) -> bytes:
    """``version-hint.text`` naming the metadata file ``metadata_name``: N for
    ``vN.metadata.json``, else the name without ``.metadata.json`` (which pyiceberg and
    DuckDB both complete)."""
    stem = metadata_name.removesuffix(".metadata.json")
    return stem[1:].encode() if stem[:1] == "v" and stem[1:].isdigit() else stem.encode()


class MovedTable:
    """The metadata files of the table at ``table`` in ``files`` as they read with the
    table's directory moved from ``old`` to ``new`` (``relocate``), and its Parquet position
    delete files (``relocate_deletes``), each computed when first asked for. ``deletes``:
    those delete files (relative to the table), known beforehand (a mount shows their moved
    sizes before any manifest is read), a manifest naming another then TableUnreadable;
    None: those the manifests name as they are moved (``deletes()``). Memory: a size for
    each file asked about (one number a file), and the moved bytes in an LRU of
    ``capacity`` bytes (moved again when asked again: the same bytes). Thread-safe; two
    threads asking at once may both compute a file."""

    def __init__(
        self,
        files: Files,
        table: str,
        old: str,
        new: str,
        capacity: int,
        deletes: frozenset[str] | None = None,
    ) -> None:
        self._files = files
        self._paths = _Paths(old, table)
        self._moved_paths = _Paths(new, table)
        self._move = Move(old, new)
        self._capacity = capacity
        self._known = deletes
        self._deletes: set[str] = set(deletes or ())
        self._sizes: dict[str, int | None] = {}
        self._bytes: OrderedDict[str, bytes] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def deletes(self) -> list[str]:
        """The position delete files known (given, or named by the manifests moved)."""
        with self._lock:
            return sorted(self._deletes)

    def size(self, rel: str) -> int | None:
        """The moved size of the file at ``rel`` (relative to the table); None when it is
        not moved (it reads as stored)."""
        with self._lock:
            if rel in self._sizes:
                return self._sizes[rel]
        return None if (moved := self.read(rel)) is None else len(moved)

    def read(self, rel: str) -> bytes | None:
        """The moved bytes of the file at ``rel``; None when it is not moved.
        FileNotFoundError when there is none; TableUnreadable as ``relocate``."""
        with self._lock:
            if (found := self._bytes.get(rel)) is not None:
                self._bytes.move_to_end(rel)
                return found
            if rel in self._sizes and self._sizes[rel] is None:
                return None
            deletes = rel in self._deletes
        data = self._files.read(join(self._paths.table, rel))
        name = posixpath.basename(rel)
        if deletes:
            moved: bytes | None = relocate_deletes(name, data, self._move)
        else:
            moved = relocate(name, data, self._move, self._length, self._on_deletes)
        with self._lock:
            self._sizes[rel] = None if moved is None else len(moved)
            if moved is not None and rel not in self._bytes:
                self._bytes[rel] = moved
                self._held += len(moved)
                while self._held > self._capacity and len(self._bytes) > 1:
                    self._held -= len(self._bytes.popitem(last=False)[1])
        return moved

    def _relative(self, uri: str) -> str:
        """A path the metadata names relative to the table: below the old directory, or
        the new one (a file moved already, moved again)."""
        try:
            return self._paths.relative(uri)
        except TableUnreadable:
            return self._moved_paths.relative(uri)

    def _on_deletes(self, uri: str) -> None:
        rel = self._relative(uri)
        with self._lock:
            if rel in self._deletes:
                return
            if self._known is not None:
                raise TableUnreadable(
                    f"{uri}: a position delete file the snapshot does not record (a "
                    "snapshot made before snapfs recorded them): its paths cannot be moved"
                )
            self._deletes.add(rel)
            self._sizes.pop(rel, None)  # asked about as a plain file before: not any more

    def _length(self, uri: str) -> int:
        rel = self._relative(uri)
        size = self.size(rel)
        if size is None:  # not a manifest after all: its length as stored
            info = self._files.stat(join(self._paths.table, rel))
            return 0 if info is None else info.size
        return size
