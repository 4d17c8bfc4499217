"""Iceberg tables: which directories are tables, which metadata file to pin, which files make it.

An Iceberg table is a directory whose ``metadata/`` holds ``*.metadata.json`` files: each a
whole table state (its schemas, its snapshots, the current one), named ``vN.metadata.json``
(Hadoop tables) or ``NNNNN-UUID.metadata.json`` (catalogs), N growing with each commit.
``pin`` chooses the current one: the file ``metadata/version-hint.text`` names when it names
one that is there, else the highest N (a tie, two writers racing for one N, goes to the
later ``last-updated-ms``). Its file set: the metadata file; for the current snapshot its
manifest list, the manifests it names and their data and delete files (``live``); for every
other snapshot the metadata keeps, the same (``history``: time travel inside a snapshot works
as far as ``expire_snapshots`` allowed); the older metadata files (those of lower N, the
metadata log, statistics files) too. Metadata files written after the pin (higher N) and
whatever only they name are left out.

Paths inside Iceberg metadata are absolute (``file:///a/b``, ``file:/a/b`` or ``/a/b``);
``location`` says where the table's directory is, and a path outside it makes the table
unpinnable (TableUnreadable): its snapshot would not hold what a reader opens. The Avro of
manifest lists and manifests is read with pyiceberg's reader, through a FileIO over
``Files``, so the same pin is computed from a local directory, an S3 prefix or a snapshot's
tree. Memory: the file set of one table (its paths), one manifest at a time.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snapfs.errors import TableUnreadable
from snapfs.sources.files import FileInfo, Files
from snapfs.tables.base import Pin, join

if TYPE_CHECKING:  # pyiceberg is loaded with the first Iceberg table met
    from pyiceberg.io import FileIO

METADATA = "metadata"
VERSION_HINT = "version-hint.text"
VERSION_HINT_PATH = f"{METADATA}/{VERSION_HINT}"

_METADATA_FILE = re.compile(r"(?:v(\d+)|(\d+)-[0-9A-Za-z-]+)(?:\.gz)?\.metadata\.json(?:\.gz)?")
_DATA = 0  # DataFileContent.DATA: the files a row count and size are of


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
    that file. TableUnreadable when
    no metadata file parses, a file of the current snapshot's manifests is gone, or the
    metadata names a file outside ``location``."""
    meta_dir = join(table, METADATA)
    listing = {e.name: e for e in files.list(meta_dir) if not e.is_dir}
    hint = _read_hint(files, meta_dir) if VERSION_HINT in listing else None
    name = _current(files, meta_dir, listing, hint)
    state = _parse_metadata(files, meta_dir, name)
    paths = _Paths(location, table)
    reader = _Reader(files, paths)
    live: dict[str, int] = {}
    data = 0
    current = state.current_snapshot()
    if current is not None:
        live[paths.relative(current.manifest_list)] = 0
        for manifest in reader.manifests(current.manifest_list, strict=True):
            live[paths.relative(manifest.manifest_path)] = 0
            for rel, content, size in reader.entries(manifest, strict=True):
                live[rel] = size
                data += size if content == _DATA else 0
    old: set[str] = set()
    if history:
        old |= _older(state, paths, reader, current)
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
        files=reader.data_files,
        bytes=data,
    )


def _older(state: Any, paths: _Paths, reader: _Reader, current: Any) -> set[str]:
    """The files of the snapshots other than the current one, and the metadata files and
    statistics the metadata names: where a manifest of them is gone (expired), its files
    are not known and not kept."""
    old: set[str] = set()
    for snap in state.snapshots:
        if current is not None and snap.snapshot_id == current.snapshot_id:
            continue
        old.add(paths.relative(snap.manifest_list))
        for manifest in reader.manifests(snap.manifest_list, strict=False):
            old.add(paths.relative(manifest.manifest_path))
            old.update(rel for rel, _content, _size in reader.entries(manifest, strict=False))
    old.update(paths.relative(e.metadata_file) for e in state.metadata_log)
    for stats in [*state.statistics, *state.partition_statistics]:
        old.add(paths.relative(stats.statistics_path))
    return old


