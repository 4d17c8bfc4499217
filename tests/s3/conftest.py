"""Fixtures of the S3 tests: the session's SeaweedFS (tests/conftest.py starts it) reached
through the environment, as snapfs is by users, and a boto3 client of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.s3.seaweed import SeaweedFS


@pytest.fixture
def s3_env(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """The server, with its credentials and endpoint set in this process's environment."""
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    return seaweedfs


@pytest.fixture
def client(s3_env: SeaweedFS) -> Any:
    """A plain boto3 client of the server, to arrange and inspect objects."""
    return s3_env.client()


SOURCE_BUCKET = "lake"


@pytest.fixture(scope="session")
def source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A second SeaweedFS, holding what S3-source backups read (bucket SOURCE_BUCKET),
    so source and repository are different endpoints as ``--source-endpoint`` is for."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs-source"))
    server.start()
    try:
        server.client().create_bucket(Bucket=SOURCE_BUCKET)
        yield server
    finally:
        server.stop()
