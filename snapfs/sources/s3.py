"""A Source over S3 prefixes: the objects below ``s3://BUCKET/PREFIX`` as a tree, object
``s3://B/P/K`` at path ``B/P/K`` (names by sources/keys.py, docs/FORMAT.md "Trees of S3 sources").

Listing: ListObjectsV2 with delimiter ``/`` per directory (a page holds up to 1,000
entries), so every directory is its own listing, and the directories the walk will enter
next are listed ahead on LISTERS threads, at most PREFETCH_DIRS held at once, deepest first
(the order a depth-first walk wants them). The pages of one directory are read one after
another (each names the next). A listing gives key, size, LastModified and
ETag, which is all the parent-snapshot comparison needs: an unchanged object costs no
request beyond its share of a listing page. Its other metadata (Content-Type and the rest,
x-amz-meta-*, the version id) comes back with the GET that reads a new or changed object, so
no HEAD is ever sent.

Reading: GETs with ``If-Match: <listed ETag>`` (and, after the first, the version id that one
answered), in ranges of ``part_size`` bytes; later ranges are fetched ahead on READERS
threads within a budget of ``ahead_bytes`` for the whole source, so memory is bounded by
what readers hold (one range each) plus that budget, never by object sizes.

Failures: NoSuchKey is ObjectVanished, a failed If-Match ObjectReplaced, a missing bucket
SourceNotFound, refused credentials AccessDenied; throttling, 5xx and broken connections are
retried by store/retry.py's RetryPolicy (AWS_MAX_ATTEMPTS), a listing page or a range at a
time; when it gives up, BackendError.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from snapfs.errors import SnapfsError
from snapfs.sources.base import Closing, Entry, ObjectReplaced, ObjectVanished, SourceNotFound
from snapfs.sources.keys import Item, Placed, encode_segment, plan_level
from snapfs.store.base import Transient
from snapfs.store.retry import RetryPolicy, attempts_from_env
from snapfs.store.s3client import (
    is_auth_failure,
    make_client,
    other_failure,
    read_body,
    refused,
    resolve_endpoint,
    total_size,
    translated,
)
from snapfs.tree import DIR, FILE, Node

T = TypeVar("T")

LISTERS = 8
PREFETCH_DIRS = 32
READERS = 8
PART_SIZE = 8 * 1024 * 1024
AHEAD_BYTES = 64 * 1024 * 1024
PAGE_SIZE = 1000

FILE_MODE = 0o644
DIR_MODE = 0o755
ETAG = b"user.s3.etag"
# GetObject answer field -> xattr name; x-amz-meta-<name> becomes user.s3.meta.<name>.
HEADER_XATTRS = {
    "CacheControl": b"user.s3.cache-control",
    "ContentDisposition": b"user.s3.content-disposition",
    "ContentEncoding": b"user.s3.content-encoding",
    "ContentLanguage": b"user.s3.content-language",
    "ContentType": b"user.s3.content-type",
    "VersionId": b"user.s3.version-id",
}
META_PREFIX = b"user.s3.meta."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class S3Url:
    """``s3://BUCKET/PREFIX`` taken apart: the prefix's segments exactly (``a//b`` has an
    empty one); one trailing ``/`` is dropped, so ``s3://b/p/`` is ``s3://b/p``."""

    url: str
    bucket: str
    segments: tuple[str, ...]

    @property
    def prefix(self) -> str:
        """The key prefix listed: the segments and a ``/``, or "" for a whole bucket."""
        return "".join(s + "/" for s in self.segments)


def parse_source_url(url: str) -> S3Url:
    if not url.startswith("s3://"):
        raise SnapfsError(f"bad S3 source {url!r}: expected s3://bucket/prefix")
    bucket, slash, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise SnapfsError(f"bad S3 source {url!r}: expected s3://bucket/prefix")
    prefix = prefix.removesuffix("/")
    return S3Url(url, bucket, tuple(prefix.split("/")) if slash and prefix else ())


