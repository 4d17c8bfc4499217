"""The repository: the one API above the storage layers (open/init, index, blobs, trees,
snapshots). It is the sole assembler of store, crypto, chunker, pack and index.

Write order is the crash-safety argument: a pack is stored before the index file that names
it, and an index file before any snapshot that uses its blobs. A crash at any instant leaves
at most packs that no index names, never a snapshot naming what is not stored.
"""

from __future__ import annotations

import base64
import dataclasses
import getpass
import os
import shutil
import struct
import tempfile
import threading
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import msgspec

from snapfs import kdf, locks
from snapfs.buffers import Buffer, Data
from snapfs.chunker import Chunker, ChunkerParams
from snapfs.crypto import MasterKey, content_id
from snapfs.errors import (
    IntegrityError,
    KeyInUse,
    KeyNotFound,
    RepositoryExists,
    RepositoryNotFound,
    ShortRead,
    UnsupportedFormat,
    WrongPassword,
)
from snapfs.faults import fault_point
from snapfs.index import IndexEntry, decode_index_file, encode_index_file
from snapfs.index.cache import Feed, IndexCache
from snapfs.index.layered import LayeredIndex
from snapfs.index.runs import Run
from snapfs.kdf import (
    KNOWN_KDFS,
    Argon2Params,
    KdfParams,
    KeyFile,
    cost_fields,
    new_salt,
    read_key_files,
)
from snapfs.locks import Lock
from snapfs.pack import (
    MAX_DATA_RAW,
    MAX_TREE_RAW,
    BlobKind,
    PackEntry,
    PackWriter,
    decode_header,
    entry_problem,
    header_start,
    pack_key,
    read_header,
)
from snapfs.prefix import match_prefix
from snapfs.snapshot import (
    NO_FILTER,
    Snapshot,
    SnapshotFilter,
    decode_snapshot,
    encode_snapshot,
    select,
)
from snapfs.store.base import AlreadyExists, Backend, NotFound, ObjectInfo
from snapfs.store.cache import bypassing, default_cache_dir, pack_cache, tag_cache_root
from snapfs.tree import (
    DIR,
    MAX_TREE_ENTRIES,
    Node,
    Tree,
    TreeProblem,
    decode_tree,
    encode_tree,
    validate,
)

FORMAT_VERSION = 1
PACK_TARGET = 16 * 1024 * 1024
_COALESCE_GAP = 256 * 1024
_RANGE_MAX = 4 * 1024 * 1024  # smaller ranges spread decoding over the threads sooner
_INDEX_EVERY_PACKS = 64
BLOBS_PER_INDEX_FILE = 1 << 18  # rewritten index files: few, ~13 MB sealed each
_INDEX_PREFETCH = 1  # index files read ahead of the one being decoded (each up to ~50 MB)
_INDEX_EVERY_BLOBS = 65_536
_PACK_BLOBS = 65_536  # a pack of tiny blobs ends sooner: each costs ~200 bytes until stored
_TREES_KEPT = 4096
_TREE_NODES_KEPT = 128 * 1024
# Subtrees' index entries kept from their parent's check for their own read (~350 bytes
# each); a tree with more directories than this has only its first ones kept.
_TREE_ENTRIES_KEPT = 8192
T = TypeVar("T")


class Config(msgspec.Struct, frozen=True):
    version: int
    id: str
    chunker: ChunkerParams
    pack_size: int = PACK_TARGET


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat()


