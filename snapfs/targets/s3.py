"""A restore target on S3: files written as objects below ``s3://BUCKET/PREFIX`` with the
metadata their nodes keep (docs/FORMAT.md "Trees of S3 sources": Content-Type, -Encoding,
-Disposition, -Language, Cache-Control and x-amz-meta-* from the ``user.s3.*`` xattrs).

One PutObject below ``multipart_threshold``, else a multipart upload whose parts go up in
parallel on ``uploads`` threads; at most ``uploads`` parts are in flight for the whole
target (each writer fills one more), so memory is bounded by parts, never by file sizes.

Resume: an object already at the key with the node's size and metadata is left alone when
its ETag proves the content equal: the node's own ``user.s3.etag`` (no byte read), else the
ETag this target would give the content (its MD5, or the MD5 of its parts' MD5s and ``-N``
when multipart), computed by reading the content once without uploading it. That costs a
HEAD an object; a restore into a prefix that held nothing when it began (``note_empty``)
skips them, since nothing there can be identical: one request a small file, not two.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from snapfs.buffers import Buffer
from snapfs.errors import BackendError, PathNotFound, SnapfsError
from snapfs.sources.base import Closing
from snapfs.sources.keys import decode_names
from snapfs.sources.s3 import ETAG, HEADER_XATTRS, META_PREFIX, parse_source_url
from snapfs.store.base import NotFound
from snapfs.store.retry import RetryPolicy, attempts_from_env
from snapfs.store.s3client import (
    BOTO_ERRORS,
    is_auth_failure,
    make_client,
    other_failure,
    refused,
    resolve_endpoint,
    translated,
)
from snapfs.tree import Node

# S3 wants parts of 5 MiB at least (but the last); 8 MiB parts keep 8 uploads at 64 MiB.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
UPLOADS = 8
MIN_PART = 5 * 1024 * 1024  # S3's least part (but the last)
_FIELDS = {name: field for field, name in HEADER_XATTRS.items() if field != "VersionId"}

Content = Callable[[], Iterable[Buffer]]
"""A file's bytes in order, from the start each time it is called."""


class TargetNotFound(PathNotFound):
    """The target bucket does not exist."""


@dataclass(frozen=True, slots=True)
class Written:
    key: str
    uploaded: bool  # False: an identical object was there already
    read: bool  # whether the content was read at all


