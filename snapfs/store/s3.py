"""Objects in an S3 bucket under a key prefix, through boto3 (its client from s3client.py).

One request per call: put_object (multipart above MULTIPART_THRESHOLD), get_object with a
Range header for get_range, head_object for stat and exists, list_objects_v2 pages for list,
delete_object. Create-only puts send ``If-None-Match: *``, which AWS S3, SeaweedFS and MinIO
honour; a server answering NotImplemented makes this backend fall back to HEAD-then-PUT,
which two writers of the same key can race (docs/S3.md says why that is harmless here).

Failures come out as snapfs errors: NotFound, AlreadyExists, BucketNotFound, AccessDenied,
Transient (throttling, 5xx, broken or timed-out connections, truncated bodies) for
RetryBackend to retry, and BackendError for the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from snapfs.buffers import Buffer
from snapfs.errors import AccessDenied, BackendError, BucketNotFound, ShortRead, SnapfsError
from snapfs.store.base import AlreadyExists, NotFound, ObjectInfo, Transient
from snapfs.store.s3client import (
    BOTO_ERRORS,
    is_auth_failure,
    make_client,
    other_failure,
    read_body,
    resolve_endpoint,
    total_size,
    translated,
)

# Packs are 16 MiB: one PUT each. Multipart only pays for much larger objects, where a
# broken connection would otherwise resend everything.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
# Reads are latency-bound (one round trip per range), so more threads than cores help.
READ_CONNECTIONS = 8
# The pool also serves the writer's 3 upload threads, lock refreshes and FUSE prefetch.
EXTRA_POOL_CONNECTIONS = 8


def parse_location(location: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix/"); the prefix may be empty."""
    rest = location.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise SnapfsError(f"bad S3 location {location!r}: expected s3://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Backend:
    """A Backend on S3. Thread-safe: one boto3 client, shared by every thread."""

    connections = READ_CONNECTIONS

    def __init__(
        self,
        location: str,
        *,
        endpoint_url: str | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        self.location = location
        self.bucket, self.prefix = parse_location(location)
        self.endpoint_url = resolve_endpoint(endpoint_url)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._client = make_client(self.endpoint_url, READ_CONNECTIONS + EXTRA_POOL_CONNECTIONS)
        self._conditional = True  # cleared when the server rejects If-None-Match

    @property
    def endpoint(self) -> str:
        return str(self._client.meta.endpoint_url)

    # -- errors --------------------------------------------------------------------------
    def _errors(self, action: str, key: str = "") -> AbstractContextManager[None]:
        """boto3's exceptions as snapfs ones, each with a one-line message."""
        return translated(
            self.endpoint, f"{action} {key}",
            lambda code, status, message: self._client_error(code, status, message, action, key),
        )  # fmt: skip

    def _client_error(
        self, code: str, status: int, text: str, action: str, key: str
    ) -> SnapfsError:
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(key)
        if code == "NoSuchBucket":
            return BucketNotFound(
                f"no repository at {self.location}: bucket {self.bucket!r} does not exist "
                f"at {self.endpoint}"
            )
        if is_auth_failure(code, status):
            return AccessDenied(
                f"S3 refused access to bucket {self.bucket!r} at {self.endpoint} ({code}): "
                "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy"
            )
        if code == "PreconditionFailed" or status == 412:
            return AlreadyExists(key)
        return other_failure(code, status, text, f"{action} {key}")

    # -- Backend -------------------------------------------------------------------------
    def put(self, key: str, data: Buffer, *, exclusive: bool = True) -> None:
        body = data if isinstance(data, bytes | bytearray) else bytes(data)
        if exclusive and not self._conditional and self.exists(key):
            raise AlreadyExists(key)  # racy fallback, see the module docstring
        try:
            if len(body) >= self.multipart_threshold:
                self._put_multipart(key, body, exclusive=exclusive)
            else:
                with self._errors("put", key):
                    self._client.put_object(
                        Bucket=self.bucket, Key=self.prefix + key, Body=body,
                        **self._condition(exclusive),
                    )  # fmt: skip
        except Transient as e:
            if not (exclusive and self._conditional and _rejects_condition(e)):
                raise
            self._conditional = False
            self.put(key, data, exclusive=exclusive)

    def _condition(self, exclusive: bool) -> dict[str, str]:
        return {"IfNoneMatch": "*"} if exclusive and self._conditional else {}

    def _put_multipart(self, key: str, body: bytes | bytearray, *, exclusive: bool) -> None:
        """Parts go up one after another (uploads already run on several threads); any
        failure aborts the upload so no parts are left behind to be billed."""
        full_key = self.prefix + key
        with self._errors("put", key):
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=full_key)[
                "UploadId"
            ]
        try:
            with self._errors("put", key):
                parts = self._upload_parts(full_key, upload_id, memoryview(body))
                self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full_key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts}, **self._condition(exclusive),
                )  # fmt: skip
        except BaseException:
            self._abort(full_key, upload_id)
            raise

    def _upload_parts(self, full_key: str, upload_id: str, view: memoryview) -> list[Any]:
        parts: list[Any] = []
        for number, start in enumerate(range(0, len(view), self.part_size), start=1):
            chunk = bytes(view[start : start + self.part_size])
            etag = self._client.upload_part(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, PartNumber=number,
                Body=chunk,
            )["ETag"]  # fmt: skip
            parts.append({"ETag": etag, "PartNumber": number})
        return parts

    def _abort(self, full_key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id
            )
        except BOTO_ERRORS:
            pass  # the upload already failed; a bucket lifecycle rule reaps leftovers

    def get(self, key: str) -> bytes:
        with self._errors("get", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            data = read_body(response)
        if len(data) != response["ContentLength"]:
            raise Transient(f"S3 get {key}: truncated, {len(data)} of {response['ContentLength']}")
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length == 0:
            return b""  # S3 cannot express an empty range
        try:
            with self._errors("get", key):
                response = self._client.get_object(
                    Bucket=self.bucket, Key=self.prefix + key,
                    Range=f"bytes={offset}-{offset + length - 1}",
                )  # fmt: skip
                data = read_body(response)
        except BackendError as e:
            if "InvalidRange" in str(e):
                raise ShortRead(f"short read of {key}: nothing at {offset}") from e
            raise
        if len(data) == length:
            return data
        total = total_size(response.get("ContentRange", ""))
        if total is not None and offset + length > total:
            raise ShortRead(f"short read of {key}: {len(data)} of {length} bytes at {offset}")
        raise Transient(f"S3 get {key}: truncated, {len(data)} of {length} bytes at {offset}")

    def stat(self, key: str) -> ObjectInfo:
        with self._errors("stat", key):
            head = self._client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        skip = len(self.prefix)
        with self._errors("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(
                        obj["Key"][skip:], int(obj["Size"]), obj["LastModified"].timestamp()
                    )

    def delete(self, key: str) -> None:
        with self._errors("delete", key):  # S3 answers 204 for an absent key too
            self._client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def close(self) -> None:
        self._client.close()

    # -- buckets -------------------------------------------------------------------------
    def create_bucket(self) -> bool:
        """Create the bucket unless it exists; True if it was created. Idempotent."""
        try:
            with self._errors("head bucket"):
                self._client.head_bucket(Bucket=self.bucket)
            return False
        except NotFound:
            pass
        region = self._client.meta.region_name
        where = (
            {"CreateBucketConfiguration": {"LocationConstraint": region}}
            if region and region != "us-east-1" and not self.endpoint_url
            else {}
        )
        try:
            with self._errors("create bucket"):
                self._client.create_bucket(Bucket=self.bucket, **where)
        except BackendError as e:
            if "BucketAlreadyOwnedByYou" not in str(e):
                raise
            return False
        return True


def _rejects_condition(error: Transient) -> bool:
    """A server without conditional writes answers 501 NotImplemented to If-None-Match."""
    return "NotImplemented" in str(error) or ": 501:" in str(error)