class Repository:
    """An open repository. Reading methods are thread-safe; writing goes through ``writer()``."""

    def __init__(self, backend: Backend, key: MasterKey, config: Config, key_id: str = "") -> None:
        self.backend = backend
        self.key = key
        self.config = config
        self.key_id = key_id  # the key file this repository was opened with
        self._index: LayeredIndex | None = None
        self.index_keys: list[str] = []
        self._index_lock = threading.Lock()
        self._index_cache: IndexCache | None = None
        self._private_caches: list[str] = []  # temporary index caches, removed at close
        self.snapshot_problems: list[str] = []  # damaged snapshot files of the last listing
        self._trust_index_cache = True
        self._trees: OrderedDict[bytes, Tree] = OrderedDict()
        self._trees_lock = threading.Lock()
        self._tree_nodes = 0  # nodes of the trees in _trees
        self._tree_nodes_kept = _TREE_NODES_KEPT
        # subtree id -> its entry, looked up by the check of its parent (under _trees_lock)
        self._tree_entries: OrderedDict[bytes, IndexEntry] = OrderedDict()
        self._pool = ThreadPoolExecutor(backend.connections, "snapfs-read")

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        backend: Backend,
        password: str,
        *,
        kdf: KdfParams | None = None,
        chunker: ChunkerParams | None = None,
        pack_size: int = PACK_TARGET,
    ) -> Repository:
        """Create a repository; RepositoryExists if ``backend`` holds one already."""
        if backend.exists("config"):
            raise RepositoryExists("a repository already exists there")
        key = MasterKey.generate()
        params = ChunkerParams() if chunker is None else chunker
        if params.seed == 0:  # a seed of its own, unless copied from another repository
            params = dataclasses.replace(
                params, seed=1 + int.from_bytes(os.urandom(4)) % 0xFFFFFFFF
            )
        config = Config(FORMAT_VERSION, os.urandom(16).hex(), params, pack_size)
        key_id = _write_key(backend, key, password, kdf or Argon2Params())
        try:
            backend.put("config", key.seal(msgspec.msgpack.encode(config)))
        except AlreadyExists:
            raise RepositoryExists("a repository already exists there") from None
        return cls(backend, key, config, key_id)

    @classmethod
    def open(cls, backend: Backend, password: str) -> Repository:
        """Unlock with ``password``: RepositoryNotFound or WrongPassword when that fails."""
        try:
            sealed_config = backend.get("config")
        except NotFound:
            raise RepositoryNotFound("no repository found there") from None
        key, key_id = _unlock(backend, password)
        try:
            config = msgspec.msgpack.decode(key.open(sealed_config), type=Config)
        except msgspec.MsgspecError as e:  # a newer version's, or planted
            raise UnsupportedFormat(f"the repository config does not decode ({e})") from None
        if config.version != FORMAT_VERSION:
            raise UnsupportedFormat(f"repository format {config.version} is not supported")
        if not 0 < config.chunker.max_size <= MAX_DATA_RAW:
            raise UnsupportedFormat(f"a chunk size of {config.chunker.max_size} is not supported")
        return cls(backend, key, config, key_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.backend.close()
        for directory in self._private_caches:
            shutil.rmtree(directory, ignore_errors=True)  # open runs stay readable

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunker(self) -> Chunker:
        return Chunker(self.config.chunker)

    # -- index ---------------------------------------------------------------------------
    @property
    def index(self) -> LayeredIndex:
        """The index: the index cache's runs, built from the index files on first use."""
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    self._index = self._load_index()
        return self._index

    def _load_index(self) -> LayeredIndex:
        """Index files may vanish while we read them (a prune replaced them): list again."""
        for _attempt in range(5):
            keys = [info.key for info in self.backend.list("index/")]
            names = [key.rpartition("/")[2] for key in keys]
            try:
                try:
                    runs = self._cache().open_runs(names, self._plain_index_files)
                except OSError:  # an unwritable cache: a private one for this process
                    self._index_cache = self._private_cache()
                    runs = self._index_cache.open_runs(names, self._plain_index_files)
            except NotFound:
                continue
            self.index_keys = keys
            index = LayeredIndex(runs)
            cache = pack_cache(self.backend)
            if cache is not None:
                cache.sweep_kept(index.has_pack)
            return index
        raise IntegrityError("index files keep changing while being read; try again")

    def _cache(self) -> IndexCache:
        """The shared index cache (SNAPFS_CACHE_DIR/<repository id>/index-cache), or a private
        one when the cache is "off" or the index files must be read afresh (``check``)."""
        if self._index_cache is None:
            root = default_cache_dir()
            if str(root) == "off" or not self._trust_index_cache:
                self._index_cache = self._private_cache()
            else:
                directory = root / self.config.id / "index-cache"
                try:
                    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                    tag_cache_root(root)
                except OSError:
                    pass  # open_runs meets it again, and falls back to a private cache
                self._index_cache = IndexCache(directory, self.config.id, self._cache_mac)
        return self._index_cache

    def _index_cache_adding(self) -> AbstractContextManager[Callable[[str, Buffer], None]]:
        """The shared index cache's ``adding``; a sink that keeps nothing when this process
        uses a private cache (removed at close: nobody would read what it learnt)."""
        cache = self._cache()
        if str(cache.directory) in self._private_caches:
            return nullcontext(lambda _name, _plain: None)
        return cache.adding()

    def _private_cache(self) -> IndexCache:
        directory = tempfile.mkdtemp(prefix="snapfs-index-")
        self._private_caches.append(directory)
        return IndexCache(Path(directory), self.config.id, self._cache_mac)

    def _cache_mac(self, data: bytes) -> bytes:
        return self.key.blob_id(b"snapfs index cache manifest\0" + data)

    def _plain_index_files(self, names: list[str]) -> Iterator[tuple[str, Data]]:
        """The plaintext of each index file, in order, a few read and decrypted ahead on the
        read threads (AES-GCM and zstd release the GIL) while the caller decodes."""
        ahead: deque[tuple[str, Future[Data]]] = deque()
        for name in names:
            ahead.append((name, self._pool.submit(self._open_index_file, f"index/{name}")))
            if len(ahead) > _INDEX_PREFETCH:
                done, fut = ahead.popleft()
                yield done, fut.result()
        while ahead:
            done, fut = ahead.popleft()
            yield done, fut.result()

    def _open_index_file(self, key: str) -> Data:
        try:
            return self.key.open(self.backend.get(key))
        except IntegrityError:
            name = key.rpartition("/")[2]
            raise IntegrityError(f"index file {name[:16]} is damaged") from None

    def set_index(self, index: LayeredIndex) -> None:
        """Replace the index in use (prune's, without the packs it condemns)."""
        with self._index_lock:
            self._index = index
            self._forget_tree_entries()

    def reload_index(self) -> LayeredIndex:
        with self._index_lock:
            self._index = self._load_index()
            self._forget_tree_entries()
            return self._index

    def index_packs(self, keys: list[str] | None = None) -> Iterator[tuple[str, list[PackEntry]]]:
        """Every (pack id, its blobs) listing of the index files ``keys`` (default: those
        the index was loaded from), one file decoded at a time: what prune and check need
        pack by pack, in memory bounded by the largest index file."""
        if keys is None:
            self.index  # noqa: B018 - loaded, so index_keys is known
            keys = self.index_keys
        for name, plain in self._plain_index_files([k.rpartition("/")[2] for k in keys]):
            try:
                yield from decode_index_file(plain)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise IntegrityError(f"index file {name[:16]} is damaged") from None

    def write_index(self, packs: list[tuple[str, list[PackEntry]]]) -> str:
        """Store one index file naming ``packs``; returns its id."""
        return self.store_index(encode_index_file(packs))

    def index_again(self, packs: list[tuple[str, list[PackEntry]]]) -> None:
        """Store one index file naming ``packs`` that this process's index does not hold
        (prune's kept again, a plan's packs indexed again) and give it to the index cache
        when it is free, so that the next open does not merge it again. This process's
        index stays as loaded: what prune decides next does not change."""
        plain = encode_index_file(packs)
        index_id = self.store_index(plain)
        cache = self._index_cache
        if cache is None or self._index is None:
            return  # no cache opened here: the next open reads the file
        run = cache.add(index_id, plain)
        if run is not None:
            run.close()

    def store_index(self, plain: bytes) -> str:
        """Store one encoded index file (``plain``); returns its id."""
        sealed = self.key.seal(plain)
        index_id = content_id(sealed)
        try:
            self.backend.put(f"index/{index_id}", sealed)
        except AlreadyExists:
            pass
        return index_id

    def index_feed(self) -> Feed:
        """Where a writer gives the index files it stores: they become runs of the index
        cache in batches, and the overlay lets their packs go as each run is written."""
        self.index  # noqa: B018 - loaded, so the cache in use is known
        return self._cache().feed(self._published)

    def _published(self, run: Run, pack_ids: list[str]) -> None:
        with self._index_lock:
            index = self._index
        if index is not None:  # the index in use now (prune may have replaced it)
            index.published(run, pack_ids)

    # -- blobs ---------------------------------------------------------------------------
    def has_blob(self, blob_id: bytes) -> bool:
        return blob_id in self.index

    def blob_entry(self, blob_id: bytes) -> IndexEntry:
        """Where the blob is; IntegrityError when the index does not have it, or records a
        place no blob can have (so nothing reads, or allocates, what it claims)."""
        entry = self.index.lookup(blob_id)
        if entry is None:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} is not in the index")
        why = entry_problem(entry.kind, entry.length, entry.raw_length)
        if why:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} is damaged: the index records {why}")
        return entry

    def read_blob(self, blob_id: bytes) -> Data:
        """The blob's plaintext, authenticated and checked against its id."""
        return self._read_at(blob_id, self.blob_entry(blob_id))

    def _read_at(self, blob_id: bytes, entry: IndexEntry) -> Data:
        try:
            sealed = self._get_sealed(blob_id, entry)
        except NotFound:  # a prune moved it: the current index knows where
            entry = self._relocated(blob_id, entry)
            sealed = self._get_sealed(blob_id, entry)
        return self._open_blob(blob_id, sealed, entry.pack_id, entry.raw_length)

    def _get_sealed(self, blob_id: bytes, entry: IndexEntry) -> bytes:
        """The blob's sealed bytes; a pack that ends before them is damage (IntegrityError)."""
        try:
            return self.backend.get_range(pack_key(entry.pack_id), entry.offset, entry.length)
        except ShortRead:
            where = f"pack {entry.pack_id[:16]} is truncated"
            raise IntegrityError(f"blob {blob_id.hex()[:16]} is lost: {where}") from None

    def _relocated(self, blob_id: bytes, old: IndexEntry) -> IndexEntry:
        if blob_id not in self.reload_index():
            raise IntegrityError(f"pack {old.pack_id[:16]} is missing") from None
        entry = self.blob_entry(blob_id)
        if entry.pack_id == old.pack_id:
            raise IntegrityError(f"pack {old.pack_id[:16]} is missing") from None
        return entry

    def _open_blob(self, blob_id: bytes, sealed: Buffer, pack_id: str, raw_length: int) -> Data:
        """Decrypted, decompressed to at most ``raw_length`` bytes (the length recorded for
        it: a zstd bomb fails here, before it allocates), and checked against its id."""
        try:
            data = self.key.open(sealed, raw_length)
        except IntegrityError:
            data = None
        if data is None or len(data) != raw_length or self.key.blob_id(data) != blob_id:
            # named only on failure: formatting it for every blob cost a small file's restore
            raise IntegrityError(f"blob {blob_id.hex()[:16]} in pack {pack_id[:16]} is damaged")
        return data

    def read_blob_ranges(
        self,
        ids: Iterable[bytes],
        consume: Callable[[Iterator[tuple[bytes, Data]]], None],
        threads: int | None = None,
        *,
        on_damaged: Callable[[bytes, IntegrityError], None] | None = None,
        known: Mapping[bytes, IndexEntry] | None = None,
    ) -> None:
        """Hand every blob of ``ids`` (each once) to ``consume``, which runs on ``threads``
        read threads, once per coalesced range of neighbouring blobs in a pack. Each blob is
        decoded and verified only as ``consume`` iterates to it, so what it does with those
        bytes runs while they are still in the CPU's cache: a restore that wrote blobs
        decoded earlier on other threads spent twice the kernel time copying them.

        A blob that is missing, damaged or out of bounds raises IntegrityError, unless
        ``on_damaged`` is given: then it is told (blob id, error), on a read thread, and
        ``consume`` never sees that blob; the others still come. ``known``: entries the
        caller already had from ``blob_entry`` (restore's file offsets), not looked up again.
        """
        threads = threads or self.backend.connections
        ranges = self._plan_ranges(ids, on_damaged, spread=threads, known=known)
        with ThreadPoolExecutor(threads, "snapfs-range") as pool:
            # A generator runs where it is iterated: on the worker, inside ``consume``.
            futures = [pool.submit(consume, self._decode_range(*r, on_damaged)) for r in ranges]
            try:
                for fut in futures:
                    fut.result()
            finally:
                for fut in futures:
                    fut.cancel()

    def read_blob_group(
        self,
        ids: Iterable[bytes],
        on_damaged: Callable[[bytes, IntegrityError], None] | None = None,
    ) -> dict[bytes, Data]:
        """The blobs of ``ids``, read now on the calling thread with coalesced range reads,
        for callers that run their own threads (the mount's decoder). A damaged or missing
        one raises IntegrityError, or, with ``on_damaged``, is told to it and left out."""
        out: dict[bytes, Data] = {}
        for rng in self._plan_ranges(ids, on_damaged):
            out.update(self._decode_range(*rng, on_damaged))
        return out

    def _plan_ranges(
        self,
        ids: Iterable[bytes],
        on_damaged: Callable[[bytes, IntegrityError], None] | None,
        spread: int = 0,
        known: Mapping[bytes, IndexEntry] | None = None,
    ) -> list[tuple[str, int, int, list[tuple[bytes, IndexEntry]]]]:
        """Coalesced ranges of the blobs, by pack. ``spread``: the threads that will decode
        them; ranges are then cut to give each thread several (a small file's window is a
        few MB: three 4 MiB ranges on two threads left one idle for a third of the time)."""
        by_pack: dict[str, list[tuple[bytes, IndexEntry]]] = defaultdict(list)
        total = 0
        known = known or {}
        for blob_id in dict.fromkeys(ids):
            try:
                entry = known.get(blob_id) or self.blob_entry(blob_id)
            except IntegrityError as error:
                if on_damaged is None:
                    raise
                on_damaged(blob_id, error)
                continue
            by_pack[entry.pack_id].append((blob_id, entry))
            total += entry.length
        most = _RANGE_MAX
        if spread:
            most = max(_COALESCE_GAP, min(_RANGE_MAX, total // (4 * spread)))
        ranges = []
        for pack_id, blobs in by_pack.items():
            blobs.sort(key=lambda b: b[1].offset)
            start = end = blobs[0][1].offset
            group: list[tuple[bytes, IndexEntry]] = []
            for blob_id, e in blobs:
                if e.offset - end > _COALESCE_GAP or end - start > most:
                    ranges.append((pack_id, start, end - start, group))
                    start, group = e.offset, []
                group.append((blob_id, e))
                end = max(end, e.offset + e.length)
            ranges.append((pack_id, start, end - start, group))
        return ranges

    def _decode_range(
        self,
        pack_id: str,
        start: int,
        length: int,
        blobs: list[tuple[bytes, IndexEntry]],
        on_damaged: Callable[[bytes, IntegrityError], None] | None,
    ) -> Iterator[tuple[bytes, Data]]:
        gone = False
        try:
            data = memoryview(self.backend.get_range(pack_key(pack_id), start, length))
        except NotFound:  # moved by a prune (the current index says where), or lost
            data, gone = None, True
            self.reload_index()  # once a range: not once a blob of a lost pack
        except ShortRead:  # truncated: the blobs before its end still read, one by one
            data = None
        for blob_id, e in blobs:
            try:
                if gone and self._still_in(blob_id, pack_id):
                    raise IntegrityError(f"pack {pack_id[:16]} is missing")
                if data is None:
                    plain = self.read_blob(blob_id)
                else:
                    sealed = data[e.offset - start : e.offset - start + e.length]
                    plain = self._open_blob(blob_id, sealed, pack_id, e.raw_length)
            except IntegrityError as error:
                if on_damaged is None:
                    raise
                on_damaged(blob_id, error)
                continue
            yield blob_id, plain

    def _still_in(self, blob_id: bytes, pack_id: str) -> bool:
        """Whether the index (as reloaded) still places the blob in ``pack_id``, or nowhere."""
        entry = self.index.lookup(blob_id)
        return entry is None or entry.pack_id == pack_id

    # -- trees and snapshots -------------------------------------------------------------
    def load_tree(self, tree_id: bytes, *, keep: bool = True) -> Tree:
        """The directory ``tree_id``, validated (``tree.validate``, and each subtree id must
        name a tree blob): refused entries are left out and listed in ``Tree.problems``, so
        every reader sees the same clean tree and may warn about the rest. IntegrityError
        when the blob is missing, damaged, not a tree blob, or does not decode as one.
        Trees come from an LRU of at most 4096 trees and 128k nodes in all (about 100 MB: a
        decoded node takes about 770 bytes), or the nodes ``keep_trees`` says;
        ``keep=False``: a caller that reads each tree once (a backup, its parent's) leaves
        the LRU to the trees others will ask for again."""
        with self._trees_lock:
            tree = self._trees.get(tree_id)
            if tree is not None:
                self._trees.move_to_end(tree_id)
                return tree
        data = self._read_tree_blob(tree_id, self._take_tree_entry(tree_id))
        try:
            tree = validate(decode_tree(data))
        except IntegrityError as e:
            raise IntegrityError(f"tree {tree_id.hex()[:16]} is damaged: {e}") from None
        tree = self._checked_subtrees(tree)
        if not keep:
            return tree
        with self._trees_lock:
            if tree_id not in self._trees:
                self._trees[tree_id] = tree
                self._tree_nodes += len(tree.nodes)
            while len(self._trees) > 1 and (
                len(self._trees) > _TREES_KEPT or self._tree_nodes > self._tree_nodes_kept
            ):
                self._tree_nodes -= len(self._trees.popitem(last=False)[1].nodes)
        return tree

    def _checked_subtrees(self, tree: Tree) -> Tree:
        """``tree`` without the directories whose subtree the index knows as a data blob.
        The entries found are kept for reading those subtrees: a walk then looks each
        directory up once, not once here and again to read it."""
        bad = []
        found = []
        for node in tree.nodes:
            if node.type == DIR and node.subtree is not None:
                entry = self.index.lookup(node.subtree)
                if entry is None:
                    continue
                if entry.kind != BlobKind.TREE:
                    bad.append(node.name)
                elif not entry_problem(entry.kind, entry.length, entry.raw_length):
                    found.append((node.subtree, entry))
        self._keep_tree_entries(found[:_TREE_ENTRIES_KEPT])
        if not bad:
            return tree
        problems = [TreeProblem(name, "a subtree that is not a tree") for name in bad]
        return Tree([n for n in tree.nodes if n.name not in bad], (*tree.problems, *problems))

    def tree_entry(self, tree_id: bytes) -> IndexEntry:
        """Where the tree blob is (``blob_entry``), without a lookup when its parent's check
        made it; kept for its read (``load_tree``). IntegrityError when the index does not
        have it, records a place no blob can have, or knows it as a data blob."""
        with self._trees_lock:
            entry = self._tree_entries.get(tree_id)
        if entry is None:
            entry = self._looked_up_tree(tree_id)
            self._keep_tree_entries([(tree_id, entry)])
        return entry

    def _take_tree_entry(self, tree_id: bytes) -> IndexEntry:
        with self._trees_lock:
            entry = self._tree_entries.pop(tree_id, None)
        return entry or self._looked_up_tree(tree_id)

    def _looked_up_tree(self, tree_id: bytes) -> IndexEntry:
        entry = self.blob_entry(tree_id)
        if entry.kind != BlobKind.TREE:
            raise IntegrityError(f"blob {tree_id.hex()[:16]} is not a tree")
        return entry

    def _keep_tree_entries(self, entries: list[tuple[bytes, IndexEntry]]) -> None:
        """Keep ``entries`` for the trees' reads, the oldest kept making room."""
        with self._trees_lock:
            kept = self._tree_entries
            kept.update(entries)
            while len(kept) > _TREE_ENTRIES_KEPT:
                kept.popitem(last=False)

    def _forget_tree_entries(self) -> None:
        """Another index is in use: entries of the one before may name packs it lacks."""
        with self._trees_lock:
            self._tree_entries.clear()

    def _read_tree_blob(self, tree_id: bytes, entry: IndexEntry) -> Data:
        """Trees come from packs kept whole in the local cache, when there is one: a
        re-backup reads every tree of its parent, and on S3 each read was a request. Its
        errors name the blob."""
        cache = pack_cache(self.backend)
        if cache is not None:
            key = pack_key(entry.pack_id)
            try:
                sealed = cache.get_range_kept(key, entry.offset, entry.length)
                return self._open_blob(tree_id, sealed, entry.pack_id, entry.raw_length)
            except (IntegrityError, NotFound):  # a damaged copy, or pruned: ask the store
                cache.forget(key)
        return self._read_at(tree_id, entry)

    def keep_trees(self, nodes: int) -> None:
        """Bound the LRU of decoded trees at ``nodes`` nodes in all from now on (at least
        one tree is kept, however big)."""
        self._tree_nodes_kept = nodes

    def tree_if_cached(self, tree_id: bytes) -> Tree | None:
        """The tree when it is decoded already, without any I/O; else None."""
        with self._trees_lock:
            return self._trees.get(tree_id)

    def snapshots(self, *, every: bool = False) -> list[Snapshot]:
        """Every snapshot whose file opens and decodes. A damaged one is left out, and
        named in ``snapshot_problems`` (until the next listing): one damaged file must not
        hide the others, nor stop a backup. ``every`` (prune): a damaged one is an
        IntegrityError instead, for the data only it uses would look unused, and a replica
        may yet bring its file back."""
        keys = [info.key for info in self.backend.list("snapshots/")]
        found = list(self._pool.map(self._try_snapshot, keys))
        self.snapshot_problems = [f for f in found if isinstance(f, str)]
        if every and self.snapshot_problems:
            first, self.snapshot_problems = self.snapshot_problems[0], []  # named here, once
            raise IntegrityError(
                f"{first}: nothing is deleted while a snapshot cannot be "
                "read (heal it, or remove its file: see README, When check reports damage)"
            )
        return [f for f in found if isinstance(f, Snapshot)]

    def _try_snapshot(self, key: str) -> Snapshot | str | None:
        try:
            return self._load_snapshot(key)
        except IntegrityError as e:
            return str(e)
        except NotFound:  # forgotten (or repaired) since the listing: not damage
            return None

    def _load_snapshot(self, key: str) -> Snapshot:
        snapshot_id = key.rpartition("/")[2]
        try:
            plain = self.key.open(self.backend.get(key))
        except IntegrityError as e:
            raise IntegrityError(f"snapshot {snapshot_id[:8]} is damaged: {e}") from None
        return decode_snapshot(plain, snapshot_id)

    def find_snapshot(self, selector: str, snapshot_filter: SnapshotFilter = NO_FILTER) -> Snapshot:
        """``latest`` is the newest snapshot that passes ``snapshot_filter``; an id is its own."""
        return select(self.snapshots(), selector, snapshot_filter)

    def writer(self) -> Writer:
        return Writer(self)

    # -- job summaries (snapfs.jobs; docs/FORMAT.md "jobs/") -----------------------------
    def job_summary_id(self, host: str, job: str) -> str:
        """The key of a job's summary: keyed, so the store learns no host or job name."""
        return self.key.blob_id(b"snapfs job summary\0" + f"{host}\0{job}".encode()).hex()

    def save_job_summary(self, summary_id: str, plain: bytes) -> None:
        """Replace the job's summary (one object per host and job, overwritten each run)."""
        self.backend.put(f"jobs/{summary_id}", bytes(self.key.seal(plain)), exclusive=False)

    def job_summaries(self) -> list[bytes]:
        """Every job summary stored, opened (none in a repository older than them)."""
        return [
            bytes(self.key.open(self.backend.get(info.key))) for info in self.backend.list("jobs/")
        ]

    # -- maintenance (check, prune, stats) -----------------------------------------------
    def list_packs(self) -> dict[str, int]:
        """Stored pack id -> size in bytes."""
        return {pack_id: info.size for pack_id, info in self.stored_packs().items()}

    def stored_packs(self) -> dict[str, ObjectInfo]:
        """Stored pack id -> its listing: size and mtime (prune's grace period)."""
        return {info.key.rpartition("/")[2]: info for info in self.backend.list("data/")}

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """Read the store itself, not a local cache of it (check judges what is stored): an
        index loaded inside is built afresh from the index files, in a private cache."""
        with bypassing(self.backend):
            trusted, cache = self._trust_index_cache, self._index_cache
            self._trust_index_cache, self._index_cache = False, None
            try:
                yield
            finally:
                self._trust_index_cache, self._index_cache = trusted, cache

    def lock(
        self, kind: str, *, wait: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> Lock:
        """Take a lock of ``kind`` (see locks.py); release it with ``with`` or ``release()``."""
        return locks.acquire(self.backend, self.key, kind, wait=wait, on_wait=on_wait)

    def live_lock_ids(self, kinds: frozenset[str]) -> set[str]:
        return locks.live_ids(self.backend, self.key, kinds)

    def list_locks(self) -> list[locks.HeldLock]:
        return locks.list_locks(self.backend, self.key)

    def remove_stale_locks(self, *, everything: bool = False) -> list[locks.HeldLock]:
        return locks.remove_stale(self.backend, self.key, everything=everything)

    # -- keys: one key file per password, all wrapping the same master key ---------------
    def keys(self) -> list[tuple[str, KeyFile]]:
        """Every key file that parses, by id, oldest first."""
        found = [(k.id, k.record) for k in read_key_files(self.backend) if k.record]
        return sorted(found, key=lambda item: (item[1].created, item[0]))

    def key_problems(self) -> list[str]:
        """What is wrong with each key file: its JSON, its KDF, its bytes against its name."""
        problems = []
        for k in read_key_files(self.backend):
            if k.problem:
                problems.append(f"key file {k.id[:8]}: {k.problem}")
            if content_id(k.data) != k.id:
                problems.append(f"key file {k.id[:8]}: does not hash to its name")
        return problems

    def find_key(self, prefix: str) -> str:
        """The id of the one key file whose id starts with ``prefix``."""
        return match_prefix([i for i, _ in self.keys()], prefix, "key", KeyNotFound)

    def add_key(self, password: str, kdf: KdfParams | None = None) -> str:
        """Let ``password`` open the repository too; the new key file's id."""
        return _write_key(self.backend, self.key, password, kdf or Argon2Params())

    def remove_key(self, key_id: str) -> None:
        """Delete a key file other than the one this repository was opened with: the
        password in hand then always still opens it. Callers hold the ``key`` lock, so
        that two removals cannot race each other down to no key at all."""
        if key_id == self.key_id:
            raise KeyInUse("refusing to remove the key in use: open with another password")
        self.backend.delete(f"keys/{key_id}")

    def change_password(self, password: str, kdf: KdfParams | None = None) -> str:
        """Replace the key in use with one for ``password``; the new key's id. The new key
        is stored before the old one goes, so a crash between leaves both passwords working."""
        added = self.add_key(password, kdf)
        old, self.key_id = self.key_id, added
        self.backend.delete(f"keys/{old}")
        return added

    def read_pack_header(self, pack_id: str) -> list[PackEntry]:
        """A pack's own list of blobs, read from its end without fetching the rest."""
        key = pack_key(pack_id)
        size = self.backend.stat(key).size
        if size < 4:
            raise IntegrityError(f"pack {pack_id[:16]} has a damaged header")
        (hlen,) = struct.unpack("<I", self.backend.get_range(key, size - 4, 4))
        try:
            start = header_start(size, hlen)
            return decode_header(self.key, self.backend.get_range(key, start, hlen), start)
        except IntegrityError as e:
            raise IntegrityError(f"pack {pack_id[:16]} has a damaged header: {e}") from None

    def rewrite_index(self, keep: Callable[[str], bool], superseded: list[str]) -> None:
        """Write the listings of the index files ``superseded`` whose pack ``keep`` accepts
        (each pack once) into few large index files (``store_index_files``), then delete
        ``superseded``. A crash between the two leaves both, whose union is still a correct
        index. Memory: one index file's listings at a time, and the cache's build batches."""
        seen: set[str] = set()

        def kept() -> Iterator[tuple[str, list[PackEntry]]]:
            for pack_id, entries in self.index_packs(superseded):
                if pack_id not in seen and keep(pack_id):
                    seen.add(pack_id)
                    yield pack_id, entries

        written = self.store_index_files(kept())
        for key in superseded:
            if key.rpartition("/")[2] not in written:  # the same listings, the same file
                self.backend.delete(key)

    def store_index_files(self, listings: Iterable[tuple[str, list[PackEntry]]]) -> set[str]:
        """Store ``listings`` (pack id, its blobs) as few large index files, up to
        BLOBS_PER_INDEX_FILE blobs each, consumed as they come; the ids of the files. The
        shared index cache is given each file as it is written, so the next open here reads
        none of them."""
        batch: list[tuple[str, list[PackEntry]]] = []
        blobs = 0
        written: set[str] = set()
        with self._index_cache_adding() as add:

            def store() -> None:
                plain = encode_index_file(batch)
                index_id = self.store_index(plain)
                written.add(index_id)
                add(index_id, plain)

            for pack_id, entries in listings:
                batch.append((pack_id, entries))
                blobs += len(entries)
                if blobs >= BLOBS_PER_INDEX_FILE:
                    store()
                    batch, blobs = [], 0
            if batch:
                store()
        return written

    def delete_pack(self, pack_id: str) -> None:
        self.backend.delete(pack_key(pack_id))

    def forget_snapshot(self, snapshot_id: str) -> None:
        """Move a snapshot aside: ``undelete`` brings it back until prune removes its data."""
        sealed = self.backend.get(f"snapshots/{snapshot_id}")
        try:
            self.backend.put(f"forgotten/{snapshot_id}", sealed)
        except AlreadyExists:
            pass
        self.backend.delete(f"snapshots/{snapshot_id}")

    def forgotten(self) -> list[Snapshot]:
        return [self._load_snapshot(info.key) for info in self.backend.list("forgotten/")]

    def restore_forgotten(self, snapshot_id: str) -> None:
        sealed = self.backend.get(f"forgotten/{snapshot_id}")
        try:
            self.backend.put(f"snapshots/{snapshot_id}", sealed)
        except AlreadyExists:
            pass
        self.backend.delete(f"forgotten/{snapshot_id}")

    def drop_forgotten(self, snapshot_id: str) -> None:
        self.backend.delete(f"forgotten/{snapshot_id}")

    def save_record(self, prefix: str, record: object) -> str:
        """A sealed maintenance record (prune plans) under ``prefix/<id>``."""
        sealed = self.key.seal(msgspec.msgpack.encode(record))
        key = f"{prefix}/{content_id(sealed)}"
        self.backend.put(key, sealed)
        return key

    def load_records(self, prefix: str, kind: type[T]) -> list[tuple[str, T]]:
        """Every record under ``prefix``; IntegrityError naming the first that does not open
        or decode (an error, exit 1: a plan or lock nobody can read must be looked at)."""
        out = []
        for info in self.backend.list(f"{prefix}/"):
            try:
                plain = self.key.open(self.backend.get(info.key))
                out.append((info.key, msgspec.msgpack.decode(plain, type=kind)))
            except (IntegrityError, msgspec.DecodeError) as e:
                raise IntegrityError(f"{info.key}: a damaged record ({e})") from None
        return out

    def delete_record(self, key: str) -> None:
        self.backend.delete(key)

    def read_pack_bytes(self, pack_id: str) -> bytes:
        """A whole stored pack, unverified (check verifies it)."""
        return self.backend.get(pack_key(pack_id))

    def pack_header(self, pack: bytes) -> list[PackEntry]:
        return read_header(self.key, pack)

    def open_blob_in_pack(self, pack: Buffer, pack_id: str, entry: PackEntry) -> Data:
        """One blob out of a whole pack already read, verified against its id."""
        sealed = memoryview(pack)[entry.offset : entry.offset + entry.length]
        return self._open_blob(entry.blob_id, sealed, pack_id, entry.raw_length)


class Writer:
    """Adds blobs, trees and snapshots. ``add_blob`` is thread-safe. On leaving the ``with``
    block: open packs are stored, then the index naming them. A failed block still indexes
    the packs already stored, so a rerun need not upload them again."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._lock = threading.Lock()
        self._open: dict[BlobKind, PackWriter] = {}
        self._pending: set[bytes] = set()
        self._stored: list[tuple[str, list[PackEntry]]] = []
        self._uploads: list[Future[None]] = []
        self._feed: Feed | None = None  # made at the first index file, closed on exit
        self._slots = threading.BoundedSemaphore(3)
        self._pool = ThreadPoolExecutor(3, "snapfs-upload")
        self.stored_bytes = 0
        self.blobs_added = 0

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.flush()
                self._pool.shutdown()
            finally:
                self._close_feed()
            return
        self._pool.shutdown(wait=True)
        try:
            self._write_stored_index()
        except Exception:
            pass
        self._close_feed()

    def _close_feed(self) -> None:
        with self._lock:
            feed = self._feed
        if feed is not None:
            feed.close()

    def add_blob(self, kind: BlobKind, data: Buffer) -> tuple[bytes, bool]:
        """Store ``data`` unless the repository has it; returns its id and whether it was new."""
        blob_id = self.repo.key.blob_id(data)
        with self._lock:
            if blob_id in self._pending or blob_id in self.repo.index:
                return blob_id, False
            self._pending.add(blob_id)
        sealed = self.repo.key.seal(data)
        full = None
        with self._lock:
            pack = self._open.setdefault(kind, PackWriter())
            pack.add(blob_id, kind, sealed, len(data))
            self.stored_bytes += len(sealed)
            self.blobs_added += 1
            if pack.size >= self.repo.config.pack_size or len(pack) >= _PACK_BLOBS:
                full = self._open.pop(kind)
        if full is not None:
            self._upload(full)
        return blob_id, True

    def save_tree(self, nodes: list[Node]) -> bytes:
        """Store a directory; UnsupportedFormat when it is larger than any reader accepts."""
        data = encode_tree(nodes)
        if len(data) > MAX_TREE_RAW or len(nodes) > MAX_TREE_ENTRIES:
            raise UnsupportedFormat(
                f"a directory of {len(nodes)} entries ({len(data)} bytes) is larger than "
                f"a tree may be ({MAX_TREE_ENTRIES} entries, {MAX_TREE_RAW} bytes)"
            )
        return self.add_blob(BlobKind.TREE, data)[0]

    def save_snapshot(self, snap: Snapshot) -> Snapshot:
        """Flush everything the snapshot uses, then store it; returns it with its id."""
        self.flush()
        fault_point("before-snapshot")
        plain = encode_snapshot(snap)
        snapshot_id = self.repo.key.blob_id(plain).hex()
        self.repo.backend.put(f"snapshots/{snapshot_id}", self.repo.key.seal(plain))
        return msgspec.structs.replace(snap, id=snapshot_id)

    def _upload(self, pack: PackWriter) -> None:
        self._slots.acquire()
        try:
            fut = self._pool.submit(self._store_pack, pack)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._uploads.append(fut)

    def _store_pack(self, pack: PackWriter) -> None:
        try:
            pack_id, data = pack.finish(self.repo.key)
            try:
                self.repo.backend.put(pack_key(pack_id), data)
            except AlreadyExists:
                pass
            fault_point("pack-stored")
            cache = pack_cache(self.repo.backend)
            if cache is not None and pack.entries[0].kind == BlobKind.TREE:
                cache.keep(pack_key(pack_id), data)  # the next backup reads these trees
            with self._lock:
                self.repo.index.add_pack(pack_id, pack.entries)
                self._pending.difference_update(e.blob_id for e in pack.entries)
                self._stored.append((pack_id, pack.entries))
                # Blobs too: packs of small files hold 40,000 blobs each, whose entries
                # would otherwise wait in memory for the backup's end.
                blobs = sum(len(entries) for _pack, entries in self._stored)
                due = len(self._stored) >= _INDEX_EVERY_PACKS or blobs >= _INDEX_EVERY_BLOBS
            if due:
                self._write_stored_index()
        finally:
            self._slots.release()

    def _write_stored_index(self) -> None:
        with self._lock:
            stored, self._stored = self._stored, []
        if stored:
            plain = encode_index_file(stored)
            index_id = self.repo.store_index(plain)
            fault_point("index-stored")
            with self._lock:
                if self._feed is None:
                    self._feed = self.repo.index_feed()
                feed = self._feed
            feed.add(index_id, plain)

    def flush(self) -> None:
        """Store every open pack, wait for all uploads, then write the index naming them."""
        with self._lock:
            packs = [p for p in self._open.values() if len(p)]
            self._open.clear()
        for pack in packs:
            self._upload(pack)
        while True:
            with self._lock:
                uploads, self._uploads = self._uploads, []
            if not uploads:
                break
            for fut in uploads:
                fut.result()
        self._write_stored_index()


def _write_key(backend: Backend, key: MasterKey, password: str, kdf: KdfParams) -> str:
    params = dataclasses.replace(kdf, salt=kdf.salt or new_salt())
    record = KeyFile(
        **cost_fields(params),
        salt=base64.b64encode(params.salt).decode(),
        wrapped=base64.b64encode(key.wrap(password.encode(), params)).decode(),
        created=_now(),
        host=os.uname().nodename,
        user=getpass.getuser(),
    )
    data = msgspec.json.encode(record)
    name = content_id(data)
    backend.put(f"keys/{name}", data)
    return name


def _unlock(backend: Backend, password: str) -> tuple[MasterKey, str]:
    """The master key, and the id of the key file that ``password`` unwrapped. Key files
    that are damaged, or use a KDF this version does not know, are passed over: another may
    still open the repository."""
    stored = read_key_files(backend)
    for k in stored:
        if k.record is None or k.params is None:
            continue
        try:
            key = MasterKey.unwrap(base64.b64decode(k.record.wrapped), password.encode(), k.params)
        except WrongPassword:
            continue
        kdf.unlocked(password.encode())
        return key, k.id
    for k in stored:  # a KDF of a newer version; out-of-bounds costs are only passed over
        if k.record is not None and k.params is None and k.record.kdf not in KNOWN_KDFS:
            raise UnsupportedFormat(k.problem)
    raise WrongPassword("wrong password or no key found for it")