class S3Target(Closing):
    """Writes objects below one S3 prefix. Thread-safe: restore may write from many threads."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        policy: RetryPolicy | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        uploads: int = UPLOADS,
    ) -> None:
        where = parse_source_url(url)
        self.url = url
        self.bucket, self.prefix = where.bucket, where.prefix
        self.endpoint_url = resolve_endpoint(endpoint_url)
        self.policy = policy or RetryPolicy(attempts=attempts_from_env())
        self.part_size = max(part_size, MIN_PART)
        self.multipart_threshold = max(multipart_threshold, self.part_size)
        self._client = make_client(self.endpoint_url, uploads + 8, profile=profile)
        self._pool = ThreadPoolExecutor(uploads, "snapfs-s3-upload")
        self._in_flight = threading.BoundedSemaphore(uploads)
        self._bucket_seen = False  # some servers create a bucket that a PUT names
        self._was_empty = False  # the prefix held no object when the restore began

    @property
    def endpoint(self) -> str:
        return str(self._client.meta.endpoint_url)

    def key_for(self, names: Sequence[bytes], *, s3_names: bool) -> str:
        """The key of the file at ``names`` (path names below the restored directory): names
        an S3 source made are decoded back to its key (sources/keys.py); others are taken as
        they are, and must be UTF-8. ValueError when they cannot be a key."""
        below = decode_names(names) if s3_names else "/".join(n.decode("utf-8") for n in names)
        return self.prefix + below

    def write(self, key: str, node: Node, content: Content) -> Written:
        """The file ``node`` (its bytes from ``content``) as the object ``key``, unless an
        identical one is there. The object appears whole or not at all; a failed multipart
        upload is aborted."""
        self.check_bucket()
        headers = _headers(node)
        head = None if self._was_empty else self._head(key)
        if head is not None and head["ContentLength"] == node.size and _same(head, headers):
            listed = dict(node.xattrs).get(ETAG)
            if listed is not None and head["ETag"].strip('"') == listed.decode():
                return Written(key, uploaded=False, read=False)
            if self._etag_of(content, node.size) == head["ETag"].strip('"'):
                return Written(key, uploaded=False, read=True)
        if node.size < self.multipart_threshold:
            body = b"".join(bytes(chunk) for chunk in content())
            _check_size(key, len(body), node.size)
            self._call("put", key, lambda: self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, **headers))  # fmt: skip
        else:
            self._put_multipart(key, node.size, content, headers)
        return Written(key, uploaded=True, read=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # -- requests --------------------------------------------------------------------------
    def check_bucket(self) -> None:
        """TargetNotFound unless the bucket exists: a restore never creates buckets."""
        if self._bucket_seen:
            return
        try:
            self._call("head bucket", "", lambda: self._client.head_bucket(Bucket=self.bucket))
        except NotFound as e:
            raise TargetNotFound(f"no S3 bucket {self.bucket!r} at {self.endpoint}") from e
        self._bucket_seen = True

    def note_empty(self) -> None:
        """List the prefix once; if it holds no object, later writes skip the HEAD that
        resume needs. Objects others write meanwhile are overwritten, as after a HEAD."""
        self.check_bucket()
        listed = self._call("list", self.prefix, lambda: self._client.list_objects_v2(
            Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1))  # fmt: skip
        self._was_empty = not listed.get("Contents")

    def _head(self, key: str) -> Any:
        try:
            return self._call("head", key, lambda: self._client.head_object(
                Bucket=self.bucket, Key=key))  # fmt: skip
        except NotFound:
            return None

    def _put_multipart(self, key: str, size: int, content: Content, headers: Any) -> None:
        upload_id = self._call("put", key, lambda: self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, **headers)["UploadId"])  # fmt: skip
        futures: list[Future[dict[str, Any]]] = []
        try:
            total = 0
            for number, part in enumerate(_parts(content(), self.part_size), start=1):
                total += len(part)
                self._in_flight.acquire()
                try:
                    fut = self._pool.submit(self._upload_part, key, upload_id, number, part)
                except BaseException:
                    self._in_flight.release()
                    raise
                fut.add_done_callback(lambda _done: self._in_flight.release())
                futures.append(fut)
            _check_size(key, total, size)
            parts = [fut.result() for fut in futures]
            self._complete(key, upload_id, parts)
        except BaseException:
            for fut in futures:
                fut.cancel()
            self._abort(key, upload_id)
            raise

    def _upload_part(self, key: str, upload_id: str, number: int, part: bytes) -> dict[str, Any]:
        etag = self._call("put", key, lambda: self._client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part,
        )["ETag"])  # fmt: skip
        return {"ETag": etag, "PartNumber": number}

    def _complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        """Complete the upload. A retry after a lost answer finds the upload gone: then the
        object at the key is ours if its ETag is the one these parts make."""
        try:
            self._call("put", key, lambda: self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts}))  # fmt: skip
        except BackendError as e:
            if "NoSuchUpload" not in str(e):
                raise
            head = self._head(key)
            digests = b"".join(bytes.fromhex(p["ETag"].strip('"')) for p in parts)
            expected = f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"
            if head is None or head["ETag"].strip('"') != expected:
                raise

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except BOTO_ERRORS:
            pass  # the upload already failed; a bucket lifecycle rule reaps leftovers

    def _etag_of(self, content: Content, size: int) -> str:
        """The ETag ``write`` would give these bytes: MD5, or multipart's MD5 of part MD5s."""
        if size < self.multipart_threshold:
            whole = hashlib.md5()
            for chunk in content():
                whole.update(chunk)
            return whole.hexdigest()
        digests = [hashlib.md5(part).digest() for part in _parts(content(), self.part_size)]
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"

    def _call(self, action: str, key: str, request: Callable[[], Any]) -> Any:
        what = f"{action} s3://{self.bucket}/{key}"

        def once() -> Any:
            on_answer = functools.partial(self._failure, what=what)
            with translated(self.endpoint, what, on_answer):
                return request()

        return self.policy.call(once)

    def _failure(self, code: str, status: int, text: str, what: str) -> SnapfsError:
        if code == "NoSuchBucket":
            return TargetNotFound(f"no S3 bucket {self.bucket!r} at {self.endpoint}")
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(text or code)
        if is_auth_failure(code, status):
            return refused("target", self.bucket, self.endpoint, code, "--target-profile")
        return other_failure(code, status, text, what)


def _headers(node: Node) -> dict[str, Any]:
    """PutObject's metadata arguments for ``node``, from its ``user.s3.*`` xattrs."""
    out: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for name, value in node.xattrs:
        text = value.decode("utf-8", "surrogateescape")
        if name in _FIELDS:
            out[_FIELDS[name]] = text
        elif name.startswith(META_PREFIX):
            meta[name[len(META_PREFIX) :].decode("utf-8", "surrogateescape")] = text
    if meta:
        out["Metadata"] = meta
    return out


def _same(head: Any, headers: dict[str, Any]) -> bool:
    """Whether the stored object carries exactly the metadata ``headers`` would give it
    (fields ``headers`` leaves out are the server's choice, and not compared)."""
    if (head.get("Metadata") or {}) != headers.get("Metadata", {}):
        return False
    return all(head.get(field) == value for field, value in headers.items() if field != "Metadata")


def _parts(chunks: Iterable[Buffer], size: int) -> Iterator[bytes]:
    """``chunks`` regrouped into parts of ``size`` bytes (the last shorter); one part held."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _check_size(key: str, got: int, want: int) -> None:
    if got != want:
        raise SnapfsError(f"{key}: content of {got} bytes for a file of {want}")