@dataclass(frozen=True, slots=True)
class _Dir:
    """A directory: a listing of ``prefix`` in ``bucket``, or (``fixed``) entries already
    known: the path down to a source prefix, or the rest of names cut for length."""

    bucket: str
    prefix: str
    fixed: tuple[Item[Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class _Object:
    bucket: str
    key: str
    etag: str  # as listed, quotes included: what If-Match wants
    size: int
    mtime_ns: int


class S3Source(Closing):
    """A Source (sources/base.py) over S3 URLs. ``endpoint_url`` and ``profile`` choose the
    server and credentials (else AWS_ENDPOINT_URL and the standard AWS chain), so the
    source may be another S3 server than the repository. Thread-safe."""

    kind = "s3"

    def __init__(
        self,
        urls: list[str],
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        policy: RetryPolicy | None = None,
        listers: int = LISTERS,
        readers: int = READERS,
        part_size: int = PART_SIZE,
        ahead_bytes: int = AHEAD_BYTES,
        page_size: int = PAGE_SIZE,
        callers: int = READERS,
    ) -> None:
        self.paths = list(urls)
        self._urls = [parse_source_url(u) for u in urls]
        self.endpoint_url = resolve_endpoint(endpoint_url)
        self.policy = policy or RetryPolicy(attempts=attempts_from_env())
        self.part_size = part_size
        self.page_size = page_size
        # A connection for every thread that may send at once: listers, readers ahead, and
        # ``callers``, the caller's threads opening objects (a backup's workers).
        pool = listers + readers + callers
        self._client = make_client(self.endpoint_url, pool, profile=profile)
        self._listers = ThreadPoolExecutor(listers, "snapfs-s3-list")
        self._readers = ThreadPoolExecutor(readers, "snapfs-s3-read")
        self._ahead = _Budget(ahead_bytes)
        self._root = _Dir("", "", tuple(_root_items(self._urls)))
        self._prefetch = _Prefetch(self._list, self._listers, PREFETCH_DIRS)

    @property
    def endpoint(self) -> str:
        return str(self._client.meta.endpoint_url)

    # -- Source ----------------------------------------------------------------------------
    def entries(self, directory: Entry | None = None) -> Iterator[Entry]:
        where = self._root if directory is None else directory.handle
        if not isinstance(where, _Dir):
            raise TypeError(f"{directory!r} is no directory of this source")
        if where.fixed is not None:
            items: list[Item[Any]] | tuple[Item[Any], ...] = where.fixed
        else:
            items = self._prefetch.take(where)
        entries = [_entry(where, placed) for placed in plan_level(items)]
        self._prefetch.want(
            [e.handle for e in entries if isinstance(e.handle, _Dir) and e.handle.fixed is None]
        )
        return iter(entries)

    def unchanged(self, old: Node, entry: Entry) -> bool:
        """Same size, LastModified and ETag (the key is the path): S3 changes LastModified
        with any new write, metadata included, so the old node's xattrs still hold."""
        new = entry.node
        return (
            old.type == FILE == new.type
            and (old.size, old.mtime_ns) == (new.size, new.mtime_ns)
            and dict(old.xattrs).get(ETAG) == dict(new.xattrs).get(ETAG)
        )

    def refresh(self, entry: Entry) -> Entry | None:
        """The file ``entry`` as a listing shows it now (one request), None if it is gone."""
        obj = entry.handle
        if not isinstance(obj, _Object):
            raise TypeError(f"{entry!r} is no file of this source")

        def once() -> Any:
            with self._errors("list", obj.bucket, obj.key):
                return self._client.list_objects_v2(Bucket=obj.bucket, Prefix=obj.key, MaxKeys=1)

        listed = self.policy.call(once).get("Contents", ())
        if not listed or listed[0]["Key"] != obj.key:
            return None
        placed = Placed(entry.name, False, _listed(obj.bucket, listed[0]))
        return _entry(_Dir(obj.bucket, ""), placed)

    def open(self, entry: Entry) -> S3Content:
        obj = entry.handle
        if not isinstance(obj, _Object):
            raise TypeError(f"{entry!r} is no file of this source")
        return S3Content(self, entry.node, obj)

    def close(self) -> None:
        self._prefetch.close()
        self._listers.shutdown(wait=True, cancel_futures=True)
        self._readers.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # -- requests --------------------------------------------------------------------------
    def _list(self, where: _Dir) -> list[Item[Any]]:
        """The entries of one directory prefix, every page of them, each page retried."""
        items: list[Item[Any]] = []
        token: str | None = None
        while True:
            page = self.policy.call(functools.partial(self._list_page, where, token))
            skip = len(where.prefix)
            for obj in page.get("Contents", ()):
                found = _listed(where.bucket, obj)
                items.append(Item(encode_segment(found.key[skip:]), False, found))
            for common in page.get("CommonPrefixes", ()):
                sub = common["Prefix"]
                items.append(Item(encode_segment(sub[skip:-1]), True, _Dir(where.bucket, sub)))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return items

    def _list_page(self, where: _Dir, token: str | None) -> Any:
        more = {"ContinuationToken": token} if token else {}
        with self._errors("list", where.bucket, where.prefix):
            return self._client.list_objects_v2(
                Bucket=where.bucket, Prefix=where.prefix, Delimiter="/",
                MaxKeys=self.page_size, **more,
            )  # fmt: skip

    def get(self, obj: _Object, offset: int, version: str | None) -> tuple[bytes, Any]:
        """``part_size`` bytes (fewer at the end) of ``obj`` from ``offset``, retried, and
        the response; ObjectReplaced when the object is not the one listed."""
        return self.policy.call(lambda: self._get_once(obj, offset, version))

    def _get_once(self, obj: _Object, offset: int, version: str | None) -> tuple[bytes, Any]:
        length = min(self.part_size, obj.size - offset)
        extra: dict[str, str] = {"VersionId": version} if version else {}
        if length > 0:  # an empty object has no byte range to ask for
            extra["Range"] = f"bytes={offset}-{offset + length - 1}"
        with self._errors("get", obj.bucket, obj.key):
            response = self._client.get_object(
                Bucket=obj.bucket, Key=obj.key, IfMatch=obj.etag, **extra
            )
            data = read_body(response)
        total = total_size(response.get("ContentRange", "")) if length else len(data)
        if total is not None and total != obj.size:
            raise ObjectReplaced(f"s3://{obj.bucket}/{obj.key}: replaced since it was listed")
        if len(data) != max(length, 0):
            raise Transient(f"S3 get {obj.key}: truncated, {len(data)} of {length} bytes")
        return data, response

    def _errors(self, action: str, bucket: str, key: str) -> Any:
        return translated(
            self.endpoint, f"{action} s3://{bucket}/{key}",
            lambda code, status, text: self._failure(code, status, text, action, bucket, key),
        )  # fmt: skip

    def _failure(
        self, code: str, status: int, text: str, action: str, bucket: str, key: str
    ) -> SnapfsError:
        where = f"s3://{bucket}/{key}"
        if code == "NoSuchBucket":
            return SourceNotFound(f"no S3 bucket {bucket!r} at {self.endpoint}")
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectVanished(f"{where}: deleted since it was listed")
        if code == "PreconditionFailed" or status == 412:
            return ObjectReplaced(f"{where}: replaced since it was listed")
        if is_auth_failure(code, status):
            return refused("source", bucket, self.endpoint, code, "--source-profile")
        return other_failure(code, status, text, f"{action} {where}")


class S3Content(Closing):
    """One object being read (a Content, sources/base.py). The first range is read when it
    opens, so ``node`` holds the object's headers; later ranges are fetched ahead while the
    source's budget allows, else when ``readinto`` reaches them. Used by one thread."""

    def __init__(self, source: S3Source, listed: Node, obj: _Object) -> None:
        self._source = source
        self._obj = obj
        data, response = source.get(obj, 0, None)
        self._version: str | None = response.get("VersionId")
        self.node = _with_headers(listed, response)
        self._current = memoryview(data)
        self._next = len(data)  # the offset of the first range not yet asked for
        self._pending: deque[tuple[Future[bytes] | None, int]] = deque()
        self._closed = False
        self._fill()

    def readinto(self, buffer: bytearray | memoryview) -> int:
        while not self._current:
            if not self._pending:
                return 0
            fut, offset = self._pending.popleft()
            self._current = memoryview(self._fetched(fut, offset))
            self._fill()
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def _fetched(self, fut: Future[bytes] | None, offset: int) -> bytes:
        if fut is None:
            return self._range(offset)
        try:
            return fut.result()
        finally:
            self._source._ahead.release(self._length(offset))

    def _fill(self) -> None:
        """Queue the ranges after the last queued one: fetched ahead within the budget,
        else marked to be read when reached. At most two ranges ahead per object."""
        while self._next < self._obj.size and len(self._pending) < 2:
            offset, length = self._next, self._length(self._next)
            self._next += length
            fut = None
            if self._source._ahead.try_take(length):
                fut = self._source._readers.submit(self._range, offset)
            self._pending.append((fut, offset))
            if fut is None:
                return  # nothing more is fetched ahead past a range that is not

    def _length(self, offset: int) -> int:
        return min(self._source.part_size, self._obj.size - offset)

    def _range(self, offset: int) -> bytes:
        return self._source.get(self._obj, offset, self._version)[0]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._pending:
            fut, offset = self._pending.popleft()
            if fut is not None and (fut.cancel() or fut.done()):
                self._source._ahead.release(self._length(offset))
            elif fut is not None:
                fut.add_done_callback(self._source._ahead.releaser(self._length(offset)))


class _Budget:
    """Bytes that reads ahead may hold, for the whole source. Never blocks."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._lock = threading.Lock()

    def try_take(self, n: int) -> bool:
        with self._lock:
            if n > self._free:
                return False
            self._free -= n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self._free += n

    def releaser(self, n: int) -> Callable[[object], None]:
        """A done-callback giving ``n`` back: for a read ahead still running when dropped."""
        return lambda _done: self.release(n)


class _Prefetch:
    """Directory listings made ahead of a depth-first walk. ``want`` records a directory's
    subdirectories in walk order; the ``limit`` wanted next (deepest first) are listed on
    the pool. ``take`` hands a listing over, from a prefetch or made on the spot; wanted
    directories the walk passed without entering (excluded ones) are dropped then."""

    def __init__(
        self, list_dir: Callable[[_Dir], list[Item[Any]]], pool: ThreadPoolExecutor, limit: int
    ) -> None:
        self._list = list_dir
        self._pool = pool
        self._limit = limit
        self._wanted: list[_Dir] = []  # a stack: the next directory to enter on top
        self._in_stack: set[_Dir] = set()
        self._started: dict[_Dir, Future[list[Item[Any]]]] = {}
        self._lock = threading.Lock()
        self.misses = 0  # listings the walk had to wait for from the start

    def want(self, dirs: list[_Dir]) -> None:
        with self._lock:
            for d in reversed(dirs):
                if d not in self._in_stack:
                    self._wanted.append(d)
                    self._in_stack.add(d)
            self._start()

    def take(self, where: _Dir) -> list[Item[Any]]:
        with self._lock:
            if where in self._in_stack:
                while self._wanted:  # the walk passed everything above it
                    top = self._wanted.pop()
                    self._in_stack.discard(top)
                    if top == where:
                        break
                    dropped = self._started.pop(top, None)
                    if dropped is not None:
                        dropped.cancel()
            fut = self._started.pop(where, None)
            self.misses += fut is None
            self._start()
        return fut.result() if fut is not None else self._list(where)

    def _start(self) -> None:
        """List the ``limit`` directories wanted next, making room by dropping listings of
        directories further ahead (one not yet started, or done: it is listed again when
        reached); one in progress keeps its place."""
        upcoming = self._wanted[-self._limit :]
        ahead = set(upcoming)
        for d in reversed(upcoming):
            if d in self._started:
                continue
            if len(self._started) >= self._limit and not self._drop_one(ahead):
                return
            self._started[d] = self._pool.submit(self._list, d)

    def _drop_one(self, keep: set[_Dir]) -> bool:
        for d, fut in self._started.items():
            if d not in keep and (fut.cancel() or fut.done()):
                del self._started[d]
                return True
        return False

    def close(self) -> None:
        with self._lock:
            for fut in self._started.values():
                fut.cancel()
            self._started.clear()


def _root_items(urls: list[S3Url]) -> list[Item[_Dir]]:
    """The directories above the sources: bucket, then prefix segments, down to a listing.
    A source below another one is covered by it."""
    tree: dict[str | None, Any] = {}
    for url in urls:
        level = tree
        for part in (url.bucket, *url.segments):
            if None in level:
                break  # a source above this one lists it already
            level = level.setdefault(part, {})
        else:
            level.clear()  # sources below this one are covered by its listing
            level[None] = url
    return _spec_items(tree, "", "")


def _spec_items(spec: dict[Any, Any], bucket: str, prefix: str) -> list[Item[_Dir]]:
    items = []
    for name, sub in spec.items():
        if name is None:
            continue
        b, p = (name, "") if not bucket else (bucket, prefix + name + "/")
        handle = _Dir(b, p) if None in sub else _Dir(b, p, tuple(_spec_items(sub, b, p)))
        items.append(Item(encode_segment(name), True, handle))
    return items


def _entry(where: _Dir, placed: Placed[Any]) -> Entry:
    payload = placed.payload
    if isinstance(payload, _Object):
        xattrs = [(ETAG, payload.etag.strip('"').encode())]
        node = Node(placed.name, FILE, FILE_MODE, 0, 0, "", "", payload.mtime_ns,
                    payload.mtime_ns, payload.size, xattrs=xattrs)  # fmt: skip
        return Entry(placed.name, node, payload)
    handle = payload if placed.continued == () else _Dir(where.bucket, "", placed.continued)
    node = Node(placed.name, DIR, DIR_MODE, 0, 0, "", "", 0, 0)
    return Entry(placed.name, node, handle)


def _with_headers(listed: Node, response: Any) -> Node:
    """``listed`` with the object's headers as xattrs, sorted by name."""
    xattrs = dict(listed.xattrs)
    for header, name in HEADER_XATTRS.items():
        value = response.get(header)
        if value:
            xattrs[name] = str(value).encode("utf-8", "surrogateescape")
    for meta, value in (response.get("Metadata") or {}).items():
        xattrs[META_PREFIX + meta.encode()] = value.encode("utf-8", "surrogateescape")
    return msgspec.structs.replace(listed, xattrs=sorted(xattrs.items()))


def _listed(bucket: str, obj: Any) -> _Object:
    """The object a ListObjectsV2 ``Contents`` item describes."""
    return _Object(bucket, obj["Key"], obj["ETag"], int(obj["Size"]), _ns(obj["LastModified"]))


def _ns(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000
