"""The S3 restore target against SeaweedFS: objects read through the S3 source come back at
another prefix with their keys, bytes and metadata; multipart above the threshold, parts in
parallel; identical objects skipped (resume); 10% of requests failing; clear errors."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from snapfs.errors import AccessDenied
from snapfs.sources import walk
from snapfs.sources.s3 import S3Source
from snapfs.targets.s3 import S3Target, TargetNotFound
from snapfs.tree import FILE, Node
from tests.s3.faultproxy import FaultPlan, FaultProxy, fast_retry
from tests.s3.seaweed import BUCKET, SeaweedFS

MIB = 1024 * 1024
PART = 5 * MIB  # the least S3 (and SeaweedFS) takes


@pytest.fixture
def prefix(s3_env: SeaweedFS) -> str:
    return f"tgt-{uuid.uuid4().hex[:10]}"


def target(url: str, **kw: Any) -> S3Target:
    kw.setdefault("policy", fast_retry())
    return S3Target(url, **kw)


def chunks_of(data: bytes, size: int = 100_000) -> Callable[[], Iterable[bytes]]:
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


def file_node(data: bytes, xattrs: list[tuple[bytes, bytes]] | None = None) -> Node:
    return Node(b"f", FILE, 0o644, 0, 0, "", "", 0, 0, len(data), xattrs=xattrs or [])


def copy_prefix(src_url: str, dst: S3Target) -> int:
    """Every file of the source written to ``dst`` at its key below the source prefix."""
    written = 0
    with S3Source([src_url], policy=fast_retry()) as src:
        depth = len(src_url.removeprefix("s3://").split("/"))
        for path, entry in walk(src):
            if entry.node.type != FILE:
                continue
            with src.open(entry) as content:
                data = bytearray()
                buf = bytearray(1 << 16)
                while n := content.readinto(buf):
                    data += buf[:n]
                node = content.node
            key = dst.key_for(path.split(b"/")[depth:], s3_names=True)
            dst.write(key, node, chunks_of(bytes(data)))
            written += 1
    return written


def test_objects_come_back_with_keys_bytes_and_metadata(prefix: str, client: Any) -> None:
    keys = ["dir", "dir/inner", "100%.txt", "é/日本/ß.json", "sp ace/q?x=1", "tab\tctl\x01"]
    for key in keys:
        client.put_object(
            Bucket=BUCKET, Key=f"{prefix}/a/{key}", Body=key.encode() * 3,
            ContentType="text/x-lake", CacheControl="no-cache", ContentEncoding="identity",
            ContentDisposition="attachment", ContentLanguage="fr", Metadata={"Team": "lake"},
        )  # fmt: skip
    with target(f"s3://{BUCKET}/{prefix}/b") as dst:
        assert copy_prefix(f"s3://{BUCKET}/{prefix}/a", dst) == len(keys)
    for key in keys:
        got = client.get_object(Bucket=BUCKET, Key=f"{prefix}/b/{key}")
        assert got["Body"].read() == key.encode() * 3
        assert (got["ContentType"], got["CacheControl"], got["ContentEncoding"]) == (
            "text/x-lake", "no-cache", "identity",
        )  # fmt: skip
        assert (got["ContentDisposition"], got["ContentLanguage"]) == ("attachment", "fr")
        assert got["Metadata"] == {"team": "lake"}
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/b/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"{prefix}/b/{k}" for k in keys)


def test_multipart_above_the_threshold_in_parallel_parts(
    seaweedfs: SeaweedFS, prefix: str, client: Any
) -> None:
    data = os.urandom(2 * PART + 7)
    with FaultProxy(seaweedfs.s3_port) as proxy:
        url = f"s3://{BUCKET}/{prefix}"
        with target(url, endpoint_url=proxy.url, multipart_threshold=PART, part_size=PART) as dst:
            written = dst.write(f"{prefix}/big", file_node(data), chunks_of(data, 300_000))
            assert written.uploaded
        assert proxy.counts["PUT"] == 3  # the parts
        assert proxy.counts["POST"] == 2  # create, complete
    got = client.get_object(Bucket=BUCKET, Key=f"{prefix}/big")
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()
    assert got["ETag"].strip('"').endswith("-3")


def test_identical_objects_are_skipped(seaweedfs: SeaweedFS, prefix: str, client: Any) -> None:
    small, big = b"small body", os.urandom(PART + 1000)
    meta = [(b"user.s3.content-type", b"text/plain"), (b"user.s3.meta.k", b"v")]
    reads: list[str] = []

    def counted(data: bytes, name: str) -> Callable[[], Iterable[bytes]]:
        def content() -> Iterable[bytes]:
            reads.append(name)
            return chunks_of(data)()

        return content

    with FaultProxy(seaweedfs.s3_port) as proxy, target(
        f"s3://{BUCKET}/{prefix}", endpoint_url=proxy.url, multipart_threshold=PART,
        part_size=PART,
    ) as dst:  # fmt: skip
        for name, data in (("small", small), ("big", big)):
            assert dst.write(f"{prefix}/{name}", file_node(data, meta), counted(data, name))
        puts = proxy.counts["PUT"]
        # again: same size, metadata and computed ETag, so nothing goes up
        for name, data in (("small", small), ("big", big)):
            written = dst.write(f"{prefix}/{name}", file_node(data, meta), counted(data, name))
            assert (written.uploaded, written.read) == (False, True)
        # a node that knows its object's ETag is not even read
        etag = client.head_object(Bucket=BUCKET, Key=f"{prefix}/small")["ETag"].strip('"')
        known = file_node(small, sorted([*meta, (b"user.s3.etag", etag.encode())]))
        reads.clear()
        written = dst.write(f"{prefix}/small", known, counted(small, "small"))
        assert (written.uploaded, written.read, reads) == (False, False, [])
        assert proxy.counts["PUT"] == puts
        # other metadata, or other bytes of the same size: written again
        other = [(b"user.s3.content-type", b"text/csv"), (b"user.s3.meta.k", b"v")]
        assert dst.write(f"{prefix}/small", file_node(small, other), chunks_of(small)).uploaded
        flipped = big[:-1] + bytes([big[-1] ^ 1])
        assert dst.write(f"{prefix}/big", file_node(flipped, meta), chunks_of(flipped)).uploaded
    assert client.get_object(Bucket=BUCKET, Key=f"{prefix}/small")["ContentType"] == "text/csv"
    assert client.get_object(Bucket=BUCKET, Key=f"{prefix}/big")["Body"].read() == flipped


def test_ten_percent_of_requests_failing(seaweedfs: SeaweedFS, prefix: str, client: Any) -> None:
    bodies = {f"{prefix}/o{i}": os.urandom(i * 1000) for i in range(60)}
    bodies[f"{prefix}/large"] = os.urandom(2 * PART + 1)
    plan = FaultPlan(rate=0.1, kinds=("500", "503", "reset"), seed=3)
    with FaultProxy(seaweedfs.s3_port, plan) as proxy, target(
        f"s3://{BUCKET}/{prefix}", endpoint_url=proxy.url, multipart_threshold=PART,
        part_size=PART, policy=fast_retry(12),
    ) as dst:  # fmt: skip
        for key, data in bodies.items():
            dst.write(key, file_node(data), chunks_of(data))
        assert dst.policy.retried > 0
    assert proxy.counts["500"] + proxy.counts["503"] + proxy.counts["reset"] >= 8
    for key, data in bodies.items():
        assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    assert uploads == []


def test_content_of_the_wrong_size_writes_nothing(prefix: str, client: Any) -> None:
    with target(f"s3://{BUCKET}/{prefix}", multipart_threshold=PART, part_size=PART) as dst:
        for size in (100, PART + 1):
            with pytest.raises(
                Exception, match=f"content of {size - 1} bytes for a file of {size}"
            ):
                dst.write(
                    f"{prefix}/short{size}", file_node(b"x" * size), chunks_of(b"x" * (size - 1))
                )
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    assert uploads == []


def test_missing_bucket_and_wrong_credentials(
    s3_env: SeaweedFS, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with target("s3://no-such-target-bucket/p") as dst, pytest.raises(TargetNotFound) as missing:
        dst.write("p/k", file_node(b"x"), chunks_of(b"x"))
    assert str(missing.value) == f"no S3 bucket 'no-such-target-bucket' at {s3_env.endpoint}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with target(f"s3://{BUCKET}/{prefix}") as dst, pytest.raises(AccessDenied) as refused:
        dst.write(f"{prefix}/k", file_node(b"x"), chunks_of(b"x"))
    assert str(refused.value) == (
        f"S3 refused access to target bucket {BUCKET!r} at {s3_env.endpoint} "
        "(403): check the target's credentials (AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, --target-profile) and the bucket policy"
    )


def test_key_for_local_and_s3_names() -> None:
    dst = S3Target("s3://b/restored", endpoint_url="http://127.0.0.1:9")
    try:
        assert dst.key_for([b"a", b"%", b"b%="], s3_names=True) == "restored/a//b"
        assert dst.key_for([b"100%", b"x"], s3_names=False) == "restored/100%/x"
        with pytest.raises(ValueError):
            dst.key_for([b"\xff"], s3_names=False)
    finally:
        dst.close()
