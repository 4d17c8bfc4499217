"""S3Backend and RetryBackend against a real server (SeaweedFS), directly and through the
fault proxy: the Backend promises, multipart, conditional writes, error mapping, retries."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from snapfs.errors import BackendError, SnapfsError
from snapfs.store.base import AlreadyExists, NotFound, Transient
from snapfs.store.retry import RetryBackend, RetryPolicy
from snapfs.store.s3 import S3Backend, parse_location
from tests.s3.faultproxy import FaultPlan, FaultProxy
from tests.s3.seaweed import BUCKET, SeaweedFS


@pytest.fixture
def location(s3_env: SeaweedFS) -> str:
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/backend"


@pytest.fixture
def s3(location: str) -> Iterator[S3Backend]:
    backend = S3Backend(location)
    yield backend
    backend.close()


def test_parse_location() -> None:
    assert parse_location("s3://bkt/a/b/") == ("bkt", "a/b/")
    assert parse_location("s3://bkt") == ("bkt", "")
    with pytest.raises(SnapfsError, match="expected s3://bucket/prefix"):
        parse_location("s3:///x")


def test_put_get_range_stat_list_delete(s3: S3Backend) -> None:
    data = os.urandom(100_000)
    s3.put("data/ab/one", data)
    s3.put("index/two", b"x")
    assert s3.get("data/ab/one") == data
    assert s3.get_range("data/ab/one", 1000, 5000) == data[1000:6000]
    assert s3.get_range("data/ab/one", 5, 0) == b""
    assert s3.stat("data/ab/one").size == len(data)
    assert s3.exists("index/two") and not s3.exists("index/three")
    assert sorted(i.key for i in s3.list("")) == ["data/ab/one", "index/two"]
    assert [i.key for i in s3.list("data/")] == ["data/ab/one"]
    s3.delete("index/two")
    s3.delete("index/two")  # idempotent
    assert not s3.exists("index/two")


def test_missing_keys_and_short_ranges(s3: S3Backend) -> None:
    s3.put("k", b"0123456789")
    with pytest.raises(NotFound):
        s3.get("absent")
    with pytest.raises(NotFound):
        s3.stat("absent")
    with pytest.raises(NotFound):
        s3.get_range("absent", 0, 1)
    for offset, length in ((5, 10), (20, 1)):
        with pytest.raises(BackendError, match="short read") as info:
            s3.get_range("k", offset, length)
        assert not isinstance(info.value, Transient)  # a short object is no accident


def test_create_only_put(s3: S3Backend) -> None:
    s3.put("config", b"first")
    with pytest.raises(AlreadyExists):
        s3.put("config", b"second")
    assert s3.get("config") == b"first"
    s3.put("config", b"third", exclusive=False)
    assert s3.get("config") == b"third"


def test_multipart_above_threshold(location: str) -> None:
    s3 = S3Backend(location, multipart_threshold=6 << 20, part_size=5 << 20)
    data = os.urandom(11 << 20)
    s3.put("data/big", data)
    assert s3.get("data/big") == data
    assert s3.get_range("data/big", (5 << 20) - 3, 10) == data[(5 << 20) - 3 : (5 << 20) + 7]
    with pytest.raises(AlreadyExists):
        s3.put("data/big", os.urandom(7 << 20))
    assert s3.stat("data/big").size == len(data)


def test_prefixes_do_not_see_each_other(s3_env: SeaweedFS) -> None:
    root = uuid.uuid4().hex[:12]
    a, b = S3Backend(f"s3://{BUCKET}/{root}/a"), S3Backend(f"s3://{BUCKET}/{root}/ab")
    a.put("config", b"a")
    b.put("config", b"b")
    assert [i.key for i in a.list("")] == ["config"]
    assert a.get("config") == b"a"


def test_server_without_conditional_writes_falls_back(seaweedfs: SeaweedFS, location: str) -> None:
    with FaultProxy(seaweedfs.s3_port, FaultPlan(refuse_conditional=True)) as proxy:
        s3 = S3Backend(location, endpoint_url=proxy.url)
        s3.put("locks/one", b"mine")
        with pytest.raises(AlreadyExists):
            s3.put("locks/one", b"theirs")
        assert s3.get("locks/one") == b"mine"


def test_create_bucket_is_idempotent(s3_env: SeaweedFS) -> None:
    bucket = f"snapfs-new-{uuid.uuid4().hex[:8]}"
    s3 = S3Backend(f"s3://{bucket}/repo")
    assert s3.create_bucket() is True
    assert s3.create_bucket() is False
    s3.put("config", b"x")
    assert s3.get("config") == b"x"


def test_retry_backend_rides_out_a_third_of_requests_failing(
    seaweedfs: SeaweedFS, location: str
) -> None:
    """500/503 before and after the server acted, resets mid-body, delays: every call still
    gives the right answer, and create-only puts whose reply was lost do not turn into
    AlreadyExists."""
    plan = FaultPlan(rate=0.33, delay=0.05, seed=7)
    with FaultProxy(seaweedfs.s3_port, plan) as proxy:
        policy = RetryPolicy(attempts=12, base_delay=0.01, max_delay=0.05)
        store = RetryBackend(S3Backend(location, endpoint_url=proxy.url), policy)
        blobs = {f"data/{i:02}": os.urandom(50_000 + i) for i in range(40)}
        for key, data in blobs.items():
            store.put(key, data)
        for key, data in blobs.items():
            assert store.get(key) == data
            assert store.get_range(key, 100, 20_000) == data[100:20_100]
        assert sorted(i.key for i in store.list("data/")) == sorted(blobs)
        with pytest.raises(AlreadyExists):
            store.put("data/00", b"different")
    assert proxy.counts["reset"] > 0 and proxy.counts["500"] + proxy.counts["503"] > 0
    assert policy.retried > 0


def test_retry_gives_up_with_one_line(s3_env: SeaweedFS) -> None:
    s3 = S3Backend(f"s3://{BUCKET}/x", endpoint_url="http://127.0.0.1:9")
    store = RetryBackend(s3, RetryPolicy(attempts=2, base_delay=0.01))
    with pytest.raises(BackendError) as info:
        store.get("config")
    assert str(info.value) == (
        "cannot reach S3 endpoint http://127.0.0.1:9: connection refused (gave up after 2 attempts)"
    )
