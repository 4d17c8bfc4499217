"""The S3 source against a real server (SeaweedFS): odd keys and metadata listed exactly,
parallel listing equal to a plain flat one, range reads, objects deleted or replaced after
the listing or during a read, 10% of requests failing, and the errors a user sees."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from snapfs.errors import AccessDenied, SnapfsError
from snapfs.sources import ObjectReplaced, ObjectVanished, SourceNotFound, walk
from snapfs.sources.keys import decode_names, encode_key
from snapfs.sources.s3 import AHEAD_BYTES, S3Source, parse_source_url
from snapfs.tree import DIR, FILE
from tests.s3.faultproxy import FaultPlan, FaultProxy, fast_retry
from tests.s3.seaweed import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS, put_objects


@pytest.fixture
def prefix(s3_env: SeaweedFS) -> str:
    return f"src-{uuid.uuid4().hex[:10]}"


def source(url: str, **kw: Any) -> S3Source:
    kw.setdefault("policy", fast_retry())
    return S3Source([url], **kw)


def put_many(client: Any, keys: list[str], body: bytes | None = None) -> None:
    put_objects(client, BUCKET, {key: key.encode() if body is None else body for key in keys})


def files(src: S3Source) -> dict[bytes, Any]:
    return {path: entry for path, entry in walk(src) if entry.node.type == FILE}


def read_all(src: S3Source, entry: Any) -> bytes:
    out = bytearray()
    buf = bytearray(100_000)
    with src.open(entry) as content:
        while n := content.readinto(buf):
            out += buf[:n]
    return bytes(out)


def test_parse_source_url() -> None:
    assert parse_source_url("s3://b").segments == ()
    assert parse_source_url("s3://b/").segments == ()
    assert parse_source_url("s3://b/p/q/").prefix == "p/q/"
    assert parse_source_url("s3://b/a//c").segments == ("a", "", "c")
    for bad in ("s3:///p", "/local/path", "b/p"):
        with pytest.raises(SnapfsError, match=r"^bad S3 source '.*': expected s3://bucket/prefix$"):
            parse_source_url(bad)


def test_odd_keys_and_metadata_listed_exactly(prefix: str, client: Any) -> None:
    """The keys this server keeps as given (it folds "a//b" and refuses "." and ".."
    segments and names over 255 bytes: tests/unit/test_source_keys.py covers those)."""
    bodies = {
        "dir": b"a file named like a directory",
        "dir/inner": b"inside",
        "folder/": b"",  # a console's folder marker
        "folder/x.csv": b"a,b\n",
        "100%.txt": b"percent",
        "%2E": b"looks like an escape",
        "sp ace/q?x=1&y#z": b"query-ish",
        "tab\tand\x01ctl": b"control characters",
        "é/日本/ß.json": b"{}",
        ".hidden": b"dot",
    }
    for key, body in bodies.items():
        client.put_object(
            Bucket=BUCKET, Key=f"{prefix}/{key}", Body=body, ContentType="text/x-odd",
            CacheControl="max-age=60", ContentEncoding="identity",
            ContentDisposition="inline", ContentLanguage="de", Metadata={"Team": "lake", "n": "1"},
        )  # fmt: skip
    base = f"{BUCKET}/{prefix}/".encode()
    with source(f"s3://{BUCKET}/{prefix}") as src:
        found = files(src)
        listed = {path: e for path, e in walk(src)}
        assert sorted(found) == sorted(base + b"/".join(_names(k, bodies)) for k in bodies)
        assert listed[base + b"dir"].node.type == DIR
        assert listed[f"{BUCKET}/{prefix}".encode()].node.type == DIR
        assert listed[BUCKET.encode()].node.type == DIR
        for key, body in bodies.items():
            path = base + b"/".join(_names(key, bodies))
            entry = found[path]
            assert decode_names(path[len(base) :].split(b"/")) == key
            head = client.head_object(Bucket=BUCKET, Key=f"{prefix}/{key}")
            etag = head["ETag"].strip('"').encode()
            assert entry.node.size == len(body)
            assert entry.node.mtime_ns == int(head["LastModified"].timestamp()) * 10**9
            assert entry.node.xattrs == [(b"user.s3.etag", etag)]
            assert read_all(src, entry) == body
            with src.open(entry) as content:
                assert content.node.xattrs == expected_xattrs(key, etag)
                assert (content.node.size, content.node.mtime_ns) == (
                    entry.node.size, entry.node.mtime_ns,
                )  # fmt: skip
            assert src.unchanged(content.node, entry)


def expected_xattrs(key: str, etag: bytes) -> list[tuple[bytes, bytes]]:
    if key.endswith("/"):  # SeaweedFS keeps a folder marker as a directory: its type only
        return [(b"user.s3.content-type", b"text/x-odd"), (b"user.s3.etag", etag)]
    return [
        (b"user.s3.cache-control", b"max-age=60"),
        (b"user.s3.content-disposition", b"inline"),
        (b"user.s3.content-encoding", b"identity"),
        (b"user.s3.content-language", b"de"),
        (b"user.s3.content-type", b"text/x-odd"),
        (b"user.s3.etag", etag),
        (b"user.s3.meta.n", b"1"),
        (b"user.s3.meta.team", b"lake"),
    ]


def _names(key: str, keys: dict[str, bytes]) -> list[bytes]:
    """The path names of ``key``: the plain mapping, its last name marked when a directory
    of that name stands beside it."""
    names = encode_key(key)
    if any(other.startswith(key + "/") for other in keys):
        names[-1] += b"%="
    return names


def test_several_sources_and_nesting(prefix: str, client: Any) -> None:
    put_many(client, [f"{prefix}/a/1", f"{prefix}/a/b/2", f"{prefix}/c/3", f"{prefix}/d/4"])
    urls = [f"s3://{BUCKET}/{prefix}/a/b", f"s3://{BUCKET}/{prefix}/c", f"s3://{BUCKET}/{prefix}/a"]
    with S3Source(urls, policy=fast_retry()) as src:
        assert src.paths == urls
        base = f"{BUCKET}/{prefix}/".encode()
        assert sorted(files(src)) == [base + b"a/1", base + b"a/b/2", base + b"c/3"]


def lake_keys(prefix: str) -> list[str]:
    """3,600 keys: a wide flat directory and one of many subdirectories (many pages each),
    nested partitions, odd neighbours."""
    keys = [f"{prefix}/flat/part-{i:05d}.parquet" for i in range(1500)]
    for year in range(3):
        for month in range(1, 13):
            for n in range(35):
                keys.append(f"{prefix}/t/year={2020 + year}/month={month:02d}/f{n}.csv")
    keys += [f"{prefix}/many/d{i:03d}/{n}" for i in range(300) for n in ("a", "b")]
    keys += [f"{prefix}/t", f"{prefix}/t-", f"{prefix}/t.0", f"{prefix}/flat-x/y"]
    return keys


def test_parallel_listing_equals_a_serial_flat_listing(prefix: str, client: Any) -> None:
    keys = lake_keys(prefix)
    assert len(keys) >= 2760
    put_many(client, keys)
    base = f"{BUCKET}/".encode()
    with source(f"s3://{BUCKET}/{prefix}", listers=8, page_size=100) as parallel:
        walked = [(p, e.node) for p, e in walk(parallel)]
    with source(f"s3://{BUCKET}/{prefix}", listers=1) as serial:
        assert [(p, e.node) for p, e in walk(serial)] == walked
    flat = set()
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix + "/"
    ):
        flat |= {(obj["Key"], obj["Size"], obj["ETag"].strip('"')) for obj in page["Contents"]}
    from_walk = {
        (decode_names(p[len(base) :].split(b"/")), n.size, dict(n.xattrs)[b"user.s3.etag"].decode())
        for p, n in walked
        if n.type == FILE
    }
    assert from_walk == flat
    assert len(from_walk) == len(keys)
    # each directory's entries in name order, as a tree holds them
    paths = [p for p, _ in walked]
    for parent in {p.rpartition(b"/")[0] for p in paths}:
        names = [p.rpartition(b"/")[2] for p in paths if p.rpartition(b"/")[0] == parent]
        assert names == sorted(set(names))


def test_excluded_directories_do_not_stall_prefetch(prefix: str, client: Any) -> None:
    """A walk that skips directories (excludes) still gets every listing it enters."""
    keys = [f"{prefix}/d{i:03d}/sub{j}/f" for i in range(80) for j in range(2)]
    put_many(client, keys)
    with source(f"s3://{BUCKET}/{prefix}") as src:
        bucket = next(iter(src.entries()))
        top = list(src.entries(next(iter(src.entries(bucket)))))
        entered = 0
        for entry in top[::3]:  # two of three passed over
            for sub in src.entries(entry):
                assert [e.name for e in src.entries(sub)] == [b"f"]
                entered += 1
        assert entered == 2 * len(top[::3])
        # every listing entered was started ahead: the passed-over ones freed their places
        assert src._prefetch.misses == 0


def test_large_objects_read_in_ranges(seaweedfs: SeaweedFS, prefix: str, client: Any) -> None:
    body = os.urandom(5 * 1024 * 1024 + 123)
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/big", Body=body)
    with (
        FaultProxy(seaweedfs.s3_port) as proxy,
        source(f"s3://{BUCKET}/{prefix}", endpoint_url=proxy.url, part_size=1024 * 1024) as src,
    ):
        (entry,) = files(src).values()
        before = proxy.counts["GET"]
        assert hashlib.sha256(read_all(src, entry)).digest() == hashlib.sha256(body).digest()
        assert proxy.counts["GET"] - before == 6  # 5 MiB + 123 bytes in 1 MiB ranges
        assert src._ahead._free == AHEAD_BYTES  # every read ahead handed back


def test_vanished_and_replaced_objects(prefix: str, client: Any) -> None:
    put_many(client, [f"{prefix}/gone", f"{prefix}/swapped", f"{prefix}/kept"])
    with source(f"s3://{BUCKET}/{prefix}") as src:
        found = files(src)
        base = f"{BUCKET}/{prefix}/".encode()
        client.delete_object(Bucket=BUCKET, Key=f"{prefix}/gone")
        # the same size, so only the ETag tells (If-Match)
        client.put_object(
            Bucket=BUCKET, Key=f"{prefix}/swapped", Body=f"{prefix}/swapped"[::-1].encode()
        )
        with pytest.raises(ObjectVanished) as gone:
            src.open(found[base + b"gone"])
        assert str(gone.value) == f"s3://{BUCKET}/{prefix}/gone: deleted since it was listed"
        with pytest.raises(ObjectReplaced) as swapped:
            src.open(found[base + b"swapped"])
        assert str(swapped.value) == f"s3://{BUCKET}/{prefix}/swapped: replaced since it was listed"
        assert read_all(src, found[base + b"kept"]) == f"{prefix}/kept".encode()
        # read again from a fresh listing of it: the new object, seen as changed
        fresh = src.refresh(found[base + b"swapped"])
        assert fresh is not None and fresh.name == b"swapped"
        assert not src.unchanged(found[base + b"swapped"].node, fresh)
        assert read_all(src, fresh) == f"{prefix}/swapped"[::-1].encode()
        assert src.refresh(found[base + b"gone"]) is None
        assert src.unchanged(found[base + b"kept"].node, found[base + b"kept"])


def test_object_replaced_during_its_read(prefix: str, client: Any) -> None:
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/big", Body=os.urandom(3 * 65536))
    with source(f"s3://{BUCKET}/{prefix}", part_size=65536, ahead_bytes=0) as src:
        (entry,) = files(src).values()
        with src.open(entry) as content:
            assert content.readinto(bytearray(65536)) == 65536
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/big", Body=os.urandom(3 * 65536))
            with pytest.raises(ObjectReplaced, match="replaced since it was listed"):
                content.readinto(bytearray(65536))


def test_ten_percent_of_requests_failing(seaweedfs: SeaweedFS, prefix: str, client: Any) -> None:
    keys = [f"{prefix}/p{i % 7}/o{i:04d}" for i in range(400)]
    keys.append(f"{prefix}/large")
    put_many(client, keys[:-1])
    large = os.urandom(600_000)
    client.put_object(Bucket=BUCKET, Key=keys[-1], Body=large)
    plan = FaultPlan(rate=0.1, kinds=("500", "503", "reset"), seed=7)
    with FaultProxy(seaweedfs.s3_port, plan) as proxy, source(
        f"s3://{BUCKET}/{prefix}", endpoint_url=proxy.url, page_size=50, part_size=65536,
        policy=fast_retry(12),
    ) as src:  # fmt: skip
        found = files(src)
        assert len(found) == len(keys)
        for path, entry in found.items():
            want = large if path.endswith(b"/large") else path.split(b"/", 1)[1]
            assert read_all(src, entry) == want
        assert src.policy.retried > 0
    assert proxy.counts["500"] + proxy.counts["503"] + proxy.counts["reset"] >= 40


def test_wrong_credentials_give_one_clear_error(
    s3_env: SeaweedFS, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with source(f"s3://{BUCKET}/{prefix}") as src, pytest.raises(AccessDenied) as info:
        list(walk(src))
    assert str(info.value) == (
        f"S3 refused access to source bucket {BUCKET!r} at {s3_env.endpoint} "
        "(SignatureDoesNotMatch): check the source's credentials (AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, --source-profile) and the bucket policy"
    )


def test_missing_bucket_gives_one_clear_error(s3_env: SeaweedFS) -> None:
    with source("s3://no-such-bucket-here/p") as src, pytest.raises(SourceNotFound) as info:
        list(walk(src))
    assert str(info.value) == f"no S3 bucket 'no-such-bucket-here' at {s3_env.endpoint}"


def test_source_endpoint_and_profile(
    s3_env: SeaweedFS, prefix: str, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's own endpoint and profile win over the environment the repository
    uses (here: a closed port and wrong keys)."""
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/k", Body=b"v")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[lake]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with source(f"s3://{BUCKET}/{prefix}", endpoint_url=s3_env.endpoint, profile="lake") as src:
        (entry,) = files(src).values()
        assert read_all(src, entry) == b"v"
    with pytest.raises(SnapfsError, match=r"^no AWS profile 'nobody' in the AWS config files$"):
        source(f"s3://{BUCKET}/{prefix}", profile="nobody")


def test_versioned_bucket_keeps_the_version_id(s3_env: SeaweedFS, client: Any) -> None:
    bucket = "snapfs-versioned"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="v/k", Body=b"one")
    version = client.put_object(Bucket=bucket, Key="v/k", Body=b"two")["VersionId"]
    with source(f"s3://{bucket}/v") as src:
        (entry,) = files(src).values()
        with src.open(entry) as content:
            assert dict(content.node.xattrs)[b"user.s3.version-id"] == version.encode()
        assert read_all(src, entry) == b"two"