def _current(
    files: Files, meta_dir: str, listing: dict[str, FileInfo], hint: tuple[str, bytes] | None
) -> str:
    """The name of the metadata file to pin: the hint's when it is there, else the highest
    N's (ties to the later ``last-updated-ms``)."""
    if hint is not None and hint[0] in listing:
        return hint[0]
    numbered = [(n, _number(n)) for n in listing]
    top = max((number for _n, number in numbered if number is not None), default=None)
    if top is None:
        raise TableUnreadable(f"{meta_dir}: no metadata file")
    tied = sorted(n for n, number in numbered if number == top)
    if len(tied) == 1:
        return tied[0]
    return max(tied, key=lambda n: _parse_metadata(files, meta_dir, n).last_updated_ms)


def _read_hint(files: Files, meta_dir: str) -> tuple[str, bytes] | None:
    """``version-hint.text``: the metadata file name it stands for and its bytes; None when
    unreadable. It holds N (``vN.metadata.json``) or, from some writers, a file name."""
    try:
        data = files.read(join(meta_dir, VERSION_HINT))
        text = data.decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text.isdigit():
        return f"v{int(text)}.metadata.json", data
    if _number(text) is not None and "/" not in text:
        return text, data
    return None


def _parse_metadata(files: Files, meta_dir: str, name: str) -> Any:
    """The metadata file parsed by pyiceberg (a TableMetadata). TableUnreadable when it is
    gone or is not Iceberg metadata."""
    from pyiceberg.table.metadata import TableMetadataUtil

    where = join(meta_dir, name)
    try:
        data = files.read(where)
        if ".gz." in name or name.endswith(".gz"):
            data = gzip.decompress(data)
        return TableMetadataUtil.parse_raw(data.decode())
    except FileNotFoundError:
        raise TableUnreadable(f"{where}: removed while the table was read") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:  # pydantic's errors are ValueErrors
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TableUnreadable(f"{where}: not Iceberg metadata: {first}") from None


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


@dataclass
class _Reader:
    """Manifest lists and manifests read through pyiceberg's Avro reader; each manifest's
    entries once, however many snapshots share it. ``data_files``: the data files of the
    manifests read strictly (the current snapshot's)."""

    files: Files
    paths: _Paths
    data_files: int = 0
    _io: FileIO | None = None
    _seen: set[str] = field(default_factory=set)

    def manifests(self, manifest_list: str, *, strict: bool) -> list[Any]:
        from pyiceberg.manifest import read_manifest_list

        try:
            return list(read_manifest_list(self.io().new_input(manifest_list)))
        except FileNotFoundError:
            if strict:
                raise TableUnreadable(f"{manifest_list}: gone while the table was read") from None
            return []

    def entries(self, manifest: Any, *, strict: bool) -> Iterator[tuple[str, int, int]]:
        """Each live entry's (path, content, size); a manifest seen before gives none
        (``strict`` ones come first, so the current snapshot's are all counted)."""
        if manifest.manifest_path in self._seen:
            return
        self._seen.add(manifest.manifest_path)
        try:
            entries = manifest.fetch_manifest_entry(self.io(), discard_deleted=True)
        except FileNotFoundError:
            if strict:
                raise TableUnreadable(
                    f"{manifest.manifest_path}: gone while the table was read"
                ) from None
            return
        for entry in entries:
            data_file = entry.data_file
            content = int(data_file.content)
            if strict and content == _DATA:
                self.data_files += 1
            yield self.paths.relative(data_file.file_path), content, data_file.file_size_in_bytes

    def io(self) -> FileIO:
        if self._io is None:
            self._io = _file_io(self.files, self.paths)
        return self._io


def _file_io(files: Files, paths: _Paths) -> FileIO:
    """A read-only pyiceberg FileIO over ``files``: a location is read whole when opened."""
    from pyiceberg.io import FileIO, InputFile, InputStream, OutputFile

    class _Input(InputFile):
        def __len__(self) -> int:
            info = files.stat(paths.files_path(self.location))
            if info is None:
                raise FileNotFoundError(self.location)
            return info.size

        def exists(self) -> bool:
            return files.stat(paths.files_path(self.location)) is not None

        def open(self, seekable: bool = True) -> InputStream:
            stream: InputStream = io.BytesIO(files.read(paths.files_path(self.location)))
            return stream

    class _IO(FileIO):
        def new_input(self, location: str) -> InputFile:
            return _Input(location)

        def new_output(self, location: str) -> OutputFile:
            raise PermissionError(f"{location}: a table is only read while it is pinned")

        def delete(self, location: str | InputFile | OutputFile) -> None:
            raise PermissionError(f"{location}: a table is only read while it is pinned")

    return _IO()
